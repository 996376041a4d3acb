// `npm run bench:storage`: what the RocksDB log store costs with fsync on.
//  1. the plain cost of one fsync here (64 bytes appended to a file, then fdatasync), for scale;
//  2. LogStore.write with batches of G groups x 10 entries of 64 bytes, G = 1, 100, 1000:
//     batches/s (= fsyncs/s) and entries/s;
//     plus the 1000-group case with sync off, to separate CPU cost from fsync cost.
// (The host batches every group's appends of a tick into one write itself: no group-commit layer.)
// Each case runs for a fixed wall time (BENCH_SECONDS, default 1.5 s) in a fresh temp directory.

import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, type Entry } from '../../daemon/raft/types.js';
import { LogStore, type GroupWrite } from '../../daemon/storage/index.js';
import { percentile } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? '1.5');
const ENTRY_BYTES = 64;
const PER_GROUP = 10;
const DATA = new Uint8Array(ENTRY_BYTES).fill(7);

async function fsyncCost(dir: string): Promise<void> {
  const fh = await open(join(dir, 'fsync-probe'), 'a');
  const buf = Buffer.alloc(64, 1);
  const times: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  try {
    while (performance.now() < end) {
      const t0 = performance.now();
      await fh.write(buf);
      await fh.datasync();
      times.push(performance.now() - t0);
    }
  } finally {
    await fh.close();
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`plain write+fdatasync of 64 B:  mean ${mean.toFixed(3)} ms  p50 ${percentile(times, 50).toFixed(3)} ms  p99 ${percentile(times, 99).toFixed(3)} ms  (${times.length} samples)`);
}

function groupWrites(groups: number, next: number[]): GroupWrite[] {
  const out: GroupWrite[] = [];
  for (let g = 0; g < groups; g++) {
    const from = next[g]!;
    const es: Entry[] = [];
    for (let i = 0; i < PER_GROUP; i++) es.push({ index: from + i, term: 1, type: EntryType.Normal, data: DATA });
    next[g] = from + PER_GROUP;
    out.push({ group: g, entries: es, hardState: { term: 1, vote: 1, commit: from + PER_GROUP - 1 } });
  }
  return out;
}

async function batches(root: string, groups: number, sync = true): Promise<void> {
  const store = await LogStore.open({ dir: join(root, `b${groups}${sync ? '' : 'n'}`), nodeId: 1, clusterId: 'bench', sync });
  const next = new Array<number>(groups).fill(1);
  const lat: number[] = [];
  let n = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  try {
    while (performance.now() < end) {
      const batch = groupWrites(groups, next); // built outside the timed write, as the host does
      const t = performance.now();
      await store.write(batch);
      lat.push(performance.now() - t);
      n++;
    }
  } finally {
    await store.close();
  }
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const entries = n * groups * PER_GROUP;
  console.log(
    `write(${String(groups).padStart(4)} groups x ${PER_GROUP} entries${sync ? '' : ', NO sync'}): ${(n / secs).toFixed(0).padStart(6)} batches/s  ${(entries / secs).toFixed(0).padStart(8)} entries/s  ` +
      `write p50 ${percentile(lat, 50).toFixed(2)} ms  p99 ${percentile(lat, 99).toFixed(2)} ms`,
  );
}

const root = await mkdtemp(join(tmpdir(), 'raftd-bench-storage-'));
try {
  console.log(`log store benchmark, fsync on, ${ENTRY_BYTES}-byte entries, ${SECONDS}s per case, dir ${root}`);
  await fsyncCost(root);
  for (const g of [1, 100, 1000]) await batches(root, g);
  await batches(root, 1000, false);
} finally {
  await rm(root, { recursive: true, force: true });
}
