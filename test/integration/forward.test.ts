// Follower -> leader forwarding of proposals (daemon/api/forward.ts): concurrent proposals reaching
// a follower travel to the leader coalesced into binary batches, and each client must still get
// exactly the answer its own entry earned: its own index, its own app result, its own app refusal.

import { expect } from 'chai';
import { LocalCluster } from './cluster.js';
import { RaftdClient } from '../../adapters/sdk/client.js';

describe('proposal forwarding from a follower (integration, KV adapter)', function () {
  this.timeout(90_000);
  let cluster: LocalCluster;
  let leaderUrl = '';
  let followerUrl: string;
  let token = '';
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });

  before(async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true });
    token = cluster.secrets!.value('apiToken');
    await cluster.startAll();
    // /leader-check needs no token (waitForLeaders reads /status, which does).
    const deadline = Date.now() + 30_000;
    while (!leaderUrl) {
      for (const n of cluster.nodes) {
        const r = await fetch(`${n.url}/leader-check?group=1`).catch(() => undefined);
        if (r?.status === 200) leaderUrl = n.url;
      }
      if (Date.now() > deadline) throw new Error('no leader for group 1 within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    followerUrl = cluster.nodes.find((n) => n.url !== leaderUrl)!.url;
  });
  after(async () => {
    await cluster?.destroy();
  });

  async function propose(url: string, cmd: unknown, headers: Record<string, string> = auth()): Promise<{ status: number; json: any }> {
    const res = await fetch(`${url}/v1/groups/1/propose`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(cmd), signal: AbortSignal.timeout(20_000) });
    return { status: res.status, json: (await res.json()) as unknown };
  }

  it('answers each of many concurrent forwarded proposals with its own index, result or refusal', async () => {
    const n = 60;
    for (let i = 0; i < n; i++) expect((await propose(leaderUrl, { op: 'set', key: `k${i}`, value: `a${i}` })).status).to.equal(200);
    // Every third is refused by the app (BAD_COMMAND); the others swap a value only they know.
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        i % 3 === 2 ? propose(followerUrl, { op: 'nope', key: `k${i}` }) : propose(followerUrl, { op: 'cas', key: `k${i}`, expect: `a${i}`, value: `b${i}` }),
      ),
    );
    const indexes = new Set<number>();
    answers.forEach((a, i) => {
      expect(a.json.index, `answer ${i}`).to.be.a('number');
      indexes.add(a.json.index as number);
      if (i % 3 === 2) {
        expect(a.status, `answer ${i}`).to.equal(422);
        expect(a.json.error.code).to.equal('BAD_COMMAND');
      } else {
        expect(a.status, `answer ${i}: ${JSON.stringify(a.json)}`).to.equal(200);
        expect(a.json.result).to.deep.equal({ swapped: true, value: `b${i}` });
      }
    });
    expect(indexes.size, 'distinct indexes').to.equal(n);
    // The leader's state agrees with the answers.
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${leaderUrl}/v1/groups/1/read`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth() }, body: JSON.stringify({ op: 'get', key: `k${i}` }) });
      const body = (await res.json()) as { result: unknown };
      expect(JSON.stringify(body.result), `k${i}`).to.include(i % 3 === 2 ? `a${i}` : `b${i}`);
    }
  });

  it('a propose-batch sent to a follower is forwarded, each item answered with its own index, result or refusal', async () => {
    await propose(leaderUrl, { op: 'set', key: 'pb', value: 'v0' });
    const cmds = [{ op: 'cas', key: 'pb', expect: 'v0', value: 'v1' }, { op: 'nope', key: 'pb' }, { op: 'cas', key: 'pb', expect: 'v0', value: 'v2' }];
    const res = await fetch(`${followerUrl}/v1/propose-batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth() },
      body: JSON.stringify({ items: cmds.map((c) => ({ group: 1, data: Buffer.from(JSON.stringify(c)).toString('base64') })) }),
    });
    expect(res.status).to.equal(200);
    const { results } = (await res.json()) as { results: any[] };
    expect(results).to.have.length(3);
    expect(new Set(results.map((r) => r.index)).size, JSON.stringify(results)).to.equal(3);
    // In log order the first cas swaps, the refused command changes nothing, the second cas finds v1.
    expect(results[0].result, JSON.stringify(results)).to.deep.equal({ swapped: true, value: 'v1' });
    expect(results[1].error.code).to.equal('BAD_COMMAND');
    expect(results[2].result.swapped).to.equal(false);
  });

  it('a routeToLeader client skips the forwarding hop once told where the leader is, and follows it when it moves', async () => {
    const forwarded = async (url: string): Promise<number> =>
      Number(/raftd_forwarded_requests_total (\d+)/.exec(await (await fetch(`${url}/metrics`, { headers: auth() })).text())![1]);
    const client = new RaftdClient({ url: followerUrl, token, routeToLeader: true });
    const f0 = await forwarded(followerUrl);
    expect((await client.proposeJson(1, { op: 'set', key: 'route', value: '1' })).result).to.deep.equal({ ok: true });
    expect(await forwarded(followerUrl)).to.equal(f0 + 1); // the first one was forwarded...
    for (let i = 2; i <= 4; i++) await client.proposeJson(1, { op: 'set', key: 'route', value: String(i) });
    expect(await forwarded(followerUrl)).to.equal(f0 + 1); // ...the next ones went straight to the leader
    // The leader moves to the follower the client is configured with: the cached leader answers
    // NOT_LEADER, the client goes back to its node, which now leads.
    const follower = cluster.nodes.find((n) => n.url === followerUrl)!;
    const moved = await fetch(`${leaderUrl}/v1/groups/1/transfer-leadership`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${cluster.secrets!.value('adminToken')}` }, body: JSON.stringify({ to: follower.spec.id }) });
    expect(moved.status).to.equal(200);
    expect((await client.proposeJson(1, { op: 'set', key: 'route', value: '5' })).result).to.deep.equal({ ok: true });
    const read = await fetch(`${followerUrl}/v1/groups/1/read?consistency=linearizable`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth() }, body: JSON.stringify({ op: 'get', key: 'route' }) });
    expect(((await read.json()) as { result: { value: string } }).result.value).to.equal('5');
    // Every write landed once: five sets, the last one wins, and the old leader still serves the group.
    leaderUrl = followerUrl;
    followerUrl = cluster.nodes.find((n) => n.url !== leaderUrl)!.url;
  });

  it('a forwarded proposal without the token is refused before it is forwarded', async () => {
    const a = await propose(followerUrl, { op: 'set', key: 'x', value: 'y' }, {});
    expect(a.status).to.equal(401);
    expect(a.json.error.code).to.equal('UNAUTHORIZED');
  });
});
