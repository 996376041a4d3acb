// npm run bench:daemon — 3 real raftd processes on loopback, 64-byte entries, batched clients
// using propose-batch's binary framing (protocol/batch-codec.ts).
// Prints committed entries/s and p50/p99 commit latency for 1, 64 and 1,000 groups, then the
// latency at half the peak load.
//
// Load shape. The peak is measured closed-loop: --clients clients each keep one batch of --batch
// entries in flight, so it shows what raftd sustains when it always has work queued. The
// half-load point is OPEN-loop: batches are submitted on a fixed schedule at half the measured
// peak rate, whether or not earlier ones were answered, and a batch's latency runs from its
// scheduled submission time to the commit acknowledgement (every entry applied). A closed-loop
// half load would instead keep thousands of entries queued and report mostly queueing delay;
// timing from the schedule, not the actual send, keeps a stalled client from hiding latency.
//
// Options: --seconds N (per point), --groups 1,64,1000, --clients N, --batch N,
// --app-url URL (default: the built-in memory app, to measure raftd alone),
// --half-rate N (entries/s of the open-loop point instead of half the measured peak, e.g. 100000
// for the target), --snapshot-interval N (default: raftd's own default, as deployed),
// --profile DIR (raftd runs with --cpu-prof into DIR and is stopped gracefully to write it),
// --warmup S (closed-loop load before the peak is measured, default 2: V8 is still compiling the
// hot path then, on its worker threads, which a longer warm-up leaves out), --node-args "ARGS" (extra node flags for raftd, e.g. "--trace-gc"), --timeline (p50/max of the
// half-load batches per 250 ms window: shows whether the p99 comes from a few stalls),
// --tick-ms N (raftd's Raft tick; default raftd's own default, as deployed — the test cluster's
// 50 ms sends twice the heartbeats: a heartbeat per group and follower every tick).
//
// The half-load point is measured in steady state: after the peak, 2 s idle and 2 s of the same
// open-loop load unmeasured, so the compaction and GC debt of the saturated peak (a ~1 s stall
// right after it, with or without snapshots) is not charged to the half load.

import { LocalCluster } from '../../test/integration/cluster.js';
import { BINARY_BATCH_TYPE, decodeBatchResponse, encodeBatchRequest } from '../../protocol/batch-codec.js';
import { cpuSeconds, emitResult, percentile, threadCpuDelta, threadCpuSeconds } from './stats.js';
import { loadavg } from 'node:os';
import { Rng } from '../../test/sim/rng.js';
import { OPTIONS } from '../../daemon/config.js';

/** raftd's default Raft tick (daemon/config.ts): the bench measures the deployed heartbeat rate. */
const RAFTD_DEFAULT_TICK_MS = Number(OPTIONS.find((o) => o.key === 'tickMs')!.default);

interface Args {
  seconds: number;
  groups: number[];
  clients: number;
  batch: number;
  appUrl: string;
  profileDir: string | undefined;
  snapshotInterval: number | undefined;
  halfRate: number | undefined;
  nodeArgs: string[];
  timeline: boolean;
  warmup: number;
  tickMs: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 8, groups: [1, 64, 1000], clients: 16, batch: 256, appUrl: 'memory:', profileDir: undefined, snapshotInterval: undefined, halfRate: undefined, nodeArgs: [], timeline: false, warmup: 2, tickMs: RAFTD_DEFAULT_TICK_MS };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--seconds': a.seconds = Number(v); i++; break;
      case '--groups': a.groups = v!.split(',').map(Number); i++; break;
      case '--clients': a.clients = Number(v); i++; break;
      case '--batch': a.batch = Number(v); i++; break;
      case '--app-url': a.appUrl = v!; i++; break;
      case '--profile': a.profileDir = v!; i++; break;
      case '--snapshot-interval': a.snapshotInterval = Number(v); i++; break;
      case '--half-rate': a.halfRate = Number(v); i++; break;
      case '--node-args': a.nodeArgs = v!.split(' ').filter(Boolean); i++; break;
      case '--timeline': a.timeline = true; break;
      case '--warmup': a.warmup = Number(v); i++; break;
      case '--tick-ms': a.tickMs = Number(v); i++; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  return a;
}

/** CPU seconds the raftd processes used so far (NaN when /proc cannot tell). */
function raftdCpuSeconds(cluster: LocalCluster): number {
  return cluster.nodes.reduce((s, n) => s + cpuSeconds(n.proc?.pid), 0);
}

/** Sums of some counters over every node's /metrics: storage writes (one fsync each), messages sent, entries committed. */
async function counters(cluster: LocalCluster): Promise<{ writes: number; messages: number }> {
  let writes = 0;
  let messages = 0;
  for (const n of cluster.nodes) {
    const text = await (await fetch(`${n.url}/metrics`, { headers: cluster.clientHeaders() })).text();
    const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    writes += get('raftd_storage_writes_total');
    messages += get('raftd_messages_sent_total');
  }
  return { writes, messages };
}

/** CPU seconds of the raftd processes so far, main thread and other threads apart, summed over the nodes. */
function raftdThreadSeconds(cluster: LocalCluster): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of cluster.nodes) for (const [k, v] of threadCpuSeconds(n.proc?.pid)) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

interface Point {
  entriesPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** raftd CPU time (all 3 processes) per committed entry, microseconds. */
  cpuUsPerEntry: number;
  /** This load generator's own CPU per entry (it shares the machine with raftd). */
  clientUsPerEntry: number;
  /** Storage writes (fsyncs) and Raft messages sent, all nodes, per 1,000 committed entries (peak only). */
  writesPerKEntry?: number;
  messagesPerKEntry?: number;
  /** cpuUsPerEntry split by kind of raftd thread (main = the event loop, where all JavaScript runs). */
  threadUsPerEntry: Map<string, number>;
}

/** Why entries failed, by error code (first message kept): printed under the table. */
const failures = new Map<string, { count: number; message: string }>();

function noteFailure(code: string, message: string, entries: number): void {
  const f = failures.get(code);
  if (f) f.count += entries;
  else failures.set(code, { count: entries, message });
}

/** One batch request to the group's leader: how many entries were applied and how many failed. */
async function submit(cluster: LocalCluster, leaders: Map<number, number>, bodies: Buffer[], group: number): Promise<{ ok: number; failed: number }> {
  const leader = cluster.node(leaders.get(group)!);
  const res = await fetch(`${leader.url}/v1/propose-batch`, {
    method: 'POST',
    headers: { 'content-type': BINARY_BATCH_TYPE, ...cluster.clientHeaders() },
    body: bodies[group - 1]!,
  });
  if (!res.ok) throw new Error(`propose-batch answered ${res.status}: ${await res.text()}`);
  let ok = 0;
  let failed = 0;
  for (const r of decodeBatchResponse(new Uint8Array(await res.arrayBuffer()))) {
    if (r.kind === 'failed') {
      failed++;
      noteFailure(r.error.code, r.error.message, 1);
    } else ok++;
  }
  return { ok, failed };
}

/** The request body of one batch for each group (the payload never changes). */
function batchBodies(groups: number, batch: number): Buffer[] {
  const data = Buffer.alloc(64, 'x');
  return Array.from({ length: groups }, (_, i) => encodeBatchRequest(Array.from({ length: batch }, () => ({ group: i + 1, data }))));
}

/** Closed loop: each client keeps one batch in flight, to find the peak rate. */
async function closedLoop(cluster: LocalCluster, leaders: Map<number, number>, groups: number, args: Args, seconds: number): Promise<Point> {
  const bodies = batchBodies(groups, args.batch);
  const latencies: number[] = [];
  let entries = 0;
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const client = async (c: number) => {
    // Each client picks its next group at random (seeded: the same sequence every run), as
    // independent clients would. The shared counter used before had clients that finished in
    // descending order all pick the same group: one group got many batches (up to 16, and
    // OVERLOADED at 1,024 entries each) while the others idled, which is neither a spread load nor a
    // realistic one.
    const rng = new Rng(1000 + c);
    while (Date.now() < end) {
      const group = rng.int(1, groups);
      const t0 = performance.now();
      try {
        const r = await submit(cluster, leaders, bodies, group);
        entries += r.ok;
        errors += r.failed;
        latencies.push(performance.now() - t0);
      } catch (e) {
        errors += args.batch;
        noteFailure('REQUEST', (e as Error).message, args.batch);
      }
    }
  };
  const t0 = Date.now();
  const cpu0 = raftdCpuSeconds(cluster);
  const threads0 = raftdThreadSeconds(cluster);
  const own0 = process.cpuUsage();
  await Promise.all(Array.from({ length: args.clients }, (_, c) => client(c)));
  const elapsed = (Date.now() - t0) / 1000;
  const cpuUsPerEntry = ((raftdCpuSeconds(cluster) - cpu0) * 1e6) / entries;
  const own = process.cpuUsage(own0);
  const clientUsPerEntry = (own.user + own.system) / entries;
  const threadUsPerEntry = new Map([...threadCpuDelta(raftdThreadSeconds(cluster), threads0)].map(([k, v]) => [k, (v * 1e6) / entries]));
  latencies.sort((a, b) => a - b);
  return { entriesPerSec: entries / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, cpuUsPerEntry, clientUsPerEntry, threadUsPerEntry };
}

/**
 * Open loop at a fixed rate: batch k is due at start + k * interval and is sent then (or as soon
 * as the event loop gets to it); its latency counts from when it was due.
 */
async function openLoop(cluster: LocalCluster, leaders: Map<number, number>, groups: number, args: Args, seconds: number, targetPerSec: number, timeline = false): Promise<Point> {
  const bodies = batchBodies(groups, args.batch);
  const interval = (args.batch * 1000) / targetPerSec;
  const latencies: number[] = [];
  const windows = new Map<number, number[]>();
  let entries = 0;
  let errors = 0;
  const inflight = new Set<Promise<void>>();
  const cpu0 = raftdCpuSeconds(cluster);
  const threads0 = raftdThreadSeconds(cluster);
  const own0 = process.cpuUsage();
  const start = performance.now();
  const total = Math.floor((seconds * 1000) / interval);
  let k = 0;
  while (k < total) {
    const now = performance.now();
    while (k < total && start + k * interval <= now) {
      const due = start + k * interval;
      const group = 1 + (k % groups);
      const p: Promise<void> = submit(cluster, leaders, bodies, group).then(
        (r) => {
          entries += r.ok;
          errors += r.failed;
          latencies.push(performance.now() - due);
          if (timeline) {
            const w = Math.floor((due - start) / 250);
            (windows.get(w) ?? windows.set(w, []).get(w)!).push(performance.now() - due);
          }
        },
        (e: unknown) => {
          errors += args.batch;
          noteFailure('REQUEST', (e as Error).message, args.batch);
        },
      ).finally(() => inflight.delete(p));
      inflight.add(p);
      k++;
    }
    const wait = start + k * interval - performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, Math.floor(wait))));
  }
  await Promise.all(inflight);
  const elapsed = (performance.now() - start) / 1000;
  const cpuUsPerEntry = ((raftdCpuSeconds(cluster) - cpu0) * 1e6) / entries;
  const own = process.cpuUsage(own0);
  const clientUsPerEntry = (own.user + own.system) / entries;
  for (const [w, ls] of [...windows].sort((a, b) => a[0] - b[0])) {
    ls.sort((a, b) => a - b);
    process.stdout.write(`\n    t=${(w * 0.25).toFixed(2)} s: ${ls.length} batches, p50 ${percentile(ls, 50).toFixed(1)} ms, max ${ls[ls.length - 1]!.toFixed(1)} ms`);
  }
  if (windows.size) process.stdout.write('\n  ');
  const threadUsPerEntry = new Map([...threadCpuDelta(raftdThreadSeconds(cluster), threads0)].map(([k, v]) => [k, (v * 1e6) / entries]));
  latencies.sort((a, b) => a - b);
  return { entriesPerSec: entries / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, cpuUsPerEntry, clientUsPerEntry, threadUsPerEntry };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`bench:daemon — 3 raftd processes, 64-byte entries, ${args.clients} clients x batches of ${args.batch}, app ${args.appUrl}, Raft tick ${args.tickMs} ms`);
  console.log('latency = one batch request, from submission (half load: its scheduled time) to every entry applied (commit + apply)');
  const rows: string[] = [];
  const threadRows: string[] = [];
  for (const groups of args.groups) {
    process.stdout.write(`  ${groups} group(s): starting cluster… `);
    const nodeArgs = [...args.nodeArgs, ...(args.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${args.profileDir}`] : [])];
    const cluster = await LocalCluster.create({ nodes: 3, groups, appUrls: () => args.appUrl, extraArgs: args.snapshotInterval ? ['--snapshot-interval', String(args.snapshotInterval)] : [], nodeArgs, tickMs: args.tickMs });
    try {
      await cluster.startAll();
      const all = Array.from({ length: groups }, (_, i) => i + 1);
      const leaders = await cluster.waitForLeaders(all, 60_000);
      process.stdout.write('warming up… ');
      await closedLoop(cluster, leaders, groups, args, args.warmup);
      process.stdout.write('measuring… ');
      const c0 = await counters(cluster);
      const peak = await closedLoop(cluster, leaders, groups, args, args.seconds);
      const c1 = await counters(cluster);
      const committed = peak.entriesPerSec * args.seconds;
      peak.writesPerKEntry = ((c1.writes - c0.writes) * 1000) / committed;
      peak.messagesPerKEntry = ((c1.messages - c0.messages) * 1000) / committed;
      process.stdout.write('settling… ');
      const halfRate = args.halfRate ?? peak.entriesPerSec / 2;
      await new Promise((r) => setTimeout(r, 2000));
      await openLoop(cluster, leaders, groups, args, 2, halfRate);
      process.stdout.write('half load… ');
      const half = await openLoop(cluster, leaders, groups, args, args.seconds, halfRate, args.timeline);
      console.log('done');
      const la = loadavg()[0]!;
      const t = (m: Map<string, number>, k: string) => (m.get(k) ?? 0).toFixed(1).padStart(5);
      threadRows.push(`| ${String(groups).padStart(6)} | ${peak.cpuUsPerEntry.toFixed(1).padStart(5)} | ${t(peak.threadUsPerEntry, 'main')} | ${t(peak.threadUsPerEntry, 'other')} | ${half.cpuUsPerEntry.toFixed(1).padStart(5)} | ${peak.writesPerKEntry.toFixed(1)} | ${peak.messagesPerKEntry.toFixed(1)} | ${la.toFixed(1)} |`);
      emitResult('daemon', { groups, entriesPerSec: peak.entriesPerSec, cpuUsPerEntry: peak.cpuUsPerEntry, halfLoadCpuUsPerEntry: half.cpuUsPerEntry, mainThreadUsPerEntry: peak.threadUsPerEntry.get('main') ?? null, p50Ms: peak.p50, p99Ms: peak.p99, errors: peak.errors + half.errors, loadavg: la });
      rows.push(
        `| ${String(groups).padStart(6)} | ${Math.round(peak.entriesPerSec).toLocaleString('en-US').padStart(12)} | ${peak.p50.toFixed(2).padStart(7)} | ${peak.p99.toFixed(2).padStart(7)} | ${peak.cpuUsPerEntry.toFixed(1).padStart(5)} | ${peak.clientUsPerEntry.toFixed(1).padStart(5)} | ${Math.round(half.entriesPerSec).toLocaleString('en-US').padStart(12)} | ${half.p50.toFixed(2).padStart(7)} | ${half.p99.toFixed(2).padStart(7)} | ${peak.errors + half.errors} |`,
      );
    } finally {
      // A CPU profile is written only on a graceful exit.
      if (args.profileDir) await Promise.all(cluster.nodes.map((n) => n.stop()));
      await cluster.destroy();
    }
  }
  console.log('\n| groups | peak entries/s | p50 ms | p99 ms | raftd CPU µs/entry | client CPU µs/entry | half-load entries/s | p50 ms | p99 ms | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  console.log('\n| groups | raftd CPU µs/entry (peak) | main thread (all JS) | other threads (RocksDB writes + fsync, GC helpers, compaction) | at half load | storage writes (fsync) per 1k entries | messages sent per 1k entries | load average |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of threadRows) console.log(r);
  for (const [code, f] of failures) console.log(`\nerrors: ${f.count} entries ${code}, e.g. ${f.message.slice(0, 200)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
