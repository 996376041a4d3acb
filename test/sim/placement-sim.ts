// The placement simulator (issue 21): real Hosts (daemon/host) with a replication factor below the
// node count, the meta group carrying the placement records, and on every node the real Rebalancer
// (daemon/placement/rebalancer.ts, its steps decided by move-step.ts) over the same host port raftd
// uses (placement/host-port.ts) — only the way it reaches other nodes is the simulated network
// instead of HTTP. One seed picks a placement event (a node joins, a node is decommissioned, a node
// dies and its replicas are re-created elsewhere, a node dies and comes back), runs it under crashes,
// partitions, pauses and message loss, and checks after every event:
// - per group: one leader per term (election-safety), the same entry at an index everywhere
//   (state-machine-safety), no entry handed to an app past a gap (apply-order);
// - voter-log-kept: a node never drops its replica of a group while it is a voter of the group's
//   newest configuration (a replica dropped after it was given back);
// - placement-agreement: nodes that applied the meta log through the same index hold the same
//   placement (members, moves, node states);
// and once the faults are healed: placement-settled (every group has R voters on distinct active
// nodes, no move running, nothing left to plan, its voters are the recorded members), then a write
// and a read succeed in every group, and the clients' history is linearizable (no acknowledged write
// lost across moves).

import type { Host } from '../../daemon/host/host.js';
import { META_GROUP } from '../../daemon/host/meta.js';
import type { GroupMessage } from '../../daemon/host/ports.js';
import { RaftdError } from '../../daemon/errors.js';
import { Rebalancer, REBALANCER_DEFAULTS, type RebalancerOptions } from '../../daemon/placement/rebalancer.js';
import { changeMemberOnLeader, hostRebalancerPort, viewThroughMembers, type RemoteOps, type ReplicaReport } from '../../daemon/placement/host-port.js';
import { effectiveReplicationFactor, planMoves } from '../../daemon/placement/placement.js';
import { currentPlacement, placementNodes } from '../../daemon/placement/view.js';
import { SimApp, SimLogStore } from './host-ports.js';
import { ELECTION_TICKS, HostWorld, TICK_MS, silent, type ScheduleTuning, type WorldNode } from './host-world.js';
import type { KvInput } from './linearizability.js';
import { Rng } from './rng.js';
import { simHostOptions } from './sim-host.js';

/** Deliberate bugs the placement simulator must catch (move-step.ts's MoveStepFaults). */
export const PLACEMENT_FAULTS = ['addBeforeMetaApplied'] as const;
export type PlacementSimFault = (typeof PLACEMENT_FAULTS)[number];

export const PLACEMENT_SCENARIOS = ['join', 'decommission', 'dead', 'dead-back'] as const;
export type PlacementScenario = (typeof PLACEMENT_SCENARIOS)[number];

export interface PlacementSimOptions {
  seed: number;
  /** Data groups. */
  groups: number;
  fault?: PlacementSimFault;
  /** The schedule tuned for this fault, without the fault (does the correct rebalancer pass it?). */
  schedule?: PlacementSimFault;
  /** Force one scenario (default: the seed picks). */
  scenario?: PlacementScenario;
  /** Feed the planner each group's bytes (the apps' sizes), so that it evens bytes per node too. */
  bytes?: boolean;
}

export type PlacementProperty =
  | 'election-safety'
  | 'state-machine-safety'
  | 'apply-order'
  | 'voter-log-kept'
  | 'placement-agreement'
  | 'placement-settled'
  | 'linearizability'
  | 'liveness'
  | 'host-fatal'
  | 'host-exception';

export interface PlacementViolation {
  property: PlacementProperty;
  seed: number;
  detail: string;
  replay: string;
}

export interface PlacementSimResult {
  seed: number;
  groups: number;
  scenario: PlacementScenario;
  fault?: PlacementSimFault;
  steps: number;
  virtualMs: number;
  counts: Record<string, number>;
  ops: { ok: number; failed: number; indeterminate: number; reads: number };
  /** Once settled: groups and bytes per active node. */
  perNode?: Array<{ node: number; groups: number; bytes: number }>;
  violation?: PlacementViolation;
}

export function placementReplayCommand(o: PlacementSimOptions): string {
  return `npm run sim -- --placement --seed ${o.seed} --groups ${o.groups}${o.scenario ? ` --scenario ${o.scenario}` : ''}${o.bytes ? ' --bytes' : ''}${o.fault ? ` --fault ${o.fault}` : ''}${o.schedule && !o.fault ? ` --schedule ${o.schedule}` : ''}`;
}

const REPLICATION = 3;
/** Nodes at the start; one more (FOUNDERS + 1) joins in the 'join' scenario. */
const FOUNDERS = 4;
const DEAD_AFTER_MS = 700;
const ROUND_MS = 40;
/** raftd's calls between nodes give up after this long (placement-routes.ts: 3 s). */
const RPC_TIMEOUT_MS = 3000;
const DEFINITE = new Set(['NOT_LEADER', 'NO_LEADER', 'OVERLOADED', 'PROPOSAL_DROPPED', 'LEADERSHIP_TRANSFER', 'CONFLICT', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE']);

interface Tuning extends ScheduleTuning {
  /** When the scenario's event happens, after the clients start. */
  eventAtMs: number;
  /** dead-back: how long the dead node stays away (past DEAD_AFTER_MS: its replicas have moved). */
  awayMs: number;
  /** dead-back: for this long after its return, the meta group's messages to the node are lost (its meta log lags). */
  metaBlackoutMs: number;
}

function tune(rng: Rng, fault: PlacementSimFault | undefined): Tuning {
  const t: Tuning = {
    faultPhaseMs: 2500,
    settleMs: 12_000,
    clients: rng.int(2, 4),
    faultEveryMs: [rng.int(40, 120), rng.int(150, 400)],
    dropRate: rng.chance(0.4) ? 0 : rng.float() * 0.05,
    delayMs: [1, rng.int(2, 10)],
    fsyncMs: [1, rng.int(1, 10)],
    appMs: [0, rng.int(1, 8)],
    snapshotInterval: rng.pick([5, 20, 1000]),
    crashWeight: rng.int(0, 3),
    partitionWeight: rng.int(0, 3),
    pauseWeight: rng.int(0, 1),
    downMs: [20, rng.int(50, 400)],
    eventAtMs: rng.int(100, 900),
    awayMs: DEAD_AFTER_MS + rng.int(300, 1500),
    metaBlackoutMs: rng.chance(0.4) ? rng.int(100, 1000) : 0,
    // The apps always sync and never answer errors here.
    appSync: true,
    appErrorRate: 0,
  };
  if (fault === 'addBeforeMetaApplied') {
    // A node that comes back holding stale replicas the moves took off it, and is given some back
    // while its meta log is still behind: a short time away, a slow meta catch-up.
    t.awayMs = DEAD_AFTER_MS + rng.int(200, 600);
    t.snapshotInterval = 1000;
    t.metaBlackoutMs = rng.int(500, 1500);
  }
  return t;
}

type SimNode = WorldNode;

export class PlacementSim extends HostWorld<PlacementProperty> {
  readonly t: Tuning;
  /** Nodes that exist (founders, and the joiner once it joined). */
  private ids: number[] = [];
  readonly scenario: PlacementScenario;
  /** Each node's rebalancer (of its current process). */
  private readonly rebalancers = new Map<number, Rebalancer>();
  /** group -> the newest configuration seen on any replica (by applied index). */
  private readonly newestConf = new Map<number, { applied: number; voters: number[] }>();
  /** meta index -> the placement fingerprint the first node to apply through it held. */
  private readonly placementAt = new Map<number, { fp: string; node: number }>();
  /** A node kept down on purpose (dead / dead-back); not restarted by the fault schedule or heal. */
  private keptDown: number | undefined;
  /** The meta group's messages to this node are lost until then (dead-back's lagging meta log). */
  private metaCut: { node: number; until: number } | undefined;
  private done = false;
  /** The scenario's event (and, for dead-back, the return) has happened. */
  private scenarioDone = false;

  constructor(readonly opts: PlacementSimOptions) {
    const tuned = opts.fault ?? opts.schedule;
    super(new Rng(opts.seed * 2654435761 + opts.groups * 7919 + 4099 + (tuned ? PLACEMENT_FAULTS.indexOf(tuned) + 1 : 0) + (opts.bytes ? 31 : 0)), DEFINITE);
    this.scenario = opts.scenario ?? (tuned === 'addBeforeMetaApplied' ? 'dead-back' : this.rng.pick(PLACEMENT_SCENARIOS));
    this.t = tune(this.rng, tuned);
  }

  // ---------------------------------------------------------------- nodes

  private reachable(a: number, b: number): boolean {
    const na = this.nodes.get(a);
    const nb = this.nodes.get(b);
    if (!na?.up || !nb?.up || na.clock.isPaused || nb.clock.isPaused) return false;
    return a === b || (!this.blocked.has(`${a}-${b}`) && !this.blocked.has(`${b}-${a}`));
  }

  protected override outgoing(to: number, msgs: GroupMessage[]): GroupMessage[] | undefined {
    if (to !== this.metaCut?.node || this.q.now >= this.metaCut.until) return msgs;
    const kept = msgs.filter((m) => m.group !== META_GROUP);
    if (kept.length < msgs.length) this.count('meta-message-lost');
    return kept.length === 0 ? undefined : kept;
  }

  /** The log store, checking every drop of a replica against the group's newest configuration. */
  private newStore(id: number): SimLogStore {
    const store = new SimLogStore(this, () => this.nodes.get(id)!.clock);
    const drop = store.deleteGroup.bind(store);
    store.deleteGroup = async (group: number): Promise<void> => {
      if (group !== META_GROUP) {
        this.noteConfs(group);
        const c = this.newestConf.get(group);
        if (c && c.voters.includes(id)) this.violation('voter-log-kept', `node ${id} dropped its replica of group ${group} while a voter of its newest configuration [${c.voters.join(', ')}] (applied ${c.applied})`);
        this.count('replica-dropped');
      }
      return drop(group);
    };
    return store;
  }

  private start(id: number, store: SimLogStore, app: SimApp, joined: boolean): SimNode {
    const n = this.launch(id, store, app, (random) => {
      const base = simHostOptions(id, {
        ids: this.ids,
        groups: this.opts.groups,
        tickMs: TICK_MS,
        electionTicks: ELECTION_TICKS,
        requestTimeoutMs: 600,
        snapshotInterval: this.t.snapshotInterval,
        catchupEntries: 2,
        random,
        logger: silent,
      });
      // Placement: R replicas per group; a joined node founds nothing (the rebalancer adds it to the meta group).
      return { ...base, replicationFactor: REPLICATION, ...(joined ? { joined: true, bootstrapGroups: 0 } : {}) };
    });
    this.startRebalancer(n);
    return n;
  }

  /** The real rebalancer of this process, in auto mode, over the host port raftd uses. */
  private startRebalancer(n: SimNode): void {
    const opts: RebalancerOptions = {
      ...REBALANCER_DEFAULTS,
      mode: 'auto',
      replicationFactor: REPLICATION,
      maxConcurrentMoves: 2,
      deadNodeTimeoutMs: DEAD_AFTER_MS,
      catchUpSlack: 4,
      maxFailures: 40,
      bytesFloor: 0,
      ...(this.opts.fault ? { faults: { [this.opts.fault]: true } } : {}),
    };
    const port = hostRebalancerPort(n.host, this.remote(n), { tickMs: TICK_MS, now: () => this.q.now, startedAt: this.q.now });
    const rb = new Rebalancer(port, opts, { warn: () => this.count('move-given-up-log'), info: () => undefined });
    this.rebalancers.set(n.id, rb);
    n.clock.every(ROUND_MS, () => void rb.round());
  }

  /** A request from `from` to `to` and its answer: a network delay each way; unreachable: an error. */
  private async rpc<T>(from: SimNode, to: number, fn: (n: SimNode) => Promise<T> | T): Promise<T> {
    await new Promise<void>((r) => this.q.after(this.rng.int(...this.t.delayMs), r));
    const n = this.nodes.get(to);
    if (!n || !this.reachable(from.id, to)) throw new RaftdError('TIMEOUT', `node ${to} unreachable from ${from.id}`);
    // Like raftd's HTTP calls: an error when the other end dies, and a deadline (a paused or cut-off
    // node never answers).
    const out = await this.onNode(n, async () => fn(n));
    await new Promise<void>((r) => this.q.after(this.rng.int(...this.t.delayMs), r));
    if (!from.up || from.clock.dead) throw new RaftdError('TIMEOUT', 'caller died');
    return out;
  }

  private report(n: SimNode, group: number): (ReplicaReport & { applied: number }) | undefined {
    if (!n.host.groups.has(group)) return undefined;
    const s = n.host.groupStatus(group);
    return { leader: s.leader, commit: s.commit, applied: s.appliedByApp, voters: s.confState.voters, learners: s.confState.learners };
  }

  /** How the rebalancer on `self` reaches the other nodes: the simulated network, the same operations as raftd's HTTP. */
  private remote(self: SimNode): RemoteOps {
    const statusOf = (node: number, group: number): Promise<(ReplicaReport & { applied: number }) | undefined> =>
      this.rpc(self, node, (n) => this.report(n, group)).catch(() => undefined);
    /** The admin route's forwarding: to the node the caller's replica (or the members) name as leader. */
    const onLeader = async <T>(group: number, fn: (n: SimNode) => Promise<T>): Promise<T> => {
      const members = [...new Set([...(self.host.meta.groups.get(group)?.members ?? []), ...(group === META_GROUP ? [self.id] : []), self.id])];
      for (const id of members) {
        const s = await statusOf(id, group);
        if (!s?.leader) continue;
        return this.rpc(self, s.leader, (n) => {
          if (!n.host.groups.get(group)?.isLeader()) throw new RaftdError('NOT_LEADER', `node ${n.id} does not lead group ${group}`);
          return fn(n);
        });
      }
      throw new RaftdError('NO_LEADER', `group ${group}: no leader found`);
    };
    return {
      groupView: (group, members) => viewThroughMembers(members, (id) => statusOf(id, group)),
      replicaView: (node, group) => statusOf(node, group),
      addMember: async (group, node, role) => {
        await onLeader(group, (n) => changeMemberOnLeader(n.host, group, node, role));
      },
      removeMember: async (group, node) => {
        await onLeader(group, (n) => changeMemberOnLeader(n.host, group, node, 'remove'));
      },
      transferLeadership: async (group, to) => {
        await onLeader(group, async (n) => {
          n.host.transferLeadership(group, to);
          const deadline = this.q.now + 600;
          while (this.q.now < deadline) {
            const hint = n.host.leaderHint(group);
            if (hint && hint.id === to) return;
            await new Promise<void>((r) => this.q.after(20, r));
          }
          throw new RaftdError('TIMEOUT', `group ${group}: leadership did not move to node ${to}`);
        });
      },
      leaders: async () => {
        const out = new Map<number, number>();
        for (const id of this.ids) {
          const gs = await this.rpc(self, id, (n) => [...n.host.groups.keys()].filter((g) => g !== META_GROUP && n.host.groups.get(g)!.isLeader())).catch(() => []);
          for (const g of gs) out.set(g, id);
        }
        return out;
      },
      ...(this.opts.bytes
        ? {
            // As raftd's port: the largest bytes count any reachable replica reports.
            groupBytes: async () => {
              const out = new Map<number, number>();
              for (const id of this.ids) {
                const counts = await this.rpc(self, id, (n) => [...n.host.groups.keys()].filter((g) => g !== META_GROUP).map((g) => [g, n.host.groupStatus(g).bytesApplied] as const)).catch(() => []);
                for (const [g, b] of counts) out.set(g, Math.max(out.get(g) ?? 0, b));
              }
              return out;
            },
          }
        : {}),
    };
  }

  private crash(n: SimNode): void {
    if (n.up) this.crashNode(n);
  }

  private restart(n: SimNode): void {
    if (n.up || this.nodes.get(n.id) !== n) return;
    this.start(n.id, n.store, n.app, n.id > FOUNDERS);
    this.count('restart');
  }

  // ---------------------------------------------------------------- the schedule

  protected faultKinds(): Array<[number, () => void]> {
    return [
      [this.t.crashWeight, () => this.crashSome()],
      [this.t.partitionWeight, () => this.partition()],
      [this.t.pauseWeight, () => this.pause()],
      [2, () => this.blocked.clear()],
    ];
  }

  private crashSome(): void {
    const live = this.up();
    // Keep a quorum of the meta group (the founders) running.
    if (live.length <= Math.floor(this.ids.length / 2) + 1) return;
    const n = this.rng.pick(live);
    this.crash(n);
    const back = this.rng.int(...this.t.downMs);
    this.q.after(back, () => {
      if (this.keptDown !== n.id) this.restart(n);
    });
  }

  private partition(): void {
    this.cutOff(this.rng.pick(this.ids), this.ids);
    this.count('partition');
  }

  private pause(): void {
    const live = this.up();
    if (live.length > 0) this.pauseNode(this.rng.pick(live), this.t.downMs);
  }

  /** A call made on node n's host (as its own API would): fails if n dies or stays silent meanwhile. */
  private onNode<T>(n: SimNode, fn: () => Promise<T>): Promise<T> {
    let settle!: (e: Error) => void;
    const broken = new Promise<never>((_, reject) => (settle = reject));
    const onCrash = (): void => settle(new RaftdError('TIMEOUT', `node ${n.id} went away during the call`));
    n.waiting.add(onCrash);
    this.q.after(RPC_TIMEOUT_MS, () => settle(new RaftdError('TIMEOUT', `node ${n.id}: no answer in ${RPC_TIMEOUT_MS} ms`)));
    return Promise.race([Promise.resolve().then(fn), broken]).finally(() => n.waiting.delete(onCrash));
  }

  /** The scenario's placement event. */
  private placementEvent(): void {
    const metaLeader = (): SimNode | undefined => this.up().find((n) => n.host.isMetaLeader());
    switch (this.scenario) {
      case 'join': {
        const id = FOUNDERS + 1;
        // raftd --join: the node registers through the meta leader, then starts with the cluster's nodes as peers.
        const register = (): void => {
          const l = metaLeader();
          if (!l) return void this.q.after(50, register);
          this.onNode(l, () => l.host.proposeMeta({ op: 'register', node: { id, raftAddr: `sim:${id}`, httpAddr: `http://sim:${id}` } })).then(
            (o) => {
              if (!o.ok) return void this.q.after(50, register);
              if (this.ids.includes(id)) return;
              this.ids = [...this.ids, id];
              this.start(id, this.newStore(id), new SimApp(this, id), true);
              this.count('node-joined');
              this.scenarioDone = true;
            },
            () => this.q.after(50, register),
          );
        };
        register();
        break;
      }
      case 'decommission': {
        const id = this.rng.int(1, FOUNDERS);
        const ask = (): void => {
          const l = metaLeader();
          if (!l) return void this.q.after(50, ask);
          this.onNode(l, () => l.host.proposeMeta({ op: 'node-state', id, state: 'decommissioning' })).then(
            (o) => (o.ok ? (this.count('node-decommissioned'), (this.scenarioDone = true)) : this.q.after(50, ask)),
            () => this.q.after(50, ask),
          );
        };
        ask();
        break;
      }
      case 'dead':
      case 'dead-back': {
        const n = this.nodes.get(this.rng.int(1, FOUNDERS))!;
        this.keptDown = n.id;
        this.crash(n);
        this.count('node-died');
        if (this.scenario === 'dead') this.scenarioDone = true;
        if (this.scenario === 'dead-back') {
          this.q.after(this.t.awayMs, () => {
            this.keptDown = undefined;
            if (this.t.metaBlackoutMs > 0) this.metaCut = { node: n.id, until: this.q.now + this.t.metaBlackoutMs };
            this.restart(n);
            this.count('node-back');
            this.scenarioDone = true;
          });
        }
        break;
      }
    }
  }

  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    for (const id of this.ids) {
      const n = this.nodes.get(id)!;
      n.clock.resume();
      if (!n.up && this.keptDown !== id) this.restart(n);
    }
    this.count('heal');
  }

  // ---------------------------------------------------------------- checks after every event

  /** The newest configuration of a group on any live replica (the one that applied furthest). */
  private noteConfs(group: number): void {
    for (const n of this.up()) {
      const g = n.host.groups.get(group);
      if (!g) continue;
      const st = g.status();
      const c = this.newestConf.get(group);
      if (!c || st.applied > c.applied) this.newestConf.set(group, { applied: st.applied, voters: [...st.confState.voters] });
    }
  }

  /** Per node: the host and meta index whose placement was last compared (it changes only when either does). */
  private readonly checkedMeta = new Map<number, { host: Host; at: number }>();

  private checkStep(): void {
    for (const n of this.up()) {
      // Nodes that applied the meta log through the same index agree on the placement.
      const meta = n.host.groups.get(META_GROUP);
      const last = this.checkedMeta.get(n.id);
      if (meta && (last?.host !== n.host || last.at !== meta.handedToApp)) {
        const at = meta.handedToApp;
        this.checkedMeta.set(n.id, { host: n.host, at });
        const fp = placementFingerprint(n.host);
        const seen = this.placementAt.get(at);
        if (!seen) this.placementAt.set(at, { fp, node: n.id });
        else if (seen.fp !== fp) this.violation('placement-agreement', `meta index ${at}: node ${n.id} holds ${fp}, node ${seen.node} held ${seen.fp}`);
      }
    }
    // The newest configuration of every group, now and then (and always at a drop: noteConfs).
    if (this.steps % 8 === 0) for (let g = 1; g <= this.opts.groups; g++) this.noteConfs(g);
  }

  /** Why the placement has not settled yet (undefined: it has). */
  private unsettled(): string | undefined {
    const l = this.up().find((n) => n.host.isMetaLeader());
    if (!l) return 'no meta leader';
    const host = l.host;
    if (host.meta.placement.moves.size > 0) return `moves running: ${[...host.meta.placement.moves.values()].map((m) => `${m.group}:${m.from}->${m.to}`).join(' ')}`;
    const gone = new Set(this.keptDown !== undefined ? [this.keptDown] : []);
    const nodes = placementNodes(host.meta, host.groupStatus(META_GROUP).confState.voters, gone);
    const active = nodes.filter((x) => x.state === 'active').map((x) => x.id);
    const r = effectiveReplicationFactor(REPLICATION, active.length);
    const placement = currentPlacement(host.meta);
    for (const [g, members] of placement) {
      if (members.length !== r || new Set(members).size !== r || !members.every((m) => active.includes(m))) return `group ${g} on [${members.join(', ')}], active [${active.join(', ')}], R ${r}`;
      const leader = this.up().find((n) => n.host.groups.get(g)?.isLeader());
      if (!leader) return `group ${g} has no leader`;
      const c = leader.host.groupStatus(g).confState;
      if (c.voters.join() !== members.join() || c.learners.length > 0) return `group ${g}: voters [${c.voters.join(', ')}] learners [${c.learners.join(', ')}], placed on [${members.join(', ')}]`;
    }
    const groupBytes = new Map<number, number>();
    if (this.opts.bytes) {
      for (const [g, b] of this.bytesApplied()) groupBytes.set(g, b);
    }
    const plan = planMoves({ placement, nodes, replicationFactor: REPLICATION, maxConcurrentMoves: 4, groupBytes });
    if (plan.length > 0) return `the planner still moves: ${plan.map((m) => `${m.group}:${m.from}->${m.to}`).join(' ')}`;
    const counts = active.map((id) => [...placement.values()].filter((m) => m.includes(id)).length);
    if (Math.max(...counts) - Math.min(...counts) > 1) return `groups per node uneven: ${counts.join(' ')}`;
    return undefined;
  }

  // ---------------------------------------------------------------- clients

  /** With bytes on, groups of very different sizes (the planner must even bytes, not just counts). */
  private padding(group: number): string {
    return this.opts.bytes ? 'x'.repeat(((group * 7) % 11) * 40) : '';
  }

  /** Not async itself: the operation's promise is ask's, settling on the same microtask as when it was written here. */
  protected op(c: number, forced?: { group: number; input: KvInput }): Promise<boolean> {
    const group = forced?.group ?? this.rng.int(1, this.opts.groups);
    const input = this.randomInput(group, forced?.input, this.padding(group));
    // A client asks a node holding the group (raftd's relay would forward to one); the leader when it knows.
    const holders = this.up().filter((n) => n.host.groups.has(group));
    const leader = holders.find((n) => n.host.groups.get(group)!.isLeader());
    const n = leader && this.rng.chance(0.8) ? leader : holders.length > 0 ? this.rng.pick(holders) : undefined;
    if (!n) return Promise.resolve(false);
    // GROUP_NOT_FOUND after the proposal was made (the replica dropped meanwhile) proves nothing: not in DEFINITE.
    return this.ask(c, n, group, input);
  }

  // ---------------------------------------------------------------- the run

  /** Every group of the catalog exists on each of its (live) members. */
  private created(): boolean {
    const l = this.up().find((n) => n.host.isMetaLeader());
    if (!l || l.host.meta.groups.size < this.opts.groups) return false;
    for (const [g, info] of l.host.meta.groups) {
      for (const m of info.members) if (this.nodes.get(m)?.up && !this.nodes.get(m)!.host.groups.has(g)) return false;
    }
    return true;
  }

  async run(): Promise<PlacementSimResult> {
    let perNode: PlacementSimResult['perNode'];
    await this.guarded(async () => {
      this.ids = Array.from({ length: FOUNDERS }, (_, i) => i + 1);
      for (const id of this.ids) this.start(id, this.newStore(id), new SimApp(this, id), false);
      this.beginWhen(
        () => this.created(),
        4000,
        () => `the groups were not created on their members within 4 s\n${this.dump()}`,
        () => this.q.now < this.t0 + this.t.faultPhaseMs + 300 && !this.done,
        () => {
          this.q.at(this.t0 + this.t.eventAtMs, () => this.placementEvent());
          this.q.at(this.t0 + this.t.faultPhaseMs, () => this.heal());
          this.q.at(this.t0 + this.t.faultPhaseMs + 300, () => void this.finish());
        },
      );
      await this.runEvents(
        () => this.done,
        () => (this.t0 >= 0 ? this.t0 + this.t.faultPhaseMs + this.t.settleMs : Infinity),
        () => this.violation('placement-settled', `not settled within ${this.t.settleMs} ms of healing: ${this.unsettled() ?? 'settled, but the probe did not finish'}\n${this.dump()}`),
        () => {
          if (!process.env.NOCHECK) this.checkStep();
        },
      );
      if (!this.failure) this.checkHistory();
      if (!this.failure) perNode = this.perNode();
    });
    const o = this.opts;
    const out: PlacementSimResult = { seed: o.seed, groups: o.groups, scenario: this.scenario, steps: this.steps, virtualMs: this.q.now, counts: this.counts, ops: this.ops };
    if (o.fault) out.fault = o.fault;
    if (perNode) out.perNode = perNode;
    if (this.failure) out.violation = { property: this.failure.property, seed: o.seed, detail: this.failure.message, replay: placementReplayCommand(o) };
    return out;
  }

  /** After healing: the placement settles, then a write and a read succeed in every group. */
  private async finish(): Promise<void> {
    while (!this.failure && (!this.scenarioDone || this.unsettled() !== undefined)) await new Promise<void>((r) => this.q.after(50, r));
    await this.probeGroups(this.opts.groups, (group) => this.padding(group));
    this.done = true;
  }

  /** Per group: the largest bytes count of any live replica (what the rebalancer sees). */
  private bytesApplied(): Map<number, number> {
    const out = new Map<number, number>();
    for (const n of this.up()) for (const [g, r] of n.host.groups) if (g !== META_GROUP) out.set(g, Math.max(out.get(g) ?? 0, r.bytesApplied));
    return out;
  }

  private perNode(): Array<{ node: number; groups: number; bytes: number }> {
    const l = this.up().find((n) => n.host.isMetaLeader());
    if (!l) return [];
    const placement = currentPlacement(l.host.meta);
    const gone = new Set(this.keptDown !== undefined ? [this.keptDown] : []);
    const active = placementNodes(l.host.meta, l.host.groupStatus(META_GROUP).confState.voters, gone).filter((x) => x.state === 'active');
    const bytes = this.bytesApplied();
    return active.map((x) => {
      const mine = [...placement].filter(([, m]) => m.includes(x.id)).map(([g]) => g);
      return { node: x.id, groups: mine.length, bytes: mine.reduce((a, g) => a + (bytes.get(g) ?? 0), 0) };
    });
  }

  private dump(): string {
    const lines: string[] = [];
    for (const id of this.ids) {
      const n = this.nodes.get(id)!;
      if (!n.up) {
        lines.push(`  node ${id}: down`);
        continue;
      }
      const gs = [...n.host.groups].map(([g, r]) => {
        const st = r.status();
        return `${g}:${['F', 'C', 'P', 'L'][st.role]}t${st.term}c${st.commit}v${st.confState.voters.join('')}${st.confState.learners.length ? `l${st.confState.learners.join('')}` : ''}`;
      });
      const rb = this.rebalancers.get(id)?.status();
      lines.push(`  node ${id}: ${gs.join(' ')}${rb?.leading ? ` rebalancer: ${JSON.stringify(rb.running)} ${rb.lastError ?? ''}` : ''}`);
    }
    return lines.join('\n');
  }
}

/** The placement a node's meta state holds: members per group, moves, node states. */
function placementFingerprint(host: Host): string {
  const groups = [...host.meta.groups.values()].map((g) => `${g.group}:${g.members.join(',')}`).sort();
  const moves = [...host.meta.placement.moves.values()].map((m) => `${m.group}:${m.from}>${m.to}`).sort();
  const states = [...host.meta.placement.nodeStates].map(([id, s]) => `${id}=${s}`).sort();
  return `${groups.join(' ')} | ${moves.join(' ')} | ${states.join(' ')}`;
}

export function runPlacementSeed(opts: PlacementSimOptions): Promise<PlacementSimResult> {
  return new PlacementSim(opts).run();
}
