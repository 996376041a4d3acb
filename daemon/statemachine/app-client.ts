// raftd -> application: the state-machine API v1 client (docs/state-machine-api.md).
//
// Transport: HTTP/2 cleartext with prior knowledge when the app speaks it (one multiplexed
// connection, no head-of-line blocking between groups), else HTTP/1.1 over a keep-alive agent.
// Detection ('auto'): open an h2c session and wait for the peer's SETTINGS frame; an HTTP/1.1-only
// server answers the HTTP/2 preface with a 400 or closes, so no SETTINGS arrive and we fall back.
// A refused connection means the app is down: the protocol stays undetermined and is detected
// again on the next call, so an app that starts (or restarts speaking another protocol) is found.
//
// Every call gets a deadline; failures become AppError with a stable code. This class never
// retries a failed call on its own except once, immediately, when a reused keep-alive connection
// turned out to be dead (a race with the server's idle timeout, not an app failure). Retrying with
// back-off is the caller's decision (GroupApplier does it for UpdateEntries).
//
// Hand-written over node:http2 / node:http rather than undici: undici (6.x) has no h2c with prior
// knowledge, and its HTTP/1.1 Pool took 196-203 µs of caller CPU per sequential POST against 52-90
// for node:http (docs/benchmarks.md, "HTTP clients").

import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { AppError } from './errors.js';
import type { AppEntry, EntryResult, UpdateEntriesResult } from './types.js';
import { ENTRIES_CONTENT_TYPE, ENTRIES_HEADER, advertisesBinary, encodeEntries } from '../../protocol/entries-codec.js';
import { H2_RECEIVE_SETTINGS, widenConnectionWindow } from '../../protocol/h2-window.js';
import { signAppRequest } from '../../protocol/app-auth.js';
import { Backoff, JITTER } from '../../protocol/backoff.js';
import { STATE_MACHINE_API_PATH, type StateMachineCall } from '../../protocol/state-machine-api.js';

export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
}

export interface AppClientOptions {
  /** Base URL of the app; `/raft/v1/` is appended unless the path already ends with it. */
  appUrl: string;
  /** Deadline of each ordinary call (default 10 s). */
  callTimeoutMs?: number;
  /** Deadline of SaveSnapshot / RecoverFromSnapshot, whole transfer (default 10 min). */
  snapshotTimeoutMs?: number;
  /** Back-off for callers that retry (the applier) and for the health probe. */
  retry?: RetryPolicy;
  logger?: Logger;
  /** auto: try h2c prior knowledge at connect, fall back to HTTP/1.1. */
  http2?: 'auto' | 'always' | 'never';
  /** How long to wait for the app's HTTP/2 SETTINGS during detection (default 2 s). */
  detectTimeoutMs?: number;
  /** Largest JSON answer accepted; beyond it the answer is APP_PROTOCOL (default 64 MiB). */
  maxResponseBytes?: number;
  /** auto (default): binary UpdateEntries when the app advertises it; json: always JSON. */
  entries?: 'auto' | 'json';
  /**
   * The app secret: every call is signed with it (HMAC-SHA256 over method, path, date, nonce and the
   * body's SHA-256; protocol/app-auth.ts). Undefined only for an app that does not check (--insecure).
   */
  secret?: string;
}

export type AppProtocol = 'h2c' | 'http/1.1';

type CallName = StateMachineCall;

interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

export type EntriesEncoding = 'json' | 'binary';

/** A transport failure before the app's answer arrived; `reused` = on a connection used before. */
class ExchangeFailure extends Error {
  constructor(
    override readonly cause: unknown,
    readonly reused: boolean,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** The caller's body iterable threw: not the app's fault, rethrown as is. */
class SourceFailure extends Error {
  constructor(override readonly cause: unknown) {
    super('request body source failed');
  }
}

const DEFAULT_RETRY: RetryPolicy = { initialMs: 50, maxMs: 2000 };

export class AppClient {
  readonly retryPolicy: RetryPolicy;
  private readonly origin: URL;
  private readonly basePath: string;
  private readonly callTimeoutMs: number;
  private readonly snapshotTimeoutMs: number;
  private readonly detectTimeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly mode: 'auto' | 'always' | 'never';
  private readonly logger: Logger | undefined;
  private readonly agent: http.Agent;

  private protocol: AppProtocol | undefined;
  private detecting: Promise<AppProtocol> | undefined;
  private session: http2.ClientHttp2Session | undefined;
  private sessionOpening: Promise<http2.ClientHttp2Session> | undefined;
  /** Set while the app cannot be reached; see noteSuccess / noteFailure. */
  private unreachable: AppError | undefined;
  /** Calls whose last attempt failed on the app's side (5xx, malformed answer). */
  private readonly failingCalls = new Map<CallName, AppError>();
  private probeTimer: NodeJS.Timeout | undefined;
  /** Between health probes while the app is unhealthy; reset once it is healthy again. */
  private readonly probeBackoff: Backoff;
  private closed = false;
  private readonly inflight = new Set<AbortController>();
  /**
   * How UpdateEntries bodies go out: as the app's latest LastLogIndex answer advertised. JSON
   * until then, and again after the app was unreachable (it may come back another version): the
   * applier asks LastLogIndex after every failed call, which re-learns it before resending.
   */
  private updateEncoding: EntriesEncoding = 'json';
  private readonly allowBinary: boolean;
  private readonly secret: string | undefined;

  constructor(opts: AppClientOptions) {
    const url = new URL(opts.appUrl);
    if (url.protocol !== 'http:') throw new TypeError(`app URL ${opts.appUrl}: only http:// is supported (HTTP/1.1 or h2c)`);
    this.origin = new URL(url.origin);
    const path = url.pathname.replace(/\/+$/, '');
    this.basePath = path.endsWith(STATE_MACHINE_API_PATH) ? path : `${path}${STATE_MACHINE_API_PATH}`;
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
    this.snapshotTimeoutMs = opts.snapshotTimeoutMs ?? 600_000;
    this.detectTimeoutMs = opts.detectTimeoutMs ?? 2_000;
    this.maxResponseBytes = opts.maxResponseBytes ?? 64 << 20;
    this.retryPolicy = opts.retry ?? DEFAULT_RETRY;
    this.probeBackoff = new Backoff({ ...this.retryPolicy, jitter: JITTER.spread });
    this.mode = opts.http2 ?? 'auto';
    this.logger = opts.logger;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64, scheduling: 'lifo' });
    if (this.mode === 'never') this.protocol = 'http/1.1';
    this.allowBinary = (opts.entries ?? 'auto') === 'auto';
    this.secret = opts.secret === '' ? undefined : opts.secret;
  }

  /**
   * Detects the protocol. Never throws because the app is down: it then reports the fallback
   * protocol with reachable=false, marks the client unhealthy and detection runs again later.
   */
  async connect(): Promise<{ protocol: AppProtocol; reachable: boolean }> {
    this.assertOpen();
    try {
      if (this.mode === 'never') {
        await this.tcpCheck();
        this.noteSuccess(undefined);
        return { protocol: 'http/1.1', reachable: true };
      }
      const protocol = await this.detect();
      this.noteSuccess(undefined);
      return { protocol, reachable: true };
    } catch (e) {
      const err = e instanceof AppError ? e : new AppError('APP_UNAVAILABLE', `app at ${this.origin.host}: ${(e as Error).message}`, { cause: e });
      this.noteFailure(undefined, err);
      return { protocol: this.mode === 'always' ? 'h2c' : 'http/1.1', reachable: false };
    }
  }

  /** How UpdateEntries bodies are sent now (learned from LastLogIndex answers). */
  entriesEncoding(): EntriesEncoding {
    return this.updateEncoding;
  }

  /** The protocol in use, or undefined while not yet detected (app not reached yet). */
  currentProtocol(): AppProtocol | undefined {
    return this.protocol;
  }

  healthy(): boolean {
    return this.unreachable === undefined && this.failingCalls.size === 0;
  }

  async lastLogIndex(group: number): Promise<number> {
    return this.callJson('LastLogIndex', { group }, (body, headers) => {
      const last = nonNegInt(body, 'lastLogIndex', 'LastLogIndex');
      const next: EntriesEncoding = this.allowBinary && advertisesBinary(headers[ENTRIES_HEADER]) ? 'binary' : 'json';
      if (next !== this.updateEncoding) this.logger?.info({ app: this.origin.host, entries: next }, 'UpdateEntries encoding');
      this.updateEncoding = next;
      return last;
    });
  }

  async updateEntries(group: number, entries: AppEntry[]): Promise<UpdateEntriesResult> {
    const parse = (body: Record<string, unknown>): UpdateEntriesResult => {
      const lastLogIndex = nonNegInt(body, 'lastLogIndex', 'UpdateEntries');
      return { results: parseResults(body['results'], entries, lastLogIndex), lastLogIndex };
    };
    if (this.updateEncoding === 'binary') return this.call('UpdateEntries', encodeEntries(group, entries), ENTRIES_CONTENT_TYPE, parse);
    const wire = entries.map((e) => ({ index: e.index, term: e.term, data: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('base64') }));
    return this.callJson('UpdateEntries', { group, entries: wire }, parse);
  }

  async read(group: number, query: unknown): Promise<unknown> {
    return this.callJson('Read', { group, query }, (body) => {
      if (!('result' in body)) throw protocolError('Read', 'answer has no "result"');
      return body['result'];
    });
  }

  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    return this.callJson('PrepareSnapshot', { group }, (body) => {
      const prepared = body['prepared'];
      if (typeof prepared !== 'string') throw protocolError('PrepareSnapshot', '"prepared" is not a string');
      return { prepared, lastLogIndex: nonNegInt(body, 'lastLogIndex', 'PrepareSnapshot') };
    });
  }

  /** Streams the snapshot bytes as the app sends them; nothing is buffered beyond one chunk. */
  saveSnapshot(group: number, prepared: string): AsyncIterable<Uint8Array> {
    return this.streamSnapshot(group, prepared);
  }

  private async *streamSnapshot(group: number, prepared: string): AsyncGenerator<Uint8Array> {
    const payload = Buffer.from(JSON.stringify({ group, prepared }));
    const ctl = this.deadline(this.snapshotTimeoutMs);
    try {
      const ex = await this.exchangeRetryingReused('SaveSnapshot', '', payload, 'application/json', ctl);
      if (ex.status < 200 || ex.status > 299) {
        const raw = await this.readAll('SaveSnapshot', ex.body, ctl);
        throw errorFromAnswer('SaveSnapshot', ex.status, raw);
      }
      try {
        for await (const chunk of ex.body) yield chunk as Uint8Array;
      } catch (e) {
        throw this.mapFailure('SaveSnapshot', e, ctl);
      } finally {
        ex.body.destroy();
      }
      this.noteSuccess('SaveSnapshot');
    } catch (e) {
      this.noteFailure('SaveSnapshot', e);
      throw e;
    } finally {
      this.release(ctl);
    }
  }

  /** Streams the snapshot into the app (chunked / HTTP/2 DATA frames) and returns its new last index. */
  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<number> {
    const ctl = this.deadline(this.snapshotTimeoutMs);
    try {
      const ex =
        data instanceof Uint8Array
          ? await this.exchangeRetryingReused('RecoverFromSnapshot', `?group=${group}`, data, 'application/octet-stream', ctl)
          : await this.exchangeOnce('RecoverFromSnapshot', `?group=${group}`, data, 'application/octet-stream', ctl);
      const body = await this.finishJson('RecoverFromSnapshot', ex, ctl);
      const last = nonNegInt(body, 'lastLogIndex', 'RecoverFromSnapshot');
      this.noteSuccess('RecoverFromSnapshot');
      return last;
    } catch (e) {
      this.noteFailure('RecoverFromSnapshot', e);
      throw e;
    } finally {
      this.release(ctl);
    }
  }

  async sync(group: number): Promise<number> {
    return this.callJson('Sync', { group }, (body) => nonNegInt(body, 'lastLogIndex', 'Sync'));
  }

  async deleteGroup(group: number): Promise<void> {
    await this.callJson('DeleteGroup', { group }, () => undefined);
  }

  /** Aborts calls in flight and releases every socket and timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    for (const ctl of this.inflight) ctl.abort(new AppError('APP_UNAVAILABLE', 'app client closed'));
    this.inflight.clear();
    const s = this.session;
    this.session = undefined;
    if (s && !s.destroyed) {
      await new Promise<void>((resolve) => {
        // Streams were aborted above; do not wait on a peer that never acknowledges GOAWAY.
        const timer = setTimeout(() => {
          s.destroy();
          resolve();
        }, 1000);
        s.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.agent.destroy();
  }

  // ---- calls ----

  /** One JSON call; `parse` validates the answer inside the call, so a malformed one counts as a failure. */
  private callJson<T>(call: CallName, request: object, parse: (body: Record<string, unknown>, headers: http.IncomingHttpHeaders) => T): Promise<T> {
    return this.call(call, Buffer.from(JSON.stringify(request)), 'application/json', parse);
  }

  /** One call with a JSON answer; the request body is already encoded. */
  private async call<T>(call: CallName, payload: Uint8Array, contentType: string, parse: (body: Record<string, unknown>, headers: http.IncomingHttpHeaders) => T): Promise<T> {
    this.assertOpen();
    const ctl = this.deadline(this.callTimeoutMs);
    try {
      const ex = await this.exchangeRetryingReused(call, '', payload, contentType, ctl);
      const out = parse(await this.finishJson(call, ex, ctl), ex.headers);
      this.noteSuccess(call);
      return out;
    } catch (e) {
      this.noteFailure(call, e);
      throw e;
    } finally {
      this.release(ctl);
    }
  }

  private async finishJson(call: CallName, ex: Exchange, ctl: AbortController): Promise<Record<string, unknown>> {
    const raw = await this.readAll(call, ex.body, ctl);
    if (ex.status < 200 || ex.status > 299) throw errorFromAnswer(call, ex.status, raw);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw protocolError(call, `answer is not JSON: ${snippet(raw)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw protocolError(call, 'answer is not a JSON object');
    return parsed as Record<string, unknown>;
  }

  private async readAll(call: CallName, body: Readable, ctl: AbortController): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body) {
        size += (chunk as Buffer).length;
        if (size > this.maxResponseBytes) {
          body.destroy();
          throw protocolError(call, `answer exceeds ${this.maxResponseBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (e) {
      throw this.mapFailure(call, e, ctl);
    }
    return Buffer.concat(chunks, size);
  }

  private async exchangeRetryingReused(call: CallName, query: string, body: Uint8Array, contentType: string, ctl: AbortController): Promise<Exchange> {
    try {
      return await this.exchange(call, query, body, contentType, ctl);
    } catch (e) {
      if (e instanceof ExchangeFailure && e.reused && !ctl.signal.aborted) {
        this.logger?.debug({ call, err: e.cause }, 'reused connection to the app failed; retrying once on a fresh one');
        // The other idle keep-alive sockets date from the same app process (likely restarted):
        // drop them all, or the retry could pick the next dead one.
        this.dropIdleSockets();
        return await this.exchangeOnce(call, query, body, contentType, ctl);
      }
      throw this.mapFailure(call, e, ctl);
    }
  }

  private async exchangeOnce(call: CallName, query: string, body: Uint8Array | AsyncIterable<Uint8Array>, contentType: string, ctl: AbortController): Promise<Exchange> {
    try {
      return await this.exchange(call, query, body, contentType, ctl);
    } catch (e) {
      throw this.mapFailure(call, e, ctl);
    }
  }

  private async exchange(call: CallName, query: string, body: Uint8Array | AsyncIterable<Uint8Array>, contentType: string, ctl: AbortController): Promise<Exchange> {
    const path = `${this.basePath}/${call}${query}`;
    let protocol = this.protocol;
    if (protocol === undefined) protocol = await raceAbort(this.detect(), ctl.signal);
    // Signed here, per attempt: a retry is a new request with a new nonce (the app refuses a nonce twice).
    const auth = this.secret === undefined ? {} : signAppRequest(this.secret, 'POST', path, body instanceof Uint8Array ? body : undefined);
    return protocol === 'h2c' ? this.h2Exchange(path, body, contentType, auth, ctl) : this.h1Exchange(path, body, contentType, auth, ctl);
  }

  private h1Exchange(path: string, body: Uint8Array | AsyncIterable<Uint8Array>, contentType: string, auth: Record<string, string>, ctl: AbortController): Promise<Exchange> {
    return new Promise<Exchange>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { 'content-type': contentType, accept: 'application/json, application/octet-stream', ...auth };
      if (body instanceof Uint8Array) headers['content-length'] = body.byteLength;
      const req = http.request({
        host: this.origin.hostname.replace(/^\[|\]$/g, ''),
        port: this.origin.port || 80,
        path,
        method: 'POST',
        agent: this.agent,
        headers,
        signal: ctl.signal,
      });
      let settled = false;
      req.once('response', (res) => {
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.on('error', (err) => {
        if (settled) return;
        settled = true;
        reject(err instanceof SourceFailure ? err : new ExchangeFailure(err, req.reusedSocket));
      });
      if (body instanceof Uint8Array) req.end(body);
      else void writeBody(req, body);
    });
  }

  private async h2Exchange(path: string, body: Uint8Array | AsyncIterable<Uint8Array>, contentType: string, auth: Record<string, string>, ctl: AbortController): Promise<Exchange> {
    const hadSession = this.session !== undefined && !this.session.destroyed && !this.session.closed;
    let session: http2.ClientHttp2Session;
    try {
      session = await raceAbort(this.h2Session(), ctl.signal);
    } catch (e) {
      throw new ExchangeFailure(e, false);
    }
    return new Promise<Exchange>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(
          { ':method': 'POST', ':path': path, 'content-type': contentType, accept: 'application/json, application/octet-stream', ...auth },
          { signal: ctl.signal },
        );
      } catch (e) {
        // The session went away between the check and the request (GOAWAY, peer closed).
        reject(new ExchangeFailure(e, hadSession));
        return;
      }
      let settled = false;
      stream.once('response', (h) => {
        settled = true;
        resolve({ status: Number(h[':status'] ?? 0), headers: h, body: stream });
      });
      stream.on('error', (err) => {
        if (settled) return;
        settled = true;
        reject(err instanceof SourceFailure ? err : new ExchangeFailure(err, hadSession));
      });
      stream.once('close', () => {
        if (settled) return;
        settled = true;
        reject(new ExchangeFailure(new Error(`HTTP/2 stream closed before an answer (code ${stream.rstCode ?? '?'})`), hadSession));
      });
      if (body instanceof Uint8Array) stream.end(body);
      else void writeBody(stream, body);
    });
  }

  // ---- connection management ----

  private detect(): Promise<AppProtocol> {
    if (this.protocol) return Promise.resolve(this.protocol);
    this.detecting ??= this.runDetect().finally(() => {
      this.detecting = undefined;
    });
    return this.detecting;
  }

  private async runDetect(): Promise<AppProtocol> {
    try {
      await this.h2Session();
      this.protocol = 'h2c';
    } catch (e) {
      const reachedButNotH2 = e instanceof NotH2Error;
      if (this.mode === 'always' || !reachedButNotH2) {
        throw e instanceof AppError ? e : new AppError('APP_UNAVAILABLE', `app at ${this.origin.host}: ${(e as Error).message}`, { cause: e });
      }
      this.protocol = 'http/1.1';
    }
    this.logger?.info({ app: this.origin.host, protocol: this.protocol }, 'state-machine API protocol detected');
    return this.protocol;
  }

  private h2Session(): Promise<http2.ClientHttp2Session> {
    const s = this.session;
    if (s && !s.destroyed && !s.closed) return Promise.resolve(s);
    this.sessionOpening ??= this.openSession().finally(() => {
      this.sessionOpening = undefined;
    });
    return this.sessionOpening;
  }

  private openSession(): Promise<http2.ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new AppError('APP_UNAVAILABLE', 'app client closed'));
        return;
      }
      const s = http2.connect(this.origin, { settings: H2_RECEIVE_SETTINGS });
      let connected = false;
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        // Reached the port but no HTTP/2 came back: an HTTP/1.1-only server.
        reject(connected ? new NotH2Error(err.message) : err);
      };
      const timer = setTimeout(() => fail(new Error(`no HTTP/2 SETTINGS within ${this.detectTimeoutMs} ms`)), this.detectTimeoutMs);
      s.once('connect', () => {
        connected = true;
      });
      s.once('remoteSettings', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        widenConnectionWindow(s);
        s.removeAllListeners('error');
        s.on('error', (err) => this.logger?.debug({ err }, 'HTTP/2 session to the app failed'));
        s.once('close', () => {
          if (this.session === s) this.session = undefined;
          // Re-detect on the next call: the app may have restarted speaking HTTP/1.1 only.
          if (this.mode === 'auto' && this.protocol === 'h2c' && !this.closed) this.protocol = undefined;
        });
        s.once('goaway', () => {
          if (this.session === s) this.session = undefined;
        });
        if (this.closed) {
          s.destroy();
          reject(new AppError('APP_UNAVAILABLE', 'app client closed'));
          return;
        }
        this.session = s;
        resolve(s);
      });
      s.on('error', (err) => fail(err));
      s.once('close', () => fail(new Error('connection closed during HTTP/2 handshake')));
    });
  }

  private dropIdleSockets(): void {
    for (const list of Object.values(this.agent.freeSockets)) for (const sock of list ?? []) sock.destroy();
  }

  private tcpCheck(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: this.origin.hostname.replace(/^\[|\]$/g, ''), port: Number(this.origin.port || 80) });
      const timer = setTimeout(() => sock.destroy(new Error('connect timed out')), this.detectTimeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve();
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  // ---- deadlines, errors, health ----

  private deadline(ms: number): AbortController {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new AppError('APP_TIMEOUT', `no complete answer within ${ms} ms`)), ms);
    ctl.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    (ctl as AbortController & { timer?: NodeJS.Timeout }).timer = timer;
    this.inflight.add(ctl);
    return ctl;
  }

  private release(ctl: AbortController): void {
    clearTimeout((ctl as AbortController & { timer?: NodeJS.Timeout }).timer);
    this.inflight.delete(ctl);
  }

  private mapFailure(call: CallName, e: unknown, ctl: AbortController): unknown {
    if (e instanceof AppError) return e;
    if (e instanceof SourceFailure) return e.cause;
    const reason: unknown = ctl.signal.aborted ? ctl.signal.reason : undefined;
    if (reason instanceof AppError) return new AppError(reason.code, `${call}: ${reason.message}`, { cause: e });
    const cause = e instanceof ExchangeFailure ? e.cause : e;
    if (cause instanceof AppError) return cause;
    const msg = cause instanceof Error ? cause.message : String(cause);
    if (this.mode === 'auto' && this.protocol === 'http/1.1') this.protocol = undefined; // re-detect once it is back
    this.updateEncoding = 'json'; // until a LastLogIndex answer from whatever app comes back says otherwise
    return new AppError('APP_UNAVAILABLE', `${call}: app at ${this.origin.host} unreachable: ${msg}`, { cause });
  }

  /*
   * Health. The app is unhealthy while it is unreachable (connection errors, timeouts: cleared by
   * any answer) or while some call keeps failing on the app's side (5xx, malformed answers:
   * cleared only when that same call succeeds, so an app that answers LastLogIndex but fails every
   * UpdateEntries stays unhealthy). A 4xx is the app answering: it clears both for that call.
   */
  private noteSuccess(call: CallName | undefined): void {
    const was = this.healthy();
    this.unreachable = undefined;
    if (call) this.failingCalls.delete(call);
    if (this.healthy()) {
      if (!was) this.logger?.info({ app: this.origin.host }, 'application is healthy again');
      this.probeBackoff.reset();
      if (this.probeTimer) {
        clearTimeout(this.probeTimer);
        this.probeTimer = undefined;
      }
    }
  }

  private noteFailure(call: CallName | undefined, e: unknown): void {
    if (!(e instanceof AppError) || this.closed) return;
    if (e.code === 'APP_ERROR' && !e.retryable) return this.noteSuccess(call);
    // A group's apply failing (an entry that will not apply, a slow one past the deadline) is that
    // group's problem: its applier reports it per group (GroupApplier.applyFailure). Only a connection
    // that cannot be made says the app as a whole is down — and so does an app refusing raftd's
    // signature (401: a wrong or rotated app secret fails every group alike).
    if (call !== undefined && GROUP_CALLS.has(call) && e.code !== 'APP_UNAVAILABLE' && e.status !== 401) return;
    const was = this.healthy();
    if (e.code === 'APP_UNAVAILABLE' || e.code === 'APP_TIMEOUT' || !call) this.unreachable = e;
    else this.failingCalls.set(call, e);
    if (was) this.logger?.warn({ app: this.origin.host, code: e.code, msg: e.message }, 'application unhealthy');
    this.scheduleProbe();
  }

  /** While unhealthy, probe with a harmless LastLogIndex so health recovers even with no traffic. */
  private scheduleProbe(): void {
    if (this.probeTimer || this.closed) return;
    const delay = this.probeBackoff.next();
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.healthy() || this.closed) return;
      const again = (): void => {
        if (!this.healthy()) this.scheduleProbe();
      };
      this.lastLogIndex(1).then(again, again);
    }, delay);
    this.probeTimer.unref();
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError('APP_UNAVAILABLE', 'app client closed');
  }
}

class NotH2Error extends Error {}

/** Calls about one group's apply: their failures do not make the whole app unhealthy. */
const GROUP_CALLS: ReadonlySet<CallName> = new Set<CallName>(['UpdateEntries', 'Sync']);

// ---- helpers ----

async function writeBody(dst: Writable, src: AsyncIterable<Uint8Array>): Promise<void> {
  try {
    for await (const chunk of src) {
      if (dst.destroyed) return;
      if (!dst.write(chunk)) {
        const open = await new Promise<boolean>((resolve) => {
          const onDrain = (): void => done(true);
          const onClose = (): void => done(false);
          const done = (v: boolean): void => {
            dst.off('drain', onDrain);
            dst.off('close', onClose);
            resolve(v);
          };
          dst.on('drain', onDrain);
          dst.on('close', onClose);
        });
        if (!open) return;
      }
    }
    if (!dst.destroyed) dst.end();
  } catch (e) {
    dst.destroy(new SourceFailure(e));
  }
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

function snippet(raw: Buffer): string {
  const s = raw.subarray(0, 200).toString('utf8');
  return JSON.stringify(raw.length > 200 ? `${s}...` : s);
}

function protocolError(call: CallName, what: string): AppError {
  return new AppError('APP_PROTOCOL', `${call}: malformed answer from the app: ${what}`);
}

function errorFromAnswer(call: CallName, status: number, raw: Buffer): AppError {
  let code = `HTTP_${status}`;
  let message = snippet(raw);
  try {
    const parsed = JSON.parse(raw.toString('utf8')) as { error?: { code?: unknown; message?: unknown } };
    if (parsed && typeof parsed.error?.code === 'string') {
      code = parsed.error.code;
      message = typeof parsed.error.message === 'string' ? parsed.error.message : '';
    }
  } catch {
    // Not the contract's error shape (a proxy's HTML page, say): keep the HTTP status as the code.
  }
  return new AppError('APP_ERROR', `${call}: app answered ${status} ${code}: ${message}`, { appCode: code, status });
}

function nonNegInt(body: Record<string, unknown>, field: string, call: CallName): number {
  const v = body[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw protocolError(call, `"${field}" is not a non-negative integer: ${JSON.stringify(v)}`);
  return v;
}

/**
 * Validates UpdateEntries results against what was sent: only sent indexes, each at most once,
 * and one for every sent entry the app says it applied (index <= lastLogIndex), since the
 * proposer of that entry is waiting for exactly that result.
 */
function parseResults(raw: unknown, sent: AppEntry[], lastLogIndex: number): EntryResult[] {
  if (!Array.isArray(raw)) throw protocolError('UpdateEntries', '"results" is not an array');
  const sentIdx = new Set(sent.map((e) => e.index));
  const seen = new Set<number>();
  const out: EntryResult[] = [];
  for (const r of raw as unknown[]) {
    if (typeof r !== 'object' || r === null) throw protocolError('UpdateEntries', 'a result is not an object');
    const o = r as Record<string, unknown>;
    const index = o['index'];
    if (typeof index !== 'number' || !sentIdx.has(index)) throw protocolError('UpdateEntries', `result for an index that was not sent: ${JSON.stringify(index)}`);
    if (seen.has(index)) throw protocolError('UpdateEntries', `two results for index ${index}`);
    seen.add(index);
    if (o['skipped'] === true) out.push({ index, ok: true, skipped: true });
    else if (o['ok'] === true) out.push({ index, ok: true, result: o['result'] ?? null });
    else if (o['ok'] === false) {
      const err = o['error'] as { code?: unknown; message?: unknown } | undefined;
      if (!err || typeof err.code !== 'string') throw protocolError('UpdateEntries', `failed result ${index} has no error.code`);
      out.push({ index, ok: false, error: { code: err.code, message: typeof err.message === 'string' ? err.message : '' } });
    } else throw protocolError('UpdateEntries', `result ${index} has neither ok nor skipped`);
  }
  for (const e of sent) {
    if (e.index <= lastLogIndex && !seen.has(e.index)) throw protocolError('UpdateEntries', `no result for applied index ${e.index}`);
  }
  return out;
}
