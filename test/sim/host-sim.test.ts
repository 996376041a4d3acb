import { expect } from 'chai';
import { runHostSeed, type HostSimResult } from './host-sim.js';

// The real multi-group host (daemon/host) under the simulator: every seed must pass every
// property. Sized to stay inside `npm test`'s budget (about 40 s on an idle 2-core machine);
// `npm run sim -- --seeds N [--nodes 5] [--groups G]` soaks further.
const SWEEPS: Array<{ nodes: 3 | 5; groups: number; seeds: number }> = [
  { nodes: 3, groups: 8, seeds: 160 },
  { nodes: 5, groups: 16, seeds: 40 },
  { nodes: 3, groups: 64, seeds: 8 },
  { nodes: 5, groups: 64, seeds: 4 },
];

function summarize(results: HostSimResult[]): string {
  const steps = results.reduce((a, r) => a + r.steps, 0);
  const ops = results.reduce((a, r) => a + r.ops.ok + r.ops.reads, 0);
  return `${results.length} runs, ${steps} steps, ${ops} completed client ops`;
}

function total(results: HostSimResult[], k: string): number {
  return results.reduce((a, r) => a + (r.faults[k] ?? 0), 0);
}

describe('sim: the real host, many groups per node', function () {
  this.timeout(300_000);

  it('replays a seed exactly (same seed, same run)', async () => {
    const a = await runHostSeed({ seed: 7, nodes: 3, groups: 8 });
    const b = await runHostSeed({ seed: 7, nodes: 3, groups: 8 });
    expect(a).to.deep.equal(b);
    const c = await runHostSeed({ seed: 8, nodes: 3, groups: 8 });
    expect(c.steps).to.not.equal(a.steps);
  });

  for (const { nodes, groups, seeds } of SWEEPS) {
    it(`passes ${seeds} seeds with ${nodes} nodes and ${groups} groups and no violation`, async () => {
      const t0 = Date.now();
      const results: HostSimResult[] = [];
      for (let s = 1; s <= seeds; s++) results.push(await runHostSeed({ seed: s, nodes, groups }));
      console.log(`      ${nodes} nodes x ${groups} groups: ${summarize(results)} in ${Date.now() - t0} ms`);
      const bad = results.filter((r) => r.violation);
      expect(bad.map((r) => `${r.violation!.property}: ${r.violation!.detail.split('\n')[0]} -- ${r.violation!.replay}`)).to.deep.equal([]);
      // The schedule must exercise what it claims, or passing proves nothing.
      expect(total(results, 'crash')).to.be.greaterThan(seeds / 2);
      expect(total(results, 'lost-unsynced-writes')).to.be.greaterThan(0);
      expect(total(results, 'partition') + total(results, 'partition-one-way')).to.be.greaterThan(seeds / 2);
      expect(results.reduce((a, r) => a + r.ops.ok, 0)).to.be.greaterThan(seeds * 10);
      if (seeds >= 30) {
        expect(total(results, 'app-crash')).to.be.greaterThan(0);
        expect(total(results, 'app-restore')).to.be.greaterThan(0);
        expect(total(results, 'membership-remove') + total(results, 'membership-remove-meta')).to.be.greaterThan(0);
        expect(total(results, 'membership-add-meta') + total(results, 'membership-remove-meta')).to.be.greaterThan(0);
      }
    });
  }
});
