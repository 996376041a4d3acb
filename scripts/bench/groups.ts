// npm run bench:groups — is a group cheap in RaftHouse too? A 3-node RaftHouse (3 raftd + 3
// rafthouse processes, embedded chdb) is started with G groups, for each G of --groups (default
// 16,256), and measured the same way each time:
//   - start to first sharded CREATE accepted: from the first process started to a
//     `CREATE TABLE ... SETTINGS rafthouse_shard_key = 'id'` answered 200 (retried until then);
//   - a sharded 10,000-row JSONEachRow insert through the consistent endpoint (median of --inserts);
//   - a consistent `SELECT count(), sum(v)` of the sharded table on another node (median of --reads);
//   - idle CPU of the whole cluster (6 processes, cores) over --idle-seconds after 3 s of quiet.
// Issue 24's goal: at 256 groups, the insert and the read within 1.5x of 16 groups, CREATE within
// 10 s, idle CPU within 1.2x.
//
//   node dist/scripts/bench/groups.js [--groups 16,256] [--inserts 5] [--reads 20] [--idle-seconds 5]

import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { RafthouseCluster } from '../../test/integration/rafthouse/harness.js';
import { BENCH_TABLE_DDL, benchRows } from './clickhouse-direct.js';
import { closeConnections, must, post } from './gateway-http.js';
import { cpuSeconds, emitResult, percentileOf } from './stats.js';

const BATCH = 10_000;
const SHARDED_DDL = `${BENCH_TABLE_DDL} SETTINGS rafthouse_shard_key = 'id'`;

interface Point {
  groups: number;
  createSec: number;
  insertMs: number;
  readMs: number;
  idleCores: number;
  loadavg: number;
}

/** The cluster being measured, torn down on SIGINT/SIGTERM (npm run bench stops an overrunning bench so). */
let current: RafthouseCluster | undefined;
/** A signal came while a cluster was starting: it is torn down as soon as start() returns it. */
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench:groups: ${signal}, stopping the cluster\n`);
    stopping = true;
    if (current) void current.destroy().finally(() => process.exit(130));
  });
}

async function measure(groups: number, inserts: number, reads: number, idleSeconds: number): Promise<Point> {
  const t0 = performance.now();
  const cluster = await RafthouseCluster.start({ groups });
  current = cluster;
  if (stopping) {
    await cluster.destroy();
    process.exit(130);
  }
  process.stdout.write(`  ${groups} groups: every group has a leader after ${((performance.now() - t0) / 1000).toFixed(1)} s (load ${loadavg()[0]!.toFixed(1)})\n`);
  try {
    const n1 = cluster.nodes[0]!;
    const n2 = cluster.nodes[1]!;
    const deadline = Date.now() + 300_000;
    for (;;) {
      const r = await post(n1.consistentUrl, {}, `CREATE TABLE bench ${SHARDED_DDL}`);
      if (r.status === 200) break;
      if (Date.now() > deadline) throw new Error(`sharded CREATE not accepted within 300 s: HTTP ${r.status}: ${r.text.slice(0, 200)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const createSec = (performance.now() - t0) / 1000;
    process.stdout.write(`  ${groups} groups: sharded CREATE accepted ${createSec.toFixed(1)} s after start (load ${loadavg()[0]!.toFixed(1)})\n`);
    emitResult('groups-create', { groups, createSec, loadavg: loadavg()[0]! });
    // One warm-up insert and read, off the clock.
    await must(post(n1.consistentUrl, { query: 'INSERT INTO bench FORMAT JSONEachRow' }, benchRows(1_000_000_000, BATCH)));
    const readSql = 'SELECT count(), sum(v) FROM bench';
    await must(post(n2.consistentUrl, {}, readSql));
    const insertMs: number[] = [];
    for (let i = 0; i < inserts; i++) {
      const payload = benchRows(i * BATCH, BATCH);
      const s = performance.now();
      await must(post(n1.consistentUrl, { query: 'INSERT INTO bench FORMAT JSONEachRow' }, payload));
      insertMs.push(performance.now() - s);
    }
    process.stdout.write(`  ${groups} groups: ${inserts} sharded inserts done, median ${percentileOf(insertMs, 50).toFixed(0)} ms\n`);
    const readMs: number[] = [];
    for (let i = 0; i < reads; i++) {
      const s = performance.now();
      await must(post(n2.consistentUrl, {}, readSql));
      readMs.push(performance.now() - s);
    }
    await new Promise((res) => setTimeout(res, 3000));
    const pids = [...cluster.raft.nodes.map((n) => n.proc?.pid), ...cluster.nodes.map((n) => n.proc.proc?.pid)];
    const cpu = (): number => pids.reduce<number>((a, p) => a + cpuSeconds(p), 0);
    const c0 = cpu();
    const w0 = performance.now();
    await new Promise((res) => setTimeout(res, idleSeconds * 1000));
    const idleCores = (cpu() - c0) / ((performance.now() - w0) / 1000);
    return { groups, createSec, insertMs: percentileOf(insertMs, 50), readMs: percentileOf(readMs, 50), idleCores, loadavg: loadavg()[0]! };
  } finally {
    closeConnections();
    current = undefined;
    await cluster.destroy();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { groups: { type: 'string' }, inserts: { type: 'string' }, reads: { type: 'string' }, 'idle-seconds': { type: 'string' } } });
  const list = (values.groups ?? '16,256').split(',').map(Number);
  const inserts = Number(values.inserts ?? 5);
  const reads = Number(values.reads ?? 20);
  const idleSeconds = Number(values['idle-seconds'] ?? 5);
  const points: Point[] = [];
  for (const g of list) {
    process.stdout.write(`${g} groups: starting a 3-node RaftHouse, sharded CREATE, ${inserts} sharded inserts, ${reads} consistent reads, ${idleSeconds} s idle...\n`);
    const p = await measure(g, inserts, reads, idleSeconds);
    points.push(p);
    emitResult('groups', { ...p });
  }
  const base = points[0]!;
  const x = (a: number, b: number) => (points.length > 1 ? ` (${(a / b).toFixed(2)}x)` : '');
  console.log(`\n| groups | start to sharded CREATE accepted, s | sharded ${BATCH}-row insert, median ms | consistent count()+sum() on another node, median ms | idle cluster CPU, cores | load average |`);
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const p of points) {
    console.log(`| ${p.groups} | ${p.createSec.toFixed(1)} | ${p.insertMs.toFixed(0)}${x(p.insertMs, base.insertMs)} | ${p.readMs.toFixed(1)}${x(p.readMs, base.readMs)} | ${p.idleCores.toFixed(3)}${x(p.idleCores, base.idleCores)} | ${p.loadavg.toFixed(1)} |`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:groups: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
