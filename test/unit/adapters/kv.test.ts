// The reference KV adapter's storage on a real disk: crash leftovers (torn WAL tail, interrupted
// directory swap), corruption refusal, checkpoints as compaction, commands, snapshots.

import { expect } from 'chai';
import { promises as fsp, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KvAdapter } from '../../../adapters/kv/adapter.js';
import { decodeSnapshot, encodeSnapshot } from '../../../adapters/kv/commands.js';
import type { Entry } from '../../../adapters/sdk/types.js';

const cmd = (index: number, c: unknown): Entry => ({ index, term: 1, data: Buffer.from(JSON.stringify(c)) });
const set = (index: number, key: string, value: string): Entry => cmd(index, { op: 'set', key, value });

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

async function* once(b: Buffer): AsyncIterable<Uint8Array> {
  yield b;
}

describe('KV adapter storage', () => {
  let dir: string;
  let kv: KvAdapter;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kvad-'));
    kv = new KvAdapter({ dataDir: dir });
  });
  afterEach(async () => {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const reopen = async (opts: Partial<ConstructorParameters<typeof KvAdapter>[0]> = {}): Promise<KvAdapter> => {
    await kv.close();
    kv = new KvAdapter({ dataDir: dir, ...opts });
    return kv;
  };
  const get = (g: number, key: string) => kv.read(g, { op: 'get', key });

  it('applies set / delete / cas with deterministic results, bad commands fail and still advance', async () => {
    const r = await kv.applyBatch(1, [
      set(1, 'a', '1'),
      cmd(2, { op: 'cas', key: 'a', expect: '0', value: '2' }),
      cmd(3, { op: 'cas', key: 'a', expect: '1', value: '2' }),
      cmd(4, { op: 'cas', key: 'b', expect: null, value: 'new' }),
      cmd(5, { op: 'delete', key: 'a' }),
      cmd(6, { op: 'frobnicate', key: 'a' }),
      { index: 7, term: 1, data: new Uint8Array(0) },
      { index: 8, term: 1, data: new Uint8Array([0xff]) },
    ]);
    expect(r).to.deep.equal([
      { ok: true, result: { ok: true } },
      { ok: true, result: { swapped: false, value: '1' } },
      { ok: true, result: { swapped: true, value: '2' } },
      { ok: true, result: { swapped: true, value: 'new' } },
      { ok: true, result: { deleted: true } },
      { ok: false, error: { code: 'BAD_COMMAND', message: 'unknown op "frobnicate" (set, delete, cas)' } },
      { ok: true, result: null },
      { ok: false, error: { code: 'BAD_COMMAND', message: 'entry is not UTF-8 JSON' } },
    ]);
    expect(await kv.lastLogIndex(1)).to.equal(8);
    expect(await kv.read(1, { op: 'scan' })).to.deep.equal({ items: [{ key: 'b', value: 'new' }] });
    await reopen();
    expect(await kv.lastLogIndex(1)).to.equal(8);
    expect(await get(1, 'b')).to.deep.equal({ value: 'new' });
    expect(await get(1, 'a')).to.deep.equal({ value: null });
  });

  it('drops a torn last WAL record (crash mid-append) and keeps going', async () => {
    await kv.applyBatch(1, [set(1, 'a', '1')]);
    await kv.applyBatch(1, [set(2, 'a', '2'), set(3, 'b', '3')]);
    await kv.close();
    const wal = path.join(dir, 'g-1', 'wal-0.log');
    const intact = (await fsp.stat(wal)).size;
    await fsp.appendFile(wal, '1a2b3c {"f":4,"d":["eyJvcCI6');
    await reopen();
    expect(await kv.lastLogIndex(1)).to.equal(3);
    expect((await fsp.stat(wal)).size).to.equal(intact);
    await kv.applyBatch(1, [set(4, 'c', '4')]);
    await reopen();
    expect(await kv.lastLogIndex(1)).to.equal(4);
    expect(await get(1, 'c')).to.deep.equal({ value: '4' });
  });

  it('refuses a WAL corrupted in the middle with CORRUPT_DATA instead of silently resetting', async () => {
    await kv.applyBatch(1, [set(1, 'a', '1')]);
    await kv.applyBatch(1, [set(2, 'a', '2')]);
    await kv.close();
    const wal = path.join(dir, 'g-1', 'wal-0.log');
    const text = await fsp.readFile(wal, 'utf8');
    await fsp.writeFile(wal, text.replace('"f":1', '"f":7'));
    await reopen();
    let code = '';
    await kv.lastLogIndex(1).catch((e: { code: string }) => (code = e.code));
    expect(code).to.equal('CORRUPT_DATA');
  });

  it('PrepareSnapshot checkpoints: old WAL dropped, two newest snapshots kept, state rebuilt from checkpoint + new WAL', async () => {
    await kv.applyBatch(1, [set(1, 'a', '1'), set(2, 'b', '2')]);
    const p1 = await kv.prepareSnapshot(1);
    expect(p1).to.deep.equal({ prepared: 'snap-2', lastLogIndex: 2 });
    expect((await fsp.readdir(path.join(dir, 'g-1'))).sort()).to.deep.equal(['snap-2.snap', 'wal-2.log']);
    await kv.applyBatch(1, [set(3, 'a', 'x')]);
    await kv.prepareSnapshot(1);
    await kv.applyBatch(1, [set(4, 'a', 'y')]);
    await kv.prepareSnapshot(1);
    expect((await fsp.readdir(path.join(dir, 'g-1'))).sort()).to.deep.equal(['snap-3.snap', 'snap-4.snap', 'wal-4.log']);
    let gone = '';
    await collect(kv.saveSnapshot(1, 'snap-2')).catch((e: { code: string }) => (gone = e.code));
    expect(gone).to.equal('SNAPSHOT_GONE');
    await kv.applyBatch(1, [set(5, 'c', 'z')]);
    await reopen();
    expect(await kv.lastLogIndex(1)).to.equal(5);
    expect(await kv.read(1, { op: 'scan' })).to.deep.equal({ items: [{ key: 'a', value: 'y' }, { key: 'b', value: '2' }, { key: 'c', value: 'z' }] });
    const bytes = await collect(kv.saveSnapshot(1, 'snap-4'));
    expect(decodeSnapshot(bytes).lastLogIndex).to.equal(4);
  });

  it('compacts on its own when the WAL outgrows compactBytes', async () => {
    await reopen({ compactBytes: 500 });
    for (let i = 1; i <= 20; i++) await kv.applyBatch(1, [set(i, `k${i}`, 'v'.repeat(50))]);
    const files = await fsp.readdir(path.join(dir, 'g-1'));
    expect(files.filter((f) => f.startsWith('snap-')).length).to.be.greaterThan(0);
    expect(files.filter((f) => f.startsWith('wal-'))).to.have.length(1);
    await reopen();
    expect(await kv.lastLogIndex(1)).to.equal(20);
    expect(await get(1, 'k20')).to.deep.equal({ value: 'v'.repeat(50) });
  });

  it('snapshots are sorted by UTF-8 bytes and recover replaces the whole group', async () => {
    await kv.applyBatch(1, [set(1, '\u{1F600}', 'emoji'), set(2, '\uFFFD', 'replacement'), set(3, 'a', 'x')]);
    const p = await kv.prepareSnapshot(1);
    const bytes = await collect(kv.saveSnapshot(1, p.prepared));
    expect(bytes.toString().split('\n').slice(1, 4).map((l) => JSON.parse(l)[0])).to.deep.equal(['a', '\uFFFD', '\u{1F600}']);
    await kv.applyBatch(2, [set(1, 'mine', 'y'), set(2, 'x', 'x'), set(3, 'x', 'x'), set(4, 'x', 'x'), set(5, 'x', 'x')]);
    expect(await kv.recoverFromSnapshot(2, once(bytes))).to.equal(3);
    expect(await kv.lastLogIndex(2)).to.equal(3);
    expect(await get(2, 'mine')).to.deep.equal({ value: null });
    await reopen();
    expect(await kv.lastLogIndex(2)).to.equal(3);
    expect(await get(2, 'a')).to.deep.equal({ value: 'x' });
  });

  it('recovers a snapshot into a group this adapter has never seen (first call after start)', async () => {
    await kv.applyBatch(1, [set(1, 'a', 'x'), set(2, 'b', 'y')]);
    const p = await kv.prepareSnapshot(1);
    const bytes = await collect(kv.saveSnapshot(1, p.prepared));
    await reopen();
    // Group 7 was never loaded nor written: its recovery is the first thing that touches it.
    expect(await kv.recoverFromSnapshot(7, once(bytes))).to.equal(2);
    expect(await get(7, 'b')).to.deep.equal({ value: 'y' });
    await reopen();
    expect(await kv.lastLogIndex(7)).to.equal(2);
  });

  it('rejects bad snapshot bytes with BAD_SNAPSHOT and leaves the group as it was', async () => {
    await kv.applyBatch(1, [set(1, 'a', '1')]);
    const bad = [Buffer.from('nope\n'), encodeSnapshot(5, [['a', 'b']]).subarray(0, 40), Buffer.from(encodeSnapshot(5, [['a', 'b']]).toString().replace('"count":1', '"count":2'))];
    for (const b of bad) {
      let code = '';
      await kv.recoverFromSnapshot(1, once(b)).catch((e: { code: string }) => (code = e.code));
      expect(code).to.equal('BAD_SNAPSHOT');
    }
    expect(await kv.lastLogIndex(1)).to.equal(1);
  });

  it('finishes a directory swap interrupted by a crash (only g-N.new left) and removes g-N.old', async () => {
    await kv.applyBatch(3, [set(1, 'a', 'old')]);
    await kv.close();
    // Crash after "rename g-3 -> g-3.old", before "rename g-3.new -> g-3".
    await fsp.rename(path.join(dir, 'g-3'), path.join(dir, 'g-3.old'));
    await fsp.mkdir(path.join(dir, 'g-3.new'));
    await fsp.writeFile(path.join(dir, 'g-3.new', 'snap-9.snap'), encodeSnapshot(9, [['a', 'new']]));
    await reopen();
    expect(await kv.lastLogIndex(3)).to.equal(9);
    expect(await get(3, 'a')).to.deep.equal({ value: 'new' });
    expect((await fsp.readdir(dir)).sort()).to.deep.equal(['g-3']);
  });

  it('with fsync never, Sync makes applied entries durable and reports the index; DeleteGroup resets to 0', async () => {
    await reopen({ fsync: 'never' });
    await kv.applyBatch(1, [set(1, 'a', '1'), set(2, 'a', '2')]);
    expect(await kv.sync(1)).to.equal(2);
    await kv.deleteGroup(1);
    expect(await kv.lastLogIndex(1)).to.equal(0);
    expect(await get(1, 'a')).to.deep.equal({ value: null });
    await reopen();
    expect(await kv.lastLogIndex(1)).to.equal(0);
  });

  it('answers BAD_QUERY for queries it does not understand', async () => {
    for (const q of [null, 5, { op: 'get' }, { op: 'scan', limit: -1 }, { op: 'explode' }]) {
      let code = '';
      await kv.read(1, q).catch((e: { code: string }) => (code = e.code));
      expect(code, JSON.stringify(q)).to.equal('BAD_QUERY');
    }
    await kv.applyBatch(1, [set(1, 'p1', 'a'), set(2, 'p2', 'b'), set(3, 'q', 'c')]);
    expect(await kv.read(1, { op: 'scan', prefix: 'p', limit: 1 })).to.deep.equal({ items: [{ key: 'p1', value: 'a' }] });
  });
});
