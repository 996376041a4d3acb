// `npm run sim -- --seeds N [--start S] [--nodes 3|5|both] [--seed S] [--fault NAME]`
// Runs simulated seeds, prints progress and a summary; exits 1 if any run violated a property.

import { SIM_FAULTS, runSeed, type SimFault, type SimResult, type Violation } from './simulator.js';

interface Args {
  seeds: number;
  start: number;
  nodes: (3 | 5)[];
  fault?: SimFault;
  quiet: boolean;
}

function usage(msg?: string): never {
  if (msg) console.error(`sim: ${msg}`);
  console.error(
    'usage: npm run sim -- [--seeds N] [--start S] [--seed S] [--nodes 3|5|both] [--fault ' + SIM_FAULTS.join('|') + '] [--quiet]',
  );
  process.exit(2);
}

function parse(argv: string[]): Args {
  const a: Args = { seeds: 100, start: 1, nodes: [3], quiet: false };
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
      case '--fault': {
        const f = v();
        if (!(SIM_FAULTS as readonly string[]).includes(f)) usage(`unknown fault ${f}`);
        a.fault = f as SimFault;
        break;
      }
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
  return a;
}

function main(): void {
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
    `sim: ${args.seeds} seed(s) from ${args.start}, nodes ${args.nodes.join('+')}${args.fault ? `, deliberate fault ${args.fault}` : ''}`,
  );
  for (let s = args.start; s < args.start + args.seeds; s++) {
    for (const nodes of args.nodes) {
      const r: SimResult = runSeed(args.fault ? { seed: s, nodes, fault: args.fault } : { seed: s, nodes });
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

main();
