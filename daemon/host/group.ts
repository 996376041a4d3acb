// One group's replica on this node: its Raft core, its in-memory log cache, the proposals and
// reads waiting on it, and its quiescence state. The Host drives it; it does no I/O itself.

import { RaftNode, MemoryStorage } from '../raft/index.js';
import { EntryType, NONE, ProposeError, Role, type Entry, type ReadState, type RaftStatus } from '../raft/types.js';
import { RaftdError } from '../errors.js';
import type { AppEntry } from './ports.js';
import type { Cancel, Clock } from '../clock.js';

export interface EntryOutcome {
  index: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  skipped?: boolean;
}

/**
 * Proposals appended together: one deadline timer and one promise for the whole batch (a promise
 * or timer per entry costs more than replicating the entry). The pending map points each index
 * at its batch; the batch settles when the last of its entries does.
 */
interface ProposalBatch {
  first: number;
  term: number;
  remaining: number;
  cancelTimer: Cancel | undefined;
  /** Per entry, in order: the outcome, or why it failed. */
  results: Array<EntryOutcome | RaftdError>;
  done(results: Array<EntryOutcome | RaftdError>): void;
}

interface PendingRead {
  resolve(index: number): void;
  reject(err: RaftdError): void;
  cancelTimer: Cancel;
}

export class GroupReplica {
  /** Index -> the batch of the proposal waiting for it (its term is the batch's). */
  readonly pending = new Map<number, ProposalBatch>();
  private readonly reads = new Map<string, PendingRead>();
  private readCounter = 0;
  /** Not ticked while quiesced; any activity wakes it. */
  quiesced = false;
  /** Consecutive ticks the leader saw the group fully caught up and idle. */
  idleTicks = 0;
  /** Ticks since the group last woke: lease reads need a full election timeout awake. */
  awakeTicks = 0;
  /** Applied index of the latest snapshot taken of the app (log compacted behind it). */
  lastSnapshotIndex = 0;
  snapshotInFlight = false;
  /** Index up to which committed entries were handed to the applier. */
  private handedThrough = 0;
  /** Bytes of the entries handed to the applier since the last snapshot taken: a snapshot trigger. */
  private bytesHanded = 0;
  /** placement (issue 21): payload bytes handed to the app since this replica started (a size estimate for rebalancing). */
  private bytesHandedSinceStart = 0;
  /** Snapshot transfers in progress to peers (leader side). */
  readonly snapshotsSending = new Set<number>();
  /** Index of the snapshot sent to each peer, until the peer's log has caught up past it (leader side). */
  readonly snapshotSentAt = new Map<number, number>();
  deleted = false;
  /** See repairThrough. */
  private repairIndex = 0;
  /** Ticks until the next snapshot request of a repair. */
  private repairTicks = 0;
  /** Ticks until this leader may try handing leadership over again (its app cannot apply). */
  handOffTicks = 0;
  /**
   * Ticks (while awake) since this replica last heard its group's leader: a follower past an
   * election timeout of silence answers NO_LEADER at once instead of holding requests.
   */
  leaderSilentTicks = 0;
  /** Role and leader as of the last Ready's soft state: cheap to read on every tick. */
  role: Role = Role.Follower;
  leaderId: number = NONE;

  constructor(
    readonly nodeId: number,
    readonly group: number,
    readonly node: RaftNode,
    readonly storage: MemoryStorage,
    /** Deadlines of proposals and reads (the host's clock: virtual time in the simulator). */
    private readonly clock: Clock,
  ) {}

  status(): RaftStatus {
    return this.node.status();
  }

  /** Index up to which committed entries were handed to the applier (or applied by the host: meta). */
  get handedToApp(): number {
    return this.handedThrough;
  }

  /** placement (issue 21): payload bytes handed to the app since this replica started. */
  get bytesApplied(): number {
    return this.bytesHandedSinceStart;
  }

  /** Bytes of entries handed to the applier since the last snapshot was taken. */
  get bytesSinceSnapshot(): number {
    return this.bytesHanded;
  }

  /** The next committed entries went to the applier: they count toward the byte snapshot trigger. */
  handedOver(entries: readonly AppEntry[]): void {
    for (const e of entries) this.bytesHanded += e.data.length;
    for (const e of entries) this.bytesHandedSinceStart += e.data.length;
    this.handedThrough = entries[entries.length - 1]!.index;
  }

  /** Entries through `index` are with the app without passing through handedOver (start-up, the meta group). */
  markHandedThrough(index: number): void {
    this.handedThrough = index;
  }

  /**
   * Repair in progress: the app misses committed entries through this index that the log no
   * longer holds (0: none). Cleared once a snapshot covering it is restored into the app.
   */
  get repairThrough(): number {
    return this.repairIndex;
  }

  /** The app misses committed entries through `index`: ask the leader for a snapshot at the next repair tick. */
  needsRepairThrough(index: number): void {
    this.repairIndex = Math.max(this.repairIndex, index);
    this.repairTicks = 0;
  }

  /** One tick of a pending repair: true once per `everyTicks` (the first tick included), when a snapshot request is due. */
  repairRequestDue(everyTicks: number): boolean {
    if (this.repairTicks-- > 0) return false;
    this.repairTicks = everyTicks;
    return true;
  }

  /** A snapshot at `index` was restored into the app: true when that ended a pending repair (now cleared). */
  repairedBy(index: number): boolean {
    if (this.repairIndex === 0 || index < this.repairIndex) return false;
    this.repairIndex = 0;
    return true;
  }

  /** The app was restored from a snapshot at `index`: hand-over resumes past it, bytes count afresh. */
  restoredFromSnapshot(index: number): void {
    this.handedThrough = index;
    this.bytesHanded = 0;
  }

  /**
   * A snapshot of the app was taken: bytes count afresh from what is handed over next. Not from the
   * snapshot's index: entries handed over but not applied yet would count at once, and an app
   * working off a large backlog would then be asked for a snapshot after every batch.
   */
  snapshotTaken(): void {
    this.bytesHanded = 0;
  }

  isLeader(): boolean {
    return this.role === Role.Leader;
  }

  leader(): number {
    return this.leaderId;
  }

  wake(): void {
    if (this.quiesced) {
      this.quiesced = false;
      this.awakeTicks = 0;
    }
    this.idleTicks = 0;
  }

  /**
   * Appends proposals; resolves once every one is applied or failed, with each entry's outcome
   * or error in order. Never rejects.
   */
  proposeAll(datas: Uint8Array[], timeoutMs: number, maxPending: number): Promise<Array<EntryOutcome | RaftdError>> {
    this.wake();
    if (this.pending.size + datas.length > maxPending) {
      const err = new RaftdError('OVERLOADED', `group ${this.group} has ${this.pending.size} proposals pending; retry later`);
      return Promise.resolve(datas.map(() => err));
    }
    let first;
    try {
      first = datas.length === 1 ? this.node.propose(datas[0]!) : this.node.proposeBatch(datas);
    } catch (e) {
      const err = toRaftdError(e, this.group);
      return Promise.resolve(datas.map(() => err));
    }
    return this.trackAll(first.index, datas.length, first.term, timeoutMs);
  }

  /** Promises for entries [first, first+count) of `term`, settled on apply or failed at the deadline. */
  track(first: number, count: number, term: number, timeoutMs: number): Array<Promise<EntryOutcome>> {
    return perEntry(this.trackAll(first, count, term, timeoutMs), count);
  }

  private trackAll(first: number, count: number, term: number, timeoutMs: number): Promise<Array<EntryOutcome | RaftdError>> {
    return new Promise((done) => {
      const batch: ProposalBatch = { first, term, remaining: count, cancelTimer: undefined, results: new Array(count), done };
      for (let k = 0; k < count; k++) this.pending.set(first + k, batch);
      batch.cancelTimer = this.clock.after(timeoutMs, () => {
        for (let k = 0; k < count; k++) {
          if (this.pending.get(first + k) !== batch) continue;
          this.finish(first + k, batch, new RaftdError('TIMEOUT', `group ${this.group}: entry ${first + k} not applied within ${timeoutMs} ms; its outcome is unknown`));
        }
      });
    });
  }

  /** Records one entry's result and settles its batch if it was the last. */
  private finish(index: number, batch: ProposalBatch, result: EntryOutcome | RaftdError): void {
    this.pending.delete(index);
    batch.results[index - batch.first] = result;
    if (--batch.remaining === 0) {
      batch.cancelTimer?.();
      batch.done(batch.results);
    }
  }

  /** The app's outcome for a proposal of this node's own (the applier knows no terms). */
  settleApplied(index: number, outcome: EntryOutcome): void {
    const b = this.pending.get(index);
    if (b) this.finish(index, b, outcome);
  }

  /** Called with every applied entry's term and the app's outcome. */
  settle(entry: Entry, outcome: EntryOutcome): void {
    const b = this.pending.get(entry.index);
    if (!b) return;
    this.finish(
      entry.index,
      b,
      b.term !== entry.term
        ? new RaftdError('PROPOSAL_DROPPED', `group ${this.group}: entry ${entry.index} was replaced after a leader change; the proposal did not take effect`)
        : outcome,
    );
  }

  /**
   * Starts a ReadIndex; resolves with the index the local app must reach before reading. Not
   * confirmed within `unconfirmedMs` (when shorter than `timeoutMs`), the read fails with NO_LEADER:
   * the leader is heard but does not hear this node (a one-way partition), or lost its quorum
   * without this node noticing; the core re-sent the request after an election timeout, so by two
   * the leader had two chances. Definite: a read has no effect, and another node may serve the
   * retry (chaos seed 1823: every client held 3 s, one after the other, by a follower whose messages
   * to the leader vanished).
   */
  readIndex(lease: boolean, timeoutMs: number, unconfirmedMs = timeoutMs): Promise<number> {
    this.wake();
    // Unique across nodes: the leader tracks pending reads by context, so two nodes' reads with
    // the same context would collide and one would wait for a retry.
    const ctxKey = `${this.nodeId}:${this.group}:${++this.readCounter}`;
    const ctx = new TextEncoder().encode(ctxKey);
    return new Promise<number>((resolve, reject) => {
      const early = unconfirmedMs < timeoutMs;
      const cancelTimer = this.clock.after(early ? unconfirmedMs : timeoutMs, () => {
        this.reads.delete(ctxKey);
        reject(
          early
            ? new RaftdError('NO_LEADER', `group ${this.group}: the leader did not confirm a read index within ${unconfirmedMs} ms; retry (on another node)`)
            : new RaftdError('TIMEOUT', `group ${this.group}: read index not confirmed within ${timeoutMs} ms`),
        );
      });
      this.reads.set(ctxKey, { resolve, reject, cancelTimer });
      try {
        this.node.readIndex(ctx, { lease });
      } catch (e) {
        cancelTimer();
        this.reads.delete(ctxKey);
        reject(toRaftdError(e, this.group));
      }
    });
  }

  onReadStates(states: ReadState[]): void {
    const decoder = new TextDecoder();
    for (const rs of states) {
      const key = decoder.decode(rs.context);
      const r = this.reads.get(key);
      if (!r) continue;
      this.reads.delete(key);
      r.cancelTimer();
      r.resolve(rs.index);
    }
  }

  /** Fails the proposals appended after `index` (and every read): this node lost track of them. */
  failAbove(index: number, err: RaftdError): void {
    for (const [i, b] of this.pending) if (i > index) this.finish(i, b, err);
    this.failReads(err);
  }

  /** Fails everything waiting (shutdown, group deleted). */
  failAll(err: RaftdError): void {
    for (const [i, b] of this.pending) this.finish(i, b, err);
    this.failReads(err);
  }

  /** Fails every proposal waiting for its outcome (reads keep waiting). */
  failProposals(err: RaftdError): void {
    for (const [i, b] of this.pending) this.finish(i, b, err);
  }

  /** Fails the reads waiting for a read index (they have no effect: always safe to fail). */
  failReads(err: RaftdError): void {
    for (const [, r] of this.reads) {
      r.cancelTimer();
      r.reject(err);
    }
    this.reads.clear();
  }

  hasWaiters(): boolean {
    return this.pending.size > 0 || this.reads.size > 0;
  }

  /**
   * A leader may quiesce when every voter and learner has every entry, everything is committed
   * and applied, and nobody waits on the group.
   */
  quiescable(): boolean {
    if (this.hasWaiters() || this.snapshotsSending.size > 0 || this.snapshotInFlight || this.repairThrough > 0) return false;
    const st = this.node.status();
    if (st.role !== Role.Leader || st.leadTransferee !== NONE) return false;
    if (st.commit !== st.lastIndex || st.applied !== st.commit || this.node.hasReady()) return false;
    if (!st.progress) return false;
    for (const [id, pr] of Object.entries(st.progress)) {
      if (Number(id) === st.id) continue;
      if (pr.match !== st.lastIndex) return false;
    }
    return true;
  }
}

export function toRaftdError(e: unknown, group: number): RaftdError {
  if (e instanceof RaftdError) return e;
  if (e instanceof ProposeError) {
    switch (e.code) {
      case 'NOT_LEADER':
        return new RaftdError(e.leader === NONE ? 'NO_LEADER' : 'NOT_LEADER', `group ${group}: ${e.message}`);
      case 'OVERLOADED':
        return new RaftdError('OVERLOADED', `group ${group}: ${e.message}`);
      case 'PROPOSAL_TOO_LARGE':
        return new RaftdError('PAYLOAD_TOO_LARGE', `group ${group}: ${e.message}`);
      case 'TRANSFER_IN_PROGRESS':
        // Not CONFLICT: that code also means lasting conflicts (a group that exists), while this
        // one ends by itself within an election timeout, so clients retry it.
        return new RaftdError('LEADERSHIP_TRANSFER', `group ${group}: ${e.message}; retry`);
      case 'CONF_CHANGE_IN_PROGRESS':
        return new RaftdError('CONFLICT', `group ${group}: ${e.message}`);
      case 'INVALID_CONF_CHANGE':
        return new RaftdError('BAD_REQUEST', `group ${group}: ${e.message}`);
    }
  }
  return new RaftdError('INTERNAL', `group ${group}: ${e instanceof Error ? e.message : String(e)}`);
}

const NO_DATA = new Uint8Array(0);

/**
 * What the app gets for a committed entry: a normal entry as it is (the log's own object, read only
 * by the applier: no copy per entry), a configuration change as an empty entry at its index.
 */
export function toAppEntry(entry: Entry): AppEntry {
  return entry.type === EntryType.Normal ? entry : { index: entry.index, term: entry.term, data: NO_DATA };
}

/** One promise per entry over a batch's single promise (for callers that want them apart). */
export function perEntry(all: Promise<Array<EntryOutcome | RaftdError>>, count: number): Array<Promise<EntryOutcome>> {
  const out: Array<Promise<EntryOutcome>> = new Array(count);
  for (let k = 0; k < count; k++) {
    out[k] = all.then((results) => {
      const r = results[k]!;
      if (r instanceof RaftdError) throw r;
      return r;
    });
  }
  return out;
}
