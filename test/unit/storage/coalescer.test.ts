import { expect } from 'chai';
import { LogStore, StorageError, WriteCoalescer, type BatchWriter, type GroupWrite } from '../../../daemon/storage/index.js';
import { TempDirs, entries, expectRejects } from './helpers.js';

describe('storage: WriteCoalescer', function () {
  const tmp = new TempDirs();
  let store: LogStore;
  /** The real store, with each batch it receives recorded (sizes in GroupWrite records). */
  let calls: number[];
  let writer: BatchWriter;

  beforeEach(async () => {
    store = await LogStore.open({ dir: await tmp.make(), nodeId: 1, clusterId: 'c' });
    calls = [];
    writer = {
      write: (b: GroupWrite[]) => {
        calls.push(b.length);
        return store.write(b);
      },
    };
  });

  afterEach(async () => {
    await store.close().catch(() => undefined);
    await tmp.cleanup();
  });

  it('merges submissions made in one turn into one batch', async () => {
    const c = new WriteCoalescer(writer);
    const ps = [];
    for (let g = 0; g < 50; g++) ps.push(c.submit([{ group: g, entries: entries(g, 1, 10, 1) }]));
    await Promise.all(ps);
    expect(calls).to.deep.equal([50]);
    expect(store.stats.batches).to.equal(1);
    expect(await store.listGroups()).to.have.length(50);
  });

  it('queues submissions while a batch is in flight and sends them together next', async () => {
    const c = new WriteCoalescer(writer);
    const first = c.submit([{ group: 0, entries: entries(0, 1, 1, 1) }]);
    await Promise.resolve(); // the first batch is now handed to RocksDB and cannot finish before I/O
    expect(calls).to.deep.equal([1]);
    const rest = [];
    for (let g = 1; g <= 20; g++) rest.push(c.submit([{ group: g, entries: entries(g, 1, 2, 1) }, { group: g, hardState: { term: 1, vote: 1, commit: 1 } }]));
    await Promise.all([first, ...rest]);
    expect(calls).to.deep.equal([1, 40]);
    await c.idle();
    for (let g = 0; g <= 20; g++) expect((await store.loadGroup(g)).entries.length).to.be.greaterThan(0);
  });

  it('respects the batch size bound', async () => {
    const c = new WriteCoalescer(writer, { maxWritesPerBatch: 10 });
    const ps = [];
    for (let g = 0; g < 25; g++) ps.push(c.submit([{ group: g, entries: entries(g, 1, 1, 1) }]));
    await Promise.all(ps);
    expect(calls).to.deep.equal([10, 10, 5]);
  });

  it('keeps submission order: a later truncating append wins over an earlier one', async () => {
    const c = new WriteCoalescer(writer);
    const ps = [
      c.submit([{ group: 1, entries: entries(1, 1, 5, 1) }]),
      c.submit([{ group: 1, entries: entries(1, 6, 8, 1) }]),
      c.submit([{ group: 1, entries: entries(1, 4, 5, 2), hardState: { term: 2, vote: 2, commit: 3 } }]),
    ];
    await Promise.resolve();
    // Submitted while the first batch is in flight: must land after it.
    ps.push(c.submit([{ group: 1, entries: entries(1, 6, 6, 2) }]));
    await Promise.all(ps);
    const got = await store.loadGroup(1);
    expect(got.entries).to.deep.equal([...entries(1, 1, 3, 1), ...entries(1, 4, 6, 2)]);
    expect(got.hardState).to.deep.equal({ term: 2, vote: 2, commit: 3 });
  });

  it('propagates a failed batch to every caller in it', async () => {
    const c = new WriteCoalescer(writer);
    await store.close();
    const errs = await Promise.all(Array.from({ length: 5 }, (_, g) => expectRejects(c.submit([{ group: g, entries: entries(g, 1, 1, 1) }]))));
    expect(calls).to.deep.equal([5]);
    for (const e of errs) expect(e).to.be.instanceOf(StorageError).with.property('code', 'CLOSED');
  });

  it('fails only the submission that broke the rules when a merged batch is INVALID', async () => {
    const c = new WriteCoalescer(writer);
    const good1 = c.submit([{ group: 1, entries: entries(1, 1, 3, 1) }]);
    const bad = expectRejects(c.submit([{ group: 2, entries: entries(2, 5, 6, 1) }])); // gap: group 2 is empty
    const good2 = c.submit([{ group: 3, entries: entries(3, 1, 1, 1) }]);
    await good1;
    await good2;
    expect(await bad).to.be.instanceOf(StorageError).with.property('code', 'INVALID');
    expect(await store.listGroups()).to.deep.equal([1, 3]);
    expect(calls).to.deep.equal([3, 1, 1, 1]);
  });
});
