// A crash inside ClickHouse's insert, between "block id recorded in the deduplication log" and "part
// renamed into the table", leaves a phantom: the replay of that insert is dropped as a duplicate and its
// rows are lost (phantom.ts). Killing at random hits that window a few times in a hundred
// (`npm run stress:chsm-kill` does it for real); here the window is built exactly: the replica is
// killed right after the insert returned, and the part that insert created is deleted from disk, which
// is what ClickHouse's start-up does to a part that was never renamed in (a tmp_insert_* directory).
// The replica is then restarted and fed again from before its LastLogIndex, as raftd would.

import { expect } from 'chai';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { lastDedupRecord } from '../../../clickhouse-adapter/statemachine/phantom.js';
import { dataDb } from '../../../clickhouse-adapter/statemachine/naming.js';
import { CrashedError, Replica, e, feed } from './harness.js';
import type { LogEntry } from './harness.js';

const DB = dataDb(1);

function rows(from: number, n: number, partition: (id: number) => number): Buffer {
  const lines: string[] = [];
  for (let id = from; id < from + n; id++) lines.push(JSON.stringify({ id, p: partition(id), v: `row-${id}` }));
  return Buffer.from(lines.join('\n') + '\n');
}

// Merges are off in `t` so a part the test deletes is still the part the insert created.
const LOG: LogEntry[] = [
  /* 1 */ e({ kind: 'ddl', sql: 'CREATE TABLE t (id UInt64, p UInt8, v String) ENGINE = MergeTree PARTITION BY p ORDER BY id SETTINGS max_bytes_to_merge_at_max_space_in_pool = 1' }),
  /* 2 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, rows(0, 100, () => 0)),
  /* 3 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, rows(100, 100, () => 0)),
  // A structured insert (table, format: what the gateway sends), so its repair path is exercised too.
  /* 4 */ e({ kind: 'insert', table: 't', format: 'JSONEachRow' }, rows(200, 100, (id) => id % 2)), // two blocks
  /* 5 */ e({ kind: 'settings', settings: { insert_null_as_default: 1 } }),
  /* 6 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, rows(300, 100, () => 0)),
].map((data, i) => ({ index: i + 1, term: 1, data }));
const ROWS = 400;

async function tablePath(r: Replica, table: string): Promise<string> {
  const path = (await r.call<string>('query', { sql: `SELECT data_paths[1] FROM system.tables WHERE database = '${DB}' AND name = '${table}'` })).trim();
  expect(path, `data path of ${table}`).to.match(/\/$/);
  return path;
}

async function count(r: Replica, sql: string): Promise<number> {
  return Number((await r.call<string>('query', { sql })).trim());
}

/** Runs the log into `r` until it kills itself at `point`. */
async function crashAt(r: Replica, point: string, after = 0): Promise<void> {
  await r.start(point);
  let crashed = false;
  try {
    await feed(r, LOG, 10, after);
  } catch (err) {
    if (!(err instanceof CrashedError)) throw err;
    crashed = true;
  }
  expect(crashed, `the replica should have crashed at ${point}`).to.equal(true);
}

/** Deletes the part named by the last record of the table's deduplication log: that block becomes a phantom. */
function losePart(path: string): string {
  const rec = lastDedupRecord(path);
  expect(rec, 'a deduplication record').to.not.equal(undefined);
  const dir = join(path, rec!.part);
  expect(existsSync(dir), `part ${rec!.part} on disk`).to.equal(true);
  rmSync(dir, { recursive: true });
  return rec!.part;
}

/** Restarts and redelivers from before the recorded index; checks every row is there exactly once. */
async function recoverAndCheck(r: Replica): Promise<void> {
  await r.start();
  const last = await r.last();
  await feed(r, LOG, 10, Math.max(0, last - 2));
  expect(await r.last()).to.equal(LOG.length);
  expect(await count(r, `SELECT count() FROM ${DB}.t`), 'rows').to.equal(ROWS);
  expect(await count(r, `SELECT uniqExact(id) FROM ${DB}.t`), 'distinct ids').to.equal(ROWS);
  expect(await count(r, `SELECT count() FROM ${DB}._rh_settings WHERE idx = 5`), 'the settings entry').to.equal(1);
  await r.stop();
}

describe('chsm: a block lost inside ClickHouse by a crash is re-inserted (phantom deduplication records)', function () {
  this.timeout(120_000);
  const replicas: Replica[] = [];
  const fresh = async (): Promise<{ r: Replica; t: string; settings: string }> => {
    const r = Replica.fresh(true);
    replicas.push(r);
    // Create the tables first (entry 1, and _rh_settings at the group's first load) to learn their paths.
    await r.start();
    await r.apply(LOG.slice(0, 1));
    const t = await tablePath(r, 't');
    const settings = await tablePath(r, '_rh_settings');
    await r.stop();
    return { r, t, settings };
  };

  after(() => {
    for (const r of replicas) { r.kill(); r.remove(); }
  });

  it('an insert into one partition', async () => {
    const { r, t } = await fresh();
    await crashAt(r, 'after-insert@3', 1);
    losePart(t);
    await recoverAndCheck(r);
  });

  it('an insert into two partitions, the second block lost (the first one landed)', async () => {
    const { r, t } = await fresh();
    await crashAt(r, 'after-insert@4', 1);
    expect(losePart(t)).to.match(/^1_/);
    await recoverAndCheck(r);
  });

  it('a settings entry', async () => {
    const { r, settings } = await fresh();
    await crashAt(r, 'after-insert@5', 1);
    losePart(settings);
    await recoverAndCheck(r);
  });

  it('a repair that landed just before a crash', async () => {
    const { r, t } = await fresh();
    await crashAt(r, 'after-insert@3', 1);
    losePart(t);
    // The repair lands, then the replica dies before replaying the entry with its own token.
    await crashAt(r, 'after-repair@3', 1);
    await recoverAndCheck(r);
  });

  it('a repair whose own block a crash lost', async () => {
    const { r, t } = await fresh();
    await crashAt(r, 'after-insert@3', 1);
    losePart(t);
    await crashAt(r, 'after-repair@3', 1);
    losePart(t); // the first repair's block: a second repair, under a fresh token, must land it
    await recoverAndCheck(r);
  });

  it('refuses to prepare a snapshot until the interrupted insert is re-applied', async () => {
    const { r } = await fresh();
    await crashAt(r, 'after-insert@4', 1); // entries 2-4 landed, only 1 is recorded
    await r.start();
    expect(await r.last()).to.equal(1);
    // A snapshot at index 1 would hold the rows of 2-4, and a follower restoring it would insert them again.
    const err = await r.call('prepare', { group: 1 }).then(() => undefined, (e: { code?: string }) => e);
    expect(err?.code).to.equal('RH_CATCHING_UP');
    await feed(r, LOG, 10, 1);
    const { lastLogIndex } = await r.call<{ lastLogIndex: number }>('prepare', { group: 1 });
    expect(lastLogIndex).to.equal(LOG.length);
    await r.stop();
  });

  it('does not re-insert when the missing part is another entry\'s (the in-flight insert never reached the table)', async () => {
    const { r, t } = await fresh();
    // Entry 3 is marked in flight but its insert never starts; entry 2's part goes missing by other means.
    await crashAt(r, 'before-insert@3', 1);
    losePart(t);
    await r.start();
    await feed(r, LOG, 10, Math.max(0, (await r.last()) - 2));
    // Entry 3 exactly once; entry 2's rows stay gone (nothing in the log can bring them back).
    expect(await count(r, `SELECT count() FROM ${DB}.t WHERE id BETWEEN 100 AND 199`)).to.equal(100);
    expect(await count(r, `SELECT count() FROM ${DB}.t WHERE id < 100`)).to.equal(0);
    expect(await count(r, `SELECT count() FROM ${DB}.t`)).to.equal(ROWS - 100);
    await r.stop();
  });
});
