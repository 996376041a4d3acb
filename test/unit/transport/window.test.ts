// The HTTP/2 receive windows raftd's servers advertise: 64 KiB by default made a 620 KB App
// message or UpdateEntries body wait for ~10 WINDOW_UPDATE round trips.
import { expect } from 'chai';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { H2_RECEIVE_WINDOW, widenReceiveWindows } from '../../../daemon/transport/window.js';
import { serveStateMachine } from '../../../adapters/sdk/server.js';
import { RecordingStateMachine } from '../../support/recording-sm.js';

/** Connects with plain HTTP/2 and returns the per-stream and connection windows the server grants. */
async function advertisedWindows(url: string): Promise<{ stream: number; connection: number }> {
  const s = http2.connect(url);
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('remoteSettings', () => resolve());
      s.once('error', reject);
    });
    // A server that widens after accepting sends a second SETTINGS and a WINDOW_UPDATE: give them
    // a few turns before reading what was granted.
    const granted = () => ({ stream: s.remoteSettings.initialWindowSize ?? 0, connection: s.state.remoteWindowSize ?? 0 });
    const deadline = Date.now() + 1000;
    while ((granted().stream < H2_RECEIVE_WINDOW || granted().connection < H2_RECEIVE_WINDOW) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return granted();
  } finally {
    s.destroy();
  }
}

describe('HTTP/2 receive windows', () => {
  it('the gRPC peer server grants 16 MiB per stream and per connection', async () => {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    try {
      expect(widenReceiveWindows(server)).to.equal(1);
      expect(await advertisedWindows(`http://127.0.0.1:${port}`)).to.deep.equal({ stream: H2_RECEIVE_WINDOW, connection: H2_RECEIVE_WINDOW });
    } finally {
      server.forceShutdown();
    }
  });

  it('without widening, grpc-js grants HTTP/2\'s 64 KiB (what the hook is for)', async () => {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    try {
      expect(await advertisedWindows(`http://127.0.0.1:${port}`)).to.deep.equal({ stream: 65_535, connection: 65_535 });
    } finally {
      server.forceShutdown();
    }
  });

  it('the SDK\'s h2c server grants 16 MiB per stream and per connection', async () => {
    const sm = new RecordingStateMachine();
    const srv = await serveStateMachine(sm, { port: 0, insecure: true });
    try {
      expect(await advertisedWindows(srv.url)).to.deep.equal({ stream: H2_RECEIVE_WINDOW, connection: H2_RECEIVE_WINDOW });
    } finally {
      await srv.close();
    }
  });
});
