// A small typed client for raftd's client API (propose, read, barrier, groups, membership,
// status). Every application front (the KV front, the RaftHouse gateway) uses this one, so retry
// and leader-handling rules live in one place. HTTP/1.1 over undici's Agent (one Pool per node):
// undici 7's Pool with the call's deadline (protocol/deadline.ts) took 44 µs of caller CPU per
// sequential POST against 65 for the node:http client this replaced, and 37 vs 47 at 16 in flight
// (docs/benchmarks.md, "HTTP clients"). The SDK package needs `undici` as a dependency.

import { Agent } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff, type BackoffPolicy } from '../../protocol/backoff.js';
import { Deadline } from '../../protocol/deadline.js';
import { API_TOKEN_ENV, resolveSecret } from '../../protocol/secrets.js';
import type { ErrorCode, LeaderHint } from '../../protocol/errors.js';
import { LEADER_HEADER, NO_FORWARD_HEADER } from '../../protocol/client-api.js';

export type Consistency = 'linearizable' | 'lease' | 'stale';

export type { LeaderHint };

/**
 * Every failure the client reports. `code` is raftd's stable error code (NOT_LEADER, NO_LEADER,
 * OVERLOADED, TIMEOUT, GROUP_NOT_FOUND, BAD_REQUEST, APP_UNAVAILABLE, UNAUTHORIZED, ...), the
 * application's own code for an entry it refused (with `index` set), or one of the client's:
 * UNREACHABLE (no node answered), UNEXPECTED_RESPONSE (not raftd's JSON).
 */
export class RaftdError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly leader?: LeaderHint,
    /** Set when the entry was committed and applied, but the application refused it. */
    readonly index?: number,
  ) {
    super(message);
    this.name = 'RaftdError';
  }
}

export interface RaftdClientOptions {
  /** One or more raftd nodes (http://host:port). The client sticks to one and moves on when it is unreachable. */
  url: string | string[];
  /**
   * raftd's client API token (or its admin token, for membership and group changes), sent as
   * `authorization: Bearer TOKEN`; raftd refuses every request without one (unless it runs --insecure).
   * Default: RAFTD_API_TOKEN, else the file named by RAFTD_API_TOKEN_FILE, else none. Pass '' for none.
   */
  token?: string;
  /** Per-request deadline (default 10 s). */
  timeoutMs?: number;
  /**
   * How long to keep re-sending a request that raftd refused without effect (NO_LEADER, NOT_LEADER
   * with no leader named, LEADERSHIP_TRANSFER, PROPOSAL_DROPPED), with back-off: an election or a
   * leader change then costs the caller latency, not an error. 0 reports the first refusal.
   * Default 5 s.
   */
  retryMs?: number;
  /** Ask raftd not to forward to the leader: the client follows NOT_LEADER hints itself. */
  noForward?: boolean;
  /** Connections kept per node (default 64). */
  maxSockets?: number;
  /** Largest answer accepted; a larger one fails the call with UNEXPECTED_RESPONSE (default 64 MiB). */
  maxResponseBytes?: number;
  /**
   * Send each group's proposals straight to its leader once known (from the `x-raftd-leader` header
   * raftd puts on answers it forwarded), saving the forwarding hop; any doubt (no answer, NOT_LEADER)
   * drops back to the configured nodes. Only for clients that can reach every node's `--http-addr`
   * (e.g. a process beside raftd, like the RaftHouse gateway). Default false.
   */
  routeToLeader?: boolean;
}

/**
 * routeToLeader clients also learn the cluster's other nodes (their `--http-addr`, from /status and
 * from NOT_LEADER hints) and, when the node they talk to answers NO_LEADER (cut off, removed from the
 * group, deposed), send the retry to the next node instead of the same one: a RaftHouse gateway whose
 * own raftd was out of the group re-sent NO_LEADER there for its whole retry budget (member-readd
 * chaos windows of 1.7-4 s). Bounded: at most this many endpoints, /status at most this often.
 */
const DISCOVERY = { maxEndpoints: 64, refreshMs: 10_000, statusTimeoutMs: 1000 } as const;

export interface ProposeResult {
  index: number;
  result: unknown;
  skipped?: boolean;
}

export type BatchItemResult = { index: number; result: unknown } | { error: { code: string; message: string; leader?: LeaderHint }; index?: number };

interface RawResponse {
  status: number;
  body: Buffer;
  /** `x-raftd-leader`: the leader's HTTP address, on answers raftd forwarded. */
  leader?: string;
}

/**
 * raftd's refusals that guarantee the request took no effect, so sending it again cannot apply it
 * twice, and that end by themselves: no leader was known (nothing was proposed), the leader is
 * handing over leadership (nothing was appended), or the proposal's entry was replaced after a
 * leader change. NOT_LEADER is followed at once when it names the leader; without a hint it waits
 * like the others. TIMEOUT, OUTCOME_UNKNOWN and SHUTTING_DOWN are never retried: the entry may apply.
 */
const RETRYABLE_REFUSALS: ReadonlySet<string> = new Set<ErrorCode>(['NO_LEADER', 'NOT_LEADER', 'LEADERSHIP_TRANSFER', 'PROPOSAL_DROPPED']);

/**
 * Whether to send a refused request again after a back-off. A NOT_LEADER that names the leader is
 * not, where the client cannot follow the hint itself (a propose-batch item): the same node would
 * refuse it again.
 */
function worthResending(error: { code: string; leader?: LeaderHint }, followsHints: boolean): boolean {
  return RETRYABLE_REFUSALS.has(error.code) && (followsHints || !(error.code === 'NOT_LEADER' && error.leader));
}

/** The parts of raftd's /status a routeToLeader client reads to tell whether its leader is gone. */
interface StatusView {
  groups?: Array<{ group: number; leader: number }>;
  nodes?: Array<{ id: number; httpAddr: string; connected: boolean }>;
}

/**
 * A request straight to a learnt leader that has gone unanswered this long (longer than a leader that
 * stepped down takes to answer NO_LEADER: an election timeout or two) makes the client ask its
 * own node whether that leader is still there; again every `everyMs` (one /status for all waiting).
 */
const LEADER_WATCH = { afterMs: 1000, everyMs: 250, statusTimeoutMs: 1000 } as const;

/** Back-off between retries of a refusal: doubling from the first, capped. */
const RETRY_BACKOFF: BackoffPolicy = { initialMs: 25, maxMs: 500 };

const CLIENT_DEFAULTS = { timeoutMs: 10_000, maxSockets: 64, retryMs: 5_000, maxResponseBytes: 64 << 20 } as const;

/** True when a connection-level error guarantees the request never reached raftd. */
function notDelivered(e: NodeJS.ErrnoException): boolean {
  return e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH' || e.code === 'ENOTFOUND' || e.code === 'EADDRNOTAVAIL';
}

export class RaftdClient {
  /** The configured nodes, then (routeToLeader) the ones learnt from the cluster. */
  private readonly urls: string[];
  private current = 0;
  /** When the node list was last asked for (routeToLeader), 0 never. */
  private discoveredAt = 0;
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly maxResponseBytes: number;
  /** How many of `urls` were configured (the rest were learnt, and are replaced at each /status). */
  private readonly configured: number;
  private readonly scheme: 'http' | 'https';
  /** Leader base URL per group (routeToLeader). */
  private readonly leaders = new Map<number, string>();
  /** The Authorization header value, '' for none. */
  private readonly authorization: string;

  constructor(private readonly opts: RaftdClientOptions) {
    this.urls = (Array.isArray(opts.url) ? opts.url : [opts.url]).map((u) => u.replace(/\/+$/, ''));
    if (this.urls.length === 0) throw new RaftdError('BAD_REQUEST', 'RaftdClient needs at least one url', 0);
    this.configured = this.urls.length;
    // A learnt address takes the configured scheme: a node's word never downgrades https to http.
    this.scheme = this.urls.some((u) => /^https:/i.test(u)) ? 'https' : 'http';
    this.timeoutMs = opts.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs;
    this.retryMs = opts.retryMs ?? CLIENT_DEFAULTS.retryMs;
    this.maxResponseBytes = opts.maxResponseBytes ?? CLIENT_DEFAULTS.maxResponseBytes;
    // maxResponseSize: undici refuses an answer past it (its content-length, or the bytes as they
    // come) without buffering it. headersTimeout / bodyTimeout: a backstop only; the whole call's
    // deadline is send()'s own timer.
    this.agent = new Agent({
      connections: opts.maxSockets ?? CLIENT_DEFAULTS.maxSockets,
      maxResponseSize: this.maxResponseBytes,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
    let token = opts.token;
    try {
      token ??= resolveSecret(undefined, API_TOKEN_ENV, process.env, 'raftd API token');
    } catch (e) {
      throw new RaftdError('BAD_REQUEST', (e as Error).message, 0);
    }
    this.authorization = token === '' ? '' : `Bearer ${token}`;
  }

  /** The node the client currently talks to. */
  get url(): string {
    return this.urls[this.current]!;
  }

  private async send(base: string, method: string, pathAndQuery: string, body: Buffer | undefined, contentType: string, noForward = this.opts.noForward, signal?: AbortSignal): Promise<RawResponse> {
    const headers: Record<string, string> = { 'content-type': contentType };
    if (this.authorization !== '') headers.authorization = this.authorization;
    if (noForward) headers[NO_FORWARD_HEADER] = '1';
    // The whole exchange, not the socket's idle time: an answer trickled in slowly ends here too.
    const deadline = new Deadline(this.timeoutMs, () => Object.assign(new Error(`no answer from ${base} within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    // The caller may give up first (sendToLeader's leader watch): one signal for undici either way.
    const onAbort = (): void => deadline.abort(Object.assign(new Error(`the call to ${base} was abandoned`), { code: 'ABORT_ERR' }));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await this.agent.request({ origin: base, path: pathAndQuery, method: method as 'GET', headers, body, signal: deadline });
      const raw = Buffer.from(await res.body.arrayBuffer());
      const leader = res.headers[LEADER_HEADER];
      return { status: res.statusCode, body: raw, ...(typeof leader === 'string' ? { leader } : {}) };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw new RaftdError('UNEXPECTED_RESPONSE', `the answer from ${base} is larger than ${this.maxResponseBytes} bytes (maxResponseBytes)`, 0);
      if (err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT') throw Object.assign(new Error(`no answer from ${base} within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' });
      throw err;
    } finally {
      deadline.clear();
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A failed send as the caller's error, or undefined when the next node may be tried. */
  private sendFailure(err: NodeJS.ErrnoException, base: string, idempotent: boolean | undefined): RaftdError | undefined {
    if (err instanceof RaftdError) return err; // raftd answered, with something this client refuses
    if (err.code === 'ETIMEDOUT') return new RaftdError('TIMEOUT', err.message, 0);
    if (!(idempotent || notDelivered(err))) return new RaftdError('UNREACHABLE', `${base}: ${err.message} (the request may or may not have been applied)`, 0);
    return undefined;
  }

  /**
   * Sends one request, sending it again with back-off while raftd refuses it without effect
   * (RETRYABLE_REFUSALS), for up to `retryMs`; the last answer is returned either way.
   */
  private async call(method: string, pathAndQuery: string, body?: Buffer | string | object, opts: { idempotent?: boolean; contentType?: string; group?: number } = {}): Promise<RawResponse> {
    let buf: Buffer | undefined;
    let contentType = opts.contentType ?? 'application/json';
    if (body instanceof Uint8Array) buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    else if (typeof body === 'string') buf = Buffer.from(body, 'utf8');
    else if (body !== undefined) buf = Buffer.from(JSON.stringify(body));
    if (body instanceof Uint8Array && !opts.contentType) contentType = 'application/octet-stream';
    return this.retrying(
      () => this.route(method, pathAndQuery, buf, contentType, opts),
      (res) => res.status === 503 && worthResending(this.parseError(res), true),
    );
  }

  /** Runs `attempt` until `again` says no or the retry budget would be spent; returns the last result. */
  private async retrying<T>(attempt: () => Promise<T>, again: (result: T) => boolean): Promise<T> {
    const deadline = Date.now() + this.retryMs;
    const backoff = new Backoff(RETRY_BACKOFF);
    for (;;) {
      const result = await attempt();
      const waitMs = backoff.next();
      if (!again(result) || Date.now() + waitMs > deadline) return result;
      await sleep(waitMs);
    }
  }

  /**
   * Sends one request once. `idempotent` requests move on to the next node on any connection
   * failure; others only when the connection was refused (nothing was delivered). A NOT_LEADER
   * answer with a leader hint is followed once (raftd applied nothing). With `group` and
   * routeToLeader, the group's leader learnt from an earlier forwarded answer is tried first, asked
   * not to forward.
   */
  private async route(method: string, pathAndQuery: string, buf: Buffer | undefined, contentType: string, opts: { idempotent?: boolean; group?: number }): Promise<RawResponse> {
    const group = this.opts.routeToLeader ? opts.group : undefined;
    if (group === undefined) return this.callNodes(method, pathAndQuery, buf, contentType, opts.idempotent);
    const leader = this.leaders.get(group);
    if (leader) {
      try {
        const res = await this.sendToLeader(leader, group, method, pathAndQuery, buf, contentType, opts.idempotent);
        // Only NOT_LEADER and NO_LEADER (nothing applied) go on to the configured nodes, which
        // forward and say where the leader went; any other answer, errors included, is the
        // request's own. (NO_LEADER: the node learnt was deposed, cut off or removed; re-sending
        // there, as `retrying` would, kept a RaftHouse gateway on it for the whole partition.)
        const code = res.status === 503 ? this.parseError(res).code : undefined;
        if (code !== 'NOT_LEADER' && code !== 'NO_LEADER') return res;
      } catch (e) {
        const failure = e instanceof RaftdError ? e : this.sendFailure(e as NodeJS.ErrnoException, leader, opts.idempotent);
        if (failure) {
          this.leaders.delete(group);
          throw failure;
        }
      }
      this.leaders.delete(group);
    }
    const res = await this.callNodes(method, pathAndQuery, buf, contentType, opts.idempotent);
    const leaderBase = this.baseOf(res.leader);
    if (leaderBase) this.leaders.set(group, leaderBase);
    return res;
  }

  /**
   * A request straight to the leader learnt for `group`. A leader that stops answering (SIGSTOP, a
   * frozen host) would hold it until the deadline, and every request after it: so while it goes
   * unanswered the client asks its own node, now and then, whether that leader is still there (its
   * raftd hears the others; it knows within an election timeout or two), and gives up on it once
   * not (RaftHouse chaos runs: every insert of every gateway was held for a whole leader pause).
   * Given up, a write's outcome is unknown (TIMEOUT); a read goes on to the configured nodes.
   */
  private async sendToLeader(leader: string, group: number, method: string, pathAndQuery: string, buf: Buffer | undefined, contentType: string, idempotent: boolean | undefined): Promise<RawResponse> {
    const ctl = new AbortController();
    let done = false;
    let gone = false;
    let timer: NodeJS.Timeout | undefined;
    const watch = async (): Promise<void> => {
      const verdict = await this.leaderGone(group, leader);
      if (done) return;
      if (verdict) {
        gone = true;
        ctl.abort();
        return;
      }
      timer = setTimeout(() => void watch(), LEADER_WATCH.everyMs);
    };
    timer = setTimeout(() => void watch(), LEADER_WATCH.afterMs);
    try {
      return await this.send(leader, method, pathAndQuery, buf, contentType, true, ctl.signal);
    } catch (e) {
      if (!gone) throw e;
      this.leaders.delete(group);
      if (idempotent) return this.callNodes(method, pathAndQuery, buf, contentType, idempotent);
      throw new RaftdError('TIMEOUT', `${leader} stopped answering and ${this.url} no longer takes it for group ${group}'s leader; the outcome is unknown`, 0);
    } finally {
      done = true;
      clearTimeout(timer);
    }
  }

  /** Shared by concurrent watches: one /status of the client's own node per LEADER_WATCH.everyMs. */
  private statusView: { at: number; view: Promise<StatusView | undefined> } | undefined;

  /** Whether the client's own node says `leader` (a base URL) no longer leads `group`: another does, or it is not connected. */
  private async leaderGone(group: number, leader: string): Promise<boolean> {
    const now = Date.now();
    if (!this.statusView || now - this.statusView.at >= LEADER_WATCH.everyMs) {
      const view = this.send(this.url, 'GET', '/status', undefined, 'application/json', undefined, AbortSignal.timeout(LEADER_WATCH.statusTimeoutMs)).then(
        (res) => (res.status === 200 ? (JSON.parse(res.body.toString('utf8')) as StatusView) : undefined),
        () => undefined,
      );
      this.statusView = { at: now, view };
    }
    const view = await this.statusView.view.catch(() => undefined);
    if (!view) return false; // no word from our own node: nothing to go by
    const node = view.nodes?.find((n) => this.baseOf(n.httpAddr) === leader);
    const leads = view.groups?.find((g) => g.group === group)?.leader ?? 0;
    if (node && node.connected === false) return true;
    return leads !== 0 && node !== undefined && leads !== node.id;
  }

  /**
   * The base URL of a node address a node told us (/status, a NOT_LEADER hint, a leader header):
   * strictly host:port, in the configured scheme; undefined for anything else.
   */
  private baseOf(httpAddr: string | undefined): string | undefined {
    if (typeof httpAddr !== 'string' || httpAddr.length > 262) return undefined;
    const m = /^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(httpAddr);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return undefined;
    return `${this.scheme}://${httpAddr}`;
  }

  /** Adds a node's base URL to the endpoints (routeToLeader only; bounded). */
  private learn(httpAddr: string | undefined): void {
    const base = this.baseOf(httpAddr);
    if (!this.opts.routeToLeader || !base || this.urls.length >= DISCOVERY.maxEndpoints) return;
    if (!this.urls.includes(base)) this.urls.push(base);
  }

  /** The learnt endpoints replaced by those of a fresh /status (learnt ones expire; configured stay). */
  private relearn(nodes: ReadonlyArray<{ httpAddr?: string }>): void {
    const at = this.urls[this.current];
    this.urls.splice(this.configured);
    for (const n of nodes) this.learn(n.httpAddr);
    const i = at === undefined ? -1 : this.urls.indexOf(at);
    this.current = i >= 0 ? i : 0;
  }

  /** Test hook: the endpoints as they are now. */
  endpoints(): readonly string[] {
    return [...this.urls];
  }

  /**
   * After NO_LEADER from `base`: the next attempt goes to the next endpoint (a definite refusal,
   * nothing was applied, so any node may take the retry). The endpoints are learnt from `base`'s
   * /status first if not done lately (the node that refuses still knows the cluster's nodes).
   */
  private async moveOnFrom(base: string): Promise<void> {
    if (!this.opts.routeToLeader) return;
    if (Date.now() - this.discoveredAt >= DISCOVERY.refreshMs) {
      this.discoveredAt = Date.now();
      try {
        const res = await this.send(base, 'GET', '/status', undefined, 'application/json', undefined, AbortSignal.timeout(DISCOVERY.statusTimeoutMs));
        if (res.status === 200) this.relearn((JSON.parse(res.body.toString('utf8')) as StatusView).nodes ?? []);
      } catch {
        // nothing learnt this time; the configured nodes remain
      }
    }
    if (this.urls[this.current] === base) this.current = (this.current + 1) % this.urls.length;
  }

  /** route() over the endpoints. */
  private async callNodes(method: string, pathAndQuery: string, buf: Buffer | undefined, contentType: string, idempotent: boolean | undefined): Promise<RawResponse> {
    let lastErr: Error | undefined;
    let followedLeader = false;
    for (let attempt = 0; attempt < this.urls.length; attempt++) {
      const base = this.urls[this.current]!;
      let res: RawResponse;
      try {
        res = await this.send(base, method, pathAndQuery, buf, contentType);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        lastErr = err;
        const failure = this.sendFailure(err, base, idempotent);
        if (failure) throw failure;
        this.current = (this.current + 1) % this.urls.length;
        continue;
      }
      if (res.status === 503 && !followedLeader) {
        const refusal = this.parseError(res);
        const leader = refusal.code === 'NOT_LEADER' ? refusal.leader : undefined;
        this.learn(leader?.httpAddr);
        if (refusal.code === 'NO_LEADER') await this.moveOnFrom(base);
        const hinted = this.baseOf(leader?.httpAddr);
        if (leader?.httpAddr && hinted) {
          followedLeader = true;
          try {
            return await this.send(hinted, method, pathAndQuery, buf, contentType);
          } catch (e) {
            // The refusal above said nothing about this second send: once the hinted leader may
            // have received the request (a timeout, a reset), its outcome is unknown, and
            // answering the earlier NOT_LEADER would let `retrying` send it again (a double
            // apply). Only a send that certainly delivered nothing keeps the refusal's meaning;
            // an idempotent request (a read) may always be sent again.
            const failure = idempotent ? undefined : this.sendFailure(e as NodeJS.ErrnoException, leader.httpAddr, false);
            if (failure) throw failure;
            return res;
          }
        }
      }
      return res;
    }
    throw new RaftdError('UNREACHABLE', `no raftd node answered (${this.urls.join(', ')}): ${lastErr?.message ?? 'unknown error'}`, 0);
  }

  private parseError(res: RawResponse): RaftdError {
    let parsed: { error?: { code?: unknown; message?: unknown; leader?: LeaderHint }; index?: unknown } | undefined;
    try {
      parsed = JSON.parse(res.body.toString('utf8')) as typeof parsed;
    } catch {
      parsed = undefined;
    }
    const e = parsed?.error;
    if (!e || typeof e.code !== 'string') {
      return new RaftdError('UNEXPECTED_RESPONSE', `HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`, res.status);
    }
    const index = typeof parsed?.index === 'number' ? parsed.index : undefined;
    return new RaftdError(e.code, typeof e.message === 'string' ? e.message : e.code, res.status, e.leader, index);
  }

  private json<T>(res: RawResponse): T {
    if (res.status < 200 || res.status > 299) throw this.parseError(res);
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch {
      throw new RaftdError('UNEXPECTED_RESPONSE', `HTTP ${res.status} with a body that is not JSON`, res.status);
    }
  }

  /** Proposes one entry (raw bytes, or a string sent as UTF-8); resolves with the application's result. */
  async propose(group: number, data: Uint8Array | string): Promise<ProposeResult> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.json<ProposeResult>(await this.call('POST', `/v1/groups/${group}/propose`, bytes, { contentType: 'application/octet-stream', group }));
  }

  /** Proposes a JSON command (serialized with JSON.stringify). */
  proposeJson(group: number, command: unknown): Promise<ProposeResult> {
    return this.propose(group, JSON.stringify(command));
  }

  /**
   * Many entries (one or many groups) in one request; each gets its own result or error. Items
   * refused without effect (RETRYABLE_REFUSALS) are sent again, alone, within the retry budget.
   */
  async proposeBatch(items: Array<{ group: number; data: Uint8Array | string }>): Promise<BatchItemResult[]> {
    const results: BatchItemResult[] = new Array(items.length);
    let todo = items.map((_, i) => i);
    let firstRound = true;
    await this.retrying(
      async () => {
        const body = { items: todo.map((i) => ({ group: items[i]!.group, data: Buffer.from(items[i]!.data).toString('base64') })) };
        let got: BatchItemResult[];
        try {
          got = this.json<{ results: BatchItemResult[] }>(await this.call('POST', '/v1/propose-batch', body)).results;
          if (!Array.isArray(got) || got.length !== todo.length) throw new RaftdError('UNEXPECTED_RESPONSE', `propose-batch answered ${Array.isArray(got) ? got.length : 'no'} results for ${todo.length} items`, 200);
        } catch (e) {
          // A re-send that failed as a whole: earlier rounds' results stand (some items may have
          // applied), and only the items of this round get its failure.
          if (firstRound) throw e;
          const err = e instanceof RaftdError ? e : new RaftdError('UNREACHABLE', (e as Error).message, 0);
          for (const i of todo) results[i] = { error: { code: err.code, message: err.message, ...(err.leader ? { leader: err.leader } : {}) } };
          return 0;
        }
        firstRound = false;
        todo.forEach((i, k) => (results[i] = got[k]!));
        todo = todo.filter((i) => {
          const r = results[i]!;
          return 'error' in r && worthResending(r.error, false);
        });
        return todo.length;
      },
      (left) => left > 0,
    );
    return results;
  }

  async read<T = unknown>(group: number, query: unknown, consistency: Consistency = 'linearizable'): Promise<T> {
    const res = await this.call('POST', `/v1/groups/${group}/read?consistency=${consistency}`, JSON.stringify(query ?? null), { idempotent: true });
    return this.json<{ result: T }>(res).result;
  }

  /** Waits until the contacted node's application has applied through a read index; returns it. */
  async barrier(group: number, consistency: Consistency = 'linearizable'): Promise<number> {
    return this.json<{ appliedIndex: number }>(await this.call('POST', `/v1/groups/${group}/barrier?consistency=${consistency}`, undefined, { idempotent: true })).appliedIndex;
  }

  async status(): Promise<Record<string, unknown>> {
    return this.json(await this.call('GET', '/status', undefined, { idempotent: true }));
  }

  /** The cluster's registered nodes (id, raftAddr, httpAddr). */
  async listNodes(): Promise<Array<{ id: number; raftAddr: string; httpAddr: string }>> {
    return this.json<{ nodes: Array<{ id: number; raftAddr: string; httpAddr: string }> }>(await this.call('GET', '/v1/nodes', undefined, { idempotent: true })).nodes;
  }

  async listGroups(): Promise<Array<{ group: number; members: number[]; local?: boolean }>> {
    return this.json<{ groups: Array<{ group: number; members: number[]; local?: boolean }> }>(await this.call('GET', '/v1/groups', undefined, { idempotent: true })).groups;
  }

  async createGroup(group: number, members?: number[]): Promise<void> {
    this.json(await this.call('POST', '/v1/groups', members ? { group, members } : { group }));
  }

  async deleteGroup(group: number): Promise<void> {
    this.json(await this.call('DELETE', `/v1/groups/${group}`));
  }

  /** Admin token needed. A demotion to learner the group cannot spare is refused (UNSAFE_MEMBERSHIP_CHANGE) unless `force`. */
  async addMember(group: number, node: number, role: 'voter' | 'learner' = 'voter', force = false): Promise<void> {
    this.json(await this.call('POST', `/v1/groups/${group}/members`, { node, role, ...(force ? { force: true } : {}) }));
  }

  /** Admin token needed. `force`: even when the group would be left with fewer voters than survive one failure (else UNSAFE_MEMBERSHIP_CHANGE). */
  async removeMember(group: number, node: number, force = false): Promise<void> {
    this.json(await this.call('DELETE', `/v1/groups/${group}/members/${node}${force ? '?force=1' : ''}`));
  }

  /**
   * Admin token needed. Forgets a registered node (peers stop dialling it), e.g. one that never came
   * up (`/status` nodes: connected false). Refused (CONFLICT) while it is a member of a group, unless `force`.
   */
  async removeNode(id: number, force = false): Promise<void> {
    this.json(await this.call('DELETE', `/v1/nodes/${id}${force ? '?force=1' : ''}`));
  }

  async transferLeadership(group: number, to: number): Promise<void> {
    this.json(await this.call('POST', `/v1/groups/${group}/transfer-leadership`, { to }));
  }

  /** Where every group is placed, per-node counts, the moves running and the rebalancer's state (issue 21). */
  async placement(): Promise<PlacementView> {
    return this.json<PlacementView>(await this.call('GET', '/v1/placement', undefined, { idempotent: true }));
  }

  /** Admin token needed. The meta leader plans and runs replica moves until the placement is balanced. */
  async rebalance(): Promise<Record<string, unknown>> {
    return this.json(await this.call('POST', '/v1/rebalance', {}));
  }

  /** Admin token needed. Moves every replica off `node` (`cancel`: takes it back into placement). */
  async decommission(node: number, cancel = false): Promise<Record<string, unknown>> {
    return this.json(await this.call('POST', `/v1/nodes/${node}/decommission`, cancel ? { cancel: true } : {}));
  }

  /** 200 on the leader of `group` (default: raftd's choice), false elsewhere. */
  async isLeader(group?: number): Promise<boolean> {
    const res = await this.call('GET', `/leader-check${group === undefined ? '' : `?group=${group}`}`, undefined, { idempotent: true });
    return res.status === 200;
  }

  /** Drops every connection (calls in flight fail). */
  close(): void {
    void this.agent.destroy().catch(() => undefined);
  }
}

/** GET /v1/placement (issue 21). */
export interface PlacementView {
  replicationFactor: number;
  effectiveReplicationFactor: number;
  nodes: Array<{ id: number; zone: string; state: string; groups: number; alive: boolean }>;
  groups: Array<{ group: number; members: number[]; preferredLeader: number | null; local: boolean; move?: { from: number | null; to: number | null; reason: string } }>;
  rebalance: { mode: string; leading: boolean; planning: boolean; running: Array<{ group: number; from: number | null; to: number | null; step: string }>; movesStarted: number; movesDone: number; movesAborted: number; lastError?: string };
}
