// `npm run bench`: every benchmark in turn, with shortened durations so the whole run fits in 15 minutes
// on a 2-core machine, then docs/benchmarks.md: the headline tables (raftd KV vs etcd, gateway inserts
// vs direct, consistent vs local reads, throughput vs groups), the machine and versions, each bench's
// own tables, and the exact commands that reproduce them.
//
// Each bench runs as its own child process (the same command `npm run bench:X` runs), its output
// streamed here as progress and parsed afterwards: markdown tables are taken as printed; bench:kv's
// figures come from its --json file. A bench that fails or overruns its time limit is recorded as such
// and the run goes on.
//
// Issue 24's goals come first: each goal with our figure, the reference's from the same run, the
// ratio and the target, and CPU per operation for every process group (scripts/bench/goals.ts, from
// the benches' `@@bench-result` lines); the same as JSON in --json (default docs/benchmarks.json).
// --quick runs every bench with short settings (a few minutes in all, for a before/after check).
//
//   node dist/scripts/bench/all.js [--quick] [--only kv,gateway,...] [--out docs/benchmarks.md] [--json FILE]

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuMarkdown, goals, goalsMarkdown, parseResults, type BenchResult, type KvJson } from './goals.js';

const here = dirname(fileURLToPath(import.meta.url));
const compiled = fileURLToPath(import.meta.url).endsWith('.js');
const ROOT = compiled ? resolve(here, '../../..') : resolve(here, '../..');

/** In docs/benchmarks.md, everything from this line on is kept when `npm run bench` rewrites the file. */
const KEPT_MARKER = '<!-- Notes below this line are kept by npm run bench, which rewrites everything above it. -->';

interface Step {
  key: string;
  title: string;
  /** Entry point under scripts/bench (no extension). */
  script: string;
  args: string[];
  env?: Record<string, string>;
  limitSec: number;
  /** What the bench measures, one sentence for the document. */
  about: string;
}

interface StepResult {
  step: Step;
  ok: boolean;
  seconds: number;
  output: string;
  failure?: string;
}

function steps(tmp: string, quick: boolean): Step[] {
  // --quick: the same benches with short settings (a few minutes in all), for a before/after check.
  const q = <T,>(full: T, short: T): T => (quick ? short : full);
  return [
    { key: 'kv', title: 'raftd + KV adapter vs etcd', script: 'kv', args: [...q(['--seconds', '5'], ['--seconds', '2', '--concurrency', '64']), '--warmup', '1', '--json', join(tmp, 'kv.json')], limitSec: q(330, 120),
      about: 'a 3-node raftd with the reference KV adapter against a 3-member etcd on the same machine, driven in turn by the same load generator (scripts/bench/loadgen.ts): writes and linearizable reads at 1/16/64/256 clients (--quick: 64 only).' },
    { key: 'gateway', title: 'RaftHouse gateway vs straight ClickHouse', script: 'gateway', args: q(['--batches', '20', '--queries', '300'], ['--batches', '8', '--queries', '100', '--no-parallel']), limitSec: q(240, 150),
      about: '10,000-row JSONEachRow inserts through the consistent endpoint of a 3-node RaftHouse (embedded chdb) vs straight into one embedded engine, in alternating rounds of 4 back-to-back inserts per side (the replicas settle off the clock after each gateway round, so the followers\' tail never lands in the direct side\'s time); p50/p99 of a point query on the consistent vs the local endpoint of one node.' },
    { key: 'daemon', title: 'raftd throughput vs number of groups', script: 'daemon', args: q(['--groups', '1,16,64,256', '--seconds', '5', '--warmup', '10'], ['--groups', '64', '--seconds', '3', '--warmup', '5']), limitSec: q(260, 100),
      about: '3 real raftd processes on loopback, built-in memory app (raftd alone), batched clients of 64-byte entries: committed entries/s and latency as the number of groups grows, after a closed-loop warm-up (10 s; 5 with --quick: with 2 s, V8\'s compilation of the hot path on its worker threads added ~15% to the CPU per entry); the half-load point is open-loop at half the measured peak, in steady state (after 2 s idle and 2 s of the same load unmeasured).' },
    { key: 'clickhouse', title: 'RaftHouse state machine vs direct inserts', script: 'clickhouse', args: ['--rows', q('200000', '50000')], env: { BENCH_SIZES: q('1000,10000', '10000') }, limitSec: 150,
      about: 'rows/s applied through the state machine (applyBatch, and through the SDK HTTP server) vs direct inserts into the same embedded engine, measured alternately.' },
    { key: 'groups', title: 'RaftHouse at 16 vs 256 groups', script: 'groups', args: q(['--groups', '16,256', '--inserts', '5', '--reads', '20', '--idle-seconds', '5'], ['--groups', '16,256', '--inserts', '3', '--reads', '10', '--idle-seconds', '3']), limitSec: q(400, 300),
      about: 'a 3-node RaftHouse started with 16, then 256 groups: time from start to a sharded CREATE accepted, a sharded 10,000-row insert, a consistent count()+sum() of the sharded table on another node, idle CPU of the 6 processes.' },
    { key: 'core', title: 'Raft core alone', script: 'core', args: [], env: { BENCH_SECONDS: q('2', '1') }, limitSec: 120,
      about: 'committed entries/s of the pure Raft core (3 in-memory replicas, no I/O): one group batched, and 1,000 groups.' },
    { key: 'storage', title: 'RocksDB log store', script: 'storage', args: [], env: { BENCH_SECONDS: '1' }, limitSec: 90,
      about: 'fsync cost, LogStore write batches of 1/100/1,000 groups.' },
    { key: 'transport', title: 'gRPC transport', script: 'transport', args: [], limitSec: 90,
      about: 'batched App messages of 64-byte entries between two transports on loopback, and the codec alone.' },
    ...(quick ? [] : [{ key: 'app-calls', title: 'state-machine API calls vs a bare HTTP exchange', script: 'app-calls', args: [], limitSec: 90,
      about: 'CPU per UpdateEntries call from raftd\'s AppClient to the KV adapter (--fsync never) at 1/8/64 entries per call, over h2c and HTTP/1.1, next to a bare node:http / node:http2 server and client on the same machine: the HTTP floor under every hop of a KV write.' }]),
    { key: 'idle', title: 'idle cost of many groups', script: 'idle', args: q(['--groups', '10000', '--seconds', '10'], ['--groups', '2000', '--seconds', '5']), limitSec: q(400, 150),
      about: 'time until every group of 3 raftd processes has a leader, then CPU of the processes holding those groups idle (after quiescence), % of one core.' },
  ];
}

function command(s: Step): string {
  const env = Object.entries(s.env ?? {}).map(([k, v]) => `${k}=${v} `).join('');
  const args = s.args.filter((a, i, all) => !(a === '--json' || all[i - 1] === '--json')).join(' ');
  return `${env}npm run bench:${s.script}${args ? ` -- ${args}` : ''}`;
}

function run(s: Step, limitSec: number): Promise<StepResult> {
  const started = Date.now();
  const entry = compiled ? [join(here, `${s.script}.js`)] : ['--import', 'tsx', join(ROOT, 'scripts/bench', `${s.script}.ts`)];
  return new Promise((res) => {
    let output = '';
    const child = spawn(process.execPath, [...entry, ...s.args], { cwd: ROOT, env: { ...process.env, ...s.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (d: Buffer) => {
      output += d.toString('utf8');
      process.stdout.write(d.toString('utf8').replace(/^(?=.)/gm, `  [${s.key}] `));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    let timedOut = false;
    // SIGINT first so the bench tears its cluster down; SIGKILL if it does not.
    const limit = setTimeout(() => {
      timedOut = true;
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, limitSec * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(limit);
      const seconds = (Date.now() - started) / 1000;
      const failure = timedOut ? `stopped after its ${limitSec} s limit` : code !== 0 ? `exited with ${signal ?? `code ${code}`}` : undefined;
      res({ step: s, ok: !failure, seconds, output, ...(failure ? { failure } : {}) });
    });
  });
}

/** The markdown tables a bench printed (runs of lines starting with '|'). */
function tables(output: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const line of output.split('\n')) {
    if (line.trim().startsWith('|')) cur.push(line.trim());
    else if (cur.length) {
      out.push(cur.join('\n'));
      cur = [];
    }
  }
  if (cur.length) out.push(cur.join('\n'));
  return out.filter((t) => t.split('\n').length >= 3);
}


function kvTable(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const j = JSON.parse(readFileSync(file, 'utf8')) as KvJson;
  const a = j.results['raftd'];
  const b = j.results['etcd'];
  if (!a) return undefined;
  const f = (x: number) => Math.round(x).toLocaleString('en-US');
  const ms = (x: number) => x.toFixed(2);
  const lines: string[] = b
    ? ['| op | clients | raftd ops/s | etcd ops/s | raftd/etcd | raftd p50 ms | etcd p50 ms | raftd p99 ms | etcd p99 ms | errors (raftd/etcd) |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    : ['| op | clients | raftd ops/s | p50 ms | p99 ms | errors |', '|---|---:|---:|---:|---:|---:|'];
  for (const x of a.rows) {
    const op = x.op === 'read' ? 'linearizable read' : x.op;
    const y = b?.rows.find((r) => r.op === x.op && r.concurrency === x.concurrency);
    if (b && y) lines.push(`| ${op} | ${x.concurrency} | ${f(x.opsPerSec)} | ${f(y.opsPerSec)} | ${(x.opsPerSec / y.opsPerSec).toFixed(2)}x | ${ms(x.p50Ms)} | ${ms(y.p50Ms)} | ${ms(x.p99Ms)} | ${ms(y.p99Ms)} | ${x.errors}/${y.errors} |`);
    else if (!b) lines.push(`| ${op} | ${x.concurrency} | ${f(x.opsPerSec)} | ${ms(x.p50Ms)} | ${ms(x.p99Ms)} | ${x.errors} |`);
  }
  const labels = Object.values(j.results).map((r) => `- ${r.label}`).join('\n');
  return `${lines.join('\n')}\n\n${labels}\n- load average before/after the KV bench: ${j.loadavgBefore.map((x) => x.toFixed(2)).join(' ')} / ${j.loadavgAfter.map((x) => x.toFixed(2)).join(' ')}`;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'not found';
  }
}

async function machine(): Promise<string[]> {
  let chVersion = 'unknown';
  try {
    const chdb = (await import('chdb')) as { query: (sql: string, format: string) => string };
    chVersion = chdb.query('SELECT version()', 'TSV').trim();
  } catch {
    /* reported as unknown */
  }
  const pkg = (name: string) => {
    try {
      return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return '?';
    }
  };
  const etcd = (sh('etcd', ['--version']).split('\n')[0] ?? 'not found').replace(/^etcd Version:\s*/, 'etcd ');
  return [
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores (nproc ${sh('nproc', [])})`,
    `- memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- kernel: ${sh('uname', ['-sr'])}`,
    `- node ${process.version}; chdb ${pkg('chdb')} (ClickHouse ${chVersion}); rocksdb (npm) ${pkg('rocksdb')}; @grpc/grpc-js ${pkg('@grpc/grpc-js')}; ${etcd}`,
    `- git commit: ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}`,
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, out: { type: 'string' }, json: { type: 'string' }, quick: { type: 'boolean' } } });
  const quick = values.quick === true;
  const tmp = mkdtempSync(join(tmpdir(), 'raftd-bench-all-'));
  const only = values.only?.split(',').map((s) => s.trim());
  const todo = steps(tmp, quick).filter((s) => !only || only.includes(s.key));
  const out = resolve(ROOT, values.out ?? 'docs/benchmarks.md');
  const jsonOut = resolve(ROOT, values.json ?? 'docs/benchmarks.json');
  const budgetMin = quick ? 12 : 30;
  const started = new Date();
  const laStart = loadavg();
  const results: StepResult[] = [];
  process.stdout.write(`npm run bench${quick ? ' --quick' : ''}: ${todo.length} benchmarks, at most ${budgetMin} min; load average now ${laStart.map((x) => x.toFixed(2)).join(' ')}\n`);
  // The whole run must end within its budget: each bench gets its own limit, cut to what is left
  // (the last minute is for the teardown and this file).
  const deadline = started.getTime() + (budgetMin - 1) * 60_000;
  for (const [i, s] of todo.entries()) {
    const left = Math.floor((deadline - Date.now()) / 1000);
    if (left < 30) {
      results.push({ step: s, ok: false, seconds: 0, output: '', failure: `skipped: the ${budgetMin}-minute budget was used up` });
      process.stdout.write(`\n[${i + 1}/${todo.length}] ${s.key}: skipped (out of time)\n`);
      continue;
    }
    process.stdout.write(`\n[${i + 1}/${todo.length}] ${s.title}: ${command(s)}\n`);
    const r = await run(s, Math.min(s.limitSec, left));
    results.push(r);
    process.stdout.write(`[${i + 1}/${todo.length}] ${s.key}: ${r.ok ? 'done' : `FAILED (${r.failure})`} in ${r.seconds.toFixed(0)} s\n`);
  }
  const laEnd = loadavg();
  const get = (k: string) => results.find((r) => r.step.key === k);
  const section = (r: StepResult | undefined, pick?: (ts: string[]) => string[]): string => {
    if (!r) return '_not run in this pass_';
    const ts = tables(r.output);
    const chosen = pick ? pick(ts) : ts;
    const body = chosen.length ? chosen.join('\n\n') : '```\n' + r.output.trim().split('\n').slice(-25).join('\n') + '\n```';
    return (r.ok ? '' : `**This run failed: ${r.failure}.** Last output:\n\n`) + body;
  };

  const benchResults: BenchResult[] = results.flatMap((r) => parseResults(r.output));
  const kvFile = join(tmp, 'kv.json');
  const kvJson = existsSync(kvFile) ? (JSON.parse(readFileSync(kvFile, 'utf8')) as KvJson) : undefined;
  const summary = goals(benchResults, kvJson);
  const goalsMd = goalsMarkdown(summary.goals);
  const cpuMd = cpuMarkdown(summary.cpu);
  const kv = get('kv');
  const gw = get('gateway');
  const gwTables = gw ? tables(gw.output) : [];
  const doc = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench\` (scripts/bench/all.ts) on ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
      `${((Date.now() - started.getTime()) / 60_000).toFixed(1)} minutes. Every figure below is from that one run, on a shared ` +
      'machine: other work was running beside it, so read ratios (both sides measured in the same run) rather than absolute numbers.',
    '',
    '## Goals (issue 24)',
    '',
    `Each goal with our figure and the reference's from this run${quick ? ' (`--quick`: short settings, noisier figures)' : ''}; "not measured" when its bench did not run or failed. Load average = 1-minute load when the figure was taken (2 cores).`,
    '',
    goalsMd,
    '',
    'CPU per operation by process group (process CPU time from /proc, every thread):',
    '',
    cpuMd,
    '',
    '## Machine',
    '',
    ...(await machine()),
    `- load average (1/5/15 min) at the start: ${laStart.map((x) => x.toFixed(2)).join(' ')}; at the end: ${laEnd.map((x) => x.toFixed(2)).join(' ')}` +
      (laStart[0]! > cpus().length ? ` — above the core count: the machine was busy with other work, figures are pessimistic` : ''),
    '',
    '## raftd KV vs etcd',
    '',
    kv ? `${kv.step.about}` : '',
    '',
    kv ? (kvTable(join(tmp, 'kv.json')) ?? section(kv)) : '_not run in this pass_',
    '',
    '## Inserts through the gateway vs straight into ClickHouse',
    '',
    gw ? gw.step.about : '',
    '',
    gw ? (gw.ok && gwTables[0] ? gwTables[0] : section(gw)) : '_not run in this pass_',
    '',
    'Where the time goes: CPU per insert on each side. When the cluster\'s CPU, spread over every core, takes as long as the measured inserts did, the cluster is CPU-bound and the ceiling row is what this machine allows.',
    '',
    gw ? (gw.ok && gwTables[1] ? gwTables[1] : section(gw)) : '_not run in this pass_',
    '',
    '## Consistent vs local read latency',
    '',
    'The same point query on one node: the local endpoint reads that replica; the consistent endpoint first does a ReadIndex barrier on the groups the query touches, then the same read.',
    '',
    gw ? (gw.ok && gwTables[2] ? gwTables[2] : section(gw)) : '_not run in this pass_',
    '',
    '## Throughput vs number of groups',
    '',
    get('daemon')?.step.about ?? '',
    '',
    section(get('daemon')),
    '',
    '## The parts',
    '',
    ...['clickhouse', 'core', 'storage', 'transport', 'app-calls', 'idle'].flatMap((k) => {
      const r = get(k);
      if (!r) return [];
      const ts = tables(r.output);
      // Benches that print no markdown table: their last lines, as printed.
      const body = r.ok && ts.length ? ts.join('\n\n') : (r.ok ? '' : `**This run failed: ${r.failure}.**\n\n`) + '```\n' + r.output.trim().split('\n').filter((l) => !/starting|warming|measuring|@@bench-result/.test(l)).slice(-30).join('\n') + '\n```';
      return [`### ${r.step.title}`, '', r.step.about, '', body, ''];
    }),
    '## Reproduce',
    '',
    '```',
    'npm ci',
    'bash scripts/install-etcd.sh     # etcd for the KV comparison (Debian etcd-server)',
    'npm run bench                    # all of the below, then this file (--quick: short settings)',
    ...results.map((r) => `${command(r.step).padEnd(70)} # ${r.step.title}${r.ok ? '' : ' (failed in this run)'}`),
    '```',
    '',
    'Each bench accepts longer durations for steadier figures (see the comment at the top of scripts/bench/NAME.ts).',
    `Run times in this pass: ${results.map((r) => `${r.step.key} ${r.seconds.toFixed(0)} s`).join(', ')}.`,
    '',
  ].join('\n');
  // Hand-written notes (profiles, dated before/after sections) live after this marker and survive a
  // regeneration of the tables above it.
  const previous = existsSync(out) ? readFileSync(out, 'utf8') : '';
  const kept = previous.indexOf(KEPT_MARKER);
  writeFileSync(out, kept >= 0 ? `${doc}\n${previous.slice(kept)}` : doc);
  writeFileSync(jsonOut, JSON.stringify({ started: started.toISOString(), quick, loadavgStart: laStart, loadavgEnd: laEnd, goals: summary.goals, cpu: summary.cpu, results: benchResults, kv: kvJson ?? null, steps: results.map((r) => ({ key: r.step.key, command: command(r.step), ok: r.ok, seconds: r.seconds, failure: r.failure ?? null })) }, null, 2) + '\n');
  process.stdout.write(`\n## Goals (issue 24)\n\n${goalsMd}\n\nCPU per operation by process group:\n\n${cpuMd}\n\nload average start ${laStart.map((x) => x.toFixed(2)).join(' ')}, end ${laEnd.map((x) => x.toFixed(2)).join(' ')}\n`);
  rmSync(tmp, { recursive: true, force: true });
  const failed = results.filter((r) => !r.ok);
  process.stdout.write(`\nwrote ${out} and ${jsonOut} (${((Date.now() - started.getTime()) / 60_000).toFixed(1)} min)${failed.length ? `; failed: ${failed.map((r) => r.step.key).join(', ')}` : ''}\n`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
