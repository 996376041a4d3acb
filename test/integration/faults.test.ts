// Issue 18, "faults cost one election", with real processes (raftd + the KV adapter, 3 nodes):
// - kill -9 the application (not raftd) of the node that leads a group under a steady write
//   load: the leader hands leadership to a node whose app is healthy, and writes succeed again
//   within 2 s of the kill;
// - a follower cut off from the others (raftd's fault layer drops all its Raft traffic, both ways)
//   answers reads and writes with NO_LEADER within 1.5 election timeouts, not TIMEOUT after 10 s;
// - with clients that wait (long timeouts, no retries): a write held by a leader whose app was
//   killed, and a write forwarded and a read waiting at a follower when the leader is SIGSTOPped,
//   are answered within 2 s, not at their deadline or when the leader wakes;
// - a follower whose app was killed answers reads APP_UNAVAILABLE at once, and serves them again
//   within 800 ms of the app's restart;
// - a node removed from a group (that may not even know it) answers NO_LEADER at once;
// - a leader cut off from everyone answers the writes it holds (OUTCOME_UNKNOWN) once it steps
//   down, not when the partition heals.

import { expect } from 'chai';
import { LocalCluster, waitForHttp, type RaftdNode } from './cluster.js';
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

  /** Waits until `node` serves linearizable reads of group 1 (its app back, caught up). */
  async function serves(node: RaftdNode, withinMs = 10_000): Promise<void> {
    const c = new RaftdClient({ token: cluster.clientToken(), url: node.url, timeoutMs: 5000, retryMs: 0 });
    const deadline = Date.now() + withinMs;
    try {
      for (;;) {
        const err = await c.barrier(1).then(() => undefined, (e: unknown) => e);
        if (err === undefined) return;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      c.close();
    }
  }

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
    await serves(victim);
  });

  it('kill -9 of the leader\'s application: a write held by that leader is answered within 2 s, not at its 10 s deadline', async () => {
    // A client with a long timeout and no retries, talking to the leader only: what raftd itself
    // does with a proposal whose entry its own app cannot apply. The leader hands leadership over
    // after an election timeout; the proposals it holds are answered then (OUTCOME_UNKNOWN: the
    // entry may apply through the others), so the client moves on instead of waiting 10 s.
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const victim = cluster.node(leaders.get(1)!);
    const direct = new RaftdClient({ token: cluster.clientToken(), url: victim.url, timeoutMs: 15_000, retryMs: 0 });
    try {
      await direct.proposeJson(1, { op: 'set', key: 'held', value: '0' });
      await victim.app!.kill();
      const t0 = Date.now();
      const outcome = await direct.proposeJson(1, { op: 'set', key: 'held', value: '1' }).then(() => 'applied', (e: unknown) => (e instanceof RaftdError ? e.code : String(e)));
      const ms = Date.now() - t0;
      console.log(`      the write sent to the leader without an app ended ${outcome} after ${ms} ms`);
      expect(ms, outcome).to.be.at.most(2000);
      // Unknown (held, then handed over), refused during the transfer, or forwarded to the new leader.
      expect(outcome).to.be.oneOf(['OUTCOME_UNKNOWN', 'LEADERSHIP_TRANSFER', 'applied']);
    } finally {
      direct.close();
      if (!victim.app!.running()) victim.app!.start();
    }
    await serves(victim);
  });

  it('SIGSTOP of the leader: a write forwarded and a read waiting at a follower are answered within 2 s, not when the leader wakes', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const victim = cluster.node(leaders.get(1)!);
    const follower = cluster.nodes.find((n) => n !== victim)!;
    for (const n of cluster.nodes) await serves(n);
    const local = new RaftdClient({ token: cluster.clientToken(), url: follower.url, timeoutMs: 15_000, retryMs: 0 });
    // As the RaftHouse gateway: straight to the leader once it knows it.
    const routed = new RaftdClient({ token: cluster.clientToken(), url: follower.url, timeoutMs: 15_000, retryMs: 0, routeToLeader: true });
    const ended = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (e instanceof RaftdError ? e.code : String(e)));
    try {
      await local.proposeJson(1, { op: 'set', key: 'sp', value: '0' });
      await routed.proposeJson(1, { op: 'set', key: 'sp-routed', value: '0' }); // forwarded: learns the leader
      victim.pause();
      const t0 = Date.now();
      // All reach the leader (forward, read index, straight) before anyone knows it is gone.
      const [write, read, direct] = await Promise.all([
        ended(local.proposeJson(1, { op: 'set', key: 'sp', value: '1' })).then((o) => [o, Date.now() - t0] as const),
        ended(local.read(1, { op: 'get', key: 'sp' })).then((o) => [o, Date.now() - t0] as const),
        ended(routed.proposeJson(1, { op: 'set', key: 'sp-routed', value: '1' })).then((o) => [o, Date.now() - t0] as const),
      ]);
      console.log(`      with the leader stopped, the forwarded write ended ${write[0]} after ${write[1]} ms, the read ${read[0]} after ${read[1]} ms, the routed write ${direct[0]} after ${direct[1]} ms`);
      // Held 5 s below: without the fix these end when the leader wakes (or at 11 s, the forward's deadline).
      expect(write[1], `write: ${write[0]}`).to.be.at.most(2000);
      expect(read[1], `read: ${read[0]}`).to.be.at.most(2000);
      expect(direct[1], `routed write: ${direct[0]}`).to.be.at.most(2000);
      expect(direct[0]).to.be.oneOf(['ok', 'TIMEOUT']);
      // The write's outcome is unknown when abandoned (it reached the old leader); a read has no effect.
      expect(write[0]).to.be.oneOf(['ok', 'TIMEOUT', 'NO_LEADER', 'NOT_LEADER', 'PROPOSAL_DROPPED']);
      expect(read[0]).to.be.oneOf(['ok', 'NO_LEADER', 'NOT_LEADER']);
      await new Promise((r) => setTimeout(r, Math.max(0, 5000 - (Date.now() - t0))));
    } finally {
      victim.resume();
      local.close();
      routed.close();
    }
    await cluster.waitForLeaders([1], 30_000);
  });

  it('kill -9 of a follower\'s application: reads there answer APP_UNAVAILABLE at once, and work again soon after its restart', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const follower = cluster.nodes.find((n) => n.spec.id !== leaders.get(1))!;
    const local = new RaftdClient({ token: cluster.clientToken(), url: follower.url, timeoutMs: 15_000, retryMs: 0 });
    const any = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.filter((n) => n !== follower).map((n) => n.url) });
    try {
      await any.proposeJson(1, { op: 'set', key: 'fa', value: '1' });
      await follower.app!.kill();
      // A write makes the follower's applier call the dead app: unhealthy from then on.
      await any.proposeJson(1, { op: 'set', key: 'fa', value: '2' });
      for (let i = 0; ((await follower.get('/status')).body as { appHealthy: boolean }).appHealthy; i++) {
        expect(i, 'the follower never noticed its app was gone').to.be.below(100);
        await new Promise((r) => setTimeout(r, 50));
      }
      const t0 = Date.now();
      const err = await local.read(1, { op: 'get', key: 'fa' }).then(() => undefined, (e: unknown) => e);
      expect(err, String(err)).to.be.instanceOf(RaftdError);
      expect((err as RaftdError).code).to.equal('APP_UNAVAILABLE');
      expect(Date.now() - t0, 'the read waited for an app that is not there').to.be.below(500);
      // Down for 4 s: long enough for a back-off capped at 2 s to be at its cap.
      await new Promise((r) => setTimeout(r, 4000));
      follower.app!.start();
      await waitForHttp(follower.appUrl()!, 20_000);
      const back = Date.now();
      for (;;) {
        const r = await local.read(1, { op: 'get', key: 'fa' }).then((v) => v, () => undefined);
        if (r !== undefined) {
          expect(r).to.deep.equal({ value: '2' });
          break;
        }
        expect(Date.now() - back, 'reads on the follower still fail after its app came back').to.be.below(5000);
        await new Promise((res) => setTimeout(res, 25));
      }
      const ms = Date.now() - back;
      console.log(`      reads on the follower worked again ${ms} ms after its app answered`);
      expect(ms).to.be.at.most(800);
    } finally {
      if (!follower.app!.running()) follower.app!.start();
      local.close();
      any.close();
    }
  });

  it('a node removed from a group answers requests for it at once instead of waiting for a leader it will never hear', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const leader = cluster.node(leaders.get(1)!);
    const removed = cluster.nodes.find((n) => n !== leader)!;
    for (const n of cluster.nodes) await serves(n);
    const del = await fetch(`${leader.url}/v1/groups/1/members/${removed.spec.id}?force=true`, { method: 'DELETE', headers: leader.authHeaders() });
    expect(del.status, await del.text()).to.equal(200);
    const local = new RaftdClient({ token: cluster.clientToken(), url: removed.url, timeoutMs: 15_000, retryMs: 0 });
    try {
      // It gets the entry that removes it (the leader keeps replicating to it until then), and
      // nothing after. Once it has heard nothing of the group for an election timeout, a write
      // through it is refused at once: it can see no election that would end a wait (even though
      // the leader's node, which leads group 2 too, is still heard).
      await new Promise((r) => setTimeout(r, 3 * ELECTION_TIMEOUT_MS));
      const t0 = Date.now();
      const err = await local.proposeJson(1, { op: 'set', key: 'rm', value: '1' }).then(() => undefined, (e: unknown) => e);
      const ms = Date.now() - t0;
      console.log(`      a write through the removed node ended ${err instanceof RaftdError ? err.code : 'applied'} after ${ms} ms`);
      expect(err, String(err)).to.be.instanceOf(RaftdError);
      expect((err as RaftdError).code).to.equal('NO_LEADER');
      expect(ms).to.be.below(ELECTION_TIMEOUT_MS);
    } finally {
      local.close();
      const add = await fetch(`${leader.url}/v1/groups/1/members`, { method: 'POST', headers: { 'content-type': 'application/json', ...leader.authHeaders() }, body: JSON.stringify({ node: removed.spec.id, role: 'voter' }) });
      expect(add.status, await add.text()).to.equal(200);
    }
    await serves(removed, 20_000);
  });

  it('a leader cut off from everyone answers the writes it holds within 2 s of losing its quorum, not when the partition heals', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const leader = cluster.node(leaders.get(1)!);
    const others = cluster.nodes.filter((n) => n !== leader);
    for (const n of cluster.nodes) await serves(n);
    const direct = new RaftdClient({ token: cluster.clientToken(), url: leader.url, timeoutMs: 15_000, retryMs: 0, noForward: true });
    // As the RaftHouse gateway talks to raftd: through a node of its own, straight to a leader once known.
    const routed = new RaftdClient({ token: cluster.clientToken(), url: others[0]!.url, timeoutMs: 15_000, retryMs: 3000, routeToLeader: true });
    const put = (n: RaftdNode, rules: object) => fetch(`${n.url}/debug/faults`, { method: 'PUT', headers: { 'content-type': 'application/json', ...n.authHeaders() }, body: JSON.stringify(rules) });
    try {
      await direct.proposeJson(1, { op: 'set', key: 'iso', value: '0' });
      await routed.proposeJson(1, { op: 'set', key: 'iso-routed', value: '0' }); // forwarded: learns the leader
      await routed.proposeJson(1, { op: 'set', key: 'iso-routed', value: '1' }); // straight to it
      const ids = others.map((n) => n.spec.id);
      expect((await put(leader, { dropTo: ids, dropFrom: ids })).status).to.equal(200);
      for (const n of others) expect((await put(n, { dropFrom: [leader.spec.id] })).status).to.equal(200);
      const t0 = Date.now();
      // Appended by the leader, never committed: it steps down once it misses its quorum for an
      // election timeout, and then cannot know the entry's fate until it hears a leader again.
      const err = await direct.proposeJson(1, { op: 'set', key: 'iso', value: '1' }).then(() => undefined, (e: unknown) => e);
      const ms = Date.now() - t0;
      console.log(`      the write held by the cut-off leader ended ${err instanceof RaftdError ? err.code : 'applied'} after ${ms} ms`);
      expect(err, String(err)).to.be.instanceOf(RaftdError);
      expect((err as RaftdError).code).to.be.oneOf(['OUTCOME_UNKNOWN', 'NO_LEADER']);
      expect(ms).to.be.at.most(2000);
      // The routing client's leader now answers NO_LEADER (cut off): it goes back to its own node,
      // which forwards to the new leader, instead of re-sending to the old one for its retry budget.
      const r0 = Date.now();
      expect((await routed.proposeJson(1, { op: 'set', key: 'iso-routed', value: '2' })).result).to.deep.equal({ ok: true });
      console.log(`      a routed write after the cut took ${Date.now() - r0} ms`);
      expect(Date.now() - r0).to.be.at.most(2000);
      await new Promise((r) => setTimeout(r, Math.max(0, 4000 - (Date.now() - t0))));
    } finally {
      for (const n of cluster.nodes) await put(n, {});
      direct.close();
      routed.close();
    }
    await cluster.waitForLeaders([1], 30_000);
    for (const n of cluster.nodes) await serves(n);
  });

  it('a routing client (as the RaftHouse gateway) whose own node is cut off moves on to the other nodes, learnt from /status', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const follower: RaftdNode = cluster.nodes.find((n) => n.spec.id !== leaders.get(1))!;
    const others = cluster.nodes.filter((n) => n !== follower).map((n) => n.spec.id);
    for (const n of cluster.nodes) await serves(n);
    // Configured with its own node only, as the gateway is; nothing learnt yet.
    const routed = new RaftdClient({ token: cluster.clientToken(), url: follower.url, timeoutMs: 15_000, retryMs: 3000, routeToLeader: true });
    const put = (rules: object) => fetch(`${follower.url}/debug/faults`, { method: 'PUT', headers: { 'content-type': 'application/json', ...follower.authHeaders() }, body: JSON.stringify(rules) });
    try {
      expect((await put({ dropTo: others, dropFrom: others })).status).to.equal(200);
      // Until it notices, the node still forwards to the leader over HTTP (not cut): wait that out.
      await new Promise((r) => setTimeout(r, 2 * ELECTION_TIMEOUT_MS));
      const t0 = Date.now();
      // The cut-off node answers NO_LEADER at once now; the retry goes to another
      // node (from the cut-off node's /status), which forwards to the leader. Before: re-sent to the
      // same node until the retry budget ran out, then NO_LEADER.
      expect((await routed.proposeJson(1, { op: 'set', key: 'moved-on', value: '1' })).result).to.deep.equal({ ok: true });
      const ms = Date.now() - t0;
      console.log(`      a write through a client whose node was cut off applied after ${ms} ms`);
      expect(ms).to.be.at.most(ELECTION_TIMEOUT_MS);
      expect(routed.url).to.not.equal(follower.url);
      expect(await routed.read(1, { op: 'get', key: 'moved-on' })).to.deep.equal({ value: '1' });
    } finally {
      await put({});
      routed.close();
    }
    for (const n of cluster.nodes) await serves(n);
  });

  it('a follower whose messages to the leader vanish (one-way) answers reads NO_LEADER within 2 election timeouts, not at the request timeout', async () => {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    const leader = leaders.get(1)!;
    const follower: RaftdNode = cluster.nodes.find((n) => n.spec.id !== leader)!;
    const setup = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    await setup.proposeJson(1, { op: 'set', key: 'ow', value: '1' });
    const local = new RaftdClient({ token: cluster.clientToken(), url: follower.url, retryMs: 0, timeoutMs: 15_000 });
    const put = (rules: object) => fetch(`${follower.url}/debug/faults`, { method: 'PUT', headers: { 'content-type': 'application/json', ...follower.authHeaders() }, body: JSON.stringify(rules) });
    let stopWriter = async (): Promise<void> => undefined;
    try {
      expect(await local.read(1, { op: 'get', key: 'ow' })).to.deep.equal({ value: '1' });
      // It still hears the leader (so it is not "silent"), but its read index requests never arrive.
      // A steady write load through the leader keeps the group awake, as in the chaos run.
      expect((await put({ dropTo: [leader] })).status).to.equal(200);
      let writing = true;
      const writer = (async () => {
        const w = new RaftdClient({ token: cluster.clientToken(), url: cluster.node(leader).url, retryMs: 0, timeoutMs: 5000 });
        for (let n = 0; writing; n++) await w.proposeJson(1, { op: 'set', key: 'ow-load', value: String(n) }).catch(() => undefined);
        w.close();
      })();
      stopWriter = async () => {
        writing = false;
        await writer;
      };
      for (let i = 0; i < 2; i++) {
        const t0 = Date.now();
        const err = await local.read(1, { op: 'get', key: 'ow' }).then(() => undefined, (e: unknown) => e);
        const ms = Date.now() - t0;
        console.log(`      a read at the follower that cannot reach the leader answered ${err instanceof RaftdError ? err.message : "ok"} after ${ms} ms`);
        expect(err, String(err)).to.be.instanceOf(RaftdError);
        expect((err as RaftdError).code).to.equal('NO_LEADER');
        expect(ms).to.be.at.most(2 * ELECTION_TIMEOUT_MS + 500);
      }
    } finally {
      await stopWriter();
      await put({});
      local.close();
      setup.close();
    }
    await cluster.waitForLeaders([1], 30_000);
    for (const n of cluster.nodes) await serves(n);
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
