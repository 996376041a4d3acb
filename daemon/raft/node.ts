// RaftNode: the facade the host and the simulator drive. Inputs change the state machine; ready()
// collects everything to persist, send and apply as one batch; advance() records that it was done.
import { Raft } from './raft.js';
import { PROGRESS_STATE_NAMES } from './progress.js';
import {
  MessageType,
  NONE,
  Role,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type ProposalTicket,
  type RaftConfig,
  type RaftStatus,
  type Ready,
  type SoftState,
} from './types.js';

export class RaftNode {
  private readonly r: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;

  constructor(config: RaftConfig) {
    this.r = new Raft(config);
    this.prevSoft = { leader: NONE, role: Role.Follower };
    const hs = config.storage.initialState().hardState;
    this.prevHard = { term: hs.term, vote: hs.vote, commit: this.r.log.committed };
  }

  tick(): void {
    this.r.tick();
  }

  step(m: Message): void {
    this.r.step(m);
  }

  propose(data: Uint8Array): ProposalTicket {
    return this.r.propose(data);
  }

  proposeBatch(datas: Uint8Array[]): ProposalTicket {
    return this.r.proposeBatch(datas);
  }

  proposeConfChange(cc: ConfChange): ProposalTicket {
    return this.r.proposeConfChange(cc);
  }

  readIndex(context: Uint8Array, opts?: { lease?: boolean }): void {
    this.r.readIndex(context, opts?.lease === true);
  }

  transferLeadership(to: NodeId): void {
    this.r.transferLeadership(to);
  }

  campaign(): void {
    this.r.hup(false);
  }

  reportUnreachable(id: NodeId): void {
    this.r.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.r.reportSnapshot(id, ok);
  }

  confStateAt(index: number): ConfState {
    return this.r.confStateAt(index);
  }

  private hardStateChanged(): boolean {
    const r = this.r;
    const h = this.prevHard;
    return r.term !== h.term || r.vote !== h.vote || r.log.committed !== h.commit;
  }

  hasReady(): boolean {
    const r = this.r;
    r.flush();
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    const u = r.log.unstable;
    if (u.entries.length > 0 || u.snapshot !== undefined) return true;
    if (this.hardStateChanged()) return true;
    if (r.lead !== this.prevSoft.leader || r.role !== this.prevSoft.role) return true;
    return r.log.hasNextCommitted();
  }

  /**
   * The next batch. Call advance(rd) once it is handled; calling ready() again before that hands
   * out the same unpersisted entries again (harmless) but never the same committed entries.
   */
  ready(): Ready {
    const r = this.r;
    r.flush();
    const log = r.log;
    const u = log.unstable;
    const entries = u.entries.length > 0 ? u.entries.slice() : [];
    const committedEntries = log.hasNextCommitted() ? log.nextCommitted(r.maxMsgSize) : [];
    const rd: Ready = { entries, committedEntries, earlyMessages: [], messages: r.msgs, readStates: r.readStates, mustSync: entries.length > 0 };
    r.msgs = [];
    let termOrVoteChanged = false;
    r.readStates = [];
    if (r.lead !== this.prevSoft.leader || r.role !== this.prevSoft.role) {
      this.prevSoft = { leader: r.lead, role: r.role };
      rd.softState = { ...this.prevSoft };
    }
    if (this.hardStateChanged()) {
      const hs: HardState = { term: r.term, vote: r.vote, commit: log.committed };
      if (hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote) rd.mustSync = termOrVoteChanged = true;
      this.prevHard = hs;
      rd.hardState = { ...hs };
    }
    if (u.snapshot) {
      rd.snapshot = u.snapshot;
      rd.mustSync = true;
    }
    this.splitEarly(rd, termOrVoteChanged);
    if (committedEntries.length > 0) {
      log.applying = committedEntries[committedEntries.length - 1]!.index;
      r.reduceUncommitted(committedEntries);
    }
    return rd;
  }

  /**
   * Which messages may leave before this Ready is persisted (Raft thesis 10.2.1; etcd-io/raft's
   * AsyncStorageWrites makes the same cut): a leader's appends and heartbeats, so the followers'
   * fsyncs overlap the leader's own. The leader counts its own entries toward a quorum only at
   * advance(), i.e. once they are persisted, so sending them first loses nothing. Not when the
   * Ready moves the term or the vote (a message of the new term would promise what a crash could
   * forget) nor when it installs a snapshot; and never a vote, an append ack or anything else
   * that answers for this node's durable state. The one place this rule lives: the host, the
   * simulator and the scenario tests all take the core's split.
   */
  private splitEarly(rd: Ready, termOrVoteChanged: boolean): void {
    if (this.r.faults.ackBeforePersist) {
      // Simulator-only mutation: everything leaves at once, acks and votes included.
      rd.earlyMessages = rd.messages;
      rd.messages = [];
      return;
    }
    if (termOrVoteChanged || rd.snapshot) return;
    let early = 0;
    for (const m of rd.messages) if (m.type === MessageType.App || m.type === MessageType.Heartbeat) early++;
    if (early === 0) return;
    if (early === rd.messages.length) {
      rd.earlyMessages = rd.messages;
      rd.messages = [];
      return;
    }
    const late: Message[] = [];
    for (const m of rd.messages) (m.type === MessageType.App || m.type === MessageType.Heartbeat ? rd.earlyMessages : late).push(m);
    rd.messages = late;
  }

  advance(rd: Ready): void {
    const r = this.r;
    const log = r.log;
    if (rd.snapshot) {
      log.stableSnapTo(rd.snapshot.metadata.index);
      log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      if (log.stableTo(last.index, last.term)) r.onPersisted();
    }
    if (rd.committedEntries.length > 0) log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1]!.index);
    r.compactConfHistory();
  }

  /**
   * The host's word that this node's application cannot apply (Raft.campaignReluctant): it then
   * defers its elections and declines leadership transfers. Affects liveness only, never safety.
   */
  setCampaignReluctant(on: boolean): void {
    this.r.campaignReluctant = on;
  }

  /** The leader this replica follows (NONE while unknown): cheap, unlike status(). */
  leader(): NodeId {
    return this.r.lead;
  }

  status(): RaftStatus {
    const r = this.r;
    const cs = r.conf.current();
    const st: RaftStatus = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      role: r.role,
      leader: r.lead,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      firstIndex: r.log.firstIndex(),
      confState: { voters: [...cs.voters], learners: [...cs.learners] },
      leadTransferee: r.leadTransferee,
    };
    if (r.role === Role.Leader) {
      const progress: NonNullable<RaftStatus['progress']> = {};
      for (const [id, pr] of r.prs) {
        progress[id] = { match: pr.match, next: pr.next, state: PROGRESS_STATE_NAMES[pr.state], recentActive: pr.recentActive };
      }
      st.progress = progress;
    }
    return st;
  }
}
