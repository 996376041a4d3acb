// In-process state machine checks on the embedded engine:
// - a failed index record (ClickHouse refused the write, the disk is full...) must not leave
//   LastLogIndex ahead of what ClickHouse holds: raftd takes a reported index as durable;
// - a restore's database swap makes schemaGeneration() odd while the group's database is absent,
//   so readers of the Merge views (the gateway) know to read again.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { dataDb } from '../../../clickhouse-adapter/statemachine/naming.js';
import { AppliedFiles } from '../../../clickhouse-adapter/statemachine/applied-file.js';

describe('chsm: in-process (failed records, restore swaps)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chsm-record-'));
    engine = await openEmbedded({ dataDir: dir });
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = (index: number, id: number) => ({
    index, term: 1, data: encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from(`{"id":${id}}\n`)),
  });

  it('reports only the recorded index, and redelivery neither loses nor doubles rows', async () => {
    let failRecords = false;
    const sm = new ClickHouseStateMachine({
      engine,
      hook: (point) => { if (failRecords && point === 'before-record') throw new Error('injected: record failed'); },
    });
    await sm.applyBatch(5, [{ index: 1, term: 1, data: encodeEntry({ v: 1, kind: 'ddl', sql: 'CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id' }) }]);
    expect(await sm.lastLogIndex(5)).to.equal(1);

    failRecords = true;
    let failed: unknown;
    await sm.applyBatch(5, [insert(2, 20), insert(3, 30)]).catch((e: unknown) => { failed = e; });
    expect(String(failed)).to.match(/record failed/);
    // Rows 20 and 30 are in ClickHouse but their indexes are not recorded: LastLogIndex stays at 1.
    failRecords = false;
    expect(await sm.lastLogIndex(5)).to.equal(1);

    const results = await sm.applyBatch(5, [insert(2, 20), insert(3, 30), insert(4, 40)]);
    expect(results.map((r) => r.ok)).to.deep.equal([true, true, true]);
    expect(await sm.lastLogIndex(5)).to.equal(4);
    const rows = (await engine.query(`SELECT id FROM ${dataDb(5)}.t ORDER BY id`, { format: 'TabSeparated' })).toString().trim().split('\n');
    expect(rows).to.deep.equal(['20', '30', '40']);
    // A fresh instance (a restart) agrees.
    expect(await new ClickHouseStateMachine({ engine }).lastLogIndex(5)).to.equal(4);
  });

  it('with an applied file: batches are recorded in it (not in _rh_applied), for this database instance only', async () => {
    const appliedDir = join(dir, 'applied-files');
    const files = new AppliedFiles(appliedDir);
    const sm = new ClickHouseStateMachine({ engine, appliedDir });
    await sm.applyBatch(6, [{ index: 1, term: 1, data: encodeEntry({ v: 1, kind: 'ddl', sql: 'CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id' }) }]);
    await sm.applyBatch(6, [insert(2, 20), insert(3, 30)]);
    expect(await sm.lastLogIndex(6)).to.equal(3);
    const tableTop = async (): Promise<number> => Number((await engine.query(
      `SELECT max(idx) FROM ${dataDb(6)}._rh_applied WHERE state = 1`, { format: 'TabSeparated' })).toString().trim() || 0);
    // The file holds 3; _rh_applied stays behind (no INSERT per batch).
    const rec = files.read(6)!;
    expect(rec.index).to.equal(3);
    expect(await tableTop()).to.be.below(3);
    // A restart reads the file...
    expect(await new ClickHouseStateMachine({ engine, appliedDir }).lastLogIndex(6)).to.equal(3);
    // ...but without it (or the file of another database instance) falls back to the table record.
    files.write(6, { instance: '00000000-0000-4000-8000-000000000000', index: 99 });
    expect(await new ClickHouseStateMachine({ engine, appliedDir }).lastLogIndex(6)).to.equal(await tableTop());
    files.write(6, rec);
    // Sync writes the table record too.
    const sm2 = new ClickHouseStateMachine({ engine, appliedDir });
    expect(await sm2.sync(6)).to.equal(3);
    expect(await tableTop()).to.equal(3);
    // Deleting the group removes its file.
    await sm2.deleteGroup(6);
    expect(files.read(6)).to.equal(undefined);
    files.close();
  });

  it('schemaGeneration is odd while a restore swap leaves the group database absent, and moves after it', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => { release = r; });
    let atMidSwap: () => void = () => undefined;
    const reachedMidSwap = new Promise<void>((r) => { atMidSwap = r; });
    const sm = new ClickHouseStateMachine({
      engine,
      hook: async (point) => { if (point === 'mid-swap') { atMidSwap(); await gate; } },
    });
    await sm.applyBatch(7, [{ index: 1, term: 1, data: encodeEntry({ v: 1, kind: 'ddl', sql: 'CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id' }) }]);
    await sm.applyBatch(7, [insert(2, 1)]);
    const { prepared } = await sm.prepareSnapshot(7);
    const parts: Buffer[] = [];
    for await (const chunk of sm.saveSnapshot(7, prepared)) parts.push(Buffer.from(chunk));
    const bytes = Buffer.concat(parts);
    const before = sm.schemaGeneration();
    expect(before % 2).to.equal(0); // no swap in progress

    const restoring = sm.recoverFromSnapshot(7, (async function* () { yield bytes; })());
    await reachedMidSwap;
    const exists = async () => (await engine.query(`SELECT count() FROM system.databases WHERE name = '${dataDb(7)}'`, { format: 'TabSeparated' })).toString().trim();
    expect(await exists()).to.equal('0'); // the window a Merge-view read would silently skip
    expect(sm.schemaGeneration() % 2).to.equal(1); // a swap in progress
    release();
    expect(await restoring).to.equal(2);
    const after = sm.schemaGeneration();
    expect(after % 2).to.equal(0); // no swap in progress
    expect(after).to.be.above(before); // and one happened
    expect(await exists()).to.equal('1');
  });
});
