// Issue 24's goals, from one `npm run bench` run: each sub-bench prints `@@bench-result {...}` lines
// (stats.ts emitResult) and bench:kv writes a JSON file; this turns them into one row per goal (our
// figure, the reference's figure from the same run, the ratio, the goal, met or not, the load average
// next to it) and one row per measured process group (CPU per operation).

export type BenchResult = { key: string } & Record<string, number | string | null>;

/** The `@@bench-result` lines of a bench's output. */
export function parseResults(output: string): BenchResult[] {
  const out: BenchResult[] = [];
  for (const line of output.split('\n')) {
    const i = line.indexOf('@@bench-result ');
    if (i < 0) continue;
    try {
      out.push(JSON.parse(line.slice(i + '@@bench-result '.length)) as BenchResult);
    } catch {
      // a truncated line (the bench was killed while writing): skipped
    }
  }
  return out;
}

export interface KvRow { op: string; concurrency: number; opsPerSec: number; p50Ms: number; p99Ms: number; errors: number; cores: Record<string, number> }
export interface KvJson { loadavgBefore: number[]; loadavgAfter: number[]; results: Record<string, { label: string; rows: KvRow[] }> }

export interface GoalRow {
  area: string;
  goal: string;
  /** Our figure and the reference's (same run), as numbers for the JSON file. */
  ours: number | null;
  reference: number | null;
  unit: string;
  /** ours / reference, or null without a reference. */
  ratio: number | null;
  /** The target, as written in issue 24. */
  target: string;
  met: boolean | null;
  loadavg: number | null;
  note?: string;
}

export interface CpuRow {
  bench: string;
  operation: string;
  group: string;
  cpuMsPerOp: number;
  loadavg: number | null;
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export function goals(results: BenchResult[], kv: KvJson | undefined): { goals: GoalRow[]; cpu: CpuRow[] } {
  const rows: GoalRow[] = [];
  const cpu: CpuRow[] = [];
  const missing = (area: string, goal: string, target: string, why: string): void => {
    rows.push({ area, goal, ours: null, reference: null, unit: '', ratio: null, target, met: null, loadavg: null, note: why });
  };
  const ratioRow = (area: string, goal: string, unit: string, ours: number | null, ref: number | null, target: string, ok: (ratio: number) => boolean, load: number | null, note?: string): void => {
    const ratio = ours !== null && ref !== null && ref !== 0 ? ours / ref : null;
    rows.push({ area, goal, ours, reference: ref, unit, ratio, target, met: ratio === null ? null : ok(ratio), loadavg: load, ...(note ? { note } : {}) });
  };
  const plainRow = (area: string, goal: string, unit: string, ours: number | null, target: string, ok: (x: number) => boolean, load: number | null, note?: string): void => {
    rows.push({ area, goal, ours, reference: null, unit, ratio: null, target, met: ours === null ? null : ok(ours), loadavg: load, ...(note ? { note } : {}) });
  };

  // ---- KV vs etcd (bench:kv's JSON)
  const kvLoad = kv ? num(kv.loadavgAfter[0]) : null;
  const kvRow = (system: string, op: string, c: number) => kv?.results[system]?.rows.find((r) => r.op === op && r.concurrency === c);
  const cpuPerOp = (r: KvRow | undefined) => (r && r.opsPerSec > 0 ? (Object.values(r.cores).reduce((a, b) => a + b, 0) / r.opsPerSec) * 1000 : null);
  for (const op of ['write', 'read']) {
    const name = op === 'read' ? 'linearizable read' : 'write';
    const a = kvRow('raftd', op, 64);
    const b = kvRow('etcd', op, 64);
    if (!a) {
      missing('KV', `${name}s at 64 clients`, '', 'bench:kv did not run or has no 64-client point');
      continue;
    }
    ratioRow('KV', `cluster CPU per ${name} at 64 clients (every raftd and app process)`, 'ms', cpuPerOp(a), cpuPerOp(b), '<= 0.5x etcd', (r) => r <= 0.5, kvLoad, b ? undefined : 'no etcd in this run: bash scripts/install-etcd.sh');
    ratioRow('KV', `${name}s/s at 64 clients`, '/s', a.opsPerSec, b?.opsPerSec ?? null, '>= 2x etcd', (r) => r >= 2, kvLoad);
    for (const [system, r] of [['raftd', a], ['etcd', b]] as const) {
      if (!r || !(r.opsPerSec > 0)) continue;
      for (const [role, cores] of Object.entries(r.cores)) cpu.push({ bench: 'kv', operation: `${name} (64 clients)`, group: system === 'etcd' ? 'etcd (reference)' : role, cpuMsPerOp: (cores / r.opsPerSec) * 1000, loadavg: kvLoad });
    }
  }

  // ---- RaftHouse gateway (bench:gateway)
  const gw = results.find((r) => r.key === 'gateway');
  if (gw) {
    const load = num(gw.loadavg);
    ratioRow('RaftHouse', "the Raft path's CPU per 10,000-row insert (cluster CPU - 3 x one direct insert) vs one direct insert", 'ms', num(gw.raftPathCpuMs), num(gw.directCpuMs), '<= 0.5x', (r) => r <= 0.5, load);
    ratioRow('RaftHouse', 'gateway rows/s vs direct (10,000-row inserts, alternating rounds)', 'rows/s', num(gw.gatewayRowsPerSec), num(gw.directRowsPerSec), '>= 45%', (r) => r >= 0.45, load);
    plainRow('RaftHouse', 'consistent point query minus local, p50 (median pair difference)', 'ms', num(gw.consistentMinusLocalP50Ms), '<= 0.5 ms', (x) => x <= 0.5, load, `local p50 ${num(gw.localP50Ms)?.toFixed(2) ?? '?'} ms`);
    const op = '10,000-row insert';
    for (const [group, field] of [['raftd x3', 'raftdCpuMs'], ['rafthouse x3 (gateway + replica)', 'rafthouseCpuMs'], ['direct chdb (reference)', 'directCpuMs']] as const) {
      const v = num(gw[field]);
      if (v !== null) cpu.push({ bench: 'gateway', operation: op, group, cpuMsPerOp: v, loadavg: load });
    }
  } else {
    missing('RaftHouse', 'gateway inserts and consistent reads', '', 'bench:gateway did not run or failed');
  }

  // ---- raftd alone (bench:daemon, bench:idle)
  const d64 = results.find((r) => r.key === 'daemon' && r.groups === 64);
  if (d64) {
    const load = num(d64.loadavg);
    plainRow('raftd', 'CPU per 64-byte entry at 64 groups (3 processes, peak)', 'µs', num(d64.cpuUsPerEntry), '<= 5 µs', (x) => x <= 5, load, `main thread ${num(d64.mainThreadUsPerEntry)?.toFixed(1) ?? '?'} µs`);
    plainRow('raftd', 'committed entries/s at 64 groups', '/s', num(d64.entriesPerSec), '>= 250,000', (x) => x >= 250_000, load);
  } else {
    missing('raftd', 'CPU per entry at 64 groups', '<= 5 µs', 'bench:daemon did not run at 64 groups');
  }
  for (const d of results.filter((r) => r.key === 'daemon')) {
    const v = num(d.cpuUsPerEntry);
    if (v !== null) cpu.push({ bench: 'daemon', operation: `64-byte entry, ${d.groups} group(s)`, group: 'raftd x3', cpuMsPerOp: v / 1000, loadavg: num(d.loadavg) });
  }
  const idle = results.find((r) => r.key === 'idle');
  if (idle) {
    const load = num(idle.loadavg);
    const g = num(idle.groups) ?? 0;
    plainRow('raftd', `${g.toLocaleString('en-US')} groups elected and serving after start`, 's', num(idle.electedSec), '<= 10 s (at 10,000 groups)', (x) => x <= 10, load, g < 10_000 ? `measured at ${g} groups, not 10,000` : undefined);
    plainRow('raftd', `${g.toLocaleString('en-US')} idle groups, CPU of one process (worst of 3)`, '% core', num(idle.idlePctPerProcessMax), '< 10% (at 100,000 groups)', (x) => x < 10, load, `measured at ${g} groups, not 100,000`);
  } else {
    missing('raftd', 'election time and idle CPU of many groups', '', 'bench:idle did not run');
  }

  // ---- state machine (bench:clickhouse)
  const sm = results.find((r) => r.key === 'clickhouse' && r.batchRows === 10_000);
  if (sm) plainRow('state machine', 'apply rows/s as a share of direct inserts into the same engine, 10,000-row batches (median of per-round ratios; the reference is in the share)', 'ratio', num(sm.applyVsDirectRound), '>= 90%', (x) => x >= 0.9, num(sm.loadavg));
  else missing('state machine', 'apply vs direct at 10,000 rows', '>= 90%', 'bench:clickhouse did not run at 10,000 rows');

  // ---- groups are cheap in RaftHouse (bench:groups)
  const g16 = results.find((r) => r.key === 'groups' && r.groups === 16);
  const g256 = results.find((r) => r.key === 'groups' && r.groups === 256);
  if (g16 && g256) {
    const load = num(g256.loadavg);
    ratioRow('groups', 'sharded 10,000-row insert, 256 vs 16 groups (median)', 'ms', num(g256.insertMs), num(g16.insertMs), '<= 1.5x', (r) => r <= 1.5, load);
    ratioRow('groups', 'consistent read of a sharded table, 256 vs 16 groups (median)', 'ms', num(g256.readMs), num(g16.readMs), '<= 1.5x', (r) => r <= 1.5, load);
    plainRow('groups', 'fresh 256-group cluster: start to sharded CREATE accepted', 's', num(g256.createSec), '<= 10 s', (x) => x <= 10, load, `16 groups: ${num(g16.createSec)?.toFixed(1) ?? '?'} s`);
    ratioRow('groups', 'idle cluster CPU, 256 vs 16 groups', 'cores', num(g256.idleCores), num(g16.idleCores), '<= 1.2x', (r) => r <= 1.2, load);
  } else if (g16) {
    // The 256-group point did not finish: say how far it got (its CREATE is timed on its own).
    const c256 = results.find((r) => r.key === 'groups-create' && r.groups === 256);
    const create = c256 ? num(c256.createSec) : null;
    plainRow('groups', 'fresh 256-group cluster: start to sharded CREATE accepted', 's', create, '<= 10 s', (x) => x <= 10, c256 ? num(c256.loadavg) : null,
      c256 ? `16 groups: ${num(g16.createSec)?.toFixed(1) ?? '?'} s; the 256-group inserts and reads did not finish within the bench's limit` : `16 groups: ${num(g16.createSec)?.toFixed(1) ?? '?'} s; at 256 groups not accepted within the bench's limit`);
    if (!c256) rows[rows.length - 1]!.met = false;
    missing('groups', 'sharded insert, consistent read and idle CPU at 256 vs 16 groups', '<= 1.5x, <= 1.5x, <= 1.2x', 'the 256-group point did not finish');
  } else {
    missing('groups', 'RaftHouse at 256 vs 16 groups', '', 'bench:groups did not finish both points');
  }
  return { goals: rows, cpu };
}

function fmt(x: number | null, unit: string): string {
  if (x === null) return '–';
  if (unit === 'ratio') return `${(x * 100).toFixed(0)}%`;
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return `${x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })}${unit && unit !== '/s' && unit !== 'rows/s' ? ` ${unit}` : ''}`;
}

export function goalsMarkdown(rows: GoalRow[]): string {
  const lines = ['| area | goal | ours | reference (same run) | ratio | target | met | load avg |', '|---|---|---:|---:|---:|---|---|---:|'];
  for (const r of rows) {
    const ratio = r.ratio === null ? '–' : r.target.includes('%') ? `${(r.ratio * 100).toFixed(0)}%` : `${r.ratio.toFixed(2)}x`;
    const met = r.met === null ? 'not measured' : r.met ? 'yes' : 'no';
    lines.push(`| ${r.area} | ${r.goal}${r.note ? ` (${r.note})` : ''} | ${fmt(r.ours, r.unit)} | ${fmt(r.reference, r.unit)} | ${ratio} | ${r.target} | ${met} | ${r.loadavg?.toFixed(1) ?? '–'} |`);
  }
  return lines.join('\n');
}

export function cpuMarkdown(rows: CpuRow[]): string {
  const lines = ['| bench | operation | process group | CPU per operation | load avg |', '|---|---|---|---:|---:|'];
  for (const r of rows) {
    const v = r.cpuMsPerOp >= 1 ? `${r.cpuMsPerOp.toFixed(1)} ms` : `${(r.cpuMsPerOp * 1000).toFixed(1)} µs`;
    lines.push(`| ${r.bench} | ${r.operation} | ${r.group} | ${v} | ${r.loadavg?.toFixed(1) ?? '–'} |`);
  }
  return lines.join('\n');
}
