// The pure parts of the user's view of the catalogs and of inline INSERT data: where the rewrite puts
// its subqueries (aliases kept, qualified columns untouched), where binary data begins in a body, and
// what the query log keeps of a request's text. The end-to-end behaviour is catalogs.test.ts and
// formats.test.ts (real processes).

import { expect } from 'chai';
import { catalogsIn, rewriteCatalogs } from '../../../clickhouse-adapter/gateway/catalog.js';
import { inlineInsertData } from '../../../clickhouse-adapter/gateway/http.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueryLog, queryKind, toQueryLogQuery } from '../../../clickhouse-adapter/gateway/query-log.js';
import type { QueryLogRecord } from '../../../clickhouse-adapter/gateway/query-log.js';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import { queryRows } from '../../../clickhouse-adapter/engine/sql.js';
import type { ParsedStatement } from '../../../clickhouse-adapter/gateway/parse.js';
import { GatewayError } from '../../../clickhouse-adapter/gateway/errors.js';

const src = { userDb: 'default', queryLog: (u: string) => `(LOG OF ${u})` };
const stmt = (tables: ParsedStatement['tables'] = []) => ({ tables } as unknown as ParsedStatement);

describe('gateway: catalogs as the user sees them, inline INSERT data, query log text', () => {
  it('replaces system.<catalog> by a subquery, keeping an alias or naming it after the catalog', () => {
    const out = rewriteCatalogs("SELECT name FROM system.tables WHERE database = 'default'", stmt(), 'default', src, 'u');
    expect(out).to.match(/^SELECT name FROM \(SELECT \* EXCEPT/).and.match(/\) AS tables WHERE database = 'default'$/);
    const aliased = rewriteCatalogs('SELECT t.name FROM system.tables AS t JOIN `system`.`columns` c ON c.table = t.name', stmt(), 'default', src, 'u');
    expect(aliased).to.match(/\) AS t JOIN \(SELECT \* REPLACE/).and.match(/\) c ON c\.table = t\.name$/);
    expect(rewriteCatalogs('SELECT * FROM system.query_log', stmt(), 'default', src, 'alice')).to.equal('SELECT * FROM (LOG OF alice) AS query_log');
    // A qualified column (system.tables.name) and other system tables are left alone.
    expect(rewriteCatalogs('SELECT system.tables.name FROM system.one', stmt(), 'default', src, 'u')).to.equal('SELECT system.tables.name FROM system.one');
    expect([...catalogsIn('SELECT 1 FROM system.query_log, system.databases')].sort()).to.deep.equal(['databases', 'query_log']);
  });

  it('refuses a catalog named without its database under database=system', () => {
    expect(() => rewriteCatalogs('SELECT * FROM tables', stmt([{ table: 'tables' }]), 'system', src, 'u')).to.throw(GatewayError, /system\.tables/);
    // The user's own table called `tables` is the user's.
    expect(rewriteCatalogs('SELECT * FROM tables', stmt([{ table: 'tables' }]), 'default', src, 'u')).to.equal('SELECT * FROM tables');
  });

  it('finds where binary INSERT data begins in a body, byte for byte', () => {
    const data = Buffer.from([0x00, 0xff, 0x0a, 0xc3, 0x28, 0x27, 0x3b]);
    const body = Buffer.concat([Buffer.from('INSERT INTO `tä` FORMAT Native\n'), data]);
    const at = inlineInsertData(body);
    expect(at).to.equal(Buffer.byteLength('INSERT INTO `tä` FORMAT Native\n'));
    expect(body.subarray(at)).to.deep.equal(data);
    // VALUES stays SQL; a SELECT is not an insert with data; nothing after FORMAT X is no data.
    expect(inlineInsertData(Buffer.from('INSERT INTO t VALUES (1)'))).to.equal(undefined);
    expect(inlineInsertData(Buffer.from('INSERT INTO t SELECT 1 FORMAT Native'))).to.equal(undefined);
    expect(inlineInsertData(Buffer.from('INSERT INTO t FORMAT Native'))).to.equal(undefined);
    expect(inlineInsertData(Buffer.from('SELECT 1 FORMAT Native\n'))).to.equal(undefined);
  });

  it('logs a statement without its inline data, and its kind as ClickHouse names it', () => {
    expect(toQueryLogQuery('INSERT INTO t FORMAT JSONEachRow\n{"a":1}\n')).to.equal('INSERT INTO t FORMAT JSONEachRow');
    expect(toQueryLogQuery('SELECT 1')).to.equal('SELECT 1');
    expect(toQueryLogQuery('x'.repeat(20_000))).to.have.length(16_384);
    expect(['SELECT 1', ' /* c */ insert into t values (1)', 'WITH 1 AS x SELECT x', 'create table t (a UInt8) engine = Memory', '(SELECT 1)'].map(queryKind))
      .to.deep.equal(['Select', 'Insert', 'Select', 'Create', 'Select']);
  });

  it('the query log is a bounded ring in a Memory table, with ClickHouse\'s columns, per user', async function () {
    this.timeout(30_000);
    const dir = mkdtempSync(join(tmpdir(), 'rh-qlog-'));
    const engine = await openEmbedded({ dataDir: dir });
    try {
      const log = new QueryLog(engine, { maxRows: 50, flushMs: 60_000 });
      const rec = (i: number, user: string): QueryLogRecord => ({
        type: 'QueryFinish', startMs: 1_700_000_000_000 + i, endMs: 1_700_000_000_010 + i, user, queryId: `q${i}`, query: `SELECT ${i}`,
        database: 'default', endpoint: 'local', httpMethod: 'POST', readRows: 0, readBytes: 0, writtenRows: 0, writtenBytes: 0,
        resultRows: 1, resultBytes: 2, exceptionCode: 0, exception: '',
      });
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 30; i++) log.record(rec(round * 30 + i, i % 3 === 0 ? 'bob' : 'alice'));
        await log.flush();
      }
      const all = await queryRows<{ n: number; last: string }>(engine, "SELECT count() AS n, max(query_id) AS last FROM rafthouse_local.query_log");
      expect(all[0]!.n, 'the oldest blocks went').to.be.at.most(60);
      const mine = await queryRows<{ query_id: string; query_kind: string; query_duration_ms: number; event_time: string; user: string }>(engine,
        `SELECT query_id, query_kind, query_duration_ms, toString(event_time) AS event_time, user FROM ${log.source('bob')} ORDER BY event_time_microseconds DESC LIMIT 1`);
      expect(mine).to.have.length(1);
      expect(mine[0]).to.include({ query_id: 'q117', query_kind: 'Select', query_duration_ms: 10, user: 'bob' });
      await log.close();
    } finally {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
