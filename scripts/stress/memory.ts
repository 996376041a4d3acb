// npm run stress:memory — large RaftHouse inserts through the gateway of a 3-node cluster, watching
// every raftd's memory: a group's log is held in memory between snapshots, so with entries of 0.6 MB
// (10,000 rows) the byte bounds (--snapshot-bytes, --snapshot-catchup-bytes) must keep it flat, and
// nothing else may keep applied entries alive. Prints RSS, V8 heap and array buffers (entry data)
// of each raftd and rafthouse process as it goes; exits 1 if a raftd's array buffers end above
// twice the two byte bounds plus 32 MiB of slack (requests in flight, garbage not collected yet).
// Options: --inserts N (default 150), --rows R (rows per insert, default 10000),
//   --snapshot-bytes B (default 16 MiB), --catchup-bytes B (default 4 MiB).

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RafthouseCluster } from '../../test/integration/rafthouse/harness.js';
import { BENCH_TABLE_DDL, benchRows } from '../bench/clickhouse-direct.js';
import { closeConnections, must, post } from '../bench/gateway-http.js';

const MiB = 1024 * 1024;

function rssMiB(pid: number | undefined): number {
  if (!pid) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { inserts: { type: 'string' }, rows: { type: 'string' }, 'snapshot-bytes': { type: 'string' }, 'catchup-bytes': { type: 'string' } } });
  const inserts = Number(values.inserts ?? 150);
  const rows = Number(values.rows ?? 10_000);
  const snapshotBytes = Number(values['snapshot-bytes'] ?? 16 * MiB);
  const catchupBytes = Number(values['catchup-bytes'] ?? 4 * MiB);
  for (const [k, v] of Object.entries({ inserts, rows, snapshotBytes, catchupBytes })) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${k}: a positive integer, please`);
  }
  const bound = (2 * (snapshotBytes + catchupBytes)) / MiB + 32;
  const entryMiB = benchRows(0, rows).length / MiB;
  console.log(`stress:memory — ${inserts} inserts of ${rows} rows (${entryMiB.toFixed(2)} MiB each) into one group; raftd --snapshot-bytes ${snapshotBytes} --snapshot-catchup-bytes ${catchupBytes}; bound on each raftd's array buffers at the end: ${bound.toFixed(0)} MiB`);
  const cluster = await RafthouseCluster.start({ groups: 1, raftArgs: ['--snapshot-bytes', String(snapshotBytes), '--snapshot-catchup-bytes', String(catchupBytes)] });
  let worst = 0;
  try {
    const n1 = cluster.nodes[0]!;
    await must(post(n1.consistentUrl, {}, `CREATE TABLE stress ${BENCH_TABLE_DDL}`));
    const report = async (done: number): Promise<void> => {
      const raftd = await Promise.all(cluster.raft.nodes.map(async (n) => {
        const st = (await n.get('/status')).body as { groups: Array<{ group: number; firstIndex: number; lastIndex: number }> };
        const g = st.groups.find((x) => x.group === 1)!;
        return { rss: rssMiB(n.proc?.pid), heap: (await n.metric('raftd_memory_heap_used_bytes')) / MiB, buffers: (await n.metric('raftd_memory_array_buffers_bytes')) / MiB, log: `${g.firstIndex}..${g.lastIndex}` };
      }));
      worst = Math.max(...raftd.map((r) => r.buffers));
      const f = (x: number) => x.toFixed(0).padStart(4);
      console.log(`${String(done).padStart(5)} inserts (${(done * entryMiB).toFixed(0).padStart(4)} MiB): raftd RSS/heap/buffers MiB ${raftd.map((r) => `${f(r.rss)}/${f(r.heap)}/${f(r.buffers)} log ${r.log}`).join(' | ')} — rafthouse RSS MiB ${cluster.nodes.map((x) => f(rssMiB(x.proc.proc?.pid))).join(' ')}`);
    };
    await report(0);
    for (let i = 0; i < inserts; i++) {
      await must(post(n1.consistentUrl, { query: 'INSERT INTO stress FORMAT JSONEachRow' }, benchRows(i * rows, rows)));
      if ((i + 1) % 25 === 0 || i + 1 === inserts) await report(i + 1);
    }
    const count = Number(await must(post(n1.consistentUrl, {}, 'SELECT count() FROM stress')));
    if (count !== inserts * rows) throw new Error(`expected ${inserts * rows} rows, found ${count}`);
  } finally {
    closeConnections();
    await cluster.destroy();
  }
  if (worst > bound) {
    console.log(`FAIL: a raftd holds ${worst.toFixed(0)} MiB of array buffers, above ${bound.toFixed(0)} MiB`);
    process.exit(1);
  }
  console.log(`ok: at most ${worst.toFixed(0)} MiB of array buffers in any raftd at the end (bound ${bound.toFixed(0)} MiB)`);
}

main().catch((e: unknown) => {
  process.stderr.write(`stress:memory: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(2);
});
