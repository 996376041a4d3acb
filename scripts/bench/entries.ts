// node .dist-bin/scripts/bench/entries.js — UpdateEntries as JSON (base64 data) vs the binary body
// (docs/state-machine-api.md, "Binary UpdateEntries"), side by side in one run: two 3-node raftd
// clusters, each node with its own KV adapter process (fsync always); the apps of one cluster
// advertise the binary body (the SDK default), those of the other do not (binaryEntries: false), so
// raftd sends them JSON. One proposal of a large entry (a KV set whose value is ~600 KB, about a
// 10,000-row RaftHouse insert) at a time, alternating between the clusters (the first mover
// alternates too), so a shared machine's drifting load hits both alike. Prints per-entry latency
// (propose -> committed and applied by the leader's app) p50/p90/mean per encoding and the load
// average. Options: --entries N (per encoding, default 40), --bytes N (default 600000),
// --warmup N (default 4).
//
// Internal: `--app PORT DATA_DIR json|binary` runs one KV adapter (the bench starts them).

import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KvAdapter } from '../../adapters/kv/adapter.js';
import { serveStateMachine } from '../../adapters/sdk/server.js';
import { LocalCluster, ManagedProcess, freePort } from '../../test/integration/cluster.js';
import { percentileOf } from './stats.js';

type Encoding = 'json' | 'binary';
const ENCODINGS: Encoding[] = ['json', 'binary'];

async function runApp(port: number, dataDir: string, enc: Encoding): Promise<void> {
  const kv = new KvAdapter({ dataDir, fsync: 'always' });
  const served = await serveStateMachine(kv, { port, binaryEntries: enc === 'binary' });
  const stop = async (): Promise<void> => {
    await served.close();
    await kv.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
}

async function startCluster(enc: Encoding): Promise<{ cluster: LocalCluster; leaderUrl: string }> {
  const ports = new Map<number, number>();
  for (const id of [1, 2, 3]) ports.set(id, await freePort());
  const cluster = await LocalCluster.create({ nodes: 3, groups: 1, appUrls: (id) => `http://127.0.0.1:${ports.get(id)}` });
  for (const n of cluster.nodes) {
    const dir = join(cluster.dir, `app${n.spec.id}`);
    mkdirSync(dir, { recursive: true });
    n.app = new ManagedProcess(`${enc} app ${n.spec.id}`, 'scripts/bench/entries.ts', ['--app', String(ports.get(n.spec.id)), dir, enc], cluster.secrets?.appEnv() ?? {}, join(cluster.dir, `app${n.spec.id}.log`));
  }
  await cluster.startAll();
  await cluster.waitForApi(30_000);
  const leaders = await cluster.waitForLeaders([1], 30_000);
  return { cluster, leaderUrl: cluster.node(leaders.get(1)!).url };
}

async function propose(cluster: LocalCluster, url: string, body: Buffer): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/groups/1/propose`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', ...cluster.clientHeaders() }, body, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`propose: HTTP ${res.status} ${text.slice(0, 200)}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { entries: { type: 'string' }, bytes: { type: 'string' }, warmup: { type: 'string' } } });
  const n = Number(values.entries ?? 40);
  const bytes = Number(values.bytes ?? 600_000);
  const warmup = Number(values.warmup ?? 4);
  // Row-like text (nothing JSON would escape, so the entry is --bytes plus the command's ~30 bytes).
  const row = '123456,2026-11-24 01:00:00,user-4242,3.14159,a|b;';
  const value = row.repeat(Math.ceil(bytes / row.length)).slice(0, bytes);
  const entry = (i: number): Buffer => Buffer.from(JSON.stringify({ op: 'set', key: `k${i % 8}`, value }));
  console.log(`entry ${entry(0).length} bytes (a KV set of a ${bytes}-byte value); ${n} per encoding after ${warmup} warm-up each; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  const clusters = new Map<Encoding, { cluster: LocalCluster; leaderUrl: string }>();
  try {
    for (const enc of ENCODINGS) clusters.set(enc, await startCluster(enc));
    const lat = new Map<Encoding, number[]>(ENCODINGS.map((e) => [e, []]));
    for (let i = 0; i < warmup + n; i++) {
      const order = i % 2 === 0 ? ENCODINGS : [...ENCODINGS].reverse();
      for (const enc of order) {
        const ms = await propose(clusters.get(enc)!.cluster, clusters.get(enc)!.leaderUrl, entry(i));
        if (i >= warmup) lat.get(enc)!.push(ms);
      }
    }
    console.log('encoding   p50 ms   p90 ms   mean ms');
    for (const enc of ENCODINGS) {
      const xs = lat.get(enc)!;
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      console.log(`${enc.padEnd(8)} ${percentileOf(xs, 50).toFixed(1).padStart(8)} ${percentileOf(xs, 90).toFixed(1).padStart(8)} ${mean.toFixed(1).padStart(9)}`);
    }
    const j = percentileOf(lat.get('json')!, 50);
    const b = percentileOf(lat.get('binary')!, 50);
    console.log(`binary/json p50: ${(b / j).toFixed(2)}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    for (const c of clusters.values()) await c.cluster.destroy();
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--app') {
  const enc = argv[3];
  if (enc !== 'json' && enc !== 'binary') throw new Error(`--app PORT DIR json|binary, not ${enc}`);
  await runApp(Number(argv[1]), argv[2]!, enc);
} else {
  await main();
}
