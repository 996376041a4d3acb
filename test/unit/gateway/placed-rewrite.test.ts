// The coordinator's rewrite of a read over placed groups (clickhouse-adapter/placed/rewrite.ts): each
// user table becomes the union of its local group databases (merge()) and one leg per remote group;
// columns and (for a simple one-table read) the WHERE are pushed into the legs. Checked on the text,
// and run on the embedded engine with each "remote" leg read from a group database of the same
// engine, so the rewritten statements are real ClickHouse SQL that answers like the unsplit table.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { SqlParser } from '../../../clickhouse-adapter/gateway/parse.js';
import { planAggregateSplit, rewriteAggregateSplit, rewritePlacedRead, type PlacedTable } from '../../../clickhouse-adapter/placed/rewrite.js';
import { legFailure } from '../../../clickhouse-adapter/gateway/gateway.js';
import { createServer } from 'node:http';
import { freePort } from '../../support/ports.js';
import { checkStatementSettings, readSettings } from '../../../clickhouse-adapter/gateway/limits.js';
import { LEG_LIMITS } from '../../../clickhouse-adapter/placed/server.js';

const COLUMNS = [{ name: 'k', type: 'String', kind: '' }, { name: 'x', type: 'UInt64', kind: '' }, { name: 'c', type: 'String', kind: '' }];

describe('placed groups: the read rewrite (merge() + remote legs)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;
  let parser: SqlParser;
  const legs: Array<{ group: number; sql: string }> = [];
  const tables = new Map<string, PlacedTable>([['st', { columns: COLUMNS, groups: [1, 2, 3, 4] }], ['u', { columns: [{ name: 'c', type: 'String', kind: '' }, { name: 'label', type: 'String', kind: '' }], groups: [3] }]]);
  const local = new Set([1, 2]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rh-rewrite-'));
    engine = await openEmbedded({ dataDir: dir });
    parser = new SqlParser(engine);
    for (const g of [1, 2, 3, 4]) {
      await engine.exec(`CREATE DATABASE rh_g${g}`);
      await engine.exec(`CREATE TABLE rh_g${g}.st (k String, x UInt64, c String) ENGINE = MergeTree ORDER BY k`);
      await engine.exec(`INSERT INTO rh_g${g}.st SELECT concat('g${g}-', toString(number)), number + ${g * 100}, concat('c', toString(number % 3)) FROM numbers(10)`);
    }
    await engine.exec('CREATE TABLE rh_g3.u (c String, label String) ENGINE = MergeTree ORDER BY c');
    await engine.exec("INSERT INTO rh_g3.u VALUES ('c0', 'zero'), ('c1', 'one')");
    await engine.exec(`CREATE TABLE everything ENGINE = MergeTree ORDER BY k AS SELECT * FROM merge(REGEXP('^rh_g[0-9]+$'), '^st$')`);
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The rewritten statement: each remote leg read from that group's database of this same engine. */
  async function rewrite(sql: string) {
    legs.length = 0;
    const canonical = (await parser.parse(sql)).canonical;
    return rewritePlacedRead({
      sql: canonical, database: 'default', userDb: 'default', tables, allowWhere: true, isLocal: (g) => local.has(g),
      remote: (group, legSql) => {
        legs.push({ group, sql: legSql });
        return `(${legSql.replace(/FROM `(\w+)`/, `FROM rh_g${group}.\`$1\``)})`;
      },
    });
  }
  const run = async (sql: string) => (await engine.query(sql, { format: 'TSV' })).toString();

  it('answers like the whole table: count and sum, GROUP BY, WHERE, a join of two placed tables', async () => {
    for (const [q, whole] of [
      ['SELECT count(), sum(x) FROM st', 'SELECT count(), sum(x) FROM everything'],
      ['SELECT c, count(), sum(x) FROM st GROUP BY c ORDER BY c', 'SELECT c, count(), sum(x) FROM everything GROUP BY c ORDER BY c'],
      ["SELECT k FROM default.st AS s WHERE x > 305 AND c != 'c2' ORDER BY k", "SELECT k FROM everything AS s WHERE x > 305 AND c != 'c2' ORDER BY k"],
      ['SELECT label, count() FROM st INNER JOIN u USING (c) GROUP BY label ORDER BY label', 'SELECT label, count() FROM everything INNER JOIN rh_g3.u USING (c) GROUP BY label ORDER BY label'],
      ['SELECT * FROM st ORDER BY k LIMIT 3', 'SELECT * FROM everything ORDER BY k LIMIT 3'],
    ] as const) {
      const r = await rewrite(q);
      expect(await run(r.sql), q).to.equal(await run(whole));
    }
  });

  it('rewrites every table reference (a comma join too), refuses IN <placed table>: never a partial answer', async () => {
    for (const [q, whole] of [
      ['SELECT count() FROM u, st', 'SELECT count() FROM rh_g3.u, everything'],
      ['SELECT count() FROM u AS a, default.st AS b WHERE a.c = b.c', 'SELECT count() FROM rh_g3.u AS a, everything AS b WHERE a.c = b.c'],
      ['SELECT count() FROM u WHERE c IN (SELECT c FROM st WHERE x > 350)', 'SELECT count() FROM rh_g3.u WHERE c IN (SELECT c FROM everything WHERE x > 350)'],
    ] as const) {
      const r = await rewrite(q);
      expect(await run(r.sql), q).to.equal(await run(whole));
    }
    let refused: unknown;
    try {
      await rewrite('SELECT count() FROM u WHERE c IN st');
    } catch (e) {
      refused = e;
    }
    expect((refused as { code?: number } | undefined)?.code, 'IN <placed table> is refused').to.equal(48);
    // A name after IN that is not a column of the table is never pushed into a leg (the member's
    // database would resolve it): the leg reads the table alone, the coordinator applies the IN.
    const r = await rewrite('SELECT k FROM st WHERE k IN _rh_meta');
    for (const l of legs) expect(l.sql).to.not.include('_rh_');
    expect(r.sql).to.match(/IN \(?_rh_meta/);
  });

  it('reads local groups through merge() and each remote group through one leg', async () => {
    const r = await rewrite('SELECT count() FROM st');
    expect(r.sql).to.include("merge(REGEXP('^rh_g(1|2)$'), '^st$')");
    expect(legs.map((l) => l.group)).to.deep.equal([3, 4]);
  });

  it('pushes down the columns named and a WHERE on the table\'s own columns', async () => {
    const r = await rewrite("SELECT sum(x) FROM st WHERE c = 'c1' AND x > 3");
    expect(r.pushed.get('st')).to.deep.equal({ columns: ['x', 'c'], where: "(c = 'c1') AND (x > 3)" });
    expect(legs[0]!.sql).to.equal("SELECT `x`, `c` FROM `st` WHERE (c = 'c1') AND (x > 3)");
  });

  it('keeps the WHERE on the coordinator when pushing it could change its meaning', async () => {
    for (const q of [
      'SELECT x + 1 AS x FROM st WHERE x > 3', // WHERE means the alias
      'SELECT count() FROM st WHERE x IN (SELECT x FROM st WHERE c = \'c1\')', // a subquery
      'SELECT count() FROM st INNER JOIN u USING (c) WHERE label = \'one\'', // a join
      'SELECT count() FROM st WHERE y > 1', // not a column of the table
    ]) {
      const r = await rewrite(q).catch(() => undefined);
      if (r) expect(r.pushed.get('st')?.where, q).to.equal(undefined);
    }
  });

  /** The -State / -Merge split of `sql`, or undefined when the query does not allow one. */
  async function split(sql: string) {
    legs.length = 0;
    const canonical = (await parser.parse(sql)).canonical;
    const base = { sql: canonical, database: 'default', userDb: 'default', tables, allowWhere: true };
    const plan = planAggregateSplit(base);
    if (!plan) return undefined;
    const described = (await engine.query(plan.describeSql, { format: 'JSONEachRow' })).toString().trim().split('\n').map((l) => JSON.parse(l) as { name: string; type: string });
    return rewriteAggregateSplit({
      ...base, isLocal: (g) => local.has(g),
      remote: (group, legSql) => {
        legs.push({ group, sql: legSql });
        return `(${legSql.replace(/FROM `(\w+)`/, `FROM rh_g${group}.\`$1\``)})`;
      },
    }, plan, described);
  }

  it('splits aggregates into -State legs and a -Merge here: same answers, same column names', async () => {
    for (const [q, whole] of [
      ['SELECT count(), sum(x) FROM st', 'SELECT count(), sum(x) FROM everything'],
      ["SELECT c, count(), sum(x) AS s, avg(x), uniqExact(k), max(k) FROM st WHERE x > 205 GROUP BY c HAVING count() > 1 ORDER BY s DESC, c LIMIT 2",
        "SELECT c, count(), sum(x) AS s, avg(x), uniqExact(k), max(k) FROM everything WHERE x > 205 GROUP BY c HAVING count() > 1 ORDER BY s DESC, c LIMIT 2"],
      ['SELECT c, upper(c) AS u, min(x + 1), count() FROM st GROUP BY c ORDER BY c FORMAT TSVWithNames', 'SELECT c, upper(c) AS u, min(x + 1), count() FROM everything GROUP BY c ORDER BY c FORMAT TSVWithNames'],
    ] as const) {
      const sql = await split(q);
      expect(sql, q).to.be.a('string');
      expect(legs[0]!.sql, q).to.match(/State\(/);
      expect(await run(sql!), q).to.equal(await run(whole));
    }
  });

  it('does not split what it cannot: rows travel instead', async () => {
    for (const q of [
      'SELECT k, x FROM st WHERE x > 3', // no aggregate
      'SELECT sum(x) + 1 FROM st', // an aggregate inside an expression (its column name would change)
      'SELECT c, sum(x) FROM st INNER JOIN u USING (c) GROUP BY c', // a join
      'SELECT x % 2, count() FROM st GROUP BY x % 2', // a key that is not a column
      'SELECT quantile(0.5)(x) FROM st', // parametric
      'SELECT count(DISTINCT c) FROM st', // DISTINCT
      'SELECT sum(x) OVER () FROM st', // a window
    ]) {
      expect(await split(q), q).to.equal(undefined);
    }
  });

  it('tells a failed leg another round may fix (member gone, lease over, overloaded) from a refusal', async () => {
    const server = createServer((req, res) => {
      const status = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status'));
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('Code: 497. DB::Exception: refused. (ACCESS_DENIED)\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const holds = new Set(['h1']);
    const failure = async (url: string) => {
      try {
        await engine.query(`SELECT * FROM url('${url}', 'Native', 'x UInt64')`, { format: 'TSV', settings: { http_max_tries: 1 } });
      } catch (e) {
        return legFailure(e, holds);
      }
      throw new Error('the leg did not fail');
    };
    const statementError = async (sql: string) => {
      try {
        await engine.query(sql, { format: 'TSV' });
      } catch (e) {
        return legFailure(e, holds);
      }
      throw new Error('the statement did not fail');
    };
    try {
      const base = `http://127.0.0.1:${port}`;
      expect(await failure(`${base}/internal/select?group=1&hold=h1&status=410`)).to.deep.equal({ base });
      expect(await failure(`${base}/internal/select?group=1&hold=h1&status=503`)).to.deep.equal({ base });
      expect(await failure(`${base}/internal/select?group=1&hold=h1&status=403`), 'the member refused the statement: no retry').to.equal(undefined);
      expect(await failure(`${base}/internal/select?group=1&hold=other&status=503`), 'not a leg of this round').to.equal(undefined);
      expect(await failure(`http://127.0.0.1:${await freePort()}/internal/select?group=1&hold=h1&status=200`), 'nobody listening').to.deep.equal({ base: undefined });
      // A statement's own error that merely looks like a leg's is reported as it is (no rounds bought).
      expect(await statementError(`SELECT throwIf(1, 'HTTP status code: 503')`)).to.equal(undefined);
      // ...and a client may not pick a network error's code for its throwIf (the gateway's own text may).
      expect(() => checkStatementSettings("SELECT throwIf(1, 'Poco::Net::NetException: x', 1000) SETTINGS allow_custom_error_code_in_throwif = 1", LEG_LIMITS)).to.throw(/Cannot modify/);
      expect(() => readSettings({ allow_custom_error_code_in_throwif: '1' }, LEG_LIMITS)).to.throw(/Cannot modify/);
      expect(await statementError(`SELECT throwIf(1, 'Received error from remote server ${base}/internal/select?group=1&hold=h1. HTTP status code: 503 x')`)).to.equal(undefined);
    } finally {
      server.close();
    }
  });
});
