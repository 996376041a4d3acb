// What a routeToLeader client learns from the cluster (adapters/sdk/client.ts): node addresses from
// /status and NOT_LEADER hints only in strict host:port form, in the configured scheme (never a
// downgrade of https to http), and learnt endpoints are replaced at the next /status (they expire).
import { expect } from 'chai';
import http from 'node:http';
import { RaftdClient } from '../../../adapters/sdk/client.js';
import { freePort } from '../../support/ports.js';

describe('SDK: endpoints learnt from the cluster', () => {
  let server: http.Server;
  let url: string;
  let nodes: Array<{ id: number; httpAddr: string }> = [];
  before(async () => {
    const port = await freePort();
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/status') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ nodes }));
          return;
        }
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NO_LEADER', message: 'no leader' } }));
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    url = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const learnt = async (configured: string[]): Promise<{ client: RaftdClient; endpoints: () => readonly string[] }> => {
    const client = new RaftdClient({ url: configured, token: '', routeToLeader: true, timeoutMs: 2_000, retryMs: 0 });
    await client.propose(1, 'x').catch(() => undefined);
    return { client, endpoints: () => client.endpoints() };
  };

  it('accepts only host:port, and expires what a later /status no longer names', async () => {
    nodes = [
      { id: 2, httpAddr: '127.0.0.1:7002' }, { id: 3, httpAddr: 'evil.example/x?:1' }, { id: 4, httpAddr: 'h:99999' },
      { id: 5, httpAddr: 'user@h:80' }, { id: 6, httpAddr: 'node-6.local:7006' },
    ];
    const { client, endpoints } = await learnt([url]);
    expect(endpoints()).to.deep.equal([url, 'http://127.0.0.1:7002', 'http://node-6.local:7006']);
    nodes = [{ id: 7, httpAddr: '127.0.0.1:7007' }];
    (client as unknown as { discoveredAt: number }).discoveredAt = 0; // the next refresh is due
    await client.propose(1, 'x').catch(() => undefined);
    expect(endpoints()).to.deep.equal([url, 'http://127.0.0.1:7007']);
  });

  it('keeps https for learnt nodes when the configured ones are https', async () => {
    nodes = [{ id: 2, httpAddr: '127.0.0.1:7002' }];
    // The https endpoint does not answer (nothing listens): the plain one is asked for /status.
    const { endpoints } = await learnt([`https://127.0.0.1:${await freePort()}`, url]);
    for (const e of endpoints().slice(2)) expect(e).to.match(/^https:\/\//);
    expect(endpoints()).to.include('https://127.0.0.1:7002');
  });
});
