// The pure Raft core of one group. Imports nothing outside daemon/raft/.
export * from './types.js';
export { RaftNode } from './node.js';
export { MemoryStorage, StorageError } from './memory-storage.js';
export { encodeConfChange, decodeConfChange, encodeConfEntry, decodeConfEntry, applyConfChange, checkConfChange, ConfChangeDecodeError } from './membership.js';
export { RaftConfigError, ConfStateUnavailableError } from './raft.js';
