// The one back-off rule (protocol/backoff.ts) every retry loop uses: growth, cap, jitter ranges,
// reset, and the policies it refuses.

import { expect } from 'chai';
import { Backoff, JITTER, backoffDelay, checkBackoffPolicy } from '../../../protocol/backoff.js';

const fixed = (r: number) => () => r;

describe('back-off (protocol/backoff.ts)', () => {
  it('doubles from the first delay up to the cap, with no jitter by default', () => {
    const b = new Backoff({ initialMs: 25, maxMs: 500 });
    expect(Array.from({ length: 8 }, () => b.next())).to.deep.equal([25, 50, 100, 200, 400, 500, 500, 500]);
    expect(b.failuresInARow).to.equal(8);
  });

  it('starts again from the first delay after reset', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000 });
    b.next();
    b.next();
    b.reset();
    expect(b.failuresInARow).to.equal(0);
    expect(b.next()).to.equal(10);
  });

  it('grows linearly when asked (the consistent cut: up to backoffMs * n)', () => {
    const p = { initialMs: 2, maxMs: 60, growth: 'linear' as const };
    expect([1, 2, 3, 30, 40].map((n) => backoffDelay(p, n))).to.deep.equal([2, 4, 6, 60, 60]);
  });

  it('keeps every delay inside its jitter range, and reaches both ends', () => {
    const p = { initialMs: 1000, maxMs: 1000, jitter: JITTER.spread };
    expect(backoffDelay(p, 1, fixed(0))).to.equal(800);
    expect(backoffDelay(p, 1, fixed(0.999999))).to.equal(1200);
    const equal = { initialMs: 100, maxMs: 5000, jitter: JITTER.equal };
    // Equal jitter, as the transport reconnects: [base/2, base], the cap applied before the jitter.
    expect(backoffDelay(equal, 1, fixed(0))).to.equal(50);
    expect(backoffDelay(equal, 100, fixed(0.999999))).to.equal(5000);
    expect(backoffDelay(equal, 100, fixed(0))).to.equal(2500);
    const full = { initialMs: 4, maxMs: 4, jitter: JITTER.full };
    expect(backoffDelay(full, 1, fixed(0))).to.equal(0);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay({ initialMs: 50, maxMs: 2000, jitter: JITTER.spread }, 1 + (i % 10));
      expect(d).to.be.within(40, 2400);
    }
  });

  it('never overflows to Infinity or NaN after very many failures', () => {
    const d = backoffDelay({ initialMs: 1, maxMs: 5000 }, 1e9);
    expect(d).to.equal(5000);
    expect(backoffDelay({ initialMs: 1, maxMs: 5000 }, 0)).to.equal(1); // counted as the first failure
  });

  it('refuses a policy that would give negative, reversed or NaN delays', () => {
    expect(() => checkBackoffPolicy({ initialMs: -1, maxMs: 10 })).to.throw(RangeError);
    expect(() => checkBackoffPolicy({ initialMs: 10, maxMs: 5 })).to.throw(RangeError);
    expect(() => checkBackoffPolicy({ initialMs: NaN, maxMs: 5 })).to.throw(RangeError);
    expect(() => checkBackoffPolicy({ initialMs: 1, maxMs: 5, jitter: [1.2, 0.8] })).to.throw(RangeError);
    expect(() => new Backoff({ initialMs: 1, maxMs: NaN })).to.throw(RangeError);
    expect(() => checkBackoffPolicy({ initialMs: 1, maxMs: Infinity })).to.not.throw();
  });
});
