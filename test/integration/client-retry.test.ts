// The SDK client re-sends a proposal that raftd refused without effect. The refusal is made real:
// the leader appends a proposal it cannot replicate (its followers are down), is stopped (SIGSTOP)
// while the followers restart and elect a new leader that writes its own entry at that index, and
// is resumed.
// The old leader then learns that its entry was replaced and answers PROPOSAL_DROPPED. With
// retries off the caller sees that answer; with them on the proposal is sent again and applies once.

import { expect } from 'chai';
import { LocalCluster, type RaftdNode } from './cluster.js';
import { RaftdClient, RaftdError } from '../../adapters/sdk/client.js';

describe('SDK client retries proposals refused without effect (integration, KV adapter)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;

  before(async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 2, kvApp: true });
    await cluster.startAll();
    await cluster.waitForLeaders([1, 2], 30_000);
  });
  after(async () => {
    await cluster?.destroy();
  });

  async function leaderNode(): Promise<RaftdNode> {
    const leaders = await cluster.waitForLeaders([1], 30_000);
    return cluster.node(leaders.get(1)!);
  }

  /** PROPOSAL_DROPPED answers the node gave since it started. */
  const droppedAnswers = (n: RaftdNode): Promise<number> => n.metric('raftd_errors_total{code="PROPOSAL_DROPPED"}');

  /**
   * Stalls a leadership transfer of group 1: its target (a node that leads neither group) is
   * stopped, so group 1's leader refuses proposals with LEADERSHIP_TRANSFER until it gives up (an
   * election timeout) or the target, resumed, takes over. Keys `<prefix>1` and `<prefix>2` (in
   * groups 1 and 2) start at 'a'; `cas(g, to)` is a compare-and-set of group g's key from 'a'.
   * The caller resumes the target.
   */
  async function stallTransfer(prefix: string) {
    const leaders = await cluster.waitForLeaders([1, 2], 30_000);
    const leader = cluster.node(leaders.get(1)!);
    const target = cluster.nodes.find((n) => n.spec.id !== leaders.get(1) && n.spec.id !== leaders.get(2))!;
    const setup = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    await setup.proposeJson(1, { op: 'set', key: `${prefix}1`, value: 'a' });
    await setup.proposeJson(2, { op: 'set', key: `${prefix}2`, value: 'a' });
    target.pause();
    const transfer = leader.post('/v1/groups/1/transfer-leadership', { to: target.spec.id }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const cas = (group: number, to: string) => ({ group, data: JSON.stringify({ op: 'cas', key: `${prefix}${group}`, expect: 'a', value: to }) });
    return { leader, target, setup, transfer, cas };
  }

  /**
   * Proposes a compare-and-set on `key` (from `from` to `to`) through `client`, aimed at the
   * current leader, and arranges for that leader's entry to be replaced. Resolves with the
   * client's outcome and the PROPOSAL_DROPPED answers the old leader gave meanwhile.
   */
  async function proposeIntoReplacedEntry(makeClient: (url: string) => RaftdClient, key: string, from: string, to: string): Promise<{ outcome: unknown; dropped: number }> {
    const oldLeader = await leaderNode();
    const followers = cluster.nodes.filter((n) => n !== oldLeader);
    const client = makeClient(oldLeader.url);
    const droppedBefore = await droppedAnswers(oldLeader);
    try {
      // Killed, not paused: a paused follower would still read the append from its socket buffer
      // once resumed, and the entry would then commit.
      await Promise.all(followers.map((f) => f.kill()));
      const pending = client.proposeJson(1, { op: 'cas', key, expect: from, value: to }).then(
        (r) => r.result,
        (e: unknown) => e,
      );
      // Long enough for the leader to append the entry (it stays in its log after a check-quorum
      // step-down too).
      await new Promise((r) => setTimeout(r, 300));
      oldLeader.pause();
      for (const f of followers) f.start();
      // The two followers elect a leader among themselves; its first entry takes the index.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const st = (await followers[0]!.get('/status').catch(() => ({ body: { groups: [] } }))).body as { groups: Array<{ group: number; leader: number }> };
        const l = st.groups.find((g) => g.group === 1)?.leader;
        if (l && l !== oldLeader.spec.id) break;
        if (Date.now() > deadline) throw new Error('the restarted followers elected no leader within 30 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      oldLeader.resume();
      const outcome = await pending;
      return { outcome, dropped: (await droppedAnswers(oldLeader)) - droppedBefore };
    } finally {
      oldLeader.resume();
      for (const f of followers) if (!f.running()) f.start();
      client.close();
    }
  }

  it('with retries off, the caller gets PROPOSAL_DROPPED and nothing was applied', async () => {
    const setup = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    await setup.proposeJson(1, { op: 'set', key: 'k1', value: 'a' });
    const { outcome, dropped } = await proposeIntoReplacedEntry((url) => new RaftdClient({ token: cluster.clientToken(), url, retryMs: 0 }), 'k1', 'a', 'b');
    expect(outcome, String(outcome)).to.be.instanceOf(RaftdError);
    expect((outcome as RaftdError).code).to.equal('PROPOSAL_DROPPED');
    expect(dropped).to.equal(1);
    expect(await setup.read(1, { op: 'get', key: 'k1' })).to.deep.equal({ value: 'a' });
    setup.close();
  });

  it('with retries on (the default), the dropped proposal is sent again and applies exactly once', async () => {
    const setup = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    await setup.proposeJson(1, { op: 'set', key: 'k2', value: 'a' });
    // Retries on, with a budget that outlasts the followers' restart and election on a loaded machine
    // (the default 5 s counts from the first send, which waits through the whole partition).
    const { outcome, dropped } = await proposeIntoReplacedEntry((url) => new RaftdClient({ token: cluster.clientToken(), url, retryMs: 30_000 }), 'k2', 'a', 'b');
    expect(dropped, 'the old leader answered PROPOSAL_DROPPED, and the client sent the proposal again').to.equal(1);
    // A second application of the compare-and-set would have answered swapped: false.
    expect(outcome).to.deep.equal({ swapped: true, value: 'b' });
    expect(await setup.read(1, { op: 'get', key: 'k2' })).to.deep.equal({ value: 'b' });
    setup.close();
  });

  it('a proposal during a stalled leadership transfer: LEADERSHIP_TRANSFER with retries off, applied once with them on', async () => {
    const { leader, target, setup, transfer, cas } = await stallTransfer('t');
    const once = new RaftdClient({ token: cluster.clientToken(), url: leader.url, retryMs: 0 });
    const retrying = new RaftdClient({ token: cluster.clientToken(), url: leader.url });
    try {
      const refused = await once.propose(1, cas(1, 'b').data).catch((e: unknown) => e);
      expect(refused, String(refused)).to.be.instanceOf(RaftdError);
      expect((refused as RaftdError).code).to.equal('LEADERSHIP_TRANSFER');
      expect((refused as RaftdError).status).to.equal(503);
      const pending = retrying.propose(1, cas(1, 'c').data);
      await new Promise((r) => setTimeout(r, 100));
      target.resume();
      expect((await pending).result).to.deep.equal({ swapped: true, value: 'c' });
      await transfer;
      expect(await setup.read(1, { op: 'get', key: 't1' })).to.deep.equal({ value: 'c' });
    } finally {
      target.resume();
      for (const c of [setup, once, retrying]) c.close();
    }
  });

  it('propose-batch: only the items refused without effect are sent again', async () => {
    // Group 1's leader hands over to a stopped node (stalled); group 2 is untouched.
    const { leader, target, setup, transfer, cas } = await stallTransfer('b');
    const once = new RaftdClient({ token: cluster.clientToken(), url: leader.url, retryMs: 0 });
    const retrying = new RaftdClient({ token: cluster.clientToken(), url: leader.url });
    try {
      const first = await once.proposeBatch([cas(1, 'x'), cas(2, 'a2')]);
      expect(first[0], JSON.stringify(first[0])).to.have.nested.property('error.code', 'LEADERSHIP_TRANSFER');
      expect(first[1], JSON.stringify(first[1])).to.have.nested.property('result.swapped', true);
      // Group 2's item now fails its compare (b2 is a2): it must not be sent again, group 1's must.
      const pending = retrying.proposeBatch([cas(1, 'c'), cas(2, 'zz')]);
      await new Promise((r) => setTimeout(r, 100));
      target.resume();
      const second = await pending;
      expect(second[0], JSON.stringify(second[0])).to.have.nested.property('result.swapped', true);
      expect(second[1], JSON.stringify(second[1])).to.have.nested.property('result.swapped', false);
      await transfer;
      expect(await setup.read(1, { op: 'get', key: 'b1' })).to.deep.equal({ value: 'c' });
      expect(await setup.read(2, { op: 'get', key: 'b2' })).to.deep.equal({ value: 'a2' });
    } finally {
      target.resume();
      for (const c of [setup, once, retrying]) c.close();
    }
  });

  it('propose-batch: a re-send that fails as a whole keeps the results of the items applied before', async () => {
    const { leader, target, setup, cas } = await stallTransfer('c');
    const retrying = new RaftdClient({ token: cluster.clientToken(), url: leader.url });
    try {
      // Round 1: group 2's item applies, group 1's is refused (transfer). The only node this client
      // knows dies before a re-send gets through.
      const pending = retrying.proposeBatch([cas(1, 'x'), cas(2, 'y')]);
      await new Promise((r) => setTimeout(r, 150));
      await leader.kill();
      const results = await pending;
      expect(results[1], JSON.stringify(results[1])).to.have.nested.property('result.swapped', true);
      expect(results[0], JSON.stringify(results[0])).to.have.nested.property('error.code', 'UNREACHABLE');
    } finally {
      target.resume();
      if (!leader.running()) leader.start();
      for (const c of [setup, retrying]) c.close();
    }
    await cluster.waitForLeaders([1, 2], 30_000);
  });

  it('a NOT_LEADER hint whose leader then does not answer: TIMEOUT (outcome unknown), never re-sent as if refused', async () => {
    // The follower refuses (noForward) and names the leader; the leader is stopped, so the
    // client's send to it is delivered to its socket but never answered: it may apply once the
    // leader runs again. Before the fix the client answered the follower's earlier NOT_LEADER,
    // which says "nothing applied", and with retries on sent the proposal again.
    const leader = await leaderNode();
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const setup = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    await setup.proposeJson(1, { op: 'set', key: 'h1', value: 'a' });
    const once = new RaftdClient({ token: cluster.clientToken(), url: follower.url, noForward: true, timeoutMs: 1000, retryMs: 0 });
    const retrying = new RaftdClient({ token: cluster.clientToken(), url: follower.url, noForward: true, timeoutMs: 1000 });
    leader.pause();
    try {
      // Both at once, while the follower still names the stopped leader (it does for two election
      // timeouts of silence, unless a new leader is elected first).
      const outcomes = await Promise.all([once, retrying].map((client) => client.proposeJson(1, { op: 'cas', key: 'h1', expect: 'a', value: 'b' }).catch((e: unknown) => e)));
      for (const outcome of outcomes) {
        expect(outcome, String(outcome)).to.be.instanceOf(RaftdError);
        expect((outcome as RaftdError).code).to.equal('TIMEOUT');
      }
    } finally {
      leader.resume();
      for (const c of [setup, once, retrying]) c.close();
    }
    await cluster.waitForLeaders([1, 2], 30_000);
  });
});
