import { expect } from 'chai';
import { runHostSeed, type HostSimFault, type HostViolation } from './host-sim.js';

// The host simulator must be able to fail: with each deliberately wrong behaviour of the host (or
// of the core, seen through the host) switched on, some seed within the bound reports a violation,
// with a one-line replay command. commitOldTermByCount (Figure 8) needs the core simulator's
// schedule of short-lived leaders (mutations.test.ts, `npm run sim -- --core`).
const MAX_SEEDS = 40;
const CAUGHT: HostSimFault[] = [
  'sendBeforePersist',
  'readDuringRestore',
  'compactPastSnapshotSend',
  'applyPastGap',
  'ackBeforePersist',
  'voteWithoutLogCheck',
  'readIndexWithoutQuorum',
];

async function hunt(fault: HostSimFault): Promise<{ violation?: HostViolation; seeds: number; ms: number }> {
  const t0 = Date.now();
  for (let s = 1; s <= MAX_SEEDS; s++) {
    const r = await runHostSeed({ seed: s, nodes: 3, groups: 8, fault });
    if (r.violation) return { violation: r.violation, seeds: s, ms: Date.now() - t0 };
  }
  return { seeds: MAX_SEEDS, ms: Date.now() - t0 };
}

describe('sim: host mutation tests (the host simulator catches deliberate bugs)', function () {
  this.timeout(240_000);
  for (const fault of CAUGHT) {
    it(`finds a violation with ${fault} within ${MAX_SEEDS} seeds`, async () => {
      const { violation, seeds, ms } = await hunt(fault);
      expect(violation, `no violation found with ${fault} in ${MAX_SEEDS} seeds`).to.not.equal(undefined);
      const v = violation!;
      console.log(`      ${fault}: ${v.property} at seed ${v.seed} (${seeds} seed(s), ${ms} ms): ${v.detail.split('\n')[0]}`);
      console.log(`        replay: ${v.replay}`);
      expect(v.property).to.not.equal('host-exception', v.detail);
      expect(v.replay).to.equal(`npm run sim -- --seed ${v.seed} --groups 8 --fault ${fault}`);
      const again = await runHostSeed({ seed: v.seed, nodes: 3, groups: 8, fault });
      expect(again.violation?.property).to.equal(v.property);
      expect(again.violation?.detail).to.equal(v.detail);
    });
  }
});
