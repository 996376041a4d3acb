// Child of crash.test.ts (not a test itself): appends to several groups with fsync on, one batch
// per loop, and prints "ack <index>" only after the batch's write() resolved. The parent kills
// it with SIGKILL at a random moment. On start it resumes from what the store holds.
// Every group gets the same indexes in every batch, so one number per ack describes all of them.
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
let next = (await store.loadGroup(0)).entries.length + 1;
process.stdout.write(`start ${next - 1}\n`);
for (;;) {
  const per = 1 + (next % 5);
  const writes: GroupWrite[] = [];
  for (let g = 0; g < groups; g++) {
    const es: Entry[] = [];
    for (let i = next; i < next + per; i++) es.push({ index: i, term: 1, type: EntryType.Normal, data: data(g, i) });
    writes.push({ group: g, entries: es, hardState: { term: 1, vote: 1, commit: next + per - 1 } });
  }
  await store.write(writes);
  next += per;
  process.stdout.write(`ack ${next - 1}\n`);
}
