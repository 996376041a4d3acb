// ClickHouseStateMachine.holdApply, the consistent cut's hold (gateway/cut.ts), on the embedded engine:
// while held, no batch of the held groups applies (other groups do), the applied indexes it reports
// stay exact, a batch already running finishes before the hold is granted, and concurrent holds over
// overlapping groups neither deadlock nor overlap.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { dataDb } from '../../../clickhouse-adapter/statemachine/naming.js';

describe('chsm: holdApply (the consistent cut\'s hold)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chsm-hold-'));
    engine = await openEmbedded({ dataDir: dir });
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ddl = { index: 1, term: 1, data: encodeEntry({ v: 1, kind: 'ddl', sql: 'CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id' }) };
  const insert = (index: number, id: number) => ({
    index, term: 1, data: encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from(`{"id":${id}}\n`)),
  });
  const count = async (g: number) => Number((await engine.query(`SELECT count() FROM ${dataDb(g)}.t`, { format: 'TabSeparated' })).toString().trim());

  it('holds the groups it names, reports their applied indexes, and lets the others apply', async () => {
    const sm = new ClickHouseStateMachine({ engine });
    for (const g of [11, 12, 13]) await sm.applyBatch(g, [ddl, insert(2, 1)]);
    const hold = await sm.holdApply([12, 11]);
    expect([...hold.applied].sort()).to.deep.equal([[11, 2], [12, 2]]);
    let applied11 = false;
    const blocked = sm.applyBatch(11, [insert(3, 2)]).then(() => { applied11 = true; });
    await sm.applyBatch(13, [insert(3, 2)]); // not held
    expect(await count(13)).to.equal(2);
    await new Promise((r) => setTimeout(r, 200));
    expect(applied11, 'a held group applies nothing').to.equal(false);
    expect(await count(11)).to.equal(1);
    expect(sm.appliedIndexNow(11)).to.equal(2);
    hold.release();
    hold.release(); // idempotent
    await blocked;
    expect(await count(11)).to.equal(2);
    expect(sm.appliedIndexNow(11)).to.equal(3);
  });

  it('waits for a batch in progress, and concurrent holds over overlapping groups take turns', async () => {
    const sm = new ClickHouseStateMachine({ engine });
    for (const g of [21, 22]) await sm.applyBatch(g, [ddl]);
    const batch = sm.applyBatch(21, Array.from({ length: 20 }, (_, i) => insert(i + 2, i)));
    const first = await sm.holdApply([21, 22]);
    await batch; // granted only after the batch: the index it reports is the batch's end
    expect(first.applied.get(21)).to.equal(21);
    let secondGranted = false;
    const second = sm.holdApply([22, 21]).then((h) => { secondGranted = true; return h; });
    await new Promise((r) => setTimeout(r, 100));
    expect(secondGranted).to.equal(false);
    first.release();
    const h2 = await second;
    expect(h2.applied.get(22)).to.equal(1);
    h2.release();
    await sm.applyBatch(22, [insert(2, 1)]);
    expect(await count(22)).to.equal(1);
  });
});
