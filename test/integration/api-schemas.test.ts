// Malformed requests to raftd's client API (route schemas, daemon/api/schemas.ts): wrong types,
// out-of-range and oversized values, missing fields. Each is answered 400 BAD_REQUEST with the usual
// {error: {code, message}} body naming the field, and changes nothing. Also the test hooks: refused
// when unknown, and /debug/faults validated like any admin route.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, entryCommand, freePort, type RaftdNode } from './cluster.js';

describe('client API: request schemas on malformed input (integration)', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let node: RaftdNode;

  before(async () => {
    cluster = await LocalCluster.create({ nodes: 1, groups: 1, env: { RAFTD_TEST_HOOKS: 'faults' } });
    await cluster.startAll();
    await cluster.waitForLeaders([1], 20_000);
    node = cluster.nodes[0]!;
  });
  after(async () => {
    await cluster?.destroy();
  });

  /** With the admin token (valid on every route): only the input is wrong. */
  const call = (method: string, path: string, body?: string | object) => node.request(method, path, body);

  async function expectBadRequest(method: string, path: string, body: string | object | undefined, mentions: RegExp): Promise<void> {
    const r = await call(method, path, body);
    const what = `${method} ${path} ${typeof body === 'string' ? body.slice(0, 80) : JSON.stringify(body)?.slice(0, 80)}`;
    expect(r.status, what).to.equal(400);
    expect(Object.keys(r.body), what).to.deep.equal(['error']);
    expect(r.body.error.code, what).to.equal('BAD_REQUEST');
    expect(r.body.error.message, what).to.be.a('string').and.match(mentions);
  }

  it('group ids in paths: not a number, out of range, too long, not an integer', async () => {
    for (const g of ['abc', '4294967295', '99999999999', '00000000001', '1.0', '-1', '1e3', '%201']) {
      await expectBadRequest('POST', `/v1/groups/${g}/propose`, 'x', /params\.group must be an integer in 0\.\.4294967294/);
      await expectBadRequest('POST', `/v1/groups/${g}/read`, '{}', /params\.group/);
    }
    // The last id in range passes the schema and is simply unknown.
    const unknown = await call('POST', '/v1/groups/4294967294/propose', 'x');
    expect(unknown.body.error.code).to.equal('GROUP_NOT_FOUND');
    await expectBadRequest('DELETE', '/v1/groups/1/members/x', undefined, /params\.node/);
    await expectBadRequest('DELETE', '/v1/nodes/12345678901', undefined, /params\.id/);
  });

  it('query strings: unknown values, repeated keys', async () => {
    await expectBadRequest('POST', '/v1/groups/1/read?consistency=eventual', '{}', /querystring\.consistency must be one of linearizable, lease, stale/);
    await expectBadRequest('POST', '/v1/groups/1/barrier?consistency=lease&consistency=stale', undefined, /querystring\.consistency must be string/);
    await expectBadRequest('DELETE', '/v1/nodes/7?force=maybe', undefined, /querystring\.force must be one of/);
    await expectBadRequest('GET', '/raft-health?group=x', undefined, /querystring\.group/);
    await expectBadRequest('GET', '/leader-check/700', undefined, /params\.code must be an HTTP status in 200\.\.599/);
  });

  it('JSON bodies: wrong types, huge values, missing fields, not JSON at all', async () => {
    const groupsBefore = (await call('GET', '/v1/groups')).body;
    await expectBadRequest('POST', '/v1/groups', { group: '5' }, /body\.group must be integer/);
    await expectBadRequest('POST', '/v1/groups', { group: 1e300 }, /body\.group must be <= 4294967294/);
    await expectBadRequest('POST', '/v1/groups', { group: 0 }, /body\.group must be >= 1/);
    await expectBadRequest('POST', '/v1/groups', { group: 5.5 }, /body\.group must be integer/);
    await expectBadRequest('POST', '/v1/groups', {}, /must have required property 'group'/);
    await expectBadRequest('POST', '/v1/groups', undefined, /body must be object/);
    await expectBadRequest('POST', '/v1/groups', '[1]', /body must be object/);
    await expectBadRequest('POST', '/v1/groups', '{"group": 5', /not valid JSON/);
    await expectBadRequest('POST', '/v1/groups', { group: 5, members: [] }, /body\.members must NOT have fewer than 1 items/);
    await expectBadRequest('POST', '/v1/groups', { group: 5, members: Array.from({ length: 5000 }, (_, i) => i + 1) }, /body\.members must NOT have more than 1000 items/);
    await expectBadRequest('POST', '/v1/groups', { group: 5, members: ['1'] }, /body\.members\.0 must be integer/);
    await expectBadRequest('POST', '/v1/groups', { group: 5, members: [2 ** 60] }, /body\.members\.0 must be <=/);

    await expectBadRequest('POST', '/v1/groups/1/members', { node: '2' }, /body\.node must be integer/);
    await expectBadRequest('POST', '/v1/groups/1/members', { node: 2, role: 'boss' }, /body\.role must be one of voter, learner/);
    await expectBadRequest('POST', '/v1/groups/1/members', { node: 2, force: 'maybe' }, /body\.force must be one of/);
    await expectBadRequest('POST', '/v1/groups/1/members', undefined, /body must be object/);
    await expectBadRequest('POST', '/v1/groups/1/transfer-leadership', { to: -1 }, /body\.to must be >= 0/);
    await expectBadRequest('POST', '/v1/groups/1/transfer-leadership', {}, /required property 'to'/);

    const addr = '127.0.0.1:9';
    await expectBadRequest('POST', '/v1/nodes', { id: 0, raftAddr: addr, httpAddr: addr }, /body\.id must be >= 1/);
    await expectBadRequest('POST', '/v1/nodes', { id: 9, raftAddr: `${'h'.repeat(300)}:1`, httpAddr: addr }, /body\.raftAddr must NOT have more than 261 characters/);
    await expectBadRequest('POST', '/v1/nodes', { id: 9, raftAddr: 'no-port', httpAddr: addr }, /body\.raftAddr must be HOST:PORT/);
    await expectBadRequest('POST', '/v1/nodes', { id: 9, raftAddr: addr }, /required property 'httpAddr'/);
    await expectBadRequest('POST', '/v1/nodes', { id: 9, raftAddr: addr, httpAddr: addr, fresh: 'yes' }, /body\.fresh must be boolean/);

    // None of it changed anything.
    expect((await call('GET', '/v1/groups')).body).to.deep.equal(groupsBefore);
    expect((await call('GET', '/v1/nodes')).body.nodes.map((n: { id: number }) => n.id)).to.not.include(9);
  });

  it('the fault hook validates its rules like any admin route, and an empty body clears them', async () => {
    await expectBadRequest('PUT', '/debug/faults', { lossRate: 2 }, /lossRate/);
    await expectBadRequest('PUT', '/debug/faults', { dropTo: '2' }, /dropTo/);
    await expectBadRequest('PUT', '/debug/faults', { delayMs: 600_000 }, /delayMs/);
    const set = await call('PUT', '/debug/faults', { dropTo: [2], lossRate: 0.25 });
    expect(set.body.rules).to.deep.equal({ dropTo: [2], dropFrom: [], lossRate: 0.25, delayMs: 0 });
    const cleared = await call('PUT', '/debug/faults');
    expect(cleared.status).to.equal(200);
    expect(cleared.body.rules).to.deep.equal({ dropTo: [], dropFrom: [], lossRate: 0, delayMs: 0 });
  });

  it('raftd refuses to start with a test hook it does not know (one line, exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftd-hooks-'));
    try {
      const raft = `127.0.0.1:${await freePort()}`;
      const r = spawnSync(process.execPath, [...entryCommand('daemon/main.ts'), '--id', '1', '--peers', `1=${raft}`, '--raft-addr', raft, '--http-addr', `127.0.0.1:${await freePort()}`, '--data-dir', dir, '--insecure', '--log-level', 'error'], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, RAFTD_TEST_HOOKS: 'faults,break-everything' },
      });
      expect(r.status).to.equal(2);
      expect(r.stderr.trim()).to.equal('raftd: RAFTD_TEST_HOOKS: unknown test hook "break-everything" (known: faults, break-stale-reads)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
