// `npm run sim -- --placement [--seeds N] [--start S] [--seed S] [--groups G] [--scenario NAME] [--bytes] [--fault NAME | --schedule NAME]`
// (--schedule: the schedule tuned for that mutation, without it)
// Runs the placement simulator (placement-sim.ts); exits 1 if any run violated a property.

import { PLACEMENT_FAULTS, PLACEMENT_SCENARIOS, runPlacementSeed, type PlacementSimOptions, type PlacementScenario, type PlacementSimFault } from './placement-sim.js';

function usage(msg?: string): never {
  if (msg) console.error(`sim: ${msg}`);
  console.error(`usage: npm run sim -- --placement [--seeds N] [--start S] [--seed S] [--groups G] [--scenario ${PLACEMENT_SCENARIOS.join('|')}] [--bytes] [--fault|--schedule ${PLACEMENT_FAULTS.join('|')}]`);
  process.exit(2);
}

export async function placementCli(argv: string[]): Promise<void> {
  let seeds = 100;
  let start = 1;
  let groups = 6;
  let scenario: PlacementScenario | undefined;
  let fault: PlacementSimFault | undefined;
  let schedule: PlacementSimFault | undefined;
  let bytes = false;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => argv[++i] ?? usage(`${k} needs a value`);
    const int = (s: string, lo: number, hi: number): number => {
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n < lo || n > hi) usage(`${k}: not an integer in ${lo}..${hi}: ${s}`);
      return n;
    };
    if (k === '--placement') continue;
    else if (k === '--seeds') seeds = int(v(), 1, 1_000_000);
    else if (k === '--start') start = int(v(), 0, 2 ** 31);
    else if (k === '--seed') (start = int(v(), 0, 2 ** 31)), (seeds = 1);
    else if (k === '--groups') groups = int(v(), 1, 64);
    else if (k === '--bytes') bytes = true;
    else if (k === '--scenario') {
      const x = v();
      if (!(PLACEMENT_SCENARIOS as readonly string[]).includes(x)) usage(`unknown scenario ${x}`);
      scenario = x as PlacementScenario;
    } else if (k === '--fault' || k === '--schedule') {
      const x = v();
      if (!(PLACEMENT_FAULTS as readonly string[]).includes(x)) usage(`unknown placement fault ${x}`);
      if (k === '--fault') fault = x as PlacementSimFault;
      else schedule = x as PlacementSimFault;
    } else usage(`unknown argument ${k}`);
  }
  console.log(`sim (placement: real hosts, R 3 of 4-5 nodes, ${groups} groups, the real rebalancer): ${seeds} seed(s) from ${start}${scenario ? `, scenario ${scenario}` : ''}${fault ? `, deliberate fault ${fault}` : ''}`);
  const t0 = Date.now();
  let bad = 0;
  const counts: Record<string, number> = {};
  for (let s = start; s < start + seeds; s++) {
    const o: PlacementSimOptions = { seed: s, groups, ...(scenario ? { scenario } : {}), ...(fault ? { fault } : {}), ...(schedule ? { schedule } : {}), ...(bytes ? { bytes } : {}) };
    const r = await runPlacementSeed(o);
    counts[r.scenario] = (counts[r.scenario] ?? 0) + 1;
    for (const [k, n] of Object.entries(r.counts)) if (!k.startsWith('op-')) counts[k] = (counts[k] ?? 0) + n;
    if (seeds === 1) console.log(`seed ${s} (${r.scenario}): ${r.steps} steps, ${r.virtualMs} virtual ms; per node ${JSON.stringify(r.perNode ?? [])}`);
    if (r.violation) {
      bad++;
      console.log(`VIOLATION ${r.violation.property} seed ${s} (${r.scenario}): ${seeds === 1 ? r.violation.detail : r.violation.detail.split('\n')[0]}`);
      console.log(`  replay: ${r.violation.replay}`);
    }
  }
  console.log(`\nruns: ${seeds}, violations: ${bad}, wall ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const k of Object.keys(counts).sort()) console.log(`  ${k.padEnd(28)} ${counts[k]}`);
  process.exitCode = bad > 0 ? 1 : 0;
}
