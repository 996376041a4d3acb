// npm run bench:kv — raftd + the reference KV adapter (3 nodes) against a 3-member etcd, both on
// loopback, driven in turn by the same load generator (scripts/bench/loadgen.ts, in its own child
// processes): concurrency 1, 16, 64, 256; one HTTP request per operation, spread over the 3 nodes;
// writes/s and linearizable reads/s with p50/p99 latency and errors; then the ratios side by side.
//
// Options: --seconds N (measured window per point, default 5), --warmup S (default 1),
//   --concurrency 1,16,64,256, --ops write,read, --systems raftd,etcd, --workers N (load-generator
//   processes, default 1), --keys N (key space, default 10000), --value-bytes N (default 64),
//   --timeout-ms N, --etcd PATH (binary), --json FILE (all results), --profile DIR (CPU profile of
//   every raftd process; prints the hot spots of the leader and of a follower), --sequential (one
//   system's whole series, then the other's; default: both clusters up, points interleaved, so
//   a shared machine's drifting load hits both alike).
// etcd comes from Debian's etcd-server: `bash scripts/install-etcd.sh`. Without it, raftd runs alone.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { SourceMap } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster, REPO_ROOT, freePort } from '../../test/integration/cluster.js';
import { runPoint, type Op, type PointConfig, type PointResult, type SystemKind } from './loadgen.js';
import { cpuSeconds } from './stats.js';

interface Args {
  seconds: number;
  warmup: number;
  concurrency: number[];
  ops: Array<'write' | 'read'>;
  systems: SystemKind[];
  workers: number;
  keys: number;
  valueBytes: number;
  timeoutMs: number;
  etcd: string;
  json: string;
  profile: string;
  sequential: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    seconds: 5, warmup: 1, concurrency: [1, 16, 64, 256], ops: ['write', 'read'], systems: ['raftd', 'etcd'],
    workers: 1, keys: 10_000, valueBytes: 64, timeoutMs: 10_000, etcd: '', json: '', profile: '', sequential: false,
  };
  const list = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--seconds': a.seconds = Number(v); i++; break;
      case '--warmup': a.warmup = Number(v); i++; break;
      case '--concurrency': a.concurrency = list(v).map(Number); i++; break;
      case '--ops': a.ops = list(v).map((o) => { if (o !== 'write' && o !== 'read') throw new Error(`--ops: ${o} is not write or read`); return o; }); i++; break;
      case '--systems': a.systems = list(v).map((s) => { if (s !== 'raftd' && s !== 'etcd') throw new Error(`--systems: ${s} is not raftd or etcd`); return s; }); i++; break;
      case '--workers': a.workers = Number(v); i++; break;
      case '--keys': a.keys = Number(v); i++; break;
      case '--value-bytes': a.valueBytes = Number(v); i++; break;
      case '--timeout-ms': a.timeoutMs = Number(v); i++; break;
      case '--etcd': a.etcd = v ?? ''; i++; break;
      case '--json': a.json = v ?? ''; i++; break;
      case '--profile': a.profile = resolve(v ?? 'raftd-profiles'); i++; break;
      case '--sequential': a.sequential = true; break;
      case '--help': case '-h':
        console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).join('\n'));
        process.exit(0);
      // falls through (unreachable: exit)
      default: throw new Error(`unknown option ${argv[i]} (try --help)`);
    }
  }
  for (const [k, n] of [['--seconds', a.seconds], ['--workers', a.workers], ['--keys', a.keys], ['--value-bytes', a.valueBytes]] as const) {
    if (!(n > 0)) throw new Error(`${k} must be a positive number`);
  }
  if (a.concurrency.some((c) => !Number.isInteger(c) || c < 1)) throw new Error('--concurrency takes positive integers');
  return a;
}

/** A named set of processes whose CPU use we report per point. */
interface SystemUnderTest {
  kind: SystemKind;
  label: string;
  urls: string[];
  /** Headers every request needs (raftd: its client API token). */
  headers?: Record<string, string>;
  /** role -> pids (e.g. raftd: [..], kv app: [..]). */
  pids(): Map<string, number[]>;
  /** The leader's log-fsync and commit counters, from its Prometheus /metrics. */
  leaderCounters(): Promise<LeaderCounters | undefined>;
  stop(): Promise<void>;
}

interface LeaderCounters {
  fsyncs: number;
  fsyncSeconds: number;
  committed: number;
}

/** Prometheus text -> metric (with labels) -> value. */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, number> | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { headers, signal: AbortSignal.timeout(3000) });
    return res.ok ? parseMetrics(await res.text()) : undefined;
  } catch {
    return undefined;
  }
}

interface Row extends PointResult {
  /** The leader's WAL fsyncs per second, entries committed per fsync, mean fsync ms (whole point). */
  fsyncsPerSec: number;
  entriesPerFsync: number;
  fsyncMeanMs: number;
  /** Cores used per role during the point (1.0 = one core busy all along). */
  cores: Record<string, number>;
}

async function measure(sut: SystemUnderTest, cfg: PointConfig, workers: number): Promise<Row> {
  const roles = sut.pids();
  const before = new Map([...roles].map(([r, ps]) => [r, ps.reduce((s, p) => s + (cpuSeconds(p) || 0), 0)]));
  const c0 = await sut.leaderCounters();
  const t0 = performance.now();
  const res = await runPoint(cfg, workers);
  const wall = (performance.now() - t0) / 1000;
  const c1 = await sut.leaderCounters();
  const fsyncs = c0 && c1 ? c1.fsyncs - c0.fsyncs : NaN;
  const cores: Record<string, number> = {};
  // Over the whole point (warm-up included): a rough share, not a precise figure.
  for (const [r, ps] of roles) cores[r] = (ps.reduce((s, p) => s + (cpuSeconds(p) || 0), 0) - before.get(r)!) / wall;
  return {
    ...res,
    cores,
    fsyncsPerSec: fsyncs / wall,
    entriesPerFsync: c0 && c1 ? (c1.committed - c0.committed) / fsyncs : NaN,
    fsyncMeanMs: c0 && c1 ? ((c1.fsyncSeconds - c0.fsyncSeconds) * 1000) / fsyncs : NaN,
  };
}

// ---- raftd + KV adapter

async function startRaftd(args: Args): Promise<SystemUnderTest & { cluster: LocalCluster; leader: number }> {
  // --cpu-prof is refused in NODE_OPTIONS, so it goes on raftd's node command line.
  const nodeArgs: string[] = [];
  if (args.profile) {
    mkdirSync(args.profile, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${args.profile}`);
  }
  // Heartbeat 100 ms and election after 10 ticks: etcd's defaults (--heartbeat-interval 100,
  // --election-timeout 1000), so neither side is tuned differently.
  const cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true, tickMs: 100, electionTicks: 10, nodeArgs });
  try {
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([1], 30_000);
    return {
      kind: 'raftd',
      label: 'raftd + KV adapter, 3 nodes',
      urls: cluster.nodes.map((n) => n.url),
      headers: cluster.clientHeaders(),
      cluster,
      leader: leaders.get(1)!,
      pids: () =>
        new Map([
          ['raftd', cluster.nodes.map((n) => n.proc?.pid ?? 0)],
          ['kv app', cluster.nodes.map((n) => n.app?.proc?.pid ?? 0)],
        ]),
      leaderCounters: async () => {
        const m = await scrape(cluster.node(leaders.get(1)!).url, cluster.clientHeaders());
        if (!m) return undefined;
        // raftd's storage write is one RocksDB batch with one fsync, for every group of the node.
        return {
          fsyncs: m.get('raftd_storage_writes_total') ?? NaN,
          fsyncSeconds: m.get('raftd_storage_write_seconds_sum') ?? NaN,
          committed: m.get('raftd_entries_committed_total') ?? NaN,
        };
      },
      stop: async () => {
        // SIGTERM first so a --cpu-prof process writes its profile on the way out.
        if (args.profile) await Promise.all(cluster.nodes.map((n) => Promise.race([n.stop(), new Promise((r) => setTimeout(r, 10_000))])));
        await cluster.destroy();
      },
    };
  } catch (e) {
    console.error(`raftd cluster failed to start; logs in ${cluster.dir}`);
    process.env.RAFTD_KEEP_TEST_DIRS = '1';
    await cluster.destroy();
    throw e;
  }
}

// ---- etcd

export function findEtcd(explicit: string): string | undefined {
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  const r = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

function etcdVersion(bin: string): string {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return /etcd Version: (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}

async function post(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(2000) });
  return { status: res.status, text: await res.text() };
}

async function startEtcd(bin: string): Promise<SystemUnderTest & { apiPrefix: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-etcd-'));
  const members: Array<{ name: string; client: string; peer: string }> = [];
  for (let i = 1; i <= 3; i++) members.push({ name: `m${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  const initial = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const procs: ChildProcess[] = members.map((m) => {
    const log = createWriteStream(join(dir, `${m.name}.log`));
    const p = spawn(bin, [
      '--name', m.name, '--data-dir', join(dir, m.name),
      '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
      '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer,
      '--initial-cluster', initial, '--initial-cluster-token', 'bench-kv', '--initial-cluster-state', 'new',
      // 2 GiB backend quota (etcd's default, stated), a snapshot every 10,000 entries (3.4's default
      // is 100,000, which only holds more log in memory), defaults for heartbeat and election.
      '--quota-backend-bytes', String(2 * 1024 ** 3), '--snapshot-count', '10000',
      '--logger', 'zap', '--log-level', 'warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.pipe(log);
    p.stderr!.pipe(log);
    return p;
  });
  const stop = async (): Promise<void> => {
    await Promise.all(
      procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise<void>((r) => { p.once('exit', () => r()); p.kill('SIGKILL'); }))),
    );
    if (!process.env.RAFTD_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Ready = every member answers a linearizable range (which needs a leader); the same probe picks
    // the JSON gateway's prefix: /v3 from 3.4 on, /v3beta on 3.3.
    const deadline = Date.now() + 30_000;
    let apiPrefix = '';
    for (const m of members) {
      for (;;) {
        const dead = procs.find((p) => p.exitCode !== null);
        if (dead) throw new Error(`an etcd member exited (code ${dead.exitCode}); logs in ${dir}`);
        let ok = false;
        for (const prefix of apiPrefix ? [apiPrefix] : ['/v3', '/v3beta']) {
          try {
            const r = await post(`${m.client}${prefix}/kv/range`, { key: Buffer.from('probe').toString('base64') });
            if (r.status === 200) {
              apiPrefix = prefix;
              ok = true;
              break;
            }
          } catch {
            /* not up yet */
          }
        }
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not ready within 30 s; logs in ${dir}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return {
      kind: 'etcd',
      label: `etcd ${etcdVersion(bin)}, 3 members (JSON gateway ${apiPrefix}/)`,
      urls: members.map((m) => m.client),
      apiPrefix,
      dir,
      pids: () => new Map([['etcd', procs.map((p) => p.pid ?? 0)]]),
      leaderCounters: async () => {
        for (const m of members) {
          const x = await scrape(m.client);
          if (x?.get('etcd_server_is_leader') !== 1) continue;
          return {
            fsyncs: x.get('etcd_disk_wal_fsync_duration_seconds_count') ?? NaN,
            fsyncSeconds: x.get('etcd_disk_wal_fsync_duration_seconds_sum') ?? NaN,
            committed: x.get('etcd_server_proposals_committed_total') ?? NaN,
          };
        }
        return undefined;
      },
      stop,
    };
  } catch (e) {
    process.env.RAFTD_KEEP_TEST_DIRS = '1';
    await stop();
    throw e;
  }
}

// ---- profiles

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

const sourceMaps = new Map<string, SourceMap | null>();

/** dist/x.js:line -> x.ts:line through the compiler's source map, when there is one. */
function toSource(url: string, line0: number, col0: number): string {
  if (!url.startsWith('file://')) return url ? `${url}:${line0 + 1}` : '';
  const file = fileURLToPath(url);
  let sm = sourceMaps.get(file);
  if (sm === undefined) {
    try {
      sm = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
    } catch {
      sm = null;
    }
    sourceMaps.set(file, sm);
  }
  const e = sm?.findEntry(line0, col0) as { originalSource?: string; originalLine?: number } | undefined;
  if (sm && e && e.originalSource) {
    const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolve(join(file, '..'), e.originalSource);
    return `${relative(REPO_ROOT, src)}:${(e.originalLine ?? 0) + 1}`;
  }
  return `${relative(REPO_ROOT, file)}:${line0 + 1}`;
}

/** Self time per function, highest first, as "percent  function  file:line". */
function hotSpots(profilePath: string, top: number): string[] {
  const p = JSON.parse(readFileSync(profilePath, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (const s of p.samples) self.set(s, (self.get(s) ?? 0) + 1);
  const agg = new Map<string, number>();
  let total = 0;
  for (const [id, count] of self) {
    const n = byId.get(id)!;
    const f = n.callFrame;
    const name = f.functionName || '(anonymous)';
    const key = f.url ? `${name}  ${toSource(f.url, f.lineNumber, f.columnNumber)}` : name;
    agg.set(key, (agg.get(key) ?? 0) + count);
    total += count;
  }
  // Idle time is not work: report shares of the busy samples.
  const idle = agg.get('(idle)') ?? 0;
  agg.delete('(idle)');
  const busy = total - idle;
  const lines = [`busy ${((100 * busy) / Math.max(1, total)).toFixed(0)}% of ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s; self time, share of busy samples:`];
  for (const [k, c] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${((100 * c) / Math.max(1, busy)).toFixed(1).padStart(6)}%  ${k}`);
  // Where the rest goes by file (self time), for a coarser view.
  const byFile = new Map<string, number>();
  for (const [k, c] of agg) {
    const loc = k.split('  ')[1] ?? '(native/gc)';
    const file = loc.replace(/:\d+$/, '').replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, 'node_modules/$1');
    byFile.set(file, (byFile.get(file) ?? 0) + c);
  }
  lines.push('by file:');
  for (const [f, c] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12)) lines.push(`${((100 * c) / Math.max(1, busy)).toFixed(1).padStart(6)}%  ${f}`);
  // Inclusive time of the project's own functions (each sample counted once per function on its
  // stack): self time is spread thin over Node internals, this says which of our paths drive it.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ours = (url: string) => url.startsWith('file://') && !url.includes('/node_modules/') && /\/(daemon|adapters)\//.test(url);
  const inclusive = new Map<string, number>();
  for (const [id, count] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      if (!ours(f.url)) continue;
      seen.add(`${f.functionName || '(anonymous)'}  ${toSource(f.url, f.lineNumber, f.columnNumber)}`);
    }
    for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + count);
  }
  lines.push('inclusive time of raftd functions:');
  for (const [k, c] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${((100 * c) / Math.max(1, busy)).toFixed(1).padStart(6)}%  ${k}`);
  return lines;
}

// ---- output

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const fmtMs = (n: number): string => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '-');

function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(headers), `|${w.map((x, i) => (i < 2 ? ':' : '') + '-'.repeat(x + 1) + (i < 2 ? '' : ':')).join('|')}|`, ...rows.map(line)].join('\n');
}

/**
 * CPU the system under test spent per successful operation, all its processes together (warm-up
 * included, so slightly high). On a shared machine this is steadier than ops/s: it does not depend on
 * how much CPU the others leave.
 */
function cpuMsPerOp(r: Row): number {
  return (Object.values(r.cores).reduce((a, b) => a + b, 0) / r.opsPerSec) * 1000;
}

function systemTable(label: string, rows: Row[]): string {
  const roles = [...new Set(rows.flatMap((r) => Object.keys(r.cores)))];
  return `\n${label}\n` + table(
    ['op', 'clients', 'ops/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', ...roles.map((r) => `${r} cores`), 'CPU ms/op', 'loadgen cores', 'leader fsync/s', 'entries/fsync', 'fsync ms'],
    rows.map((r) => [
      r.op === 'read' ? 'lin. read' : r.op, String(r.concurrency), fmtInt(r.opsPerSec), fmtMs(r.p50Ms), fmtMs(r.p99Ms), fmtMs(r.maxMs), String(r.errors),
      ...roles.map((k) => (r.cores[k] ?? NaN).toFixed(2)), fmtMs(cpuMsPerOp(r)), r.loadgenCores.toFixed(2),
      fmtInt(r.fsyncsPerSec), Number.isFinite(r.entriesPerFsync) ? r.entriesPerFsync.toFixed(1) : '-', fmtMs(r.fsyncMeanMs),
    ]),
  ) + rows.filter((r) => r.errorSamples.length).map((r) => `\n  ${r.op} x${r.concurrency} errors, e.g.: ${r.errorSamples.join(' | ')}`).join('');
}

function ratioTable(a: Row[], b: Row[], ops: Op[], concurrency: number[]): string {
  const rows: string[][] = [];
  for (const op of ops) {
    for (const c of concurrency) {
      const x = a.find((r) => r.op === op && r.concurrency === c);
      const y = b.find((r) => r.op === op && r.concurrency === c);
      if (!x || !y) continue;
      rows.push([
        op === 'read' ? 'lin. read' : op, String(c), fmtInt(x.opsPerSec), fmtInt(y.opsPerSec), `${(x.opsPerSec / y.opsPerSec).toFixed(2)}x`,
        fmtMs(x.p99Ms), fmtMs(y.p99Ms), `${(x.p99Ms / y.p99Ms).toFixed(2)}x`, `${(cpuMsPerOp(x) / cpuMsPerOp(y)).toFixed(2)}x`,
      ]);
    }
  }
  return table(['op', 'clients', 'raftd ops/s', 'etcd ops/s', 'raftd/etcd', 'raftd p99 ms', 'etcd p99 ms', 'p99 raftd/etcd', 'CPU/op raftd/etcd'], rows);
}

// ---- main

/** Cores the system burns with no load at all (ticks, heartbeats, timers), over `ms`. */
async function idleCores(sut: SystemUnderTest, ms: number): Promise<number> {
  const pids = [...sut.pids().values()].flat();
  const t0 = pids.reduce((s, p) => s + (cpuSeconds(p) || 0), 0);
  await new Promise((r) => setTimeout(r, ms));
  return (pids.reduce((s, p) => s + (cpuSeconds(p) || 0), 0) - t0) / (ms / 1000);
}

interface Prepared {
  sut: SystemUnderTest;
  base: PointConfig;
  idle: number;
  rows: Row[];
}

/** Idle CPU, then every key written once, so reads find values of the same size. */
async function prepare(sut: SystemUnderTest, args: Args, extra: Partial<PointConfig>): Promise<Prepared> {
  const base: PointConfig = {
    system: sut.kind, urls: sut.urls, ...(sut.headers ? { headers: sut.headers } : {}), op: 'fill', concurrency: 64, durationMs: args.seconds * 1000, warmupMs: args.warmup * 1000,
    keys: args.keys, keyPrefix: 'bench/', valueBytes: args.valueBytes, timeoutMs: args.timeoutMs, group: 1, etcdApiPrefix: '/v3', ...extra,
  };
  const idle = await idleCores(sut, 2000);
  const fill = await runPoint(base, args.workers);
  if (fill.errors > 0) throw new Error(`filling ${args.keys} keys failed ${fill.errors} times, e.g. ${fill.errorSamples.join(' | ')}`);
  process.stdout.write(`  ${sut.kind}: idle ${idle.toFixed(2)} cores; filled ${fmtInt(args.keys)} keys (${fmtInt(fill.opsPerSec)} writes/s at 64 clients)\n`);
  return { sut, base, idle, rows: [] };
}

/**
 * Every (op, concurrency) point, for each system. Interleaved: the systems take turns point by
 * point (who goes first alternates), so on a shared machine whose load drifts over minutes both
 * see about the same load at each point and the ratios mean something. Sequential: one system's
 * whole series, then the next's.
 */
async function runPoints(systems: Prepared[], args: Args): Promise<void> {
  const series = args.sequential ? systems.map((s) => [s]) : [systems];
  let turn = 0;
  for (const group of series) {
    for (const op of args.ops) {
      for (const c of args.concurrency) {
        const order = turn++ % 2 === 0 ? group : [...group].reverse();
        for (const p of order) {
          const r = await measure(p.sut, { ...p.base, op, concurrency: c }, args.workers);
          p.rows.push(r);
          process.stdout.write(`  ${p.sut.kind.padEnd(5)} ${op.padEnd(5)} x${String(c).padEnd(3)} ${fmtInt(r.opsPerSec).padStart(7)} ops/s  p50 ${fmtMs(r.p50Ms)} ms  p99 ${fmtMs(r.p99Ms)} ms  errors ${r.errors}  load ${loadavg()[0]!.toFixed(1)}\n`);
          await new Promise((res) => setTimeout(res, 300)); // let queues drain between points
        }
      }
    }
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const etcdBin = args.systems.includes('etcd') ? findEtcd(args.etcd) : undefined;
  const la = loadavg();
  console.log(`bench:kv — ${cpus().length} cores, load average before: ${la.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(
    `one load generator (${args.workers} process(es)), closed loop, one HTTP/1.1 request per op, keep-alive, round-robin over 3 nodes; ` +
      `${args.keys} keys, ${args.valueBytes}-byte values; ${args.warmup} s warm-up + ${args.seconds} s measured per point; ` +
      (args.sequential ? 'systems in turn, whole series each' : 'both systems up, points interleaved (first mover alternates)'),
  );
  if (args.systems.includes('etcd') && !etcdBin) {
    console.log('etcd not found: install it with `bash scripts/install-etcd.sh` (Debian package etcd-server) or pass --etcd PATH; running raftd alone');
  }
  const results: Record<string, { label: string; rows: Row[] }> = {};
  const profileNotes: string[] = [];

  // Both systems run side by side for the whole benchmark (each idles at a few hundredths of a
  // core while the other is measured) so their points can be interleaved.
  let raftd: Awaited<ReturnType<typeof startRaftd>> | undefined;
  let etcd: Awaited<ReturnType<typeof startEtcd>> | undefined;
  const before = args.profile && existsSync(args.profile) ? new Set(readdirSync(args.profile)) : new Set<string>();
  try {
    const prepared: Prepared[] = [];
    if (args.systems.includes('raftd')) {
      raftd = await startRaftd(args);
      prepared.push(await prepare(raftd, args, {}));
    }
    if (etcdBin) {
      etcd = await startEtcd(etcdBin);
      prepared.push(await prepare(etcd, args, { etcdApiPrefix: etcd.apiPrefix }));
    }
    await runPoints(prepared, args);
    for (const p of prepared) results[p.sut.kind] = { label: `${p.sut.label}; idle ${p.idle.toFixed(2)} cores`, rows: p.rows };
  } finally {
    await etcd?.stop();
    await raftd?.stop();
  }
  if (raftd && args.profile) {
    const sut = raftd;
    const pidToNode = new Map(sut.cluster.nodes.map((n) => [n.proc?.pid ?? 0, n.spec.id]));
    // Names are CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main thread
    // (others are loader workers, e.g. tsx's, when run from source).
    const fresh = readdirSync(args.profile).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
    for (const f of fresh) {
      const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(f);
      if (!m || m[2] !== '0') continue;
      const id = pidToNode.get(Number(m[1]));
      if (id === undefined) continue;
      const role = id === sut.leader ? 'leader' : 'follower';
      if (role === 'follower' && profileNotes.some((n) => n.includes('(follower)'))) continue;
      profileNotes.push(`\nraftd node ${id} (${role}) CPU profile ${join(args.profile, f)}\n${hotSpots(join(args.profile, f), 20).join('\n')}`);
    }
    if (profileNotes.length === 0) profileNotes.push(`\nno raftd CPU profiles found in ${args.profile}`);
  }

  for (const r of Object.values(results)) console.log(systemTable(r.label, r.rows));
  if (results.raftd && results.etcd) {
    console.log('\nraftd + KV vs etcd, side by side');
    console.log(ratioTable(results.raftd.rows, results.etcd.rows, args.ops, args.concurrency));
    const w = (rows: Row[]) => rows.find((r) => r.op === 'write' && r.concurrency === 64);
    const x = w(results.raftd.rows);
    const y = w(results.etcd.rows);
    if (x && y) {
      const ratio = x.opsPerSec / y.opsPerSec;
      const met = ratio >= 2 && x.p99Ms <= y.p99Ms;
      console.log(
        `\ntarget (writes at 64 clients: >= 2x etcd's writes/s with p99 no worse): ${met ? 'MET' : 'NOT MET'} — ` +
          `${ratio.toFixed(2)}x writes/s, p99 ${fmtMs(x.p99Ms)} ms vs ${fmtMs(y.p99Ms)} ms`,
      );
    }
  }
  for (const n of profileNotes) console.log(n);
  console.log(`\nload average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ args, loadavgBefore: la, loadavgAfter: loadavg(), results }, null, 2));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
