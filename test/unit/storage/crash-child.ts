// Child of crash.test.ts (not a test itself): appends to several groups with fsync on, one batch
// per loop, and prints "ack <index>" only after the batch's write() resolved. The parent kills
// it with SIGKILL at a random moment. On start it resumes from what the store holds.
// Every group gets the same indexes in every batch, so one number per ack describes all of them.
// Every 40 batches each group also takes a snapshot 20 entries back (as the host does after the
// application saved its state), so crashes also hit compaction and the background cleaner.
import { EntryType, type Entry } from '../../../daemon/raft/types.js';
import { LogStore, type GroupWrite } from '../../../daemon/storage/index.js';

const dir = process.argv[2];
const groups = Number(process.argv[3] ?? '8');
if (!dir) throw new Error('usage: crash-child DIR [GROUPS]');

function data(group: number, index: number): Uint8Array {
  const b = new Uint8Array(64);
  for (let i = 0; i < 64; i++) b[i] = (group * 131 + index * 17 + i) & 0xff;
  return b;
}

const store = await LogStore.open({ dir, nodeId: 1, clusterId: 'crash' });
const g0 = await store.loadGroup(0);
let next = (g0.entries.length > 0 ? g0.entries[g0.entries.length - 1]!.index : (g0.snapshot?.index ?? 0)) + 1;
process.stdout.write(`start ${next - 1}\n`);
for (let round = 1; ; round++) {
  const per = 1 + (next % 5);
  const writes: GroupWrite[] = [];
  for (let g = 0; g < groups; g++) {
    const es: Entry[] = [];
    for (let i = next; i < next + per; i++) es.push({ index: i, term: 1, type: EntryType.Normal, data: data(g, i) });
    writes.push({ group: g, entries: es, hardState: { term: 1, vote: 1, commit: next + per - 1 } });
    if (round % 40 === 0 && next > 21) writes.push({ group: g, snapshot: { index: next - 20, term: 1, confState: { voters: [1], learners: [] } } });
  }
  await store.write(writes);
  next += per;
  process.stdout.write(`ack ${next - 1}\n`);
}
