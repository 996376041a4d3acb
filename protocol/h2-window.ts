// HTTP/2 receive windows, wider than the protocol's 64 KiB default, for both ends of raftd's HTTP/2
// links: raftd's client to the app and the SDK's h2c server open their sessions with these
// settings; daemon/transport/window.ts applies them to the gRPC peer server.
//
// A large message (a 600 KB RaftHouse insert) is limited by the RECEIVER's window. HTTP/2 starts
// every stream and connection at 64 KiB: a 620 KB message then needs about ten WINDOW_UPDATE round
// trips, each waiting for the receiver's event loop, and took 4-12 ms on an idle loopback (measured
// with per-hop timestamps). Raising both windows lets the sender write the whole batch at once.
// Memory stays bounded by the window and by the sender's queue limits.

import type * as http2 from 'node:http2';

/**
 * Receive window (per connection and per stream) for every HTTP/2 peer of raftd: the gRPC peer
 * server, raftd's client to the app (answers), and the SDK's h2c server (UpdateEntries bodies).
 */
export const H2_RECEIVE_WINDOW = 16 << 20;

/** The per-stream window, for the SETTINGS a node:http2 server or client opens with. */
export const H2_RECEIVE_SETTINGS: http2.Settings = { initialWindowSize: H2_RECEIVE_WINDOW };

/**
 * The connection window, by WINDOW_UPDATE: SETTINGS cannot change it. Sessions opened with
 * H2_RECEIVE_SETTINGS need only this; the grpc-js server's sessions need both (widenSession).
 */
export function widenConnectionWindow(session: http2.Http2Session, bytes = H2_RECEIVE_WINDOW): void {
  try {
    session.setLocalWindowSize(bytes);
  } catch {
    // A session already closing: nothing to widen.
  }
}
