// A damaged RocksDB write-ahead log must stop the store from opening, never shorten the log. The
// `rocksdb` binding opens with paranoid_checks off and point-in-time WAL recovery (neither can be
// changed), which silently drops every write after the first bad record: daemon/storage/wal-check.ts
// reads the WAL first. Real RocksDB, real files.

import { expect } from 'chai';
import { cp, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LogStore } from '../../../daemon/storage/log-store.js';
import { StorageError } from '../../../daemon/storage/errors.js';
import { Rocks } from '../../../daemon/storage/rocks.js';
import { crc32c } from '../../../daemon/storage/wal-check.js';
import { TempDirs, entries, expectRejects } from './helpers.js';

/** A store whose group 3 holds entries 1..18, each written (and fsynced) on its own. */
async function storeWith18(dir: string): Promise<void> {
  const s = await LogStore.open({ dir, nodeId: 1, clusterId: 'alpha' });
  for (let i = 1; i <= 18; i++) await s.write([{ group: 3, entries: entries(3, i, i, 1, 200), hardState: { term: 1, vote: 1, commit: i } }]);
  await s.close();
}

async function walOf(dir: string): Promise<string> {
  const logs = (await readdir(dir)).filter((n) => /^\d+\.log$/.test(n));
  let best = '';
  let size = -1;
  for (const n of logs) {
    const sz = (await stat(join(dir, n))).size;
    if (sz > size) [best, size] = [n, sz];
  }
  return join(dir, best);
}

async function flip(path: string, at: number, count: number): Promise<void> {
  const b = await readFile(path);
  for (let i = at; i < at + count; i++) b[i] = b[i]! ^ 0xff;
  await writeFile(path, b);
}

async function countKeys(dir: string): Promise<number> {
  const db = await Rocks.open(dir, { createIfMissing: false, errorIfExists: false });
  let n = 0;
  await db.scan({}, () => {
    n++;
  });
  await db.close();
  return n;
}

describe('LogStore: a damaged write-ahead log is refused, never silently shortened', function () {
  this.timeout(30_000);
  const tmp = new TempDirs();
  afterEach(() => tmp.cleanup());

  it('crc32c is the Castagnoli CRC (RFC 3720 test vector)', () => {
    expect(crc32c(new Uint8Array(32))).to.equal(0x8a9136aa);
    expect(crc32c(new TextEncoder().encode('123456789'))).to.equal(0xe3069283);
  });

  it('64 flipped bytes in the middle of the WAL: open fails CORRUPT naming the directory and file; RocksDB alone would have dropped entries', async () => {
    const dir = await tmp.make();
    await storeWith18(dir);
    const copy = await tmp.make();
    await cp(dir, copy, { recursive: true });
    const wal = await walOf(copy);
    const size = (await stat(wal)).size;
    expect(size).to.be.greaterThan(2000);
    await flip(wal, Math.floor(size / 2), 64);

    const e = await expectRejects(LogStore.open({ dir: copy, nodeId: 1, clusterId: 'alpha' }));
    expect(e).to.be.instanceOf(StorageError).with.property('code', 'CORRUPT');
    expect((e as Error).message).to.include(copy);
    expect((e as Error).message).to.match(/write-ahead log \d+\.log damaged at byte \d+ \(checksum mismatch|record length|unknown record type/);
    // What the check prevents: RocksDB on its own opens the damaged copy and has lost records.
    const keysIntact = await countKeys(dir);
    const keysDamaged = await countKeys(copy);
    expect(keysDamaged).to.be.lessThan(keysIntact);
    // And the intact original still opens with all 18 entries.
    const s = await LogStore.open({ dir, nodeId: 1, clusterId: 'alpha' });
    expect((await s.loadGroup(3)).entries).to.have.length(18);
    await s.close();
  });

  it('a torn last record (a write cut short by a crash, never acknowledged) is tolerated', async () => {
    const dir = await tmp.make();
    await storeWith18(dir);
    const wal = await walOf(dir);
    await truncate(wal, (await stat(wal)).size - 5);
    const s = await LogStore.open({ dir, nodeId: 1, clusterId: 'alpha' });
    const n = (await s.loadGroup(3)).entries.length;
    expect(n).to.be.within(17, 18);
    await s.close();
  });
});
