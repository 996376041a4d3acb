import { expect } from 'chai';
import { SIM_FAULTS, runSeed, type SimFault, type Violation } from './simulator.js';

// The simulator must be able to fail: with each deliberately wrong behaviour switched on, some
// seed within the bound must report a violation (with a replay line).
const MAX_SEEDS = 300;

function hunt(fault: SimFault): { violation?: Violation; seeds: number; ms: number } {
  const t0 = Date.now();
  for (let s = 1; s <= MAX_SEEDS; s++) {
    const r = runSeed({ seed: s, nodes: 3, fault });
    if (r.violation) return { violation: r.violation, seeds: s, ms: Date.now() - t0 };
  }
  return { seeds: MAX_SEEDS, ms: Date.now() - t0 };
}

describe('sim: mutation tests (the simulator catches deliberate bugs)', function () {
  // Each is found in a few seconds; the bound only matters if a core change hides a bug.
  this.timeout(240_000);
  for (const fault of SIM_FAULTS) {
    it(`finds a violation with ${fault} within ${MAX_SEEDS} seeds`, () => {
      const { violation, seeds, ms } = hunt(fault);
      expect(violation, `no violation found with ${fault} in ${MAX_SEEDS} seeds`).to.not.equal(undefined);
      const v = violation!;
      console.log(`      ${fault}: ${v.property} at seed ${v.seed} (${seeds} seed(s), ${ms} ms): ${v.detail.split('\n')[0]}`);
      console.log(`        replay: ${v.replay}`);
      // An internal error of the core is not the simulator catching the bug: it must be a property.
      expect(v.property).to.not.equal('core-exception', v.detail);
      expect(v.replay).to.equal(`npm run sim -- --core --seed ${v.seed}${v.nodes === 5 ? ' --nodes 5' : ''} --fault ${fault}`);
      // Replaying gives the same violation.
      const again = runSeed({ seed: v.seed, nodes: v.nodes as 3 | 5, fault });
      expect(again.violation?.property).to.equal(v.property);
      expect(again.violation?.detail).to.equal(v.detail);
    });
  }
});
