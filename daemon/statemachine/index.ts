// raftd's side of the state-machine API v1 (docs/state-machine-api.md).
export { AppClient, type AppClientOptions, type AppProtocol, type EntriesEncoding, type RetryPolicy } from './app-client.js';
export { GroupApplier, ApplyOrderError, type ApplyOrderCode, type ApplyTarget, type GroupApplierOptions } from './applier.js';
export { AppError, type AppErrorCode } from './errors.js';
export type { AppEntry, EntryApplied, EntryFailed, EntryResult, EntrySkipped, UpdateEntriesResult } from './types.js';
