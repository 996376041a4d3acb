// npm run bench:cut — what the consistent cut (gateway/cut.ts) costs a consistent read of a sharded
// table, against the per-group read of before (rafthouse --consistent-cut off), in one run: two 3-node
// clusters side by side, measured in alternating phases (the machine is shared and noisy) of
//   idle   readers only;
//   load   readers while sequential writers insert small batches into the sharded table.
// Per side: read p50/p99, reads/s, inserts/s, the cut's rounds per read and its RH_CUT_UNAVAILABLE
// failures; then the ratios cut / per-group.
// Options: --groups G (default 4), --seconds S per phase (default 10), --phases N (default 2 per side
//   and kind), --writers W (default 4), --readers R (default 2), --rows N per insert (default 100).

import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { RafthouseCluster } from '../../test/integration/rafthouse/harness.js';
import { percentileOf } from './stats.js';

interface Side { name: 'cut' | 'per-group'; cluster: RafthouseCluster }
interface Tally { lat: number[]; reads: number; inserts: number; rounds: number; unavailable: number; ms: number }

async function post(base: string, sql: string, body?: string): Promise<{ status: number; text: string; rounds: number }> {
  const qs = new URLSearchParams(body === undefined ? {} : { query: sql });
  const res = await fetch(`${base}/?${qs}`, { method: 'POST', body: body ?? sql, signal: AbortSignal.timeout(60_000) });
  const summary = JSON.parse(res.headers.get('x-clickhouse-summary') ?? '{}') as { rafthouse_cut_attempts?: string };
  return { status: res.status, text: await res.text(), rounds: Number(summary.rafthouse_cut_attempts ?? 0) };
}

async function phase(side: Side, seconds: number, writers: number, readers: number, rows: number, tally: Tally, seq: { n: number }): Promise<void> {
  const nodes = side.cluster.nodes.map((n) => n.consistentUrl);
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const writer = async (w: number) => {
    while (performance.now() < until) {
      const lines: string[] = [];
      for (let i = 0; i < rows; i++) {
        const k = seq.n++;
        lines.push(JSON.stringify({ k, w, v: k % 1000 }));
      }
      const r = await post(nodes[w % nodes.length]!, 'INSERT INTO cut_bench FORMAT JSONEachRow', lines.join('\n'));
      if (r.status === 200) tally.inserts++;
    }
  };
  const reader = async (i: number) => {
    while (performance.now() < until) {
      const s = performance.now();
      const r = await post(nodes[1 + (i % (nodes.length - 1))]!, 'SELECT count(), sum(v) FROM cut_bench');
      if (r.status !== 200) {
        if (/RH_CUT_UNAVAILABLE/.test(r.text)) tally.unavailable++;
        else throw new Error(`read failed: ${r.text}`);
        continue;
      }
      tally.lat.push(performance.now() - s);
      tally.reads++;
      tally.rounds += r.rounds;
    }
  };
  await Promise.all([...Array.from({ length: writers }, (_, w) => writer(w)), ...Array.from({ length: readers }, (_, i) => reader(i))]);
  tally.ms += performance.now() - t0;
}

function line(name: string, t: Tally): string {
  const s = t.ms / 1000;
  return `${name.padEnd(10)} read p50 ${percentileOf(t.lat, 50).toFixed(1).padStart(7)} ms  p99 ${percentileOf(t.lat, 99).toFixed(1).padStart(7)} ms  ` +
    `${(t.reads / s).toFixed(1).padStart(6)} reads/s  ${(t.inserts / s).toFixed(1).padStart(6)} inserts/s` +
    (name.startsWith('cut') ? `  rounds/read ${(t.rounds / Math.max(1, t.reads)).toFixed(2)}  unavailable ${t.unavailable}` : '');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    groups: { type: 'string' }, seconds: { type: 'string' }, phases: { type: 'string' }, writers: { type: 'string' }, readers: { type: 'string' }, rows: { type: 'string' },
  } });
  const groups = Number(values.groups ?? 4);
  const seconds = Number(values.seconds ?? 10);
  const phases = Number(values.phases ?? 2);
  const writers = Number(values.writers ?? 4);
  const readers = Number(values.readers ?? 2);
  const rows = Number(values.rows ?? 100);
  process.stdout.write(`starting two 3-node RaftHouse clusters (${groups} groups): --consistent-cut on and off...\n`);
  const sides: Side[] = [];
  try {
    for (const [name, flag] of [['cut', 'on'], ['per-group', 'off']] as const) {
      const cluster = await RafthouseCluster.start({ groups, args: ['--consistent-cut', flag] });
      sides.push({ name, cluster });
      const r = await post(cluster.nodes[0]!.consistentUrl, "CREATE TABLE cut_bench (k UInt64, w UInt32, v UInt32) ENGINE = MergeTree ORDER BY k SETTINGS rafthouse_shard_key = 'k'");
      if (r.status !== 200) throw new Error(r.text);
    }
    const tallies = new Map<string, Tally>();
    const tally = (k: string) => {
      if (!tallies.has(k)) tallies.set(k, { lat: [], reads: 0, inserts: 0, rounds: 0, unavailable: 0, ms: 0 });
      return tallies.get(k)!;
    };
    const seq = { n: 0 };
    for (let p = 0; p < phases; p++) {
      // Alternate which side goes first, so drift in the machine's load does not favour one.
      const order = p % 2 === 0 ? sides : [...sides].reverse();
      for (const kind of ['idle', 'load'] as const) {
        for (const side of order) {
          process.stdout.write(`phase ${p + 1}/${phases} ${kind} ${side.name}...\n`);
          await phase(side, seconds, kind === 'load' ? writers : 0, readers, rows, tally(`${side.name} ${kind}`), seq);
        }
      }
    }
    process.stdout.write(`\nconsistent reads of a sharded table (${groups} groups), ${readers} readers on nodes 2-3, ${writers} writers x ${rows} rows under load:\n`);
    for (const kind of ['idle', 'load']) {
      const c = tally(`cut ${kind}`);
      const g = tally(`per-group ${kind}`);
      process.stdout.write(`${kind}:\n  ${line('cut', c)}\n  ${line('per-group', g)}\n`);
      const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
      process.stdout.write(`  cut / per-group: p50 x${ratio(percentileOf(c.lat, 50), percentileOf(g.lat, 50))}, p99 x${ratio(percentileOf(c.lat, 99), percentileOf(g.lat, 99))}, ` +
        `reads/s x${ratio(c.reads / c.ms, g.reads / g.ms)}, inserts/s x${ratio(c.inserts / Math.max(1, c.ms), g.inserts / Math.max(1, g.ms))}\n`);
    }
  } finally {
    await Promise.all(sides.map((s) => s.cluster.destroy()));
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cut: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
