// The data the Raft core of one group consumes and produces. Nothing here does I/O:
// the host (daemon/host) or the simulator (test/sim) persists, sends and applies.

export type NodeId = number;

/** No node: used for "no vote" and "no known leader". Node ids are >= 1. */
export const NONE: NodeId = 0;

export enum EntryType {
  /** Application data (or an empty entry appended by a new leader, data.length === 0). */
  Normal = 0,
  /** A membership change; data is an encoded ConfChange (see membership.ts). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be durable before any message from the same Ready is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** The membership in force at some log position. One change at a time (see membership.ts). */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  /** Opaque to the core (the host puts the node's address here). */
  context: Uint8Array;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/** data is opaque to the core: the simulator puts the state there; raftd streams it separately. */
export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export enum MessageType {
  Vote = 0,
  VoteResp = 1,
  PreVote = 2,
  PreVoteResp = 3,
  App = 4,
  AppResp = 5,
  Heartbeat = 6,
  HeartbeatResp = 7,
  Snap = 8,
  /** Follower -> leader: request a read index on behalf of the follower. */
  ReadIndex = 9,
  ReadIndexResp = 10,
  /** Leader -> transferee: start an election now, ignoring leases. */
  TimeoutNow = 11,
  /** Follower/host -> leader: a snapshot could not be delivered; go back to probing. */
  SnapStatus = 12,
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** App: term of the entry at `index` (the entry before `entries`). Vote: last log term. AppResp reject: term at rejectHint. */
  logTerm: number;
  /**
   * App: index of the entry before `entries`. AppResp: last index matched (or rejected). Vote: last
   * log index. ReadIndexResp: the read index. ReadIndex: 1 asks for a lease read. Heartbeat: the
   * leader's tick when sent, echoed in HeartbeatResp (lease freshness).
   */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp with reject: the follower's hint of where to probe next. */
  rejectHint: number;
  /** Heartbeat(+Resp)/ReadIndex(+Resp): the read request's context; Vote(PreVote): "transfer" marks a TimeoutNow election. */
  context: Uint8Array;
  snapshot?: Snapshot;
}

export enum Role {
  Follower = 0,
  Candidate = 1,
  PreCandidate = 2,
  Leader = 3,
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/** A read that may be served once the local applied index reaches `index`. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

/**
 * One batch of work for the host. Order of duties:
 * 0. `earlyMessages` may be sent at once, before or while step 1 runs (or with `messages`);
 * 1. persist `snapshot` (if any), `entries`, and `hardState` (if any) — durably when `mustSync`;
 * 2. only then send `messages`;
 * 3. apply `committedEntries` (they are already durable: commit implies persisted on a quorum and,
 *    on this node, persisted by an earlier Ready or by step 1);
 * 4. call advance(ready).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  /**
   * Messages that may leave before this Ready is persisted: a leader's appends and heartbeats, unless
   * the Ready moves the term or vote or installs a snapshot (RaftNode.splitEarly decides; nobody
   * else). The leader's own entries count toward a quorum only once advanced.
   */
  earlyMessages: Message[];
  /** Messages that may leave only once this Ready is persisted (votes, acks, everything else). */
  messages: Message[];
  readStates: ReadState[];
  mustSync: boolean;
}

export interface Storage {
  /** Durable hard state and the membership of the latest snapshot (or the initial one). */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most maxBytes of data (always at least one entry if any is in range). */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at i; for i === snapshot index, the snapshot's term. Throws CompactedError / UnavailableError. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot (metadata, and data where the storage holds it). */
  snapshot(): Snapshot;
}

export class CompactedError extends Error {
  readonly code = 'RAFT_LOG_COMPACTED';
  constructor(index: number) {
    super(`log entry ${index} was compacted`);
  }
}

export class UnavailableError extends Error {
  readonly code = 'RAFT_LOG_UNAVAILABLE';
  constructor(index: number) {
    super(`log entry ${index} is not available`);
  }
}

/**
 * Deliberately wrong behaviours, for proving that the simulator catches bugs.
 * Never set outside tests.
 */
export interface RaftFaults {
  /** Commit an entry of an earlier term by counting replicas (Raft paper, Figure 8). */
  commitOldTermByCount?: boolean;
  /** Grant votes without checking that the candidate's log is at least as up to date. */
  voteWithoutLogCheck?: boolean;
  /** Answer read index requests without confirming leadership with a quorum. */
  readIndexWithoutQuorum?: boolean;
  /** Put every message of a Ready among its earlyMessages: votes and acks leave before the write. */
  ackBeforePersist?: boolean;
  /** Stop sending to a peer as soon as its removal is appended (it never learns it was removed). */
  forgetRemovedPeer?: boolean;
}

export interface RaftConfig {
  id: NodeId;
  storage: Storage;
  /** Ticks without hearing from a leader before an election (randomized in [electionTick, 2*electionTick)). */
  electionTick: number;
  heartbeatTick: number;
  /** Injected randomness in [0, 1): the core never calls Math.random. */
  random: () => number;
  /** Last index the application has applied; committed entries are delivered from applied+1. */
  applied?: number;
  /** Byte budget of one App message (and of one batch of committed entries). */
  maxSizePerMsg?: number;
  /** Max App messages in flight to one follower in replicate state. */
  maxInflightMsgs?: number;
  /** Byte budget of proposals appended but not yet committed; proposals beyond are refused. */
  maxUncommittedEntriesSize?: number;
  /** Largest single proposal accepted (default 64 MiB); larger ones throw PROPOSAL_TOO_LARGE. */
  maxEntrySize?: number;
  checkQuorum?: boolean;
  preVote?: boolean;
  faults?: RaftFaults;
}

export type ProposeErrorCode =
  | 'NOT_LEADER'
  | 'TRANSFER_IN_PROGRESS'
  | 'CONF_CHANGE_IN_PROGRESS'
  | 'PROPOSAL_TOO_LARGE'
  | 'OVERLOADED'
  | 'INVALID_CONF_CHANGE'
  | 'EMPTY_PROPOSAL';

export class ProposeError extends Error {
  constructor(
    readonly code: ProposeErrorCode,
    message: string,
    /** The known leader, or NONE. */
    readonly leader: NodeId = NONE,
  ) {
    super(message);
  }
}

/** Where a proposal landed: it succeeded iff the entry applied at `index` has term `term`. */
export interface ProposalTicket {
  index: number;
  term: number;
}

/** A read-only view for status pages and the simulator's invariant checks. */
export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  role: Role;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  confState: ConfState;
  /** Only on the leader: per-peer replication progress. */
  progress?: Record<number, { match: number; next: number; state: 'probe' | 'replicate' | 'snapshot'; recentActive: boolean }>;
  leadTransferee: NodeId;
}
