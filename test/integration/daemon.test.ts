// raftd as real processes on loopback: elections across many groups, kill -9 of a node and of
// the whole cluster, joining and removing a node.

import { expect } from 'chai';
import { LocalCluster, type RaftdNode } from './cluster.js';

const GROUPS = 64;
const allGroups = Array.from({ length: GROUPS }, (_, i) => i + 1);

async function propose(node: RaftdNode, group: number, value: string): Promise<{ status: number; body: any }> {
  return node.post(`/v1/groups/${group}/propose`, JSON.stringify({ op: 'set', key: 'k', value }), { 'content-type': 'application/json' });
}

async function readKey(node: RaftdNode, group: number, key: string): Promise<string | null> {
  const r = await node.post(`/v1/groups/${group}/read?consistency=linearizable`, { key });
  expect(r.status, JSON.stringify(r.body)).to.equal(200);
  return r.body.result.value;
}

describe('raftd processes (integration)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;

  afterEach(async () => {
    await cluster?.destroy();
  });

  it(`3 nodes with ${GROUPS} groups: every group elects a leader within 5 s`, async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: GROUPS });
    await cluster.startAll();
    await cluster.waitForApi(20_000); // process start-up is not election time
    const t0 = Date.now();
    const leaders = await cluster.waitForLeaders([0, ...allGroups], 5000);
    expect(leaders.size).to.equal(GROUPS + 1);
    expect(Date.now() - t0).to.be.below(5000);
  });

  it('kill -9 of one node: the others keep committing in every group; it restarts and catches up', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 8 });
    await cluster.startAll();
    const groups = [1, 2, 3, 4, 5, 6, 7, 8];
    await cluster.waitForLeaders([0, ...groups], 10_000);
    const [n1, n2, n3] = cluster.nodes as [RaftdNode, RaftdNode, RaftdNode];
    for (const g of groups) expect((await propose(n1, g, 'before')).status).to.equal(200);
    await n3.kill();
    for (const g of groups) {
      const r = await propose(n1, g, 'during');
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    }
    n3.start();
    await cluster.waitForLeaders(groups, 10_000);
    for (const g of groups) {
      // A linearizable read served by the restarted node sees the write made while it was down.
      expect(await readKey(n3, g, 'k')).to.equal('during');
      expect(await readKey(n2, g, 'k')).to.equal('during');
    }
  });

  it('a full-cluster kill -9 and restart loses no acknowledged entry', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 4 });
    await cluster.startAll();
    await cluster.waitForLeaders([0, 1, 2, 3, 4], 10_000);
    const acked = new Map<number, number>();
    const writers = [1, 2, 3, 4].map(async (g) => {
      for (let i = 1; i <= 40; i++) {
        const r = await propose(cluster.nodes[i % 3]!, g, String(i));
        if (r.status === 200) acked.set(g, i);
      }
    });
    await Promise.all(writers);
    await Promise.all(cluster.nodes.map((n) => n.kill()));
    await cluster.startAll();
    await cluster.waitForLeaders([1, 2, 3, 4], 15_000);
    for (const g of [1, 2, 3, 4]) {
      expect(acked.get(g)).to.equal(40);
      expect(await readKey(cluster.nodes[0]!, g, 'k')).to.equal('40');
    }
  });

  it('a 4th node joins with --join, becomes a learner then a voter of a group; a node is removed', async () => {
    const opts = { nodes: 3, groups: 1 };
    cluster = await LocalCluster.create(opts);
    await cluster.startAll();
    await cluster.waitForLeaders([0, 1], 10_000);
    const n1 = cluster.nodes[0]!;
    expect((await propose(n1, 1, 'one')).status).to.equal(200);
    const n4 = await cluster.addJoiner(4, n1, opts);
    n4.start();
    await cluster.waitForApi(20_000);
    // Registered through the meta group.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const nodes = (await n1.get('/v1/nodes')).body as { nodes: Array<{ id: number }> };
      if (nodes.nodes.some((n) => n.id === 4)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    let r = await n1.post('/v1/groups/1/members', { node: 4, role: 'learner' });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    // The learner receives the log: a stale read on it eventually shows the value.
    const until = Date.now() + 10_000;
    let seen: unknown = null;
    while (Date.now() < until) {
      const s = await n4.post('/v1/groups/1/read?consistency=stale', { key: 'k' });
      seen = s.status === 200 ? s.body.result.value : null;
      if (seen === 'one') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(seen).to.equal('one');
    r = await n1.post('/v1/groups/1/members', { node: 4, role: 'voter' });
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    const st = (await n1.get('/status')).body as { groups: Array<{ group: number; voters: number[] }> };
    expect(st.groups.find((g) => g.group === 1)!.voters).to.include(4);
    // Remove node 3 from the group; writes still commit with voters 1, 2, 4.
    const del = await fetch(`${n1.url}/v1/groups/1/members/3`, { method: 'DELETE', headers: n1.authHeaders() });
    expect(del.status, await del.text()).to.equal(200);
    await cluster.nodes[2]!.kill();
    expect((await propose(n1, 1, 'two')).status).to.equal(200);
    expect(await readKey(n4, 1, 'k')).to.equal('two');
  });

  it('bad configuration stops raftd at once with one clear line', async () => {
    const { spawnSync } = await import('node:child_process');
    const { entryCommand } = await import('./cluster.js');
    const r = spawnSync(process.execPath, [...entryCommand('daemon/main.ts'), '--peers', '1=127.0.0.1:7001,1=127.0.0.1:7002'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/appears twice/);
  });

  it('a data directory in the old layout (RocksDB files directly in it) is refused with what to do', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync, existsSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { entryCommand } = await import('./cluster.js');
    const dir = mkdtempSync(join(tmpdir(), 'raftd-old-layout-'));
    try {
      writeFileSync(join(dir, 'CURRENT'), 'MANIFEST-000005\n');
      const r = spawnSync(process.execPath, [...entryCommand('daemon/main.ts'), '--id', '1', '--peers', '1=127.0.0.1:7001', '--data-dir', dir, '--insecure'], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).to.equal(2);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/old layout/);
      expect(existsSync(join(dir, 'log')), 'no new store was created beside the old one').to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
