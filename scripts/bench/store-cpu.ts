// CPU per entry of LogStore.write alone, in the shape one raftd node sees at 64 groups under
// bench:daemon's load: each write carries --groups groups x --entries entries of 64 bytes plus a hard
// state. Process CPU (every thread: RocksDB's writes run on libuv's pool), building the entries left
// out. For before/after checks of daemon/storage: pass a second build's directory with --dist and
// alternate the two (the machine's load moves the figure more than most changes do).
//
//   node dist/scripts/bench/store-cpu.js [--sync] [--groups 64] [--entries 256] [--writes 200] [--dist DIR]

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Entry } from '../../daemon/raft/types.js';
import type { GroupWrite, LogStore as LogStoreType } from '../../daemon/storage/log-store.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sync: { type: 'boolean' }, groups: { type: 'string' }, entries: { type: 'string' }, writes: { type: 'string' }, dist: { type: 'string' } } });
  const groups = Number(values.groups ?? 64);
  const perGroup = Number(values.entries ?? 256);
  const writes = Number(values.writes ?? 200);
  const mod = values.dist
    ? ((await import(pathToFileURL(resolve(values.dist, 'daemon/storage/index.js')).href)) as { LogStore: typeof LogStoreType })
    : await import('../../daemon/storage/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-cpu-'));
  const store = await mod.LogStore.open({ dir, nodeId: 1, clusterId: 'bench', sync: values.sync === true });
  try {
    const data = Buffer.alloc(64, 'x');
    const next = new Array<number>(groups + 1).fill(1);
    const build = (): GroupWrite[] =>
      Array.from({ length: groups }, (_, i) => {
        const group = i + 1;
        const entries: Entry[] = Array.from({ length: perGroup }, (_, k) => ({ term: 1, index: next[group]! + k, type: 0, data: data.subarray(0) }));
        next[group]! += perGroup;
        return { group, entries, hardState: { term: 1, vote: 1, commit: next[group]! - 1 } };
      });
    for (let i = 0; i < 10; i++) await store.write(build());
    let buildUs = 0;
    const c0 = process.cpuUsage();
    for (let i = 0; i < writes; i++) {
      const b0 = process.cpuUsage();
      const w = build();
      const b = process.cpuUsage(b0);
      buildUs += b.user + b.system;
      await store.write(w);
    }
    const c = process.cpuUsage(c0);
    const us = (c.user + c.system - buildUs) / (writes * groups * perGroup);
    console.log(`LogStore.write, ${groups} groups x ${perGroup} entries of 64 B per write, fsync ${values.sync ? 'on' : 'off'}${values.dist ? `, build ${values.dist}` : ''}: ${us.toFixed(3)} µs CPU/entry (load ${loadavg()[0]!.toFixed(1)})`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
