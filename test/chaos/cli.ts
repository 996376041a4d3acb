// npm run chaos -- --duration 600 --nemesis all [--workload kv|rafthouse|rafthouse-sharded] [--groups G] [--nodes 3|5] [--seed S]
//   [--clients N] [--keys N] [--reads linearizable|lease] [--dir DIR] [--break stale-reads]
// Prints faults injected, ops ok / failed / unknown, anomalies, and where the history is saved.
// Exit code: 0 clean, 1 anomalies found, 2 bad arguments.

import { parseNemesis } from './nemesis.js';
import { formatRafthouseReport, runRafthouseChaos } from './rafthouse.js';
import { formatReport, runChaos } from './runner.js';

function usage(msg: string): never {
  process.stderr.write(`chaos: ${msg}\nusage: npm run chaos -- --duration SECONDS --nemesis all|kill,pause,partition,transfer,member [--workload kv|rafthouse|rafthouse-sharded] [--groups G] [--nodes 3|5] [--seed S] [--clients N] [--keys N] [--reads linearizable|lease] [--dir DIR] [--break stale-reads] [--no-leader not-applied|unknown]\n`);
  process.exit(2);
}

const args = new Map<string, string>();
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) usage(`${a} needs a value`);
  args.set(a.slice(2), v);
  i++;
}
const known = new Set(['duration', 'nemesis', 'workload', 'nodes', 'seed', 'clients', 'keys', 'reads', 'dir', 'break', 'no-leader', 'groups']);
for (const k of args.keys()) if (!known.has(k)) usage(`unknown option --${k}`);
const int = (k: string, d: number): number => {
  const v = args.get(k);
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) usage(`--${k} must be a non-negative integer`);
  return n;
};
const workload = args.get('workload') ?? 'kv';
if (workload !== 'kv' && workload !== 'rafthouse' && workload !== 'rafthouse-sharded') usage(`--workload must be kv, rafthouse or rafthouse-sharded, got "${workload}"`);
const nodes = int('nodes', 3);
if (nodes !== 3 && nodes !== 5) usage('--nodes must be 3 or 5');
let nemesis;
try {
  nemesis = parseNemesis(args.get('nemesis') ?? 'all');
} catch (e) {
  usage((e as Error).message);
}
const reads = args.get('reads') ?? 'linearizable';
if (reads !== 'linearizable' && reads !== 'lease') usage('--reads must be linearizable or lease');
const brk = args.get('break');
// What a NO_LEADER answer to a write means: not applied (the documented contract) or unknown.
const noLeader = args.get('no-leader') ?? 'not-applied';
if (noLeader !== 'not-applied' && noLeader !== 'unknown') usage('--no-leader must be not-applied or unknown');
const seed = int('seed', Date.now() % 1_000_000);
const dir = args.get('dir');

const log = (line: string) => process.stdout.write(line + '\n');
if (workload === 'rafthouse' || workload === 'rafthouse-sharded') {
  const report = await runRafthouseChaos({
    nodes, durationMs: int('duration', 60) * 1000, nemesis, seed, clients: int('clients', nodes * 2), ...(dir ? { runDir: dir } : {}), log,
    ...(workload === 'rafthouse-sharded' ? { shardedGroups: int('groups', 4) } : {}),
  });
  process.stdout.write(formatRafthouseReport(report) + '\n');
  process.exit(report.anomalies.length === 0 ? 0 : 1);
}
const report = await runChaos({
  nodes,
  durationMs: int('duration', 60) * 1000,
  nemesis,
  seed,
  clients: int('clients', nodes * 2),
  keys: int('keys', 4),
  readConsistency: reads,
  trustNoLeader: noLeader === 'not-applied',
  ...(dir ? { runDir: dir } : {}),
  // A test hook that breaks raftd on purpose (daemon/test-hooks.ts), for showing that the checks catch a broken build.
  ...(brk ? { raftdEnv: { RAFTD_TEST_HOOKS: `faults,break-${brk}` } } : {}),
  log,
});
process.stdout.write(formatReport(report) + '\n');
process.exit(report.anomalies.length === 0 ? 0 : 1);
