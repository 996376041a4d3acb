import { expect } from 'chai';
import { checkKvHistory, checkLinearizability, describeFailure, kvModel, type KvOp, type KvInput, type KvOutput } from './linearizability.js';
import { Rng } from './rng.js';

const W = (client: number, key: string, value: string, call: number, ret: number): KvOp => ({
  client,
  input: { type: 'write', key, value },
  call,
  ret,
  output: {},
});
const R = (client: number, key: string, value: string | null, call: number, ret: number): KvOp => ({
  client,
  input: { type: 'read', key },
  call,
  ret,
  output: { value },
});
const CAS = (client: number, key: string, expected: string | null, value: string, ok: boolean, call: number, ret: number): KvOp => ({
  client,
  input: { type: 'cas', key, expected, value },
  call,
  ret,
  output: { ok },
});
/** A write whose outcome is unknown (timed out): it may take effect any time after `call`, or never. */
const Wx = (client: number, key: string, value: string, call: number): KvOp => ({
  client,
  input: { type: 'write', key, value },
  call,
  ret: Infinity,
});
const CASx = (client: number, key: string, expected: string | null, value: string, call: number): KvOp => ({
  client,
  input: { type: 'cas', key, expected, value },
  call,
  ret: Infinity,
});

const verdict = (h: KvOp[]) => checkLinearizability(kvModel, h).verdict;

describe('sim: linearizability checker (KV register)', () => {
  it('accepts the empty history and a sequential one', () => {
    expect(verdict([])).to.equal('ok');
    expect(verdict([W(1, 'x', 'a', 0, 1), R(2, 'x', 'a', 2, 3), W(1, 'x', 'b', 4, 5), R(2, 'x', 'b', 6, 7)])).to.equal('ok');
  });

  it('rejects a stale read after a completed write', () => {
    const h = [W(1, 'x', 'a', 0, 1), W(1, 'x', 'b', 2, 3), R(2, 'x', 'a', 4, 5)];
    expect(verdict(h)).to.equal('illegal');
  });

  it('rejects a read of a value never written and a read of absent after a write', () => {
    expect(verdict([R(1, 'x', 'zz', 0, 1)])).to.equal('illegal');
    expect(verdict([W(1, 'x', 'a', 0, 1), R(2, 'x', null, 2, 3)])).to.equal('illegal');
  });

  it('accepts either order for concurrent operations', () => {
    // The read overlaps the write: seeing the old or the new value is fine.
    expect(verdict([W(1, 'x', 'a', 0, 1), W(1, 'x', 'b', 2, 10), R(2, 'x', 'a', 3, 4)])).to.equal('ok');
    expect(verdict([W(1, 'x', 'a', 0, 1), W(1, 'x', 'b', 2, 10), R(2, 'x', 'b', 3, 4)])).to.equal('ok');
  });

  it('treats operations that touch at one instant as concurrent', () => {
    expect(verdict([W(1, 'x', 'a', 0, 5), R(2, 'x', null, 5, 6)])).to.equal('ok');
  });

  it('rejects a new-old inversion between two reads (the classic non-linearizable pattern)', () => {
    // Write of b spans both reads; the first read sees b, a later read (after the first returned) sees a.
    const h = [W(1, 'x', 'a', 0, 1), W(1, 'x', 'b', 2, 20), R(2, 'x', 'b', 3, 4), R(3, 'x', 'a', 5, 6)];
    expect(verdict(h)).to.equal('illegal');
  });

  it('checks compare-and-set results', () => {
    expect(verdict([W(1, 'x', 'a', 0, 1), CAS(2, 'x', 'a', 'b', true, 2, 3), R(1, 'x', 'b', 4, 5)])).to.equal('ok');
    expect(verdict([W(1, 'x', 'a', 0, 1), CAS(2, 'x', 'a', 'b', false, 2, 3)])).to.equal('illegal');
    expect(verdict([W(1, 'x', 'a', 0, 1), CAS(2, 'x', 'q', 'b', true, 2, 3)])).to.equal('illegal');
    // Two concurrent CAS from the same expected value cannot both succeed.
    expect(verdict([W(1, 'x', 'a', 0, 1), CAS(2, 'x', 'a', 'b', true, 2, 9), CAS(3, 'x', 'a', 'c', true, 2, 9)])).to.equal('illegal');
    expect(verdict([W(1, 'x', 'a', 0, 1), CAS(2, 'x', 'a', 'b', true, 2, 9), CAS(3, 'x', 'a', 'c', false, 2, 9)])).to.equal('ok');
    expect(verdict([CAS(2, 'x', null, 'b', true, 0, 1), R(1, 'x', 'b', 2, 3)])).to.equal('ok');
  });

  it('lets an indeterminate write take effect late, or never', () => {
    // The write timed out; a read long after sees it: fine (it happened late).
    expect(verdict([W(1, 'x', 'a', 0, 1), Wx(2, 'x', 'b', 2), R(3, 'x', 'b', 100, 101)])).to.equal('ok');
    // ...or it never happened.
    expect(verdict([W(1, 'x', 'a', 0, 1), Wx(2, 'x', 'b', 2), R(3, 'x', 'a', 100, 101)])).to.equal('ok');
    // But not before it was invoked.
    expect(verdict([W(1, 'x', 'a', 0, 1), R(3, 'x', 'b', 2, 3), Wx(2, 'x', 'b', 10)])).to.equal('illegal');
    // And once observed it cannot be un-done: b then a then b again needs two writes of b.
    expect(verdict([W(1, 'x', 'a', 0, 1), Wx(2, 'x', 'b', 2), R(3, 'x', 'b', 10, 11), R(3, 'x', 'a', 12, 13)])).to.equal('illegal');
  });

  it('lets an indeterminate cas take effect only when its precondition holds', () => {
    expect(verdict([W(1, 'x', 'a', 0, 1), CASx(2, 'x', 'a', 'b', 2), R(3, 'x', 'b', 50, 51)])).to.equal('ok');
    expect(verdict([W(1, 'x', 'q', 0, 1), CASx(2, 'x', 'a', 'b', 2), R(3, 'x', 'b', 50, 51)])).to.equal('illegal');
  });

  it('partitions by key: each key checked alone, and one bad key fails the whole history', () => {
    const good = [W(1, 'x', 'a', 0, 1), R(2, 'x', 'a', 2, 3), W(1, 'y', 'a', 0, 1), R(2, 'y', 'a', 2, 3)];
    const res = checkLinearizability(kvModel, good);
    expect(res.verdict).to.equal('ok');
    expect(res.partitions).to.have.length(2);
    const bad = [...good, R(2, 'y', null, 4, 5)];
    const r2 = checkLinearizability(kvModel, bad);
    expect(r2.verdict).to.equal('illegal');
    expect(r2.failure!.ops[0]!.input.key).to.equal('y');
    expect(describeFailure(r2)).to.match(/key y: illegal/);
    expect(checkKvHistory(bad).explanation).to.match(/could not place next[\s\S]*read\(y\) -> \{"value":null\}/);
    expect(checkKvHistory(good)).to.deep.equal({ verdict: 'ok', explanation: 'linearizable' });
  });

  it('returns unknown when the search budget runs out rather than guessing', () => {
    const h: KvOp[] = [];
    for (let i = 0; i < 30; i++) h.push(Wx(i, 'x', 'v' + i, 0));
    h.push(R(99, 'x', 'nope', 1, 2));
    const res = checkLinearizability(kvModel, h, { maxStepsPerPartition: 100 });
    expect(res.verdict).to.equal('unknown');
  });

  it('agrees with brute force on random small histories', function () {
    // Generate random histories of a sequential register, perturb some reads, compare the
    // checker's verdict with an exhaustive search over all orders consistent with real time.
    const rng = new Rng(7);
    let illegal = 0;
    for (let trial = 0; trial < 300; trial++) {
      const h: KvOp[] = [];
      const nOps = rng.int(1, 6);
      for (let i = 0; i < nOps; i++) {
        const call = rng.int(0, 10);
        const ret = rng.chance(0.15) ? Infinity : call + rng.int(0, 5);
        const kind = rng.int(0, 2);
        const v = 'v' + rng.int(0, 2);
        let op: KvOp;
        if (kind === 0) op = { client: i, input: { type: 'write', key: 'k', value: v }, call, ret, output: {} };
        else if (kind === 1) op = { client: i, input: { type: 'read', key: 'k' }, call, ret, output: { value: rng.chance(0.2) ? null : v } };
        else op = { client: i, input: { type: 'cas', key: 'k', expected: 'v' + rng.int(0, 2), value: v }, call, ret, output: { ok: rng.chance(0.5) } };
        if (ret === Infinity) delete op.output;
        h.push(op);
      }
      const expected = bruteForce(h) ? 'ok' : 'illegal';
      if (expected === 'illegal') illegal++;
      expect(verdict(h), JSON.stringify(h)).to.equal(expected);
    }
    // The generator must produce both kinds, or this test proves little.
    expect(illegal).to.be.greaterThan(30);
    expect(illegal).to.be.lessThan(270);
  });
});

/** Exhaustive: is there a permutation respecting real-time order that the model accepts? */
function bruteForce(h: KvOp[]): boolean {
  const n = h.length;
  const used = new Array<boolean>(n).fill(false);
  const go = (state: string | null, depth: number): boolean => {
    if (depth === n) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      // i may go next only if no unused op returned strictly before i was called.
      let ok = true;
      for (let j = 0; j < n; j++) if (!used[j] && j !== i && h[j]!.ret < h[i]!.call) ok = false;
      if (!ok) continue;
      const nxt = kvModel.step(state, h[i]!.input as KvInput, h[i]!.output as KvOutput | undefined);
      if (nxt === undefined) continue;
      used[i] = true;
      if (go(nxt, depth + 1)) return true;
      used[i] = false;
    }
    return false;
  };
  return go(null, 0);
}
