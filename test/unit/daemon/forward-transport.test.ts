// raftd's LeaderForwarder over undici, on real loopback sockets: a leader that refuses the
// connection is REFUSED (the caller may try the next leader), one that takes the request and never
// answers, answers past the deadline, or resets is FAILED (the outcome is unknown), within the
// exchange's deadline; an answer past maxResponseBytes fails even when chunked; the headers given
// (the forwarded mark, the client's token) reach the leader.

import { expect } from 'chai';
import http from 'node:http';
import { ForwardError, LeaderForwarder } from '../../../daemon/api/forward.js';
import { freePort } from '../../support/ports.js';

interface Leader {
  addr: string;
  hits: Array<{ url: string; headers: http.IncomingHttpHeaders; body: Buffer }>;
  server: http.Server;
}

async function leader(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Leader> {
  const port = await freePort();
  const hits: Leader['hits'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      handler(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { addr: `127.0.0.1:${port}`, hits, server };
}

const failure = (p: Promise<unknown>): Promise<ForwardError> => p.then(() => expect.fail('the exchange succeeded'), (e: unknown) => e as ForwardError);

describe('LeaderForwarder transport (undici) on real sockets', () => {
  const leaders: Leader[] = [];
  const forwarders: LeaderForwarder[] = [];
  const forwarder = (o?: ConstructorParameters<typeof LeaderForwarder>[0]): LeaderForwarder => {
    const f = new LeaderForwarder(o);
    forwarders.push(f);
    return f;
  };
  afterEach(async () => {
    for (const f of forwarders.splice(0)) f.close();
    for (const l of leaders.splice(0)) {
      l.server.closeAllConnections();
      await new Promise<void>((r) => l.server.close(() => r()));
    }
  });

  it('a refused connection is REFUSED', async () => {
    const err = await failure(forwarder().propose(`127.0.0.1:${await freePort()}`, 1, Buffer.from('x'), {}, 2000));
    expect(err).to.be.instanceOf(ForwardError);
    expect(err.code).to.equal('REFUSED');
  });

  it('a leader that never sends its headers is FAILED after the deadline', async () => {
    const silent = await leader(() => undefined);
    leaders.push(silent);
    const t0 = Date.now();
    const err = await failure(forwarder().propose(silent.addr, 1, Buffer.from('x'), {}, 300));
    expect(err.code).to.equal('FAILED');
    expect(Date.now() - t0).to.be.within(250, 2500);
    expect(silent.hits).to.have.length(1);
  });

  it('an answer trickled in past the deadline is FAILED (the whole answer, not idle time)', async () => {
    const trickle = await leader((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"pad":"');
      const t = setInterval(() => res.write('x'), 50);
      res.on('close', () => clearInterval(t));
    });
    leaders.push(trickle);
    const t0 = Date.now();
    const err = await failure(forwarder().request(trickle.addr, 'GET', '/status', {}, undefined, 400));
    expect(err.code).to.equal('FAILED');
    expect(Date.now() - t0).to.be.within(350, 2500);
  });

  it('a reset after the leader took the request is FAILED', async () => {
    const resets = await leader((req) => req.socket.destroy());
    leaders.push(resets);
    const err = await failure(forwarder().propose(resets.addr, 1, Buffer.from('x'), {}, 2000));
    expect(err.code).to.equal('FAILED');
    expect(resets.hits).to.have.length(1);
  });

  it('a chunked answer past maxResponseBytes is FAILED; headers and body reach the leader', async () => {
    const chunked = await leader((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 64; i++) res.write('x'.repeat(4096));
      res.end();
    });
    leaders.push(chunked);
    const err = await failure(forwarder({ maxResponseBytes: 32 << 10 }).propose(chunked.addr, 3, Buffer.from('entry'), { 'x-raftd-forwarded': '1', authorization: 'Bearer t' }, 2000));
    expect(err.code).to.equal('FAILED');
    expect(err.message).to.match(/larger than 32768 bytes/);
    expect(chunked.hits).to.have.length(1);
    const hit = chunked.hits[0]!;
    expect(hit.url).to.equal('/v1/groups/3/propose');
    expect(hit.headers['x-raftd-forwarded']).to.equal('1');
    expect(hit.headers.authorization).to.equal('Bearer t');
    expect(hit.headers['content-type']).to.equal('application/octet-stream');
    expect(hit.body.toString()).to.equal('entry');
    const answer = await forwarder({ maxResponseBytes: 1 << 20 }).propose(chunked.addr, 3, Buffer.from('entry'), {}, 2000);
    expect(String(answer.body)).to.have.length(64 * 4096);
  });
});
