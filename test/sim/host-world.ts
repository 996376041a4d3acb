// The world both host-level simulators (host-sim.ts, placement-sim.ts) share: the event queue and
// the seeded random source, the effects the simulated ports ask for (host-ports.ts's SimWorld), the
// network between the Hosts, starting and crashing a node, the clients' operations and history, and
// the checks every run makes (one leader per term, one entry per index, a linearizable history).
// What differs between the two (their tuning, schedule, scenarios and extra checks) stays in them.

import pino from 'pino';
import { Host, type HostOptions } from '../../daemon/host/host.js';
import type { ApplierFactory, GroupMessage, SnapshotHeader, TransportPort } from '../../daemon/host/ports.js';
import type { EntryOutcome } from '../../daemon/host/group.js';
import { GroupApplier } from '../../daemon/statemachine/applier.js';
import { AppError } from '../../daemon/statemachine/errors.js';
import type { AppEntry } from '../../daemon/statemachine/types.js';
import { RaftdError } from '../../daemon/errors.js';
import { Role } from '../../daemon/raft/types.js';
import { EventQueue } from './eventqueue.js';
import { SimClock, type KvCommand, type SimApp, type SimLogStore, type SimWorld } from './host-ports.js';
import { checkLinearizability, describeFailure, kvModel, type KvInput, type KvOp, type KvOutput } from './linearizability.js';
import type { Rng } from './rng.js';
import type { SimHostNode } from './sim-host.js';

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;
export const silent = pino({ level: 'silent' });
const enc = new TextEncoder();
const dec = new TextDecoder();

/** The properties every host-level simulator checks; each adds its own. */
export type WorldProperty = 'election-safety' | 'state-machine-safety' | 'apply-order' | 'linearizability' | 'liveness' | 'host-fatal' | 'host-exception';

export class Violation<P extends string> extends Error {
  constructor(
    readonly property: P,
    detail: string,
  ) {
    super(detail);
  }
}

/** What the shared world reads of a simulator's tuning. */
export interface WorldTuning {
  /** A log store's write and fsync. */
  fsyncMs: [number, number];
  /** An app call. */
  appMs: [number, number];
  appSync: boolean;
  /** Fraction of app calls answered with an error while the faults last (0: none, no draw). */
  appErrorRate: number;
  /** Fraction of messages lost while the faults last. */
  dropRate: number;
  /** A message's (and a snapshot stream's) time on the network. */
  delayMs: [number, number];
}

/** A run's shape, drawn from its seed: how long the faults last, which come how often, how many clients. */
export interface ScheduleTuning extends WorldTuning {
  /** Faults are injected this long after the clients start; then everything is healed. */
  faultPhaseMs: number;
  /** After healing, the run must finish (settle, serve every group) within this long. */
  settleMs: number;
  clients: number;
  /** Time between fault events. */
  faultEveryMs: [number, number];
  snapshotInterval: number;
  /** Weights of the fault kinds. */
  crashWeight: number;
  partitionWeight: number;
  pauseWeight: number;
  /** How long a crashed machine stays down, a paused one stopped. */
  downMs: [number, number];
}

export interface WorldNode extends SimHostNode {
  /** Client ops waiting on this node's host: a crash leaves their outcome unknown. */
  waiting: Set<() => void>;
  /** Snapshot streams this node is receiving: a crash breaks them. */
  receiving: Set<(e: Error) => void>;
}

export abstract class HostWorld<P extends string> implements SimWorld {
  abstract readonly t: ScheduleTuning;
  protected readonly q = new EventQueue();
  protected readonly nodes = new Map<number, WorldNode>();
  protected steps = 0;
  protected readonly counts: Record<string, number> = {};
  /** `from-to` links the network drops. */
  protected readonly blocked = new Set<string>();
  protected healed = false;
  /** When clients and faults began (-1: not yet). */
  protected t0 = -1;
  protected failure: Violation<P> | undefined;
  protected readonly history: KvOp[] = [];
  protected readonly ops = { ok: 0, failed: 0, indeterminate: 0, reads: 0 };
  private valueSeq = 0;
  /** group -> index -> the entry (term:bytes) as first applied anywhere, and where. */
  private readonly appliedAt = new Map<number, Map<number, { data: string; node: number }>>();
  /** `group:term` -> the node seen leading it. */
  private readonly leaders = new Map<string, number>();

  constructor(
    protected readonly rng: Rng,
    /** Error codes after which an operation surely did not take effect (a refused proposal; any failed read). */
    private readonly definite: ReadonlySet<string>,
  ) {}

  // ---------------------------------------------------------------- effects the ports ask for

  count(kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
  }

  violation(property: P | WorldProperty, detail: string): void {
    this.failure ??= new Violation(property as P, `t=${this.q.now}ms: ${detail}`);
  }

  storeIo(store: SimLogStore, delay: [number, number], done: () => void): Promise<void> {
    const clock = store.clock();
    return new Promise((resolve) => {
      // Through the process's clock: never if the machine crashes first, later if it is paused.
      clock.after(this.rng.int(...delay), () => {
        done();
        resolve();
      });
    });
  }

  appLatency(): Promise<void> {
    return new Promise((resolve) => this.q.after(this.rng.int(...this.t.appMs), resolve));
  }

  appFails(): boolean {
    return !this.healed && this.t.appErrorRate > 0 && this.rng.chance(this.t.appErrorRate);
  }

  noteApplied(node: number, group: number, e: AppEntry): void {
    let m = this.appliedAt.get(group);
    if (!m) this.appliedAt.set(group, (m = new Map()));
    const data = `${e.term}:${dec.decode(e.data)}`;
    const seen = m.get(e.index);
    if (seen === undefined) m.set(e.index, { data, node });
    else if (seen.data !== data) this.violation('state-machine-safety', `group ${group} index ${e.index}: node ${node} applied ${data}, node ${seen.node} applied ${seen.data}`);
  }

  // ---------------------------------------------------------------- the network

  /** The messages of a send that reach the network at all (default: all; undefined: none, not even a draw). */
  protected outgoing(_to: number, msgs: GroupMessage[]): GroupMessage[] | undefined {
    return msgs;
  }

  /** Extra time a snapshot stream takes, on top of a message's delay (default: none, no draw). */
  protected snapshotDelayMs(): number {
    return 0;
  }

  /** A snapshot of `group` reached `to` (before it is handed over). */
  protected snapshotArrived(_group: number, _to: number): void {}

  protected transport(from: number): TransportPort {
    return {
      send: (to: number, msgs: GroupMessage[]) => {
        const sent = this.outgoing(to, msgs);
        if (!sent) return;
        msgs = sent;
        if (this.blocked.has(`${from}-${to}`) || (!this.healed && this.rng.chance(this.t.dropRate))) {
          this.count('drop');
          return;
        }
        this.q.after(this.rng.int(...this.t.delayMs), () => {
          const n = this.nodes.get(to);
          if (!n?.up || this.blocked.has(`${from}-${to}`)) return;
          n.clock.run(() => n.host.onMessages(from, msgs));
        });
      },
      sendSnapshot: async (to: number, header: SnapshotHeader, data: AsyncIterable<Uint8Array>) => {
        const parts: Uint8Array[] = [];
        for await (const c of data) parts.push(c);
        await new Promise<void>((r) => this.q.after(this.rng.int(...this.t.delayMs) + this.snapshotDelayMs(), r));
        const n = this.nodes.get(to);
        if (!n?.up || this.blocked.has(`${from}-${to}`)) throw new Error(`snapshot to ${to}: unreachable`);
        this.snapshotArrived(header.group, to);
        this.count('snapshot-sent');
        const bytes = Buffer.concat(parts);
        async function* stream(): AsyncIterable<Uint8Array> {
          yield bytes;
        }
        await new Promise<void>((resolve, reject) => {
          n.receiving.add(reject);
          n.clock.run(() => void n.host.onSnapshot(header, stream()).then(resolve, reject).finally(() => n.receiving.delete(reject)));
        });
      },
      setPeer: () => undefined,
      removePeer: () => undefined,
    };
  }

  /** Cuts node `a` off from the others (both ways, or 30% of the time only its sends); whether one way. */
  protected cutOff(a: number, ids: readonly number[]): boolean {
    this.blocked.clear();
    const oneWay = this.rng.chance(0.3);
    for (const b of ids) {
      if (b === a) continue;
      this.blocked.add(`${a}-${b}`);
      if (!oneWay) this.blocked.add(`${b}-${a}`);
    }
    return oneWay;
  }

  // ---------------------------------------------------------------- nodes

  protected up(): WorldNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  /** Starts node `id`'s Host (a new process over its store and app); `hostOptions` gets the Host's random source. */
  protected launch(id: number, store: SimLogStore, app: SimApp, hostOptions: (random: () => number) => HostOptions, unsafeApplyPastGap = false): WorldNode {
    const clock = new SimClock(this.q);
    const sync = this.t.appSync;
    const makeApplier: ApplierFactory = (group, onApplied, refetch, lazy, onGap) =>
      new GroupApplier(group, app, {
        onApplied,
        sync,
        refetch,
        lazy,
        onGap,
        lingerMs: 5,
        clock,
        random: () => this.rng.float(),
        ...(unsafeApplyPastGap ? { unsafeApplyPastGap: true } : {}),
      });
    const r = this.rng.fork();
    const host = new Host(hostOptions(() => r.float()), {
      store,
      transport: this.transport(id),
      app,
      makeApplier,
      clock,
      fatal: (err) => this.violation('host-fatal', `node ${id}: the host stopped: ${String(err)}`),
    });
    const n: WorldNode = { id, up: true, clock, host, store, app, waiting: new Set(), receiving: new Set() };
    this.nodes.set(id, n);
    host.start().catch((e) => this.violation('host-exception', `node ${id} start: ${String(e)}`));
    return n;
  }

  /** The machine dies: unsynced writes are lost, the calls on it have unknown outcomes, its incoming snapshots break. */
  protected crashNode(n: WorldNode): void {
    n.up = false;
    n.clock.dead = true;
    if (n.store.crash() > 0) this.count('lost-unsynced-writes');
    for (const w of [...n.waiting]) w();
    n.waiting.clear();
    for (const r of [...n.receiving]) r(new Error('receiver crashed'));
    n.receiving.clear();
    this.count('crash');
  }

  /** SIGSTOP for a while: the process keeps its state, its peers give up on it, then it goes on. */
  protected pauseNode(n: WorldNode, downMs: [number, number]): void {
    if (n.clock.isPaused) return;
    n.clock.pause();
    this.count('pause');
    const clock = n.clock;
    this.q.after(this.rng.int(...downMs), () => clock.resume());
  }

  // ---------------------------------------------------------------- the schedule

  /**
   * Once `ready()` (looked at every 20 ms; a liveness violation, `notReady()`, past `withinMs`): the
   * clients start (each while `going()`), then the fault schedule, then `then()`; from the start,
   * the leaders are sampled every tick.
   */
  protected beginWhen(ready: () => boolean, withinMs: number, notReady: () => string, going: () => boolean, then: () => void): void {
    const begin = (): void => {
      if (!ready()) {
        if (this.q.now > withinMs) this.violation('liveness', notReady());
        else this.q.after(20, begin);
        return;
      }
      this.t0 = this.q.now;
      for (let c = 1; c <= this.t.clients; c++) this.q.after(this.rng.int(0, 50), () => void this.client(c, going));
      this.q.after(this.rng.int(...this.t.faultEveryMs), () => this.faultEvent());
      then();
    };
    this.q.after(20, begin);
    this.q.after(TICK_MS, () => this.sampleLeaders());
  }

  /** The fault kinds of this simulator and their weights. */
  protected abstract faultKinds(): Array<[number, () => void]>;

  /** Until healed: one fault, drawn by weight, every faultEveryMs. */
  protected faultEvent(): void {
    if (this.healed) return;
    this.q.after(this.rng.int(...this.t.faultEveryMs), () => this.faultEvent());
    this.pickWeighted(this.faultKinds());
  }

  /** One of the kinds, drawn by weight. */
  protected pickWeighted(kinds: Array<[number, () => void]>): void {
    const total = kinds.reduce((a, [w]) => a + w, 0);
    let x = this.rng.float() * total;
    for (const [w, f] of kinds) if ((x -= w) < 0) return f();
  }

  // ---------------------------------------------------------------- checks

  /** Every tick: no two nodes lead one group in one term (the core's own role: the host's copy lags by a Ready). */
  protected sampleLeaders(): void {
    for (const n of this.up()) {
      for (const [group, g] of n.host.groups) {
        const st = g.status();
        if (st.role !== Role.Leader) continue;
        const key = `${group}:${st.term}`;
        const prev = this.leaders.get(key);
        if (prev === undefined) this.leaders.set(key, n.id);
        else if (prev !== n.id) this.violation('election-safety', `group ${group}: nodes ${prev} and ${n.id} both lead term ${st.term}`);
      }
    }
    this.q.after(TICK_MS, () => this.sampleLeaders());
  }

  protected checkHistory(): void {
    const res = checkLinearizability(kvModel, this.history, { maxStepsPerPartition: 2_000_000 });
    if (res.verdict === 'illegal') this.violation('linearizability', describeFailure(res));
  }

  /**
   * Runs events until `done()` (or a violation, or no event left); an event later than `deadline()`
   * ends the run through `late()`. After every event, every promise job it started runs to its end
   * (one setImmediate) before the next: a run is a pure function of its seed.
   */
  protected async runEvents(done: () => boolean, deadline: () => number, late: () => void, afterEach: () => void = () => undefined): Promise<void> {
    while (!this.failure && !done()) {
      const ev = this.q.pop();
      if (!ev) break;
      if (ev.time > deadline()) {
        late();
        break;
      }
      this.steps++;
      ev.run();
      await new Promise<void>((r) => setImmediate(r));
      afterEach();
    }
  }

  /** Runs `body` with unhandled rejections reported as violations; the nodes' clocks die after it. */
  protected async guarded(body: () => Promise<void>): Promise<void> {
    const onUnhandled = (e: unknown): void => this.violation('host-exception', `unhandled rejection: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.on('unhandledRejection', onUnhandled);
    try {
      await body();
    } catch (e) {
      this.violation('host-exception', e instanceof Error ? e.stack ?? e.message : String(e));
    } finally {
      process.off('unhandledRejection', onUnhandled);
      for (const n of this.nodes.values()) n.clock.dead = true;
    }
  }

  // ---------------------------------------------------------------- clients

  /** A random read, write or compare-and-set on one of group's two keys; values carry `padding`. */
  protected randomInput(group: number, forced: KvInput | undefined, padding = ''): KvInput {
    const key = `g${group}:${this.rng.pick(['x', 'y'])}`;
    if (forced) return forced;
    const r = this.rng.float();
    const value = `v${++this.valueSeq}${padding}`;
    return r < 0.4 ? { type: 'read', key } : r < 0.8 ? { type: 'write', key, value } : { type: 'cas', key, expected: this.rng.chance(0.5) ? null : `v${this.rng.int(1, this.valueSeq)}`, value };
  }

  /** One client operation: a random one, or `forced`; whether it succeeded. */
  protected abstract op(c: number, forced?: { group: number; input: KvInput }): Promise<boolean>;

  /** Client `c`: operations one after another, 0-20 ms apart, while `going()`. */
  protected async client(c: number, going: () => boolean): Promise<void> {
    while (going() && !this.failure) {
      await this.op(c);
      await new Promise<void>((r) => this.q.after(this.rng.int(0, 20), r));
    }
  }

  /** After healing: a write and then a read of every data group, each retried until it succeeds. */
  protected async probeGroups(groups: number, padding: (group: number) => string = () => ''): Promise<void> {
    for (let group = 1; group <= groups && !this.failure; group++) {
      for (const input of [{ type: 'write', key: `g${group}:x`, value: `probe${group}${padding(group)}` }, { type: 'read', key: `g${group}:x` }] as KvInput[]) {
        while (!this.failure && !(await this.op(0, { group, input }))) await new Promise<void>((r) => this.q.after(20, r));
      }
    }
  }

  /** An operation's error (default: counted by its code). */
  protected opFailed(_group: number, _error: Error, code: string): void {
    this.count(`op-error-${code || 'other'}`);
  }

  /** An operation on node n succeeded (default: nothing more to note). */
  protected opSucceeded(_group: number, _n: WorldNode): void {}

  /** Client `c`'s operation on node n's host, recorded in the history; whether it succeeded. */
  protected async ask(c: number, n: WorldNode, group: number, input: KvInput): Promise<boolean> {
    const call = this.q.now;
    let giveUp!: () => void;
    const lost = new Promise<'lost'>((r) => (giveUp = () => r('lost')));
    n.waiting.add(giveUp);
    const attempt = (async (): Promise<{ output?: KvOutput; error?: RaftdError | Error }> => {
      try {
        if (input.type === 'read') {
          const consistency = this.rng.chance(0.3) ? 'lease' : 'linearizable';
          const out = (await n.host.read(group, { key: input.key }, consistency)) as { value: string | null };
          return { output: { value: out.value } };
        }
        const cmd: KvCommand = input.type === 'write' ? { t: 'w', k: input.key, v: input.value } : { t: 'c', k: input.key, v: input.value, e: input.expected };
        const [res] = await n.host.proposeAll(group, [enc.encode(JSON.stringify(cmd))]);
        if (res instanceof RaftdError) return { error: res };
        const outcome = res as EntryOutcome;
        if (!outcome.ok) return { error: new RaftdError('PROPOSAL_DROPPED', 'entry failed') };
        return { output: outcome.result as KvOutput };
      } catch (e) {
        return { error: e as Error };
      }
    })();
    const r = await Promise.race([attempt, lost]);
    n.waiting.delete(giveUp);
    if (r === 'lost') {
      if (input.type !== 'read') this.history.push({ client: c, input, call, ret: Infinity }), this.ops.indeterminate++;
      return false;
    }
    if (r.error) {
      const code = (r.error as { code?: string }).code ?? '';
      this.opFailed(group, r.error, code);
      if (input.type === 'read' || this.definite.has(code) || r.error instanceof AppError) this.ops.failed++;
      else this.history.push({ client: c, input, call, ret: Infinity }), this.ops.indeterminate++;
      return false;
    }
    this.opSucceeded(group, n);
    this.history.push({ client: c, input, call, ret: this.q.now, output: r.output! });
    if (input.type === 'read') this.ops.reads++;
    else this.ops.ok++;
    return true;
  }
}
