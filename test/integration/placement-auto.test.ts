// Automatic rebalancing (issue 21) on real processes: 4 raftd nodes with the KV adapter, replication
// factor 3, `--rebalance auto --dead-node-timeout-ms 3000`. A node killed (kill -9) for longer than
// that has its replicas re-created on the others, while writes go on, and nothing acknowledged is lost;
// when it comes back, the placement evens out again.

import { expect } from 'chai';
import { LocalCluster, type RaftdNode } from './cluster.js';
import { putKv } from './kv-put.js';
import { until } from '../support/until.js';

const GROUPS = 4;
const groupIds = Array.from({ length: GROUPS }, (_, i) => i + 1);

interface PlacementView {
  nodes: Array<{ id: number; groups: number; alive: boolean }>;
  groups: Array<{ group: number; members: number[]; move?: unknown }>;
}

describe('placement (integration, 4 nodes, auto rebalancing of a dead node)', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  const acked = new Map<number, Map<string, string>>(groupIds.map((g) => [g, new Map()]));

  before(async () => {
    cluster = await LocalCluster.create({
      nodes: 4, groups: GROUPS, kvApp: true,
      extraArgs: ['--replication-factor', '3', '--rebalance', 'auto', '--dead-node-timeout-ms', '3000'],
    });
    await cluster.startAll();
    await cluster.waitForApi(30_000);
    await cluster.waitForLeaders([0], 30_000);
  });
  after(async () => {
    await cluster?.destroy();
  });

  const running = (): RaftdNode[] => cluster.nodes.filter((n) => n.running());

  /** One write through `via`, retried while the answer says it was not taken; records it when acknowledged. */
  async function put(via: RaftdNode, group: number, key: string, value: string): Promise<void> {
    await putKv(via, group, key, value);
    acked.get(group)!.set(key, value);
  }

  it('re-creates a dead node\'s replicas on the others, writes going on, nothing acknowledged lost', async () => {
    const first = await until('groups placed', 30_000, async () => {
      const v = (await cluster.node(1).get('/v1/placement')).body as PlacementView;
      return v.groups.length === GROUPS ? v : undefined;
    });
    for (const g of groupIds) await put(cluster.node(1 + (g % 4)), g, 'before', `b${g}`);
    // Kill a node that is not the meta leader's, so the one that plans stays up.
    const metaLeader = ((await cluster.node(1).get('/status')).body as { groups: Array<{ group: number; leader: number }> }).groups.find((g) => g.group === 0)!.leader;
    const victim = [1, 2, 3, 4].find((id) => id !== metaLeader && first.groups.some((g) => g.members.includes(id)))!;
    await cluster.node(victim).kill();
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await put(running()[i % running().length]!, groupIds[i % GROUPS]!, `during-${i}`, `d${i}`);
    })();
    const healed = await until('replicas moved off the dead node', 90_000, async () => {
      const v = (await cluster.node(metaLeader).get('/v1/placement')).body as PlacementView;
      return v.groups.every((g) => !g.members.includes(victim) && g.members.length === 3 && !g.move) ? v : undefined;
    });
    writing = false;
    await writer;
    // 4 groups x 3 replicas over the 3 live nodes: each holds all 4.
    for (const n of healed.nodes.filter((x) => x.id !== victim)) expect(n.groups).to.equal(GROUPS);
    // Every live node hosts every group now, each group's voters are the 3 live nodes.
    for (const n of running()) {
      await until(`node ${n.spec.id} hosts every group with the live voters`, 30_000, async () => {
        const st = (await n.get('/status')).body as { groups: Array<{ group: number; voters: number[] }> };
        const data = st.groups.filter((g) => g.group !== 0);
        return data.length === GROUPS && data.every((g) => !g.voters.includes(victim)) ? true : undefined;
      });
    }
    // The dead node comes back: it learns from the meta log that its replicas moved (and drops them),
    // then auto rebalancing evens the groups out again, moving some back to it.
    await cluster.node(victim).start();
    let lastView = '';
    const even = await until('even again with the node back', 90_000, async () => {
      const v = (await cluster.node(metaLeader).get('/v1/placement')).body as PlacementView;
      lastView = JSON.stringify(v);
      return v.groups.every((g) => !g.move) && v.nodes.every((n) => n.groups === 3) ? v : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}; placement: ${lastView.slice(0, 3000)}`);
    });
    for (const n of running()) {
      const mine = even.groups.filter((g) => g.members.includes(n.spec.id)).map((g) => g.group).join();
      await until(`node ${n.spec.id} hosts exactly its groups`, 30_000, async () => {
        const st = (await n.get('/status')).body as { groups: Array<{ group: number }> };
        return st.groups.map((g) => g.group).filter((g) => g !== 0).sort((a, b) => a - b).join() === mine ? true : undefined;
      });
    }
    // Every acknowledged write, read through the node that came back (its groups and the others').
    for (const [group, kv] of acked) {
      for (const [key, value] of kv) {
        // Leadership may still be moving to the preferred leaders: NO_LEADER is definite, a client retries it.
        let r = await cluster.node(victim).post(`/v1/groups/${group}/read`, { op: 'get', key });
        for (let i = 0; i < 20 && r.status === 503 && (r.body as { error?: { code?: string } }).error?.code === 'NO_LEADER'; i++) {
          await new Promise((res) => setTimeout(res, 200));
          r = await cluster.node(victim).post(`/v1/groups/${group}/read`, { op: 'get', key });
        }
        expect(r.status, `group ${group} key ${key} via node ${victim}: ${JSON.stringify(r.body)}`).to.equal(200);
        expect(r.body.result, `group ${group} key ${key}`).to.deep.equal({ value });
      }
    }
  });
});
