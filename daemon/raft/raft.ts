// The Raft state machine of one group: roles, timers counted in ticks, and the rules for every
// message. No I/O: outputs accumulate in `msgs` and `readStates`, and the log's unstable tail;
// node.ts turns them into Ready batches.
import { RaftLog } from './log.js';
import { ConfHistory, applyConfChange, checkConfChange, encodeConfEntry } from './membership.js';
import { EMPTY_BYTES, NO_ENTRIES, TRANSFER_CONTEXT, isTransfer, newMessage, wellFormed } from './messages.js';
import { Progress, ProgressState } from './progress.js';
import { VoteResult, isQuorum, majorityIndex, voteResult } from './quorum.js';
import { ReadOnly, contextKey } from './read-only.js';
import {
  CompactedError,
  EntryType,
  MessageType,
  NONE,
  ProposeError,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type ProposalTicket,
  type RaftConfig,
  type RaftFaults,
  type ReadState,
} from './types.js';

export class RaftConfigError extends Error {
  readonly code = 'RAFT_CONFIG_INVALID';
}

export class ConfStateUnavailableError extends Error {
  readonly code = 'RAFT_CONF_STATE_UNAVAILABLE';
}

const DEFAULT_MAX_SIZE_PER_MSG = 1 << 20;
const DEFAULT_MAX_INFLIGHT = 256;
const DEFAULT_MAX_ENTRY_SIZE = 64 << 20;
/** Extra election timeouts a reluctant node (its application unhealthy) waits before campaigning. */
export const RELUCTANT_EXTRA_TIMEOUTS = 2;

/** Broadcast owed at the next flush: none, new entries only, or also an empty App to carry a new commit. */
const enum Bcast {
  None = 0,
  Entries = 1,
  Commit = 2,
}

interface PendingRead {
  from: NodeId;
  context: Uint8Array;
  lease: boolean;
}

export class Raft {
  readonly id: NodeId;
  readonly log: RaftLog;
  readonly conf: ConfHistory;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role = Role.Follower;
  prs = new Map<NodeId, Progress>();
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = NONE;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly maxMsgSize: number;
  private readonly maxInflight: number;
  private readonly maxUncommitted: number;
  private readonly maxEntrySize: number;
  private readonly checkQuorum: boolean;
  private readonly preVote: boolean;
  readonly faults: RaftFaults;
  private readonly random: () => number;

  private votes = new Map<NodeId, boolean>();
  private readOnly = new ReadOnly();
  private pendingReads: PendingRead[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  /** Ticks since the current leadership transfer started (its own clock, so checkQuorum keeps its rhythm). */
  private transferElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks since start: heartbeats carry it so acks tell the leader how fresh its lease is. */
  private tickCount = 0;
  /** Term in which this leader sent TimeoutNow: its lease is void for the rest of the term. */
  private timeoutNowTerm = -1;
  /** After a restart we cannot know whether we promised a leader a lease: act as if we had. */
  private restartLease = false;
  /**
   * Reads asked of this node that have not produced a ReadState yet. Leaders drop their read
   * queues when they step down, so these are re-issued whenever a new leader (or term) appears:
   * a read answered later is still linearizable, and the caller is not left hanging.
   */
  private localReads = new Map<string, { context: Uint8Array; lease: boolean }>();
  private readsLead: NodeId = NONE;
  private readsTerm = -1;
  /** Ticks since reads were last (re-)issued: a lost ReadIndex message is retried after an election timeout. */
  private readsRetryElapsed = 0;
  private uncommittedSize = 0;
  private bcast: Bcast = Bcast.None;
  private scratch: number[] = [];

  constructor(cfg: RaftConfig) {
    if (!Number.isSafeInteger(cfg.id) || cfg.id < 1) throw new RaftConfigError(`invalid node id ${cfg.id}`);
    if (!(cfg.heartbeatTick >= 1) || !(cfg.electionTick > cfg.heartbeatTick)) {
      throw new RaftConfigError(`electionTick (${cfg.electionTick}) must exceed heartbeatTick (${cfg.heartbeatTick}) >= 1`);
    }
    this.id = cfg.id;
    this.electionTimeout = cfg.electionTick;
    this.heartbeatTimeout = cfg.heartbeatTick;
    this.maxMsgSize = cfg.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG;
    this.maxInflight = cfg.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT;
    this.maxUncommitted = cfg.maxUncommittedEntriesSize ?? 0;
    this.maxEntrySize = cfg.maxEntrySize ?? DEFAULT_MAX_ENTRY_SIZE;
    this.checkQuorum = cfg.checkQuorum ?? false;
    this.preVote = cfg.preVote ?? false;
    this.faults = cfg.faults ?? {};
    this.random = cfg.random;
    if (this.maxInflight < 1) throw new RaftConfigError('maxInflightMsgs must be >= 1');

    const storage = cfg.storage;
    const { hardState, confState } = storage.initialState();
    this.log = new RaftLog(storage);
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    this.conf = new ConfHistory(first - 1, confState);
    // Changes take effect on append, so those already in the log are in force now.
    for (let lo = first; lo <= last; ) {
      const ents = storage.entries(lo, last + 1, 8 << 20);
      for (const e of ents) if (e.type === EntryType.ConfChange) this.conf.push(e.index, e.data);
      lo += ents.length;
    }
    const applied = Math.max(first - 1, Math.min(cfg.applied ?? first - 1, last));
    // Entries the application applied were committed, whatever the persisted commit says.
    this.log.commitTo(Math.min(Math.max(hardState.commit, applied), last));
    this.log.applied = applied;
    this.log.applying = applied;
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.restartLease = this.checkQuorum && hardState.term > 0;
    this.becomeFollower(this.term, NONE);
  }

  // ------------------------------------------------------------------ small queries

  voters(): readonly NodeId[] {
    return this.conf.current().voters;
  }

  isVoter(id: NodeId): boolean {
    return this.conf.current().voters.includes(id);
  }

  /**
   * Set by the host while this node's application is unhealthy: the node would lead a group it
   * cannot apply, so it defers its own elections by RELUCTANT_EXTRA_TIMEOUTS election timeouts and
   * ignores TimeoutNow (a leader handing over to it). Safety never depends on anyone campaigning
   * (every election still needs a quorum of votes with the log check), so this only moves which
   * node is likely to win. Liveness holds because it only defers: with every application down a
   * reluctant node still campaigns, later, and the group has a leader again.
   */
  campaignReluctant = false;
  /**
   * Ticks since this node last heard a leader (or led). Unlike electionElapsed it is not reset by
   * a term change: other candidates' failed elections would otherwise restart a reluctant node's
   * deferral forever (without PreVote each of them bumps the term), and the group could stay
   * leaderless while the only node that can win waits.
   */
  private leaderlessElapsed = 0;

  promotable(): boolean {
    return this.isVoter(this.id) && !this.log.hasPendingSnapshot();
  }

  private committedInCurrentTerm(): boolean {
    return this.log.termOr(this.log.committed, 0) === this.term;
  }

  /** Heard from a leader within the election timeout (or just restarted and cannot know). */
  private inLease(): boolean {
    return (this.lead !== NONE || this.restartLease) && this.electionElapsed < this.electionTimeout;
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }

  // ------------------------------------------------------------------ role changes

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
    if (this.randomizedElectionTimeout >= 2 * this.electionTimeout) this.randomizedElectionTimeout = 2 * this.electionTimeout - 1;
    this.votes.clear();
    this.leadTransferee = NONE;
    this.readOnly.clear();
    this.pendingReads = [];
    this.prs.clear();
    this.uncommittedSize = 0;
    this.bcast = Bcast.None;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.restartLease = false;
  }

  private becomePreCandidate(): void {
    // The term and vote stay: a pre-election disturbs nobody.
    this.votes.clear();
    this.lead = NONE;
    this.role = Role.PreCandidate;
    this.restartLease = false;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.leaderlessElapsed = 0;
    this.lead = this.id;
    this.role = Role.Leader;
    this.syncProgress();
    const self = this.prs.get(this.id);
    if (self) self.maybeUpdate(this.log.persistedIndex());
    // An entry of the new term: committing it commits everything before it (and allows reads).
    this.appendLeaderEntry(EntryType.Normal, EMPTY_BYTES);
    this.bcast = Bcast.Entries;
  }

  /** Makes the progress map match the current configuration (leader only). */
  private syncProgress(): void {
    const cs = this.conf.current();
    const next = this.log.lastIndex() + 1;
    const want = (id: NodeId, learner: boolean): void => {
      const pr = this.prs.get(id);
      if (pr) {
        pr.isLearner = learner;
        pr.departingTicks = 0;
      } else {
        const p = new Progress(next, this.maxInflight, learner);
        if (id === this.id) p.ackedHeartbeatTick = Infinity;
        this.prs.set(id, p);
      }
    };
    for (const v of cs.voters) want(v, false);
    for (const l of cs.learners) want(l, true);
    for (const [id, pr] of [...this.prs]) {
      if (cs.voters.includes(id) || cs.learners.includes(id)) continue;
      // A peer this leader just removed would otherwise never receive the entry that removes it
      // (nobody sends a non-member anything): it would wait out election timeouts, campaign in
      // vain, and hold its clients until it noticed. So it keeps getting appends (it counts for no
      // quorum: those go by the configuration) until it has that entry, or for two election timeouts.
      if (id !== this.id && pr.departingTicks === 0 && pr.match < this.conf.currentIndex() && !this.faults.forgetRemovedPeer) {
        pr.departingTicks = 2 * this.electionTimeout;
      } else if (pr.departingTicks === 0 || pr.match >= this.conf.currentIndex()) {
        this.prs.delete(id);
      }
    }
  }

  /** A departing peer (see syncProgress) leaves once it holds its removal, or its time is up. */
  private maybeDropDeparting(id: NodeId, pr: Progress, tick: boolean): void {
    if (pr.departingTicks === 0) return;
    if (tick) pr.departingTicks--;
    if (pr.departingTicks === 0 || pr.match >= this.conf.currentIndex()) {
      pr.departingTicks = 0;
      this.prs.delete(id);
    }
  }

  /** The configuration changed (append, truncation or snapshot). */
  private onConfChanged(): void {
    if (this.role !== Role.Leader) return;
    this.syncProgress();
    if (this.leadTransferee !== NONE && !this.isVoter(this.leadTransferee)) this.leadTransferee = NONE;
    // A smaller quorum may commit at once.
    if (this.maybeCommit()) this.bcast = Bcast.Commit;
  }

  // ------------------------------------------------------------------ ticks and elections

  tick(): void {
    this.tickCount++;
    if (this.localReads.size > 0 && ++this.readsRetryElapsed >= this.electionTimeout) this.readsLead = NONE; // re-issue at the next flush
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) this.restartLease = false;
    this.leaderlessElapsed++;
    const deferred = this.campaignReluctant && this.leaderlessElapsed < (RELUCTANT_EXTRA_TIMEOUTS + 1) * this.electionTimeout;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout && !deferred) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
      }
    }
    if (this.leadTransferee !== NONE && ++this.transferElapsed >= this.electionTimeout) {
      // A transfer that did not finish within an election timeout is abandoned.
      this.leadTransferee = NONE;
    }
    for (const [id, pr] of this.prs) if (pr.departingTicks > 0) this.maybeDropDeparting(id, pr, true);
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastContext() ?? EMPTY_BYTES);
    }
  }

  private quorumActive(): boolean {
    const voters = this.voters();
    let active = 0;
    for (const v of voters) {
      if (v === this.id) active++;
      else if (this.prs.get(v)?.recentActive) active++;
    }
    return isQuorum(active, voters.length);
  }

  /** Starts an election now (with a pre-election first if configured and not forced). */
  hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    if (this.preVote && !transfer) this.campaign(true, false);
    else this.campaign(false, transfer);
  }

  private campaign(pre: boolean, transfer: boolean): void {
    let term: number;
    let type: MessageType;
    if (pre) {
      this.becomePreCandidate();
      term = this.term + 1;
      type = MessageType.PreVote;
    } else {
      this.becomeCandidate();
      term = this.term;
      type = MessageType.Vote;
    }
    this.votes.set(this.id, true);
    if (voteResult(this.voters(), this.votes) === VoteResult.Won) {
      if (pre) this.campaign(false, transfer);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const v of this.voters()) {
      if (v === this.id) continue;
      const m = newMessage(type, this.id, v, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (transfer) m.context = TRANSFER_CONTEXT;
      this.send(m);
    }
  }

  // ------------------------------------------------------------------ message dispatch

  step(m: Message): void {
    if (!wellFormed(m, this.id)) return;
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        // A follower that heard from a leader recently ignores elections, so a node that was
        // partitioned cannot depose a healthy leader; TimeoutNow elections are exempt.
        if (this.checkQuorum && !isTransfer(m.context) && this.inLease()) return;
      }
      if (m.type === MessageType.PreVote) {
        // Answered below without adopting the term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A grant carries the term we would campaign with.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {
        // A stale leader would otherwise never learn of the new term (we ignore its votes).
        this.send(newMessage(MessageType.AppResp, this.id, m.from, this.term));
      } else if (m.type === MessageType.PreVote) {
        const r = newMessage(MessageType.PreVoteResp, this.id, m.from, this.term);
        r.reject = true;
        this.send(r);
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      default:
        this.stepFollower(m);
    }
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const canVote = this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (pre && m.term > this.term);
    const upToDate = this.faults.voteWithoutLogCheck === true || this.log.isUpToDate(m.index, m.logTerm);
    // PreVote: no grant while a leader was heard from within the election timeout.
    const leaseBlocks = pre && !isTransfer(m.context) && this.inLease();
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && upToDate && !leaseBlocks) {
      // The grant is in the same Ready as the new vote, so it is persisted before it is sent.
      this.send(newMessage(respType, this.id, m.from, m.term));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const r = newMessage(respType, this.id, m.from, this.term);
      r.reject = true;
      this.send(r);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leaderlessElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leaderlessElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leaderlessElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // A reluctant node declines; the leader abandons the transfer after an election timeout.
        if (this.campaignReluctant) return;
        this.hup(true);
        return;
      case MessageType.ReadIndexResp:
        // Only the first answer to a read we still wait for (duplicates and re-issues answer twice).
        if (this.localReads.delete(contextKey(m.context))) this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
      // Responses meant for a leader or candidate we no longer are: stale, ignore.
    }
  }

  private stepCandidate(m: Message): void {
    const myResp = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myResp: {
        // Grants must be for this round: a pre-vote grant carries term+1, a vote grant our term.
        if (!m.reject && m.term !== (this.role === Role.PreCandidate ? this.term + 1 : this.term)) return;
        this.votes.set(m.from, !m.reject);
        const r = voteResult(this.voters(), this.votes);
        if (r === VoteResult.Won) {
          if (this.role === Role.PreCandidate) this.campaign(false, false);
          else this.becomeLeader();
        } else if (r === VoteResult.Lost) {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m);
        return;
      case MessageType.ReadIndex:
        if (!this.prs.has(m.from)) return;
        this.prs.get(m.from)!.recentActive = true;
        this.leaderReadIndex(m.from, m.context, m.index === 1);
        return;
      case MessageType.SnapStatus:
        this.reportSnapshot(m.from, !m.reject);
        return;
      default:
    }
  }

  // ------------------------------------------------------------------ follower side of replication

  private handleAppend(m: Message): void {
    const log = this.log;
    if (m.index < log.committed) {
      const r = newMessage(MessageType.AppResp, this.id, m.from, this.term);
      r.index = log.committed;
      this.send(r);
      return;
    }
    if (!log.matchTerm(m.index, m.logTerm)) {
      // Tell the leader where to probe next: the last index at or below m.index whose term is at
      // most m.logTerm (etcd's fast backtracking).
      const hint = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
      const r = newMessage(MessageType.AppResp, this.id, m.from, this.term);
      r.index = m.index;
      r.reject = true;
      r.rejectHint = hint.index;
      r.logTerm = hint.term;
      this.send(r);
      return;
    }
    const ents = m.entries;
    const lastNew = m.index + ents.length;
    if (ents.length > 0) {
      const ci = log.findConflict(ents);
      if (ci !== 0) {
        if (ci <= log.committed) return; // would rewrite committed history: a faulty leader
        this.appendEntries(ci === m.index + 1 ? ents : ents.slice(ci - m.index - 1));
      }
    }
    log.commitTo(Math.min(m.commit, lastNew));
    const r = newMessage(MessageType.AppResp, this.id, m.from, this.term);
    r.index = lastNew;
    this.send(r);
  }

  /** Appends (possibly truncating) on a follower, keeping the membership history in step. */
  private appendEntries(ents: Entry[]): void {
    let changed = false;
    if (ents[0]!.index <= this.log.lastIndex()) changed = this.conf.truncateFrom(ents[0]!.index);
    this.log.append(ents);
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (e.type === EntryType.ConfChange) {
        this.conf.push(e.index, e.data);
        changed = true;
      }
    }
    if (changed) this.onConfChanged();
  }

  private handleHeartbeat(m: Message): void {
    if (m.commit <= this.log.lastIndex()) this.log.commitTo(m.commit);
    const r = newMessage(MessageType.HeartbeatResp, this.id, m.from, this.term);
    r.context = m.context;
    r.index = m.index; // the leader's send tick, echoed for its lease
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot!;
    const { index, term } = snap.metadata;
    const r = newMessage(MessageType.AppResp, this.id, m.from, this.term);
    if (index <= this.log.committed) {
      r.index = this.log.committed;
    } else if (this.log.matchTerm(index, term)) {
      // We already have the snapshot's last entry: just learn that it is committed.
      this.log.commitTo(index);
      r.index = this.log.lastIndex();
    } else {
      this.log.restore(snap);
      this.conf.reset(index, snap.metadata.confState);
      r.index = index;
    }
    this.send(r);
  }

  // ------------------------------------------------------------------ leader side of replication

  private handleAppendResponse(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      let next = m.rejectHint;
      if (m.logTerm > 0) next = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.state === ProgressState.Probe && m.index === pr.next - 1 && m.index <= pr.match) {
        // The follower lacks an entry it acknowledged: it lost its disk, or it is a new
        // incarnation under a reused id (or this reject is a stale duplicate). Forget what it
        // acked (lowering match is always safe) and probe from its hint.
        pr.match = 0;
        pr.next = Math.max(1, Math.min(m.index, next + 1));
        pr.probeSent = false;
        this.sendAppend(m.from, pr, true);
        return;
      }
      if (pr.maybeDecrTo(m.index, next)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, pr, true);
      }
      return;
    }
    if (m.index > this.log.lastIndex()) return; // acks something we never sent
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      else if (pr.state === ProgressState.Snapshot && (pr.match >= pr.pendingSnapshot || pr.match + 1 >= this.log.firstIndex())) {
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);
      if (this.maybeCommit()) this.bcast = Bcast.Commit;
      else if (this.bcast === Bcast.None) this.bcast = Bcast.Entries;
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
      this.maybeDropDeparting(m.from, pr, false);
    } else if (pr.state === ProgressState.Probe && m.index === pr.match && m.index === pr.next - 1) {
      // The answer to an empty probe at our match: the logs agree there, so pipeline from it.
      pr.becomeReplicate();
      if (this.bcast === Bcast.None) this.bcast = Bcast.Entries;
    }
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (m.index <= this.tickCount && m.index > pr.ackedHeartbeatTick) pr.ackedHeartbeatTick = m.index;
    // Lost Apps would otherwise leave a full window stuck forever.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, pr, true);
    if (m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (!acks || !this.hasReadQuorum(acks)) return;
    for (const rs of this.readOnly.advance(m.context)) this.respondRead(rs.from, rs.context, rs.index);
  }

  private hasReadQuorum(acks: Set<NodeId>): boolean {
    const voters = this.voters();
    let n = 0;
    for (const v of voters) if (acks.has(v)) n++;
    return isQuorum(n, voters.length);
  }

  /** Sends as many Apps to `to` as the window allows; returns whether any was sent. */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    let sent = false;
    let ifEmpty = sendIfEmpty;
    while (this.maybeSendAppend(to, pr, ifEmpty)) {
      sent = true;
      ifEmpty = false;
    }
    return sent;
  }

  private maybeSendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (to === this.id || pr.isPaused()) return false;
    const log = this.log;
    const last = log.lastIndex();
    if (pr.next > last + 1) pr.next = last + 1;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm < 0) return this.sendSnapshot(to, pr);
    let ents = NO_ENTRIES;
    if (pr.next <= last) {
      try {
        ents = log.slice(pr.next, last + 1, this.maxMsgSize);
      } catch (e) {
        if (e instanceof CompactedError) return this.sendSnapshot(to, pr);
        throw e;
      }
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const m = newMessage(MessageType.App, this.id, to, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = log.committed;
    this.send(m);
    pr.sentEntries(ents.length, prevIndex + ents.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // A peer we have not heard from lately probably cannot take a snapshot stream anyway.
    if (!pr.recentActive) return false;
    const snap = this.log.storage.snapshot();
    if (snap.metadata.index === 0) return false;
    pr.becomeSnapshot(snap.metadata.index);
    const m = newMessage(MessageType.Snap, this.id, to, this.term);
    m.snapshot = snap;
    this.send(m);
    return true;
  }

  private bcastHeartbeat(ctx: Uint8Array): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      const m = newMessage(MessageType.Heartbeat, this.id, id, this.term);
      // Never beyond what the follower is known to hold (it may lag).
      m.commit = Math.min(pr.match, this.log.committed);
      m.context = ctx;
      m.index = this.tickCount;
      this.send(m);
    }
  }

  /** Sends the broadcast owed since the last flush (proposals and commits are coalesced). */
  flush(): void {
    if (this.localReads.size > 0 && this.lead !== NONE && (this.lead !== this.readsLead || this.term !== this.readsTerm)) {
      this.reissueReads();
    }
    if (this.bcast === Bcast.None) return;
    const ifEmpty = this.bcast === Bcast.Commit;
    this.bcast = Bcast.None;
    if (this.role !== Role.Leader) return;
    for (const [id, pr] of this.prs) if (id !== this.id) this.sendAppend(id, pr, ifEmpty);
  }

  hasPendingBroadcast(): boolean {
    return this.bcast !== Bcast.None && this.role === Role.Leader;
  }

  /** Advances the commit index to what a quorum of voters has persisted. */
  maybeCommit(): boolean {
    const voters = this.voters();
    const n = voters.length;
    const s = this.scratch;
    for (let i = 0; i < n; i++) s[i] = this.prs.get(voters[i]!)?.match ?? 0;
    const mci = majorityIndex(s, n);
    if (mci <= this.log.committed || mci === Infinity) return false;
    // Figure 8: counting replicas is only safe for an entry of the current term.
    if (!this.faults.commitOldTermByCount && this.log.termOr(mci, 0) !== this.term) return false;
    const wasInTerm = this.committedInCurrentTerm();
    this.log.commitTo(mci);
    if (!wasInTerm && this.committedInCurrentTerm()) this.releasePendingReads();
    // A leader removed from the configuration leaves once its removal is committed. It tells the
    // remaining voter with the most of the log to campaign at once (TimeoutNow): otherwise the
    // group waits out an election timeout, and with two voters left often a split vote or two more
    // (1.5-2.4 s without a leader in chaos runs, against ~0.1 s). Liveness only: an election is an
    // election, and that voter has the removal (a quorum of the new configuration committed it).
    if (!this.isVoter(this.id) && this.conf.currentIndex() <= this.log.committed) {
      let successor = NONE;
      let best = -1;
      for (const v of this.voters()) {
        const match = this.prs.get(v)?.match ?? -1;
        if (match > best) {
          successor = v;
          best = match;
        }
      }
      if (successor !== NONE) this.sendTimeoutNow(successor);
      this.becomeFollower(this.term, NONE);
    }
    return true;
  }

  /** Drops membership history below the storage's snapshot (nobody can ask for it any more). */
  compactConfHistory(): void {
    if (this.conf.size() > 16) this.conf.compact(this.log.firstIndex() - 1);
  }

  /** The host persisted entries up to `index` (leader: now its own copy counts). */
  onPersisted(): void {
    if (this.role !== Role.Leader) return;
    const self = this.prs.get(this.id);
    if (!self || !self.maybeUpdate(this.log.persistedIndex())) return;
    if (this.maybeCommit()) this.bcast = Bcast.Commit;
  }

  // ------------------------------------------------------------------ proposals

  private appendLeaderEntry(type: EntryType, data: Uint8Array): Entry {
    const e: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.appendOne(e);
    return e;
  }

  private checkPropose(bytes: number, largest: number): void {
    if (this.role !== Role.Leader) throw new ProposeError('NOT_LEADER', `node ${this.id} is not the leader`, this.lead);
    if (this.leadTransferee !== NONE) {
      throw new ProposeError('TRANSFER_IN_PROGRESS', `leadership is being transferred to ${this.leadTransferee}`, this.id);
    }
    if (largest > this.maxEntrySize) {
      throw new ProposeError('PROPOSAL_TOO_LARGE', `entry of ${largest} bytes exceeds ${this.maxEntrySize}`, this.id);
    }
    if (this.maxUncommitted > 0 && this.uncommittedSize > 0 && this.uncommittedSize + bytes > this.maxUncommitted) {
      throw new ProposeError('OVERLOADED', `${this.uncommittedSize} bytes of proposals are not committed yet`, this.id);
    }
  }

  propose(data: Uint8Array): ProposalTicket {
    this.checkPropose(data.length, data.length);
    const e = this.appendLeaderEntry(EntryType.Normal, data);
    this.uncommittedSize += data.length;
    if (this.bcast === Bcast.None) this.bcast = Bcast.Entries;
    return { index: e.index, term: e.term };
  }

  proposeBatch(datas: Uint8Array[]): ProposalTicket {
    if (datas.length === 0) throw new ProposeError('EMPTY_PROPOSAL', 'proposeBatch needs at least one entry', this.lead);
    let bytes = 0;
    let largest = 0;
    for (const d of datas) {
      bytes += d.length;
      if (d.length > largest) largest = d.length;
    }
    this.checkPropose(bytes, largest);
    const first = this.log.lastIndex() + 1;
    const term = this.term;
    const u = this.log.unstable;
    for (let i = 0; i < datas.length; i++) u.pushOne({ term, index: first + i, type: EntryType.Normal, data: datas[i]! });
    this.uncommittedSize += bytes;
    if (this.bcast === Bcast.None) this.bcast = Bcast.Entries;
    return { index: first, term };
  }

  proposeConfChange(cc: ConfChange): ProposalTicket {
    this.checkPropose(cc.context.length, cc.context.length);
    if (!this.committedInCurrentTerm()) {
      throw new ProposeError('CONF_CHANGE_IN_PROGRESS', 'the leader has not committed an entry of its term yet', this.id);
    }
    if (this.conf.currentIndex() > this.log.committed) {
      throw new ProposeError('CONF_CHANGE_IN_PROGRESS', `conf change at ${this.conf.currentIndex()} is not committed yet`, this.id);
    }
    const why = checkConfChange(this.conf.current(), cc);
    if (why !== undefined) throw new ProposeError('INVALID_CONF_CHANGE', why, this.id);
    const e = this.appendLeaderEntry(EntryType.ConfChange, encodeConfEntry(cc, applyConfChange(this.conf.current(), cc)));
    this.conf.push(e.index, e.data);
    this.onConfChanged();
    if (this.bcast === Bcast.None) this.bcast = Bcast.Entries;
    return { index: e.index, term: e.term };
  }

  /** Committed entries are leaving the uncommitted budget. */
  reduceUncommitted(ents: readonly Entry[]): void {
    if (this.maxUncommitted === 0 || this.uncommittedSize === 0) return;
    let s = 0;
    for (let i = 0; i < ents.length; i++) s += ents[i]!.data.length;
    this.uncommittedSize = s >= this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  // ------------------------------------------------------------------ reads

  readIndex(context: Uint8Array, lease: boolean): void {
    if (this.lead === NONE) throw new ProposeError('NOT_LEADER', `node ${this.id} knows no leader`, NONE);
    const key = contextKey(context);
    if (this.localReads.has(key)) return; // already waiting for this context
    this.localReads.set(key, { context, lease });
    if (this.readsLead !== this.lead || this.readsTerm !== this.term) this.reissueReads();
    else this.issueRead(context, lease);
  }

  private reissueReads(): void {
    this.readsRetryElapsed = 0;
    this.readsLead = this.lead;
    this.readsTerm = this.term;
    for (const r of this.localReads.values()) this.issueRead(r.context, r.lease);
  }

  private issueRead(context: Uint8Array, lease: boolean): void {
    if (this.role === Role.Leader) {
      this.leaderReadIndex(this.id, context, lease);
      return;
    }
    const m = newMessage(MessageType.ReadIndex, this.id, this.lead, this.term);
    m.context = context;
    m.index = lease ? 1 : 0; // asks the leader for a lease read
    this.send(m);
  }

  private leaderReadIndex(from: NodeId, context: Uint8Array, lease: boolean): void {
    if (this.faults.readIndexWithoutQuorum) {
      this.respondRead(from, context, this.log.committed);
      return;
    }
    const voters = this.voters();
    if (voters.length === 1 && voters[0] === this.id) {
      this.respondRead(from, context, this.log.committed);
      return;
    }
    // Until an entry of this term commits, our commit index may lag entries that earlier leaders
    // committed: park the request.
    if (!this.committedInCurrentTerm()) {
      this.pendingReads.push({ from, context, lease });
      return;
    }
    if (lease && this.leaseValid()) {
      this.respondRead(from, context, this.log.committed);
      return;
    }
    if (this.readOnly.add(from, context, this.log.committed, this.id)) this.bcastHeartbeat(context);
  }

  private releasePendingReads(): void {
    const reads = this.pendingReads;
    this.pendingReads = [];
    for (const r of reads) this.leaderReadIndex(r.from, r.context, r.lease);
  }

  /**
   * A lease holds while a quorum acknowledged heartbeats sent less than an election timeout ago
   * (minus a tick of clock skew): those followers ignore elections until then. Void once a
   * transfer started in this term (TimeoutNow elections ignore leases).
   */
  leaseValid(): boolean {
    if (!this.checkQuorum || this.role !== Role.Leader || this.leadTransferee !== NONE || this.timeoutNowTerm === this.term) return false;
    const voters = this.voters();
    let fresh = 0;
    for (const v of voters) {
      if (v === this.id) fresh++;
      else {
        const pr = this.prs.get(v);
        if (pr && this.tickCount - pr.ackedHeartbeatTick < this.electionTimeout - 1) fresh++;
      }
    }
    return isQuorum(fresh, voters.length);
  }

  private respondRead(from: NodeId, context: Uint8Array, index: number): void {
    if (from === this.id) {
      if (this.localReads.delete(contextKey(context))) this.readStates.push({ index, context });
      return;
    }
    const m = newMessage(MessageType.ReadIndexResp, this.id, from, this.term);
    m.index = index;
    m.context = context;
    this.send(m);
  }

  // ------------------------------------------------------------------ transfer, reports

  transferLeadership(to: NodeId): void {
    if (this.role !== Role.Leader || to === this.id || !this.isVoter(to)) return;
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.transferElapsed = 0; // the transfer has one election timeout to finish
    const pr = this.prs.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, pr, false);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.timeoutNowTerm = this.term;
    this.send(newMessage(MessageType.TimeoutNow, this.id, to, this.term));
  }

  reportUnreachable(id: NodeId): void {
    const pr = this.role === Role.Leader ? this.prs.get(id) : undefined;
    if (pr && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.role === Role.Leader ? this.prs.get(id) : undefined;
    if (!pr || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat) before probing.
    pr.probeSent = true;
  }

  confStateAt(index: number): ConfState {
    const cs = this.conf.at(index);
    if (!cs) throw new ConfStateUnavailableError(`membership at ${index} is below the snapshot at ${this.conf.baseIndex()}`);
    return { voters: [...cs.voters], learners: [...cs.learners] };
  }
}
