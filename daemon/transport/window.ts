// The 16 MiB HTTP/2 receive windows (protocol/h2-window.ts) on the gRPC peer server.
//
// Raft traffic flows from each peer's gRPC client to our server, so what limits a large App
// message is OUR receive window, and grpc-js offers no server option to change it: this hooks the
// sessions of its http2 servers.

import type * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { H2_RECEIVE_WINDOW, widenConnectionWindow } from '../../protocol/h2-window.js';

export { H2_RECEIVE_WINDOW };

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

/** Per-stream window by a new SETTINGS frame, and the connection window. */
function widenSession(session: http2.Http2Session, bytes: number): void {
  try {
    session.settings({ initialWindowSize: bytes });
  } catch {
    return; // a session already closing
  }
  widenConnectionWindow(session, bytes);
}
