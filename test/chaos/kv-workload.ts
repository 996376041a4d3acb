// The KV register workload: concurrent clients issue reads, writes and compare-and-sets over a few
// keys through raftd's client API on any live node. Every operation is recorded with invocation
// and completion time (performance.now(), one process, monotonic) and its result:
//   ok   — the answer is known (and goes into the linearizability check)
//   fail — certainly had no effect (refused before the log, or replaced): left out of the check
//   info — unknown (timeout, lost connection): a write may take effect at any later time or never.

import type { KvInput, KvOp, KvOutput } from '../sim/linearizability.js';
import type { Rng } from '../sim/rng.js';
import { call, DEFINITELY_NOT_APPLIED, errorCode } from './http.js';
import { GROUP, type ClusterView } from './nemesis.js';

export type OpResult = 'ok' | 'fail' | 'info';

export interface RecordedOp {
  client: number;
  node: number;
  input: KvInput;
  /** ms since the run started */
  call: number;
  ret: number | null;
  result: OpResult;
  output?: KvOutput;
  /** The error code or network failure, for fail / info. */
  error?: string;
  /** For info (ret null: the checker treats it as never returning): when the answer came, for diagnosis. */
  answeredAt?: number;
}

export interface KvWorkloadOptions {
  clients: number;
  keys: number;
  /** Per-request client timeout; must exceed raftd's request timeout so raftd answers TIMEOUT first. */
  timeoutMs: number;
  /**
   * Deliberately broken client for checker tests: reads are sent with consistency=stale (served from
   * whatever the local replica has) but recorded as linearizable reads.
   */
  staleReadsAsLinearizable?: boolean;
  /**
   * Whether a NO_LEADER answer to a write means "not applied", as documented (default true). A run
   * found a write answered NO_LEADER that had taken effect (leader being removed, request sent to
   * a follower); with false such writes count as unknown, which the checker always accepts.
   */
  trustNoLeader?: boolean;
  /** Read consistency to use (default linearizable). Lease reads are opt-in: they rely on bounded clock drift. */
  readConsistency?: 'linearizable' | 'lease';
}

export class KvWorkload {
  readonly history: RecordedOp[] = [];
  private seq = 0;

  constructor(
    private readonly view: ClusterView,
    private readonly rng: Rng,
    private readonly t0: number,
    readonly opts: KvWorkloadOptions,
  ) {}

  keyName(i: number): string {
    return `k${i}`;
  }

  now(): number {
    return performance.now() - this.t0;
  }

  /**
   * Runs all clients until `stopAt` (performance.now() time; or read anew from `stopAt.at`, which the
   * runner moves past the last fault's healing); in-flight ops finish first.
   */
  async run(stopAt: number | { at: number }): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.clients }, (_, c) => this.client(c + 1, this.rng.fork(), stopAt)));
  }

  private async client(id: number, rng: Rng, stopAt: number | { at: number }): Promise<void> {
    const lastSeen = new Map<string, string | null>();
    while (performance.now() < (typeof stopAt === 'number' ? stopAt : stopAt.at)) {
      const key = this.keyName(rng.int(0, this.opts.keys - 1));
      const roll = rng.float();
      let input: KvInput;
      if (roll < 0.4) input = { type: 'read', key };
      else if (roll < 0.7) input = { type: 'write', key, value: `${id}-${++this.seq}` };
      // CAS from the value this client last saw (null = absent), so some of them succeed.
      else input = { type: 'cas', key, expected: lastSeen.get(key) ?? null, value: `${id}-${++this.seq}` };
      const pool = input.type === 'read' && !this.opts.staleReadsAsLinearizable ? this.view.readable() : this.view.reachable();
      if (pool.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const node = rng.pick(pool).spec.id;
      const op = await this.invoke(id, node, input);
      if (op.result === 'ok' && op.output && 'value' in op.output) lastSeen.set(key, op.output.value);
      if (op.result === 'ok' && input.type !== 'read') lastSeen.set(key, input.type === 'cas' && !(op.output as { ok: boolean }).ok ? (lastSeen.get(key) ?? null) : input.value);
      // Back off a little after a failure so a leaderless cluster is not hammered.
      if (op.result !== 'ok') await new Promise((r) => setTimeout(r, 20 + rng.int(0, 80)));
    }
  }

  /** Issues one operation against a node and records it. */
  async invoke(client: number, node: number, input: KvInput): Promise<RecordedOp> {
    const url = this.view.node(node).url;
    const start = this.now();
    let res;
    if (input.type === 'read') {
      const consistency = this.opts.staleReadsAsLinearizable ? 'stale' : (this.opts.readConsistency ?? 'linearizable');
      res = await call(url, 'POST', `/v1/groups/${GROUP}/read?consistency=${consistency}`, { op: 'get', key: input.key }, this.opts.timeoutMs);
    } else {
      const cmd = input.type === 'write' ? { op: 'set', key: input.key, value: input.value } : { op: 'cas', key: input.key, expect: input.expected, value: input.value };
      res = await call(url, 'POST', `/v1/groups/${GROUP}/propose`, cmd, this.opts.timeoutMs);
    }
    const end = this.now();
    const op: RecordedOp = { client, node, input, call: start, ret: end, result: 'info' };
    if (res.kind === 'refused') {
      op.result = 'fail';
      op.error = res.message;
    } else if (res.kind === 'lost') {
      op.error = res.message;
    } else if (res.status === 200) {
      const body = res.body as { result?: { value?: unknown; swapped?: unknown; ok?: unknown } };
      const r = body.result;
      if (input.type === 'read' && r && (typeof r.value === 'string' || r.value === null)) {
        op.result = 'ok';
        op.output = { value: r.value };
      } else if (input.type === 'write' && r?.ok === true) {
        op.result = 'ok';
        op.output = {};
      } else if (input.type === 'cas' && typeof r?.swapped === 'boolean') {
        op.result = 'ok';
        op.output = { ok: r.swapped };
      } else {
        op.error = `unexpected answer ${JSON.stringify(res.body).slice(0, 200)}`;
      }
    } else {
      const code = errorCode(res.body) ?? `HTTP_${res.status}`;
      const message = (res.body as { error?: { message?: unknown } } | null)?.error?.message;
      op.error = typeof message === 'string' ? `${code}: ${message}` : code;
      if (DEFINITELY_NOT_APPLIED.has(code) && !(code === 'NO_LEADER' && this.opts.trustNoLeader === false)) op.result = 'fail';
    }
    // A read that failed in any way had no effect: nothing to check.
    if (input.type === 'read' && op.result === 'info') op.result = 'fail';
    if (op.result === 'info') {
      op.ret = null;
      op.answeredAt = end;
    }
    this.history.push(op);
    return op;
  }
}

/** The history as the checker wants it: ok ops with their times, unknown writes with ret = Infinity. */
export function toCheckerHistory(ops: readonly RecordedOp[]): KvOp[] {
  const out: KvOp[] = [];
  for (const o of ops) {
    if (o.result === 'fail') continue;
    if (o.result === 'info') out.push({ client: o.client, input: o.input, call: o.call, ret: Infinity });
    else out.push({ client: o.client, input: o.input, call: o.call, ret: o.ret!, output: o.output! });
  }
  return out;
}
