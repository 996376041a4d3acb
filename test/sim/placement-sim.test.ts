import { expect } from 'chai';
import { runPlacementSeed, type PlacementSimResult } from './placement-sim.js';

// Placement in the simulator (issue 21): real hosts placing groups on 3 of 4-5 nodes, the real
// rebalancer moving replicas as nodes join, are decommissioned, die, or die and come back, under
// crashes, partitions, pauses and message loss. Every seed must pass every property; the mutation
// (the new node given a group before it applied the meta log) must be caught within a bound.
// `npm run sim -- --placement --seeds N` soaks further.
const SEEDS = 200;
const GROUPS = 6;
const MUTATION_SEEDS = 20;

function total(results: PlacementSimResult[], k: string): number {
  return results.reduce((a, r) => a + (r.counts[k] ?? 0), 0);
}

describe('sim: placement (groups on 3 of N nodes, rebalanced by the meta leader)', function () {
  this.timeout(300_000);

  it('replays a seed exactly (same seed, same run)', async () => {
    const a = await runPlacementSeed({ seed: 5, groups: GROUPS });
    const b = await runPlacementSeed({ seed: 5, groups: GROUPS });
    expect(a).to.deep.equal(b);
  });

  it(`passes ${SEEDS} seeds with ${GROUPS} groups and no violation`, async () => {
    const t0 = Date.now();
    const results: PlacementSimResult[] = [];
    for (let s = 1; s <= SEEDS; s++) results.push(await runPlacementSeed({ seed: s, groups: GROUPS }));
    const steps = results.reduce((a, r) => a + r.steps, 0);
    const ops = results.reduce((a, r) => a + r.ops.ok + r.ops.reads, 0);
    console.log(`      ${results.length} runs, ${steps} steps, ${ops} completed client ops, ${total(results, 'replica-dropped')} replicas dropped by moves, in ${Date.now() - t0} ms`);
    const bad = results.filter((r) => r.violation);
    expect(bad.map((r) => `${r.violation!.property}: ${r.violation!.detail.split('\n')[0]} -- ${r.violation!.replay}`)).to.deep.equal([]);
    // Every scenario ran, and under faults, or passing proves nothing.
    for (const sc of ['join', 'decommission', 'dead', 'dead-back']) expect(results.filter((r) => r.scenario === sc).length, sc).to.be.greaterThan(SEEDS / 8);
    expect(total(results, 'node-joined')).to.be.greaterThan(SEEDS / 8);
    expect(total(results, 'node-decommissioned')).to.be.greaterThan(SEEDS / 8);
    expect(total(results, 'node-back')).to.be.greaterThan(SEEDS / 8);
    expect(total(results, 'replica-dropped')).to.be.greaterThan(SEEDS);
    expect(total(results, 'crash')).to.be.greaterThan(SEEDS / 2);
    expect(total(results, 'partition')).to.be.greaterThan(SEEDS / 2);
    expect(total(results, 'meta-message-lost')).to.be.greaterThan(0);
    expect(results.reduce((a, r) => a + r.ops.ok, 0)).to.be.greaterThan(SEEDS * 20);
    // Settled: every active node within one group of the others.
    for (const r of results) {
      const g = r.perNode!.map((n) => n.groups);
      expect(Math.max(...g) - Math.min(...g), `seed ${r.seed}`).to.be.at.most(1);
    }
  });

  it('evens bytes per node as well as groups when a node joins (groups of very different sizes, bytes fed to the planner)', async () => {
    for (let s = 1; s <= 5; s++) {
      const r = await runPlacementSeed({ seed: s, groups: 12, scenario: 'join', bytes: true });
      expect(r.violation, r.violation?.detail).to.equal(undefined);
      const bytes = r.perNode!.map((n) => n.bytes);
      const spread = (Math.max(...bytes) - Math.min(...bytes)) / Math.max(...bytes);
      console.log(`      seed ${s}: bytes per node ${bytes.join(' ')} (spread ${(spread * 100).toFixed(1)}%), groups ${r.perNode!.map((n) => n.groups).join(' ')}`);
      expect(r.perNode!.length).to.equal(5);
      expect(spread, `seed ${s}`).to.be.at.most(0.15);
    }
  });

  it(`finds the mutation addBeforeMetaApplied within ${MUTATION_SEEDS} seeds (a replica dropped after it was given back)`, async () => {
    const t0 = Date.now();
    let found: PlacementSimResult | undefined;
    for (let s = 1; s <= MUTATION_SEEDS && !found; s++) {
      const r = await runPlacementSeed({ seed: s, groups: GROUPS, fault: 'addBeforeMetaApplied' });
      if (r.violation) found = r;
    }
    expect(found, `no violation in ${MUTATION_SEEDS} seeds`).to.not.equal(undefined);
    const v = found!.violation!;
    console.log(`      addBeforeMetaApplied: ${v.property} at seed ${v.seed} (${Date.now() - t0} ms): ${v.detail.split('\n')[0]}`);
    console.log(`        replay: ${v.replay}`);
    expect(v.property).to.equal('voter-log-kept');
    expect(v.replay).to.equal(`npm run sim -- --placement --seed ${v.seed} --groups ${GROUPS} --fault addBeforeMetaApplied`);
    const again = await runPlacementSeed({ seed: v.seed, groups: GROUPS, fault: 'addBeforeMetaApplied' });
    expect(again.violation?.detail).to.equal(v.detail);
  });

  it(`passes the mutation's schedule (${MUTATION_SEEDS} seeds, dead node back with a lagging meta log) without the mutation`, async () => {
    const bad: string[] = [];
    for (let s = 1; s <= MUTATION_SEEDS; s++) {
      const r = await runPlacementSeed({ seed: s, groups: GROUPS, schedule: 'addBeforeMetaApplied' });
      if (r.violation) bad.push(`${r.violation.property}: ${r.violation.detail.split('\n')[0]} -- ${r.violation.replay}`);
    }
    expect(bad).to.deep.equal([]);
  });
});
