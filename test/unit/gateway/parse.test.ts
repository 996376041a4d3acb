// Classification with ClickHouse's own parser (the embedded engine, a read-only session) and the
// small lexical helpers that work on its canonical text.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded, ClickHouseError } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { SqlParser } from '../../../clickhouse-adapter/gateway/parse.js';
import { extractSettings, insertDataOffset, replaceCalls } from '../../../clickhouse-adapter/gateway/lexer.js';
import { exceptionText, httpStatusFor, toFault, GatewayError } from '../../../clickhouse-adapter/gateway/errors.js';
import { RaftdError } from '../../../adapters/sdk/client.js';
import { loadNondeterministic } from '../../../clickhouse-adapter/gateway/gateway.js';

describe('gateway: statement classification (ClickHouse parser)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;
  let parser: SqlParser;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gw-parse-'));
    engine = await openEmbedded({ dataDir: dir, readonly: true, allowSettings: true });
    parser = new SqlParser(engine);
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, string, boolean]> = [
    ['SELECT * FROM t WHERE a = 1', 'select', false],
    ['WITH x AS (SELECT 1) SELECT * FROM x', 'select', false],
    ['SHOW TABLES', 'show', false],
    ['DESCRIBE TABLE t', 'describe', false],
    ['EXISTS TABLE t', 'exists', false],
    ['EXPLAIN SELECT 1', 'explain', false],
    ['INSERT INTO t FORMAT JSONEachRow', 'insert', true],
    ['CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a', 'create', true],
    ['ALTER TABLE t ADD COLUMN b UInt8', 'alter', true],
    ['DROP TABLE t', 'drop', true],
    ['TRUNCATE TABLE t', 'truncate', true],
    ['RENAME TABLE a TO b', 'rename', true],
    ['OPTIMIZE TABLE t FINAL', 'optimize', true],
    ['SET max_threads = 1', 'set', true],
    ['CREATE USER u', 'access', true],
    ['GRANT SELECT ON *.* TO u', 'access', true],
  ];
  for (const [sql, kind, write] of cases) {
    it(`${sql} -> ${kind}${write ? ' (write)' : ''}`, async () => {
      const p = await parser.parse(sql);
      expect(p.kind).to.equal(kind);
      expect(p.write).to.equal(write);
    });
  }

  it('finds targets, tables, columns, functions and the FORMAT clause', async () => {
    const ins = await parser.parse('INSERT INTO db.t (a, b) SELECT rand(), now() FROM src');
    expect(ins.target).to.deep.equal({ database: 'db', table: 't' });
    expect(ins.columns).to.deep.equal(['a', 'b']);
    expect(ins.hasSelect).to.equal(true);
    expect(ins.functions).to.include.members(['rand', 'now']);
    const sel = await parser.parse('SELECT * FROM a JOIN other.b ON 1 FORMAT JSON');
    expect(sel.tables).to.deep.equal([{ table: 'a' }, { database: 'other', table: 'b' }]);
    expect(sel.format).to.equal('JSON');
    const ddl = await parser.parse('CREATE TABLE t (a UInt8, u UUID DEFAULT generateUUIDv4()) ENGINE = MergeTree ORDER BY a');
    expect(ddl.target).to.deep.equal({ table: 't' });
    const alter = await parser.parse('ALTER TABLE t UPDATE a = 1 WHERE 1');
    expect(alter.target).to.deep.equal({ table: 't' });
    const p = await parser.parse('SELECT {x:UInt32} + 1', { x: '5' });
    expect(p.kind).to.equal('select');
  });

  it('refuses multi-statements (ClickHouse says so) and never runs them', async () => {
    let err: unknown;
    try { await parser.parse('SELECT 1; SELECT 2'); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(ClickHouseError);
    expect((err as ClickHouseError).code).to.equal(62);
    expect((err as ClickHouseError).message).to.contain('Multi-statements');
  });

  it('knows the non-deterministic functions from system.functions', async () => {
    const nd = await loadNondeterministic(engine);
    for (const f of ['now', 'rand', 'generateuuidv4', 'today']) expect(nd.has(f), f).to.equal(true);
    expect(nd.has('plus')).to.equal(false);
  });
});

describe('gateway: lexical helpers on canonical text', () => {
  it('finds where INSERT data starts', () => {
    expect(insertDataOffset('INSERT INTO t FORMAT JSONEachRow\n{"a":1}')).to.deep.equal({ offset: 33, values: false });
    const v = insertDataOffset("INSERT INTO t VALUES (1, 'FORMAT x')")!;
    expect(v.values).to.equal(true);
    expect("INSERT INTO t VALUES (1, 'FORMAT x')".slice(v.offset)).to.equal("(1, 'FORMAT x')");
    expect(insertDataOffset('INSERT INTO t SELECT 1 FORMAT Values')).to.equal(undefined);
  });

  it('extracts and removes the SETTINGS clause', () => {
    const s = extractSettings("INSERT INTO t SETTINGS async_insert = 1, x = 'y' FORMAT JSONEachRow");
    expect(s.settings).to.deep.equal({ async_insert: 1, x: 'y' });
    expect(s.without).to.equal('INSERT INTO t FORMAT JSONEachRow');
    expect(extractSettings("SELECT 'SETTINGS a = 1'").settings).to.deep.equal({});
  });

  it('replaces function calls outside strings and qualified names', () => {
    const r = replaceCalls("SELECT now(), 'now()', t.now(), NOW( ), now('UTC')", { now: (a) => `X(${a})` });
    expect(r.sql).to.equal("SELECT X(), 'now()', t.now(), X(), X('UTC')");
    expect(r.replaced).to.have.length(3);
  });
});

describe('gateway: ClickHouse error form', () => {
  it('maps codes to ClickHouse HTTP statuses', () => {
    expect(httpStatusFor(60)).to.equal(404);
    expect(httpStatusFor(62)).to.equal(400);
    expect(httpStatusFor(516)).to.equal(403);
    expect(httpStatusFor(194)).to.equal(401);
    expect(httpStatusFor(164)).to.equal(500);
    expect(httpStatusFor(48)).to.equal(501);
  });

  it('turns an entry refused by the state machine into ClickHouse\'s own code', () => {
    const f = toFault(new RaftdError('CLICKHOUSE_60', 'Code: 60. DB::Exception: Table rh_g3.x does not exist. (UNKNOWN_TABLE) (version 26.7.2.1)', 422));
    expect(f).to.deep.equal({ code: 60, name: 'UNKNOWN_TABLE', message: 'Table rh_g3.x does not exist' });
    expect(toFault(new RaftdError('NO_LEADER', 'no leader', 503)).code).to.equal(999);
    expect(exceptionText(toFault(new GatewayError(164, 'nope')), '26.7')).to.equal('Code: 164. DB::Exception: nope. (READONLY) (version 26.7)\n');
  });
});
