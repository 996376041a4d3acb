// The state machine's side of "no poison entries" (issue 22), in process on the embedded engine:
// - an entry failing with a transient code fails the call and marks the group stuck; with an abandon of
//   it later in the batch it fails as RH_ABANDONED and the group goes on;
// - an abandon never undoes an entry that applied (a hostile or late abandon is a no-op);
// - limits in settings (header, SETTINGS clause, SET) and `_rh_*` names are entry errors, not retries;
// - group defaults stored before the allow-list lose what it refuses when the group is loaded.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import type { EntryResult } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import type { EntryHeader } from '../../../clickhouse-adapter/statemachine/entry.js';
import { SETTINGS_TABLE, dataDb } from '../../../clickhouse-adapter/statemachine/naming.js';

const e = (index: number, header: EntryHeader) => ({ index, term: 1, data: encodeEntry(header) });
const ddl = (index: number, sql: string) => e(index, { v: 1, kind: 'ddl', sql });
const ins = (index: number, sql: string, settings?: Record<string, string | number>) => e(index, { v: 1, kind: 'insert', sql, ...(settings ? { settings } : {}) });
const codeOf = (r: EntryResult): string => (r.ok ? 'ok' : (r.error?.code ?? '?'));

describe('chsm: poison entries (in process)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chsm-poison-'));
    engine = await openEmbedded({ dataDir: dir });
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a transiently failing entry marks the group stuck; an abandon of it later in the batch fails it and the group goes on', async () => {
    const sm = new ClickHouseStateMachine({ engine });
    const g = 21;
    await sm.applyBatch(g, [
      ddl(1, 'CREATE TABLE w (x UInt64) ENGINE = MergeTree ORDER BY x PARTITION BY x'),
      ins(2, 'INSERT INTO w VALUES (1)'),
    ]);
    // A failure outside the entry, on this replica: a part limit set behind RaftHouse's back (the
    // rules refuse it as a table setting, since parts differ between replicas).
    await engine.exec(`ALTER TABLE ${dataDb(g)}.w MODIFY SETTING max_parts_in_total = 1`);
    // 252 TOO_MANY_PARTS: not the entry's fault as far as ClickHouse's code says; the call fails.
    let failed: unknown;
    await sm.applyBatch(g, [ins(3, 'INSERT INTO w VALUES (2)')]).catch((err: unknown) => { failed = err; });
    expect(String(failed)).to.match(/Too many parts/);
    expect(await sm.lastLogIndex(g)).to.equal(2);
    await sm.applyBatch(g, [ins(3, 'INSERT INTO w VALUES (2)')]).catch(() => undefined);
    const stuck = sm.stuckEntries().get(g);
    expect(stuck?.index).to.equal(3);
    expect(stuck?.attempts).to.equal(2);

    const results = await sm.applyBatch(g, [
      ins(3, 'INSERT INTO w VALUES (2)'),
      ddl(4, 'ALTER TABLE w ADD COLUMN y UInt8 DEFAULT 0'),
      e(5, { v: 1, kind: 'abandon', index: 3 }),
    ]);
    expect(results.map(codeOf)).to.deep.equal(['RH_ABANDONED', 'ok', 'ok']);
    await engine.exec(`ALTER TABLE ${dataDb(g)}.w MODIFY SETTING max_parts_in_total = 100000`);
    expect((await sm.applyBatch(g, [ins(6, 'INSERT INTO w (x) VALUES (3)')])).map(codeOf)).to.deep.equal(['ok']);
    expect(sm.stuckEntries().has(g)).to.equal(false);
    expect((await engine.query(`SELECT groupArray(x) FROM (SELECT x FROM ${dataDb(g)}.w ORDER BY x)`, { format: 'TSV' })).toString()).to.equal('[1,3]\n');
    expect(await new ClickHouseStateMachine({ engine }).lastLogIndex(g)).to.equal(6);
  });

  it('an abandon never undoes an entry that applied', async () => {
    const sm = new ClickHouseStateMachine({ engine });
    const g = 22;
    const results = await sm.applyBatch(g, [
      ddl(1, 'CREATE TABLE a (x UInt64) ENGINE = MergeTree ORDER BY x'),
      ins(2, 'INSERT INTO a VALUES (7)'),
      e(3, { v: 1, kind: 'abandon', index: 2 }),
      e(4, { v: 1, kind: 'abandon', index: 9 }), // names a later entry: nothing
    ]);
    expect(results.map(codeOf)).to.deep.equal(['ok', 'ok', 'ok', 'ok']);
    expect((await engine.query(`SELECT count() FROM ${dataDb(g)}.a`, { format: 'TSV' })).toString()).to.equal('1\n');
  });

  it('limits in settings, the read bound and _rh_* names are entry errors (the index advances), never retries', async () => {
    const sm = new ClickHouseStateMachine({ engine });
    const g = 23;
    const results = await sm.applyBatch(g, [
      ddl(1, 'CREATE TABLE p (x UInt64) ENGINE = MergeTree ORDER BY x'),
      ins(2, 'INSERT INTO p SELECT number FROM numbers(1e10) SETTINGS max_execution_time = 1'),
      ins(3, 'INSERT INTO p SELECT number FROM numbers(10)', { max_memory_usage: 1 }),
      ins(4, 'INSERT INTO p SELECT number FROM numbers(1e10)'),
      e(5, { v: 1, kind: 'settings', settings: { max_memory_usage: 1 } }),
      e(6, { v: 1, kind: 'settings', settings: { max_execution_time: 1 } }),
      ddl(7, 'EXCHANGE TABLES p AND _rh_applied'),
      ddl(8, 'RENAME TABLE p TO `_rh_settings`'),
      ins(9, 'INSERT INTO p SELECT number FROM numbers(1000) SETTINGS max_partitions_per_insert_block = 1'),
      ddl(10, 'ALTER TABLE p DELETE WHERE x = 3 SETTINGS mutations_sync = 0'),
      ins(11, 'INSERT INTO p SELECT number FROM numbers(5)'),
      e(12, { v: 1, kind: 'settings', settings: { input_format_skip_unknown_fields: 1 } }),
    ]);
    expect(results.map(codeOf)).to.deep.equal([
      'ok', 'CLICKHOUSE_452', 'CLICKHOUSE_452', 'CLICKHOUSE_158', 'CLICKHOUSE_452', 'CLICKHOUSE_452',
      'CLICKHOUSE_497', 'CLICKHOUSE_497', 'CLICKHOUSE_452', 'CLICKHOUSE_452', 'ok', 'ok',
    ]);
    expect((await engine.query(`SELECT count() FROM ${dataDb(g)}.p`, { format: 'TSV' })).toString()).to.equal('5\n');
  });

  it('more partitions in one insert than the fixed bound is an entry error on every replica (252, deterministic)', async () => {
    const sm = new ClickHouseStateMachine({ engine });
    const g = 24;
    const results = await sm.applyBatch(g, [
      ddl(1, 'CREATE TABLE q (x UInt64) ENGINE = MergeTree ORDER BY x PARTITION BY x'),
      ins(2, 'INSERT INTO q SELECT number FROM numbers(101)'),
      ins(3, 'INSERT INTO q SELECT number FROM numbers(100)'),
    ]);
    expect(results.map(codeOf)).to.deep.equal(['ok', 'CLICKHOUSE_252', 'ok']);
  });

  it('group defaults stored before the allow-list lose what it refuses when the group is loaded', async () => {
    const g = 25;
    await new ClickHouseStateMachine({ engine }).applyBatch(g, [ddl(1, 'CREATE TABLE s (x UInt64) ENGINE = MergeTree ORDER BY x')]);
    // What an older version stored for `SET max_memory_usage = 1`: every later batch insert failed.
    await engine.exec(`INSERT INTO ${dataDb(g)}.${SETTINGS_TABLE} (idx, settings) VALUES (1, '{"max_memory_usage":1,"input_format_skip_unknown_fields":0}')`);
    const sm = new ClickHouseStateMachine({ engine });
    const results = await sm.applyBatch(g, [
      { index: 2, term: 1, data: encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO s FORMAT JSONEachRow' }, Buffer.from('{"x":1}\n')) },
      { index: 3, term: 1, data: encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO s FORMAT JSONEachRow' }, Buffer.from('{"x":2,"extra":1}\n')) },
    ]);
    // The insert applies (no 1-byte memory limit); the allowed default still holds (unknown field refused).
    expect(results.map(codeOf)).to.deep.equal(['ok', 'CLICKHOUSE_117']);
  });
});
