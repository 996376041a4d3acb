// The host simulator: several real Hosts (daemon/host/host.ts), each driving many groups (the meta
// group included) over simulated ports, in virtual time from one seed:
// - a log store whose write and fsync are apart: a crash loses every write not yet synced;
// - a network of the event queue: delays, drops, partitions, snapshot streams that fail;
// - an application per node, reached through the real GroupApplier (daemon/statemachine), that
//   is slow, answers errors, crashes (losing what it had not synced) and restores snapshots;
// - clients of a key-value register per group, whose history must be linearizable.
// The host awaits promises; after every event the loop lets every promise job run to its end
// (one setImmediate) before the next event, so a run is a pure function of its seed.

import type { HostFaults } from '../../daemon/host/host.js';
import { META_GROUP } from '../../daemon/host/meta.js';
import { ConfChangeType, type RaftFaults } from '../../daemon/raft/types.js';
import { SimApp, SimLogStore } from './host-ports.js';
import { ELECTION_TICKS, HostWorld, TICK_MS, silent, type ScheduleTuning, type WorldNode } from './host-world.js';
import type { KvInput } from './linearizability.js';
import { Rng } from './rng.js';
import { simHostOptions } from './sim-host.js';

/** Deliberate bugs the host simulator must catch: in the host (HostFaults) ... */
export const HOST_LEVEL_FAULTS = ['sendBeforePersist', 'readDuringRestore', 'compactPastSnapshotSend', 'applyPastGap'] as const;
/** ... and in the core (RaftFaults), seen through the host. */
export const CORE_FAULTS = ['ackBeforePersist', 'voteWithoutLogCheck', 'readIndexWithoutQuorum', 'commitOldTermByCount'] as const;
export const HOST_FAULTS = [...HOST_LEVEL_FAULTS, ...CORE_FAULTS] as const;
export type HostSimFault = (typeof HOST_FAULTS)[number];

export interface HostSimOptions {
  seed: number;
  nodes: 3 | 5;
  /** Data groups (the meta group comes on top). */
  groups: number;
  fault?: HostSimFault;
  /** The schedule tuned for this fault, without the fault (does the correct host pass it?). */
  schedule?: HostSimFault;
}

export type HostProperty =
  | 'election-safety'
  | 'linearizability'
  | 'apply-order'
  | 'state-machine-safety'
  | 'snapshot-resend'
  | 'host-fatal'
  | 'host-exception'
  | 'liveness'
  | 'convergence';

export interface HostViolation {
  property: HostProperty;
  seed: number;
  nodes: number;
  groups: number;
  fault?: HostSimFault;
  time: number;
  detail: string;
  replay: string;
}

export interface HostSimResult {
  seed: number;
  nodes: number;
  groups: number;
  fault?: HostSimFault;
  steps: number;
  virtualMs: number;
  faults: Record<string, number>;
  ops: { ok: number; failed: number; indeterminate: number; reads: number };
  violation?: HostViolation;
}

export function hostReplayCommand(o: HostSimOptions): string {
  return `npm run sim -- --seed ${o.seed}${o.nodes === 5 ? ' --nodes 5' : ''} --groups ${o.groups}${o.fault ? ` --fault ${o.fault}` : ''}`;
}

/**
 * More snapshots than this to one replica of one group after the faults healed: the leader keeps
 * compacting past the snapshot in flight, so the follower never catches up by appends.
 */
const SNAPSHOT_RESEND_BOUND = 3;

interface Tuning extends ScheduleTuning {
  catchupEntries: number;
  /** Two machines at once (a rack's power): what neither had synced is gone from both. */
  doubleCrashWeight: number;
  appCrashWeight: number;
  membershipWeight: number;
  transferWeight: number;
  requestTimeoutMs: number;
  /** Extra time a snapshot stream takes. */
  snapshotMs: [number, number];
  /** Fraction of client ops aimed at group 1 (a hot group), the rest spread evenly. */
  hotGroup: number;
  /** Fraction of reads sent to a random node (not the leader the client knows). */
  followerReads: number;
  /** How long clients go on after the faults are healed. */
  healedLoadMs: number;
  /** Partitions cut off the hot group's leader (not a random node). */
  isolateLeader: boolean;
  /**
   * App crashes lose confirmed entries too (an app that breaks its durability promise, issue 18's
   * APPLY_GAP), and take the machine down with them (raftd restarts over an app behind its log).
   * Reads of such an app may be stale through no fault of raftd's: linearizability is not checked
   * then; apply order, convergence and the repair are.
   */
  appBreaksPromise: boolean;
}

function tune(rng: Rng, fault: HostSimFault | undefined): Tuning {
  const t: Tuning = {
    faultPhaseMs: 2500,
    settleMs: 5000,
    clients: rng.int(2, 5),
    faultEveryMs: [rng.int(20, 80), rng.int(100, 300)],
    dropRate: rng.chance(0.3) ? 0 : rng.float() * 0.1,
    delayMs: [1, rng.int(2, 20)],
    fsyncMs: [1, rng.int(1, 20)],
    appMs: [0, rng.int(1, 15)],
    appErrorRate: rng.chance(0.5) ? 0 : rng.float() * 0.2,
    appSync: rng.chance(0.7),
    snapshotInterval: rng.pick([5, 10, 30, 1000]),
    catchupEntries: rng.pick([0, 2, 10]),
    crashWeight: rng.int(1, 3),
    doubleCrashWeight: rng.int(0, 2),
    partitionWeight: rng.int(1, 3),
    pauseWeight: rng.int(0, 2),
    appCrashWeight: rng.int(0, 3),
    membershipWeight: rng.int(0, 2),
    transferWeight: rng.int(0, 2),
    downMs: [20, rng.int(50, 500)],
    requestTimeoutMs: rng.int(300, 1000),
    snapshotMs: [0, rng.int(1, 50)],
    hotGroup: rng.chance(0.3) ? rng.float() * 0.7 : 0,
    followerReads: rng.float(),
    healedLoadMs: 500,
    isolateLeader: false,
    appBreaksPromise: false,
  };
  switch (fault) {
    case 'sendBeforePersist':
    case 'ackBeforePersist':
      // Acks and votes lost with unsynced writes: machines crashing together while fsyncs are slow.
      t.crashWeight = 4;
      t.doubleCrashWeight = 6;
      t.fsyncMs = [5, 40];
      t.downMs = [10, 100];
      t.hotGroup = 0.6;
      break;
    case 'readDuringRestore':
      // Followers cut off long enough to need snapshots, restores that take a while, many reads.
      t.partitionWeight = 6;
      t.snapshotInterval = 5;
      t.catchupEntries = 0;
      t.appMs = [5, 30];
      t.hotGroup = 0.8;
      t.followerReads = 1;
      t.clients = 6;
      break;
    case 'readIndexWithoutQuorum':
      // A deposed leader must keep answering reads while a new one takes writes: cut off the hot
      // group's leader, keep reading through it, write through the others.
      t.partitionWeight = 8;
      t.hotGroup = 0.9;
      t.clients = 6;
      t.followerReads = 0;
      t.isolateLeader = true;
      break;
    case 'applyPastGap':
      t.appBreaksPromise = true;
      t.appSync = false;
      t.appCrashWeight = 6;
      t.snapshotInterval = 5;
      t.catchupEntries = 0;
      t.hotGroup = 0.8;
      break;
    case 'compactPastSnapshotSend':
      // Steady writes and small snapshot intervals: a follower behind keeps being sent snapshots.
      t.partitionWeight = 6;
      t.snapshotInterval = 5;
      t.catchupEntries = 0;
      t.snapshotMs = [30, 100];
      t.hotGroup = 0.9;
      t.clients = 6;
      t.healedLoadMs = 1500;
      break;
  }
  return t;
}

type SimNode = WorldNode;

/** Codes after which an operation surely did not take effect (a refused proposal; any failed read). */
const DEFINITE = new Set(['NOT_LEADER', 'NO_LEADER', 'OVERLOADED', 'PROPOSAL_DROPPED', 'LEADERSHIP_TRANSFER', 'GROUP_NOT_FOUND', 'CONFLICT', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE']);

export class HostSim extends HostWorld<HostProperty> {
  readonly t: Tuning;
  private readonly ids: number[];
  private readonly hint = new Map<number, number>();
  /** Members removed by the schedule, per group, to be added back. */
  private readonly removed = new Map<number, number>();
  /** (group, follower) -> snapshots sent (compactPastSnapshotSend's symptom). */
  private readonly snapshotsTo = new Map<string, number>();

  constructor(readonly opts: HostSimOptions) {
    super(new Rng(opts.seed * 2654435761 + opts.nodes * 97 + opts.groups * 7919 + (opts.fault ? HOST_FAULTS.indexOf(opts.fault) + 1 : 0)), DEFINITE);
    this.t = tune(this.rng, opts.fault ?? opts.schedule);
    this.ids = opts.nodes === 5 ? [1, 2, 3, 4, 5] : [1, 2, 3];
  }

  // ---------------------------------------------------------------- nodes

  protected override snapshotDelayMs(): number {
    return this.rng.int(...this.t.snapshotMs);
  }

  protected override snapshotArrived(group: number, to: number): void {
    // Counted once the network is healed: a follower brought back needs one snapshot, not a series.
    const key = `${group}:${to}`;
    if (this.healed) this.snapshotsTo.set(key, (this.snapshotsTo.get(key) ?? 0) + 1);
  }

  private start(id: number, store: SimLogStore, app: SimApp): SimNode {
    const faults: HostFaults | undefined = this.hostFaults();
    return this.launch(
      id,
      store,
      app,
      (random) =>
        simHostOptions(id, {
          ids: this.ids,
          groups: this.opts.groups,
          tickMs: TICK_MS,
          electionTicks: ELECTION_TICKS,
          requestTimeoutMs: this.t.requestTimeoutMs,
          snapshotInterval: this.t.snapshotInterval,
          catchupEntries: this.t.catchupEntries,
          random,
          logger: silent,
          ...(faults ? { faults } : {}),
        }),
      this.opts.fault === 'applyPastGap',
    );
  }

  private hostFaults(): HostFaults | undefined {
    const f = this.opts.fault;
    if (!f) return undefined;
    if ((CORE_FAULTS as readonly string[]).includes(f)) return { raft: { [f]: true } as RaftFaults };
    if (f === 'applyPastGap') return undefined; // a switch of the applier (makeApplier)
    return { [f]: true };
  }

  private crash(n: SimNode): void {
    if (!n.up) return;
    this.crashNode(n);
    const back = this.rng.int(...this.t.downMs);
    this.q.after(back, () => {
      if (this.nodes.get(n.id) === n) {
        this.start(n.id, n.store, n.app);
        this.count('restart');
      }
    });
  }

  // ---------------------------------------------------------------- the schedule

  protected faultKinds(): Array<[number, () => void]> {
    const t = this.t;
    return [
      [t.crashWeight, () => this.crashSome()],
      [t.doubleCrashWeight, () => this.crashTwo()],
      [t.partitionWeight, () => this.partition()],
      [t.pauseWeight, () => this.pause()],
      [t.appCrashWeight, () => this.appCrash()],
      [t.membershipWeight, () => this.membership()],
      [t.transferWeight, () => this.transfer()],
      [2, () => this.heal1()],
    ];
  }

  private crashSome(): void {
    const live = this.up();
    // Keep a quorum of machines running most of the time; sometimes not.
    if (live.length <= Math.floor(this.ids.length / 2) + (this.rng.chance(0.8) ? 1 : 0)) return;
    const n = this.rng.pick(live);
    this.crash(n);
  }

  private crashTwo(): void {
    const live = this.up();
    if (live.length < this.ids.length) return;
    const a = this.rng.pick(live);
    const b = this.rng.pick(live.filter((x) => x !== a));
    this.crash(a);
    this.crash(b);
    this.count('crash-two');
  }

  private partition(): void {
    const a = (this.t.isolateLeader ? this.leaderOf(1)?.id : undefined) ?? this.rng.pick(this.ids);
    const oneWay = this.cutOff(a, this.ids);
    this.count(oneWay ? 'partition-one-way' : 'partition');
  }

  private pause(): void {
    const n = this.rng.pick(this.up());
    if (n) this.pauseNode(n, this.t.downMs);
  }

  private heal1(): void {
    this.blocked.clear();
    this.count('net-heal');
  }

  private appCrash(): void {
    const n = this.nodes.get(this.rng.pick(this.ids))!;
    if (n.app.down) return;
    // Only one node's app breaks its promise (a minority: the others' apps can repair it).
    const breaks = this.t.appBreaksPromise && n.id === this.ids[0];
    n.app.crash(breaks);
    this.count(breaks ? 'app-crash-losing-confirmed' : 'app-crash');
    if (breaks && n.up) this.crash(n);
    this.q.after(this.rng.int(10, 400), () => {
      n.app.down = false;
      this.count('app-restart');
    });
  }

  /** Takes a member out of a group (the meta group included) through its leader, or puts one back. */
  private membership(): void {
    const group = this.rng.chance(0.3) ? META_GROUP : this.rng.int(1, this.opts.groups);
    const leader = this.leaderOf(group);
    if (!leader) return;
    const out = this.removed.get(group);
    const cc =
      out !== undefined
        ? { type: ConfChangeType.AddVoter, node: out, context: new Uint8Array(0) }
        : { type: ConfChangeType.RemoveNode, node: this.rng.pick(this.ids.filter((x) => x !== leader.id)), context: new Uint8Array(0) };
    leader.host.changeMembership(group, cc).then(
      () => {
        if (cc.type === ConfChangeType.RemoveNode) this.removed.set(group, cc.node);
        else this.removed.delete(group);
        this.count(`membership-${cc.type === ConfChangeType.RemoveNode ? 'remove' : 'add'}${group === META_GROUP ? '-meta' : ''}`);
      },
      () => this.count('membership-refused'),
    );
  }

  private transfer(): void {
    const group = this.rng.int(1, this.opts.groups);
    const leader = this.leaderOf(group);
    if (!leader) return;
    try {
      leader.host.transferLeadership(group, this.rng.pick(this.ids.filter((x) => x !== leader.id)));
      this.count('transfer');
    } catch {
      /* group not there yet */
    }
  }

  private leaderOf(group: number): SimNode | undefined {
    for (const n of this.up()) {
      const g = n.host.groups.get(group);
      if (g?.isLeader()) return n;
    }
    return undefined;
  }

  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    for (const n of this.nodes.values()) {
      n.clock.resume();
      if (!n.up) this.start(n.id, n.store, n.app), this.count('restart');
      n.app.down = false;
    }
    this.count('heal');
    // Put removed members back, retrying until it sticks.
    const readd = (): void => {
      for (const [group, node] of this.removed) {
        const leader = this.leaderOf(group);
        leader?.host.changeMembership(group, { type: ConfChangeType.AddVoter, node, context: new Uint8Array(0) }).then(
          () => this.removed.delete(group),
          () => undefined,
        );
      }
      if (this.removed.size > 0 && this.q.now < this.t0 + this.t.faultPhaseMs + this.t.settleMs) this.q.after(100, readd);
    };
    readd();
  }

  // ---------------------------------------------------------------- clients

  /** Not async itself: the operation's promise is ask's, settling on the same microtask as when it was written here. */
  protected op(c: number, forced?: { group: number; input: KvInput }): Promise<boolean> {
    const group = forced?.group ?? (this.rng.chance(this.t.hotGroup) ? 1 : this.rng.int(1, this.opts.groups));
    const input = this.randomInput(group, forced?.input);
    const hinted = input.type === 'read' && this.rng.chance(this.t.followerReads) ? undefined : this.hint.get(group);
    const n = hinted !== undefined && this.rng.chance(0.8) ? this.nodes.get(hinted)! : this.nodes.get(this.rng.pick(this.ids))!;
    if (!n.up) return Promise.resolve(false);
    return this.ask(c, n, group, input);
  }

  protected override opFailed(group: number, error: Error, code: string): void {
    if (code === 'NOT_LEADER' || code === 'NO_LEADER') {
      const leader = this.leaderOf(group);
      if (leader) this.hint.set(group, leader.id);
      else this.hint.delete(group);
    }
    this.count(`op-error-${code || error.message.slice(0, 40)}`);
  }

  protected override opSucceeded(group: number, n: SimNode): void {
    this.hint.set(group, n.id);
  }

  // ---------------------------------------------------------------- the run

  async run(): Promise<HostSimResult> {
    await this.guarded(async () => {
      for (const id of this.ids) this.start(id, new SimLogStore(this, () => this.nodes.get(id)!.clock), new SimApp(this, id));
      // Clients and faults start once every node has every group (the meta group created them).
      this.beginWhen(
        () => this.up().every((n) => n.host.bootstrapComplete()),
        3000,
        () => `the groups were not created within 3 s\n${this.dump()}`,
        () => this.q.now < this.t0 + this.t.faultPhaseMs + this.t.healedLoadMs,
        () => {
          this.q.at(this.t0 + this.t.faultPhaseMs, () => this.heal());
          this.q.at(this.t0 + this.t.faultPhaseMs + 600, () => void this.probe());
        },
      );
      let probed = false;
      this.probeDone = () => (probed = true);
      await this.runEvents(
        () => probed,
        () => (this.t0 >= 0 ? this.t0 + this.t.faultPhaseMs + this.t.settleMs : Infinity),
        () => this.violation('liveness', `the cluster did not serve every group within ${this.t.settleMs} ms of healing\n${this.dump()}`),
      );
      if (!this.failure && !this.t.appBreaksPromise) this.checkHistory();
      if (!this.failure) this.checkSnapshotResends();
      this.counts['max-snapshots-to-one'] = Math.max(0, ...this.snapshotsTo.values());
    });
    return this.result();
  }

  private probeDone: () => void = () => undefined;

  /** After healing: a write and a read in every group must succeed, and the apps must agree. */
  private async probe(): Promise<void> {
    await this.probeGroups(this.opts.groups);
    // Every member's app reaches the same state: the leader's commit index.
    for (let round = 0; !this.failure; round++) {
      const behind = this.behind();
      if (!behind) break;
      if (round > 200) {
        this.violation('convergence', `${behind}\n${this.dump()}`);
        break;
      }
      await new Promise<void>((r) => this.q.after(20, r));
    }
    this.probeDone();
  }

  /** Why the apps of some group disagree (undefined when none does). */
  private behind(): string | undefined {
    for (let group = 1; group <= this.opts.groups; group++) {
      const leader = this.leaderOf(group);
      if (!leader) return `group ${group} has no leader`;
      const st = leader.host.groupStatus(group);
      for (const id of st.confState.voters) {
        const n = this.nodes.get(id)!;
        const s = n.app.groups.get(group);
        if (!s || s.applied < st.commit) return `group ${group}: node ${id}'s app at ${s?.applied ?? 0}, commit ${st.commit}`;
      }
      const states = st.confState.voters.map((id) => JSON.stringify([...(this.nodes.get(id)!.app.groups.get(group)?.kv ?? [])].sort()));
      if (new Set(states).size > 1) {
        const s0 = this.nodes.get(st.confState.voters[0]!)!.app.groups.get(group)!;
        const same = st.confState.voters.every((id) => this.nodes.get(id)!.app.groups.get(group)!.applied === s0.applied);
        if (same) {
          this.violation('state-machine-safety', `group ${group}: apps at the same index hold different states: ${states.join(' | ')}`);
          return undefined;
        }
        return `group ${group}: apps still differ`;
      }
    }
    return undefined;
  }

  /** A follower sent snapshot after snapshot of one group: the log was compacted past the one in flight. */
  private checkSnapshotResends(): void {
    for (const [key, count] of this.snapshotsTo) {
      if (count > SNAPSHOT_RESEND_BOUND) this.violation('snapshot-resend', `group:node ${key} was sent ${count} snapshots after the faults healed`);
    }
  }

  private dump(): string {
    const lines: string[] = [];
    for (const n of this.nodes.values()) {
      if (!n.up) {
        lines.push(`  node ${n.id}: down`);
        continue;
      }
      const gs: string[] = [];
      for (const [id, g] of n.host.groups) {
        const st = g.status();
        const ap = n.host.applierState(id);
        const applier = ap ? `/h${g.handedToApp}ap${ap.applied}${ap.missing ? `gap${ap.missing.lo}-${ap.missing.hi}` : ''}${ap.failing ? `fail${ap.failing}` : ''}` : '/noapplier';
        gs.push(`${id}:${['F', 'C', 'P', 'L'][st.role]}t${st.term}c${st.commit}a${n.app.groups.get(id)?.applied ?? '-'}${g.repairThrough ? `r${g.repairThrough}` : ''}${id === META_GROUP ? '' : applier} `);
      }
      lines.push(`  node ${n.id}: app ${n.app.down ? 'down' : 'up'} ${gs.join(' ')}`);
    }
    return lines.join('\n');
  }

  private result(): HostSimResult {
    const o = this.opts;
    const r: HostSimResult = { seed: o.seed, nodes: o.nodes, groups: o.groups, steps: this.steps, virtualMs: this.q.now, faults: this.counts, ops: this.ops };
    if (o.fault) r.fault = o.fault;
    if (this.failure) {
      r.violation = {
        property: this.failure.property,
        seed: o.seed,
        nodes: o.nodes,
        groups: o.groups,
        time: this.q.now,
        detail: this.failure.message,
        replay: hostReplayCommand(o),
      };
      if (o.fault) r.violation.fault = o.fault;
    }
    return r;
  }
}

export function runHostSeed(opts: HostSimOptions): Promise<HostSimResult> {
  return new HostSim(opts).run();
}
