// npm run bench:gateway — RaftHouse's gateway against the engine under it, in one run:
//   1. rows/s of 10,000-row JSONEachRow inserts through the consistent endpoint of a 3-node cluster
//      (3 raftd + 3 rafthouse processes, embedded chdb) vs straight into one embedded engine
//      (benchDirectInserts, the same rows and table);
//   2. p50/p99 of a point query through the consistent endpoint vs the local endpoint of one node.
// The machine is shared and noisy, so the sides are measured close together in time: inserts alternate
// in rounds of 4 back-to-back inserts per side (replicas settled, off the clock, after each gateway
// round so its replicas' tail never lands in the direct side's time), queries alternate consistent/local.
// Options: --batches N (inserts per side, default 20, rounded up to a multiple of 4), --queries N
//   (default 300), --groups G (default 4),
//   --no-parallel (skip the 4-in-flight run), --cpu-prof DIR (every raftd and rafthouse writes a
//   V8 CPU profile there at shutdown).

import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openEmbedded } from '../../clickhouse-adapter/engine/index.js';
import { BENCH_TABLE_DDL, benchRows } from './clickhouse-direct.js';
import { RafthouseCluster } from '../../test/integration/rafthouse/harness.js';
import { closeConnections, must, post } from './gateway-http.js';
import { cpuSeconds, emitResult, percentileOf } from './stats.js';
import { loadavg } from 'node:os';

const BATCH = 10_000;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    batches: { type: 'string' }, queries: { type: 'string' }, groups: { type: 'string' }, 'cpu-prof': { type: 'string' },
    'no-parallel': { type: 'boolean' },
  } });
  const batches = Number(values.batches ?? 20);
  const queries = Number(values.queries ?? 300);
  const groups = Number(values.groups ?? 4);
  const profDir = values['cpu-prof'];
  const prof = (name: string) => (profDir ? ['--cpu-prof', '--cpu-prof-dir', join(profDir, name)] : []);

  // The direct side: one embedded engine in this process, the same table and rows.
  const dir = mkdtempSync(join(tmpdir(), 'bench-gw-direct-'));
  const engine = await openEmbedded({ dataDir: dir });
  await engine.exec('CREATE DATABASE IF NOT EXISTS bench_direct');
  await engine.exec(`CREATE TABLE bench_direct.bench ${BENCH_TABLE_DDL}`);

  process.stdout.write(`starting a 3-node RaftHouse (${groups} groups)...\n`);
  const cluster = await RafthouseCluster.start({ groups, nodeArgs: prof('rafthouse'), raftNodeArgs: prof('raftd') });
  try {
    const n1 = cluster.nodes[0]!;
    await must(post(n1.consistentUrl, {}, `CREATE TABLE bench ${BENCH_TABLE_DDL}`));
    // One warm-up insert each (parser cache, sessions, first part of the table).
    await engine.insert('INSERT INTO bench_direct.bench FORMAT JSONEachRow', benchRows(10_000_000, BATCH));
    await must(post(n1.consistentUrl, { query: 'INSERT INTO bench FORMAT JSONEachRow' }, benchRows(10_000_000, BATCH)));
    // The machine is shared and noisy, so the two sides alternate, in rounds of ROUND back-to-back
    // inserts each (direct first in even rounds, gateway first in odd ones). A gateway insert is
    // answered once the leader's replica applied it; the two other replicas may still be inserting.
    // That tail must not land in the direct side's time (nor in the next gateway round's, which would
    // charge it twice): after a gateway round, off the clock, every replica's local endpoint is
    // polled until it holds every row. Within a round, inserts follow each other at once, so the
    // replicas' work overlaps as it would in a steady stream. Payloads are built off the clock.
    const ROUND = 4;
    const rounds = Math.max(1, Math.ceil(batches / ROUND));
    process.stdout.write(`inserts: ${rounds} rounds of ${ROUND} back-to-back ${BATCH}-row inserts straight into an engine and ${ROUND} through the consistent endpoint...\n`);
    const per = { direct: [] as number[], gateway: [] as number[] };
    // CPU per insert, to tell a CPU ceiling from overhead: the direct side's is this process's
    // (chdb runs in it, its threads included); the gateway side's is every raftd's and every
    // rafthouse's (gateway + replica), over each round until all replicas settled.
    const cpu = { direct: 0, raftd: 0, rafthouse: 0 };
    const pidsCpu = (procs: Array<{ proc?: { pid?: number } | undefined }>) => procs.reduce((a, p) => a + cpuSeconds(p.proc?.pid), 0);
    const raftdCpu = () => pidsCpu(cluster.raft.nodes);
    const rafthouseCpu = () => pidsCpu(cluster.nodes.map((x) => x.proc));
    const perRound = { direct: [] as number[], gateway: [] as number[] };
    let gatewayRows = BATCH; // the warm-up insert
    const settled = async (): Promise<void> => {
      const deadline = Date.now() + 120_000;
      for (const n of cluster.nodes) {
        while (Number(await must(post(n.localUrl, {}, 'SELECT count() FROM bench'))) !== gatewayRows) {
          if (Date.now() > deadline) throw new Error(`replica ${n.localUrl} did not reach ${gatewayRows} rows in 120 s`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    for (let round = 0; round < rounds; round++) {
      const payloads = Array.from({ length: ROUND }, (_, i) => benchRows((round * ROUND + i) * BATCH, BATCH));
      const sides: Array<'direct' | 'gateway'> = round % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
      for (const side of sides) {
        let roundMs = 0;
        const own0 = process.cpuUsage();
        const raftd0 = raftdCpu();
        const rafthouse0 = rafthouseCpu();
        for (const payload of payloads) {
          const s = performance.now();
          if (side === 'direct') await engine.insert('INSERT INTO bench_direct.bench FORMAT JSONEachRow', payload);
          else await must(post(n1.consistentUrl, { query: 'INSERT INTO bench FORMAT JSONEachRow' }, payload));
          const ms = performance.now() - s;
          per[side].push(ms);
          roundMs += ms;
        }
        perRound[side].push(roundMs);
        if (side === 'gateway') {
          gatewayRows += ROUND * BATCH;
          await settled();
          cpu.raftd += raftdCpu() - raftd0;
          cpu.rafthouse += rafthouseCpu() - rafthouse0;
        } else {
          const own = process.cpuUsage(own0);
          cpu.direct += (own.user + own.system) / 1e6;
        }
      }
    }
    const inserted = rounds * ROUND;
    const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
    const rate = (ms: number) => BATCH / (ms / 1000);
    const directOverall = (inserted * BATCH) / (sum(per.direct) / 1000);
    const gwOverall = (inserted * BATCH) / (sum(per.gateway) / 1000);
    const directMedian = rate(percentileOf(per.direct, 50));
    const gwMedian = rate(percentileOf(per.gateway, 50));
    // Per round ratio (gateway / direct of the same round), its median: the least noise-prone figure.
    const roundRatio = percentileOf(perRound.gateway.map((g, i) => perRound.direct[i]! / g), 50);
    const cpuMs = (seconds: number) => (seconds * 1000) / inserted;
    const clusterCpuMs = cpuMs(cpu.raftd + cpu.rafthouse);
    // With every core busy, the cluster needs at least its CPU per insert spread over the cores.
    const cores = availableParallelism();
    const ceiling = (percentileOf(per.direct, 50) / (clusterCpuMs / cores)) * 100;

    let gwParallel: number | undefined;
    if (!values['no-parallel']) {
      // The same inserts 4 at a time, spread over the 3 nodes' consistent endpoints (raftd batches entries).
      process.stdout.write(`gateway: ${inserted} x ${BATCH}-row inserts, 4 in flight over the 3 nodes...\n`);
      const t1 = performance.now();
      let next = 0;
      await Promise.all([0, 1, 2, 3].map(async (w) => {
        for (let b = next++; b < inserted; b = next++) {
          await must(post(cluster.nodes[(w + b) % 3]!.consistentUrl, { query: 'INSERT INTO bench FORMAT JSONEachRow' }, benchRows((inserted + b) * BATCH, BATCH)));
        }
      }));
      gwParallel = (inserted * BATCH) / ((performance.now() - t1) / 1000);
    }
    const count = await must(post(n1.consistentUrl, {}, 'SELECT count() FROM bench'));
    const expected = (gwParallel === undefined ? 1 : 2) * inserted * BATCH + BATCH;
    if (Number(count) !== expected) throw new Error(`expected ${expected} rows, found ${count}`);

    process.stdout.write(`point query: ${queries} x consistent and local on node 1, alternating...\n`);
    const sql = 'SELECT k, v FROM bench WHERE id = {id:UInt64}';
    // Warm both paths (parser cache, sessions, views).
    for (let i = 0; i < 20; i++) {
      await must(post(n1.consistentUrl, { param_id: String(i) }, sql));
      await must(post(n1.localUrl, { param_id: String(i) }, sql));
    }
    const lat = { consistent: [] as number[], local: [] as number[] };
    for (let i = 0; i < queries; i++) {
      const id = String((i * 7919) % (inserted * BATCH));
      const order: Array<'consistent' | 'local'> = i % 2 === 0 ? ['consistent', 'local'] : ['local', 'consistent'];
      for (const which of order) {
        const s = performance.now();
        await must(post(which === 'consistent' ? n1.consistentUrl : n1.localUrl, { param_id: id }, sql));
        lat[which].push(performance.now() - s);
      }
    }
    const c50 = percentileOf(lat.consistent, 50), c99 = percentileOf(lat.consistent, 99), l50 = percentileOf(lat.local, 50), l99 = percentileOf(lat.local, 99);
    // Median of the per-pair differences (the two queries of a pair ran back to back).
    const d50 = percentileOf(lat.consistent.map((c, i) => c - lat.local[i]!), 50);
    // The Raft path: what the cluster spends beyond the three replicas' own ClickHouse inserts, each
    // taken as one direct insert (the replicas run the same INSERT into the same kind of engine).
    const raftPathCpuMs = clusterCpuMs - 3 * cpuMs(cpu.direct);
    emitResult('gateway', {
      groups, directCpuMs: cpuMs(cpu.direct), raftdCpuMs: cpuMs(cpu.raftd), rafthouseCpuMs: cpuMs(cpu.rafthouse), clusterCpuMs, raftPathCpuMs,
      directRowsPerSec: directOverall, gatewayRowsPerSec: gwOverall, gatewayVsDirect: gwOverall / directOverall, gatewayVsDirectRound: roundRatio,
      consistentP50Ms: c50, localP50Ms: l50, consistentMinusLocalP50Ms: d50, loadavg: loadavg()[0]!,
    });
    const f = (x: number) => Math.round(x).toLocaleString('en-US');
    const r = (a: number, b: number) => `${(a / b * 100).toFixed(0)}%`;
    process.stdout.write(`
| ${BATCH}-row JSONEachRow inserts (${rounds} alternating rounds of ${ROUND} back-to-back, replicas settled after each gateway round) | rows/s (overall) | rows/s (median insert) |
|---|---|---|
| straight into one embedded engine | ${f(directOverall)} | ${f(directMedian)} |
| consistent endpoint, 3-node cluster | ${f(gwOverall)} | ${f(gwMedian)} |
| ratio (gateway / direct) | ${r(gwOverall, directOverall)} | ${r(gwMedian, directMedian)} (median per-round ratio ${(roundRatio * 100).toFixed(0)}%) |
${gwParallel === undefined ? '' : `| consistent endpoints, 4 inserts in flight over 3 nodes | ${f(gwParallel)} (${r(gwParallel, directOverall)} of direct) | |\n`}
| CPU per ${BATCH}-row insert (process CPU time, same rounds) | ms |
|---|---|
| straight into one embedded engine (chdb's threads included) | ${cpuMs(cpu.direct).toFixed(1)} |
| 3-node cluster: the 3 raftd processes | ${cpuMs(cpu.raftd).toFixed(1)} |
| 3-node cluster: the 3 rafthouse processes (gateway + replica each) | ${cpuMs(cpu.rafthouse).toFixed(1)} |
| 3-node cluster, total | ${clusterCpuMs.toFixed(1)} (${(clusterCpuMs / cpuMs(cpu.direct)).toFixed(1)}x direct) |
| the Raft path: cluster total - 3 x direct (the replicas' own ClickHouse inserts) | ${raftPathCpuMs.toFixed(1)} (${(raftPathCpuMs / cpuMs(cpu.direct)).toFixed(2)}x direct; goal <= 0.5x) |
| ceiling on ${cores} cores: direct median insert time / (cluster CPU per insert / cores) | ${ceiling.toFixed(0)}% of direct |

| point query (same node, ${queries} alternating pairs) | p50 ms | p99 ms |
|---|---|---|
| local endpoint | ${l50.toFixed(2)} | ${l99.toFixed(2)} |
| consistent endpoint (barrier + read) | ${c50.toFixed(2)} | ${c99.toFixed(2)} |
| consistent - local | ${(c50 - l50).toFixed(2)} (median pair difference ${d50.toFixed(2)}) | ${(c99 - l99).toFixed(2)} |
`);
  } finally {
    closeConnections();
    await cluster.destroy(profDir !== undefined);
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:gateway: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
