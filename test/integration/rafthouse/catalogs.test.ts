// The system catalogs as the user sees the database, and system.query_log on the embedded engine
// (issue 23, deliverable 6), on one real node (raftd + rafthouse, 2 groups) through both endpoints:
// each user table once under the user database (not as the Merge view plus one rh_g<N>.t per group),
// RaftHouse's own databases and tables hidden; the gateway's log of the queries it served, with
// ClickHouse's column names.

import { expect } from 'chai';
import { RafthouseCluster } from './harness.js';

async function post(base: string, sql: string, query: Record<string, string> = {}): Promise<{ status: number; text: string; code: string | null }> {
  const res = await fetch(`${base}/?${new URLSearchParams(query)}`, { method: 'POST', body: sql, signal: AbortSignal.timeout(60_000) });
  return { status: res.status, text: await res.text(), code: res.headers.get('x-clickhouse-exception-code') };
}

async function rows<T>(base: string, sql: string, query: Record<string, string> = {}): Promise<T[]> {
  const r = await post(base, `${sql} FORMAT JSONEachRow`, { output_format_json_quote_64bit_integers: '0', ...query });
  expect(r.status, `${sql}: ${r.text}`).to.equal(200);
  return r.text.split('\n').filter((l) => l).map((l) => JSON.parse(l) as T);
}

describe('RaftHouse system catalogs and system.query_log (1 node, 2 groups)', function () {
  this.timeout(120_000);
  let cluster: RafthouseCluster;
  let endpoints: Array<[string, string]>;

  before(async () => {
    cluster = await RafthouseCluster.start({ nodes: 1, groups: 2 });
    const c = cluster.nodes[0]!.consistentUrl;
    endpoints = [['consistent', c], ['local', cluster.nodes[0]!.localUrl]];
    for (const sql of [
      'CREATE TABLE plain (id UInt32, s String) ENGINE = MergeTree ORDER BY id',
      "CREATE TABLE spread (id UInt32, s String, n Float64) ENGINE = MergeTree ORDER BY id SETTINGS rafthouse_shard_key = 'id'",
      'CREATE VIEW plain_view AS SELECT id FROM plain',
    ]) expect((await post(c, sql)).status, sql).to.equal(200);
    const data = Array.from({ length: 100 }, (_, i) => JSON.stringify({ id: i, s: `v${i}`, n: i / 2 })).join('\n');
    expect((await post(c, `INSERT INTO spread FORMAT JSONEachRow\n${data}`)).status).to.equal(200);
    expect((await post(c, 'INSERT INTO plain VALUES (1, \'a\')')).status).to.equal(200);
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('system.tables lists each user table once, under the user database, as created; nothing internal', async () => {
    for (const [name, base] of endpoints) {
      const t = await rows<{ database: string; name: string; engine: string; total_rows: number | null; create_table_query: string }>(base,
        "SELECT database, name, engine, total_rows, create_table_query FROM system.tables WHERE database = 'default' ORDER BY name");
      expect(t.map((r) => [r.database, r.name, r.engine]), name).to.deep.equal([['default', 'plain', 'MergeTree'], ['default', 'plain_view', 'View'], ['default', 'spread', 'MergeTree']]);
      expect(t.find((r) => r.name === 'spread')!.total_rows, `${name}: the groups' rows summed`).to.equal(100);
      expect(t.find((r) => r.name === 'plain')!.total_rows, name).to.equal(1);
      for (const r of t) expect(r.create_table_query, name).to.match(new RegExp(`^CREATE (TABLE|VIEW) default\\.${r.name} `)).and.not.match(/rh_g\d/);
      const hidden = await rows<{ database: string; name: string }>(base,
        "SELECT database, name FROM system.tables WHERE database LIKE 'rh\\\\_%' OR name LIKE '\\\\_rh\\\\_%' OR database IN ('rafthouse_scratch', 'rafthouse_local')");
      expect(hidden, name).to.deep.equal([]);
      // Other catalogs keep their rows.
      const sys = await rows<{ name: string }>(base, "SELECT name FROM system.tables WHERE database = 'system' AND name IN ('tables', 'one') ORDER BY name");
      expect(sys.map((r) => r.name), name).to.deep.equal(['one', 'tables']);
      // An alias, a join of two catalogs, a count.
      const joined = await rows<{ name: string; c: number }>(base,
        "SELECT t.name AS name, count() AS c FROM system.tables AS t INNER JOIN system.columns AS c ON c.database = t.database AND c.table = t.name WHERE t.database = 'default' GROUP BY name ORDER BY name");
      expect(joined, name).to.deep.equal([{ name: 'plain', c: 2 }, { name: 'plain_view', c: 1 }, { name: 'spread', c: 3 }]);
    }
  });

  it('SHOW CREATE TABLE shows the table as created (not the Merge read view); an unknown one is 60', async () => {
    for (const [name, base] of endpoints) {
      const r = await post(base, 'SHOW CREATE TABLE spread');
      expect(r.status, `${name}: ${r.text}`).to.equal(200);
      expect(r.text, name).to.match(/^CREATE TABLE default\.spread \(/).and.match(/ENGINE = MergeTree/).and.not.match(/Merge\(|rh_g\d/);
      const j = await post(base, 'SHOW CREATE TABLE default.plain FORMAT JSONEachRow');
      expect((JSON.parse(j.text) as { statement: string }).statement, name).to.match(/^CREATE TABLE default\.plain \(`id` UInt32, `s` String\) ENGINE = MergeTree/);
      const missing = await post(base, 'SHOW CREATE TABLE nope');
      expect(missing.code, `${name}: ${missing.text}`).to.equal('60');
    }
  });

  it('system.columns lists each column once, in order; system.databases hides RaftHouse\'s databases', async () => {
    for (const [name, base] of endpoints) {
      const c = await rows<{ database: string; table: string; name: string; type: string; position: number }>(base,
        "SELECT database, table, name, type, position FROM system.columns WHERE table = 'spread' ORDER BY position");
      expect(c, name).to.deep.equal([
        { database: 'default', table: 'spread', name: 'id', type: 'UInt32', position: 1 },
        { database: 'default', table: 'spread', name: 's', type: 'String', position: 2 },
        { database: 'default', table: 'spread', name: 'n', type: 'Float64', position: 3 },
      ]);
      const dbs = (await rows<{ name: string }>(base, 'SELECT name FROM system.databases ORDER BY name')).map((r) => r.name);
      expect(dbs, name).to.include.members(['default', 'system']);
      expect(dbs.filter((d) => /^rh_|^rafthouse_/.test(d)), name).to.deep.equal([]);
      // Read another way (database=system, unqualified), a catalog is refused rather than shown raw.
      const r = await post(base, 'SELECT count() FROM tables', { database: 'system' });
      expect(r.code, `${name}: ${r.text}`).to.equal('497');
    }
  });

  it('system.query_log: every query this node served, with ClickHouse\'s columns, the caller\'s own', async () => {
    const [, c] = endpoints[0]!;
    const [, l] = endpoints[1]!;
    expect((await post(c, 'SELECT 42', { query_id: 'ql-select' })).text).to.equal('42\n');
    expect((await post(c, "SELECT throwIf(1, 'boom')", { query_id: 'ql-error' })).status).to.equal(500);
    expect((await post(c, 'SELEKT 1', { query_id: 'ql-syntax' })).status).to.equal(400);
    expect((await post(c, 'INSERT INTO plain FORMAT JSONEachRow', { query_id: 'ql-insert' })).status).to.equal(200);
    expect((await post(c, `INSERT INTO plain FORMAT JSONEachRow\n{"id":7,"s":"x"}\n{"id":8,"s":"y"}`, { query_id: 'ql-insert2' })).status).to.equal(200);
    const big = await post(l, 'SELECT number FROM numbers(400000)', { query_id: 'ql-stream' });
    expect(big.status).to.equal(200);
    const log = await rows<{
      query_id: string; type: string; query_kind: string; query: string; exception_code: number; result_rows: number; result_bytes: number;
      written_rows: number; user: string; current_database: string; rafthouse_endpoint: string; query_duration_ms: number; event_date: string; interface: number;
    }>(c, "SELECT query_id, type, query_kind, query, exception_code, result_rows, result_bytes, written_rows, user, current_database, rafthouse_endpoint, query_duration_ms, toString(event_date) AS event_date, interface FROM system.query_log WHERE query_id LIKE 'ql-%' ORDER BY event_time_microseconds");
    const by = new Map(log.map((r) => [r.query_id, r]));
    expect([...by.keys()]).to.deep.equal(['ql-select', 'ql-error', 'ql-syntax', 'ql-insert', 'ql-insert2', 'ql-stream']);
    expect(by.get('ql-select')).to.include({ type: 'QueryFinish', query_kind: 'Select', query: 'SELECT 42', exception_code: 0, result_rows: 1, user: 'default', current_database: 'default', rafthouse_endpoint: 'consistent', interface: 2 });
    expect(by.get('ql-error')).to.include({ type: 'ExceptionWhileProcessing', exception_code: 395 });
    expect(by.get('ql-syntax')).to.include({ type: 'ExceptionBeforeStart', exception_code: 62 });
    expect(by.get('ql-insert2')).to.include({ type: 'QueryFinish', query_kind: 'Insert', query: 'INSERT INTO plain FORMAT JSONEachRow', written_rows: 2 });
    // The streamed answer is logged when its stream ended, with the bytes it sent.
    expect(by.get('ql-stream')).to.include({ type: 'QueryFinish', rafthouse_endpoint: 'local', result_bytes: Buffer.byteLength(big.text) });
    expect(by.get('ql-stream')!.event_date).to.match(/^\d{4}-\d{2}-\d{2}$/);
    for (const r of log) expect(r.query_duration_ms).to.be.a('number').and.at.least(0);
    // Queries of other users are not shown: the log is filtered by the caller.
    const other = await rows<{ n: number }>(c, "SELECT count() AS n FROM system.query_log WHERE user != 'default'");
    expect(other).to.deep.equal([{ n: 0 }]);
  });
});
