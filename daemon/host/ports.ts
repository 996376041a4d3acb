// What the host needs from storage, transport and the application, as narrow interfaces.
// main.ts wires the real implementations (RocksDB, gRPC, HTTP); nothing here names them.

import type { Entry, HardState, SnapshotMetadata } from '../raft/types.js';
import type { EntryOutcome } from './group.js';

// Shapes owned by the storage and transport modules (types only: the host depends on no implementation).
export type { GroupWrite } from '../storage/index.js';
export type { GroupMessage, SnapshotHeader } from '../transport/index.js';
export type { AppEntry } from '../statemachine/index.js';
import type { AppEntry } from '../statemachine/index.js';
import type { GroupWrite } from '../storage/index.js';
import type { GroupMessage, SnapshotHeader } from '../transport/index.js';

export interface LogStorePort {
  /** One atomic batch; `sync: false` when nothing in it must be durable before acting on it. */
  write(batch: GroupWrite[], opts?: { sync?: boolean }): Promise<void>;
  loadGroup(group: number): Promise<{ hardState: HardState; snapshot: SnapshotMetadata | null; entries: Entry[] }>;
  listGroups(): Promise<number[]>;
  /** Every group at once (one scan per record kind): what start-up uses. */
  loadAll(): Promise<Map<number, { hardState: HardState; snapshot: SnapshotMetadata | null; entries: Entry[] }>>;
  deleteGroup(group: number): Promise<void>;
}



export interface TransportPort {
  send(to: number, msgs: GroupMessage[]): void;
  sendSnapshot(to: number, header: SnapshotHeader, data: AsyncIterable<Uint8Array>): Promise<void>;
  setPeer(id: number, addr: string): void;
  removePeer(id: number): void;
  /** Peers whose connection is down right now (a faster signal than silence). */
  unreachablePeers?(): number[];
}


/** The application, as raftd calls it (daemon/statemachine implements it over HTTP). */
export interface AppPort {
  read(group: number, query: unknown): Promise<unknown>;
  prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }>;
  saveSnapshot(group: number, prepared: string): AsyncIterable<Uint8Array>;
  recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number>;
  deleteGroup(group: number): Promise<void>;
  healthy(): boolean;
}

/** One group's ordered apply pipeline into the application. */
export interface ApplierPort {
  start(): Promise<void>;
  enqueue(entries: AppEntry[]): void;
  appliedIndex(): number;
  waitApplied(index: number, timeoutMs: number): Promise<void>;
  /** Undefined while apply calls succeed; else for how long and how many calls in a row have failed. */
  applyFailure?(): { sinceMs: number; attempts: number; error: Error & { code?: string } } | undefined;
  /** The answer of the factory's `lazy` may have changed: decide again now. */
  nudge(): void;
  stop(): Promise<void>;
  /** Committed entries the app misses that raftd's log no longer holds (see onGap), if any. */
  missing(): { lo: number; hi: number } | undefined;
}

/**
 * `refetch` gives the applier committed entries again from raftd's log (undefined once compacted).
 * `lazy` says whether applies may wait to be batched (this replica follows and owes no client an
 * answer); the host calls nudge() when that may have changed. `onGap` asks the host to repair
 * the app (by snapshot) when refetch cannot bridge a gap.
 */
export type ApplierFactory = (
  group: number,
  onApplied: (lastIndex: number, results: Map<number, EntryOutcome>) => void,
  refetch: (lo: number, hi: number) => AppEntry[] | undefined,
  lazy: () => boolean,
  /** The applier cannot go on: the app misses lo..hi and the log no longer holds them. */
  onGap: (lo: number, hi: number) => void,
) => ApplierPort;
