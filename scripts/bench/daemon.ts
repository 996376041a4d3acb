// npm run bench:daemon — 3 real raftd processes on loopback, 64-byte entries, batched clients.
// Prints committed entries/s and p50/p99 commit latency for 1, 64 and 1,000 groups, then the
// latency at half the peak load. Options: --seconds N (per point), --groups 1,64,1000,
// --app-url URL (default: the built-in memory app, to measure raftd alone).

import { LocalCluster } from '../../test/integration/cluster.js';

interface Args {
  seconds: number;
  groups: number[];
  clients: number;
  batch: number;
  appUrl: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 8, groups: [1, 64, 1000], clients: 16, batch: 256, appUrl: 'memory:' };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--seconds': a.seconds = Number(v); i++; break;
      case '--groups': a.groups = v!.split(',').map(Number); i++; break;
      case '--clients': a.clients = Number(v); i++; break;
      case '--batch': a.batch = Number(v); i++; break;
      case '--app-url': a.appUrl = v!; i++; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  return a;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Point {
  entriesPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Closed-loop clients; with targetPerSec each client paces itself to share that rate. */
async function drive(cluster: LocalCluster, leaders: Map<number, number>, groups: number, args: Args, seconds: number, targetPerSec?: number): Promise<Point> {
  const payload = Buffer.alloc(64, 'x').toString('base64');
  const latencies: number[] = [];
  let entries = 0;
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  let next = 0;
  const client = async (c: number) => {
    const interval = targetPerSec ? (args.batch * args.clients * 1000) / targetPerSec : 0;
    let due = Date.now();
    while (Date.now() < end) {
      // Each request carries one batch for one group, sent to that group's leader.
      const group = 1 + ((next++ + c) % groups);
      const leader = cluster.node(leaders.get(group)!);
      const items = Array.from({ length: args.batch }, () => ({ group, data: payload }));
      const t0 = performance.now();
      try {
        const res = await fetch(`${leader.url}/v1/propose-batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ items }),
        });
        const body = (await res.json()) as { results: Array<{ error?: unknown }> };
        const ms = performance.now() - t0;
        for (const r of body.results) {
          if (r.error) errors++;
          else entries++;
        }
        latencies.push(ms);
      } catch {
        errors += args.batch;
      }
      if (interval > 0) {
        due += interval;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: args.clients }, (_, c) => client(c)));
  const elapsed = (Date.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { entriesPerSec: entries / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`bench:daemon — 3 raftd processes, 64-byte entries, ${args.clients} clients x batches of ${args.batch}, app ${args.appUrl}`);
  console.log('latency = one batch request, from send to every entry applied (commit + apply)');
  const rows: string[] = [];
  for (const groups of args.groups) {
    process.stdout.write(`  ${groups} group(s): starting cluster… `);
    const cluster = await LocalCluster.create({ nodes: 3, groups, appUrls: () => args.appUrl, extraArgs: ['--snapshot-interval', '1000000'] });
    try {
      await cluster.startAll();
      const all = Array.from({ length: groups }, (_, i) => i + 1);
      const leaders = await cluster.waitForLeaders(all, 60_000);
      process.stdout.write('warming up… ');
      await drive(cluster, leaders, groups, args, 2);
      process.stdout.write('measuring… ');
      const peak = await drive(cluster, leaders, groups, args, args.seconds);
      process.stdout.write('half load… ');
      const half = await drive(cluster, leaders, groups, args, args.seconds, peak.entriesPerSec / 2);
      console.log('done');
      rows.push(
        `| ${String(groups).padStart(6)} | ${Math.round(peak.entriesPerSec).toLocaleString('en-US').padStart(12)} | ${peak.p50.toFixed(2).padStart(7)} | ${peak.p99.toFixed(2).padStart(7)} | ${Math.round(half.entriesPerSec).toLocaleString('en-US').padStart(12)} | ${half.p50.toFixed(2).padStart(7)} | ${half.p99.toFixed(2).padStart(7)} | ${peak.errors + half.errors} |`,
      );
    } finally {
      await cluster.destroy();
    }
  }
  console.log('\n| groups | peak entries/s | p50 ms | p99 ms | half-load entries/s | p50 ms | p99 ms | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
