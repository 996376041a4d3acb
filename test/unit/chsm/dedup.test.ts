// Block ids of client-retry deduplication (statemachine/dedup.ts): what makes two inserts the same block.

import { expect } from 'chai';
import { CrashedError, Replica, e, jsonRows } from './harness.js';
import type { LogEntry } from './harness.js';
import { blockId, dedupMode } from '../../../clickhouse-adapter/statemachine/dedup.js';
import type { BlockSource } from '../../../clickhouse-adapter/statemachine/dedup.js';

const base: BlockSource = {
  group: 3, columnsAndFormat: ' (a) FORMAT JSONEachRow', settings: {}, payload: Buffer.from('{"a":1}\n'),
};
const id = (over: Partial<BlockSource>) => blockId({ ...base, ...over });

describe('chsm: block ids of retried inserts (dedup.ts)', () => {
  it('the same entry gives the same id; any byte of the data, the column list, the format or a parsing setting changes it', () => {
    const a = id({});
    expect(a).to.match(/^d_[0-9a-f]{64}$/);
    expect(id({ payload: Buffer.from('{"a":1}\n') })).to.equal(a);
    expect(id({ settings: { async_insert: 1, wait_for_async_insert: 0 } }), 'async settings are no part of the block').to.equal(a);
    expect(id({ settings: { insert_deduplicate: 1 } })).to.equal(a);
    const others = [
      id({ payload: Buffer.from('{"a":2}\n') }),
      id({ columnsAndFormat: ' (b) FORMAT JSONEachRow' }),
      id({ columnsAndFormat: ' (a) FORMAT CSV' }),
      id({ settings: { input_format_skip_unknown_fields: 1 } }),
    ];
    expect(new Set([a, ...others]).size).to.equal(others.length + 1);
    // The id names no table (the registry is per table, so RENAME carries it) and the same data in
    // another group is the same block (groups have registries of their own).
    expect(id({ group: 4 })).to.equal(a);
  });

  it('settings are hashed in name order: the order a client sent them in does not matter', () => {
    expect(id({ settings: { input_format_skip_unknown_fields: 1, date_time_input_format: 'best_effort' } }))
      .to.equal(id({ settings: { date_time_input_format: 'best_effort', input_format_skip_unknown_fields: '1' } }));
  });

  it('fields are length-prefixed: moving bytes from one field to the next is another block', () => {
    expect(id({ columnsAndFormat: '(a)', settings: { format_csv_delimiter: ';' } })).to.not.equal(id({ columnsAndFormat: '(a)[', settings: { format_csv_delimiter: ';' } }));
    expect(id({ columnsAndFormat: ' FORMAT JSONEachRow', payload: Buffer.from('x') })).to.not.equal(id({ columnsAndFormat: ' FORMAT JSONEachRo', payload: Buffer.from('wx') }));
  });

  it('a token decides alone (data ignored), per table and per group (each part of a sharded insert on its own)', () => {
    const t = id({ settings: { insert_deduplication_token: 'k1' } });
    expect(t).to.match(/^t_[0-9a-f]{64}$/);
    expect(id({ settings: { insert_deduplication_token: 'k1' }, payload: Buffer.from('{"a":9}\n') })).to.equal(t);
    expect(id({ settings: { insert_deduplication_token: 'k1' }, columnsAndFormat: ' FORMAT CSV' })).to.equal(t);
    expect(id({ settings: { insert_deduplication_token: 'k2' } })).to.not.equal(t);
    expect(id({ settings: { insert_deduplication_token: 'k1' }, group: 4 })).to.not.equal(t);
    // An empty token is no token (ClickHouse: the data's hash).
    expect(id({ settings: { insert_deduplication_token: '' } })).to.equal(id({}));
  });

  it('insert_deduplicate = 0 turns it off; INSERT ... SELECT (no data) deduplicates only with a token', () => {
    for (const v of [0, '0', 'false', 'False']) expect(id({ settings: { insert_deduplicate: v } }), String(v)).to.equal(undefined);
    expect(id({ settings: { insert_deduplicate: 0, insert_deduplication_token: 'k' } })).to.equal(undefined);
    expect(id({ payload: new Uint8Array(0), columnsAndFormat: ' SELECT 1' })).to.equal(undefined);
    expect(id({ payload: new Uint8Array(0), columnsAndFormat: ' SELECT 1', settings: { insert_deduplication_token: 'k' } })).to.match(/^t_/);
    expect(dedupMode({ insert_deduplicate: 1 })).to.deep.equal({ mode: 'data' });
    expect(dedupMode({ insert_deduplication_token: 7 })).to.deep.equal({ mode: 'token', token: '7' });
  });
});

describe('chsm: retried inserts on replicas, through a snapshot (real chdb processes)', function () {
  this.timeout(90_000);
  const a = Replica.fresh();
  const b = Replica.fresh(true);

  after(async () => {
    for (const r of [a, b]) { await r.stop(); r.remove(); }
  });

  it('the registry travels in the snapshot: a replica restored from one drops the same retry as the others', async () => {
    const datas = [
      e({ kind: 'ddl', sql: 'CREATE TABLE t (id UInt64, v String) ENGINE = MergeTree ORDER BY id' }),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 100)),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow', settings: { insert_deduplication_token: 'k' } }, jsonRows(500, 10)),
      // The retries, after the snapshot: both are duplicates on every replica.
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 100)),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow', settings: { insert_deduplication_token: 'k' } }, jsonRows(900, 10)),
      // Not a duplicate: insert_deduplicate = 0.
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow', settings: { insert_deduplicate: 0 } }, jsonRows(0, 100)),
    ];
    const log: LogEntry[] = datas.map((data, i) => ({ index: i + 1, term: 1, data }));
    await Promise.all([a.start(), b.start()]);
    await a.apply(log.slice(0, 3));
    const prep = await a.call<{ prepared: string; lastLogIndex: number }>('prepare', { group: 1 });
    const snap = await a.call<string>('save', { group: 1, prepared: prep.prepared });
    expect(await b.call<number>('recover', { group: 1, data: snap })).to.equal(3);
    const ra = await a.apply(log.slice(3));
    const rb = await b.apply(log.slice(3));
    expect(rb).to.deep.equal(ra);
    expect(ra.map((r) => (r as { result?: { deduplicated?: boolean } }).result?.deduplicated ?? false)).to.deep.equal([true, true, false]);
    for (const r of [a, b]) expect(await r.call<string>('query', { sql: 'SELECT count() FROM rh_g1.t' })).to.equal('210\n');
    expect(await b.checksum()).to.equal(await a.checksum());
  });
});

describe('chsm: retried inserts across a crash and inside one batch (real chdb processes)', function () {
  this.timeout(120_000);
  const fresh = Replica.fresh(true);
  const crashed = Replica.fresh(true);

  after(async () => {
    for (const r of [fresh, crashed]) { await r.stop(); r.remove(); }
  });

  it('a crash between an insert and its registry row, then redelivery: the same decisions as a replica that never crashed', async () => {
    const datas = [
      e({ kind: 'ddl', sql: 'CREATE TABLE t (id UInt64, v String) ENGINE = MergeTree ORDER BY id' }),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 50)),
      // A retry in the same batch as the original: decided from the cached log, rows not yet written.
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 50)),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(100, 50)),
      e({ kind: 'ddl', sql: 'TRUNCATE TABLE t' }),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 50)),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(100, 50)),
      e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 50)),
    ];
    const log: LogEntry[] = datas.map((data, i) => ({ index: i + 1, term: 1, data }));
    const dedup = (rs: Array<Record<string, unknown>>) => rs.map((r) => (r as { result?: { deduplicated?: boolean } }).result?.deduplicated ?? false);
    await fresh.start();
    const want = dedup(await fresh.apply(log));
    expect(want).to.deep.equal([false, false, true, false, false, false, false, true]);

    // Killed after entry 4's insert: entries 2-4 applied, their registry rows never written, nothing recorded.
    await crashed.start('after-insert@4');
    let died: unknown;
    await crashed.apply(log.slice(0, 4)).catch((err: unknown) => { died = err; });
    expect(died).to.be.instanceOf(CrashedError);
    await crashed.start();
    const from = await crashed.last();
    expect(from).to.be.below(4);
    const got = dedup(await crashed.apply(log.slice(from)));
    expect(got).to.deep.equal(want.slice(from));
    for (const r of [fresh, crashed]) expect(await r.call<string>('query', { sql: 'SELECT count() FROM rh_g1.t' })).to.equal('100\n');
    expect(await crashed.checksum()).to.equal(await fresh.checksum());
  });
});
