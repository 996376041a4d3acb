// Validation at apply: the state machine checks every entry with the rules before applying it, so an
// entry proposed around the gateway gains nothing. A refused entry is a deterministic failed result and
// the applied index advances (later entries of the group apply).
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import type { EntryHeader } from '../../../clickhouse-adapter/statemachine/entry.js';
import { queryRows } from '../../../clickhouse-adapter/engine/sql.js';

describe('chsm: every entry is validated before it is applied (rules/)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;
  let sm: ClickHouseStateMachine;
  let index = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chsm-validate-'));
    engine = await openEmbedded({ dataDir: dir });
    sm = new ClickHouseStateMachine({ engine });
  });
  after(async () => {
    await sm?.close();
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function apply(header: Omit<EntryHeader, 'v'>, payload?: string): Promise<{ ok: boolean; error?: { code: string; message: string }; result?: unknown }> {
    index++;
    const [r] = await sm.applyBatch(3, [{ index, term: 1, data: encodeEntry({ v: 1, ...header }, payload === undefined ? undefined : Buffer.from(payload)) }]);
    expect(await sm.lastLogIndex(3), 'the index advances whatever the outcome').to.equal(index);
    return r as { ok: boolean; error?: { code: string; message: string }; result?: unknown };
  }

  it('refuses entries that reach outside the group database, with ClickHouse codes, and the group goes on', async () => {
    expect((await apply({ kind: 'ddl', sql: 'CREATE TABLE t (id UInt64, r UInt32 MATERIALIZED rand(), u UUID DEFAULT generateUUIDv4()) ENGINE = MergeTree ORDER BY id' })).ok).to.equal(true);
    const marker = join(dir, '..', `chsm-validate-out-${process.pid}`);
    const refused: Array<[Omit<EntryHeader, 'v'>, string]> = [
      [{ kind: 'ddl', sql: 'CREATE TABLE rh_g5.x (a UInt8) ENGINE = MergeTree ORDER BY a' }, 'CLICKHOUSE_497'],
      [{ kind: 'ddl', sql: 'CREATE DATABASE evil' }, 'CLICKHOUSE_497'],
      [{ kind: 'statement', sql: `/*x*/INSERT INTO FUNCTION file('${marker}', 'CSV', 'a UInt8') SELECT 1` }, 'CLICKHOUSE_497'],
      [{ kind: 'insert', sql: `/*x*/INSERT INTO FUNCTION file('${marker}', 'CSV', 'a UInt8') SELECT 1` }, 'CLICKHOUSE_497'],
      [{ kind: 'statement', sql: `SELECT 1 INTO OUTFILE '${marker}'` }, 'CLICKHOUSE_358'],
      [{ kind: 'statement', sql: 'KILL QUERY WHERE 1' }, 'CLICKHOUSE_497'],
      [{ kind: 'ddl', sql: 'EXCHANGE TABLES t AND _rh_applied' }, 'CLICKHOUSE_497'],
      [{ kind: 'statement', sql: 'SET max_threads = 1' }, 'CLICKHOUSE_452'], // a setting apply fixes (rules/settings.ts) before the statement kind
      [{ kind: 'insert', sql: 'INSERT INTO t SELECT number, rand(), generateUUIDv4() FROM numbers(3)' }, 'CLICKHOUSE_36'],
      [{ kind: 'insert', sql: 'INSERT INTO t SELECT now()' }, 'CLICKHOUSE_36'],
      [{ kind: 'insert', sql: 'INSERT INTO t FORMAT Template' }, 'CLICKHOUSE_48'],
      [{ kind: 'insert', sql: 'INSERT INTO t (id) FORMAT JSONEachRow' }, 'CLICKHOUSE_36'], // the non-deterministic defaults left to ClickHouse
      [{ kind: 'insert', sql: 'INSERT INTO t (id, u) FORMAT JSONEachRow' }, 'CLICKHOUSE_36'], // r is MATERIALIZED and not allowed in
      [{ kind: 'insert', sql: "INSERT INTO t (id) VALUES (length(file('/etc/hostname')))" }, 'CLICKHOUSE_36'],
    ];
    for (const [header, code] of refused) {
      const r = await apply(header, header.sql!.includes('FORMAT JSONEachRow') ? '{"id":1}\n' : undefined);
      expect(r.ok, header.sql).to.equal(false);
      expect(r.error!.code, `${header.sql}: ${r.error!.message}`).to.equal(code);
      if ((code !== 'CLICKHOUSE_36' || !r.error!.message.includes('VALUES')) && code !== 'CLICKHOUSE_452') expect(r.error!.message).to.match(/^Code: \d+\. DB::Exception: /);
    }
    expect(existsSync(marker)).to.equal(false);
    // Inline VALUES rows are literals only on apply (their text is not in what the rules validated).
    const values = await apply({ kind: 'insert', sql: "INSERT INTO t (id, u, r) SETTINGS insert_allow_materialized_columns = 1 VALUES (7, '00000000-0000-0000-0000-000000000001', length(file('/etc/hostname')))" });
    expect(values.ok).to.equal(false);
    // What the gateway sends for such a table: every column, materialized ones allowed in.
    const good = await apply({ kind: 'insert', sql: 'INSERT INTO t (id, r, u) FORMAT JSONEachRow', settings: { insert_allow_materialized_columns: 1 } },
      '{"id":2,"r":5,"u":"00000000-0000-0000-0000-000000000002"}\n{"id":3,"r":6}\n');
    expect(good).to.deep.equal({ ok: true, result: { writtenRows: 2 } });
    // A field a row omits takes the type's zero, not the non-deterministic default.
    const rows = await queryRows<{ id: number; r: number; u: string }>(engine, 'SELECT id, r, toString(u) AS u FROM rh_g3.t ORDER BY id');
    expect(rows).to.deep.equal([{ id: 2, r: 5, u: '00000000-0000-0000-0000-000000000002' }, { id: 3, r: 6, u: '00000000-0000-0000-0000-000000000000' }]);
    const tables = await queryRows<{ name: string }>(engine, "SELECT name FROM system.tables WHERE database IN ('rh_g3', 'rh_g5', 'evil') AND name NOT LIKE '\\\\_rh\\\\_%' ORDER BY name");
    expect(tables.map((t) => t.name)).to.deep.equal(['t']);
  });

  it('checks a structured insert itself: allow-listed format by its name, no Values, no _rh_ table, a bounded payload; binary data lands', async () => {
    expect((await apply({ kind: 'ddl', sql: 'CREATE TABLE b (id UInt32, s String) ENGINE = MergeTree ORDER BY id' })).ok).to.equal(true);
    const native = await engine.query("SELECT toUInt32(number) AS id, concat('x', char(0), toString(number)) AS s FROM numbers(3)", { format: 'Native' });
    const landed = await sm.applyBatch(3, [{ index: ++index, term: 1, data: encodeEntry({ v: 1, kind: 'insert', table: 'b', format: 'Native' }, native) }]);
    expect(landed[0]).to.deep.equal({ ok: true, result: { writtenRows: 3 } });
    const rows = await queryRows<{ id: number; h: string }>(engine, 'SELECT id, hex(s) AS h FROM rh_g3.b ORDER BY id');
    expect(rows).to.deep.equal([{ id: 0, h: '780030' }, { id: 1, h: '780031' }, { id: 2, h: '780032' }]);
    // The same bytes again: an identical block, not inserted twice (statemachine/dedup.ts).
    const again = await sm.applyBatch(3, [{ index: ++index, term: 1, data: encodeEntry({ v: 1, kind: 'insert', table: 'b', format: 'Native' }, native) }]);
    expect(again[0]).to.deep.equal({ ok: true, result: { writtenRows: 0, deduplicated: true } });
    const refused: Array<[Omit<EntryHeader, 'v'>, string, string]> = [
      [{ kind: 'insert', table: 'b', format: 'Values' }, '(1, 2)', 'CLICKHOUSE_36'],
      [{ kind: 'insert', table: 'b', format: 'Protobuf' }, 'x', 'CLICKHOUSE_48'],
      [{ kind: 'insert', table: 'b', format: 'AvroConfluent' }, 'x', 'CLICKHOUSE_48'],
      [{ kind: 'insert', table: 'b', format: 'tsv' }, '1\ta\n', 'RH_BAD_ENTRY'],
      [{ kind: 'insert', table: '_rh_applied', format: 'JSONEachRow' }, '{"index":1}\n', 'CLICKHOUSE_497'],
      [{ kind: 'insert', table: 'b', format: 'JSONEachRow' }, '', 'RH_BAD_ENTRY'],
      [{ kind: 'ddl', table: 'b', format: 'JSONEachRow' }, '{}', 'RH_BAD_ENTRY'],
      [{ kind: 'insert', table: 'b', format: 'JSONEachRow', sql: 'INSERT INTO b FORMAT JSONEachRow' }, '{}', 'RH_BAD_ENTRY'],
      [{ kind: 'insert', table: 'b', format: 'JSONEachRow', columns: [] }, '{}', 'RH_BAD_ENTRY'],
      [{ kind: 'insert', table: 'nope', format: 'JSONEachRow' }, '{"id":1}\n', 'CLICKHOUSE_60'],
    ];
    for (const [header, payload, code] of refused) {
      const r = await apply(header, payload === '' ? undefined : payload);
      expect(r.ok, JSON.stringify(header)).to.equal(false);
      expect(r.error!.code, `${JSON.stringify(header)}: ${r.error!.message}`).to.equal(code);
    }
    const big = await sm.applyBatch(3, [{ index: ++index, term: 1, data: encodeEntry({ v: 1, kind: 'insert', table: 'b', format: 'RawBLOB' }, Buffer.alloc(64 * 1024 * 1024 + 1)) }]);
    expect((big[0] as { error: { code: string } }).error.code).to.equal('CLICKHOUSE_307');
    expect(await sm.lastLogIndex(3)).to.equal(index);
    expect((await queryRows<{ c: number }>(engine, 'SELECT count() AS c FROM rh_g3.b'))[0]!.c).to.equal(3);
  });
});
