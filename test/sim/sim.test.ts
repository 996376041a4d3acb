import { expect } from 'chai';
import { runSeed, type SimResult } from './simulator.js';

// The correct core under the full fault schedule: every seed must pass every property.
// 300 runs in total (3 and 5 nodes); sized to stay well inside `npm test`'s few minutes.
const SEEDS_PER_SIZE = 150;

function sweep(nodes: 3 | 5, seeds: number): { results: SimResult[]; ms: number } {
  const t0 = Date.now();
  const results: SimResult[] = [];
  for (let s = 1; s <= seeds; s++) results.push(runSeed({ seed: s, nodes }));
  return { results, ms: Date.now() - t0 };
}

function summarize(results: SimResult[]): string {
  const steps = results.reduce((a, r) => a + r.steps, 0);
  const ops = results.reduce((a, r) => a + r.ops.ok + r.ops.reads, 0);
  const faults: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
  return `${results.length} runs, ${steps} steps, ${ops} completed client ops, faults ${JSON.stringify(faults)}`;
}

describe('sim: deterministic cluster simulator', function () {
  // ~6 s per 150 seeds on an idle 2-core machine; room for a loaded one.
  this.timeout(180_000);
  it('replays a seed exactly (same seed, same run)', () => {
    const a = runSeed({ seed: 42, nodes: 3 });
    const b = runSeed({ seed: 42, nodes: 3 });
    expect(a).to.deep.equal(b);
    const c = runSeed({ seed: 43, nodes: 3 });
    expect(c.steps).to.not.equal(a.steps);
  });

  for (const nodes of [3, 5] as const) {
    it(`passes ${SEEDS_PER_SIZE} seeds with ${nodes} nodes and no violation`, function () {
      const { results, ms } = sweep(nodes, SEEDS_PER_SIZE);
      const bad = results.filter((r) => r.violation);
      console.log(`      ${nodes} nodes: ${summarize(results)} in ${ms} ms`);
      expect(bad.map((r) => `${r.violation!.property}: ${r.violation!.detail.split('\n')[0]} -- ${r.violation!.replay}`)).to.deep.equal([]);
      // The schedule must actually exercise things, or passing proves nothing.
      const total = (k: string) => results.reduce((a, r) => a + (r.faults[k] ?? 0), 0);
      expect(total('crash')).to.be.greaterThan(SEEDS_PER_SIZE);
      expect(total('snapshot')).to.be.greaterThan(SEEDS_PER_SIZE);
      expect(total('drop')).to.be.greaterThan(0);
      // Nodes whose application is down (campaign-reluctant cores): half the seeds.
      expect(total('app-down')).to.be.greaterThan(SEEDS_PER_SIZE / 4);
      const membership = Object.keys(results.reduce((a, r) => ({ ...a, ...r.faults }), {})).filter((k) => k.startsWith('membership-'));
      expect(membership.length).to.be.greaterThan(2);
      expect(results.reduce((a, r) => a + r.ops.ok, 0)).to.be.greaterThan(SEEDS_PER_SIZE * 10);
    });
  }
});
