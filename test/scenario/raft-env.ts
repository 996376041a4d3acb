// The deterministic environment behind the core's scenario commands: real RaftNodes on real
// MemoryStorage, a message queue the script delivers (or drops) explicitly, and a "disk" that holds
// only what a process-ready (or a persist after an early send) wrote, so a crash loses the rest.
// No clock and no randomness but the core's own seeded one.
import {
  ConfChangeType,
  EntryType,
  MemoryStorage,
  MessageType,
  RaftNode,
  Role,
  decodeConfEntry,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type Snapshot,
} from '../../daemon/raft/index.js';
import { seeded } from '../unit/raft/network.js';
import type { Args } from './args.js';
import { ArgError } from './args.js';

const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

export const MSG_NAMES: Record<MessageType, string> = {
  [MessageType.Vote]: 'MsgVote',
  [MessageType.VoteResp]: 'MsgVoteResp',
  [MessageType.PreVote]: 'MsgPreVote',
  [MessageType.PreVoteResp]: 'MsgPreVoteResp',
  [MessageType.App]: 'MsgApp',
  [MessageType.AppResp]: 'MsgAppResp',
  [MessageType.Heartbeat]: 'MsgHeartbeat',
  [MessageType.HeartbeatResp]: 'MsgHeartbeatResp',
  [MessageType.Snap]: 'MsgSnap',
  [MessageType.ReadIndex]: 'MsgReadIndex',
  [MessageType.ReadIndexResp]: 'MsgReadIndexResp',
  [MessageType.TimeoutNow]: 'MsgTimeoutNow',
  [MessageType.SnapStatus]: 'MsgSnapStatus',
};

const ROLE_NAMES: Record<Role, string> = {
  [Role.Follower]: 'StateFollower',
  [Role.Candidate]: 'StateCandidate',
  [Role.PreCandidate]: 'StatePreCandidate',
  [Role.Leader]: 'StateLeader',
};

const list = (ids: number[]): string => `(${ids.join(' ')})`;
const confStr = (cs: ConfState): string => `voters=${list(cs.voters)}${cs.learners.length ? ` learners=${list(cs.learners)}` : ''}`;

export function describeEntry(e: Entry): string {
  if (e.type === EntryType.ConfChange) {
    try {
      const { cc } = decodeConfEntry(e.data);
      const kind = cc.type === ConfChangeType.AddVoter ? 'v' : cc.type === ConfChangeType.AddLearner ? 'l' : 'r';
      return `${e.term}/${e.index} EntryConfChange ${kind}${cc.node}`;
    } catch {
      return `${e.term}/${e.index} EntryConfChange <undecodable>`;
    }
  }
  return `${e.term}/${e.index} EntryNormal ${JSON.stringify(dec(e.data))}`;
}

function describeSnapshot(s: Snapshot): string {
  return `Index:${s.metadata.index} Term:${s.metadata.term} ConfState:${confStr(s.metadata.confState)}`;
}

export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${MSG_NAMES[m.type]} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(', ')}]`;
  if (m.context.length > 0) s += ` Context:${JSON.stringify(dec(m.context))}`;
  if (m.snapshot) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  return s;
}

export function describeReady(rd: Ready): string[] {
  const out = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState) out.push(`Lead:${rd.softState.leader} State:${ROLE_NAMES[rd.softState.role]}`);
  if (rd.hardState) out.push(`HardState Term:${rd.hardState.term} Vote:${rd.hardState.vote} Commit:${rd.hardState.commit}`);
  if (rd.snapshot) out.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  if (rd.entries.length) out.push('Entries:', ...rd.entries.map((e) => '  ' + describeEntry(e)));
  if (rd.committedEntries.length) out.push('CommittedEntries:', ...rd.committedEntries.map((e) => '  ' + describeEntry(e)));
  if (rd.earlyMessages.length) out.push('Messages (may leave before the write):', ...rd.earlyMessages.map((m) => '  ' + describeMessage(m)));
  if (rd.messages.length) out.push('Messages:', ...rd.messages.map((m) => '  ' + describeMessage(m)));
  if (rd.readStates.length) out.push('ReadStates:', ...rd.readStates.map((r) => `  Index:${r.index} Context:${JSON.stringify(dec(r.context))}`));
  return out;
}

type NodeOpts = Partial<Omit<RaftConfig, 'id' | 'storage' | 'random'>>;

interface SimNode {
  id: NodeId;
  /** Undefined while crashed. */
  raft: RaftNode | undefined;
  /** The node's disk: survives crashes. */
  storage: MemoryStorage;
  opts: NodeOpts;
  /** The application's applied index (its state survives a crash of raftd, as the app is its own process). */
  applied: number;
  /** A Ready whose early messages left but whose write has not finished (see process-ready early=true). */
  writing: { rd: Ready; late: Message[] } | undefined;
}

/**
 * SCENARIO_FAULT=<name of a RaftFaults flag> runs every node with that deliberate bug, to show the
 * scenarios catch it (the mutation check in test/scenario/README.md). Never set in npm test.
 */
function faultsFromEnv(): RaftConfig['faults'] {
  const name = process.env['SCENARIO_FAULT'];
  return name ? ({ [name]: true } as RaftConfig['faults']) : undefined;
}

export class RaftEnv {
  private readonly nodes = new Map<NodeId, SimNode>();
  /** Messages sent and not yet delivered or dropped, in send order. */
  private queue: Message[] = [];
  private readonly cut = new Set<string>();
  private out: string[] = [];

  /** Runs one command; the text it prints (never empty, never with a blank line). */
  run(cmd: string, a: Args): string | undefined {
    const before = this.snapshotStates();
    this.out = [];
    switch (cmd) {
      case 'add-nodes': this.addNodes(a); break;
      case 'campaign': this.live(this.one(a)).campaign(); break;
      case 'tick': this.ticks(a, a.int('n', 1)); break;
      case 'tick-election': this.ticks(a, 'election'); break;
      case 'tick-heartbeat': this.ticks(a, 'heartbeat'); break;
      case 'propose': this.propose(a); break;
      case 'propose-conf-change': this.proposeConfChange(a); break;
      case 'process-ready': for (const id of a.ids()) this.processReady(id, a.bool('early')); break;
      case 'persist': for (const id of a.ids()) this.persist(id); break;
      case 'deliver-msgs': this.deliverMsgs(a); break;
      case 'stabilize': this.stabilize(a.ids()); break;
      case 'crash': this.crash(this.one(a)); break;
      case 'restart': this.restart(this.one(a)); break;
      case 'isolate': this.isolate(this.one(a)); break;
      case 'cut': this.cutLink(a); break;
      case 'heal': this.cut.clear(); this.out.push('ok'); break;
      case 'raft-log': this.raftLog(this.one(a)); break;
      case 'raft-state': this.raftState(); break;
      case 'status': this.status(this.one(a)); break;
      case 'transfer-leadership': this.live(a.int('from')).transferLeadership(a.int('to')); break;
      case 'read-index': this.readIndex(a); break;
      case 'snapshot': this.snapshot(this.one(a)); break;
      case 'compact': this.compact(a); break;
      case 'set-reluctant': this.live(this.one(a)).setCampaignReluctant(a.bool('on', true)); this.out.push('ok'); break;
      case 'report-unreachable': this.live(a.int('id')).reportUnreachable(a.int('peer')); this.out.push('ok'); break;
      case 'report-snapshot': this.live(a.int('id')).reportSnapshot(a.int('peer'), a.bool('ok', true)); this.out.push('ok'); break;
      default:
        return undefined;
    }
    // quiet=true: only the state changes (to reach a starting point without pages of output).
    if (a.bool('quiet')) this.out = [];
    this.noteStateChanges(before);
    return this.out.length ? this.out.join('\n') : 'ok';
  }

  // ---- helpers ----

  private one(a: Args): NodeId {
    const ids = a.ids();
    if (ids.length !== 1) throw new ArgError('expected exactly one node id');
    return ids[0]!;
  }

  private node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new ArgError(`no node ${id}`);
    return n;
  }

  private live(id: NodeId): RaftNode {
    const r = this.node(id).raft;
    if (!r) throw new ArgError(`node ${id} is crashed`);
    return r;
  }

  private sortedIds(): NodeId[] {
    return [...this.nodes.keys()].sort((x, y) => x - y);
  }

  private snapshotStates(): Map<NodeId, string> {
    const m = new Map<NodeId, string>();
    for (const [id, n] of this.nodes) {
      if (!n.raft) continue;
      const s = n.raft.status();
      m.set(id, `${ROLE_NAMES[s.role]} term=${s.term} lead=${s.leader}`);
    }
    return m;
  }

  /** One line per node whose role, term or leader the command changed (etcd prints these as INFO logs). */
  private noteStateChanges(before: Map<NodeId, string>): void {
    const after = this.snapshotStates();
    for (const id of this.sortedIds()) {
      const b = before.get(id);
      const x = after.get(id);
      if (x !== undefined && b !== undefined && b !== x) this.out.push(`INFO ${id}: ${b} -> ${x}`);
    }
  }

  private config(id: NodeId, storage: MemoryStorage, opts: NodeOpts, applied: number): RaftConfig {
    const faults = faultsFromEnv();
    return { electionTick: 10, heartbeatTick: 1, ...opts, id, storage, random: seeded(id * 7919), applied, ...(faults ? { faults } : {}) };
  }

  // ---- commands ----

  /**
   * add-nodes N [voters=(..)] [learners=(..)] [index=K] [pre-vote] [check-quorum] [election=T] [heartbeat=T]
   *   [max-size=B] [max-inflight=N] [max-entry-size=B] [max-uncommitted=B]
   * The first batch defaults to a configuration of its own ids; later ones join empty (they learn
   * their configuration from the leader). index=K starts the log from a snapshot at K, term 1.
   */
  private addNodes(a: Args): void {
    const count = this.one(a);
    const first = this.nodes.size === 0 ? 1 : Math.max(...this.nodes.keys()) + 1;
    const ids = Array.from({ length: count }, (_, k) => first + k);
    const conf: ConfState = { voters: a.ints('voters') ?? (this.nodes.size === 0 ? ids : []), learners: a.ints('learners') ?? [] };
    const opts: NodeOpts = {
      electionTick: a.int('election', 10),
      heartbeatTick: a.int('heartbeat', 1),
      preVote: a.bool('pre-vote'),
      checkQuorum: a.bool('check-quorum'),
    };
    if (a.has('max-inflight')) opts.maxInflightMsgs = a.int('max-inflight');
    if (a.has('max-size')) opts.maxSizePerMsg = a.int('max-size');
    if (a.has('max-entry-size')) opts.maxEntrySize = a.int('max-entry-size');
    if (a.has('max-uncommitted')) opts.maxUncommittedEntriesSize = a.int('max-uncommitted');
    const index = a.int('index', 0);
    for (const id of ids) {
      const storage = new MemoryStorage({ confState: conf });
      if (index > 0) {
        storage.applySnapshot({ metadata: { index, term: 1, confState: conf }, data: enc(`snap@${index}`) });
        storage.setHardState({ term: 1, vote: 0, commit: index });
      }
      const n: SimNode = { id, raft: undefined, storage, opts, applied: index, writing: undefined };
      n.raft = new RaftNode(this.config(id, storage, opts, index));
      this.nodes.set(id, n);
      this.out.push(`${id}: ${confStr(conf)} first=${storage.firstIndex()} last=${storage.lastIndex()}${opts.preVote ? ' pre-vote' : ''}${opts.checkQuorum ? ' check-quorum' : ''}`);
    }
  }

  /**
   * A number of ticks, or 'election': 2*electionTick-1 ticks, after which exactly one randomized
   * timeout (in [electionTick, 2*electionTick)) has fired; or 'heartbeat': heartbeatTick ticks.
   */
  private ticks(a: Args, n: number | 'election' | 'heartbeat'): void {
    for (const id of a.ids()) {
      const node = this.node(id);
      const et = node.opts.electionTick ?? 10;
      const count = n === 'election' ? 2 * et - 1 : n === 'heartbeat' ? node.opts.heartbeatTick ?? 1 : n;
      for (let k = 0; k < count; k++) this.live(id).tick();
    }
  }

  private propose(a: Args): void {
    const id = this.one(a);
    const data = a.str('data', '');
    try {
      const t = this.live(id).propose(enc(data));
      this.out.push(`proposed at index=${t.index} term=${t.term}`);
    } catch (e) {
      this.out.push(errLine(e));
    }
  }

  private proposeConfChange(a: Args): void {
    const id = this.one(a);
    const type = a.has('add-voter') ? ConfChangeType.AddVoter : a.has('add-learner') ? ConfChangeType.AddLearner : a.has('remove') ? ConfChangeType.RemoveNode : undefined;
    if (type === undefined) throw new ArgError('propose-conf-change: add-voter=, add-learner= or remove=');
    const node = a.int(type === ConfChangeType.AddVoter ? 'add-voter' : type === ConfChangeType.AddLearner ? 'add-learner' : 'remove');
    try {
      const t = this.live(id).proposeConfChange({ type, node, context: new Uint8Array(0) });
      this.out.push(`proposed at index=${t.index} term=${t.term}`);
    } catch (e) {
      this.out.push(errLine(e));
    }
  }

  /** Handles one Ready like the host: write, send, apply, advance; with early, send what may leave first and hold the write. */
  private processReady(id: NodeId, early: boolean): boolean {
    const n = this.node(id);
    if (!n.raft) {
      this.out.push(`> ${id} is crashed`);
      return false;
    }
    if (n.writing) {
      this.out.push(`> ${id} has a write in progress (persist ${id} first)`);
      return false;
    }
    if (!n.raft.hasReady()) return false;
    const rd = n.raft.ready();
    this.out.push(`> ${id} handling Ready`, ...describeReady(rd).map((l) => '  ' + l));
    if (!early) {
      this.write(n, rd);
      this.queue.push(...rd.earlyMessages, ...rd.messages);
      this.applyAndAdvance(n, rd);
      return true;
    }
    // The core's split (Ready.earlyMessages, design-notes "A leader's appends leave before its own
    // write"): those leave now, the rest once the write is done.
    const sent = rd.earlyMessages;
    const late = rd.messages;
    this.queue.push(...sent);
    n.writing = { rd, late };
    this.out.push(`  sent before the write: ${sent.length}, held until persisted: ${late.length}`);
    return true;
  }

  private write(n: SimNode, rd: Ready): void {
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
  }

  private applyAndAdvance(n: SimNode, rd: Ready): void {
    if (rd.snapshot) n.applied = Math.max(n.applied, rd.snapshot.metadata.index);
    for (const e of rd.committedEntries) n.applied = e.index;
    n.raft!.advance(rd);
  }

  private persist(id: NodeId): boolean {
    const n = this.node(id);
    const w = n.writing;
    if (!w) return false;
    n.writing = undefined;
    this.write(n, w.rd);
    this.queue.push(...w.late);
    this.out.push(`> ${id} persisted its Ready${w.late.length ? `, sending ${w.late.length} held message(s)` : ''}`);
    this.applyAndAdvance(n, w.rd);
    return true;
  }

  /**
   * deliver-msgs [ids] [drop=true] [type=MsgApp] [from=N]: the queued messages to those nodes (all
   * when none named) that match, in send order. A cut link or a crashed recipient loses them.
   */
  private deliverMsgs(a: Args): void {
    this.deliver(a.ids(), a.bool('drop'), a.has('type') ? a.str('type') : undefined, a.has('from') ? a.int('from') : undefined);
  }

  private deliver(to: NodeId[], drop: boolean, type: string | undefined, from: number | undefined): number {
    const targets = to.length ? to : this.sortedIds();
    let count = 0;
    for (const id of targets) {
      const mine = this.queue.filter((m) => m.to === id && (type === undefined || MSG_NAMES[m.type] === type) && (from === undefined || m.from === from));
      if (mine.length === 0) continue;
      this.queue = this.queue.filter((m) => !mine.includes(m));
      count += mine.length;
      const n = this.nodes.get(id);
      this.out.push(drop ? `> dropping messages to ${id}` : `> ${id} receiving messages`);
      for (const m of mine) {
        if (drop) this.out.push(`  dropped: ${describeMessage(m)}`);
        else if (!n?.raft) this.out.push(`  lost (${id} is crashed): ${describeMessage(m)}`);
        else if (this.cut.has(`${m.from}-${m.to}`)) this.out.push(`  lost (link cut): ${describeMessage(m)}`);
        else {
          this.out.push(`  ${describeMessage(m)}`);
          n.raft.step(m);
        }
      }
    }
    return count;
  }

  /** Handles Readies and delivers messages among the given nodes (all when none named) until quiet. */
  private stabilize(ids: NodeId[]): void {
    const set = ids.length ? ids : this.sortedIds();
    for (let round = 0; round < 1000; round++) {
      let busy = false;
      for (const id of set) {
        if (this.persist(id)) busy = true;
        while (this.nodes.get(id)?.raft && this.processReady(id, false)) busy = true;
      }
      if (this.deliver(set, false, undefined, undefined) > 0) busy = true;
      if (!busy) return;
    }
    throw new Error('stabilize: still busy after 1000 rounds');
  }

  private crash(id: NodeId): void {
    const n = this.node(id);
    this.live(id);
    n.raft = undefined;
    const lost = n.writing;
    n.writing = undefined;
    const dropped = this.queue.filter((m) => m.to === id);
    this.queue = this.queue.filter((m) => m.to !== id);
    this.out.push(`${id} crashed`);
    if (lost) {
      const parts: string[] = [];
      if (lost.rd.entries.length) parts.push(`entries ${lost.rd.entries[0]!.index}..${lost.rd.entries[lost.rd.entries.length - 1]!.index}`);
      if (lost.rd.hardState) parts.push(`hard state term=${lost.rd.hardState.term} vote=${lost.rd.hardState.vote} commit=${lost.rd.hardState.commit}`);
      this.out.push(`  lost its unfinished write: ${parts.join(', ') || 'nothing durable'}${lost.late.length ? `; ${lost.late.length} held message(s) never sent` : ''}`);
    }
    if (dropped.length) this.out.push(`  ${dropped.length} message(s) to it lost`);
  }

  private restart(id: NodeId): void {
    const n = this.node(id);
    if (n.raft) throw new ArgError(`node ${id} is running`);
    n.applied = Math.max(n.applied, n.storage.snapshot().metadata.index);
    // Whatever was sent to the dead process is gone with its connections.
    const lost = this.queue.filter((m) => m.to === id).length;
    this.queue = this.queue.filter((m) => m.to !== id);
    n.raft = new RaftNode(this.config(id, n.storage, n.opts, n.applied));
    const hs = n.storage.initialState().hardState;
    this.out.push(`${id} restarted: term=${hs.term} vote=${hs.vote} commit=${hs.commit} first=${n.storage.firstIndex()} last=${n.storage.lastIndex()} applied=${n.applied}${lost ? `; ${lost} message(s) sent to it while down lost` : ''}`);
  }

  private isolate(id: NodeId): void {
    for (const o of this.nodes.keys()) {
      if (o === id) continue;
      this.cut.add(`${id}-${o}`);
      this.cut.add(`${o}-${id}`);
    }
    this.out.push('ok');
  }

  private cutLink(a: Args): void {
    const [x, y] = a.ids();
    if (x === undefined || y === undefined) throw new ArgError('cut: two node ids');
    this.cut.add(`${x}-${y}`);
    if (!a.bool('one-way')) this.cut.add(`${y}-${x}`);
    this.out.push('ok');
  }

  /** The durable log (what a crash keeps), and the hard state. */
  private raftLog(id: NodeId): void {
    const s = this.node(id).storage;
    const hs = s.initialState().hardState;
    const snap = s.snapshot().metadata;
    this.out.push(`HardState Term:${hs.term} Vote:${hs.vote} Commit:${hs.commit}`);
    if (snap.index > 0) this.out.push(`Snapshot ${describeSnapshot(s.snapshot())}`);
    if (s.lastIndex() < s.firstIndex()) this.out.push('log is empty');
    else for (const e of s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity)) this.out.push(describeEntry(e));
  }

  private raftState(): void {
    for (const id of this.sortedIds()) {
      const n = this.nodes.get(id)!;
      if (!n.raft) {
        this.out.push(`${id}: crashed`);
        continue;
      }
      const s = n.raft.status();
      const kind = s.confState.voters.includes(id) ? 'Voter' : s.confState.learners.includes(id) ? 'Learner' : 'NonMember';
      this.out.push(`${id}: ${ROLE_NAMES[s.role]} (${kind}) Term:${s.term} Lead:${s.leader} Commit:${s.commit} Applied:${n.applied} Last:${s.lastIndex}`);
    }
  }

  private status(id: NodeId): void {
    const s = this.live(id).status();
    this.out.push(`${id}: ${ROLE_NAMES[s.role]} Term:${s.term} ${confStr(s.confState)}${s.leadTransferee ? ` transferee=${s.leadTransferee}` : ''}`);
    for (const [peer, p] of Object.entries(s.progress ?? {})) {
      this.out.push(`  ${peer}: ${p.state} match=${p.match} next=${p.next}${p.recentActive ? ' active' : ''}`);
    }
  }

  private readIndex(a: Args): void {
    const id = this.one(a);
    this.live(id).readIndex(enc(a.str('ctx')), { lease: a.bool('lease') });
    this.out.push('ok');
  }

  /** snapshot N: the storage records a snapshot of the node's applied state (the log stays until compact). */
  private snapshot(id: NodeId): void {
    const n = this.node(id);
    const cs = this.live(id).confStateAt(n.applied);
    const snap = n.storage.createSnapshot(n.applied, cs, enc(`snap@${n.applied}`));
    this.out.push(`${id}: snapshot ${describeSnapshot(snap)}`);
  }

  private compact(a: Args): void {
    const id = this.one(a);
    const s = this.node(id).storage;
    s.compact(a.int('index'));
    this.out.push(`${id}: log now ${s.firstIndex()}..${s.lastIndex()}`);
  }
}

function errLine(e: unknown): string {
  if (e instanceof Error) {
    const { code, leader } = e as Error & { code?: unknown; leader?: unknown };
    const hint = typeof leader === 'number' && leader > 0 ? ` (leader hint: ${leader})` : '';
    return `error${typeof code === 'string' ? ` ${code}` : ''}: ${e.message}${hint}`;
  }
  return `error: ${String(e)}`;
}

export { errLine };
