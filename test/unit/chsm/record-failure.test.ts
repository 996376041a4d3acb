// A failed index record (ClickHouse refused the write, the disk is full...) must not leave
// LastLogIndex ahead of what ClickHouse holds: raftd takes a reported index as durable.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { dataDb } from '../../../clickhouse-adapter/statemachine/naming.js';

describe('chsm: a failed index record', function () {
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
});
