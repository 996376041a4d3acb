// raftd's client API and admin routes, tried as an attacker on the same machine would: no token, a
// wrong one, the client token on an admin route, forged forwarding headers, a node registering under
// an existing id. Every attempt is refused and nothing changes (terms, logs, membership, groups,
// nodes). Then admin safety: a membership change that leaves a group unable to survive a failure is
// refused unless forced, and a node that registers but never comes up shows in /status and can be
// removed. Three real raftd processes on loopback.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, entryCommand, freePort, type RaftdNode } from './cluster.js';
import { RaftdClient } from '../../adapters/sdk/client.js';

interface NodeView {
  id: number;
  connected: boolean;
  registered: boolean;
  lastSeenMsAgo: number | null;
}

interface StatusBody {
  node: number;
  nodes: NodeView[];
  groups: Array<{ group: number; term: number; lastIndex: number; commit: number; voters: number[]; learners: number[]; leader: number }>;
}

describe('client API and admin routes: authentication, admin safety (integration)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let apiToken = '';
  let adminToken = '';

  before(async () => {
    // Debug logs, so the last test can check that not even those hold a secret.
    cluster = await LocalCluster.create({ nodes: 3, groups: 2, env: { RAFTD_TEST_HOOKS: 'faults' }, extraArgs: ['--log-level', 'debug'] });
    apiToken = cluster.secrets!.value('apiToken');
    adminToken = cluster.secrets!.value('adminToken');
    await cluster.startAll();
    await cluster.waitForApi(30_000);
    await cluster.waitForLeaders([0, 1, 2], 30_000);
  });
  after(async () => {
    await cluster?.destroy();
  });

  const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

  async function call(node: RaftdNode, method: string, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; json: any }> {
    const res = await fetch(node.url + path, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      /* keep the text */
    }
    return { status: res.status, json };
  }

  /** What an attack could change, on every node: each group's term, log and membership; groups; nodes; proposals counted. */
  async function state(): Promise<string> {
    const out: unknown[] = [];
    for (const n of cluster.nodes) {
      const st = (await call(n, 'GET', '/status', undefined, bearer(adminToken))).json as StatusBody;
      const groups = (await call(n, 'GET', '/v1/groups', undefined, bearer(adminToken))).json as unknown;
      const nodes = (await call(n, 'GET', '/v1/nodes', undefined, bearer(adminToken))).json as unknown;
      out.push({
        node: n.spec.id,
        groups: st.groups.map((g) => ({ group: g.group, term: g.term, lastIndex: g.lastIndex, commit: g.commit, voters: g.voters, learners: g.learners, leader: g.leader })),
        catalog: groups,
        registry: nodes,
        registered: st.nodes.map((x) => x.id),
        proposals: await n.metric('raftd_proposals_total'),
      });
    }
    return JSON.stringify(out);
  }

  /** The state once nothing moves any more (the meta leader's start-up duties are done). */
  async function settledState(): Promise<string> {
    let prev = await state();
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await state();
      if (now === prev) return now;
      prev = now;
    }
    throw new Error('the cluster did not settle');
  }

  async function leaderOf(group: number): Promise<RaftdNode> {
    return cluster.node((await cluster.waitForLeaders([group], 30_000)).get(group)!);
  }

  it('refuses every client and admin route without a token, with a wrong one, or with forged forwarding headers; nothing changes', async () => {
    const before = await settledState();
    const leader = await leaderOf(1);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const routes: Array<[string, string, unknown]> = [
      ['POST', '/v1/groups/1/propose', { op: 'set', key: 'evil', value: '1' }],
      ['POST', '/v1/propose-batch', { items: [{ group: 1, data: Buffer.from('evil').toString('base64') }] }],
      ['POST', '/v1/groups/1/read', { op: 'get', key: 'k' }],
      ['POST', '/v1/groups/1/barrier', undefined],
      ['GET', '/status', undefined],
      ['GET', '/metrics', undefined],
      ['GET', '/v1/groups', undefined],
      ['GET', '/v1/nodes', undefined],
      ['GET', '/nope', undefined],
      ['GET', '/v1/placement', undefined],
      ['POST', '/v1/groups', { group: 9 }],
      ['DELETE', '/v1/groups/2', undefined],
      ['POST', '/v1/groups/1/members', { node: 9 }],
      ['DELETE', '/v1/groups/1/members/3?force=true', undefined],
      ['POST', '/v1/groups/1/transfer-leadership', { to: follower.spec.id }],
      ['POST', '/v1/nodes', { id: 9, raftAddr: '127.0.0.1:1', httpAddr: '127.0.0.1:2' }],
      ['DELETE', '/v1/nodes/3?force=true', undefined],
      ['PUT', '/debug/faults', { lossRate: 0.5 }],
      ['POST', '/v1/rebalance', undefined],
      ['POST', '/v1/nodes/3/decommission', undefined],
    ];
    const badCredentials: Array<[string, Record<string, string>]> = [
      ['none', {}],
      ['wrong token', bearer('x'.repeat(43))],
      ['admin token with a byte more', bearer(adminToken + 'x')],
      ['client token cut short', bearer(apiToken.slice(0, -1))],
      ['token without the Bearer scheme', { authorization: adminToken }],
      ['Basic scheme', { authorization: `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}` }],
      // Loopback or "already checked by another raftd" claims are not credentials.
      ['forged proxy and forwarding headers', { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-forwarded-host': 'localhost', 'x-raftd-forwarded': '1', forwarded: 'for=127.0.0.1' }],
    ];
    for (const node of [leader, follower]) {
      for (const [method, path, body] of routes) {
        for (const [what, headers] of badCredentials) {
          const r = await call(node, method, path, body, headers);
          expect(r.status, `${what}: ${method} ${path} on node ${node.spec.id}: ${JSON.stringify(r.json)}`).to.equal(401);
          expect(r.json.error.code).to.equal('UNAUTHORIZED');
          // The refusal says nothing about the cluster (no leader hint, no token).
          expect(r.json.error.leader).to.equal(undefined);
          expect(JSON.stringify(r.json)).to.not.include(apiToken).and.not.include(adminToken);
        }
      }
    }
    // The client token on admin routes: 403, and the route named.
    for (const node of [leader, follower]) {
      for (const [method, path, body] of routes.slice(10)) {
        const r = await call(node, method, path, body, bearer(apiToken));
        expect(r.status, `client token: ${method} ${path} on node ${node.spec.id}: ${JSON.stringify(r.json)}`).to.equal(403);
        expect(r.json.error.code).to.equal('FORBIDDEN');
      }
    }
    expect(await state(), 'terms, logs, membership, groups, nodes and proposal counts unchanged').to.equal(before);
  });

  it('load-balancer probes answer without a token and say nothing secret', async () => {
    const n = cluster.nodes[0]!;
    const health = await call(n, 'GET', '/raft-health', undefined, {});
    expect(health.status).to.equal(200);
    expect(Object.keys(health.json).sort()).to.deep.equal(['app', 'applyFailingGroups', 'bootstrapped', 'groups', 'healthy', 'unhealthyGroups']);
    const check = await call(n, 'GET', '/leader-check?group=1', undefined, {});
    expect(Object.keys(check.json).sort()).to.deep.equal(['group', 'leader', 'node']);
    // /status and /metrics (token needed) carry no secret either.
    const st = await call(n, 'GET', '/status', undefined, bearer(apiToken));
    const metrics = await fetch(n.url + '/metrics', { headers: bearer(apiToken) }).then((r) => r.text());
    for (const secret of ['apiToken', 'adminToken', 'appSecret', 'clusterSecret'] as const) {
      expect(JSON.stringify(st.json)).to.not.include(cluster.secrets!.value(secret));
      expect(metrics).to.not.include(cluster.secrets!.value(secret));
    }
  });

  it('the client token proposes and reads on any node (a follower forwards it); the admin token works everywhere', async () => {
    const leader = await leaderOf(1);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    for (const [i, node] of [leader, follower].entries()) {
      const w = await call(node, 'POST', '/v1/groups/1/propose', `value-${i}`, bearer(apiToken));
      expect(w.status, JSON.stringify(w.json)).to.equal(200);
      expect(w.json.index).to.be.a('number');
      expect((await call(node, 'POST', '/v1/groups/1/barrier?consistency=lease', undefined, bearer(apiToken))).status).to.equal(200);
      expect((await call(node, 'GET', '/status', undefined, bearer(adminToken))).status).to.equal(200);
    }
  });

  it('a node registering under an existing id (another address, or an empty disk) is refused and changes nothing', async () => {
    const before = await settledState();
    const n1 = cluster.nodes[0]!;
    const other = cluster.nodes[1]!;
    const moved = await call(n1, 'POST', '/v1/nodes', { id: other.spec.id, raftAddr: `127.0.0.1:${await freePort()}`, httpAddr: other.spec.httpAddr }, bearer(adminToken));
    expect(moved.status, JSON.stringify(moved.json)).to.equal(409);
    expect(moved.json.error.code).to.equal('CONFLICT');
    const fresh = await call(n1, 'POST', '/v1/nodes', { id: other.spec.id, raftAddr: other.spec.raftAddr, httpAddr: other.spec.httpAddr, fresh: true }, bearer(adminToken));
    expect(fresh.status, JSON.stringify(fresh.json)).to.equal(409);
    const junk = await call(n1, 'POST', '/v1/nodes', { id: 9, raftAddr: 'no port here', httpAddr: '127.0.0.1:1' }, bearer(adminToken));
    expect(junk.status).to.equal(400);
    expect(await state()).to.equal(before);
  });

  it('refuses to take a voter out of a 3-voter group unless forced', async () => {
    const created = await call(cluster.nodes[0]!, 'POST', '/v1/groups', { group: 5, members: [1, 2, 3] }, bearer(adminToken));
    expect(created.status, JSON.stringify(created.json)).to.equal(201);
    const leader = await leaderOf(5);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const victim = cluster.nodes.find((n) => n !== leader && n !== follower)!.spec.id;
    const voters = async (): Promise<number[]> => ((await call(leader, 'GET', '/status', undefined, bearer(adminToken))).json as StatusBody).groups.find((g) => g.group === 5)!.voters;
    expect(await voters()).to.deep.equal([1, 2, 3]);
    // Sent to a follower: forwarded to the leader, which decides.
    const removal = await call(follower, 'DELETE', `/v1/groups/5/members/${victim}`, undefined, bearer(adminToken));
    expect(removal.status, JSON.stringify(removal.json)).to.equal(409);
    expect(removal.json.error.code).to.equal('UNSAFE_MEMBERSHIP_CHANGE');
    expect(removal.json.error.message).to.match(/survive 0 failure/).and.match(/force/);
    const demotion = await call(leader, 'POST', '/v1/groups/5/members', { node: victim, role: 'learner' }, bearer(adminToken));
    expect(demotion.status, JSON.stringify(demotion.json)).to.equal(409);
    expect(demotion.json.error.code).to.equal('UNSAFE_MEMBERSHIP_CHANGE');
    expect(await voters(), 'membership unchanged').to.deep.equal([1, 2, 3]);
    // Forced: the operator knows.
    const forced = await call(follower, 'DELETE', `/v1/groups/5/members/${victim}?force=true`, undefined, bearer(adminToken));
    expect(forced.status, JSON.stringify(forced.json)).to.equal(200);
    const deadline = Date.now() + 10_000;
    while ((await voters()).length !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await voters()).to.not.include(victim);
  });

  it('a registered node that never connects shows as not connected in /status and can be removed', async () => {
    const n1 = cluster.nodes[0]!;
    const ghost = { id: 9, raftAddr: `127.0.0.1:${await freePort()}`, httpAddr: `127.0.0.1:${await freePort()}` };
    const reg = await call(n1, 'POST', '/v1/nodes', ghost, bearer(adminToken));
    expect(reg.status, JSON.stringify(reg.json)).to.equal(200);
    const view = async (n: RaftdNode): Promise<NodeView[]> => ((await call(n, 'GET', '/status', undefined, bearer(apiToken))).json as StatusBody).nodes;
    // Every node learns the registration from the meta group.
    const deadline = Date.now() + 10_000;
    for (const n of cluster.nodes) {
      while (!(await view(n)).some((x) => x.id === 9) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    }
    for (const n of cluster.nodes) {
      const nodes = await view(n);
      expect(nodes.find((x) => x.id === 9), `node ${n.spec.id}: ${JSON.stringify(nodes)}`).to.deep.include({ registered: true, connected: false, lastSeenMsAgo: null });
      for (const live of [1, 2, 3]) expect(nodes.find((x) => x.id === live)).to.deep.include({ connected: true });
    }
    // A member of groups is not removed without force; the ghost is.
    const member = await call(n1, 'DELETE', '/v1/nodes/2', undefined, bearer(adminToken));
    expect(member.status, JSON.stringify(member.json)).to.equal(409);
    expect((await call(n1, 'DELETE', '/v1/nodes/9', undefined, bearer(apiToken))).status).to.equal(403);
    // Through the SDK client, on another node (forwarded to the meta leader).
    const admin = new RaftdClient({ url: cluster.nodes[2]!.url, token: adminToken });
    await admin.removeNode(9);
    admin.close();
    const gone = Date.now() + 10_000;
    for (const n of cluster.nodes) {
      while ((await view(n)).some((x) => x.id === 9) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
      expect((await view(n)).map((x) => x.id), `node ${n.spec.id}`).to.deep.equal([1, 2, 3]);
    }
    expect((await call(n1, 'DELETE', '/v1/nodes/9', undefined, bearer(adminToken))).status).to.equal(404);
  });

  it('a voter that is down: shown with when it was last seen; removing it is allowed, removing a live voter is not', async () => {
    const n1 = cluster.nodes[0]!;
    const dead = cluster.nodes[2]!;
    await dead.kill();
    const deadline = Date.now() + 15_000;
    let seen: NodeView | undefined;
    while (Date.now() < deadline) {
      seen = ((await call(n1, 'GET', '/status', undefined, bearer(apiToken))).json as StatusBody).nodes.find((x) => x.id === dead.spec.id);
      if (seen && !seen.connected) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).to.deep.include({ connected: false, registered: true });
    expect(seen!.lastSeenMsAgo, 'it was heard from before it died').to.be.a('number').and.at.least(0);
    // The group's leader decides with its own view: wait until it too sees node 3 down.
    let leaderId = (await cluster.waitForLeaders([1], 30_000)).get(1)!;
    for (let i = 0; i < 300 && leaderId === dead.spec.id; i++) {
      await new Promise((r) => setTimeout(r, 100));
      leaderId = (await cluster.waitForLeaders([1], 30_000)).get(1)!;
    }
    const leader = cluster.node(leaderId);
    const leaderSees = Date.now() + 15_000;
    while (Date.now() < leaderSees) {
      const v = ((await call(leader, 'GET', '/status', undefined, bearer(apiToken))).json as StatusBody).nodes.find((x) => x.id === dead.spec.id);
      if (v && !v.connected) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Group 1 has voters 1, 2, 3 with 3 down: it survives no more failures; taking out 2 would stop it.
    const live = await call(n1, 'DELETE', '/v1/groups/1/members/2', undefined, bearer(adminToken));
    expect(live.status, JSON.stringify(live.json)).to.equal(409);
    expect(live.json.error.code).to.equal('UNSAFE_MEMBERSHIP_CHANGE');
    const gone = await call(n1, 'DELETE', `/v1/groups/1/members/${dead.spec.id}`, undefined, bearer(adminToken));
    expect(gone.status, JSON.stringify(gone.json)).to.equal(200);
  });

  it('no secret in any log line, at debug level, after all of the above', () => {
    let lines = 0;
    for (const n of cluster.nodes) {
      const log = readFileSync(join(cluster.dir, `node${n.spec.id}.log`), 'utf8');
      lines += log.split('\n').length;
      for (const secret of ['apiToken', 'adminToken', 'appSecret', 'clusterSecret'] as const) {
        expect(log, `node ${n.spec.id}'s log`).to.not.include(cluster.secrets!.value(secret));
      }
    }
    expect(lines, 'the nodes logged something').to.be.greaterThan(3);
  });
});

describe('raftd --http-addr already in use (integration)', function () {
  this.timeout(60_000);

  it('stops at once with one line naming the address, exit 2', async () => {
    const taken = createServer();
    const port = await freePort();
    await new Promise<void>((r) => taken.listen(port, '127.0.0.1', () => r()));
    const dir = mkdtempSync(join(tmpdir(), 'raftd-http-in-use-'));
    try {
      const raft = `127.0.0.1:${await freePort()}`;
      const r = spawnSync(process.execPath, [...entryCommand('daemon/main.ts'), '--id', '1', '--peers', `1=${raft}`, '--raft-addr', raft, '--http-addr', `127.0.0.1:${port}`, '--data-dir', dir, '--insecure', '--log-level', 'error'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
      expect(r.stderr).to.include(`--http-addr 127.0.0.1:${port}`).and.match(/already in use/);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--insecure says loudly that nothing is authenticated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftd-insecure-'));
    const taken = createServer();
    const port = await freePort();
    await new Promise<void>((r) => taken.listen(port, '127.0.0.1', () => r()));
    try {
      const raft = `127.0.0.1:${await freePort()}`;
      // The taken port ends the run right after the warning.
      const r = spawnSync(process.execPath, [...entryCommand('daemon/main.ts'), '--id', '1', '--peers', `1=${raft}`, '--raft-addr', raft, '--http-addr', `127.0.0.1:${port}`, '--data-dir', dir, '--insecure'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.stdout).to.match(/NO AUTHENTICATION/);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
