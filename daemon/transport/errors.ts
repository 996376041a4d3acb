// Errors of the transport, each with a stable machine-readable code.

export type TransportErrorCode =
  /** The listen address is taken by another process. */
  | 'ADDRESS_IN_USE'
  /** The listen address could not be bound for another reason (bad host, permissions). */
  | 'BIND_FAILED'
  /** Bytes from a peer are not a valid raftd.v1 message. */
  | 'DECODE_ERROR'
  /** No address is known for the node we were asked to send to. */
  | 'PEER_UNKNOWN'
  /** The peer answered, but as another node or another cluster. */
  | 'IDENTITY_MISMATCH'
  /** A snapshot transfer failed (peer down, stream broken, the receiver refused it). */
  | 'SNAPSHOT_FAILED'
  /** A received snapshot did not match its declared size or checksum. */
  | 'SNAPSHOT_CORRUPT'
  /** Certificates or keys named in the TLS options could not be read. */
  | 'TLS_CONFIG'
  /**
   * A peer knew this node id with another data directory (incarnation): the node restarted on an
   * empty or replaced disk and may have forgotten votes and log entries. Fatal for the refused node.
   */
  | 'PEER_DISK_REPLACED'
  /** A peer did not prove the cluster secret (or we could not prove it to the peer). */
  | 'UNAUTHENTICATED'
  /** The transport was closed (or not started). */
  | 'CLOSED';

export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}
