// The SDK's RaftdClient over undici keeps the transport rules callers rely on, on real loopback
// sockets: a request that may have reached raftd is never sent again behind the caller's back (a
// reset after sending is UNREACHABLE "may or may not have been applied", a slow answer is TIMEOUT),
// a request that certainly reached no one (connection refused) moves on to the next node, a read
// (idempotent) moves on after any failure, and an answer past maxResponseBytes fails even when it
// comes chunked (no content-length to refuse it by).

import { expect } from 'chai';
import http from 'node:http';
import { RaftdClient, RaftdError } from '../../../adapters/sdk/client.js';
import { freePort } from '../../support/ports.js';

interface Node {
  url: string;
  hits: string[];
  server: http.Server;
}

/** A server that records each request's path, then acts as `handler` says. */
async function node(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Node> {
  const port = await freePort();
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, hits, server };
}

const ok = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'application/json' }).end('{"index":7,"result":"done","appliedIndex":7}');
};

async function stop(n: Node): Promise<void> {
  n.server.closeAllConnections();
  await new Promise<void>((r) => n.server.close(() => r()));
}

const failure = (p: Promise<unknown>): Promise<RaftdError> => p.then(() => expect.fail('the call succeeded'), (e: unknown) => e as RaftdError);

describe('RaftdClient transport (undici) on real sockets', () => {
  const nodes: Node[] = [];
  afterEach(async () => {
    for (const n of nodes.splice(0)) await stop(n);
  });

  it('a propose whose connection resets after sending is UNREACHABLE (outcome unknown), never sent again', async () => {
    const resets = await node((req) => req.socket.destroy());
    const second = await node(ok);
    nodes.push(resets, second);
    const client = new RaftdClient({ url: [resets.url, second.url], token: '', retryMs: 2000 });
    const err = await failure(client.propose(1, 'x'));
    client.close();
    expect(err.code).to.equal('UNREACHABLE');
    expect(err.message).to.match(/may or may not have been applied/);
    expect(resets.hits).to.deep.equal(['/v1/groups/1/propose']);
    expect(second.hits).to.deep.equal([]);
  });

  it('a propose to a node that refuses the connection goes to the next node', async () => {
    const closedPort = await freePort();
    const second = await node(ok);
    nodes.push(second);
    const client = new RaftdClient({ url: [`http://127.0.0.1:${closedPort}`, second.url], token: '' });
    expect(await client.propose(1, 'x')).to.deep.equal({ index: 7, result: 'done', appliedIndex: 7 });
    client.close();
    expect(second.hits).to.deep.equal(['/v1/groups/1/propose']);
  });

  it('a read whose connection resets moves on to the next node', async () => {
    const resets = await node((req) => req.socket.destroy());
    const second = await node((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":42}'));
    nodes.push(resets, second);
    const client = new RaftdClient({ url: [resets.url, second.url], token: '' });
    expect(await client.read(1, { k: 'a' })).to.equal(42);
    client.close();
    expect(resets.hits).to.have.length(1);
    expect(second.hits).to.have.length(1);
  });

  it('a server that never sends its headers is TIMEOUT after timeoutMs, and the propose is not sent again', async () => {
    const silent = await node(() => undefined);
    nodes.push(silent);
    const client = new RaftdClient({ url: silent.url, token: '', timeoutMs: 300, retryMs: 2000 });
    const t0 = Date.now();
    const err = await failure(client.propose(1, 'x'));
    const took = Date.now() - t0;
    client.close();
    expect(err.code).to.equal('TIMEOUT');
    expect(took).to.be.within(250, 2500);
    expect(silent.hits).to.have.length(1);
  });

  it('a chunked answer (no content-length) past maxResponseBytes is UNEXPECTED_RESPONSE', async () => {
    const chunked = await node((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 64; i++) res.write(`${i === 0 ? '{"pad":"' : ''}${'x'.repeat(4096)}`);
      res.end('"}');
    });
    nodes.push(chunked);
    const small = new RaftdClient({ url: chunked.url, token: '', maxResponseBytes: 32 << 10 });
    const err = await failure(small.status());
    small.close();
    expect(err.code).to.equal('UNEXPECTED_RESPONSE');
    expect(err.message).to.match(/larger than 32768 bytes/);
    const fits = new RaftdClient({ url: chunked.url, token: '', maxResponseBytes: 1 << 20 });
    expect(((await fits.status()) as { pad: string }).pad).to.have.length(64 * 4096);
    fits.close();
  });

  it('sends the api token as authorization: Bearer', async () => {
    let seen: string | undefined;
    const n = await node((req, res) => {
      seen = req.headers.authorization;
      ok(req, res);
    });
    nodes.push(n);
    const client = new RaftdClient({ url: n.url, token: 's3cret' });
    await client.propose(1, 'x');
    client.close();
    expect(seen).to.equal('Bearer s3cret');
  });
});
