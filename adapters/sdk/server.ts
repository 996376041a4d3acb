// Serves a StateMachine over the state-machine API v1 (docs/state-machine-api.md) on one
// cleartext port that speaks both HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
//
// The SDK owns everything an adapter could get wrong in the same way everywhere: request
// validation, the skip rule for redelivered entries, per-group serialization of updates, gap
// detection, snapshot streaming with back-pressure, and error mapping.

import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { MAX_GROUP, MIN_GROUP, StateMachineError, type Entry, type Logger, type StateMachine, type WireEntryResult } from './types.js';
import { H2_RECEIVE_SETTINGS, widenConnectionWindow } from '../../protocol/h2-window.js';
import { ENTRIES_BINARY, ENTRIES_CONTENT_TYPE, ENTRIES_HEADER, EntriesFormatError, decodeEntries } from '../../protocol/entries-codec.js';
import { AUTH_SCHEME, AppAuthError, AppRequestVerifier, type VerifiedCall } from '../../protocol/app-auth.js';
import { STATE_MACHINE_API_PATH, isStateMachineCall } from '../../protocol/state-machine-api.js';
import { APP_SECRET_ENV, SecretError, checkSecret, resolveSecret } from '../../protocol/secrets.js';

/** Who may call: raftd proving the app secret (the default), or anyone (tests only). */
export interface AuthOptions {
  /**
   * The app secret raftd signs every call with (raftd's --app-secret-file). Default: the
   * environment, RAFTD_APP_SECRET or RAFTD_APP_SECRET_FILE (protocol/secrets.ts). Without one the
   * server refuses to start unless `insecure` is set.
   */
  appSecret?: string;
  /** Serve calls nobody signed: any local process can then rewrite the state. Tests and throwaway setups only. */
  insecure?: boolean;
  /** How far a call's x-raftd-date may be from this host's clock (default 60 s). */
  authWindowMs?: number;
}

export interface HandlerOptions extends AuthOptions {
  logger?: Logger;
  maxBodyBytes?: number;
  binaryEntries?: boolean;
}

/** The verifier for these options, undefined when insecure; throws SecretError when no secret is given. */
export function appVerifier(opts: AuthOptions, env: Readonly<Record<string, string | undefined>> = process.env): AppRequestVerifier | undefined {
  if (opts.insecure === true) return undefined;
  const secret = opts.appSecret !== undefined ? checkSecret(opts.appSecret, 'app secret') : resolveSecret(undefined, APP_SECRET_ENV, env, 'app secret');
  if (secret === '') {
    throw new SecretError(`no app secret: raftd signs every state-machine API call with it; set ${APP_SECRET_ENV} or ${APP_SECRET_ENV}_FILE (the file raftd's --app-secret-file names), or pass appSecret (insecure: true serves unauthenticated calls, for tests only)`);
  }
  return new AppRequestVerifier({ secret, ...(opts.authWindowMs !== undefined ? { windowMs: opts.authWindowMs } : {}) });
}

export interface ServeOptions extends AuthOptions {
  host?: string;
  port: number;
  /** true: h2c only; false: HTTP/1.1 only; undefined (default): both on the same port. */
  h2c?: boolean;
  logger?: Logger;
  /** Largest JSON request body accepted (default 64 MiB). Snapshot uploads are not limited. */
  maxBodyBytes?: number;
  /**
   * Advertise the binary UpdateEntries body on LastLogIndex answers (default true). Binary bodies
   * are accepted either way; false only makes raftd keep sending JSON (benchmarks, debugging).
   */
  binaryEntries?: boolean;
}

export interface ServedStateMachine {
  /** Base URL to hand raftd as --app-url, e.g. http://127.0.0.1:7000 */
  url: string;
  port: number;
  close(): Promise<void>;
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const PREFIX = `${STATE_MACHINE_API_PATH}/`;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/**
 * Standard base64 with padding, checked in one linear pass (a regular expression with a
 * repeated group overflows the stack on multi-megabyte entries).
 */
export function isBase64(s: string): boolean {
  const n = s.length;
  if (n % 4 !== 0) return false;
  let pad = 0;
  if (n > 0 && s.charCodeAt(n - 1) === 61 /* = */) pad = s.charCodeAt(n - 2) === 61 ? 2 : 1;
  for (let i = 0; i < n - pad; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
    if (!ok) return false;
  }
  return true;
}

const bad = (message: string): StateMachineError => new StateMachineError('BAD_REQUEST', message);

/**
 * The binary UpdateEntries body: framing decoded by the codec shared with raftd, then the same entry
 * rules as the JSON form (group range, checkEntries).
 */
function parseBinaryEntries(body: Buffer): { group: number; entries: Entry[] } {
  let decoded;
  try {
    decoded = decodeEntries(body);
  } catch (e) {
    if (e instanceof EntriesFormatError) throw bad(e.message);
    throw e;
  }
  return { group: parseGroup(decoded.group), entries: checkEntries(decoded.entries) };
}

/** The entry rules of both forms: non-empty, index >= 1, term >= 0, contiguous indexes. */
function checkEntries(entries: Entry[]): Entry[] {
  if (entries.length === 0) throw bad('"entries" must be non-empty');
  entries.forEach(({ index, term }, i) => {
    if (!Number.isSafeInteger(index) || index < 1) throw bad(`entries[${i}].index must be an integer >= 1`);
    if (!Number.isSafeInteger(term) || term < 0) throw bad(`entries[${i}].term must be an integer >= 0`);
    if (i > 0 && index !== entries[i - 1]!.index + 1) throw bad(`entries must have contiguous indexes: entries[${i}].index is ${index} after ${entries[i - 1]!.index}`);
  });
  return entries;
}

/** Serializes async work per key: raftd sends one UpdateEntries per group at a time, but a
 * retry after a timeout can overlap the original; the skip rule is only sound if they do not race. */
class KeyedMutex {
  private readonly tails = new Map<number, Promise<unknown>>();
  run<T>(key: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

function parseGroup(v: unknown): number {
  if (typeof v === 'string' && /^\d+$/.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < MIN_GROUP || v > MAX_GROUP) {
    throw bad(`"group" must be an integer in ${MIN_GROUP}..${MAX_GROUP}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function parseEntries(v: unknown): Entry[] {
  if (!Array.isArray(v) || v.length === 0) throw bad('"entries" must be a non-empty array');
  const out = v.map((e, i): Entry => {
    if (typeof e !== 'object' || e === null) throw bad(`entries[${i}] must be an object`);
    const { index, term, data } = e as Record<string, unknown>;
    if (typeof index !== 'number') throw bad(`entries[${i}].index must be an integer >= 1`);
    if (typeof term !== 'number') throw bad(`entries[${i}].term must be an integer >= 0`);
    if (typeof data !== 'string' || !isBase64(data)) throw bad(`entries[${i}].data must be a base64 string ("" for a no-op)`);
    const buf = Buffer.from(data, 'base64');
    return { index, term, data: new Uint8Array(buf.buffer, buf.byteOffset, buf.length) };
  });
  return checkEntries(out);
}

async function readBody(req: Req, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new StateMachineError('PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

function sendJson(res: Res, status: number, body: unknown): void {
  const text = Buffer.from(JSON.stringify(body));
  (res as http.ServerResponse).writeHead(status, { 'content-type': 'application/json', 'content-length': text.length });
  res.end(text);
}

/** The request handler alone (exported so it can be mounted on another server). */
export function stateMachineHandler(sm: StateMachine, opts: HandlerOptions = {}): (req: Req, res: Res) => void {
  const limit = opts.maxBodyBytes ?? 64 * 1024 * 1024;
  const advertiseBinary = opts.binaryEntries ?? true;
  const updates = new KeyedMutex();
  const verifier = appVerifier(opts);
  /** What each request's signature covers; checked against its body before the body is used. */
  const verified = new WeakMap<Req, VerifiedCall>();

  /** The whole body, once it is known to be the one raftd signed. */
  async function signedBody(req: Req): Promise<Buffer> {
    const raw = await readBody(req, limit);
    const call = verified.get(req);
    if (verifier && call) verifier.verifyBody(call, raw);
    return raw;
  }

  /**
   * The snapshot stream as the state machine reads it. With a signed digest, the last read throws
   * when the bytes differ, so the state machine fails the recovery instead of committing it (the
   * same as a connection lost mid-stream, which it must already survive).
   */
  function snapshotStream(req: Req): AsyncIterable<Uint8Array> {
    const want = verified.get(req)?.contentSha256;
    if (want === undefined) return req as AsyncIterable<Uint8Array>;
    return (async function* () {
      const hash = createHash('sha256');
      for await (const chunk of req as AsyncIterable<Buffer>) {
        hash.update(chunk);
        yield chunk;
      }
      if (hash.digest('hex') !== want) throw new AppAuthError('UNAUTHENTICATED', 'the snapshot body does not match x-raftd-content-sha256: altered in transit');
    })();
  }

  async function json(req: Req): Promise<Record<string, unknown>> {
    const raw = await signedBody(req);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw bad('the request body is not valid JSON');
    }
    return asObject(parsed);
  }

  /** The request's media type without parameters, lower-cased ('' when absent). */
  function mediaType(req: Req): string {
    const ct = req.headers['content-type'];
    return typeof ct === 'string' ? ct.split(';', 1)[0]!.trim().toLowerCase() : '';
  }

  async function updateEntriesRequest(req: Req): Promise<{ group: number; entries: Entry[] }> {
    if (mediaType(req) === ENTRIES_CONTENT_TYPE) return parseBinaryEntries(await signedBody(req));
    const body = await json(req);
    return { group: parseGroup(body.group), entries: parseEntries(body.entries) };
  }

  async function updateEntries({ group, entries }: { group: number; entries: Entry[] }): Promise<unknown> {
    return updates.run(group, async () => {
      const last = await sm.lastLogIndex(group);
      const first = entries[0]!.index;
      if (first > last + 1) {
        throw new StateMachineError('INDEX_GAP', `group ${group}: first entry ${first} leaves a gap after last index ${last}`, 409, { lastLogIndex: last });
      }
      const fresh = entries.filter((e) => e.index > last);
      const results: WireEntryResult[] = entries.filter((e) => e.index <= last).map((e) => ({ index: e.index, skipped: true as const }));
      if (fresh.length > 0) {
        let applied;
        try {
          applied = await sm.applyBatch(group, fresh);
        } catch (e) {
          // Tell raftd how far the app really got, so it can redeliver from there.
          const now = await sm.lastLogIndex(group).catch(() => undefined);
          if (e instanceof StateMachineError) throw new StateMachineError(e.code, e.message, e.status, { ...e.extra, ...(now !== undefined ? { lastLogIndex: now } : {}) });
          throw new StateMachineError('INTERNAL', `applyBatch failed: ${(e as Error).message}`, 500, now !== undefined ? { lastLogIndex: now } : {});
        }
        if (!Array.isArray(applied) || applied.length !== fresh.length) {
          throw new StateMachineError('INTERNAL', `adapter bug: applyBatch returned ${Array.isArray(applied) ? applied.length : typeof applied} results for ${fresh.length} entries`);
        }
        applied.forEach((r, k) => {
          const index = fresh[k]!.index;
          if (r.ok) results.push({ index, ok: true, result: r.result === undefined ? null : r.result });
          else results.push({ index, ok: false, error: { code: String(r.error.code), message: String(r.error.message) } });
        });
      }
      return { results, lastLogIndex: await sm.lastLogIndex(group) };
    });
  }

  async function saveSnapshot(res: Res, body: Record<string, unknown>): Promise<void> {
    const group = parseGroup(body.group);
    const prepared = body.prepared;
    if (typeof prepared !== 'string' || prepared.length === 0 || prepared.length > 1024) throw bad('"prepared" must be a non-empty string of at most 1024 characters');
    const iter = sm.saveSnapshot(group, prepared)[Symbol.asyncIterator]();
    // Pull the first chunk before sending headers, so SNAPSHOT_GONE and friends still get a
    // proper error status instead of a truncated 200.
    let first = await iter.next();
    (res as http.ServerResponse).writeHead(200, { 'content-type': 'application/octet-stream' });
    let closed = false;
    const out = res as http.ServerResponse;
    out.once('close', () => (closed = true));
    try {
      while (!first.done) {
        if (closed) break;
        if (first.value.length > 0 && !out.write(first.value)) {
          await drainOrClose(out);
        }
        first = await iter.next();
      }
    } catch (e) {
      // Headers are gone: the only honest signal left is a broken stream.
      opts.logger?.error({ err: (e as Error).message, group, prepared }, 'SaveSnapshot failed mid-stream');
      res.destroy(e as Error);
      return;
    } finally {
      if (closed) await iter.return?.();
    }
    res.end();
  }

  async function dispatch(req: Req, res: Res): Promise<void> {
    // Before anything else, the state machine included: raftd signs every call (protocol/app-auth.ts).
    if (verifier) verified.set(req, verifier.verifyHeaders(req.method ?? '', req.url ?? '', req.headers));
    const url = new URL(req.url ?? '/', 'http://app');
    if (!url.pathname.startsWith(PREFIX)) throw new StateMachineError('NOT_FOUND', `no such call: ${url.pathname} (the contract lives under ${PREFIX})`);
    const call = url.pathname.slice(PREFIX.length);
    if (!isStateMachineCall(call)) throw new StateMachineError('NOT_FOUND', `no such call: ${call}`);
    if (req.method !== 'POST') throw new StateMachineError('METHOD_NOT_ALLOWED', `${call} takes POST, not ${req.method}`);
    switch (call) {
      case 'LastLogIndex': {
        const group = parseGroup((await json(req)).group);
        const last = await sm.lastLogIndex(group);
        // raftd learns the app's UpdateEntries encodings from LastLogIndex answers (sendJson's
        // writeHead keeps headers set before it).
        if (advertiseBinary) res.setHeader(ENTRIES_HEADER, ENTRIES_BINARY);
        return sendJson(res, 200, { lastLogIndex: last });
      }
      case 'UpdateEntries':
        return sendJson(res, 200, await updateEntries(await updateEntriesRequest(req)));
      case 'Read': {
        const body = await json(req);
        const group = parseGroup(body.group);
        const result = await sm.read(group, body.query === undefined ? null : body.query);
        return sendJson(res, 200, { result: result === undefined ? null : result });
      }
      case 'PrepareSnapshot': {
        const group = parseGroup((await json(req)).group);
        // Queued behind in-flight updates so the view is cut between batches.
        const p = await updates.run(group, () => sm.prepareSnapshot(group));
        return sendJson(res, 200, { prepared: p.prepared, lastLogIndex: p.lastLogIndex });
      }
      case 'SaveSnapshot':
        return saveSnapshot(res, await json(req));
      case 'RecoverFromSnapshot': {
        const group = parseGroup(url.searchParams.get('group'));
        const index = await updates.run(group, () => sm.recoverFromSnapshot(group, snapshotStream(req)));
        return sendJson(res, 200, { lastLogIndex: index });
      }
      case 'Sync': {
        const group = parseGroup((await json(req)).group);
        if (!sm.sync) return sendJson(res, 200, { lastLogIndex: await sm.lastLogIndex(group) }); // always durable
        return sendJson(res, 200, { lastLogIndex: await updates.run(group, () => sm.sync!(group)) });
      }
      case 'DeleteGroup': {
        const group = parseGroup((await json(req)).group);
        if (!sm.deleteGroup) throw new StateMachineError('NOT_IMPLEMENTED', 'this adapter does not implement DeleteGroup');
        await updates.run(group, () => sm.deleteGroup!(group));
        return sendJson(res, 200, {});
      }
    }
  }

  return (req, res) => {
    dispatch(req, res).catch((e: unknown) => {
      const err =
        e instanceof StateMachineError ? e
        : e instanceof AppAuthError ? new StateMachineError(e.code, e.message, e.status)
        : new StateMachineError('INTERNAL', (e as Error)?.message ?? String(e), 500);
      if (err.status === 401) {
        opts.logger?.warn({ code: err.code, err: err.message, url: req.url }, 'state-machine call refused');
        if (!res.headersSent) res.setHeader('www-authenticate', AUTH_SCHEME);
      }
      if (err.status >= 500) opts.logger?.error({ code: err.code, err: err.message, url: req.url }, 'state-machine call failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Drain what is left of the request so a keep-alive connection stays usable.
      req.resume();
      sendJson(res, err.status, { error: { code: err.code, message: err.message, ...err.extra } });
    });
  };
}

/** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
function drainOrClose(out: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/** Starts the HTTP server; resolves once it listens. */
export async function serveStateMachine(sm: StateMachine, opts: ServeOptions): Promise<ServedStateMachine> {
  const host = opts.host ?? '127.0.0.1';
  const handler = stateMachineHandler(sm, opts);
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, handler);
  // UpdateEntries bodies of RaftHouse inserts run to ~600 KB: with HTTP/2's 64 KiB default windows
  // each needs ~10 WINDOW_UPDATE round trips through this event loop.
  const h2 = http2.createServer({ settings: H2_RECEIVE_SETTINGS }, handler);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (s) => {
    widenConnectionWindow(s);
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });

  const route = (sock: net.Socket, head: Buffer): void => {
    const isH2 = head.length >= H2_PREFACE.length && head.subarray(0, H2_PREFACE.length).equals(H2_PREFACE);
    if (isH2 && opts.h2c !== false) {
      // The bytes read so far go back into the socket's buffer: node:http2 (>= 15.x, nodejs/node
      // #34532) feeds what is buffered to the session, then reads the handle natively. A JS
      // duplex replaying them instead costs a fifth more CPU per call (JSStreamSocket).
      sock.pause();
      sock.unshift(head);
      h2.emit('connection', sock);
    } else if (!isH2 && opts.h2c !== true) {
      // node:http does honour bytes pushed back into the socket.
      sock.pause();
      sock.unshift(head);
      h1.emit('connection', sock);
      sock.resume();
    } else {
      sock.destroy();
    }
  };

  // Prior-knowledge h2c and HTTP/1.1 share the port: peek until the bytes either are the HTTP/2
  // connection preface or stop matching it, then hand the socket (bytes pushed back) to the
  // right server.
  const front = net.createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    // Small request/response pairs: Nagle + delayed ACK would add ~40 ms per call; set here once
    // for both protocols.
    sock.setNoDelay(true);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const decided = n === H2_PREFACE.length || !head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (!decided) return;
      sock.removeListener('data', onData);
      sock.removeListener('end', onEnd);
      route(sock, head);
    };
    const onEnd = (): void => void sock.destroy();
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('error', () => sock.destroy());
  });

  front.listen(opts.port, host);
  await once(front, 'listening');
  const addr = front.address() as net.AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${urlHost}:${addr.port}`,
    port: addr.port,
    close: async () => {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      h1.close();
      h2.close();
      await closed;
    },
  };
}
