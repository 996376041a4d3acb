// The deterministic cluster simulator: N Raft nodes (the real core from daemon/raft), a faulty
// network, asynchronous "fsync", crashes, membership changes, leadership transfers, snapshots
// and clients of a key-value register, all driven by one seeded PRNG in virtual time.
//
// Each node = RaftNode + MemoryStorage (the durable part: written only when a virtual fsync
// completes) + an applied KV map + a host loop that follows the Ready contract. Safety
// properties are checked after every event; liveness and linearizability at the end of a run.

import { MemoryStorage, RaftNode, decodeConfChange } from '../../daemon/raft/index.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  ProposeError,
  Role,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type ProposalTicket,
  type RaftFaults,
  type Ready,
} from '../../daemon/raft/types.js';
import { EventQueue } from './eventqueue.js';
import { checkLinearizability, describeFailure, kvModel, type KvInput, type KvOp, type KvOutput } from './linearizability.js';
import { Rng } from './rng.js';

/** Deliberately wrong behaviours the simulator must catch: three in the core, one in the host. */
export const SIM_FAULTS = ['commitOldTermByCount', 'voteWithoutLogCheck', 'readIndexWithoutQuorum', 'ackBeforePersist'] as const;
export type SimFault = (typeof SIM_FAULTS)[number];

export interface SimOptions {
  seed: number;
  nodes: 3 | 5;
  fault?: SimFault;
}

export type Property =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'commit-monotonic'
  | 'apply-beyond-commit'
  | 'apply-order'
  | 'durability'
  | 'linearizability'
  | 'liveness-leader'
  | 'liveness-pending-op'
  | 'convergence'
  | 'core-exception';

export interface Violation {
  property: Property;
  seed: number;
  nodes: number;
  fault?: SimFault;
  node?: NodeId;
  /** Virtual milliseconds. */
  time: number;
  detail: string;
  /** A one-line command that replays the run exactly. */
  replay: string;
}

export interface SimResult {
  seed: number;
  nodes: number;
  fault?: SimFault;
  steps: number;
  virtualMs: number;
  faults: Record<string, number>;
  ops: { ok: number; failed: number; indeterminate: number; reads: number };
  violation?: Violation;
}

export function replayCommand(o: SimOptions): string {
  return `npm run sim -- --core --seed ${o.seed}${o.nodes === 5 ? ' --nodes 5' : ''}${o.fault ? ` --fault ${o.fault}` : ''}`;
}

class ViolationError extends Error {
  constructor(
    readonly property: Property,
    readonly node: NodeId | undefined,
    detail: string,
  ) {
    super(detail);
  }
}

// ---- timing (virtual ms) ----
const TICK_MS = 10;
const ELECTION_TICK = 10;
const HEARTBEAT_TICK = 2;
const KEYS = ['x', 'y', 'z'];

interface Tuning {
  faultPhaseMs: number;
  /** After healing: a stable leader within this, and every pending op resolved within this. */
  liveBoundMs: number;
  clients: number;
  faultEveryMs: [number, number];
  dropRate: number;
  dupRate: number;
  delayMs: [number, number];
  fsyncMs: [number, number];
  crashWeight: number;
  partitionWeight: number;
  membershipWeight: number;
  transferWeight: number;
  snapshotWeight: number;
  downMs: [number, number];
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  preVote: boolean;
  checkQuorum: boolean;
  clientTimeoutMs: number;
  followerReads: number;
  /** Fraction of reads that ask for a lease read (only meaningful with CheckQuorum). */
  leaseReads: number;
  /** Whether membership changes may remove the leader itself. */
  removeLeader: boolean;
  /** Probability that a crash picks the leader. */
  leaderCrashBias: number;
  /** Probability that a newly elected leader is crashed shortly after (short-lived leaders leave divergent tails). */
  newLeaderCrash: number;
  newLeaderCrashMs: [number, number];
  /** A crash also loses the node's messages still in flight (its unsent socket buffers). */
  crashDropsOutbox: boolean;
  /** Probability that a leader is crashed right after its commit index advances. */
  commitCrash: number;
}

/** Per-seed random intensities; some faults get a schedule tuned so the bug shows quickly. */
function tune(rng: Rng, fault: SimFault | undefined): Tuning {
  const t: Tuning = {
    faultPhaseMs: 3000,
    liveBoundMs: 4000,
    clients: rng.int(2, 5),
    faultEveryMs: [rng.int(20, 80), rng.int(100, 300)],
    dropRate: rng.chance(0.3) ? 0 : rng.float() * 0.15,
    dupRate: rng.float() * 0.05,
    delayMs: [1, rng.int(2, 40)],
    fsyncMs: [1, rng.int(1, 25)],
    crashWeight: rng.int(1, 4),
    partitionWeight: rng.int(1, 4),
    membershipWeight: rng.int(0, 3),
    transferWeight: rng.int(0, 2),
    snapshotWeight: rng.int(1, 3),
    downMs: [20, rng.int(50, 800)],
    maxSizePerMsg: rng.pick([64, 256, 1024, 1 << 20]),
    maxInflightMsgs: rng.pick([1, 4, 256]),
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
    clientTimeoutMs: rng.int(300, 1500),
    followerReads: rng.float(),
    leaseReads: rng.chance(0.5) ? rng.float() * 0.5 : 0,
    removeLeader: rng.chance(0.3),
    leaderCrashBias: 0.4,
    newLeaderCrash: rng.chance(0.3) ? rng.float() * 0.3 : 0,
    newLeaderCrashMs: [1, rng.int(5, 60)],
    commitCrash: rng.chance(0.3) ? rng.float() * 0.1 : 0,
    crashDropsOutbox: rng.chance(0.5),
  };
  switch (fault) {
    case 'ackBeforePersist':
      // Lost-but-acknowledged writes need crashes while fsyncs are slow.
      t.crashWeight = 8;
      t.fsyncMs = [5, 40];
      t.downMs = [10, 100];
      break;
    case 'readIndexWithoutQuorum':
      // A deposed leader must keep answering reads: isolate leaders, often without CheckQuorum.
      t.partitionWeight = 8;
      t.checkQuorum = rng.chance(0.3);
      t.followerReads = 0.1;
      break;
    case 'commitOldTermByCount':
      // Figure 8: leader A appends an entry nobody gets, C (elected without it) appends a rival at
      // the same index, A is re-elected and commits its old entry by count, then dies before its
      // own-term entry spreads; C wins and overwrites. Short-lived leaders (crashed soon after
      // election or right after a commit), one entry per App (maxSizePerMsg 1, one in flight) and
      // crashes that lose in-flight messages make that sequence common. Partitions only dilute it.
      // Measured: about 30% of seeds find it.
      t.faultPhaseMs = 30000;
      t.crashWeight = 4;
      t.partitionWeight = 0;
      t.maxSizePerMsg = 1;
      t.maxInflightMsgs = 1;
      t.downMs = [10, 150];
      t.leaderCrashBias = 0.8;
      t.newLeaderCrash = 0.7;
      t.newLeaderCrashMs = [1, rng.int(5, 40)];
      t.commitCrash = 0.6;
      t.crashDropsOutbox = true;
      t.dropRate = 0.1;
      break;
    case 'voteWithoutLogCheck':
      t.crashWeight = 5;
      t.partitionWeight = 4;
      break;
  }
  return t;
}

interface ClientOp {
  id: number;
  client: number;
  input: KvInput;
  node: NodeId;
  call: number;
  deadline: number;
  ticket?: ProposalTicket;
  ctx?: string;
  readIndex?: number;
  done: boolean;
}

interface SimNode {
  id: NodeId;
  up: boolean;
  /** Not a member (never added, or its removal committed): stays down until re-added. */
  decommissioned: boolean;
  /** Bumped on every crash so stale timers and fsync completions of a previous life are ignored. */
  incarnation: number;
  storage: MemoryStorage;
  raft: RaftNode;
  busy: boolean;
  kv: Map<string, string>;
  applied: number;
  /** Highest commit this incarnation has shown (status or hard state). */
  commitSeen: number;
  /** Last commit index made durable. */
  durableCommit: number;
  /** commit indexes already recorded into the global commit table by this incarnation. */
  commitRecorded: number;
  term: number;
  role: Role;
  /** The node's log as the host has seen it through Readies: index -> term. */
  terms: number[];
  snapIndex: number;
  /** Term in which leader completeness was last verified for this node as leader. */
  checkedLeaderTerm: number;
  proposals: Map<number, ClientOp>;
  reads: Map<string, ClientOp>;
  readWaits: ClientOp[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

interface KvCommand {
  t: 'w' | 'c';
  k: string;
  v: string;
  e?: string | null;
  id: number;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function encodeKv(kv: Map<string, string>): Uint8Array {
  return enc.encode(JSON.stringify([...kv.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))));
}

function decodeKv(data: Uint8Array): Map<string, string> {
  if (data.length === 0) return new Map();
  return new Map(JSON.parse(dec.decode(data)) as [string, string][]);
}

const TRACE = typeof process !== 'undefined' && process.env.SIM_TRACE === '1';

export class Simulation {
  readonly opts: SimOptions;
  private rng: Rng;
  private t: Tuning;
  private q = new EventQueue();
  private nodes = new Map<NodeId, SimNode>();
  private ids: NodeId[] = [];
  private initialVoters: NodeId[];
  private steps = 0;
  private faults: Record<string, number> = {};
  private blocked = new Set<number>();
  private dropRate: number;
  private dupRate: number;
  private healed = false;
  private healTime = Infinity;
  /**
   * Nodes whose application is "unhealthy": the host marks their cores campaign-reluctant (they
   * defer elections and decline TimeoutNow). Its own random stream, so seeds without it run as
   * before; on in half the seeds. Left as it is at heal time in half of those (even all nodes
   * reluctant: the group must still elect a leader within the liveness bound).
   */
  private readonly appRng: Rng;
  private readonly appFaults: boolean;
  private readonly reluctant = new Set<NodeId>();
  private stableLeaderAt = -1;
  private probesDone = false;
  private probesOk = 0;
  private probeQueue: KvInput[] = [];
  private probeUntil = 0;
  private finished = false;

  // global safety bookkeeping
  private leaderOfTerm = new Map<number, NodeId>();
  /** (index:term) -> the entry's bytes and the term of the entry before it. */
  private entryIndex = new Map<string, { type: EntryType; data: Uint8Array; prevTerm: number | undefined }>();
  /** index -> entry applied there (by any node). */
  private appliedAt = new Map<number, { term: number; data: Uint8Array; node: NodeId }>();
  /** index -> lowest term of a node that saw it committed (an upper bound on the term it was committed in). */
  private commitTerm: number[] = [];
  /** index -> term of the entry committed there. */
  private committedEntryTerm: number[] = [];

  // clients
  private history: KvOp[] = [];
  private opSeq = 0;
  private leaderHint = new Map<number, NodeId>();
  private valueSeq = 0;
  private opsStats = { ok: 0, failed: 0, indeterminate: 0, reads: 0 };
  private pending = new Set<ClientOp>();

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.rng = new Rng(opts.seed * 2654435761 + opts.nodes * 97 + (opts.fault ? SIM_FAULTS.indexOf(opts.fault) + 1 : 0));
    this.t = tune(this.rng, opts.fault);
    this.appRng = new Rng(opts.seed * 40503 + opts.nodes * 31 + 7);
    this.appFaults = this.appRng.chance(0.5);
    this.dropRate = this.t.dropRate;
    this.dupRate = this.t.dupRate;
    // Node slots 1..5: for a 3-node cluster, 4 and 5 are spares the schedule may add.
    this.ids = [1, 2, 3, 4, 5];
    this.initialVoters = opts.nodes === 5 ? [1, 2, 3, 4, 5] : [1, 2, 3];
  }

  run(): SimResult {
    try {
      // Spares (4 and 5 of a 3-node cluster) are machines not yet provisioned: down until added.
      for (const id of this.ids) this.boot(id, this.initialVoters.includes(id));
      for (let c = 1; c <= this.t.clients; c++) this.q.after(this.rng.int(0, 50), () => this.clientNext(c));
      this.q.after(this.rng.int(...this.t.faultEveryMs), () => this.faultEvent());
      this.q.at(this.t.faultPhaseMs, () => this.heal());
      if (this.appFaults) this.q.after(this.appRng.int(20, 300), () => this.appHealthEvent());
      const hardStop = this.t.faultPhaseMs + 3 * this.t.liveBoundMs;
      while (!this.finished) {
        const ev = this.q.pop();
        if (!ev) break;
        if (ev.time > hardStop) throw new ViolationError('liveness-leader', undefined, 'run did not settle before the hard stop');
        this.steps++;
        ev.run();
      }
      this.checkHistory();
      return this.result();
    } catch (e) {
      if (e instanceof ViolationError) return this.result(e);
      const err = e as Error;
      return this.result(new ViolationError('core-exception', undefined, `${err.name}: ${err.message}\n${err.stack ?? ''}`));
    }
  }

  private result(v?: ViolationError): SimResult {
    const r: SimResult = {
      seed: this.opts.seed,
      nodes: this.opts.nodes,
      steps: this.steps,
      virtualMs: this.q.now,
      faults: this.faults,
      ops: this.opsStats,
    };
    if (this.opts.fault) r.fault = this.opts.fault;
    if (v) {
      r.violation = {
        property: v.property,
        seed: this.opts.seed,
        nodes: this.opts.nodes,
        time: this.q.now,
        detail: v.message,
        replay: replayCommand(this.opts),
      };
      if (this.opts.fault) r.violation.fault = this.opts.fault;
      if (v.node !== undefined) r.violation.node = v.node;
    }
    return r;
  }

  private tr(f: () => string): void {
    if (TRACE) console.log(`[${this.q.now}] ${f()}`);
  }

  private count(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  private fail(property: Property, node: NodeId | undefined, detail: string): never {
    const dump = property.startsWith('liveness') || property === 'convergence' ? '\n' + this.dump() : '';
    throw new ViolationError(property, node, `t=${this.q.now}ms${node !== undefined ? ` node ${node}` : ''}: ${detail}${dump}`);
  }

  /** One line per node: what a liveness report needs to be understood. */
  private dump(): string {
    const lines: string[] = [];
    for (const n of this.nodes.values()) {
      if (!n.up) {
        lines.push(`  node ${n.id}: ${n.decommissioned ? 'decommissioned' : 'down'}`);
        continue;
      }
      const st = n.raft.status();
      const prog = st.progress
        ? ' progress ' + Object.entries(st.progress).map(([id, p]) => `${id}:${p.state}/m${p.match}/n${p.next}${p.recentActive ? '' : '/inactive'}`).join(' ')
        : '';
      lines.push(
        `  node ${n.id}: ${Role[st.role]} term ${st.term} leader ${st.leader} commit ${st.commit} applied ${n.applied} log [${st.firstIndex},${st.lastIndex}] ` +
          `voters ${st.confState.voters.join(',')} learners ${st.confState.learners.join(',')} busy ${n.busy} reads ${n.reads.size}/${n.readWaits.length}${prog}`,
      );
    }
    return lines.join('\n');
  }

  // ------------------------------------------------------------------ nodes

  private coreFaults(): RaftFaults | undefined {
    const f = this.opts.fault;
    if (f === 'commitOldTermByCount') return { commitOldTermByCount: true };
    if (f === 'voteWithoutLogCheck') return { voteWithoutLogCheck: true };
    if (f === 'readIndexWithoutQuorum') return { readIndexWithoutQuorum: true };
    if (f === 'ackBeforePersist') return { ackBeforePersist: true };
    return undefined;
  }

  private newRaft(id: NodeId, storage: MemoryStorage, applied: number): RaftNode {
    const r = this.rng.fork();
    const faults = this.coreFaults();
    const node = new RaftNode({
      id,
      storage,
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      random: () => r.float(),
      applied,
      maxSizePerMsg: this.t.maxSizePerMsg,
      maxInflightMsgs: this.t.maxInflightMsgs,
      checkQuorum: this.t.checkQuorum,
      preVote: this.t.preVote,
      ...(faults ? { faults } : {}),
    });
    // Application health is the host's, and outlives a raftd restart.
    if (this.reluctant.has(id)) node.setCampaignReluctant(true);
    return node;
  }

  /** Flips one node's application health (campaign reluctance), now and then, until healed. */
  private appHealthEvent(): void {
    if (this.healed) return;
    this.q.after(this.appRng.int(50, 600), () => this.appHealthEvent());
    const id = this.appRng.pick(this.ids);
    const on = !this.reluctant.has(id);
    if (on) this.reluctant.add(id);
    else this.reluctant.delete(id);
    const n = this.nodes.get(id);
    if (n) n.raft.setCampaignReluctant(on);
    this.count(on ? 'app-down' : 'app-up');
  }

  private boot(id: NodeId, start: boolean): void {
    // Every slot starts from the same bootstrap membership, like machines given the same initial
    // cluster config; spares are not in it and wait to be added.
    const storage = new MemoryStorage({ confState: { voters: [...this.initialVoters], learners: [] } });
    const node: SimNode = {
      id,
      up: start,
      decommissioned: !start,
      incarnation: 0,
      storage,
      raft: this.newRaft(id, storage, 0),
      busy: false,
      kv: new Map(),
      applied: 0,
      commitSeen: 0,
      durableCommit: 0,
      commitRecorded: 0,
      term: 0,
      role: Role.Follower,
      terms: [0],
      snapIndex: 0,
      checkedLeaderTerm: -1,
      proposals: new Map(),
      reads: new Map(),
      readWaits: [],
    };
    this.nodes.set(id, node);
    if (start) this.scheduleTick(node, this.rng.int(0, TICK_MS - 1));
    this.tr(() => `boot node ${id} start ${start}`);
  }

  /** A committed removal shuts the machine down (as raftd stops a removed group); it keeps its disk. */
  private decommission(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (n.decommissioned) return;
    if (n.up) this.crash(n);
    n.decommissioned = true;
    this.count('decommission');
  }

  private crash(n: SimNode): void {
    n.up = false;
    n.incarnation++;
    n.busy = false;
    this.tr(() => `crash node ${n.id}`);
    this.count('crash');
    // Clients waiting on this node learn nothing more: writes become indeterminate, reads fail.
    for (const op of [...n.proposals.values(), ...n.reads.values(), ...n.readWaits]) this.giveUp(op);
    n.proposals.clear();
    n.reads.clear();
    n.readWaits = [];
  }

  private crashSoon(n: SimNode, delay: [number, number] = this.t.newLeaderCrashMs): void {
    const inc = n.incarnation;
    const kind = delay === this.t.newLeaderCrashMs ? 'crash-new-leader' : 'crash-after-commit';
    this.q.after(this.rng.int(...delay), () => {
      if (!n.up || n.incarnation !== inc || this.healed) return;
      this.crash(n);
      this.count(kind);
      const inc2 = n.incarnation;
      this.q.after(this.rng.int(...this.t.downMs), () => {
        if (n.incarnation === inc2 && !this.healed) this.restart(n);
      });
    });
  }

  private restart(n: SimNode): void {
    if (n.up || n.decommissioned) return;
    this.count('restart');
    this.tr(() => `restart node ${n.id}`);
    n.up = true;
    n.incarnation++;
    const { hardState } = n.storage.initialState();
    if (hardState.commit < n.durableCommit) {
      this.fail('durability', n.id, `durable commit went back from ${n.durableCommit} to ${hardState.commit} across a restart`);
    }
    const snap = n.storage.snapshot();
    // The app restarts from its last snapshot; the core redelivers committed entries after it.
    n.kv = decodeKv(snap.data);
    n.applied = snap.metadata.index;
    n.raft = this.newRaft(n.id, n.storage, n.applied);
    n.busy = false;
    n.commitSeen = hardState.commit;
    n.commitRecorded = Math.min(n.commitRecorded, hardState.commit);
    n.term = hardState.term;
    n.role = Role.Follower;
    n.checkedLeaderTerm = -1;
    // Rebuild the host's view of the log from what is durable.
    n.snapIndex = snap.metadata.index;
    n.terms = [];
    for (let i = n.storage.firstIndex() - 1; i <= n.storage.lastIndex(); i++) n.terms[i] = n.storage.term(i);
    const st = n.raft.status();
    if (st.commit < hardState.commit) this.fail('commit-monotonic', n.id, `restarted with commit ${st.commit} below durable ${hardState.commit}`);
    this.scheduleTick(n, this.rng.int(0, TICK_MS - 1));
    this.drive(n);
  }

  private scheduleTick(n: SimNode, delay: number): void {
    const inc = n.incarnation;
    this.q.after(delay, () => {
      if (!n.up || n.incarnation !== inc) return;
      n.raft.tick();
      this.afterEvent(n);
      this.scheduleTick(n, TICK_MS);
    });
  }

  /** Safety checks that need the core's view, after every event that touched node n. */
  private afterEvent(n: SimNode): void {
    this.drive(n);
    if (!n.up) return;
    const st = n.raft.status();
    if (st.role === Role.Leader) this.noteLeader(n.id, st.term);
    if (st.commit < n.commitSeen) this.fail('commit-monotonic', n.id, `commit went from ${n.commitSeen} to ${st.commit}`);
    n.commitSeen = st.commit;
    if (st.commit > st.lastIndex) this.fail('apply-beyond-commit', n.id, `commit ${st.commit} beyond last index ${st.lastIndex}`);
    if (n.applied > st.commit) this.fail('apply-beyond-commit', n.id, `applied ${n.applied} beyond commit ${st.commit}`);
  }

  private noteLeader(id: NodeId, term: number): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev === undefined) this.leaderOfTerm.set(term, id);
    else if (prev !== id) this.fail('election-safety', id, `nodes ${prev} and ${id} are both leader in term ${term}`);
  }

  // ------------------------------------------------------------------ the host loop

  private drive(n: SimNode): void {
    while (n.up && !n.busy && n.raft.hasReady()) {
      const rd = n.raft.ready();
      this.observeReady(n, rd);
      const persist = rd.entries.length > 0 || rd.hardState !== undefined || rd.snapshot !== undefined;
      // What may leave before the write is the core's call (Ready.earlyMessages); the
      // ackBeforePersist fault is a switch in the core that puts every message there.
      const early = rd.earlyMessages;
      const late = rd.messages;
      this.sendAll(n, early);
      if (!persist) {
        this.finishReady(n, rd, late);
        continue;
      }
      // Busy first: applying answers clients, whose next ops must not pull another Ready before
      // this one is advanced.
      n.busy = true;
      // Also the host's: committed entries already durable here are applied while the write runs.
      if (!rd.snapshot && rd.committedEntries.length > 0) {
        const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1]!.index;
        const belowNew = rd.entries.length === 0 || lastCommitted < rd.entries[0]!.index;
        if (belowNew && lastCommitted <= n.storage.lastIndex()) {
          for (const e of rd.committedEntries) this.apply(n, e);
          this.serveReads(n);
        }
      }
      const inc = n.incarnation;
      this.q.after(this.rng.int(...this.t.fsyncMs), () => {
        if (!n.up || n.incarnation !== inc) return; // crashed before the fsync completed: all lost
        n.busy = false;
        this.persist(n, rd);
        this.finishReady(n, rd, late);
        this.afterEvent(n);
      });
    }
  }

  /** Checks on what the core hands over, at the moment it hands it over. */
  private observeReady(n: SimNode, rd: Ready): void {
    if (rd.hardState) {
      if (rd.hardState.commit < n.commitSeen) {
        this.fail('commit-monotonic', n.id, `hard state commit ${rd.hardState.commit} below ${n.commitSeen}`);
      }
      n.term = rd.hardState.term;
    }
    if (rd.softState) {
      n.role = rd.softState.role;
      this.tr(() => `node ${n.id} ${Role[n.role]} term ${rd.hardState?.term ?? n.term} leader ${rd.softState!.leader}`);
    }
    if (rd.entries.length) this.tr(() => `node ${n.id} ready entries ${rd.entries.map((e) => `${e.index}/${e.term}${e.type === EntryType.ConfChange ? 'cc' + JSON.stringify(decodeConfChange(e.data)) : ''}`).join(' ')} commit ${rd.hardState?.commit}`);
    if (rd.snapshot) {
      const m = rd.snapshot.metadata;
      const known = this.committedEntryTerm[m.index];
      if (known !== undefined && known !== m.term) {
        this.fail('log-matching', n.id, `snapshot at ${m.index} has term ${m.term}, committed entry there has term ${known}`);
      }
      n.terms = [];
      n.terms[m.index] = m.term;
      n.snapIndex = m.index;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first <= n.snapIndex && !rd.snapshot) {
        // Entries at or below the snapshot would rewrite compacted (committed) history.
        this.fail('log-matching', n.id, `Ready entries start at ${first}, at or below snapshot index ${n.snapIndex}`);
      }
      if (first > n.terms.length) this.fail('log-matching', n.id, `Ready entries start at ${first} leaving a gap after ${n.terms.length - 1}`);
      n.terms.length = first;
      let prevTerm: number | undefined = n.terms[first - 1];
      for (const e of rd.entries) {
        if (e.index !== n.terms.length) this.fail('log-matching', n.id, `non-contiguous entries in one Ready at ${e.index}`);
        const k = `${e.index}:${e.term}`;
        const seen = this.entryIndex.get(k);
        if (!seen) this.entryIndex.set(k, { type: e.type, data: e.data, prevTerm });
        else {
          if (seen.type !== e.type || !sameBytes(seen.data, e.data)) {
            this.fail('log-matching', n.id, `two different entries at index ${e.index} term ${e.term}`);
          }
          if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
            this.fail('log-matching', n.id, `entry ${e.index}/${e.term} follows term ${prevTerm} here but term ${seen.prevTerm} elsewhere`);
          }
        }
        n.terms.push(e.term);
        prevTerm = e.term;
      }
    }
    const commit = rd.hardState?.commit ?? n.commitSeen;
    if (n.role === Role.Leader && commit > n.commitRecorded && !this.healed && this.rng.chance(this.t.commitCrash)) this.crashSoon(n, [0, 3]);
    if (commit > n.commitSeen) n.commitSeen = commit;
    this.recordCommits(n, commit);
    if (n.role === Role.Leader) {
      this.noteLeader(n.id, n.term);
      if (n.checkedLeaderTerm !== n.term) {
        n.checkedLeaderTerm = n.term;
        if (!this.healed && this.rng.chance(this.t.newLeaderCrash)) this.crashSoon(n);
        for (let i = 1; i < this.commitTerm.length; i++) this.checkLeaderHas(n, i);
      }
    }
  }

  /** Records indexes up to `commit` as committed, no later than the node's current term. */
  private recordCommits(n: SimNode, commit: number): void {
    for (let i = Math.max(n.commitRecorded + 1, n.snapIndex + 1); i <= commit; i++) {
      const term = n.terms[i];
      if (term === undefined) this.fail('apply-beyond-commit', n.id, `commit ${commit} covers index ${i} that is not in the log`);
      const known = this.committedEntryTerm[i];
      if (known !== undefined && known !== term) {
        this.fail('state-machine-safety', n.id, `index ${i} committed with term ${term} here and term ${known} elsewhere`);
      }
      this.committedEntryTerm[i] = term;
      const before = this.commitTerm[i];
      if (before === undefined || n.term < before) {
        this.commitTerm[i] = n.term;
        // A newly known committed entry must already be in the log of every leader of a later term.
        for (const m of this.nodes.values()) if (m.up && m.role === Role.Leader && m.checkedLeaderTerm === m.term) this.checkLeaderHas(m, i);
      }
    }
    if (commit > n.commitRecorded) n.commitRecorded = commit;
  }

  private checkLeaderHas(leader: SimNode, i: number): void {
    const ct = this.commitTerm[i];
    if (ct === undefined || ct >= leader.term || i <= leader.snapIndex) return;
    const t = leader.terms[i];
    if (t !== this.committedEntryTerm[i]) {
      this.fail(
        'leader-completeness',
        leader.id,
        `leader of term ${leader.term} has ${t === undefined ? 'no entry' : `term ${t}`} at index ${i}, committed with term ${this.committedEntryTerm[i]} by term ${ct}`,
      );
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.kv = decodeKv(rd.snapshot.data);
      n.applied = rd.snapshot.metadata.index;
      // Client ops waiting on entries the snapshot jumped over cannot learn their outcome.
      for (const [idx, op] of n.proposals) if (idx <= n.applied) {
        n.proposals.delete(idx);
        this.giveUp(op);
      }
    }
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState) {
      n.storage.setHardState(rd.hardState);
      n.durableCommit = rd.hardState.commit;
    }
  }

  private finishReady(n: SimNode, rd: Ready, toSend: Message[]): void {
    this.sendAll(n, toSend);
    for (const rs of rd.readStates) {
      const ctx = dec.decode(rs.context);
      const op = n.reads.get(ctx);
      if (!op) continue;
      n.reads.delete(ctx);
      op.readIndex = rs.index;
      n.readWaits.push(op);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    n.raft.advance(rd);
    this.serveReads(n);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index <= n.applied) return; // already in the app's snapshot
    if (e.index !== n.applied + 1) this.fail('apply-order', n.id, `applied ${e.index} after ${n.applied}`);
    if (e.index > n.commitSeen) this.fail('apply-beyond-commit', n.id, `applied ${e.index} beyond commit ${n.commitSeen}`);
    const prior = this.appliedAt.get(e.index);
    if (!prior) this.appliedAt.set(e.index, { term: e.term, data: e.data, node: n.id });
    else if (prior.term !== e.term || !sameBytes(prior.data, e.data)) {
      this.fail('state-machine-safety', n.id, `applied term ${e.term} at index ${e.index}; node ${prior.node} applied term ${prior.term}`);
    }
    n.applied = e.index;
    let result: KvOutput = {};
    if (e.type === EntryType.Normal && e.data.length > 0) {
      const cmd = JSON.parse(dec.decode(e.data)) as KvCommand;
      if (cmd.t === 'w') n.kv.set(cmd.k, cmd.v);
      else {
        const cur = n.kv.get(cmd.k) ?? null;
        const ok = cur === (cmd.e ?? null);
        if (ok) n.kv.set(cmd.k, cmd.v);
        result = { ok };
      }
    } else if (e.type === EntryType.ConfChange) {
      // Membership itself is the core's business; the host only retires a node once its removal
      // is committed (first applied anywhere), like a decommissioned machine.
      const cc = decodeConfChange(e.data);
      if (cc.type === ConfChangeType.RemoveNode && !prior) this.q.after(0, () => this.decommission(cc.node));
    }
    const op = n.proposals.get(e.index);
    if (op) {
      n.proposals.delete(e.index);
      if (op.ticket!.term === e.term) this.complete(op, result);
      else this.failOp(op); // another entry won this index: ours never commits
    }
  }

  private serveReads(n: SimNode): void {
    if (n.readWaits.length === 0) return;
    const still: ClientOp[] = [];
    for (const op of n.readWaits) {
      if (op.readIndex! <= n.applied) this.complete(op, { value: n.kv.get(op.input.key) ?? null });
      else still.push(op);
    }
    n.readWaits = still;
  }

  // ------------------------------------------------------------------ network

  private linkKey(from: NodeId, to: NodeId): number {
    return from * 16 + to;
  }

  private sendAll(n: SimNode, msgs: Message[]): void {
    for (const m of msgs) this.send(n, m);
  }

  private send(from: SimNode, m: Message): void {
    const copies = this.rng.chance(this.dupRate) ? 2 : 1;
    if (copies === 2) this.count('duplicate');
    for (let c = 0; c < copies; c++) {
      if (this.blocked.has(this.linkKey(m.from, m.to))) {
        this.count('blocked');
        this.undelivered(from, m);
        continue;
      }
      if (this.rng.chance(this.dropRate)) {
        this.count('drop');
        this.undelivered(from, m);
        continue;
      }
      const msg = c === 0 ? m : { ...m };
      const inc = from.incarnation;
      this.q.after(this.rng.int(...this.t.delayMs), () => this.deliver(from, inc, msg));
    }
  }

  private undelivered(from: SimNode, m: Message): void {
    // The transport would notice a failed snapshot stream; plain messages are just lost.
    if (m.type === MessageType.Snap && from.up) from.raft.reportSnapshot(m.to, false);
  }

  private deliver(from: SimNode, inc: number, m: Message): void {
    const to = this.nodes.get(m.to);
    const senderDied = from.incarnation !== inc && this.t.crashDropsOutbox;
    const lost = senderDied || !to || !to.up || this.blocked.has(this.linkKey(m.from, m.to));
    if (m.type === MessageType.Snap && from.up && from.incarnation === inc) {
      from.raft.reportSnapshot(m.to, !lost);
      this.afterEvent(from);
    }
    if (lost) return;
    this.tr(() => `deliver ${MessageType[m.type]} ${m.from}->${m.to} term ${m.term} idx ${m.index} ents ${m.entries.length} commit ${m.commit} rej ${m.reject} ctx ${dec.decode(m.context)}`);
    to.raft.step(m);
    this.afterEvent(to);
  }

  // ------------------------------------------------------------------ faults and operations

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  /** The leader with the highest term among live nodes, if any. */
  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const n of this.upNodes()) {
      const st = n.raft.status();
      if (st.role === Role.Leader && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  private faultEvent(): void {
    if (this.healed) return;
    this.q.after(this.rng.int(...this.t.faultEveryMs), () => this.faultEvent());
    const t = this.t;
    const kinds: [string, number][] = [
      ['crash', t.crashWeight],
      ['partition', t.partitionWeight],
      ['heal', Math.max(1, t.partitionWeight / 2)],
      ['membership', t.membershipWeight],
      ['transfer', t.transferWeight],
      ['snapshot', t.snapshotWeight],
      ['netchange', 1],
    ];
    const total = kinds.reduce((s, k) => s + k[1], 0);
    let r = this.rng.float() * total;
    let kind = kinds[0]![0];
    for (const [k, w] of kinds) {
      if ((r -= w) < 0) {
        kind = k;
        break;
      }
    }
    switch (kind) {
      case 'crash': {
        const up = this.upNodes();
        if (up.length === 0) return;
        // Prefer the leader sometimes: that is where lost acknowledgements hurt.
        const l = this.leader();
        const victim = l && this.rng.chance(t.leaderCrashBias) ? l : this.rng.pick(up);
        this.crash(victim);
        const inc = victim.incarnation;
        this.q.after(this.rng.int(...t.downMs), () => {
          if (victim.incarnation === inc && !this.healed) this.restart(victim);
        });
        return;
      }
      case 'partition':
        return this.partition();
      case 'heal':
        this.blocked.clear();
        return this.count('heal');
      case 'membership':
        return this.membership();
      case 'transfer': {
        const l = this.leader();
        if (!l) return;
        const voters = l.raft.status().confState.voters.filter((v: NodeId) => v !== l.id);
        if (voters.length === 0) return;
        try {
          l.raft.transferLeadership(this.rng.pick(voters));
          this.count('transfer');
        } catch (e) {
          if (!(e instanceof ProposeError)) throw e;
        }
        return this.afterEvent(l);
      }
      case 'snapshot': {
        const up = this.upNodes();
        if (up.length === 0) return;
        return this.snapshot(this.rng.pick(up));
      }
      case 'netchange':
        this.dropRate = this.rng.chance(0.5) ? 0 : this.rng.float() * 0.3;
        this.dupRate = this.rng.float() * 0.1;
        return this.count('netchange');
    }
  }

  private partition(): void {
    this.blocked.clear();
    const l = this.leader();
    const mode = this.rng.int(0, 2);
    if (mode === 0 && l) {
      // Isolate the leader from everyone, both ways.
      for (const id of this.ids) if (id !== l.id) {
        this.blocked.add(this.linkKey(l.id, id));
        this.blocked.add(this.linkKey(id, l.id));
      }
      this.count('partition-isolate-leader');
    } else if (mode === 1) {
      const side = new Set(this.ids.filter(() => this.rng.chance(0.5)));
      for (const a of this.ids)
        for (const b of this.ids)
          if (side.has(a) !== side.has(b)) this.blocked.add(this.linkKey(a, b));
      this.count('partition-symmetric');
    } else {
      for (const a of this.ids)
        for (const b of this.ids)
          if (a !== b && this.rng.chance(0.25)) this.blocked.add(this.linkKey(a, b));
      this.count('partition-one-way');
    }
  }

  private membership(): void {
    const l = this.leader();
    if (!l) return;
    const cs: ConfState = l.raft.status().confState;
    const members = new Set([...cs.voters, ...cs.learners]);
    // Only retired (or never provisioned) machines are added; they start empty.
    const spares = this.ids.filter((id) => !members.has(id) && this.nodes.get(id)!.decommissioned);
    const options: { type: ConfChangeType; node: NodeId; kind: string }[] = [];
    for (const s of spares) options.push({ type: ConfChangeType.AddLearner, node: s, kind: 'add-learner' });
    if (cs.voters.length < 5) for (const s of cs.learners) options.push({ type: ConfChangeType.AddVoter, node: s, kind: 'promote' });
    if (cs.voters.length > 3) {
      for (const v of cs.voters) {
        if (v !== l.id) options.push({ type: ConfChangeType.RemoveNode, node: v, kind: 'remove-voter' });
        else if (this.t.removeLeader) options.push({ type: ConfChangeType.RemoveNode, node: v, kind: 'remove-leader' });
      }
    }
    for (const s of cs.learners) options.push({ type: ConfChangeType.RemoveNode, node: s, kind: 'remove-learner' });
    if (options.length === 0) return;
    const o = this.rng.pick(options);
    try {
      l.raft.proposeConfChange({ type: o.type, node: o.node, context: new Uint8Array() });
      const n = this.nodes.get(o.node)!;
      if (o.type === ConfChangeType.AddLearner && n.decommissioned) {
        // A machine that was a member before comes back with its disk: restarting a reused id
        // with empty storage is unsafe (a stale configuration still counts its old vote and log —
        // found by this simulator, seed 993). A never-provisioned spare starts empty.
        const again = n.incarnation > 0 || this.initialVoters.includes(o.node);
        if (again) {
          n.decommissioned = false;
          this.restart(n);
        } else this.boot(o.node, true);
        this.count(`membership-${again ? 're-add' : 'add-learner'}`);
      } else this.count(`membership-${o.kind}`);
    } catch (e) {
      if (!(e instanceof ProposeError)) throw e;
    }
    this.afterEvent(l);
  }

  private snapshot(n: SimNode): void {
    const first = n.storage.firstIndex();
    // Not while a Ready is being persisted: it may carry an incoming snapshot the app has not installed.
    if (n.busy || n.applied < n.storage.snapshot().metadata.index + 2) return;
    // The app snapshots its applied state; the log is then compacted up to a point at or before it.
    const at = n.applied;
    const cs = n.raft.confStateAt(at);
    n.storage.createSnapshot(at, cs, encodeKv(n.kv));
    const keep = this.rng.int(0, 3);
    if (at - keep >= first) n.storage.compact(at - keep);
    this.count('snapshot');
  }

  private heal(): void {
    this.healed = true;
    if (this.appFaults && this.appRng.chance(0.5)) {
      for (const id of this.reluctant) this.nodes.get(id)?.raft.setCampaignReluctant(false);
      this.reluctant.clear();
    }
    this.healTime = this.q.now;
    this.blocked.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    for (const n of this.nodes.values()) if (!n.up) this.restart(n);
    // Ops still pending now get the liveness bound as their deadline.
    for (const op of this.pending) op.deadline = Math.max(op.deadline, this.q.now + this.t.liveBoundMs);
    this.q.after(10, () => this.settleCheck());
  }

  /** After healing: a stable leader within the bound, every pending op resolved, replicas converge. */
  private settleCheck(): void {
    const elapsed = this.q.now - this.healTime;
    const l = this.leader();
    let stable = false;
    if (l) {
      const st = l.raft.status();
      const followers = st.confState.voters.filter((v: NodeId) => {
        const s = this.nodes.get(v)!.raft.status();
        return s.leader === l.id && s.term === st.term;
      });
      stable = followers.length * 2 > st.confState.voters.length;
    }
    if (stable && this.stableLeaderAt < 0) this.stableLeaderAt = this.q.now;
    if (!stable && elapsed > this.t.liveBoundMs && this.stableLeaderAt < 0) {
      this.fail('liveness-leader', undefined, `no stable leader ${elapsed}ms after healing`);
    }
    if (stable && this.pending.size === 0 && !this.probesDone) {
      // Final probes: a write and a linearizable read per key through the leader must succeed.
      // A probe that is refused, dropped (a read index is lost when leadership changes) or times
      // out is retried on the current leader until the bound.
      this.probesDone = true;
      this.probeUntil = this.q.now + this.t.liveBoundMs;
      // One at a time: read every key (acknowledged writes must be there), write it, read it again.
      for (const k of KEYS) this.probeQueue.push({ type: 'read', key: k });
      for (const k of KEYS) this.probeQueue.push({ type: 'write', key: k, value: `final-${k}` });
      for (const k of KEYS) this.probeQueue.push({ type: 'read', key: k });
      this.probe(this.probeQueue.shift()!);
    }
    if (this.probesDone && this.probeQueue.length === 0 && this.probesOk === 3 * KEYS.length && this.pending.size === 0 && stable) {
      // Convergence: every member caught up to the leader has the same state.
      const st = l!.raft.status();
      const members = [...st.confState.voters, ...st.confState.learners].map((id) => this.nodes.get(id)!);
      if (members.every((m) => m.applied >= st.commit)) {
        const ref = JSON.stringify([...l!.kv.entries()].sort());
        for (const m of members) {
          const s = JSON.stringify([...m.kv.entries()].sort());
          if (s !== ref) this.fail('convergence', m.id, `state ${s} differs from leader ${l!.id}'s ${ref}`);
        }
        this.finished = true;
        return;
      }
    }
    if (elapsed > 2 * this.t.liveBoundMs) {
      const p = [...this.pending][0];
      if (p) this.fail('liveness-pending-op', p.node, `client op ${JSON.stringify(p.input)} issued at ${p.call}ms still pending`);
      this.fail('convergence', undefined, `replicas did not catch up ${elapsed}ms after healing`);
    }
    this.q.after(10, () => this.settleCheck());
  }

  // ------------------------------------------------------------------ clients

  private probe(input: KvInput): void {
    const l = this.leader();
    this.issue(0, input, l ? l.id : this.rng.pick(this.ids), 300);
  }

  private probeFailed(op: ClientOp): void {
    if (this.q.now >= this.probeUntil) {
      this.fail('liveness-pending-op', op.node, `final probe ${JSON.stringify(op.input)} did not succeed within ${this.t.liveBoundMs}ms of healing`);
    }
    this.q.after(20, () => this.probe(op.input));
  }

  private clientNext(c: number): void {
    if (this.healed) return;
    const key = this.rng.pick(KEYS);
    const r = this.rng.float();
    const hint = this.leaderHint.get(c);
    let target: NodeId;
    const isRead = r < 0.45;
    if (isRead && this.rng.chance(this.t.followerReads)) target = this.rng.pick(this.ids);
    else target = hint !== undefined && this.rng.chance(0.85) ? hint : this.rng.pick(this.ids);
    let input: KvInput;
    if (isRead) input = { type: 'read', key };
    else if (r < 0.8) input = { type: 'write', key, value: `v${++this.valueSeq}` };
    else {
      const exp = this.rng.chance(0.2) ? null : `v${this.rng.int(Math.max(1, this.valueSeq - 5), Math.max(1, this.valueSeq))}`;
      input = { type: 'cas', key, expected: exp, value: `v${++this.valueSeq}` };
    }
    this.issue(c, input, target, this.t.clientTimeoutMs);
  }

  private issue(c: number, input: KvInput, target: NodeId, timeout: number): void {
    const n = this.nodes.get(target)!;
    const op: ClientOp = { id: ++this.opSeq, client: c, input, node: target, call: this.q.now, deadline: this.q.now + timeout, done: false };
    if (!n.up) return this.rejected(op, undefined);
    try {
      if (input.type === 'read') {
        op.ctx = `r${op.id}`;
        const lease = op.client > 0 && this.rng.chance(this.t.leaseReads);
        n.raft.readIndex(enc.encode(op.ctx), { lease });
        if (lease) this.count('lease-read');
        n.reads.set(op.ctx, op);
      } else {
        const cmd: KvCommand =
          input.type === 'write' ? { t: 'w', k: input.key, v: input.value, id: op.id } : { t: 'c', k: input.key, v: input.value, e: input.expected, id: op.id };
        const ticket = n.raft.propose(enc.encode(JSON.stringify(cmd)));
        op.ticket = ticket;
        n.proposals.set(ticket.index, op);
      }
    } catch (e) {
      if (e instanceof ProposeError) return this.rejected(op, e.leader);
      throw e;
    }
    this.pending.add(op);
    this.tr(() => `issue op ${op.id} on ${target}: ${JSON.stringify(input)} ticket ${JSON.stringify(op.ticket)}`);
    this.q.at(op.deadline, () => {
      if (!op.done) {
        this.detach(op);
        this.giveUp(op);
      }
    });
    this.afterEvent(n);
  }

  /** Refused before anything happened: not part of the history. */
  private rejected(op: ClientOp, leader: NodeId | undefined): void {
    this.opsStats.failed++;
    if (op.client === 0) this.probeFailed(op);
    else {
      if (leader) this.leaderHint.set(op.client, leader);
      else this.leaderHint.delete(op.client);
      this.q.after(this.rng.int(1, 20), () => this.clientNext(op.client));
    }
  }

  private detach(op: ClientOp): void {
    const n = this.nodes.get(op.node)!;
    if (op.ticket && n.proposals.get(op.ticket.index) === op) n.proposals.delete(op.ticket.index);
    if (op.ctx) n.reads.delete(op.ctx);
    n.readWaits = n.readWaits.filter((o) => o !== op);
  }

  private complete(op: ClientOp, output: KvOutput): void {
    if (op.done) return;
    this.tr(() => `complete op ${op.id} ${JSON.stringify(op.input)} -> ${JSON.stringify(output)}`);
    op.done = true;
    this.pending.delete(op);
    this.history.push({ client: op.client, input: op.input, call: op.call, ret: this.q.now, output });
    if (op.input.type === 'read') this.opsStats.reads++;
    else this.opsStats.ok++;
    this.next(op, true);
  }

  /** Definitely did not take effect. */
  private failOp(op: ClientOp): void {
    if (op.done) return;
    op.done = true;
    this.pending.delete(op);
    this.opsStats.failed++;
    this.next(op, false);
  }

  /** Outcome unknown: a write may or may not happen; a read has no effect and is dropped. */
  private giveUp(op: ClientOp): void {
    if (op.done) return;
    if (this.healed && this.q.now >= op.deadline && op.client > 0) {
      const l = this.leader();
      const cs = l?.raft.status().confState;
      if (cs && (cs.voters.includes(op.node) || cs.learners.includes(op.node)) && this.nodes.get(op.node)!.up) {
        this.fail('liveness-pending-op', op.node, `client op ${JSON.stringify(op.input)} issued at ${op.call}ms hung past the bound after healing`);
      }
    }
    op.done = true;
    this.pending.delete(op);
    if (op.input.type !== 'read') {
      this.opsStats.indeterminate++;
      this.history.push({ client: op.client, input: op.input, call: op.call, ret: Infinity });
    }
    this.next(op, false);
  }

  private next(op: ClientOp, ok: boolean): void {
    if (op.client === 0) {
      if (ok) {
        this.probesOk++;
        const nextProbe = this.probeQueue.shift();
        if (nextProbe) this.probe(nextProbe);
      } else this.probeFailed(op);
      return;
    }
    if (ok) this.leaderHint.set(op.client, op.node);
    else this.leaderHint.delete(op.client);
    this.q.after(this.rng.int(0, 30), () => this.clientNext(op.client));
  }

  private checkHistory(): void {
    const res = checkLinearizability(kvModel, this.history, { maxStepsPerPartition: 500_000 });
    if (res.verdict === 'illegal') this.fail('linearizability', undefined, describeFailure(res));
    // 'unknown' (search budget exhausted) is not a violation but must be visible.
    if (res.verdict === 'unknown') this.count('linearizability-undecided');
  }
}

export function runSeed(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
