// The checker on histories the size of a quiet 600 s chaos run (seed 1811: 202,606 ops, 4 keys),
// which ran the chaos runner's 4 GB heap out when the memo keyed configurations by the whole
// linearized bitset (~10 kB per entry at 50,000 ops per key). Now: constant-size memo entries,
// keys checked one at a time, and a bound that ends in 'unknown' (undecided) instead of the heap.

import { expect } from 'chai';
import { checkKvHistoryByKey, checkPartition, kvModel, type KvOp } from './linearizability.js';
import { Rng } from './rng.js';

/**
 * A linearizable history: one linearization point per time unit, each op called up to `spread`
 * units before its point and returning up to `spread` after (so ~2*spread ops overlap, like the
 * chaos runs' 6-12 clients). `unknownRate` of the writes have an unknown outcome (they took effect at
 * their point).
 */
function registerHistory(rng: Rng, keys: number, ops: number, spread = 5, unknownRate = 0.005): KvOp[][] {
  const perKey: KvOp[][] = Array.from({ length: keys }, () => []);
  const state: (string | null)[] = new Array<string | null>(keys).fill(null);
  const acked: string[][] = Array.from({ length: keys }, () => []);
  for (let i = 0; i < ops; i++) {
    const k = rng.int(0, keys - 1);
    const key = `k${k}`;
    const lp = i * 10;
    const call = lp - rng.int(0, spread * 10);
    const ret = lp + rng.int(0, spread * 10);
    const client = rng.int(1, 12);
    const roll = rng.float();
    let op: KvOp;
    if (roll < 0.4) op = { client, input: { type: 'read', key }, call, ret, output: { value: state[k]! } };
    else if (roll < 0.7) {
      const value = `v${i}`;
      if (rng.chance(unknownRate)) op = { client, input: { type: 'write', key, value }, call, ret: Infinity };
      else {
        op = { client, input: { type: 'write', key, value }, call, ret, output: {} };
        acked[k]!.push(value);
      }
      state[k] = value;
    } else {
      // Like the chaos clients: expect the value last seen, or an older one that was acknowledged.
      const expected = rng.chance(0.5) || acked[k]!.length === 0 ? state[k]! : acked[k]![rng.int(0, acked[k]!.length - 1)]!;
      const swapped = expected === state[k];
      op = { client, input: { type: 'cas', key, expected, value: `v${i}` }, call, ret, output: { ok: swapped } };
      if (swapped) state[k] = `v${i}`;
    }
    perKey[k]!.push(op);
  }
  return perKey;
}

describe('sim: linearizability checker on large histories', function () {
  this.timeout(120_000);

  it('checks 300,000 ops over 6 keys (50,000 per key) in bounded memory and time', () => {
    const perKey = registerHistory(new Rng(1811), 6, 300_000);
    const heapBefore = process.memoryUsage().heapUsed;
    const t = performance.now();
    const r = checkKvHistoryByKey(perKey);
    const ms = performance.now() - t;
    expect(r.verdict, r.explanation).to.equal('ok');
    expect(r.keys.map((k) => k.key)).to.deep.equal(['k0', 'k1', 'k2', 'k3', 'k4', 'k5']);
    expect(r.keys.reduce((a, k) => a + k.ops, 0)).to.equal(300_000);
    // The bitset-keyed memo needed ~50,000 entries of ~10 kB per key here (0.5 GB, and a minute
    // of string building); hashed entries are ~100 bytes.
    expect(ms).to.be.lessThan(30_000);
    expect(process.memoryUsage().heapUsed - heapBefore).to.be.lessThan(400e6);
  });

  it('over many keys too: 300,000 ops over 500 keys', () => {
    const r = checkKvHistoryByKey(registerHistory(new Rng(7), 500, 300_000));
    expect(r.verdict, r.explanation).to.equal('ok');
    expect(r.keys).to.have.length(500);
  });

  /** Plants a read in the middle of `victim` that returns a value overwritten ~100 writes before. */
  const plantStaleRead = (victim: KvOp[]): string => {
    const writes = victim.filter((op) => op.input.type === 'write' && op.ret !== Infinity);
    const mid = victim.findIndex((op, i) => i > victim.length / 2 && op.input.type === 'read');
    const stale = writes.filter((w) => w.ret < victim[mid]!.call).at(-100)!;
    const staleValue = (stale.input as { value: string }).value;
    victim[mid] = { ...victim[mid]!, output: { value: staleValue } };
    return staleValue;
  };

  it('still finds one stale read planted in the middle of a 50,000-op key', () => {
    const perKey = registerHistory(new Rng(42), 4, 200_000);
    const staleValue = plantStaleRead(perKey[2]!);
    // ~85 writes of the key have unknown outcomes, 21 of them unobserved: they share one memo class,
    // so ruling out every order takes ~2.7M steps (2 s), not 2^21 times the rest. The chaos runner's
    // budget is 5M steps per key.
    const r = checkKvHistoryByKey(perKey, { maxStepsPerPartition: 5_000_000 });
    expect(r.verdict, r.explanation).to.equal('illegal');
    expect(r.explanation).to.match(/^key k2: illegal/);
    expect(r.explanation).to.include(`read(k2) -> {"value":"${staleValue}"}`);
    // Keys after the bad one are not checked: the first violation ends the check.
    expect(r.keys.map((k) => k.key)).to.deep.equal(['k0', 'k1', 'k2']);
  });

  it('unobserved unknown writes: equivalent, so 24 of them do not cost 2^24 subsets; one can still explain a failed compare-and-set', () => {
    const many: KvOp[] = [];
    for (let i = 0; i < 24; i++) many.push({ client: i, input: { type: 'write', key: 'x', value: `w${i}` }, call: 0, ret: Infinity });
    many.push({ client: 99, input: { type: 'read', key: 'x' }, call: 1, ret: 2, output: { value: 'nobody' } });
    const m = checkKvHistoryByKey([many], { maxStepsPerPartition: 10_000 });
    expect(m.verdict, m.explanation).to.equal('illegal');

    const h: KvOp[] = [
      { client: 1, input: { type: 'write', key: 'x', value: 'a' }, call: 0, ret: 1, output: {} },
      { client: 2, input: { type: 'write', key: 'x', value: 'b' }, call: 2, ret: Infinity },
      { client: 3, input: { type: 'cas', key: 'x', expected: 'a', value: 'c' }, call: 10, ret: 11, output: { ok: false } },
    ];
    expect(checkKvHistoryByKey([h]).verdict).to.equal('ok');
    // Without the unknown write (it "never took effect") the failed CAS is unexplained.
    expect(checkKvHistoryByKey([[h[0]!, h[2]!]]).verdict).to.equal('illegal');
  });

  it('ends undecided, saying why, when a key exceeds its memo bound (instead of the heap)', () => {
    // 16 concurrent writes of unknown outcome, each value read by a concurrent read, and a read of a
    // value nobody wrote: the search must try the orders of all of them before it can say 'illegal',
    // far more than 1,000 configurations.
    const h: KvOp[] = [];
    for (let i = 0; i < 16; i++) {
      h.push({ client: i, input: { type: 'write', key: 'x', value: `w${i}` }, call: 0, ret: Infinity });
      h.push({ client: 100 + i, input: { type: 'read', key: 'x' }, call: 1, ret: 3, output: { value: `w${i}` } });
    }
    h.push({ client: 99, input: { type: 'read', key: 'x' }, call: 1, ret: 3, output: { value: 'nobody' } });
    const r = checkPartition(kvModel, h, 10_000_000, 1000);
    expect(r.verdict).to.equal('unknown');
    expect(r.undecided).to.match(/memo bound of 1000 configurations/);
    const byKey = checkKvHistoryByKey([h], { maxCacheEntriesPerPartition: 1000 });
    expect(byKey.verdict).to.equal('unknown');
    expect(byKey.explanation).to.match(/^key x: undecided .*memo bound/);
  });
});
