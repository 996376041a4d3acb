// The rules module over ClickHouse's real parser (embedded chdb): what the write path and reads allow,
// and the code each refusal carries. The same checks run in the gateway and in the state machine.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseError, openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { SqlParser } from '../../../clickhouse-adapter/gateway/parse.js';
import { RuleError, checkRead, checkValuesData, checkWrite, loadNondeterministic } from '../../../clickhouse-adapter/rules/index.js';
import type { WriteContext } from '../../../clickhouse-adapter/rules/index.js';

/** The refusals every hostile statement of the integration table gets, by class. */
const DENIED = 497;
const OUTFILE = 358;
const NOT_IMPLEMENTED = 48;
const BAD_ARGUMENTS = 36;
const SYNTAX_ERROR = 62;

describe('rules: the write path allow-list and the read sandbox (ClickHouse parser)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;
  let parser: SqlParser;
  let nondeterministic: Set<string>;
  let gateway: WriteContext;
  let replica: WriteContext;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rules-'));
    engine = await openEmbedded({ dataDir: dir, readonly: true, allowSettings: true });
    parser = new SqlParser(engine);
    nondeterministic = await loadNondeterministic(engine);
    gateway = { scope: { own: new Set(), insertTarget: new Set(['default']), userDb: 'default' }, nondeterministic, allowPinnable: true };
    replica = { scope: { own: new Set(['rh_g3']), insertTarget: new Set(['rh_g3', 'default']) }, nondeterministic, allowPinnable: false };
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function writeCode(sql: string, ctx: WriteContext): Promise<number | string> {
    let stmt;
    try {
      stmt = await parser.parse(sql);
    } catch (e) {
      if (e instanceof ClickHouseError) return e.code; // ClickHouse's parser refuses it first (62)
      throw e;
    }
    try {
      return checkWrite(stmt, ctx);
    } catch (e) {
      if (e instanceof RuleError) return e.code;
      throw e;
    }
  }

  async function readCode(sql: string, database = 'default', allow?: string[]): Promise<number | 'ok'> {
    const stmt = await parser.parse(sql);
    try {
      checkRead(stmt, { database, userDb: 'default', ...(allow ? { allowFunctions: new Set(allow) } : {}) });
      return 'ok';
    } catch (e) {
      if (e instanceof RuleError) return e.code;
      throw e;
    }
  }

  const allowedWrites: Array<[string, string]> = [
    ["CREATE TABLE visits (user_id UInt64, url String, ts DateTime) ENGINE = MergeTree ORDER BY (user_id, ts) SETTINGS rafthouse_shard_key = 'user_id'", 'create'],
    ['CREATE TABLE t (a UInt8, d Date DEFAULT today(), u UUID DEFAULT generateUUIDv4()) ENGINE = ReplacingMergeTree ORDER BY a PARTITION BY toYYYYMM(d) TTL d + INTERVAL 1 YEAR', 'create'],
    ['CREATE TABLE IF NOT EXISTS s (a UInt8, v UInt64) ENGINE = SummingMergeTree ORDER BY a SETTINGS index_granularity = 1024', 'create'],
    ['CREATE TABLE n (a UInt8) ENGINE = Null', 'create'],
    ['CREATE TABLE t2 AS t', 'create'],
    ['CREATE TABLE t3 ENGINE = MergeTree ORDER BY a AS SELECT number AS a FROM numbers(10)', 'create'],
    ['CREATE OR REPLACE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a', 'create'],
    ['CREATE VIEW v AS SELECT a FROM t WHERE a > 1', 'create'],
    ['CREATE MATERIALIZED VIEW mv TO t2 AS SELECT a FROM t', 'create'],
    ['CREATE MATERIALIZED VIEW mv2 ENGINE = AggregatingMergeTree ORDER BY a AS SELECT a, count() AS c FROM t GROUP BY a', 'create'],
    ['INSERT INTO t FORMAT JSONEachRow', 'insert'],
    ['INSERT INTO default.t (a, b) FORMAT JSONEachRow', 'insert'],
    ['INSERT INTO t VALUES', 'insert'],
    ['INSERT INTO t SELECT number FROM numbers(10)', 'insert'],
    ['INSERT INTO t SELECT a FROM src WHERE a IN (SELECT a FROM other)', 'insert'],
    ['INSERT INTO t SELECT now()', 'insert'], // the gateway pins it
    ['ALTER TABLE t ADD COLUMN c UInt8 DEFAULT 1, DROP COLUMN b', 'alter'],
    ['ALTER TABLE t UPDATE a = 1 WHERE d < now()', 'alter'],
    ['ALTER TABLE t DELETE WHERE a IN (SELECT a FROM t2)', 'alter'],
    ['ALTER TABLE t DROP PARTITION 202401', 'alter'],
    ['ALTER TABLE t MODIFY SETTING index_granularity_bytes = 0', 'alter'],
    ['ALTER TABLE t MODIFY TTL d + INTERVAL 2 YEAR', 'alter'],
    ['DROP TABLE t', 'drop'],
    ['DROP TABLE IF EXISTS t SYNC', 'drop'],
    ['DROP VIEW v', 'drop'],
    ['TRUNCATE TABLE t', 'truncate'],
    ['TRUNCATE t', 'truncate'],
    ['RENAME TABLE a TO b', 'rename'],
    ['EXCHANGE TABLES a AND b', 'rename'],
    ['OPTIMIZE TABLE t FINAL', 'optimize'],
    ['OPTIMIZE TABLE t FINAL DEDUPLICATE', 'optimize'],
    ['SET input_format_skip_unknown_fields = 0', 'set'],
  ];
  for (const [sql, kind] of allowedWrites) {
    it(`allows ${sql.slice(0, 90)}`, async () => {
      expect(await writeCode(sql, gateway)).to.equal(kind);
    });
  }

  it('the replica scope accepts its own database as qualifier and refuses every other', async () => {
    expect(await writeCode('CREATE TABLE rh_g3.x (a UInt8) ENGINE = MergeTree ORDER BY a', replica)).to.equal('create');
    expect(await writeCode('INSERT INTO default.t FORMAT JSONEachRow', replica)).to.equal('insert');
    expect(await writeCode('CREATE TABLE rh_g5.x (a UInt8) ENGINE = MergeTree ORDER BY a', replica)).to.equal(DENIED);
    expect(await writeCode('CREATE TABLE default.x (a UInt8) ENGINE = MergeTree ORDER BY a', replica)).to.equal(DENIED);
    expect(await writeCode('INSERT INTO t SELECT * FROM default.src', replica)).to.equal(DENIED);
    expect(await writeCode('INSERT INTO t SELECT * FROM rh_g5.src', replica)).to.equal(DENIED);
    expect(await writeCode('INSERT INTO t SELECT now()', replica)).to.equal(BAD_ARGUMENTS); // arrives pinned from the gateway
    expect(await writeCode('CREATE TABLE t2 AS rh_g5.x', replica)).to.equal(DENIED);
    expect(await writeCode('CREATE MATERIALIZED VIEW m TO rh_g5.x AS SELECT 1 AS a', replica)).to.equal(DENIED);
    expect(await writeCode('RENAME TABLE a TO rh_g5.a', replica)).to.equal(DENIED);
  });

  const refusedWrites: Array<[string, number]> = [
    ["INSERT INTO t SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a UInt8')", DENIED],
    ["/*x*/INSERT INTO FUNCTION file('/tmp/rules-x.csv', 'CSV', 'a UInt8') SELECT 1", DENIED],
    ["INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV", DENIED],
    ["INSERT INTO t SELECT 1 INTO OUTFILE '/tmp/rules-o'", SYNTAX_ERROR],
    ["INSERT INTO t SELECT * FROM (SELECT 1) INTO OUTFILE '/tmp/rules-o'", SYNTAX_ERROR],
    ["INSERT INTO t SELECT * FROM remote('127.0.0.1', system.one)", DENIED],
    ["INSERT INTO t SELECT * FROM s3('http://x/y.csv')", DENIED],
    ["INSERT INTO t SELECT * FROM format(Values, 'a String', '(file(''/etc/passwd''))')", DENIED],
    ["INSERT INTO t SELECT * FROM generateRandom('a UInt8')", DENIED],
    ["INSERT INTO t SELECT length(file('/etc/passwd'))", DENIED],
    ["INSERT INTO t SELECT dictGet('d', 'x', 1)", DENIED],
    ['INSERT INTO t SELECT rand()', BAD_ARGUMENTS],
    ['INSERT INTO _rh_applied SELECT 1, 1, 2', DENIED],
    ['INSERT INTO t SELECT * FROM _rh_settings', DENIED],
    ['INSERT INTO system.one SELECT 1', DENIED],
    ['INSERT INTO t FORMAT Template', NOT_IMPLEMENTED],
    ["CREATE TABLE p (x String) ENGINE = URL('http://127.0.0.1:1/v1/groups/3/propose', 'RawBLOB')", DENIED],
    ["CREATE TABLE f (x String) ENGINE = File(CSV)", DENIED],
    ['CREATE TABLE m (x String) ENGINE = Memory', DENIED],
    ['CREATE TABLE l (x String) ENGINE = Log', DENIED],
    ["CREATE TABLE mg (x String) ENGINE = Merge(REGEXP('.*'), '.*')", DENIED],
    ["CREATE TABLE e (x String) ENGINE = Executable('x.sh', TabSeparated)", DENIED],
    ['CREATE TABLE r (x String) ENGINE = ReplicatedMergeTree ORDER BY x', DENIED],
    ['CREATE TABLE d (x UInt8) ORDER BY x', BAD_ARGUMENTS],
    ["CREATE TABLE dk (x UInt8) ENGINE = MergeTree ORDER BY x SETTINGS disk = disk(type = 'local', path = '/tmp/rules-disk/')", DENIED],
    ["CREATE TABLE sp (x UInt8) ENGINE = MergeTree ORDER BY x SETTINGS storage_policy = 'default'", DENIED],
    ["CREATE TABLE tt (x UInt8, d DateTime) ENGINE = MergeTree ORDER BY x TTL d TO DISK 'default'", DENIED],
    ["CREATE TABLE tf AS file('/etc/passwd', 'LineAsString')", DENIED],
    ['CREATE TABLE t2 AS _rh_applied', DENIED],
    ["CREATE OR REPLACE DICTIONARY d (x UInt64) PRIMARY KEY x SOURCE(HTTP(url 'http://127.0.0.1:1/' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)", DENIED],
    ['CREATE DATABASE x', DENIED],
    ['CREATE TEMPORARY TABLE tmp (a UInt8)', NOT_IMPLEMENTED],
    ['CREATE MATERIALIZED VIEW rm REFRESH EVERY 1 SECOND ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a', NOT_IMPLEMENTED],
    ['CREATE MATERIALIZED VIEW mv TO _rh_applied AS SELECT 1 AS idx', DENIED],
    ["CREATE VIEW fv AS SELECT * FROM file('/etc/passwd', 'LineAsString')", DENIED],
    ['CREATE VIEW rv AS SELECT rand() AS r', BAD_ARGUMENTS],
    ['CREATE FUNCTION f AS x -> x', DENIED],
    ["CREATE TABLE cd (a UInt8, s String DEFAULT file('/etc/passwd')) ENGINE = MergeTree ORDER BY a", DENIED],
    ["ALTER TABLE t ADD COLUMN s String DEFAULT file('/etc/hostname')", DENIED],
    ["CREATE TABLE dd (x UInt8) ENGINE = Dictionary(d)", DENIED],
    ["CREATE TABLE bf (x UInt8) ENGINE = Buffer(currentDatabase(), t, 1, 1, 1, 1, 1, 1, 1)", DENIED],
    ["create or replace table lc (x String) engine = url('http://127.0.0.1:1/', 'RawBLOB')", DENIED],
    ["WITH 1 AS one INSERT INTO t SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a UInt8')", DENIED],
    ['CREATE USER u', DENIED],
    ['GRANT SELECT ON *.* TO u', DENIED],
    ['ALTER TABLE t FREEZE', DENIED],
    ["ALTER TABLE t ATTACH PARTITION 1 FROM other", DENIED],
    ['ALTER TABLE t MOVE PARTITION 1 TO TABLE rh_g5.x', DENIED],
    ['ALTER TABLE t DETACH PARTITION 1', DENIED],
    ["ALTER TABLE t MODIFY SETTING disk = 'default'", DENIED],
    ["ALTER TABLE t UPDATE a = 1 WHERE b IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))", DENIED],
    ['ALTER TABLE t UPDATE a = rand() WHERE 1', BAD_ARGUMENTS],
    ['ALTER TABLE _rh_applied DELETE WHERE 1', DENIED],
    ['ALTER TABLE t ADD COLUMN c DateTime DEFAULT now()', BAD_ARGUMENTS],
    ['DROP DATABASE rh_g1', DENIED],
    ['DROP TABLE _rh_applied', DENIED],
    ['DROP TABLE rh_g5.t', DENIED],
    ['DROP DICTIONARY d', DENIED],
    ['TRUNCATE TABLE _rh_settings', DENIED],
    ['TRUNCATE DATABASE rh_g1', DENIED],
    ['RENAME TABLE t TO _rh_x', DENIED],
    ['EXCHANGE TABLES x AND _rh_applied', DENIED],
    ['RENAME DATABASE rh_g1 TO x', DENIED],
    ['OPTIMIZE TABLE _rh_applied FINAL', DENIED],
    ['KILL QUERY WHERE 1', DENIED],
    ['SYSTEM FLUSH LOGS', DENIED],
    ["BACKUP TABLE t TO Disk('default', 'b.zip')", DENIED],
    ['DETACH TABLE t', DENIED],
    ["ATTACH TABLE a FROM '/tmp/rules-a' (x UInt8) ENGINE = MergeTree ORDER BY x", DENIED],
    ['UNDROP TABLE t', DENIED],
    ['SELECT 1', DENIED],
    ['USE rh_g1', DENIED],
    ['DELETE FROM t WHERE 1', DENIED],
  ];
  for (const [sql, code] of refusedWrites) {
    it(`refuses ${sql.slice(0, 90)} with ${code} (gateway and replica)`, async () => {
      expect(await writeCode(sql, gateway), 'gateway').to.equal(code);
      expect(await writeCode(sql, replica), 'replica').to.equal(code);
    });
  }

  const reads: Array<[string, number | 'ok', string?]> = [
    ['SELECT count() FROM visits', 'ok'],
    ['SELECT _database, count() FROM visits GROUP BY ALL', 'ok'],
    ['SELECT * FROM numbers(10)', 'ok'],
    ["SELECT * FROM generateRandom('a UInt8') LIMIT 1", 'ok'],
    ['SELECT name FROM system.tables', 'ok'],
    ['SHOW TABLES', 'ok'],
    ['DESCRIBE TABLE visits', 'ok'],
    ['EXPLAIN SELECT * FROM visits', 'ok'],
    ['WITH x AS (SELECT 1 AS a) SELECT * FROM x', 'ok'],
    ['SELECT v.a, n.number FROM visits AS v, numbers(3) AS n', 'ok'],
    ["SELECT * FROM file('/etc/passwd', 'LineAsString') AS f", DENIED],
    ['SELECT * FROM rh_g1._rh_applied AS a', DENIED],
    ["SELECT * FROM file('/etc/shadow', 'LineAsString')", DENIED],
    ["SELECT file('/etc/passwd')", DENIED],
    ["EXPLAIN SELECT * FROM url('http://127.0.0.1:1/')", DENIED],
    ["WITH (SELECT 1) AS a SELECT * FROM file('/proc/self/cmdline', 'LineAsString')", DENIED],
    ["SELECT * FROM visits AS v INNER JOIN file('/etc/passwd', 'LineAsString') AS f ON 1", DENIED],
    ["SELECT 1 WHERE 1 IN (SELECT 1 FROM remote('127.0.0.1', system.one))", DENIED],
    ["DESCRIBE TABLE file('/etc/passwd')", DENIED],
    ["SELECT 'x' INTO OUTFILE '/tmp/rules-f' TRUNCATE", OUTFILE],
    ['SELECT * FROM rh_g1._rh_applied', DENIED],
    ['SELECT * FROM rh_g1.visits', DENIED],
    ['SELECT * FROM _rh_applied', DENIED, 'rh_g1'],
    ['SELECT * FROM visits', DENIED, 'rh_g1'],
    ['SHOW CREATE TABLE rh_g1._rh_applied', DENIED],
    ['SHOW TABLES FROM rh_g1', DENIED],
    ["SELECT * FROM merge(REGEXP('^rh_'), '.*')", DENIED],
    ["SELECT * FROM loop(numbers(3)) LIMIT 1", DENIED],
    ["EXPLAIN PIPELINE INSERT INTO FUNCTION file('/tmp/rules-e', 'CSV', 'a UInt8') SELECT 1", DENIED],
    ["EXPLAIN AST CREATE TABLE p (x String) ENGINE = URL('http://127.0.0.1:1/')", DENIED],
  ];
  for (const [sql, code, db] of reads) {
    it(`read ${sql.slice(0, 80)}${db ? ` in ${db}` : ''}: ${code}`, async () => {
      expect(await readCode(sql, db ?? 'default')).to.equal(code);
    });
  }

  it('an operator may open specific table functions for reads (never for writes)', async () => {
    expect(await readCode("SELECT * FROM url('http://127.0.0.1:1/')", 'default', ['url'])).to.equal('ok');
    expect(await readCode("SELECT * FROM file('/etc/passwd')", 'default', ['url'])).to.equal(DENIED);
  });

  it('VALUES rows may compute but not reach outside', () => {
    expect(() => checkValuesData("(1, now(), 'file(x)', rand())")).not.to.throw();
    expect(() => checkValuesData("(1, file('/etc/passwd'))")).to.throw(RuleError);
    expect(() => checkValuesData('(1, (SELECT max(idx) FROM rh_g1._rh_applied))')).to.throw(RuleError);
    expect(() => checkValuesData("(dictGetString('d', 'x', 1))")).to.throw(RuleError);
  });
});
