// The pure parts of the state machine: naming rule, entry format, INSERT target rewriting, framing.

import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockIdHash, lastDedupRecord, parsePartName } from '../../../clickhouse-adapter/statemachine/phantom.js';
import { AppliedFiles } from '../../../clickhouse-adapter/statemachine/applied-file.js';
import { DATA_DB_REGEXP, dataDb, parseDbName, restoreDb, snapshotDb } from '../../../clickhouse-adapter/statemachine/naming.js';
import { decodeEntry, encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { hasFormatClause, qualifyInsert } from '../../../clickhouse-adapter/statemachine/sql.js';
import { ByteReader, reframe } from '../../../clickhouse-adapter/statemachine/frames.js';
import { stripDbQualifier } from '../../../clickhouse-adapter/statemachine/statemachine.js';

function codeOf(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return (e as { code?: string }).code; }
  return undefined;
}

describe('chsm: naming rule', () => {
  it('maps groups to databases and back; the data regexp matches data databases only', () => {
    expect(dataDb(7)).to.equal('rh_g7');
    expect(parseDbName('rh_g7')).to.deep.equal({ kind: 'data', group: 7 });
    expect(parseDbName(snapshotDb(7, 42))).to.deep.equal({ kind: 'snapshot', group: 7, index: 42 });
    expect(parseDbName(restoreDb(7, 42))).to.deep.equal({ kind: 'restore', group: 7, index: 42 });
    expect(parseDbName('default')).to.equal(undefined);
    const re = new RegExp(DATA_DB_REGEXP);
    expect(['rh_g0', 'rh_g12'].every((n) => re.test(n))).to.equal(true);
    expect(['rh_snap_g1_5', 'rh_restore_g1_5', 'rh_old_g1_5', 'rh_g1x', 'xrh_g1'].some((n) => re.test(n))).to.equal(false);
    expect(() => dataDb(-1)).to.throw(RangeError);
  });
});

describe('chsm: entry format', () => {
  it('round-trips header and binary payload', () => {
    const payload = Buffer.from([0, 10, 255, 10, 1]);
    const e = decodeEntry(encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t\nFORMAT CSV', settings: { a: 1 } }, payload));
    expect(e.header).to.deep.equal({ v: 1, kind: 'insert', sql: 'INSERT INTO t\nFORMAT CSV', settings: { a: 1 } });
    expect(Buffer.from(e.payload).equals(payload)).to.equal(true);
    expect(decodeEntry(encodeEntry({ v: 1, kind: 'ddl', sql: 'DROP TABLE t' })).payload.length).to.equal(0);
  });

  it('refuses malformed entries with RH_BAD_ENTRY', () => {
    for (const bad of ['nope', '{"v":2,"kind":"ddl","sql":"x"}', '{"v":1,"kind":"what","sql":"x"}', '{"v":1,"kind":"ddl"}',
      '{"v":1,"kind":"settings"}', '{"v":1,"kind":"insert","sql":"x","settings":{"a b":1}}', '[1]']) {
      expect(codeOf(() => decodeEntry(Buffer.from(bad))), bad).to.equal('RH_BAD_ENTRY');
    }
  });
});

describe('chsm: INSERT target rewriting', () => {
  it('qualifies unqualified, user-db and quoted targets; refuses other databases and functions', () => {
    expect(qualifyInsert('INSERT INTO t FORMAT JSONEachRow', 'rh_g1', undefined).sql).to.equal('INSERT INTO rh_g1.t FORMAT JSONEachRow');
    expect(qualifyInsert('insert into table userdb.t (a, b) VALUES (1, 2)', 'rh_g1', 'userdb').sql).to.equal('INSERT INTO rh_g1.t (a, b) VALUES (1, 2)');
    expect(qualifyInsert('INSERT INTO `my table` FORMAT CSV', 'rh_g1', undefined)).to.deep.equal({ sql: 'INSERT INTO rh_g1.`my table` FORMAT CSV', table: 'my table', tail: ' FORMAT CSV' });
    expect(qualifyInsert('insert into table userdb.t (a, b) VALUES (1, 2)', 'rh_g1', 'userdb').tail).to.equal(' (a, b) VALUES (1, 2)');
    expect(qualifyInsert('INSERT INTO "q""t"(a) SELECT 1', 'rh_g1', undefined).table).to.equal('q"t');
    expect(codeOf(() => qualifyInsert('INSERT INTO other.t FORMAT CSV', 'rh_g1', 'userdb'))).to.equal('RH_CROSS_DATABASE');
    expect(codeOf(() => qualifyInsert("INSERT INTO FUNCTION file('x') SELECT 1", 'rh_g1', undefined))).to.equal('RH_UNSUPPORTED');
    expect(codeOf(() => qualifyInsert('SELECT 1', 'rh_g1', undefined))).to.equal('RH_BAD_ENTRY');
    expect(hasFormatClause('INSERT INTO t FORMAT JSONEachRow')).to.equal(true);
    expect(hasFormatClause('INSERT INTO t (a)')).to.equal(false);
  });

  it('strips the database only from the object name of a CREATE statement', () => {
    expect(stripDbQualifier('CREATE TABLE rh_g1.t\n(\n    `x` UInt8\n)', 'rh_g1')).to.equal('CREATE TABLE t\n(\n    `x` UInt8\n)');
    expect(stripDbQualifier('CREATE VIEW rh_g1.v AS SELECT * FROM rh_g1.t', 'rh_g1')).to.equal('CREATE VIEW v AS SELECT * FROM rh_g1.t');
    expect(codeOf(() => stripDbQualifier('CREATE TABLE other.t (x UInt8)', 'rh_g1'))).to.equal('RH_BAD_SNAPSHOT');
  });
});

describe('chsm: snapshot framing', () => {
  it('frames do not depend on how the source was chunked', async () => {
    const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    async function* chunks(size: number): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
    }
    const collect = async (size: number): Promise<Buffer> => {
      const out: Buffer[] = [];
      for await (const f of reframe(chunks(size), 4096)) out.push(f);
      return Buffer.concat(out);
    };
    const a = await collect(7);
    expect(a.equals(await collect(5000))).to.equal(true);
    const back: Buffer[] = [];
    const r2 = new ByteReader((async function* () { yield a; })());
    for await (const f of r2.frames()) back.push(f);
    expect(Buffer.concat(back).equals(data)).to.equal(true);
    await r2.expectEnd();
  });

  it('a truncated stream is RH_BAD_SNAPSHOT', async () => {
    const r = new ByteReader((async function* () { yield Buffer.from([0, 0, 0, 9, 1, 2]); })());
    let code: string | undefined;
    await r.readFrame().catch((e: { code?: string }) => { code = e.code; });
    expect(code).to.equal('RH_BAD_SNAPSHOT');
  });
});

describe('chsm: deduplication log and applied-file records', () => {
  it('reads the last complete record, across a rotation and a torn last line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dedup-log-'));
    try {
      expect(lastDedupRecord(dir)).to.equal(undefined); // no log at all
      mkdirSync(join(dir, 'deduplication_logs'));
      writeFileSync(join(dir, 'deduplication_logs', 'deduplication_log_9.txt'), '1\tall_1_1_0\tall_1_2\n1\tall_2_2_0\tall_3_4\n');
      writeFileSync(join(dir, 'deduplication_logs', 'deduplication_log_10.txt'), '1\t202611_7_7_0\t202611_5_6\n1\tall_8');
      expect(lastDedupRecord(dir)).to.deep.equal({ op: 1, part: '202611_7_7_0', blockId: '202611_5_6' });
      writeFileSync(join(dir, 'deduplication_logs', 'deduplication_log_11.txt'), ''); // just rotated
      expect(lastDedupRecord(dir)).to.deep.equal({ op: 1, part: '202611_7_7_0', blockId: '202611_5_6' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes part names and block ids apart', () => {
    expect(parsePartName('all_12_12_0')).to.deep.equal({ partitionId: 'all', min: 12, max: 12 });
    expect(parsePartName('202611_3_40_2_55')).to.deep.equal({ partitionId: '202611', min: 3, max: 40 });
    expect(parsePartName('tmp_insert')).to.equal(undefined);
    expect(blockIdHash('1_5270743216182551603_1027400046207412106')).to.equal('5270743216182551603_1027400046207412106');
  });

  it('keeps the in-flight mark in the applied file, and still reads a record without one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'applied-'));
    try {
      const files = new AppliedFiles(dir);
      const instance = '8989e417-aae5-4b8a-ab4b-10aa1792ea1b';
      files.write(3, { instance, index: 41 });
      expect(files.read(3)).to.deep.equal({ instance, index: 41 });
      files.write(3, { instance, index: 41, inflight: { index: 43, attempt: 2 } });
      expect(files.read(3)).to.deep.equal({ instance, index: 41, inflight: { index: 43, attempt: 2 } });
      files.write(3, { instance, index: 43 });
      expect(files.read(3)).to.deep.equal({ instance, index: 43 });
      files.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
