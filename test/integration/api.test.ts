// The client API's contract on bad input, auth and probes, against one real raftd process.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { LocalCluster, type RaftdNode } from './cluster.js';
import { BINARY_BATCH_TYPE, decodeBatchResponse, encodeBatchRequest } from '../../protocol/batch-codec.js';

describe('client API: errors, auth, probes (integration)', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let node: RaftdNode;
  let token = '';

  before(async () => {
    cluster = await LocalCluster.create({ nodes: 1, groups: 2 });
    token = cluster.secrets!.value('apiToken');
    await cluster.startAll();
    await cluster.waitForApi(20_000).catch(() => undefined);
    node = cluster.nodes[0]!;
  });
  after(async () => {
    await cluster?.destroy();
  });

  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });

  async function call(method: string, path: string, body?: string, headers: Record<string, string> = auth()) {
    const res = await fetch(node.url + path, { method, headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  it('refuses requests without the right bearer token, but lets load-balancer probes through', async () => {
    const noAuth = await call('GET', '/status', undefined, {});
    expect(noAuth.status).to.equal(401);
    expect(noAuth.json.error.code).to.equal('UNAUTHORIZED');
    const wrong = await call('GET', '/status', undefined, { authorization: 'Bearer nope' });
    expect(wrong.status).to.equal(401);
    // Waits for the group to have a leader before probing (single node: it elects itself).
    for (let i = 0; i < 100; i++) {
      if ((await call('GET', '/leader-check?group=1', undefined, {})).status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await call('GET', '/leader-check?group=1', undefined, {})).status).to.equal(200);
    expect((await call('GET', '/raft-health', undefined, {})).status).to.equal(200);
  });

  it('answers malformed input with 400 and a stable code, and unknown things with 404', async () => {
    const badJson = await call('POST', '/v1/propose-batch', '{"items": [');
    expect(badJson.status).to.equal(400);
    expect(badJson.json.error.code).to.equal('BAD_REQUEST');
    const badShape = await call('POST', '/v1/propose-batch', '{"items": [{"group": "one"}]}');
    expect(badShape.status).to.equal(400);
    const badGroup = await call('POST', '/v1/groups/abc/propose', 'x');
    expect(badGroup.status).to.equal(400);
    const empty = await call('POST', '/v1/groups/1/propose', '');
    expect(empty.status).to.equal(400);
    const badConsistency = await call('POST', '/v1/groups/1/read?consistency=eventual', '{}');
    expect(badConsistency.status).to.equal(400);
    expect(badConsistency.json.error.message).to.match(/linearizable, lease, stale/);
    const unknownGroup = await call('POST', '/v1/groups/999/propose', '{"op":"set","key":"a","value":"b"}');
    expect(unknownGroup.status).to.equal(404);
    expect(unknownGroup.json.error.code).to.equal('GROUP_NOT_FOUND');
    const route = await call('GET', '/nope');
    expect(route.status).to.equal(404);
    // The fault hook's routes exist only on a node started with RAFTD_TEST_HOOKS=faults.
    const debug = await call('PUT', '/debug/faults', '{"lossRate":0.5}');
    expect(debug.status).to.equal(404);
    expect(debug.json.error.code).to.equal('NOT_FOUND');
    const leaderCode = await call('GET', '/leader-check/999', undefined, {});
    expect(leaderCode.status).to.equal(400);
  });

  it('bounds request bodies', async () => {
    const proposalsBefore = Number(/raftd_proposals_total (\d+)/.exec(await (await fetch(node.url + '/metrics', { headers: auth() })).text())![1]);
    const big = 'x'.repeat(65 * 1024 * 1024);
    // The server answers 413 as soon as the body passes the limit and may close the connection
    // while the client is still uploading: either way nothing may be proposed.
    let refused: string;
    try {
      const r = await call('POST', '/v1/groups/1/propose', big);
      expect(r.status).to.equal(413);
      refused = r.json.error.code;
    } catch (e) {
      const code = (e as { cause?: { code?: string } }).cause?.code ?? '';
      expect(code, String(e)).to.match(/EPIPE|ECONNRESET|UND_ERR_SOCKET/);
      refused = 'connection closed by the server';
    }
    expect(refused).to.be.oneOf(['PAYLOAD_TOO_LARGE', 'connection closed by the server']);
    const after = Number(/raftd_proposals_total (\d+)/.exec(await (await fetch(node.url + '/metrics', { headers: auth() })).text())![1]);
    expect(after, 'nothing was proposed').to.equal(proposalsBefore);
  });

  it('proposes, reads at each consistency, and reports status and metrics', async () => {
    const w = await call('POST', '/v1/groups/1/propose', '{"op":"set","key":"a","value":"1"}');
    expect(w.status, JSON.stringify(w.json)).to.equal(200);
    expect(w.json.index).to.be.a('number');
    for (const c of ['linearizable', 'lease', 'stale']) {
      const r = await call('POST', `/v1/groups/1/read?consistency=${c}`, '{"key":"a"}');
      expect(r.status, c).to.equal(200);
      expect(r.json.result.value, c).to.equal('1');
    }
    const batch = await call('POST', '/v1/propose-batch', JSON.stringify({ items: [1, 2, 2].map((group) => ({ group, data: Buffer.from('{"op":"set","key":"b","value":"2"}').toString('base64') })) }));
    expect(batch.status).to.equal(200);
    expect(batch.json.results).to.have.length(3);
    for (const r of batch.json.results) expect(r.index).to.be.a('number');
    // The binary framing: same outcomes, in order, the app's result carried as JSON.
    const set = Buffer.from('{"op":"set","key":"c","value":"3"}');
    const bin = await fetch(node.url + '/v1/propose-batch', {
      method: 'POST',
      headers: { 'content-type': BINARY_BATCH_TYPE, ...auth() },
      body: encodeBatchRequest([{ group: 1, data: set }, { group: 7, data: set }, { group: 2, data: Buffer.from('opaque') }]),
    });
    expect(bin.status).to.equal(200);
    expect(bin.headers.get('content-type')).to.contain(BINARY_BATCH_TYPE);
    const out = decodeBatchResponse(new Uint8Array(await bin.arrayBuffer()));
    expect(out.map((r) => r.kind)).to.deep.equal(['applied', 'failed', 'applied']);
    expect(out[0]).to.deep.include({ result: { ok: true } });
    expect(out[0]!.index).to.be.greaterThan(0);
    expect(out[1]).to.deep.include({ index: -1 });
    expect((out[1] as { error: { code: string } }).error.code).to.equal('GROUP_NOT_FOUND');
    expect(out[2]).to.deep.include({ result: null });
    const truncated = await fetch(node.url + '/v1/propose-batch', { method: 'POST', headers: { 'content-type': BINARY_BATCH_TYPE, ...auth() }, body: Buffer.from([0, 0, 0, 1, 0, 0, 0, 9, 1]) });
    expect(truncated.status).to.equal(400);
    const st = await call('GET', '/status');
    expect(st.json.groups.map((g: { group: number }) => g.group)).to.include.members([0, 1, 2]);
    const m = await fetch(node.url + '/metrics', { headers: auth() });
    const text = await m.text();
    expect(text).to.match(/raftd_proposals_total \d+/);
    expect(Number(/raftd_proposals_total (\d+)/.exec(text)![1])).to.be.at.least(4);
  });

  it('exposes /metrics that Prometheus\'s own linter accepts, with every documented series', async function () {
    const text = await (await fetch(node.url + '/metrics', { headers: auth() })).text();
    for (const series of [
      'raftd_proposals_total', 'raftd_entries_committed_total', 'raftd_entries_applied_total', 'raftd_messages_sent_total',
      'raftd_leader_elections_won_total', 'raftd_snapshots_taken_total', 'raftd_storage_writes_total',
      'raftd_storage_write_seconds_bucket', 'raftd_propose_seconds_count', 'raftd_read_seconds_sum',
      'raftd_groups', 'raftd_groups_leading', 'raftd_groups_quiesced', 'raftd_app_healthy', 'raftd_groups_apply_failing',
      'raftd_memory_resident_bytes', 'raftd_memory_heap_used_bytes', 'raftd_memory_array_buffers_bytes',
      // prom-client's default process metrics; event-loop lag matters for the single-threaded tick loop
      'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes',
    ]) expect(text, series).to.match(new RegExp(`^${series}(\\{[^}]*\\})? [0-9.e+-]+$`, 'm'));
    expect(text).to.match(/^raftd_groups 3$/m); // the meta group and two data groups
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    if (promtool.error && (promtool.error as NodeJS.ErrnoException).code === 'ENOENT') {
      console.log('      (promtool not installed: scripts/install-test-deps.sh installs it; the linter step is skipped)');
      return;
    }
    expect(promtool.status, `${promtool.stdout}${promtool.stderr}`).to.equal(0);
    expect(`${promtool.stdout}${promtool.stderr}`.trim()).to.equal('');
  });
});
