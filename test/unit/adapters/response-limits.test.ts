// Every answer an HTTP client of this repository reads is bounded, in size and in time: the SDK's
// RaftdClient (maxResponseBytes, timeoutMs) and raftd's LeaderForwarder (a follower reading its
// leader's answer) refuse an answer past their limit instead of buffering it whole, and give up on one
// trickled in past the deadline. A real server on a loopback socket answers 1 MiB; both clients,
// limited to 64 KiB, must fail, and pass under a limit that fits.

import { expect } from 'chai';
import http from 'node:http';
import { RaftdClient, RaftdError } from '../../../adapters/sdk/client.js';
import { ForwardError, LeaderForwarder } from '../../../daemon/api/forward.js';
import { freePort } from '../../support/ports.js';

const BIG = Buffer.from(JSON.stringify({ pad: 'x'.repeat(1 << 20) }));

describe('HTTP clients bound the answers they read', () => {
  let server: http.Server;
  let port: number;
  before(async () => {
    port = await freePort();
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(BIG));
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('RaftdClient gives up on an answer trickled in past timeoutMs (the whole call, not idle time)', async () => {
    const tricklePort = await freePort();
    const trickle = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"pad":"');
      const t = setInterval(() => res.write('x'), 50);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => trickle.listen(tricklePort, '127.0.0.1', r));
    const client = new RaftdClient({ url: `http://127.0.0.1:${tricklePort}`, token: '', timeoutMs: 400 });
    const t0 = Date.now();
    const err = await client.status().then(() => undefined, (e: unknown) => e);
    const took = Date.now() - t0;
    client.close();
    trickle.closeAllConnections();
    await new Promise<void>((r) => trickle.close(() => r()));
    expect(err).to.be.instanceOf(RaftdError);
    expect((err as RaftdError).code).to.equal('TIMEOUT');
    expect(took).to.be.below(3000);
  });

  it('RaftdClient fails an answer past maxResponseBytes with UNEXPECTED_RESPONSE, reads one within it', async () => {
    const small = new RaftdClient({ url: `http://127.0.0.1:${port}`, token: '', maxResponseBytes: 64 << 10 });
    const err = await small.status().then(() => undefined, (e: unknown) => e);
    small.close();
    expect(err).to.be.instanceOf(RaftdError);
    expect((err as RaftdError).code).to.equal('UNEXPECTED_RESPONSE');
    expect((err as RaftdError).message).to.match(/larger than 65536 bytes/);
    const fits = new RaftdClient({ url: `http://127.0.0.1:${port}`, token: '', maxResponseBytes: 2 << 20 });
    expect(((await fits.status()) as { pad: string }).pad).to.have.length(1 << 20);
    fits.close();
  });

  it('LeaderForwarder fails a leader answer past maxResponseBytes (FAILED), reads one within it', async () => {
    const small = new LeaderForwarder({ maxResponseBytes: 64 << 10 });
    const err = await small.request(`127.0.0.1:${port}`, 'GET', '/v1/status', {}, undefined, 5000).then(() => undefined, (e: unknown) => e);
    small.close();
    expect(err).to.be.instanceOf(ForwardError);
    expect((err as ForwardError).code).to.equal('FAILED');
    const fits = new LeaderForwarder({ maxResponseBytes: 2 << 20 });
    const answer = await fits.request(`127.0.0.1:${port}`, 'GET', '/v1/status', {}, undefined, 5000);
    fits.close();
    expect(answer.status).to.equal(200);
    expect(String(answer.body).length).to.equal(BIG.length);
  });
});
