// Issue 18, "faults cost one election", with real processes (raftd + the KV adapter, 3 nodes):
// - kill -9 the application (not raftd) of the node that leads a group under a steady write
//   load: the leader hands leadership to a node whose app is healthy, and writes succeed again
//   within 2 s of the kill;
// - a follower cut off from the others (raftd's fault layer drops all its Raft traffic, both ways)
//   answers reads and writes with NO_LEADER within 1.5 election timeouts, not TIMEOUT after 10 s.

import { expect } from 'chai';
import { LocalCluster, type RaftdNode } from './cluster.js';
import { RaftdClient, RaftdError } from '../../adapters/sdk/client.js';

const TICK_MS = 50;
const ELECTION_TICKS = 10;
const ELECTION_TIMEOUT_MS = TICK_MS * ELECTION_TICKS;

describe('faults cost one election (integration, KV adapter)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;

  before(async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 2, kvApp: true, tickMs: TICK_MS, electionTicks: ELECTION_TICKS, env: { RAFTD_TEST_HOOKS: 'faults' } });
    await cluster.startAll();
    await cluster.waitForLeaders([1, 2], 30_000);
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('kill -9 of the leader\'s application: writes succeed through another leader within 2 s', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const victim = cluster.node(leaders.get(1)!);
    const stopAt = { t: Infinity };
    let killedAt = Infinity;
    /** Completion times of writes that were sent after the kill and succeeded. */
    const afterKill: number[] = [];
    let seq = 0;
    const worker = async (w: number) => {
      const client = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url), timeoutMs: 800, retryMs: 3000 });
      try {
        while (Date.now() < stopAt.t) {
          const started = Date.now();
          const ok = await client.proposeJson(1, { op: 'set', key: `w${w}`, value: String(++seq) }).then(
            () => true,
            (e: unknown) => {
              if (!(e instanceof RaftdError)) throw e;
              return false;
            },
          );
          if (ok && started > killedAt) afterKill.push(Date.now());
          if (!ok) await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        client.close();
      }
    };
    const workers = Array.from({ length: 6 }, (_, w) => worker(w));
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await victim.app!.kill();
      killedAt = Date.now();
      const deadline = killedAt + 10_000;
      while (afterKill.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      stopAt.t = 0;
      await Promise.all(workers);
      expect(afterKill.length, 'no write succeeded within 10 s of the kill').to.be.greaterThan(0);
      const resumedMs = afterKill[0]! - killedAt;
      console.log(`      writes resumed ${resumedMs} ms after the kill`);
      expect(resumedMs).to.be.at.most(2000);
      const now = await cluster.waitForLeaders([1], 5000);
      expect(now.get(1), 'group 1 is still led by the node without an application').to.not.equal(victim.spec.id);
      expect(await victim.metric('raftd_app_leadership_handoffs_total')).to.be.at.least(1);
    } finally {
      stopAt.t = 0;
      await Promise.allSettled(workers);
      if (!victim.app!.running()) victim.app!.start();
    }
    // The app back: the node catches up and serves reads again.
    const local = new RaftdClient({ token: cluster.clientToken(), url: victim.url, timeoutMs: 5000, retryMs: 10_000 });
    try {
      await local.barrier(1);
    } finally {
      local.close();
    }
  });

  it('a partitioned follower answers NO_LEADER within 1.5 election timeouts', async () => {
    const leaders = await cluster.waitForLeaders([1, 2], 30_000);
    const follower: RaftdNode = cluster.nodes.find((n) => n.spec.id !== leaders.get(1))!;
    const others = cluster.nodes.filter((n) => n !== follower).map((n) => n.spec.id);
    const setup = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    await setup.proposeJson(1, { op: 'set', key: 'p', value: '1' });
    // Reads through the follower work before the partition.
    const local = new RaftdClient({ token: cluster.clientToken(), url: follower.url, retryMs: 0, timeoutMs: 15_000 });
    expect(await local.read(1, { op: 'get', key: 'p' })).to.deep.equal({ value: '1' });
    const put = (rules: object) => fetch(`${follower.url}/debug/faults`, { method: 'PUT', headers: { 'content-type': 'application/json', ...follower.authHeaders() }, body: JSON.stringify(rules) });
    try {
      expect((await put({ dropTo: others, dropFrom: others })).status).to.equal(200);
      const cutAt = Date.now();
      // A read sent at once waits for a read index the leader never confirms: it must end NO_LEADER.
      const first = await local.read(1, { op: 'get', key: 'p' }).then(() => undefined, (e: unknown) => e);
      const firstMs = Date.now() - cutAt;
      expect(first, String(first)).to.be.instanceOf(RaftdError);
      expect((first as RaftdError).code).to.equal('NO_LEADER');
      console.log(`      the read sent at the cut answered NO_LEADER after ${firstMs} ms (election timeout ${ELECTION_TIMEOUT_MS} ms)`);
      expect(firstMs).to.be.at.most(1.5 * ELECTION_TIMEOUT_MS);
      // Past the silence, reads and (forwarded) writes are refused at once, with nothing proposed.
      for (const op of [() => local.read(1, { op: 'get', key: 'p' }), () => local.proposeJson(1, { op: 'set', key: 'p', value: '2' })]) {
        const t0 = Date.now();
        const err = await op().then(() => undefined, (e: unknown) => e);
        expect(err, String(err)).to.be.instanceOf(RaftdError);
        expect((err as RaftdError).code).to.equal('NO_LEADER');
        expect(Date.now() - t0).to.be.below(ELECTION_TIMEOUT_MS);
      }
    } finally {
      await put({});
      local.close();
    }
    // Healed: the refused write did not happen; reads through the follower work again.
    const healed = new RaftdClient({ token: cluster.clientToken(), url: follower.url, timeoutMs: 5000, retryMs: 10_000 });
    try {
      expect(await healed.read(1, { op: 'get', key: 'p' })).to.deep.equal({ value: '1' });
    } finally {
      healed.close();
      setup.close();
    }
  });
});
