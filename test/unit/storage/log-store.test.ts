import { expect } from 'chai';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EntryType, type SnapshotMetadata } from '../../../daemon/raft/types.js';
import { LogStore, StorageError, type GroupWrite } from '../../../daemon/storage/index.js';
import { decodeEntryIndex, decodeRun, entryKey, groupKey, KIND_ENTRY, KIND_HARDSTATE, MAX_RUN_ENTRIES } from '../../../daemon/storage/codec.js';
import { Rocks } from '../../../daemon/storage/rocks.js';
import { TempDirs, entries, expectRejects, payload } from './helpers.js';

const CLUSTER = 'test-cluster';

describe('storage: LogStore', function () {
  const tmp = new TempDirs();
  const open: LogStore[] = [];

  async function openStore(dir: string, nodeId = 1, clusterId = CLUSTER): Promise<LogStore> {
    const s = await LogStore.open({ dir, nodeId, clusterId });
    open.push(s);
    return s;
  }

  /** Entry indexes physically present for a group, read straight from RocksDB (store must be closed). */
  async function rawEntryIndexes(dir: string, group: number): Promise<number[]> {
    return (await rawRuns(dir, group)).flat();
  }

  /** The runs on disk, as lists of entry indexes; checks that each run's key is its first index. */
  async function rawRuns(dir: string, group: number): Promise<number[][]> {
    const db = await Rocks.open(dir, { createIfMissing: false, errorIfExists: false });
    const out: number[][] = [];
    try {
      await db.scan({ gte: entryKey(group, 0), lt: groupKey(KIND_ENTRY, group + 1) }, (k, v) => {
        out.push(decodeRun(decodeEntryIndex(k), v).map((e) => e.index));
      });
    } finally {
      await db.close();
    }
    return out;
  }

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
    await tmp.cleanup();
  });

  it('round-trips entries, hard state and snapshot metadata of many groups in one batch', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    const batch: GroupWrite[] = [];
    for (let g = 0; g < 300; g++) {
      const w: GroupWrite = { group: g, hardState: { term: g + 1, vote: (g % 5) + 1, commit: g % 20 } };
      if (g % 3 === 0) {
        w.snapshot = { index: 10, term: 1, confState: { voters: [1, 2, 3], learners: g % 2 ? [4] : [] } };
        w.entries = entries(g, 11, 30, 2);
      } else {
        w.entries = entries(g, 1, 20, 1);
      }
      batch.push(w);
    }
    batch[7]!.entries![3]!.type = EntryType.ConfChange;
    batch[8]!.entries = [{ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) }];
    await s.write(batch);
    expect(s.stats.batches).to.equal(1);

    expect(await s.listGroups()).to.deep.equal(batch.map((w) => w.group));
    for (const w of batch) {
      const got = await s.loadGroup(w.group);
      expect(got.hardState).to.deep.equal(w.hardState);
      expect(got.snapshot).to.deep.equal(w.snapshot ?? null);
      expect(got.entries).to.deep.equal(w.entries);
    }
    const none = await s.loadGroup(5000);
    expect(none).to.deep.equal({ hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] });
  });

  it('orders keys numerically: index 2^40 after 255, group 256 after 255', async () => {
    expect(Buffer.compare(entryKey(1, 2 ** 40), entryKey(1, 255))).to.equal(1);
    expect(Buffer.compare(entryKey(1, 256), entryKey(1, 255))).to.equal(1);
    expect(Buffer.compare(entryKey(256, 0), entryKey(255, 2 ** 53 - 1))).to.equal(1);
    expect(Buffer.compare(groupKey(KIND_HARDSTATE, 256), groupKey(KIND_HARDSTATE, 255))).to.equal(1);

    // And in the database: a log crossing index 255/256 and 2^40 loads in order; groups list in order.
    const dir = await tmp.make();
    const s = await openStore(dir);
    const big = 2 ** 40;
    await s.write([
      { group: 256, entries: entries(256, 1, 300, 1) },
      { group: 255, entries: entries(255, 1, 3, 1) },
      { group: 1, snapshot: { index: big - 3, term: 1, confState: { voters: [1], learners: [] } }, entries: entries(1, big - 2, big + 2, 1) },
      { group: 2 ** 32 - 1, entries: entries(7, 1, 2, 1) },
    ]);
    expect(await s.listGroups()).to.deep.equal([1, 255, 256, 2 ** 32 - 1]);
    const g256 = await s.loadGroup(256);
    expect(g256.entries.map((e) => e.index)).to.deep.equal(Array.from({ length: 300 }, (_, i) => i + 1));
    const g1 = await s.loadGroup(1);
    expect(g1.entries.map((e) => e.index)).to.deep.equal([big - 2, big - 1, big, big + 1, big + 2]);
    expect((await s.loadGroup(255)).entries).to.have.length(3);
    expect((await s.loadGroup(2 ** 32 - 1)).entries).to.have.length(2);
  });

  it('truncates a conflicting suffix when entries are appended at an earlier index', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 3, entries: entries(3, 1, 10, 1) }]);
    await s.write([{ group: 3, entries: entries(3, 6, 7, 2), hardState: { term: 2, vote: 2, commit: 5 } }]);
    const expected = [...entries(3, 1, 5, 1), ...entries(3, 6, 7, 2)];
    expect((await s.loadGroup(3)).entries).to.deep.equal(expected);
    // Overwriting the whole tail with a longer one works too.
    await s.write([{ group: 3, entries: entries(3, 7, 12, 3) }]);
    expect((await s.loadGroup(3)).entries.map((e) => e.term)).to.deep.equal([1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3]);
    await s.close();
    expect(await rawEntryIndexes(dir, 3)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    s = await openStore(dir);
    // After a reopen the store finds the span again and truncation still deletes.
    await s.write([{ group: 3, entries: entries(3, 4, 4, 4) }]);
    await s.close();
    expect(await rawEntryIndexes(dir, 3)).to.deep.equal([1, 2, 3, 4]);
  });

  it('applies several writes of one group inside one batch in order', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    await s.write([
      { group: 9, entries: entries(9, 1, 8, 1) },
      { group: 9, entries: entries(9, 4, 5, 2) },
      { group: 9, entries: entries(9, 6, 6, 2), hardState: { term: 2, vote: 0, commit: 3 } },
    ]);
    const got = await s.loadGroup(9);
    expect(got.entries).to.deep.equal([...entries(9, 1, 3, 1), ...entries(9, 4, 6, 2)]);
    expect(got.hardState).to.deep.equal({ term: 2, vote: 0, commit: 3 });
  });

  it('refuses gaps and non-contiguous entries with INVALID and writes nothing of the batch', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    await s.write([{ group: 1, entries: entries(1, 1, 3, 1) }]);
    const gap = await expectRejects(s.write([{ group: 2, entries: entries(2, 1, 2, 1), hardState: { term: 1, vote: 1, commit: 1 } }, { group: 1, entries: entries(1, 5, 6, 1) }]));
    expect(gap).to.be.instanceOf(StorageError).with.property('code', 'INVALID');
    const holes = await expectRejects(s.write([{ group: 1, entries: [...entries(1, 4, 4, 1), ...entries(1, 6, 6, 1)] }]));
    expect(holes).to.be.instanceOf(StorageError).with.property('code', 'INVALID');
    expect(await s.listGroups()).to.deep.equal([1]);
    expect((await s.loadGroup(1)).entries).to.have.length(3);
    // The cache was not advanced by the rejected batches: appending at 4 still works.
    await s.write([{ group: 1, entries: entries(1, 4, 4, 1) }]);
    expect((await s.loadGroup(1)).entries).to.have.length(4);
  });

  it('a snapshot whose entry matches compacts the prefix and keeps the tail', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 4, entries: entries(4, 1, 10, 1) }]);
    const snap: SnapshotMetadata = { index: 6, term: 1, confState: { voters: [1, 2, 3], learners: [] } };
    await s.write([{ group: 4, snapshot: snap }]);
    const got = await s.loadGroup(4);
    expect(got.snapshot).to.deep.equal(snap);
    expect(got.entries).to.deep.equal(entries(4, 7, 10, 1));
    // An older snapshot is ignored; compacting beyond the snapshot is refused.
    const batchesBefore = s.stats.batches;
    await s.write([{ group: 4, snapshot: { index: 3, term: 1, confState: { voters: [9], learners: [] } } }]);
    expect(s.stats.batches, 'an ignored snapshot costs no batch').to.equal(batchesBefore);
    expect((await s.loadGroup(4)).snapshot).to.deep.equal(snap);
    const beyond = await expectRejects(s.write([{ group: 4, compactTo: 8 }]));
    expect(beyond).to.be.instanceOf(StorageError).with.property('code', 'INVALID');
    await s.write([{ group: 4, compactTo: 6 }]);
    // New entries after the tail continue to work.
    await s.write([{ group: 4, entries: entries(4, 11, 12, 1) }]);
    await s.close();
    expect(await rawEntryIndexes(dir, 4)).to.deep.equal([7, 8, 9, 10, 11, 12]);
    s = await openStore(dir);
    expect((await s.loadGroup(4)).entries.map((e) => e.index)).to.deep.equal([7, 8, 9, 10, 11, 12]);
  });

  it('compacts a long log with range deletes: nothing at or below the snapshot stays on disk', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    await s.write([{ group: 5, entries: entries(5, 1, 2000, 1) }, { group: 6, entries: entries(6, 1, 50, 1) }]);
    await s.write([{ group: 5, snapshot: { index: 1500, term: 1, confState: { voters: [1], learners: [] } }, compactTo: 1500 }]);
    await s.write([{ group: 5, snapshot: { index: 1990, term: 1, confState: { voters: [1], learners: [] } } }]);
    await s.collectGarbage();
    await s.close();
    expect(await rawEntryIndexes(dir, 5)).to.deep.equal(Array.from({ length: 10 }, (_, i) => 1991 + i));
    expect(await rawEntryIndexes(dir, 6)).to.have.length(50);
  });

  it('a snapshot leaves compacted runs to the background cleaner, and loads ignore them meanwhile', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    // 300 single-entry runs, then a snapshot at 290: only the run holding 290 is touched in the write.
    for (let i = 1; i <= 300; i += 50) {
      await s.write(Array.from({ length: 50 }, (_, j) => ({ group: 3, entries: entries(3, i + j, i + j, 1) })));
    }
    await s.write([{ group: 3, snapshot: { index: 290, term: 1, confState: { voters: [1], learners: [] } } }]);
    await s.close(); // closing stops the cleaner: the compacted runs are still there, as after a crash
    expect(await rawEntryIndexes(dir, 3)).to.have.length(299); // 1..289 and 291..300 (290 was cut away)
    s = await openStore(dir);
    const lg = await s.loadGroup(3);
    expect(lg.entries.map((e) => e.index)).to.deep.equal(Array.from({ length: 10 }, (_, i) => 291 + i));
    // Writes work on top of the garbage, and the cleaner (scheduled by the load) removes it.
    await s.write([{ group: 3, entries: entries(3, 295, 296, 2) }]);
    const deadline = Date.now() + 5000;
    while (s.stats.garbageRunsDeleted < 289 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.stats.garbageRunsDeleted).to.equal(289);
    await s.close();
    expect(await rawEntryIndexes(dir, 3)).to.deep.equal([291, 292, 293, 294, 295, 296]);
  });

  it('an installed snapshot that does not match the log replaces the whole log', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 7, entries: entries(7, 1, 10, 1) }, { group: 8, entries: entries(8, 1, 5, 1) }]);
    const snap: SnapshotMetadata = { index: 8, term: 3, confState: { voters: [1, 2], learners: [3] } };
    await s.write([{ group: 7, snapshot: snap, hardState: { term: 3, vote: 0, commit: 8 } }]);
    expect(await s.loadGroup(7)).to.deep.equal({ hardState: { term: 3, vote: 0, commit: 8 }, snapshot: snap, entries: [] });
    // A snapshot beyond the last entry, with entries after it in the same write.
    const far: SnapshotMetadata = { index: 100, term: 4, confState: { voters: [1], learners: [] } };
    await s.write([{ group: 8, snapshot: far, entries: entries(8, 101, 102, 4) }]);
    expect((await s.loadGroup(8)).entries).to.deep.equal(entries(8, 101, 102, 4));
    // Entries at or below the snapshot are skipped (like MemoryStorage.append); the rest are appended.
    await s.write([{ group: 7, entries: entries(7, 7, 9, 3) }]);
    expect((await s.loadGroup(7)).entries).to.deep.equal(entries(7, 9, 9, 3));
    await s.write([{ group: 7, entries: entries(7, 3, 5, 3) }]);
    expect((await s.loadGroup(7)).entries).to.deep.equal(entries(7, 9, 9, 3));
    await s.write([{ group: 7, entries: entries(7, 10, 10, 3) }]);
    await s.close();
    expect(await rawEntryIndexes(dir, 7)).to.deep.equal([9, 10]);
    expect(await rawEntryIndexes(dir, 8)).to.deep.equal([101, 102]);
    s = await openStore(dir);
    expect((await s.loadGroup(7)).entries).to.deep.equal(entries(7, 9, 10, 3));
  });

  it('stores one run per append, cuts runs on truncation and snapshots, splits long appends', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 1, entries: entries(1, 1, 10, 1) }]);
    await s.write([{ group: 1, entries: entries(1, 11, 20, 1) }]);
    // Truncate in the middle of the second run, then snapshot in the middle of the first.
    await s.write([{ group: 1, entries: entries(1, 15, 16, 2) }]);
    await s.write([{ group: 1, snapshot: { index: 4, term: 1, confState: { voters: [1], learners: [] } } }]);
    // One long append is split into bounded runs.
    await s.write([{ group: 2, entries: entries(2, 1, MAX_RUN_ENTRIES * 2 + 5, 1) }]);
    await s.close();
    const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
    expect(await rawRuns(dir, 1)).to.deep.equal([range(5, 10), range(11, 14), range(15, 16)]);
    expect(await rawRuns(dir, 2)).to.deep.equal([range(1, MAX_RUN_ENTRIES), range(MAX_RUN_ENTRIES + 1, 2 * MAX_RUN_ENTRIES), range(2 * MAX_RUN_ENTRIES + 1, 2 * MAX_RUN_ENTRIES + 5)]);
    s = await openStore(dir);
    expect((await s.loadGroup(1)).entries).to.deep.equal([...entries(1, 5, 14, 1), ...entries(1, 15, 16, 2)]);
    // Truncating exactly at a run boundary, and in the middle of a split run.
    await s.write([{ group: 1, entries: entries(1, 11, 11, 3) }, { group: 2, entries: entries(2, 200, 201, 2) }]);
    await s.close();
    expect(await rawRuns(dir, 1)).to.deep.equal([range(5, 10), [11]]);
    expect(await rawRuns(dir, 2)).to.deep.equal([range(1, MAX_RUN_ENTRIES), range(MAX_RUN_ENTRIES + 1, 199), [200, 201]]);
  });

  it('mixes appends, truncations and a snapshot of one group inside a single batch', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 6, entries: entries(6, 1, 5, 1) }]);
    await s.write([
      { group: 6, entries: entries(6, 6, 12, 1) }, // fast path, added in this batch
      { group: 6, entries: entries(6, 9, 10, 2) }, // cuts the run added just before
      { group: 6, snapshot: { index: 7, term: 1, confState: { voters: [1], learners: [] } } }, // matches: keeps 8..10
      { group: 6, entries: entries(6, 11, 11, 2), hardState: { term: 2, vote: 1, commit: 9 } },
    ]);
    const expected = [...entries(6, 8, 8, 1), ...entries(6, 9, 10, 2), ...entries(6, 11, 11, 2)];
    expect((await s.loadGroup(6)).entries).to.deep.equal(expected);
    await s.write([
      { group: 6, entries: entries(6, 12, 13, 2) },
      { group: 6, snapshot: { index: 12, term: 5, confState: { voters: [1], learners: [] } } }, // no match: log replaced
      { group: 6, entries: entries(6, 13, 13, 5) },
    ]);
    await s.collectGarbage();
    await s.close();
    expect(await rawEntryIndexes(dir, 6)).to.deep.equal([13]);
    s = await openStore(dir);
    const got = await s.loadGroup(6);
    expect(got.snapshot?.index).to.equal(12);
    expect(got.entries).to.deep.equal(entries(6, 13, 13, 5));
  });

  it('keeps everything across close and reopen, including metadata', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    const writes: GroupWrite[] = [];
    for (let g = 1; g <= 50; g++) writes.push({ group: g, entries: entries(g, 1, g, g), hardState: { term: g, vote: 1, commit: g - 1 } });
    await s.write(writes);
    await s.write([{ group: 50, snapshot: { index: 20, term: 50, confState: { voters: [1, 2, 3], learners: [] } } }]);
    await s.putMeta('catalog', new Uint8Array([1, 2, 3]));
    await s.putMeta('registry', new Uint8Array(0));
    await s.close();

    s = await openStore(dir);
    expect(await s.listGroups()).to.deep.equal(writes.map((w) => w.group));
    // The bulk loader sees exactly what loadGroup sees.
    const all = await s.loadAll();
    expect([...all.keys()]).to.deep.equal(writes.map((w) => w.group));
    for (const [g, lg] of all) expect(lg).to.deep.equal(await s.loadGroup(g));
    for (const w of writes.slice(0, 49)) {
      const got = await s.loadGroup(w.group);
      expect(got.entries).to.deep.equal(w.entries);
      expect(got.hardState).to.deep.equal(w.hardState);
    }
    const g50 = await s.loadGroup(50);
    expect(g50.snapshot?.index).to.equal(20);
    expect(g50.entries.map((e) => e.index)).to.deep.equal(Array.from({ length: 30 }, (_, i) => 21 + i));
    expect(g50.entries[0]!.data).to.deep.equal(payload(50, 21, 50));
    expect(await s.getMeta('catalog')).to.deep.equal(new Uint8Array([1, 2, 3]));
    expect(await s.getMeta('registry')).to.deep.equal(new Uint8Array(0));
    expect(await s.getMeta('absent')).to.equal(undefined);
  });

  it('deletes a group entirely and leaves the others', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    await s.write([
      { group: 1, entries: entries(1, 1, 5, 1), hardState: { term: 1, vote: 1, commit: 2 } },
      { group: 2, snapshot: { index: 3, term: 1, confState: { voters: [1], learners: [] } }, entries: entries(2, 4, 9, 1), hardState: { term: 1, vote: 1, commit: 4 } },
    ]);
    await s.deleteGroup(2);
    expect(await s.listGroups()).to.deep.equal([1]);
    expect([...(await s.loadAll()).keys()]).to.deep.equal([1]);
    expect(await s.loadGroup(2)).to.deep.equal({ hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] });
    expect((await s.loadGroup(1)).entries).to.have.length(5);
    // The group can be created afresh from index 1.
    await s.write([{ group: 2, entries: entries(2, 1, 2, 5) }]);
    expect((await s.loadGroup(2)).entries).to.deep.equal(entries(2, 1, 2, 5));
    await s.close();
    const again = await openStore(dir);
    expect(await again.listGroups()).to.deep.equal([1, 2]);
    expect((await again.loadAll()).get(2)!.entries).to.deep.equal(entries(2, 1, 2, 5));
  });

  it('a group known from an earlier run is appended to and truncated correctly without loadGroup', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 11, entries: entries(11, 1, 6, 1) }, { group: 12, snapshot: { index: 40, term: 2, confState: { voters: [1], learners: [] } } }]);
    await s.close();
    s = await openStore(dir);
    // No load first: the store must find the spans on disk, not assume empty groups.
    const gap = await expectRejects(s.write([{ group: 12, entries: entries(12, 42, 42, 2) }]));
    expect(gap).to.be.instanceOf(StorageError).with.property('code', 'INVALID');
    await s.write([{ group: 11, entries: entries(11, 3, 3, 2) }, { group: 12, entries: entries(12, 41, 41, 2) }]);
    expect((await s.loadGroup(11)).entries).to.deep.equal([...entries(11, 1, 2, 1), ...entries(11, 3, 3, 2)]);
    expect((await s.loadGroup(12)).entries).to.deep.equal(entries(12, 41, 41, 2));
  });

  it('refuses a directory of another node or cluster with IDENTITY_MISMATCH and keeps its data', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir, 1, 'alpha');
    await s.write([{ group: 1, entries: entries(1, 1, 3, 1) }]);
    await s.close();
    const otherNode = await expectRejects(LogStore.open({ dir, nodeId: 2, clusterId: 'alpha' }));
    expect(otherNode).to.be.instanceOf(StorageError).with.property('code', 'IDENTITY_MISMATCH');
    expect((otherNode as Error).message).to.match(/node 1 of cluster "alpha"/);
    const otherCluster = await expectRejects(LogStore.open({ dir, nodeId: 1, clusterId: 'beta' }));
    expect(otherCluster).to.be.instanceOf(StorageError).with.property('code', 'IDENTITY_MISMATCH');
    const again = await openStore(dir, 1, 'alpha');
    expect((await again.loadGroup(1)).entries).to.have.length(3);
  });

  it('refuses a non-empty directory without a database with CORRUPT and touches nothing', async () => {
    const dir = await tmp.make();
    await writeFile(join(dir, 'precious.txt'), 'do not delete');
    const err = await expectRejects(LogStore.open({ dir, nodeId: 1, clusterId: CLUSTER }));
    expect(err).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');
    expect(await readdir(dir)).to.deep.equal(['precious.txt']);
  });

  it('refuses a database whose CURRENT file was lost with CORRUPT (no silent re-create)', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    await s.write([{ group: 1, entries: entries(1, 1, 3, 1) }]);
    await s.close();
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'CURRENT'));
    const before = (await readdir(dir)).sort();
    const err = await expectRejects(LogStore.open({ dir, nodeId: 1, clusterId: CLUSTER }));
    expect(err).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');
    expect((await readdir(dir)).sort()).to.deep.equal(before);
  });

  it('refuses a damaged MANIFEST with CORRUPT', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    await s.write([{ group: 1, entries: entries(1, 1, 3, 1) }]);
    await s.close();
    const current = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim();
    const manifest = join(dir, current);
    const bytes = await readFile(manifest);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (bytes[i]! ^ 0x5a) & 0xff;
    await writeFile(manifest, bytes);
    const err = await expectRejects(LogStore.open({ dir, nodeId: 1, clusterId: CLUSTER }));
    expect(err).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');
  });

  it('refuses a database with Raft data but no identity, or a malformed identity, with CORRUPT', async () => {
    const dir = await tmp.make();
    const raw = await Rocks.open(dir, { createIfMissing: true, errorIfExists: true });
    await raw.put(groupKey(KIND_HARDSTATE, 1), Buffer.alloc(20), true);
    await raw.close();
    const noId = await expectRejects(LogStore.open({ dir, nodeId: 1, clusterId: CLUSTER }));
    expect(noId).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');

    const dir2 = await tmp.make();
    const raw2 = await Rocks.open(dir2, { createIfMissing: true, errorIfExists: true });
    await raw2.put(Buffer.from([0]), Buffer.from('garbage!garbage!'), true);
    await raw2.close();
    const badId = await expectRejects(LogStore.open({ dir: dir2, nodeId: 1, clusterId: CLUSTER }));
    expect(badId).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');
  });

  it('reports a corrupt record on load as CORRUPT', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    await s.write([{ group: 1, entries: entries(1, 1, 3, 1), hardState: { term: 1, vote: 1, commit: 1 } }]);
    await s.close();
    const raw = await Rocks.open(dir, { createIfMissing: false, errorIfExists: false });
    await raw.put(groupKey(KIND_HARDSTATE, 1), Buffer.from([1, 2, 3]), true);
    await raw.close();
    s = await openStore(dir);
    const err = await expectRejects(s.loadGroup(1));
    expect(err).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');
  });

  it('a directory locked by another open store gives IO; a closed store gives CLOSED', async () => {
    const dir = await tmp.make();
    const s = await openStore(dir);
    const locked = await expectRejects(LogStore.open({ dir, nodeId: 1, clusterId: CLUSTER }));
    expect(locked).to.be.instanceOf(StorageError).with.property('code', 'IO');
    await s.close();
    const errs = await Promise.all([s.write([{ group: 1, entries: entries(1, 1, 1, 1) }]), s.loadGroup(1), s.listGroups(), s.getMeta('x')].map(expectRejects));
    for (const e of errs) {
      expect(e).to.be.instanceOf(StorageError).with.property('code', 'CLOSED');
    }
  });

  it('close waits for writes already queued', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    const writes = Array.from({ length: 20 }, (_, i) => s.write([{ group: i, entries: entries(i, 1, 10, 1) }]));
    await s.close();
    await Promise.all(writes);
    s = await openStore(dir);
    expect(await s.listGroups()).to.have.length(20);
  });
});
