// npm run stress:chsm-kill — kill -9 RaftHouse's state machine at random moments while it applies a
// stream of single-row inserts, restart it, redeliver from before its LastLogIndex (as raftd does),
// and count the rows lost or duplicated at the end.
//
// A random kill sometimes lands inside ClickHouse's insert, after the block's deduplication record and
// before its part is in the table (clickhouse-adapter/statemachine/phantom.ts). Two replicas run side by
// side, fed the same entries and killed on the same schedule:
//   - "applied file": the embedded engine as rafthouse runs it (in-flight mark, phantom repair);
//   - "table record": the index recorded in _rh_applied only (no in-flight mark, no repair), as with
//     the server engine, whose deduplication log RaftHouse cannot read.
// Options: --kills N (default 60), --seed S (default 1), --batch B (entries per UpdateEntries call,
//   default 8: a replica spends most of its time inside inserts, where the kill has to land).

import { parseArgs } from 'node:util';
import { CrashedError, Replica, e } from '../../test/unit/chsm/harness.js';
import type { LogEntry } from '../../test/unit/chsm/harness.js';
import { dataDb } from '../../clickhouse-adapter/statemachine/naming.js';
import { Rng } from '../../test/sim/rng.js';


function entry(index: number): LogEntry {
  const data = index === 1
    ? e({ kind: 'ddl', sql: 'CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id' })
    : e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from(`{"id":${index}}\n`));
  return { index, term: 1, data };
}

interface Side {
  name: string;
  replica: Replica;
  /** Highest index fed and acknowledged. */
  acked: number;
}

/** Feeds entries from (a little before) the replica's LastLogIndex on, until the kill. */
async function feedUntilKilled(side: Side, batchSize: number): Promise<void> {
  try {
    let next = Math.max(1, (await side.replica.last()) - 1); // a little before: redelivered entries too
    for (;;) {
      await side.replica.apply(Array.from({ length: batchSize }, (_, i) => entry(next + i)));
      next += batchSize;
      side.acked = Math.max(side.acked, next - 1);
    }
  } catch (err) {
    if (!(err instanceof CrashedError)) throw err;
  }
}

async function count(r: Replica, sql: string): Promise<number> {
  return Number((await r.call<string>('query', { sql })).trim());
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { kills: { type: 'string' }, seed: { type: 'string' }, batch: { type: 'string' } } });
  const kills = Number(values.kills ?? 60);
  const batch = Number(values.batch ?? 8);
  if (!Number.isInteger(batch) || batch < 1) throw new Error('--batch must be a positive integer');
  const random = new Rng(Number(values.seed ?? 1));
  if (!Number.isInteger(kills) || kills < 1) throw new Error('--kills must be a positive integer');
  const sides: Side[] = [
    { name: 'applied file', replica: Replica.fresh(true), acked: 0 },
    { name: 'table record', replica: Replica.fresh(false), acked: 0 },
  ];
  const t0 = Date.now();
  try {
    for (let k = 1; k <= kills; k++) {
      const delay = 100 + random.float() * 500;
      await Promise.all(sides.map(async (s) => {
        await s.replica.start();
        const timer = setTimeout(() => s.replica.kill(), delay);
        await feedUntilKilled(s, batch);
        clearTimeout(timer);
      }));
      if (k % 10 === 0 || k === kills) {
        console.log(`kill ${k}/${kills} (${((Date.now() - t0) / 1000).toFixed(0)} s): entries acknowledged ${sides.map((s) => `${s.name} ${s.acked}`).join(', ')}`);
      }
    }
    // Last life: redeliver everything acknowledged, then count.
    console.log('');
    console.log('| replica | kills | entries applied | rows | lost | duplicated |');
    console.log('|---|---|---|---|---|---|');
    for (const s of sides) {
      await s.replica.start();
      const from = Math.max(1, (await s.replica.last()) - 1);
      for (let i = from; i <= s.acked; i += batch) {
        await s.replica.apply(Array.from({ length: Math.min(batch, s.acked - i + 1) }, (_, j) => entry(i + j)));
      }
      const db = dataDb(1);
      const rows = await count(s.replica, `SELECT count() FROM ${db}.t`);
      // Entries past the last acknowledged one may have been applied too: they count as rows, not as lost.
      const acked = await count(s.replica, `SELECT uniqExact(id) FROM ${db}.t WHERE id BETWEEN 2 AND ${s.acked}`);
      const distinct = await count(s.replica, `SELECT uniqExact(id) FROM ${db}.t`);
      console.log(`| ${s.name} | ${kills} | ${s.acked} | ${rows} | ${s.acked - 1 - acked} | ${rows - distinct} |`);
      await s.replica.stop();
    }
  } finally {
    for (const s of sides) { s.replica.kill(); s.replica.remove(); }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
