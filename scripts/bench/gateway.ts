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
//   V8 CPU profile there at shutdown),
//   --nodes N (default 3), --replication R (raftd --replication-factor; default: every node),
//   --compare-nodes A,B (two clusters, A then B nodes, same R: CPU per insert per node side by side;
//   issue 21 expects about half at 6 nodes R 3 against 3 nodes), --quick (4 inserts, 20 queries, no
//   parallel run: a smoke run on a shared machine).
// R below N needs RaftHouse over placed groups (clickhouse-adapter/placed/); without it the script
// refuses such a configuration before starting anything.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openEmbedded } from '../../clickhouse-adapter/engine/index.js';
import { BENCH_TABLE_DDL, benchRows } from './clickhouse-direct.js';
import { RafthouseCluster, type RafthouseClusterOptions } from '../../test/integration/rafthouse/harness.js';
import { closeConnections, must, post } from './gateway-http.js';
import { cpuSeconds, emitResult, percentileOf } from './stats.js';
import { loadavg } from 'node:os';

const BATCH = 10_000;

/** RaftHouse over placed groups (issue 21, deliverable 3) is built in: R below N can be measured. */
function placedSupported(): boolean {
  return existsSync(fileURLToPath(new URL('../../clickhouse-adapter/placed/server.js', import.meta.url)));
}

interface Config {
  nodes: number;
  /** Replicas per group (every node when it equals nodes). */
  replication: number;
}

interface Measured {
  config: Config;
  inserts: number;
  /** Process CPU ms per insert: all raftd, all rafthouse. */
  raftdCpuMs: number;
  rafthouseCpuMs: number;
}

function intOption(name: string, v: string | undefined, def: number, lo: number, hi: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < lo || n > hi) {
    process.stderr.write(`bench:gateway: --${name} must be an integer in ${lo}..${hi}, not ${v}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    batches: { type: 'string' }, queries: { type: 'string' }, groups: { type: 'string' }, 'cpu-prof': { type: 'string' },
    'no-parallel': { type: 'boolean' }, nodes: { type: 'string' }, replication: { type: 'string' }, 'compare-nodes': { type: 'string' },
    quick: { type: 'boolean' },
  } });
  const quick = values.quick === true;
  const batches = intOption('batches', values.batches, quick ? 4 : 20, 1, 100_000);
  const queries = intOption('queries', values.queries, quick ? 20 : 300, 1, 1_000_000);
  const groups = intOption('groups', values.groups, 4, 1, 4096);
  const nodeCounts = values['compare-nodes'] !== undefined
    ? values['compare-nodes'].split(',').map((x) => intOption('compare-nodes', x, 3, 1, 32))
    : [intOption('nodes', values.nodes, 3, 1, 32)];
  if (nodeCounts.length < 1 || nodeCounts.length > 2) {
    process.stderr.write('bench:gateway: --compare-nodes takes two node counts, e.g. 3,6\n');
    process.exit(2);
  }
  const replication = values.replication === undefined ? undefined : intOption('replication', values.replication, 3, 1, 32);
  const configs: Config[] = nodeCounts.map((nodes) => ({ nodes, replication: Math.min(replication ?? nodes, nodes) }));
  for (const c of configs) {
    if (c.replication < c.nodes && !placedSupported()) {
      process.stderr.write(
        `bench:gateway: ${c.nodes} nodes with replication ${c.replication} needs RaftHouse over placed groups (clickhouse-adapter/placed/, ` +
          `issue 21 deliverable 3), which this build does not have; run with --replication equal to --nodes, or on a build that has it\n`,
      );
      process.exit(2);
    }
  }
  const results: Measured[] = [];
  for (const c of configs) results.push(await measure(c, { batches, queries, groups, noParallel: values['no-parallel'] === true || quick, profDir: values['cpu-prof'] }));
  if (results.length === 2) {
    const [a, b] = results as [Measured, Measured];
    const perNode = (m: Measured) => (m.raftdCpuMs + m.rafthouseCpuMs) / m.config.nodes;
    const col = (m: Measured) => `${m.config.nodes} nodes, R ${m.config.replication}`;
    emitResult('gateway-compare', {
      aNodes: a.config.nodes, bNodes: b.config.nodes, aReplication: a.config.replication, bReplication: b.config.replication,
      aCpuMsPerInsertPerNode: perNode(a), bCpuMsPerInsertPerNode: perNode(b), ratio: perNode(b) / perNode(a),
    });
    process.stdout.write(`
| CPU per ${BATCH}-row insert, per node (process CPU ms, raftd + rafthouse, averaged over the nodes) | ${col(a)} | ${col(b)} |
|---|---|---|
| raftd, per node | ${(a.raftdCpuMs / a.config.nodes).toFixed(1)} | ${(b.raftdCpuMs / b.config.nodes).toFixed(1)} |
| rafthouse (gateway + replica), per node | ${(a.rafthouseCpuMs / a.config.nodes).toFixed(1)} | ${(b.rafthouseCpuMs / b.config.nodes).toFixed(1)} |
| total, per node | ${perNode(a).toFixed(1)} | ${perNode(b).toFixed(1)} (${((perNode(b) / perNode(a)) * 100).toFixed(0)}% of ${a.config.nodes} nodes'; replicas per node alone would give ${Math.round(((b.config.replication / b.config.nodes) / (a.config.replication / a.config.nodes)) * 100)}%) |
| inserts measured | ${a.inserts} | ${b.inserts} |
`);
  }
}

async function measure(config: Config, o: { batches: number; queries: number; groups: number; noParallel: boolean; profDir: string | undefined }): Promise<Measured> {
  const { batches, queries, groups, profDir } = o;
  const prof = (name: string) => (profDir ? ['--cpu-prof', '--cpu-prof-dir', join(profDir, name)] : []);
  const placed = config.replication < config.nodes;
  // The direct side: one embedded engine in this process, the same table and rows.
  const dir = mkdtempSync(join(tmpdir(), 'bench-gw-direct-'));
  const engine = await openEmbedded({ dataDir: dir });
  await engine.exec('CREATE DATABASE IF NOT EXISTS bench_direct');
  await engine.exec(`CREATE TABLE bench_direct.bench ${BENCH_TABLE_DDL}`);

  process.stdout.write(`starting a ${config.nodes}-node RaftHouse (${groups} groups, replication ${config.replication})...\n`);
  const clusterOpts: RafthouseClusterOptions = {
    nodes: config.nodes, groups, nodeArgs: prof('rafthouse'), raftNodeArgs: prof('raftd'),
    // Not placed: every group on every node, said explicitly (raftd's default is 3 replicas).
    raftArgs: ['--replication-factor', placed ? String(config.replication) : '0'],
  };
  // The placed harness's switch (clickhouse-adapter/placed/ present: checked in main).
  if (placed) Object.assign(clusterOpts, { placed: true });
  const cluster = await RafthouseCluster.start(clusterOpts);
  const nodeCount = config.nodes;
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
      if (placed) {
        // Each node's local endpoint counts its own groups' rows: every row is on R nodes.
        for (;;) {
          let total = 0;
          // A node holding none of the table's groups has no such table (UNKNOWN_TABLE): 0 rows.
          for (const n of cluster.nodes) total += await must(post(n.localUrl, {}, 'SELECT count() FROM bench')).then(Number, (e: unknown) => {
            if (e instanceof Error && e.message.includes('(UNKNOWN_TABLE)')) return 0;
            throw e;
          });
          if (total === gatewayRows * config.replication) return;
          if (Date.now() > deadline) throw new Error(`the replicas hold ${total} rows, not ${gatewayRows} x ${config.replication}, after 120 s`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
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
    if (!o.noParallel) {
      // The same inserts 4 at a time, spread over the nodes' consistent endpoints (raftd batches entries).
      process.stdout.write(`gateway: ${inserted} x ${BATCH}-row inserts, 4 in flight over the ${nodeCount} nodes...\n`);
      const t1 = performance.now();
      let next = 0;
      await Promise.all([0, 1, 2, 3].map(async (w) => {
        for (let b = next++; b < inserted; b = next++) {
          await must(post(cluster.nodes[(w + b) % nodeCount]!.consistentUrl, { query: 'INSERT INTO bench FORMAT JSONEachRow' }, benchRows((inserted + b) * BATCH, BATCH)));
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
    const raftPathCpuMs = clusterCpuMs - config.replication * cpuMs(cpu.direct);
    emitResult('gateway', {
      groups, nodes: config.nodes, replication: config.replication, directCpuMs: cpuMs(cpu.direct), raftdCpuMs: cpuMs(cpu.raftd), rafthouseCpuMs: cpuMs(cpu.rafthouse), clusterCpuMs, raftPathCpuMs,
      directRowsPerSec: directOverall, gatewayRowsPerSec: gwOverall, gatewayVsDirect: gwOverall / directOverall, gatewayVsDirectRound: roundRatio,
      consistentP50Ms: c50, localP50Ms: l50, consistentMinusLocalP50Ms: d50, loadavg: loadavg()[0]!,
    });
    const f = (x: number) => Math.round(x).toLocaleString('en-US');
    const r = (a: number, b: number) => `${(a / b * 100).toFixed(0)}%`;
    process.stdout.write(`
| ${BATCH}-row JSONEachRow inserts (${rounds} alternating rounds of ${ROUND} back-to-back, replicas settled after each gateway round) | rows/s (overall) | rows/s (median insert) |
|---|---|---|
| straight into one embedded engine | ${f(directOverall)} | ${f(directMedian)} |
| consistent endpoint, ${nodeCount}-node cluster (R ${config.replication}) | ${f(gwOverall)} | ${f(gwMedian)} |
| ratio (gateway / direct) | ${r(gwOverall, directOverall)} | ${r(gwMedian, directMedian)} (median per-round ratio ${(roundRatio * 100).toFixed(0)}%) |
${gwParallel === undefined ? '' : `| consistent endpoints, 4 inserts in flight over ${nodeCount} nodes | ${f(gwParallel)} (${r(gwParallel, directOverall)} of direct) | |\n`}
| CPU per ${BATCH}-row insert (process CPU time, same rounds) | ms |
|---|---|
| straight into one embedded engine (chdb's threads included) | ${cpuMs(cpu.direct).toFixed(1)} |
| ${nodeCount}-node cluster: the ${nodeCount} raftd processes | ${cpuMs(cpu.raftd).toFixed(1)} |
| ${nodeCount}-node cluster: the ${nodeCount} rafthouse processes (gateway + replica each) | ${cpuMs(cpu.rafthouse).toFixed(1)} |
| ${nodeCount}-node cluster, total | ${clusterCpuMs.toFixed(1)} (${(clusterCpuMs / cpuMs(cpu.direct)).toFixed(1)}x direct) |
| the Raft path: cluster total - ${config.replication} x direct (the replicas' own ClickHouse inserts) | ${raftPathCpuMs.toFixed(1)} (${(raftPathCpuMs / cpuMs(cpu.direct)).toFixed(2)}x direct; goal <= 0.5x) |
| ceiling on ${cores} cores: direct median insert time / (cluster CPU per insert / cores) | ${ceiling.toFixed(0)}% of direct |

| point query (same node, ${queries} alternating pairs) | p50 ms | p99 ms |
|---|---|---|
| local endpoint | ${l50.toFixed(2)} | ${l99.toFixed(2)} |
| consistent endpoint (barrier + read) | ${c50.toFixed(2)} | ${c99.toFixed(2)} |
| consistent - local | ${(c50 - l50).toFixed(2)} (median pair difference ${d50.toFixed(2)}) | ${(c99 - l99).toFixed(2)} |
`);
    return { config, inserts: inserted, raftdCpuMs: cpuMs(cpu.raftd), rafthouseCpuMs: cpuMs(cpu.rafthouse) };
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
