// The node's durable Raft log: every group in one RocksDB database, group commit per write.
export { LogStore, INCARNATION_META, type GroupWrite, type LoadedGroup, type LogStoreOptions, type LogStoreStats } from './log-store.js';
export { StorageError, type StorageErrorCode } from './errors.js';
export { PeerIncarnations, peerIncarnationKey, type MetaStore } from './incarnation.js';
