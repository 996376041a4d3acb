import { expect } from 'chai';
import { EventQueue } from './eventqueue.js';
import { Rng } from './rng.js';

describe('sim: virtual clock and seeded PRNG', () => {
  it('runs events in time order, ties in scheduling order, and advances the clock', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    const rng = new Rng(1);
    const want: [number, string][] = [];
    for (let i = 0; i < 200; i++) {
      const t = rng.int(0, 20);
      const name = `e${i}`;
      want.push([t, name]);
      q.at(t, () => seen.push(name));
    }
    // Stable sort by time = scheduling order within a time.
    const expected = want
      .map((w, i) => ({ t: w[0], n: w[1], i }))
      .sort((a, b) => a.t - b.t || a.i - b.i)
      .map((x) => x.n);
    let last = -1;
    for (let ev = q.pop(); ev; ev = q.pop()) {
      expect(q.now).to.be.at.least(last);
      last = q.now;
      ev.run();
    }
    expect(seen).to.deep.equal(expected);
  });

  it('never schedules into the past', () => {
    const q = new EventQueue();
    q.at(10, () => q.at(5, () => undefined));
    q.pop()!.run();
    const e = q.pop()!;
    expect(e.time).to.equal(10);
  });

  it('gives the same sequence for the same seed and different ones otherwise', () => {
    const a = new Rng(99);
    const b = new Rng(99);
    const c = new Rng(100);
    const xs = Array.from({ length: 50 }, () => a.nextU32());
    expect(Array.from({ length: 50 }, () => b.nextU32())).to.deep.equal(xs);
    expect(Array.from({ length: 50 }, () => c.nextU32())).to.not.deep.equal(xs);
  });

  it('is roughly uniform', () => {
    const r = new Rng(5);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) buckets[Math.floor(r.float() * 10)]!++;
    for (const b of buckets) expect(b).to.be.within(9_500, 10_500);
    for (let i = 0; i < 1000; i++) expect(r.int(3, 5)).to.be.within(3, 5);
  });
});
