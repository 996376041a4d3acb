// A node of a static cluster restarted on an empty data directory must not rejoin as if new (it
// forgot its votes and log and could help elect a leader missing committed entries): its peers
// refuse it (PEER_DISK_REPLACED) and it exits with one clear line. Real processes on loopback.

import { expect } from 'chai';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster, type RaftdNode } from './cluster.js';

async function propose(node: RaftdNode, group: number, value: string): Promise<{ status: number; body: any }> {
  return node.post(`/v1/groups/${group}/propose`, JSON.stringify({ op: 'set', key: 'k', value }), { 'content-type': 'application/json' });
}

async function readKey(node: RaftdNode, group: number): Promise<string | null> {
  const r = await node.post(`/v1/groups/${group}/read?consistency=linearizable`, { key: 'k' });
  expect(r.status, JSON.stringify(r.body)).to.equal(200);
  return r.body.result.value;
}

describe('raftd processes: a node restarted with a wiped data directory (integration)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;

  afterEach(async () => {
    await cluster?.destroy();
  });

  it('a late first start works; after a wipe the node exits non-zero naming the problem, and the others keep committing', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 2 });
    const groups = [1, 2];
    const [n1, n2, n3] = cluster.nodes as [RaftdNode, RaftdNode, RaftdNode];
    // A genuine first start with node 3 late: its peers have not recorded it yet, it is admitted.
    n1.start();
    n2.start();
    await cluster.waitForLeaders([0, ...groups], 20_000);
    for (const g of groups) expect((await propose(n1, g, 'before')).status).to.equal(200);
    n3.start();
    await cluster.waitForApi(20_000);
    for (const g of groups) {
      // Node 3 creates its groups as its peers' messages arrive: retry until it serves the value.
      const deadline = Date.now() + 15_000;
      let seen: unknown;
      while (Date.now() < deadline) {
        const r = await n3.post(`/v1/groups/${g}/read?consistency=linearizable`, { key: 'k' });
        seen = r.status === 200 ? r.body.result.value : r.body;
        if (seen === 'before') break;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(seen).to.equal('before');
    }

    await n3.stop();
    rmSync(n3.spec.dataDir, { recursive: true, force: true });
    const t0 = Date.now();
    n3.start();
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([n3.exited, new Promise<string>((r) => (timer = setTimeout(() => r('still running after 10 s'), 10_000)))]);
    clearTimeout(timer);
    const elapsed = Date.now() - t0;
    expect(code).to.equal(2);
    // Process start-up (tsx, a shared 2-core machine) is most of it; the refusal itself is the first Hello.
    expect(elapsed).to.be.below(10_000); // about 1 s when measured

    const log3 = readFileSync(join(cluster.dir, 'node3.log'), 'utf8');
    const stderrLines = log3.split('\n').filter((l) => l.startsWith('raftd: '));
    expect(stderrLines).to.have.length(1);
    expect(stderrLines[0]).to.match(
      /^raftd: node [12] refused this node: node 3 came back with a different data directory \(incarnation [0-9a-f]+, known [0-9a-f]+\): it may have forgotten votes and log entries; remove it .* or restore its disk$/,
    );
    // The healthy side says it too, in its own log.
    const peerLogs = readFileSync(join(cluster.dir, 'node1.log'), 'utf8') + readFileSync(join(cluster.dir, 'node2.log'), 'utf8');
    expect(peerLogs).to.match(/"code":"PEER_DISK_REPLACED"/);

    for (const g of groups) {
      const r = await propose(n1, g, 'after');
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(await readKey(n2, g)).to.equal('after');
    }
  });
});
