// The one interface an adapter implements. The SDK (server.ts) turns it into the HTTP contract of
// docs/state-machine-api.md, so adapters deal with typed calls, never with HTTP or validation.

/** A committed log entry handed to the adapter. `data.length === 0` is a no-op entry. */
export interface Entry {
  index: number;
  term: number;
  data: Uint8Array;
}

/** The adapter's verdict on one entry, in the order of the batch. */
export type EntryResult =
  | { ok: true; result?: unknown }
  /** A deterministic failure (same on every replica): the index still advances. */
  | { ok: false; error: { code: string; message: string } };

/** What the SDK answers per entry on the wire (the adapter's verdict plus index, or a skip). */
export type WireEntryResult =
  | { index: number; ok: true; result: unknown }
  | { index: number; ok: false; error: { code: string; message: string } }
  | { index: number; skipped: true };

export interface StateMachine {
  /** Highest index whose effect is durable (0 for an unknown group). */
  lastLogIndex(group: number): Promise<number>;
  /**
   * Applies entries whose indexes are contiguous and all > lastLogIndex(group): the SDK has already
   * dropped redelivered ones. Must persist the new index and the effects atomically, and return one
   * result per entry. Throwing means "nothing beyond lastLogIndex was applied" (raftd retries).
   */
  applyBatch(group: number, entries: Entry[]): Promise<EntryResult[]>;
  /** Answers a query from current state; never changes state. */
  read(group: number, query: unknown): Promise<unknown>;
  /** Freezes a point-in-time view cheaply; `prepared` names it (<= 1024 chars). */
  prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }>;
  /** Streams a prepared view: byte-identical for the same `prepared`, even while updates continue. */
  saveSnapshot(group: number, prepared: string): AsyncIterable<Uint8Array>;
  /** Atomically replaces the group's state with a snapshot; returns its last index. */
  recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number>;
  /** RAFT_SYNC=1 only: makes everything applied durable; returns the durable index. */
  sync?(group: number): Promise<number>;
  /** Drops the group's state (idempotent). */
  deleteGroup?(group: number): Promise<void>;
}

/** HTTP status for the contract's codes; adapter-defined codes default to 422. */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  BAD_REQUEST: 400,
  BAD_QUERY: 400,
  BAD_SNAPSHOT: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  INDEX_GAP: 409,
  SNAPSHOT_GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  UNAVAILABLE: 503,
};

/**
 * Throw this from any StateMachine method to answer a contract error. `code` is a stable,
 * machine-readable UPPER_SNAKE string; `status` defaults from STATUS_BY_CODE (422 if unknown).
 */
export class StateMachineError extends Error {
  readonly status: number;
  constructor(
    readonly code: string,
    message: string,
    status?: number,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'StateMachineError';
    this.status = status ?? STATUS_BY_CODE[code] ?? 422;
  }
}

/** The pino-compatible subset of a logger the SDK uses. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export { MIN_GROUP, MAX_GROUP } from '../../protocol/client-api.js';
