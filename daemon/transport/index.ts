// The transport's public surface.
export { GrpcTransport, PROTOCOL_VERSION, diskReplacedMessage } from './transport.js';
export type { IncarnationBook, SnapshotHeader, TransportHandlers, TransportOptions, TransportStats } from './transport.js';
export type { GroupMessage } from './codec.js';
export { TransportError } from './errors.js';
export type { TransportErrorCode } from './errors.js';
