import { expect } from 'chai';
import { rm } from 'node:fs/promises';
import { INCARNATION_META, LogStore, PeerIncarnations, peerIncarnationKey } from '../../../daemon/storage/index.js';
import { TempDirs } from './helpers.js';

describe('storage: incarnations (disk-replacement detection)', function () {
  const tmp = new TempDirs();
  const open: LogStore[] = [];
  const openStore = async (dir: string): Promise<LogStore> => {
    const s = await LogStore.open({ dir, nodeId: 3, clusterId: 'c' });
    open.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close().catch(() => undefined)));
    await tmp.cleanup();
  });

  it('a data directory keeps its incarnation across reopen; a wiped one gets a new one', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    const first = s.incarnation;
    expect(first).to.match(/^[0-9a-f]{16}$/);
    expect(new TextDecoder().decode(await s.getMeta(INCARNATION_META))).to.equal(first);
    await s.close();
    s = await openStore(dir);
    expect(s.incarnation).to.equal(first);
    await s.close();
    await rm(dir, { recursive: true, force: true });
    s = await openStore(dir);
    expect(s.incarnation).to.not.equal(first);
  });

  it('records the first incarnation seen per peer, durably, and refuses another one', async () => {
    const dir = await tmp.make();
    let s = await openStore(dir);
    let book = new PeerIncarnations(s);
    // A Hello and a stream arriving together for a first sighting agree on one record.
    expect(await Promise.all([book.admit(1, 'aaaa'), book.admit(1, 'aaaa')])).to.deep.equal([undefined, undefined]);
    expect(await book.admit(2, 'bbbb')).to.equal(undefined);
    expect(await book.admit(1, 'aaaa')).to.equal(undefined);
    expect(await book.admit(1, 'cccc')).to.equal('aaaa');
    await s.close();

    s = await openStore(dir);
    book = new PeerIncarnations(s);
    expect(await book.admit(1, 'cccc')).to.equal('aaaa');
    expect(await book.admit(2, 'bbbb')).to.equal(undefined);
    expect(new TextDecoder().decode(await s.getMeta(peerIncarnationKey(1)))).to.equal('aaaa');
  });

  it('a failed write is not remembered: the next sighting records again', async () => {
    let fail = true;
    const meta = new Map<string, Uint8Array>();
    const book = new PeerIncarnations({
      getMeta: async (k) => meta.get(k),
      putMeta: async (k, v) => {
        if (fail) throw new Error('disk full');
        meta.set(k, v);
      },
    });
    let err: unknown;
    await book.admit(1, 'aaaa').catch((e: unknown) => (err = e));
    expect((err as Error).message).to.equal('disk full');
    fail = false;
    expect(await book.admit(1, 'bbbb')).to.equal(undefined);
    expect(await book.admit(1, 'aaaa')).to.equal('bbbb');
  });
});
