// Placement (issue 21) on real processes: 5 raftd nodes with the KV adapter, replication factor 3,
// 10 groups. Every node hosts exactly the groups the meta group places on it, every node serves
// writes and reads of every group (forwarding to a member when it holds none), and with one node
// killed (kill -9) writes to every group go on. Then a 6th node joins and a rebalancing pass moves
// replicas to it while writes continue: no acknowledged write is lost.

import { expect } from 'chai';
import { freePort, LocalCluster, type RaftdNode } from './cluster.js';
import { runRaftctl, type RaftctlRun } from './raftctl-run.js';
import { putKv } from './kv-put.js';
import { until } from '../support/until.js';

const GROUPS = 10;
const groupIds = Array.from({ length: GROUPS }, (_, i) => i + 1);

interface PlacementView {
  replicationFactor: number;
  nodes: Array<{ id: number; groups: number; state: string }>;
  groups: Array<{ group: number; members: number[]; preferredLeader: number; move?: unknown }>;
  rebalance: { running: unknown[]; movesDone: number; leading: boolean; planning: boolean };
}

describe('placement (integration, 5 nodes, KV adapter, replication factor 3)', function () {
  this.timeout(240_000);
  let cluster: LocalCluster;
  const opts = { nodes: 5, groups: GROUPS, kvApp: true, extraArgs: ['--replication-factor', '3', '--max-concurrent-moves', '2'] };
  /** Every acknowledged write: group -> key -> value. */
  const acked = new Map<number, Map<string, string>>(groupIds.map((g) => [g, new Map()]));

  before(async () => {
    cluster = await LocalCluster.create(opts);
    await cluster.startAll();
    await cluster.waitForApi(30_000);
  });
  after(async () => {
    await cluster?.destroy();
  });

  const running = (): RaftdNode[] => cluster.nodes.filter((n) => n.running());

  /** raftctl as a real process, with a dead endpoint first in --endpoints. */
  async function raftctl(args: string[]): Promise<RaftctlRun> {
    const endpoints = [`127.0.0.1:${await freePort()}`, ...running().map((n) => n.spec.httpAddr)].join(',');
    return runRaftctl(cluster, ['--endpoints', endpoints, ...args]);
  }

  async function placement(via: RaftdNode): Promise<PlacementView> {
    const r = await via.get('/v1/placement');
    expect(r.status).to.equal(200);
    return r.body as PlacementView;
  }

  async function localGroups(n: RaftdNode): Promise<number[]> {
    const st = (await n.get('/status')).body as { groups: Array<{ group: number; voters: number[] }> };
    return st.groups.map((g) => g.group).filter((g) => g !== 0).sort((a, b) => a - b);
  }

  /** One write through `via`, retried while the answer says it was not taken; records it when acknowledged. */
  async function put(via: RaftdNode, group: number, key: string, value: string): Promise<void> {
    await putKv(via, group, key, value);
    acked.get(group)!.set(key, value);
  }

  async function get(via: RaftdNode, group: number, key: string): Promise<unknown> {
    let last = '';
    try {
      return await until(`get ${key} in group ${group} via node ${via.spec.id}`, 20_000, async () => {
        const r = await via.post(`/v1/groups/${group}/read`, { op: 'get', key });
        if (r.status === 200) return (r.body as { result: unknown }).result ?? null;
        last = `${r.status} ${JSON.stringify(r.body)}`;
        return undefined;
      });
    } catch (e) {
      const st = JSON.stringify(((await via.get('/status')).body as { groups: unknown[] }).groups);
      throw new Error(`${(e as Error).message}; last answer ${last}; its groups: ${st.slice(0, 3000)}`);
    }
  }

  async function expectEveryAckedWrite(): Promise<void> {
    const nodes = running();
    let k = 0;
    for (const [group, kv] of acked) {
      for (const [key, value] of kv) {
        const via = nodes[k++ % nodes.length]!;
        expect(await get(via, group, key), `group ${group} key ${key} via node ${via.spec.id}`).to.deep.equal({ value });
      }
    }
  }

  it('places each group on 3 of the 5 nodes, evenly, and each node hosts only its groups', async () => {
    const view = await until('every group placed', 30_000, async () => {
      const v = await placement(cluster.node(1));
      return v.groups.length === GROUPS ? v : undefined;
    });
    for (const g of view.groups) expect(new Set(g.members).size, `group ${g.group}`).to.equal(3);
    const counts = view.nodes.map((n) => n.groups);
    expect(counts.reduce((a, b) => a + b, 0)).to.equal(GROUPS * 3);
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1);
    // Every node agrees (the placement is meta-group state), and hosts exactly its groups.
    for (const n of cluster.nodes) {
      const want = JSON.stringify(view.groups.map((g) => g.members));
      await until(`node ${n.spec.id} agrees on the placement`, 30_000, async () => (JSON.stringify((await placement(n)).groups.map((g) => g.members)) === want ? true : undefined));
      const mine = view.groups.filter((g) => g.members.includes(n.spec.id)).map((g) => g.group);
      await until(`node ${n.spec.id} hosts its groups`, 30_000, async () => ((await localGroups(n)).join() === mine.join() ? true : undefined));
    }
  });

  it('writes and reads every group through every node (forwarded to a member when not hosted)', async () => {
    for (const n of cluster.nodes) {
      for (const g of groupIds) await put(n, g, `k${n.spec.id}`, `v${n.spec.id}-${g}`);
    }
    await expectEveryAckedWrite();
    // A node that holds no replica of a group still answers for it (and says which node served it).
    const view = await placement(cluster.node(1));
    const foreign = view.groups.find((g) => !g.members.includes(1))!;
    const r = await cluster.node(1).post(`/v1/groups/${foreign.group}/read`, { op: 'get', key: 'k1' });
    expect(r.status).to.equal(200);
    // Group sizes for rebalancing (bytes per node): every replica reports the payload bytes it applied.
    for (const n of cluster.nodes) {
      await until(`node ${n.spec.id} reports bytes applied for its groups`, 30_000, async () => {
        const st = (await n.get('/status')).body as { groups: Array<{ group: number; bytesApplied?: number }> };
        const data = st.groups.filter((g) => g.group !== 0);
        return data.length > 0 && data.every((g) => typeof g.bytesApplied === 'number' && g.bytesApplied > 0) ? true : undefined;
      });
    }
  });

  it('kill -9 of a node: writes to every group continue, through every surviving node', async () => {
    const view = await placement(cluster.node(1));
    // The node with the most groups, so that some groups lose one of their 3 replicas.
    const victim = [...view.nodes].sort((a, b) => b.groups - a.groups)[0]!.id;
    await cluster.node(victim).kill();
    for (const n of running()) {
      for (const g of groupIds) await put(n, g, `after-kill-${n.spec.id}`, `x${g}`);
    }
    await expectEveryAckedWrite();
    await cluster.node(victim).start();
    await cluster.waitForApi(30_000);
    await cluster.waitForLeaders([0], 30_000);
  });

  it('a 6th node joins; a rebalancing pass moves replicas to it while writes go on; nothing acknowledged is lost', async () => {
    const joiner = await cluster.addJoiner(6, cluster.node(1), opts);
    joiner.app!.start();
    await new Promise((r) => setTimeout(r, 1500));
    joiner.start();
    await until('node 6 registered', 30_000, async () => ((await placement(cluster.node(1))).nodes.some((n) => n.id === 6) ? true : undefined));
    // Writes run all along the moves.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const g = groupIds[i % GROUPS]!;
        await put(cluster.nodes[i % 5]!, g, `during-${i}`, `d${i}`);
        written++;
      }
    })();
    // raftctl rebalance --wait: returns once nothing is planned or running.
    const r = await raftctl(['--json', '--timeout-ms', '20000', 'rebalance', '--wait']);
    expect(r.code, r.stderr).to.equal(0);
    const done = JSON.parse(r.stdout) as PlacementView;
    expect(done.nodes.find((n) => n.id === 6)?.groups).to.equal(5);
    expect(done.groups.every((g) => !g.move)).to.equal(true);
    writing = false;
    await writer;
    expect(written).to.be.greaterThan(0);
    const counts = done.nodes.map((n) => n.groups);
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1);
    for (const g of done.groups) expect(g.members).to.have.length(3);
    // Node 6 hosts what it was given, and the nodes that gave replicas up dropped them.
    for (const n of running()) {
      const mine = done.groups.filter((g) => g.members.includes(n.spec.id)).map((g) => g.group);
      await until(`node ${n.spec.id} hosts exactly its groups after the moves`, 30_000, async () => ((await localGroups(n)).join() === mine.join() ? true : undefined));
    }
    // Leadership spread too (the pass ends by moving groups to their preferred leaders).
    const leads = new Map<number, number>();
    for (const n of running()) {
      const st = (await n.get('/status')).body as { groups: Array<{ group: number; role: string }> };
      leads.set(n.spec.id, st.groups.filter((g) => g.group !== 0 && g.role === 'leader').length);
    }
    expect([...leads.values()].reduce((a, b) => a + b, 0)).to.equal(GROUPS);
    expect(Math.max(...leads.values()), JSON.stringify([...leads])).to.be.at.most(3);
    const metrics = String((await cluster.node(1).get('/metrics')).body);
    expect(metrics).to.match(/raftd_placement_moves_running 0/);
    await expectEveryAckedWrite();
  });

  it('raftctl placement (text and --json) and decommission --wait: every replica moves off node 6', async () => {
    const text = await raftctl(['placement']);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/^replication factor 3/);
    expect(text.stdout).to.match(/node 6 active: 5 groups/);
    const r = await raftctl(['--json', '--timeout-ms', '20000', 'decommission', '6', '--wait']);
    expect(r.code, r.stderr).to.equal(0);
    const view = JSON.parse(r.stdout) as PlacementView;
    expect(view.nodes.find((n) => n.id === 6)).to.include({ state: 'decommissioning', groups: 0 });
    const counts = view.nodes.filter((n) => n.id !== 6).map((n) => n.groups);
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1);
    await until('node 6 hosts no data group', 30_000, async () => ((await localGroups(cluster.node(6))).length === 0 ? true : undefined));
    await expectEveryAckedWrite();
    // Usage errors exit 2; an unknown node is refused (exit 1).
    expect((await raftctl(['decommission'])).code).to.equal(2);
    const unknown = await raftctl(['decommission', '99']);
    expect(unknown.code, unknown.stderr).to.equal(1);
    expect(unknown.stderr).to.match(/NOT_FOUND/);
  });
});
