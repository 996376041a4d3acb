// The outage measure of the chaos report over synthetic histories: which stretch without a success
// belongs to which fault, and the per-kind summary.

import { expect } from 'chai';
import type { FaultRecord } from './nemesis.js';
import { formatOutages, measureOutages } from './outage.js';

describe('chaos outage windows', () => {
  // Successes every 100 ms from 0 to 10,000, except where a test cuts a hole.
  const steady = (holes: Array<[number, number]>): number[] =>
    Array.from({ length: 101 }, (_, i) => i * 100).filter((t) => !holes.some(([a, b]) => t > a && t < b));

  it('measures the longest stretch without a success from the injection on, not the gap before it', () => {
    const faults: FaultRecord[] = [{ kind: 'pause', detail: 'SIGSTOP raftd 1', at: 2050, healedAt: 3000 }];
    // The last success before the fault is at 2000; the next at 4300: the fault's stretch is 2050..4300.
    const r = measureOutages(faults, steady([[2000, 4300]]), 10_000);
    expect(r.faults[0]).to.include({ longestMs: 2250, from: 2050, to: 4300 });
    expect(r.perKind.pause).to.include({ count: 1, maxMs: 2250, p50Ms: 2250 });
  });

  it('counts an outage that starts after healing (within the settle time) and runs past it in full', () => {
    const faults: FaultRecord[] = [{ kind: 'kill-app', detail: 'kill -9 app of 2', at: 1000, healedAt: 2000 }];
    // Fine during the fault; the restart costs 3.5 s from 2500 on.
    const r = measureOutages(faults, steady([[2500, 6000]]), 10_000, 1000);
    expect(r.faults[0]).to.include({ longestMs: 3500, from: 2500, to: 6000 });
    // The same hole starting after the settle time is not this fault's.
    const later = measureOutages(faults, steady([[3500, 7000]]), 10_000, 1000);
    expect(later.faults[0]!.longestMs).to.equal(100);
  });

  it('gives a stretch that begins after the next injection to the next fault', () => {
    const faults: FaultRecord[] = [
      { kind: 'transfer', detail: 'leader 1 -> 2', at: 1000, healedAt: 1500 },
      { kind: 'kill-raftd', detail: 'kill -9 raftd 2 (leader 2)', at: 2000, healedAt: 3000 },
    ];
    const r = measureOutages(faults, steady([[2000, 4500]]), 10_000);
    // The transfer's own time ends at 2000: the stretch that begins there is the kill's.
    expect(r.perKind.transfer!.maxMs).to.equal(100);
    expect(r.perKind['kill-raftd']).to.include({ maxMs: 2500 });
    expect(r.faults.find((f) => f.kind === 'kill-raftd')).to.include({ from: 2000, to: 4500 });
    // A stretch that begins in the transfer's own time and runs into the kill counts for both.
    const early = measureOutages(faults, steady([[1900, 4500]]), 10_000);
    expect(early.perKind.transfer!.maxMs).to.equal(2600);
    expect(early.perKind['kill-raftd']).to.include({ maxMs: 2500 });
  });

  it('summarises per kind (count, p50, max, the worst fault) and skips faults not injected', () => {
    const faults: FaultRecord[] = [
      { kind: 'pause', detail: 'a', at: 1000, healedAt: 1200 },
      { kind: 'pause', detail: 'b', at: 3000, healedAt: 3200 },
      { kind: 'pause', detail: 'c', at: 6000, healedAt: 6200 },
      { kind: 'partition-leader', detail: 'none', at: 8000, healedAt: 8000, skipped: 'no leader known' },
    ];
    const r = measureOutages(faults, steady([[1000, 1500], [3000, 4000], [6000, 9500]]), 10_000);
    expect(r.faults.map((f) => f.longestMs)).to.deep.equal([500, 1000, 3500]);
    expect(r.perKind.pause).to.deep.include({ count: 3, p50Ms: 1000, maxMs: 3500 });
    expect(r.perKind.pause!.worst.detail).to.equal('c');
    expect(r.perKind['partition-leader']).to.equal(undefined);
    const text = formatOutages(r, 'an acknowledged op').join('\n');
    expect(text).to.match(/max 3500 ms/);
    expect(text).to.match(/pause +n= {2}3 {2}p50 {2}1000 ms {2}max {2}3500 ms {2}\(worst: at 6000 ms, c; no success 6000..9500 ms\)/);
  });

  it('an outage still open when the workload stopped ends there', () => {
    const faults: FaultRecord[] = [{ kind: 'partition-symmetric', detail: '1 | 2,3', at: 9000 }];
    const r = measureOutages(faults, steady([[8900, 20_000]]), 10_000);
    expect(r.faults[0]).to.include({ longestMs: 1000, healedAt: 10_000 });
  });
});
