// raftctl against a live 3-node cluster with the KV adapter: as a real process, with an endpoint that
// is down, with the leader moving, and with bad credentials and usage.

import { expect } from 'chai';
import { freePort, LocalCluster } from './cluster.js';
import { runRaftctl, type RaftctlRun } from './raftctl-run.js';


describe('raftctl (integration, 3 nodes, KV adapter)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let deadEndpoint = '';

  before(async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true });
    await cluster.startAll();
    await cluster.waitForApi(30_000);
    await cluster.waitForLeaders([0, 1], 30_000);
    deadEndpoint = `127.0.0.1:${await freePort()}`; // nothing listens there
  });
  after(async () => {
    await cluster?.destroy();
  });

  const raftctl = (args: string[], env: Record<string, string> = {}): Promise<RaftctlRun> => runRaftctl(cluster, args, env);

  const endpoints = () => [deadEndpoint, ...cluster.nodes.filter((n) => n.running()).map((n) => n.spec.httpAddr)].join(',');

  it('puts and gets through any endpoint, the first one down', async () => {
    const put = await raftctl(['--endpoints', endpoints(), '--json', 'put', 'color', 'blue']);
    expect(put.code, put.stderr).to.equal(0);
    const got = await raftctl(['--endpoints', endpoints(), '--json', 'get', 'color']);
    expect(got.code, got.stderr).to.equal(0);
    expect(JSON.parse(got.stdout)).to.deep.equal({ value: 'blue' });
  });

  it('reports every endpoint in status, the unreachable one included', async () => {
    const st = await raftctl(['--endpoints', endpoints(), '--json', 'status']);
    expect(st.code, st.stderr).to.equal(0);
    const all = JSON.parse(st.stdout) as Array<{ endpoint: string; error?: string; node?: number }>;
    expect(all).to.have.length(4);
    expect(all[0]!.error).to.be.a('string');
    expect(all.slice(1).map((s) => s.node).sort()).to.deep.equal([1, 2, 3]);
  });

  it('finds the leader, moves it, and keeps serving through the new one', async () => {
    const before = await raftctl(['--endpoints', endpoints(), '--json', '--group', '1', 'leader']);
    expect(before.code, before.stderr).to.equal(0);
    const leader = (JSON.parse(before.stdout) as { leader: number }).leader;
    const to = leader === 1 ? 2 : 1;
    const moved = await raftctl(['--endpoints', endpoints(), '--group', '1', 'transfer', String(to)]);
    expect(moved.code, moved.stderr).to.equal(0);
    const after = await raftctl(['--endpoints', endpoints(), '--json', '--group', '1', 'leader']);
    expect((JSON.parse(after.stdout) as { leader: number }).leader).to.equal(to);
    expect((await raftctl(['--endpoints', endpoints(), 'put', 'color', 'green'])).code).to.equal(0);
    const got = await raftctl(['--endpoints', endpoints(), '--json', 'get', 'color']);
    expect(JSON.parse(got.stdout)).to.deep.equal({ value: 'green' });
  });

  it('keeps working with a node killed', async () => {
    await cluster.node(3).kill();
    await cluster.node(3).app?.kill();
    const put = await raftctl(['--endpoints', endpoints(), 'put', 'shape', 'round']);
    expect(put.code, put.stderr).to.equal(0);
    const got = await raftctl(['--endpoints', endpoints(), '--json', 'get', 'shape']);
    expect(JSON.parse(got.stdout)).to.deep.equal({ value: 'round' });
    // Still a member of its groups: unregistering it is refused, with raftd's code.
    const removal = await raftctl(['--endpoints', endpoints(), 'remove-node', '3']);
    expect(removal.code, removal.stdout).to.equal(1);
    expect(removal.stderr).to.match(/^raftctl: [A-Z_]+: /);
  });

  it('exits 1 with raftd\'s code when credentials are missing or wrong, 2 on bad usage, 3 when nothing answers', async () => {
    const noToken = await raftctl(['--endpoints', endpoints(), 'get', 'color'], { RAFTD_API_TOKEN_FILE: '', RAFTD_ADMIN_TOKEN_FILE: '' });
    expect(noToken.code).to.equal(1);
    expect(noToken.stderr).to.match(/UNAUTHORIZED/);
    const wrong = await raftctl(['--endpoints', endpoints(), 'get', 'color'], { RAFTD_API_TOKEN: 'not-the-token-of-this-cluster' });
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr).to.match(/UNAUTHORIZED/);
    const usage = await raftctl(['--endpoints', endpoints(), 'transfer']);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.match(/transfer takes NODE/);
    const unknown = await raftctl(['frobnicate']);
    expect(unknown.code).to.equal(2);
    const none = await raftctl(['--endpoints', deadEndpoint, '--timeout-ms', '2000', 'get', 'color']);
    expect(none.code, none.stderr).to.equal(3);
    expect(none.stderr).to.match(/UNREACHABLE/);
  });
});
