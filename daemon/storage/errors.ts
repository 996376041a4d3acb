// Typed errors of the log store. The host decides what to do by `code`, never by message text.

export type StorageErrorCode =
  /** The data directory belongs to another node id or cluster. */
  | 'IDENTITY_MISMATCH'
  /** The data directory or a record in it is damaged; nothing was reset. */
  | 'CORRUPT'
  /** The store was closed (or is closing). */
  | 'CLOSED'
  /** The disk or RocksDB failed (including "directory locked by another process"). */
  | 'IO'
  /** The caller asked for something that would break the log's invariants; nothing was written. */
  | 'INVALID';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/** RocksDB reports the kind of failure only as the prefix of its status message. */
export function fromRocksError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const code: StorageErrorCode = /corrupt/i.test(msg) ? 'CORRUPT' : 'IO';
  return new StorageError(code, `${what}: ${msg}`, { cause: err });
}
