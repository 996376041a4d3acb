// The state-machine API end to end: 3 raftd processes, each beside its own KV adapter process.
// Exactly-once apply across app and raftd crashes, snapshot catch-up of a compacted follower,
// linearizable reads through followers, and HAProxy routing writes with /leader-check.

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster, freePort, type RaftdNode } from './cluster.js';

async function set(node: RaftdNode, key: string, value: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await node.post('/v1/groups/1/propose', JSON.stringify({ op: 'set', key, value }), { 'content-type': 'application/json', ...headers });
  return r.status;
}

async function scan(node: RaftdNode): Promise<Array<[string, string]>> {
  const r = await node.post('/v1/groups/1/read?consistency=stale', { op: 'scan' });
  expect(r.status, JSON.stringify(r.body)).to.equal(200);
  const result = r.body.result as { entries?: Array<[string, string]>; items?: Array<{ key: string; value: string }> } | Array<[string, string]>;
  if (Array.isArray(result)) return result;
  if (result.entries) return result.entries;
  return (result.items ?? []).map((i) => [i.key, i.value] as [string, string]);
}

/** Waits until every running node's app has applied the same index, then compares their states. */
async function expectReplicasIdentical(cluster: LocalCluster, timeoutMs = 20_000): Promise<Array<[string, string]>> {
  const deadline = Date.now() + timeoutMs;
  let detail = '';
  while (Date.now() < deadline) {
    const applied: number[] = [];
    for (const n of cluster.nodes.filter((x) => x.running())) {
      try {
        const st = (await n.get('/status')).body as { groups: Array<{ group: number; applied: number; commit: number }> };
        const g = st.groups.find((x) => x.group === 1);
        applied.push(g ? g.applied : -1);
      } catch {
        applied.push(-1); // restarting: not listening yet
      }
    }
    detail = `applied indexes ${applied.join(', ')}`;
    if (applied.every((a) => a === applied[0] && a > 0)) {
      const states = [];
      for (const n of cluster.nodes.filter((x) => x.running())) states.push(await scan(n));
      for (const s of states) expect(s).to.deep.equal(states[0]);
      return states[0]!;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`replicas did not converge within ${timeoutMs} ms: ${detail}`);
}

describe('state-machine API with the KV adapter (integration)', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;

  afterEach(async () => {
    await cluster?.destroy();
  });

  it('applies every acknowledged update exactly once on every replica across app and raftd kill -9', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true, extraArgs: ['--snapshot-interval', '100000'] });
    await cluster.startAll();
    await cluster.waitForLeaders([0, 1], 20_000);
    const [n1, n2, n3] = cluster.nodes as [RaftdNode, RaftdNode, RaftdNode];
    const acked = new Map<string, string>();
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        const node = cluster.nodes[(w + i) % 3]!;
        if (!node.running()) continue;
        try {
          if ((await set(node, key, String(i))) === 200) acked.set(key, String(i));
        } catch {
          /* unknown outcome: not acknowledged */
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 1500));
    // The app of node 2 dies mid-stream and comes back: raftd keeps its log and redelivers.
    await n2.app!.kill();
    await new Promise((r) => setTimeout(r, 1000));
    n2.app!.start();
    await new Promise((r) => setTimeout(r, 1500));
    // raftd of node 3 dies mid-stream and comes back: it replays from the app's LastLogIndex.
    await n3.kill();
    await new Promise((r) => setTimeout(r, 1000));
    n3.start();
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(writers);
    expect(acked.size).to.be.greaterThan(20);
    const state = new Map(await expectReplicasIdentical(cluster, 30_000));
    for (const [k, v] of acked) expect(state.get(k), `acknowledged ${k}`).to.equal(v);
    void n1;
  });

  it('survives kill -9 of the leader under a write load with no acknowledged write lost', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true });
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([0, 1], 20_000);
    const leader = cluster.node(leaders.get(1)!);
    const acked = new Map<string, string>();
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const node = cluster.nodes[(w + i) % 3]!;
        if (!node.running()) continue;
        try {
          if ((await set(node, `L${w}-${i}`, String(i))) === 200) acked.set(`L${w}-${i}`, String(i));
        } catch {
          /* unknown outcome: not acknowledged */
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 1500));
    const before = acked.size;
    await leader.kill();
    await new Promise((r) => setTimeout(r, 3000));
    const during = acked.size;
    stop = true;
    await Promise.all(writers);
    expect(before, 'writes were acknowledged before the kill').to.be.greaterThan(10);
    expect(during, 'the survivors kept acknowledging writes after the leader died').to.be.greaterThan(before);
    const survivors = new Map(await expectReplicasIdentical(cluster, 30_000));
    for (const [k, v] of acked) expect(survivors.get(k), `acknowledged ${k}`).to.equal(v);
    // The old leader comes back and holds every acknowledged write too.
    leader.start();
    const all = new Map(await expectReplicasIdentical(cluster, 30_000));
    for (const [k, v] of acked) expect(all.get(k), `acknowledged ${k} on the restarted leader`).to.equal(v);
  });

  it('brings a follower whose log was compacted past its position back by snapshot', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true, extraArgs: ['--snapshot-interval', '50', '--snapshot-catchup-entries', '5'] });
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([0, 1], 20_000);
    const leader = cluster.node(leaders.get(1)!);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    await follower.kill();
    for (let i = 0; i < 300; i++) expect(await set(leader, `k${i % 37}`, String(i))).to.equal(200);
    follower.start();
    const state = await expectReplicasIdentical(cluster, 30_000);
    expect(state.length).to.equal(37);
    const metrics = (await follower.get('/metrics')).body as string;
    const received = Number(/raftd_snapshot_transfers_received_total (\d+)/.exec(metrics)?.[1]);
    expect(received, 'the follower was brought back by a snapshot').to.be.greaterThan(0);
  });

  it('serves linearizable reads through followers that observe every write acknowledged before the read', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true });
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([0, 1], 20_000);
    const leader = cluster.node(leaders.get(1)!);
    const followers = cluster.nodes.filter((n) => n !== leader);
    for (let i = 1; i <= 60; i++) {
      expect(await set(leader, 'x', String(i))).to.equal(200);
      const f = followers[i % 2]!;
      const r = await f.post('/v1/groups/1/read?consistency=linearizable', { op: 'get', key: 'x' }, { 'x-raftd-no-forward': '1' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      const value = (r.body.result as { value: string | null }).value;
      expect(Number(value), `read ${i} on node ${f.spec.id}`).to.be.at.least(i);
    }
  });

  it('a follower batches its applies (--apply-linger-ms), yet neither the leader\'s answers nor linearizable reads wait for it', async () => {
    // A 2 s linger makes the follower's hold observable; the default is 5 ms.
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true, extraArgs: ['--apply-linger-ms', '2000'] });
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([0, 1], 20_000);
    const leader = cluster.node(leaders.get(1)!);
    const [f1, f2] = cluster.nodes.filter((n) => n !== leader) as [RaftdNode, RaftdNode];
    const get = async (n: RaftdNode, consistency: string): Promise<string | null> => {
      const r = await n.post(`/v1/groups/1/read?consistency=${consistency}`, { op: 'get', key: 'lingered' }, { 'x-raftd-no-forward': '1' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      return (r.body.result as { value: string | null }).value;
    };
    await expectReplicasIdentical(cluster); // the election's entries are applied everywhere

    let t0 = performance.now();
    expect(await set(leader, 'lingered', 'v1')).to.equal(200);
    expect(performance.now() - t0, 'the leader applies (and answers) without lingering').to.be.below(1500);
    expect(await get(leader, 'stale')).to.equal('v1');
    // The followers hold the committed entry: their apps do not have it yet.
    expect(await get(f1, 'stale')).to.equal(null);
    expect(await get(f2, 'stale')).to.equal(null);
    // A linearizable read there waits for the apply, which it releases at once.
    t0 = performance.now();
    expect(await get(f1, 'linearizable')).to.equal('v1');
    expect(performance.now() - t0, 'a read cuts the linger short').to.be.below(1500);
    // The other follower still lingers, then applies by itself.
    expect(await get(f2, 'stale')).to.equal(null);
    await expectReplicasIdentical(cluster, 10_000);
    expect(await get(f2, 'stale')).to.equal('v1');
  });

  it('HAProxy with /leader-check routes writes to the leader, and they resume after the leader dies', async function () {
    if (spawnSync('haproxy', ['-v']).status !== 0) {
      // .ci/run installs Debian's haproxy; a developer machine may not have it.
      console.log('      haproxy is not installed (apt-get install haproxy): skipping');
      this.skip();
    }
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true });
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([0, 1], 20_000);
    const port = await freePort();
    const cfg = join(cluster.dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global', '  maxconn 256',
        'defaults', '  mode http', '  timeout connect 1s', '  timeout client 10s', '  timeout server 10s', '  retries 3', '  option redispatch',
        `frontend writes`, `  bind 127.0.0.1:${port}`, '  default_backend raftd_leader',
        'backend raftd_leader', '  option httpchk GET /leader-check?group=1', '  http-check expect status 200',
        '  default-server inter 100ms fall 1 rise 1',
        ...cluster.nodes.map((n) => `  server node${n.spec.id} ${n.spec.httpAddr} check`),
        '',
      ].join('\n'),
    );
    const haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: 'ignore' });
    try {
      const via = { url: `http://127.0.0.1:${port}` };
      const write = async (key: string): Promise<number> => {
        try {
          const r = await fetch(`${via.url}/v1/groups/1/propose`, {
            method: 'POST',
            // Not forwarded by raftd: only HAProxy's routing can get it to the leader.
            headers: { 'content-type': 'application/json', 'x-raftd-no-forward': '1', ...cluster.clientHeaders() },
            body: JSON.stringify({ op: 'set', key, value: key }),
            signal: AbortSignal.timeout(5000),
          });
          return r.status;
        } catch {
          return 0;
        }
      };
      const until = Date.now() + 5000;
      let status = 0;
      while (Date.now() < until && (status = await write('a')) !== 200) await new Promise((r) => setTimeout(r, 100));
      expect(status, 'writes through HAProxy reach the leader').to.equal(200);
      await cluster.node(leaders.get(1)!).kill();
      const t0 = Date.now();
      let resumed = -1;
      while (Date.now() - t0 < 10_000) {
        if ((await write(`b${Date.now()}`)) === 200) {
          resumed = Date.now() - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(resumed, 'writes resumed after the leader was killed').to.be.greaterThan(-1);
      // Election time here: 10-20 ticks of 50 ms, plus failure detection and one health check.
      expect(resumed).to.be.below(5000);
    } finally {
      haproxy.kill('SIGKILL');
    }
  });
});
