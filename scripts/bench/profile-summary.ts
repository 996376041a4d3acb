// Where a raftd's main thread spends its time, from V8 CPU profiles (--cpu-prof, e.g.
// `npm run bench:daemon -- --groups 64 --profile DIR`): every sample is charged to the area of the
// nearest frame on its stack that belongs to one (raftd's own directories, or a library known to
// serve one: fastify -> HTTP API, grpc-js -> transport, rocksdb -> storage), so Node's internals
// (streams, sockets, buffers) count for the area that called them. Then the top self-time functions.
//
//   node dist/scripts/bench/profile-summary.js DIR [--top N]
//
// The profile sees the main thread only; bench:daemon prints how much CPU the other threads (RocksDB
// writes and fsync, GC helpers, compaction) add.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** The area a frame belongs to, or undefined when it belongs to none (Node internals, other libraries). */
function areaOf(cf: CallFrame): string | undefined {
  const u = cf.url;
  if (!u) {
    if (cf.functionName === '(garbage collector)') return 'GC (main thread)';
    if (cf.functionName === '(program)') return '(program): native code outside JS, not attributed';
    return undefined;
  }
  if (/\/daemon\/storage\/|\/rocksdb\/|abstract-leveldown/.test(u)) return 'storage/RocksDB';
  if (/\/daemon\/transport\/|@grpc\/|protobuf|@bufbuild|\/gen\//.test(u)) return 'transport/gRPC+protobuf';
  if (/\/daemon\/raft\//.test(u)) return 'core (daemon/raft)';
  if (/\/daemon\/host\//.test(u)) return 'host (daemon/host, memory app included)';
  if (/\/daemon\/api\/|fastify|find-my-way|avvio|light-my-request|@fastify\//.test(u)) return 'HTTP API (daemon/api, fastify)';
  if (/\/daemon\/statemachine\//.test(u)) return 'state-machine client (daemon/statemachine)';
  if (/prom-client/.test(u)) return 'metrics';
  if (/pino|sonic-boom/.test(u)) return 'logging';
  if (/\/esm\/|cjs\/loader|modules\/|bootstrap\/realm|cjs-module-lexer/.test(u) && /load|compile|translate|module|import|require|parse/i.test(cf.functionName + u)) return 'start-up (module loading)';
  return undefined;
}

function main(): void {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: profile-summary DIR [--top N]');
  const topAt = process.argv.indexOf('--top');
  const top = topAt > 0 ? Number(process.argv[topAt + 1]) : 30;
  const byArea = new Map<string, number>();
  const self = new Map<string, number>();
  let total = 0;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const time = new Map<number, number>();
    for (let i = 0; i < p.samples.length; i++) time.set(p.samples[i]!, (time.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
    for (const [id, t] of time) {
      const leaf = byId.get(id)!.callFrame;
      if (leaf.functionName === '(idle)') continue;
      total += t;
      let area: string | undefined;
      for (let x: number | undefined = id; x !== undefined && !area; x = parent.get(x)) area = areaOf(byId.get(x)!.callFrame);
      area ??= 'other (Node internals with no raftd caller on the stack: socket reads, timers)';
      byArea.set(area, (byArea.get(area) ?? 0) + t);
      const key = `${leaf.functionName || '(anonymous)'} ${leaf.url.split('/').slice(-2).join('/')}:${leaf.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + t);
    }
  }
  const pct = (v: number) => `${((100 * v) / total).toFixed(1)}%`;
  console.log(`${files.length} profile(s), ${(total / 1e6).toFixed(1)} s of main-thread samples (idle excluded)\n`);
  console.log('| area (nearest attributable frame) | share of main-thread time |\n|---|---:|');
  for (const [a, v] of [...byArea].sort((x, y) => y[1] - x[1])) console.log(`| ${a} | ${pct(v)} |`);
  console.log(`\n| top self-time functions | share |\n|---|---:|`);
  for (const [k, v] of [...self].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`| ${k.replace(/\|/g, '\\|')} | ${pct(v)} |`);
}

main();
