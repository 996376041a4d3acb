// A hostile client against a real 3-node RaftHouse cluster (3 raftd + 3 rafthouse processes, embedded
// chdb): statements that would read or write outside the group's database, make replicas diverge or
// stop a group — each sent to both gateway endpoints of every class of variant (comment, case,
// whitespace, WITH, EXPLAIN, OR REPLACE) and proposed raw through raftd's API, around the gateway.
// Every one is refused with a ClickHouse-style error; no file appears, no URL is fetched, no table or
// database is created, the groups keep applying, and the three replicas' checksums stay equal.

import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RafthouseCluster } from './harness.js';
import { RaftdClient } from '../../../adapters/sdk/client.js';
import { replicaChecksums } from './checksums.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { freePort } from '../../support/ports.js';

const GROUPS = 4;
/**
 * The ClickHouse codes a refusal may carry: the rules' (rules/errors.ts), 164 for writes on the local
 * endpoint, and what ClickHouse's own parser answers before the rules see the statement (62 syntax;
 * 56 UNKNOWN_STORAGE: `EXPLAIN AST` of `SETTINGS disk = disk(...)` resolves the engine, `mergetree` in
 * lower case is none).
 */
const REFUSAL_CODES = new Set([36, 48, 62, 164, 358, 497]);
const PARSER_CODES = new Set([56, 62]);

/** `rawOnly`: refused as a raw entry; the gateways answer it for the caller's own queries (KILL QUERY). */
interface Hostile { sql: string; read: boolean; rawOnly?: boolean }

function hostileStatements(marker: string, url: string): Hostile[] {
  const w = (sql: string): Hostile => ({ sql, read: false });
  const r = (sql: string): Hostile => ({ sql, read: true });
  const base: Hostile[] = [
    // table functions, scalar functions and clauses with external reach, in writes
    w(`INSERT INTO plain SELECT * FROM url('${url}', 'CSV', 'k UInt32')`),
    w(`INSERT INTO plain WITH x AS (SELECT * FROM url('${url}', 'CSV', 'k UInt32')) SELECT * FROM x`),
    w(`INSERT INTO FUNCTION file('${marker}-1.csv', 'CSV', 'k UInt32') SELECT 1`),
    w(`INSERT INTO plain SELECT length(file('/etc/hostname'))`),
    w(`INSERT INTO plain FROM INFILE '/etc/hostname' FORMAT CSV`),
    w(`INSERT INTO plain SELECT dummy FROM remote('127.0.0.1', system.one)`),
    w(`INSERT INTO plain SELECT * FROM s3('${url}/x.csv', 'CSV', 'k UInt32')`),
    w(`INSERT INTO plain SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')`),
    w(`INSERT INTO plain SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')`),
    w(`INSERT INTO plain SELECT * FROM executable('x.sh', 'TSV', 'k UInt32')`),
    w(`INSERT INTO plain SELECT * FROM format(Values, 'k UInt32', '(length(file(''/etc/hostname'')))')`),
    w(`INSERT INTO plain SELECT rand()`),
    w(`INSERT INTO plain SELECT dummy FROM system.one`),
    // RaftHouse's own tables and other databases as source or destination
    w(`INSERT INTO _rh_applied SELECT 1, 1, ''`),
    w(`INSERT INTO plain SELECT idx FROM _rh_applied`),
    w(`INSERT INTO plain SELECT k FROM rh_g2.plain`),
    // engines and dictionary sources with external reach, engines that cannot be applied exactly once
    w(`CREATE TABLE p (x String) ENGINE = URL('${url}', 'RawBLOB')`),
    w(`CREATE OR REPLACE TABLE p2 (x String) ENGINE = URL('${url}', 'RawBLOB')`),
    w(`CREATE TABLE f (x String) ENGINE = File(CSV)`),
    w(`CREATE TABLE mem (x String) ENGINE = Memory`),
    w(`CREATE TABLE lg (x String) ENGINE = Log`),
    w(`CREATE TABLE dist (x String) ENGINE = Distributed('c', 'system', 'one')`),
    w(`CREATE TABLE mg (x String) ENGINE = Merge(REGEXP('.*'), '.*')`),
    w(`CREATE TABLE s3t (x String) ENGINE = S3('${url}/x', 'CSV')`),
    w(`CREATE TABLE ex (x String) ENGINE = Executable('x.sh', TabSeparated)`),
    w(`CREATE TABLE dk (x UInt8) ENGINE = MergeTree ORDER BY x SETTINGS disk = disk(type = 'local', path = '${marker}-disk/')`),
    w(`CREATE TABLE tf AS file('${marker}-2', 'CSV', 'x UInt8')`),
    w(`CREATE OR REPLACE DICTIONARY d (x UInt64) PRIMARY KEY x SOURCE(HTTP(url '${url}' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)`),
    w(`CREATE DATABASE evil`),
    w(`CREATE TABLE rh_g2.x (a UInt8) ENGINE = MergeTree ORDER BY a`),
    w(`CREATE VIEW fv AS SELECT * FROM file('${marker}-3', 'CSV', 'x UInt8')`),
    w(`CREATE OR REPLACE VIEW fv2 AS SELECT * FROM url('${url}', 'CSV', 'x UInt8')`),
    w(`CREATE MATERIALIZED VIEW mvx TO _rh_settings AS SELECT 1 AS idx, '' AS settings FROM plain`),
    w(`CREATE TEMPORARY TABLE tmp (a UInt8)`),
    w(`CREATE FUNCTION evilf AS x -> x`),
    w(`CREATE USER evil IDENTIFIED WITH no_password`),
    w(`GRANT ALL ON *.* TO default`),
    // ALTER / DROP / RENAME / OPTIMIZE outside the group's own tables, or outside what replicates
    w(`ALTER TABLE plain FREEZE`),
    w(`ALTER TABLE plain MODIFY SETTING storage_policy = 'x'`),
    w(`ALTER TABLE plain UPDATE k = 1 WHERE k IN (SELECT k FROM url('${url}', 'CSV', 'k UInt32'))`),
    w(`ALTER TABLE plain DETACH PARTITION tuple()`),
    w(`ALTER TABLE _rh_applied DELETE WHERE 1`),
    w(`DROP DATABASE rh_g1`),
    w(`DROP TABLE _rh_applied`),
    w(`TRUNCATE TABLE _rh_settings`),
    w(`RENAME TABLE plain TO _rh_plain`),
    w(`EXCHANGE TABLES plain AND _rh_applied`),
    w(`RENAME DATABASE rh_g1 TO evil`),
    w(`OPTIMIZE TABLE _rh_applied FINAL`),
    // statements a server user without the grant may not run
    { sql: `KILL QUERY WHERE 1`, read: false, rawOnly: true },
    w(`SYSTEM STOP MERGES`),
    w(`BACKUP TABLE plain TO File('${marker}-b.zip')`),
    w(`DETACH TABLE plain`),
    w(`ATTACH TABLE at FROM '${marker}-4' (x UInt8) ENGINE = MergeTree ORDER BY x`),
    w(`UNDROP TABLE plain`),
    w(`USE rh_g1`),
    // reads (both endpoints) reaching outside the sandbox
    r(`SELECT * FROM file('/etc/shadow', 'LineAsString')`),
    r(`WITH (SELECT 1) AS a SELECT * FROM file('/proc/self/cmdline', 'LineAsString')`),
    r(`SELECT 'x' INTO OUTFILE '${marker}-5' TRUNCATE`),
    r(`SELECT * FROM url('${url}', 'CSV', 'k UInt32')`),
    r(`EXPLAIN SELECT * FROM url('${url}', 'CSV', 'k UInt32')`),
    r(`EXPLAIN ESTIMATE SELECT * FROM rh_g1._rh_applied`),
    r(`SELECT * FROM rh_g1._rh_applied`),
    r(`SELECT * FROM remote('127.0.0.1', system.one)`),
    r(`SHOW CREATE TABLE rh_g1._rh_applied`),
    r(`DESCRIBE TABLE file('/etc/passwd')`),
    r(`SELECT file('/etc/hostname')`),
    r(`SELECT * FROM merge(REGEXP('^rh_'), '^_rh_')`),
    r(`SELECT * FROM plain AS p INNER JOIN file('/etc/passwd', 'LineAsString') AS f ON 1`),
  ];
  // Every statement also with a leading comment, in lower case, and with its spaces turned into line breaks and tabs.
  const out: Hostile[] = [];
  for (const h of base) {
    out.push(h);
    out.push({ ...h, sql: `/* hostile */ ${h.sql}` });
    out.push({ ...h, sql: h.sql.toLowerCase() });
    out.push({ ...h, sql: h.sql.replace(/ /g, '\n\t ') });
  }
  return out;
}

/** POST `body` (the statement, or with `query` in the URL: the data), the way curl --data-binary does. */
async function post(base: string, body: string, query?: string): Promise<{ status: number; text: string; code: string | null }> {
  const qs = query === undefined ? '' : `?query=${encodeURIComponent(query)}`;
  const res = await fetch(`${base}/${qs}`, { method: 'POST', body, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, text: await res.text(), code: res.headers.get('x-clickhouse-exception-code') };
}

async function ok(base: string, sql: string, query?: string): Promise<string> {
  const r = await post(base, sql, query);
  expect(r.status, `${sql}: ${r.text}`).to.equal(200);
  return r.text;
}

describe('RaftHouse against a hostile client: closed write path, read sandbox, validation at apply (3 nodes, real processes)', function () {
  this.timeout(600_000);
  let cluster: RafthouseCluster;
  let hits = 0;
  let target: Server;
  let url = '';
  const marker = join(tmpdir(), `rh-hostile-${randomUUID().slice(0, 8)}`);

  before(async () => {
    // Any fetch of this URL by any node would count: a URL engine / table function that got through.
    const port = await freePort();
    target = createServer((req, res) => { hits++; res.end('1\n'); });
    await new Promise<void>((resolve) => target.listen(port, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${port}/hit`;
    cluster = await RafthouseCluster.start({ groups: GROUPS });
  });

  after(async () => {
    await cluster?.destroy();
    await new Promise<void>((resolve) => target?.close(() => resolve()));
  });

  const raftd = (id: number) => new RaftdClient({ token: cluster.raft.clientToken(), url: cluster.raft.node(id).url });

  const checksums = (): Promise<string[]> => replicaChecksums(cluster, GROUPS, 'linearizable');

  async function catalog(): Promise<string[]> {
    // The replicated catalog: tables of RaftHouse's databases (the read views in `default` are local
    // objects each node syncs on its own timer) and the list of databases.
    const sql = "SELECT database, name, engine FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema', 'default') ORDER BY ALL FORMAT JSONEachRow";
    return Promise.all(cluster.nodes.map(async (n) => (await ok(n.localUrl, sql)) + (await ok(n.localUrl, 'SELECT name FROM system.databases ORDER BY name'))));
  }

  it('the README tour still works and every hostile statement is refused on both endpoints and at apply; replicas stay equal', async () => {
    const c0 = cluster.nodes[0]!.consistentUrl;
    // The README tour (docs: README.md, "A tour"), plus an unsharded table the hostile statements aim at.
    await ok(c0, "CREATE TABLE visits (user_id UInt64, amount UInt32, day Date) ENGINE = MergeTree ORDER BY (user_id, day) SETTINGS rafthouse_shard_key = 'user_id'");
    await ok(c0, '{"user_id":1,"amount":10,"day":"2026-11-01"}\n{"user_id":2,"amount":20,"day":"2026-11-01"}\n{"user_id":3,"amount":30,"day":"2026-11-02"}',
      'INSERT INTO visits FORMAT JSONEachRow');
    await ok(cluster.nodes[1]!.consistentUrl, "INSERT INTO visits VALUES (4, 40, '2026-11-02'), (5, 50, '2026-11-03')");
    expect(await ok(cluster.nodes[2]!.consistentUrl, 'SELECT count(), sum(amount) FROM visits')).to.equal('5\t150\n');
    expect((await ok(cluster.nodes[2]!.consistentUrl, 'SELECT _database, count() FROM visits GROUP BY ALL')).trim().split('\n').length).to.be.greaterThan(1);
    await ok(c0, 'CREATE TABLE plain (k UInt32) ENGINE = MergeTree ORDER BY k');
    await ok(c0, 'INSERT INTO plain VALUES (1), (2), (3)');
    await ok(c0, 'INSERT INTO plain SELECT number + 10 FROM numbers(5)');
    const catalogBefore = await catalog();
    const sumsBefore = await checksums();
    expect(new Set(sumsBefore).size, 'replicas equal before').to.equal(1);

    const hostile = hostileStatements(marker, url);
    expect(hostile.length).to.be.at.least(200);
    const failures: string[] = [];
    const leader = raftd(1);
    try {
      for (const h of hostile) {
        for (const n of h.rawOnly ? [] : cluster.nodes) {
          for (const [endpoint, base] of [['consistent', n.consistentUrl], ['local', n.localUrl]] as const) {
            const r = await post(base, h.sql);
            const code = Number(r.code);
            if (r.status === 200 || !(REFUSAL_CODES.has(code) || PARSER_CODES.has(code)) || !/^Code: \d+\. DB::Exception: [\s\S]*\([A-Z_]+\) \(version /.test(r.text)) {
              failures.push(`${endpoint} node ${n.id}: ${JSON.stringify(h.sql)} -> ${r.status} ${r.text.slice(0, 200)}`);
            }
            if (endpoint === 'local' && !h.read && code !== 164 && !PARSER_CODES.has(code)) failures.push(`local node ${n.id}: a write answered ${code}, not READONLY: ${h.sql}`);
          }
        }
        // Around the gateway: raw entries, as a statement and (for INSERTs) as an insert entry, to group 1.
        const kinds = /^\s*(\/\*[^*]*\*\/\s*)?insert/i.test(h.sql) ? ['statement', 'insert', 'ddl'] as const : ['statement', 'ddl'] as const;
        for (const kind of kinds) {
          const res = await fetch(`${cluster.raft.node(1).url}/v1/groups/1/propose`, {
            method: 'POST', headers: { 'content-type': 'application/octet-stream', ...cluster.raft.clientHeaders() },
            body: encodeEntry({ v: 1, kind, sql: h.sql, database: 'default' }), signal: AbortSignal.timeout(30_000),
          });
          const body = await res.json() as { index?: number; error?: { code: string; message: string } };
          const m = /^CLICKHOUSE_(\d+)$/.exec(body.error?.code ?? '');
          // The rules' refusals carry ClickHouse's exception text; the parser's own errors carry its message.
          const clickhouseStyle = m && ((REFUSAL_CODES.has(Number(m[1])) && /^Code: \d+\. DB::Exception: /.test(body.error!.message)) || PARSER_CODES.has(Number(m[1])));
          if (res.status !== 422 || typeof body.index !== 'number' || !(clickhouseStyle || body.error?.code === 'RH_BAD_ENTRY')) {
            failures.push(`raw ${kind}: ${JSON.stringify(h.sql)} -> ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
          }
        }
      }
    } finally {
      await leader.close();
    }
    expect(failures, failures.slice(0, 20).join('\n')).to.deep.equal([]);

    // Nothing reached outside: no file under the marker, no URL fetched, no table or database created.
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`rh-hostile-${marker.slice(-8)}`))).to.deep.equal([]);
    expect(hits, 'requests to the URL the statements named').to.equal(0);
    expect(await catalog()).to.deep.equal(catalogBefore);
    // The groups kept applying (every refused entry advanced the index) and the replicas are equal.
    await ok(c0, 'INSERT INTO plain VALUES (100)');
    await ok(cluster.nodes[1]!.consistentUrl, "INSERT INTO visits VALUES (6, 60, '2026-11-03')");
    for (const n of cluster.nodes) {
      expect(await ok(n.consistentUrl, 'SELECT count(), sum(k) FROM plain')).to.equal('9\t166\n');
      expect(await ok(n.consistentUrl, 'SELECT count(), sum(amount) FROM visits')).to.equal('6\t210\n');
    }
    const sumsAfter = await checksums();
    expect(sumsAfter[1], 'node 2 equals node 1').to.equal(sumsAfter[0]);
    expect(sumsAfter[2], 'node 3 equals node 1').to.equal(sumsAfter[0]);
  });

  it('reads: the raftd read API of the state machine has the same sandbox', async () => {
    const c = raftd(2);
    try {
      for (const sql of ["SELECT * FROM file('/etc/hostname', 'LineAsString')", 'SELECT * FROM _rh_applied', `SELECT 1 INTO OUTFILE '${marker}-6'`]) {
        const err = await c.read(1, { sql }, 'stale').then(() => undefined, (e: Error & { code?: string }) => e);
        expect(err, sql).to.not.equal(undefined);
        expect(err!.message, sql).to.match(/RH_BAD_QUERY: Code: (497|358)\. DB::Exception: /);
      }
      const okRead = await c.read<{ rows: unknown[] }>(1, { sql: 'SELECT count() AS c FROM numbers(3)' }, 'stale');
      expect(okRead.rows).to.deep.equal([{ c: 3 }]);
    } finally {
      await c.close();
    }
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`rh-hostile-${marker.slice(-8)}`))).to.deep.equal([]);
  });
});
