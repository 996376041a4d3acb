// HTTP/2 receive windows, wider than the protocol's 64 KiB default.
//
// Raft traffic flows from each peer's gRPC client to our server, so what limits a large App
// message (a 600 KB RaftHouse insert) is OUR receive window. HTTP/2 starts every stream and
// connection at 64 KiB, and grpc-js offers no server option to change it: a 620 KB message then
// needs about ten WINDOW_UPDATE round trips, each waiting for this process's event loop, and took
// 4-12 ms on an idle loopback (measured with per-hop timestamps). Raising both windows lets the
// sender write the whole batch at once. Memory stays bounded by the window and by the sender's
// queue limits.

import type * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

/**
 * Receive window (per connection and per stream) for every HTTP/2 peer of raftd: the gRPC peer
 * server, raftd's client to the app (answers), and the SDK's h2c server (UpdateEntries bodies).
 */
export const H2_RECEIVE_WINDOW = 16 << 20;

/**
 * Widens the receive windows of every session the gRPC server accepts from now on. grpc-js keeps
 * its http2 servers in a private map (stable across 1.x); returns how many servers were hooked so
 * the caller can warn when a grpc-js upgrade moves it (windows then stay at 64 KiB: slower, never
 * wrong).
 */
export function widenReceiveWindows(server: grpc.Server, bytes = H2_RECEIVE_WINDOW): number {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return 0;
  let hooked = 0;
  for (const s of servers.keys() as IterableIterator<http2.Http2Server | http2.Http2SecureServer>) {
    if (typeof s?.on !== 'function') continue;
    s.on('session', (session: http2.ServerHttp2Session) => widenSession(session, bytes));
    hooked++;
  }
  return hooked;
}

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

/** Per-stream window by a new SETTINGS frame, and the connection window. */
export function widenSession(session: http2.Http2Session, bytes: number): void {
  try {
    session.settings({ initialWindowSize: bytes });
  } catch {
    return; // a session already closing
  }
  widenConnectionWindow(session, bytes);
}
