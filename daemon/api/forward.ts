// Forwarding from a follower to its group's leader.
//
// Why not fetch: undici's per-request cost (streams, Headers objects, AbortSignal plumbing) was a
// large share of a follower's CPU per forwarded write, and 2 of 3 client writes arrive at a
// follower. node:http over one keep-alive agent per process is several times cheaper. undici's Pool
// lost too (docs/benchmarks.md, "HTTP clients"): 196-203 µs of caller CPU per sequential POST vs 52-90
// for node:http, and half the rate at 16 in flight.
//
// Why coalesce: under concurrency, many single-entry proposals reach a follower in the same
// event-loop turn. They go to the leader as ONE /v1/propose-batch request (one HTTP exchange, one
// host.propose), and each caller gets the answer the leader would have given its own request. A
// turn with a single proposal sends it as is (/v1/groups/G/propose, raw body), so one client
// pays no batching cost.

import http from 'node:http';
import { ERROR_STATUS } from '../errors.js';
import { BINARY_BATCH_TYPE, decodeBatchResponse, encodeBatchRequest, type BatchResult } from '../../protocol/batch-codec.js';

export interface ForwardOptions {
  /** Sockets per leader (keep-alive). */
  maxSockets?: number;
  /** Most proposals in one coalesced batch; more start another batch. */
  maxBatchItems?: number;
  /** Most entry bytes in one coalesced batch (base64 grows it by a third on the wire). */
  maxBatchBytes?: number;
  /**
   * Batches out to one leader (per group) at a time; more proposals wait for one to return. 8, not
   * 2: with 2, a proposal often waited a whole round trip for a slot (bench:kv at 64 clients, p99
   * 239-252 ms with 2 vs 72-141 ms with 8 on a loaded machine), and 8 still batches under load.
   */
  maxInFlight?: number;
  /** Largest answer taken from a leader; a larger one fails the exchange (FAILED). */
  maxResponseBytes?: number;
}

export const FORWARD_DEFAULTS = { maxSockets: 256, maxBatchItems: 1024, maxBatchBytes: 4 << 20, maxInFlight: 8, maxResponseBytes: 64 << 20 } as const;

/** The leader's answer, to relay to the client as is. */
export interface ForwardAnswer {
  status: number;
  contentType: string;
  /** The body: raw text from the leader, or one item of a batch answer (serialized by the caller). */
  body: string | Record<string, unknown>;
}

/**
 * REFUSED: the connection was refused, so the request never reached that node (safe to retry
 * elsewhere). FAILED: anything else (reset, timeout, malformed answer): the leader may have
 * taken the request, so its outcome is unknown.
 */
export type ForwardErrorCode = 'REFUSED' | 'FAILED';

export class ForwardError extends Error {
  override readonly name = 'ForwardError';
  constructor(
    readonly code: ForwardErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface QueuedProposal {
  data: Buffer;
  resolve(a: ForwardAnswer): void;
  reject(e: ForwardError): void;
}

interface Batch {
  addr: string;
  group: number;
  headers: Record<string, string>;
  timeoutMs: number;
  items: QueuedProposal[];
}

/** Proposals for one leader + group + headers: those waiting, and how many batches are out. */
interface Lane {
  addr: string;
  group: number;
  headers: Record<string, string>;
  timeoutMs: number;
  waiting: QueuedProposal[];
  inFlight: number;
  scheduled: boolean;
}

export class LeaderForwarder {
  private readonly agent: http.Agent;
  private readonly maxBatchItems: number;
  private readonly maxBatchBytes: number;
  private readonly maxInFlight: number;
  private readonly maxResponseBytes: number;
  private readonly lanes = new Map<string, Lane>();
  /** Batches sent and proposals in them (a mean batch size for the metrics). */
  readonly stats = { batches: 0, proposals: 0 };

  constructor(opts: ForwardOptions = {}) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? FORWARD_DEFAULTS.maxSockets, scheduling: 'lifo' });
    this.maxBatchItems = opts.maxBatchItems ?? FORWARD_DEFAULTS.maxBatchItems;
    this.maxBatchBytes = opts.maxBatchBytes ?? FORWARD_DEFAULTS.maxBatchBytes;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? FORWARD_DEFAULTS.maxInFlight);
    this.maxResponseBytes = opts.maxResponseBytes ?? FORWARD_DEFAULTS.maxResponseBytes;
  }

  /** One request relayed as is. */
  request(addr: string, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs: number): Promise<ForwardAnswer> {
    return this.exchange(addr, method, path, headers, body, timeoutMs).then((r) => ({ status: r.status, contentType: r.contentType, body: r.raw.toString('utf8') }));
  }

  /**
   * One single-entry proposal for `group`. It leaves at once (next turn) while fewer than
   * maxInFlight batches to that leader are out; otherwise it waits and leaves with everything
   * else that queued meanwhile, as one batch, when one comes back (group commit: no delay at low
   * load, big batches under load). `headers` must include what the leader needs (forwarded mark,
   * authorization); only proposals with identical headers share a batch.
   */
  propose(addr: string, group: number, data: Buffer, headers: Record<string, string>, timeoutMs: number): Promise<ForwardAnswer> {
    return new Promise<ForwardAnswer>((resolve, reject) => {
      const key = `${addr}\0${group}\0${timeoutMs}\0${JSON.stringify(headers)}`;
      let lane = this.lanes.get(key);
      if (!lane) {
        lane = { addr, group, headers, timeoutMs, waiting: [], inFlight: 0, scheduled: false };
        this.lanes.set(key, lane);
      }
      lane.waiting.push({ data, resolve, reject });
      this.pump(key, lane);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  /** Sends what waits in `lane` if it may; setImmediate so a turn's arrivals leave together. */
  private pump(key: string, lane: Lane): void {
    if (lane.scheduled || lane.inFlight >= this.maxInFlight || lane.waiting.length === 0) {
      if (lane.inFlight === 0 && lane.waiting.length === 0 && !lane.scheduled) this.lanes.delete(key);
      return;
    }
    lane.scheduled = true;
    setImmediate(() => {
      lane.scheduled = false;
      while (lane.inFlight < this.maxInFlight && lane.waiting.length > 0) {
        let n = 0;
        let bytes = 0;
        while (n < lane.waiting.length && n < this.maxBatchItems && (n === 0 || bytes + lane.waiting[n]!.data.length <= this.maxBatchBytes)) {
          bytes += lane.waiting[n]!.data.length;
          n++;
        }
        const items = lane.waiting.splice(0, n);
        lane.inFlight++;
        this.send({ addr: lane.addr, group: lane.group, headers: lane.headers, timeoutMs: lane.timeoutMs, items }, () => {
          lane.inFlight--;
          this.pump(key, lane);
        });
      }
      if (lane.inFlight === 0 && lane.waiting.length === 0) this.lanes.delete(key);
    });
  }

  private send(b: Batch, done: () => void): void {
    this.stats.batches++;
    this.stats.proposals += b.items.length;
    if (b.items.length === 1) {
      const it = b.items[0]!;
      this.exchange(b.addr, 'POST', `/v1/groups/${b.group}/propose`, { ...b.headers, 'content-type': 'application/octet-stream' }, it.data, b.timeoutMs).then(
        (r) => it.resolve({ status: r.status, contentType: r.contentType, body: r.raw.toString('utf8') }),
        (e: ForwardError) => it.reject(e),
      ).finally(done);
      return;
    }
    // Binary framing (protocol/batch-codec.ts): no base64 or JSON for the entries on either side.
    const payload = encodeBatchRequest(b.items.map((it) => ({ group: b.group, data: it.data })));
    const headers = { ...b.headers, 'content-type': BINARY_BATCH_TYPE };
    this.exchange(b.addr, 'POST', '/v1/propose-batch', headers, payload, b.timeoutMs).then(
      (r) => {
        if (r.status === 200 && r.contentType.startsWith(BINARY_BATCH_TYPE)) {
          let results: BatchResult[] | undefined;
          try {
            results = decodeBatchResponse(r.raw);
          } catch {
            results = undefined;
          }
          if (results && results.length === b.items.length) {
            b.items.forEach((it, k) => it.resolve(itemAnswer(results[k]!)));
            return;
          }
        } else if (r.status !== 200) {
          // The leader refused the whole batch (token, size, shutting down): every proposal gets
          // that refusal, as its own request would have.
          for (const it of b.items) it.resolve({ status: r.status, contentType: r.contentType, body: r.raw.toString('utf8') });
          return;
        }
        const err = new ForwardError('FAILED', `leader answered ${r.status} (${r.contentType}) with a malformed answer to a batch of ${b.items.length}`);
        for (const it of b.items) it.reject(err);
      },
      (e: ForwardError) => {
        for (const it of b.items) it.reject(e);
      },
    ).finally(done);
  }

  private exchange(addr: string, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, timeoutMs: number): Promise<{ status: number; contentType: string; raw: Buffer }> {
    return new Promise((resolve, reject) => {
      const colon = addr.lastIndexOf(':');
      const h: http.OutgoingHttpHeaders = { ...headers };
      if (body) h['content-length'] = body.length;
      const req = http.request({ host: addr.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(addr.slice(colon + 1)), method, path, headers: h, agent: this.agent });
      let done = false;
      const fail = (e: Error & { code?: string }): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.destroy();
        reject(e instanceof ForwardError ? e : new ForwardError(e.code === 'ECONNREFUSED' ? 'REFUSED' : 'FAILED', e.message, { cause: e }));
      };
      const timer = setTimeout(() => fail(new ForwardError('FAILED', `no answer within ${timeoutMs} ms`)), timeoutMs);
      req.setNoDelay(true);
      req.on('error', fail);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes <= this.maxResponseBytes) chunks.push(c);
          else fail(new ForwardError('FAILED', `the leader's answer is larger than ${this.maxResponseBytes} bytes`));
        });
        res.on('error', fail);
        res.on('aborted', () => fail(new ForwardError('FAILED', 'the leader closed the connection mid-answer')));
        res.on('end', () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? 'application/json'), raw: Buffer.concat(chunks) });
        });
      });
      req.end(body);
    });
  }
}

/** One /v1/propose-batch result as the answer /v1/groups/G/propose would have given. */
function itemAnswer(r: BatchResult): ForwardAnswer {
  const json = { status: 200, contentType: 'application/json' };
  switch (r.kind) {
    case 'applied':
      return { ...json, body: { index: r.index, result: r.result ?? null } };
    case 'skipped':
      return { ...json, body: { index: r.index, result: null, skipped: true } };
    case 'failed':
      // With an index: the app refused an applied entry (422, as propose answers). Without (-1):
      // raftd's own error, {code, message, leader?}, whose code names the status.
      if (r.index >= 0) return { ...json, status: 422, body: { index: r.index, error: r.error } };
      return { ...json, status: (ERROR_STATUS as Record<string, number>)[r.error.code] ?? 500, body: { error: r.error } };
  }
}
