// `npm run sim -- --seeds N [--start S] [--nodes 3|5|both] [--groups G] [--seed S] [--fault NAME] [--core]`
// `npm run sim -- --placement ...`: the placement simulator (placement-cli.ts).
// Runs simulated seeds, prints progress and a summary; exits 1 if any run violated a property.
// By default each seed runs the real multi-group host (host-sim.ts) with G data groups per node;
// --core runs the Raft core alone (simulator.ts), with its own mutations.

import { SIM_FAULTS, runSeed, type SimFault, type SimResult, type Violation } from './simulator.js';
import { HOST_FAULTS, runHostSeed, type HostSimFault } from './host-sim.js';
import { placementCli } from './placement-cli.js';

interface Args {
  seeds: number;
  start: number;
  nodes: (3 | 5)[];
  groups: number;
  core: boolean;
  fault?: string;
  quiet: boolean;
}

function usage(msg?: string): never {
  if (msg) console.error(`sim: ${msg}`);
  console.error(
    'usage: npm run sim -- [--seeds N] [--start S] [--seed S] [--nodes 3|5|both] [--groups G] [--fault ' +
      HOST_FAULTS.join('|') +
      '] [--quiet]\n       npm run sim -- --core [--seeds N] [--start S] [--seed S] [--nodes 3|5|both] [--fault ' +
      SIM_FAULTS.join('|') +
      '] [--quiet]',
  );
  process.exit(2);
}

function parse(argv: string[]): Args {
  const a: Args = { seeds: 100, start: 1, nodes: [3], groups: 8, core: false, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) usage(`${k} needs a value`);
      return x;
    };
    const int = (s: string) => {
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n < 0) usage(`${k}: not a non-negative integer: ${s}`);
      return n;
    };
    switch (k) {
      case '--seeds':
        a.seeds = int(v());
        break;
      case '--start':
        a.start = int(v());
        break;
      case '--seed':
        a.start = int(v());
        a.seeds = 1;
        break;
      case '--nodes': {
        const x = v();
        if (x === '3') a.nodes = [3];
        else if (x === '5') a.nodes = [5];
        else if (x === 'both') a.nodes = [3, 5];
        else usage(`--nodes must be 3, 5 or both`);
        break;
      }
      case '--fault':
        a.fault = v();
        break;
      case '--groups':
        a.groups = int(v());
        if (a.groups < 1 || a.groups > 256) usage('--groups must be 1..256');
        break;
      case '--core':
        a.core = true;
        break;
      case '--quiet':
        a.quiet = true;
        break;
      case '-h':
      case '--help':
        usage();
      default:
        usage(`unknown argument ${k}`);
    }
  }
  if (a.fault !== undefined && !((a.core ? SIM_FAULTS : HOST_FAULTS) as readonly string[]).includes(a.fault)) {
    usage(`unknown fault ${a.fault}${a.core ? '' : ' (core-only faults need --core)'}`);
  }
  return a;
}

async function one(a: Args, seed: number, nodes: 3 | 5): Promise<SimResult> {
  if (a.core) return runSeed(a.fault ? { seed, nodes, fault: a.fault as SimFault } : { seed, nodes });
  const r = await runHostSeed(a.fault ? { seed, nodes, groups: a.groups, fault: a.fault as HostSimFault } : { seed, nodes, groups: a.groups });
  return r as unknown as SimResult;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const t0 = Date.now();
  let lastPrint = t0;
  let runs = 0;
  let steps = 0;
  let virtualMs = 0;
  const faults: Record<string, number> = {};
  const ops = { ok: 0, failed: 0, indeterminate: 0, reads: 0 };
  const violations: Violation[] = [];
  const total = args.seeds * args.nodes.length;
  const single = total === 1;
  console.log(
    `sim (${args.core ? 'Raft core alone' : `real host, ${args.groups} data group(s) per node`}): ${args.seeds} seed(s) from ${args.start}, nodes ${args.nodes.join('+')}${args.fault ? `, deliberate fault ${args.fault}` : ''}`,
  );
  for (let s = args.start; s < args.start + args.seeds; s++) {
    for (const nodes of args.nodes) {
      const r: SimResult = await one(args, s, nodes);
      runs++;
      steps += r.steps;
      virtualMs += r.virtualMs;
      for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
      ops.ok += r.ops.ok;
      ops.failed += r.ops.failed;
      ops.indeterminate += r.ops.indeterminate;
      ops.reads += r.ops.reads;
      if (r.violation) {
        violations.push(r.violation);
        const v = r.violation;
        console.log(`VIOLATION ${v.property} seed ${v.seed} nodes ${v.nodes}${v.node !== undefined ? ` node ${v.node}` : ''}: ${single ? v.detail : v.detail.split('\n')[0]}`);
        console.log(`  replay: ${v.replay}`);
      }
      const now = Date.now();
      if (!args.quiet && (now - lastPrint > 2000 || runs === total)) {
        lastPrint = now;
        console.log(`  ${runs}/${total} runs, ${steps} steps, ${violations.length} violation(s), ${((now - t0) / 1000).toFixed(1)}s`);
      }
    }
  }
  const wall = (Date.now() - t0) / 1000;
  console.log('');
  console.log(`seeds run:       ${runs} (${args.seeds} seed(s) x nodes ${args.nodes.join('+')})`);
  console.log(`virtual steps:   ${steps} (${(virtualMs / 1000).toFixed(1)} virtual s)`);
  console.log(`client ops:      ${ops.ok} writes ok, ${ops.reads} reads ok, ${ops.failed} refused/failed, ${ops.indeterminate} indeterminate`);
  console.log('faults injected:');
  for (const k of Object.keys(faults).sort()) console.log(`  ${k.padEnd(28)} ${faults[k]}`);
  console.log(`violations:      ${violations.length}`);
  for (const v of violations.slice(0, 50)) console.log(`  ${v.property} (seed ${v.seed}, nodes ${v.nodes}): ${v.replay}`);
  console.log(`wall time:       ${wall.toFixed(1)}s (${(runs / wall).toFixed(1)} runs/s, ${Math.round(steps / wall)} steps/s)`);
  process.exitCode = violations.length > 0 ? 1 : 0;
}

// --placement: the placement simulator (placement-cli.ts) takes over the arguments.
if (process.argv.includes('--placement')) void placementCli(process.argv.slice(2));
else void main();
