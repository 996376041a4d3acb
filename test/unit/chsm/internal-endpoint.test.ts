// rafthouse's internal endpoint (placed groups, issue 21: clickhouse-adapter/placed/server.ts) on the
// embedded engine and a real state machine: a hold stops apply of its group and answers the applied
// index; a select leg under it is read by ClickHouse itself through url() in the Native format; an
// expired or released hold makes the leg refused (never a read of moved data); holds are bounded;
// the leg gets the public read sandbox (its group's database only, no file access, SELECT only).
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { SqlParser } from '../../../clickhouse-adapter/gateway/parse.js';
import { HoldTable } from '../../../clickhouse-adapter/placed/holds.js';
import { InternalServer } from '../../../clickhouse-adapter/placed/server.js';
import { legSignature, legSignatureValid, LEG_SIGNATURE_HEADER } from '../../../clickhouse-adapter/placed/auth.js';
import { signAppRequest } from '../../../protocol/app-auth.js';
import { quoteString } from '../../../clickhouse-adapter/engine/sql.js';

const SECRET = 'internal-secret-for-the-test-0123456789';

describe('placed groups: the internal hold / select endpoint', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;
  let readEngine: ClickHouseEngine;
  let sm: ClickHouseStateMachine;
  let server: InternalServer;
  let base: string;

  const ddl = { index: 1, term: 1, data: encodeEntry({ v: 1, kind: 'ddl', sql: 'CREATE TABLE t (id UInt64, s String) ENGINE = MergeTree ORDER BY id' }) };
  const insert = (index: number, id: number) => ({
    index, term: 1, data: encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from(`{"id":${id},"s":"r${id}"}\n`)),
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rh-internal-'));
    engine = await openEmbedded({ dataDir: dir });
    readEngine = await openEmbedded({ dataDir: dir, readonly: true, allowSettings: true });
    sm = new ClickHouseStateMachine({ engine });
    for (const g of [1, 2]) await sm.applyBatch(g, [ddl, insert(2, 1), insert(3, 2)]);
    server = new InternalServer({ secret: SECRET, holds: new HoldTable(sm, { maxHolds: 2, maxLeaseMs: 5_000, grantWaitMs: 500 }), readEngine, parser: new SqlParser(readEngine), groups: 4 });
    base = `http://${await server.listen('127.0.0.1', 0)}`;
  });
  after(async () => {
    await server?.close();
    await readEngine?.close();
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(path: string, body: object, secret = SECRET): Promise<{ status: number; json: Record<string, unknown> | undefined; text: string }> {
    const buf = Buffer.from(JSON.stringify(body));
    const res = await fetch(base + path, { method: 'POST', body: buf, headers: { 'content-type': 'application/json', ...signAppRequest(secret, 'POST', path, buf) } });
    const text = await res.text();
    let json: Record<string, unknown> | undefined;
    try { json = JSON.parse(text) as Record<string, unknown>; } catch { json = undefined; }
    return { status: res.status, json, text };
  }
  const hold = (group: number, leaseMs = 3_000) => call('/internal/hold', { group, leaseMs });
  const legPath = (group: number, id: string, sql: string) => `/internal/select?group=${group}&hold=${id}&q=${Buffer.from(sql).toString('base64url')}`;
  const leg = async (group: number, id: string, sql: string) => {
    const path = legPath(group, id, sql);
    const res = await fetch(base + path, { headers: { [LEG_SIGNATURE_HEADER]: legSignature(SECRET, path) } });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };

  it('holds apply, answers the applied index, and serves a leg ClickHouse reads through url() in Native', async () => {
    const h = await hold(1);
    expect(h.status, h.text).to.equal(200);
    expect(h.json!['applied']).to.equal(3);
    const id = String(h.json!['hold']);
    let applied = false;
    const blocked = sm.applyBatch(1, [insert(4, 3)]).then(() => { applied = true; });
    await new Promise((r) => setTimeout(r, 150));
    expect(applied, 'apply of a held group waits').to.equal(false);
    const path = legPath(1, id, 'SELECT id, s FROM t WHERE id > 1');
    const viaUrl = await readEngine.query(
      `SELECT count(), sum(id), any(s) FROM url(${quoteString(base + path)}, 'Native', 'id UInt64, s String', headers(${quoteString(LEG_SIGNATURE_HEADER)} = ${quoteString(legSignature(SECRET, path))}))`,
      { format: 'TSV' });
    expect(viaUrl.toString()).to.equal('1\t2\tr2\n');
    const released = await call('/internal/release', { hold: id });
    expect(released.json).to.deep.equal({ released: true });
    await blocked;
    const after = await leg(1, id, 'SELECT id FROM t');
    expect(after.status, 'a released hold serves no leg').to.equal(410);
  });

  it('an expired lease releases apply and makes the member refuse the leg', async () => {
    const h = await hold(2, 200);
    const id = String(h.json!['hold']);
    await new Promise((r) => setTimeout(r, 350));
    await sm.applyBatch(2, [insert(4, 3)]); // would wait forever if the lease had not ended
    const r = await leg(2, id, 'SELECT id FROM t');
    expect(r.status).to.equal(410);
    expect(r.body.toString()).to.match(/not live/);
  });

  it('stops a leg in the engine when its hold ends: it keeps no slot past the hold', async () => {
    const id = String((await hold(1)).json!['hold']);
    const started = Date.now();
    const running = leg(1, id, 'SELECT sleepEachRow(0.2) FROM numbers(20) SETTINGS max_block_size = 1');
    await new Promise((r) => setTimeout(r, 400));
    expect((await call('/internal/release', { hold: id })).json).to.deep.equal({ released: true });
    const r = await running;
    const took = Date.now() - started;
    expect(r.status, r.body.toString()).to.not.equal(200);
    expect(took, 'the leg ran on after its hold was released').to.be.below(2_500);
  });

  it('bounds holds and refuses groups that have no replica here', async () => {
    const none = await hold(3);
    expect(none.status, none.text).to.equal(404);
    const first = String((await hold(1)).json!['hold']);
    // A second hold of group 1 waits for the lock the first holds, past grantWaitMs: refused busy.
    const busy = await hold(1);
    expect(busy.status, busy.text).to.equal(503);
    const second = String((await hold(2)).json!['hold']);
    const tooMany = await hold(2);
    expect(tooMany.status, tooMany.text).to.equal(503);
    expect(tooMany.text).to.match(/already holds/);
    for (const id of [first, second]) await call('/internal/release', { hold: id });
    const again = await hold(1);
    expect(again.status).to.equal(200);
    await call('/internal/release', { hold: String(again.json!['hold']) });
  });

  it('gives a leg the read sandbox: its own group database only, no files, SELECT only', async () => {
    const id = String((await hold(1)).json!['hold']);
    try {
      expect((await leg(1, id, 'SELECT id FROM rh_g2.t')).status).to.be.oneOf([400, 403]);
      expect((await leg(1, id, "SELECT * FROM file('/etc/passwd', 'LineAsString')")).status).to.be.oneOf([400, 403]);
      expect((await leg(1, id, 'SELECT * FROM t SETTINGS max_result_bytes = 0')).status).to.be.oneOf([400, 403]);
      expect((await leg(1, id, 'INSERT INTO t VALUES (9, \'x\')')).status).to.equal(400);
      expect((await leg(1, id, 'SELECT count() FROM _rh_applied')).status).to.be.oneOf([400, 403]);
      expect((await leg(2, id, 'SELECT id FROM t')).status, 'a hold of group 1 is no hold of group 2').to.equal(410);
      expect((await leg(1, id, 'SELECT id FROM t')).status).to.equal(200);
    } finally {
      await call('/internal/release', { hold: id });
    }
  });

  it('refuses an empty secret: no server, no valid leg signature', () => {
    expect(() => new InternalServer({ secret: '', holds: new HoldTable(sm), readEngine, parser: new SqlParser(readEngine), groups: 4 })).to.throw(/non-empty/);
    const path = '/internal/select?group=1&hold=x&q=';
    expect(legSignatureValid('', path, legSignature('', path))).to.equal(false);
    expect(legSignatureValid(SECRET, path, legSignature(SECRET, path))).to.equal(true);
  });

  it('refuses every call without the secret', async () => {
    expect((await call('/internal/hold', { group: 1, leaseMs: 100 }, 'some-other-secret-0123456789')).status).to.equal(401);
    const path = legPath(1, '0'.repeat(32), 'SELECT 1');
    expect((await fetch(base + path)).status).to.equal(401);
    expect((await fetch(base + path, { headers: { [LEG_SIGNATURE_HEADER]: legSignature('some-other-secret-0123456789', path) } })).status).to.equal(401);
    expect((await fetch(base + '/internal/hold', { method: 'POST', body: '{}' })).status).to.equal(401);
  });
});
