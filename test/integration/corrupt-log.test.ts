// A node's log that lost data must stop raftd, not shorten silently. A copy of a node's data
// directory with 64 bytes flipped in its RocksDB WAL: raftd refuses to start (exit 2, one line
// naming the directory). Then the recovery docs/operations.md "A corrupt log" prescribes: remove
// the node from every group, start it on an empty data directory under a NEW id with --join, add
// it as a learner then a voter; it is caught up by snapshot and holds the group's full data.
// Real processes on loopback.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster, entryCommand, type RaftdNode } from './cluster.js';

const KEYS = 40;

function largestWal(logDir: string): string {
  const logs = readdirSync(logDir).filter((n) => /^\d+\.log$/.test(n));
  logs.sort((a, b) => statSync(join(logDir, b)).size - statSync(join(logDir, a)).size);
  return join(logDir, logs[0]!);
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function removeMember(via: RaftdNode, group: number, node: number): Promise<void> {
  const res = await fetch(`${via.url}/v1/groups/${group}/members/${node}`, { method: 'DELETE', headers: via.authHeaders(), signal: AbortSignal.timeout(15_000) });
  expect(res.status, await res.text()).to.equal(200);
}

describe('raftd processes: a corrupt log refuses to start; the documented recovery restores the data (integration)', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  afterEach(async () => {
    await cluster?.destroy();
  });

  it('64 flipped bytes in a copy of a node\'s WAL: exit 2 with one line naming the directory; rejoin under a new id gets every entry back', async () => {
    // Snapshots every 10 entries keeping 2 behind: a new node is caught up by snapshot, not by log.
    const opts = { nodes: 3, groups: 1, extraArgs: ['--snapshot-interval', '10', '--snapshot-catchup-entries', '2'] };
    cluster = await LocalCluster.create(opts);
    await cluster.startAll();
    await cluster.waitForLeaders([0, 1], 20_000);
    const [n1, , n3] = cluster.nodes as [RaftdNode, RaftdNode, RaftdNode];
    for (let i = 0; i < KEYS; i++) {
      const r = await n1.post('/v1/groups/1/propose', { op: 'set', key: `k${i}`, value: `v${i}` });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    }
    // Node 3 has everything before it goes down (kill -9: the WAL stays as it was).
    await waitFor('node 3 applied everything', 20_000, async () => {
      const st = (await n3.get('/status')).body as { groups: Array<{ group: number; applied: number; commit: number }> };
      const lead = ((await n1.get('/status')).body as { groups: Array<{ group: number; commit: number }> }).groups.find((g) => g.group === 1)!;
      const g = st.groups.find((x) => x.group === 1);
      return g && g.applied >= lead.commit ? true : undefined;
    });
    await n3.kill();

    // A copy of node 3's data directory with 64 bytes flipped in the middle of its WAL.
    const copy = join(cluster.dir, 'node3-copy');
    cpSync(n3.spec.dataDir, copy, { recursive: true });
    const wal = largestWal(join(copy, 'log'));
    const bytes = readFileSync(wal);
    expect(bytes.length).to.be.greaterThan(4096);
    const at = Math.floor(bytes.length / 2);
    for (let i = at; i < at + 64; i++) bytes[i] = bytes[i]! ^ 0x5a;
    writeFileSync(wal, bytes);

    const peers = cluster.nodes.map((n) => `${n.spec.id}=${n.spec.raftAddr}`).join(',');
    const r = spawnSync(
      process.execPath,
      [...entryCommand('daemon/main.ts'), '--id', '3', '--raft-addr', n3.spec.raftAddr, '--http-addr', n3.spec.httpAddr, '--data-dir', copy,
        '--secrets-dir', cluster.secrets!.dir, '--peers', peers, '--groups', '1', '--log-level', 'warn'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.match(/^raftd: data dir .*node3-copy: log store .*node3-copy\/log is corrupt: write-ahead log \d+\.log damaged at byte \d+/);
    expect(lines[0]).to.include('docs/operations.md');

    // The recovery: node 3 leaves every group; the machine comes back empty as node 4 (--join).
    for (const g of [1, 0]) await removeMember(n1, g, 3);
    const n4 = await cluster.addJoiner(4, n1, opts);
    n4.start();
    await waitFor('node 4 registered', 30_000, async () => {
      const nodes = (await n1.get('/v1/nodes')).body as { nodes: Array<{ id: number }> };
      return nodes.nodes.some((n) => n.id === 4) ? true : undefined;
    });
    for (const g of [0, 1]) {
      const add = await n1.post(`/v1/groups/${g}/members`, { node: 4, role: 'learner' });
      expect(add.status, JSON.stringify(add.body)).to.equal(200);
    }
    // Caught up: every key, as written, on node 4.
    await waitFor('node 4 holds every key', 60_000, async () => {
      for (let i = 0; i < KEYS; i++) {
        const s = await n4.post('/v1/groups/1/read?consistency=stale', { key: `k${i}` });
        if (s.status !== 200 || s.body.result.value !== `v${i}`) return undefined;
      }
      return true;
    });
    expect(await n4.metric('raftd_snapshot_transfers_received_total')).to.be.greaterThan(0);
    for (const g of [0, 1]) {
      const add = await n1.post(`/v1/groups/${g}/members`, { node: 4, role: 'voter' });
      expect(add.status, JSON.stringify(add.body)).to.equal(200);
    }
    const st = (await n1.get('/status')).body as { groups: Array<{ group: number; voters: number[] }> };
    expect(st.groups.find((g) => g.group === 1)!.voters.sort()).to.deep.equal([1, 2, 4]);
    // The group commits with node 4 as a voter, and node 4 serves a linearizable read.
    expect((await n1.post('/v1/groups/1/propose', { op: 'set', key: 'k0', value: 'after' })).status).to.equal(200);
    const read = await n4.post('/v1/groups/1/read?consistency=linearizable', { key: 'k0' });
    expect(read.status, JSON.stringify(read.body)).to.equal(200);
    expect(read.body.result.value).to.equal('after');
  });
});
