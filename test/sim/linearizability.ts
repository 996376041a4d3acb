// Linearizability checker: Wing & Gong's search with Lowe's just-in-time linearization and
// memoization of (linearized set, model state), as in Porcupine. Histories are split by a
// model-provided partition (per key for the KV register), which is sound because a history of
// independent objects is linearizable iff each object's sub-history is (P-compositionality).
//
// Memory: the memo holds one entry per configuration explored, so an entry must not grow with the
// history. The linearized set is identified by a 64-bit Zobrist hash (two 32-bit halves, each op a
// fixed random pair XORed in when linearized, out when undone), not by its bitset: a 50,000-op key
// would otherwise cost ~10 kB per entry and millions of entries (seed 1811's 202,606-op history ran
// a 4 GB heap out). A hash collision can only make the search skip a configuration it has not
// seen, i.e. report 'illegal' wrongly, never 'ok' wrongly (odds ~ entries^2 / 2^65: 1e-6 at 5M).
// Both the steps and the memo entries are bounded per partition; past either bound the verdict is
// 'unknown' (undecided) with the reason, instead of running the heap out.
//
// An operation whose outcome is unknown (timeout, crashed server) has `ret = Infinity` and no
// output: it may take effect at any point after its invocation, or never (placing it after every
// other operation is the same as "never", since nothing observes the state afterwards).

export interface Model<S, I, O> {
  init(): S;
  /**
   * The state after applying `input` in `state`, if `output` is a possible result; undefined if
   * the output is impossible. `output === undefined` means the outcome is unknown.
   */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** A string identifying the state, for memoization (equal states must give equal strings). */
  hash(state: S): string;
  /** Independent sub-histories (e.g. one per key). Default: the whole history. */
  partition?(ops: readonly HistoryOp<I, O>[]): HistoryOp<I, O>[][];
  describe?(op: HistoryOp<I, O>): string;
}

export interface HistoryOp<I, O> {
  /** Which client issued it (informational; clients may overlap their own ops). */
  client: number;
  input: I;
  /** Invocation time. */
  call: number;
  /** Completion time; Infinity when the outcome is unknown. */
  ret: number;
  /** The observed result; undefined when the outcome is unknown. */
  output?: O;
}

export type Verdict = 'ok' | 'illegal' | 'unknown';

export interface PartitionResult<I, O> {
  ops: HistoryOp<I, O>[];
  verdict: Verdict;
  /** Search steps used. */
  steps: number;
  /** For an 'unknown' (undecided) partition: which bound stopped the search. */
  undecided?: string;
  /** For an illegal partition: the longest sequence of ops the search could linearize. */
  longestLinearized?: HistoryOp<I, O>[];
}

export interface CheckResult<I, O> {
  verdict: Verdict;
  partitions: PartitionResult<I, O>[];
  /** The first illegal (or, failing that, undecided) partition. */
  failure?: PartitionResult<I, O>;
}

export interface CheckOptions {
  /** Upper bound on search steps per partition; beyond it the verdict is 'unknown'. */
  maxStepsPerPartition?: number;
  /** Upper bound on memo entries per partition (each ~100 bytes); beyond it the verdict is 'unknown'. */
  maxCacheEntriesPerPartition?: number;
}

export const DEFAULT_MAX_CACHE_ENTRIES = 4_000_000;

export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: readonly HistoryOp<I, O>[],
  opts: CheckOptions = {},
): CheckResult<I, O> {
  const parts = model.partition ? model.partition(history) : [history.slice()];
  const results: PartitionResult<I, O>[] = [];
  let verdict: Verdict = 'ok';
  let failure: PartitionResult<I, O> | undefined;
  for (const p of parts) {
    const r = checkPartition(model, p, opts.maxStepsPerPartition ?? 2_000_000, opts.maxCacheEntriesPerPartition ?? DEFAULT_MAX_CACHE_ENTRIES);
    results.push(r);
    if (r.verdict === 'illegal') {
      if (verdict !== 'illegal') failure = r;
      verdict = 'illegal';
    } else if (r.verdict === 'unknown' && verdict === 'ok') {
      verdict = 'unknown';
      failure = r;
    }
  }
  return failure ? { verdict, partitions: results, failure } : { verdict, partitions: results };
}

/** A fixed pseudo-random 32-bit value for (a, b) (splitmix32 finalizer), the same on every run. */
function mix32(a: number, b: number, salt: number): number {
  let z = (Math.imul(a + 1, 0x9e3779b9) ^ Math.imul(b + 1, 0x7feb352d) ^ salt) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * What the memo hashes per op. Ops of unknown outcome (ret = Infinity, no output) with equal inputs
 * are interchangeable once called: each can take effect at any later point or never, and the model
 * sees only its input. So for them the memo counts how many of the class are linearized, not which:
 * configurations that differ only in which ones are the same configuration. (Without this, k such
 * writes left the search 2^k subsets to rule out before it could call a history illegal.)
 * Returns per op its class (-1: an op of its own) and, per op, its own Zobrist pair.
 */
function memoClasses<I, O>(ops: readonly HistoryOp<I, O>[]): { cls: Int32Array; zLow: Uint32Array; zHigh: Uint32Array } {
  const n = ops.length;
  const cls = new Int32Array(n).fill(-1);
  const ids = new Map<string, number>();
  const zLow = new Uint32Array(n);
  const zHigh = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const op = ops[i]!;
    if (op.ret === Infinity && op.output === undefined) {
      const k = JSON.stringify(op.input);
      let c = ids.get(k);
      if (c === undefined) ids.set(k, (c = ids.size));
      cls[i] = c;
    } else {
      zLow[i] = mix32(i, 0, 0x2545f491);
      zHigh[i] = mix32(i, 0, 0x6a09e667);
    }
  }
  return { cls, zLow, zHigh };
}

export function checkPartition<S, I, O>(model: Model<S, I, O>, opsIn: readonly HistoryOp<I, O>[], maxSteps: number, maxCacheEntries = DEFAULT_MAX_CACHE_ENTRIES): PartitionResult<I, O> {
  const ops = opsIn.slice();
  const n = ops.length;
  if (n === 0) return { ops, verdict: 'ok', steps: 0 };
  for (const op of ops) {
    if (!(op.ret >= op.call)) throw new RangeError(`operation returns (${op.ret}) before its call (${op.call})`);
  }
  // Events: 2 per op. Event e < n is the call of op e; event n + e is its return.
  // Order by time; at equal times calls come first, so ops touching at one instant count as concurrent.
  const order: number[] = [];
  for (let i = 0; i < 2 * n; i++) order.push(i);
  const timeOf = (e: number) => (e < n ? ops[e]!.call : ops[e - n]!.ret);
  order.sort((x, y) => {
    const d = timeOf(x) - timeOf(y);
    if (d !== 0 && !Number.isNaN(d)) return d;
    const cx = x < n ? 0 : 1;
    const cy = y < n ? 0 : 1;
    if (cx !== cy) return cx - cy;
    return x - y;
  });
  // Doubly linked list over events with a head sentinel (index 2n), "dancing links" style:
  // lifting an op removes its call and return; unlifting restores them in reverse (LIFO) order.
  const HEAD = 2 * n;
  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = -1;

  const unlink = (e: number) => {
    const p = prev[e]!;
    const q = next[e]!;
    next[p] = q;
    if (q !== -1) prev[q] = p;
  };
  const relink = (e: number) => {
    const p = prev[e]!;
    const q = next[e]!;
    next[p] = e;
    if (q !== -1) prev[q] = e;
  };

  const { cls, zLow, zHigh } = memoClasses(ops);
  const linearizedOfClass = new Int32Array(n);
  // The memo hash's change when op e is linearized (undo: the same XOR after the count is restored).
  // A class's contribution is a value of (class, count), with count 0 contributing nothing.
  const deltaLow = (e: number): number => {
    const c = cls[e]!;
    if (c < 0) return zLow[e]!;
    const k = linearizedOfClass[c]!;
    return (k === 0 ? 0 : mix32(n + c, k, 0x2545f491)) ^ mix32(n + c, k + 1, 0x2545f491);
  };
  const deltaHigh = (e: number): number => {
    const c = cls[e]!;
    if (c < 0) return zHigh[e]!;
    const k = linearizedOfClass[c]!;
    return (k === 0 ? 0 : mix32(n + c, k, 0x6a09e667)) ^ mix32(n + c, k + 1, 0x6a09e667);
  };
  let hashLow = 0;
  let hashHigh = 0;
  const cache = new Set<string>();
  const stack: { op: number; state: S }[] = [];
  let state = model.init();
  let entry = next[HEAD]!;
  let steps = 0;
  // The deepest prefix reached, for the report; copied only when the search turns back from a new
  // record depth (copying on every advance would be quadratic on a long history that passes).
  let longest: number[] = [];
  const noteDepth = () => {
    if (stack.length > longest.length) longest = stack.map((f) => f.op);
  };

  while (next[HEAD]! !== -1) {
    if (++steps > maxSteps) return { ops, verdict: 'unknown', steps, undecided: `search budget of ${maxSteps} steps used up` };
    if (entry === -1) throw new Error('linearizability search ran off the event list');
    if (entry < n) {
      const op = ops[entry]!;
      const after = model.step(state, op.input, op.output);
      let advanced = false;
      if (after !== undefined) {
        const low = (hashLow ^ deltaLow(entry)) >>> 0;
        const high = (hashHigh ^ deltaHigh(entry)) >>> 0;
        const k = low.toString(36) + '.' + high.toString(36) + '.' + model.hash(after);
        if (!cache.has(k)) {
          if (cache.size >= maxCacheEntries) return { ops, verdict: 'unknown', steps, undecided: `memo bound of ${maxCacheEntries} configurations reached` };
          cache.add(k);
          stack.push({ op: entry, state });
          state = after;
          hashLow = low;
          hashHigh = high;
          if (cls[entry]! >= 0) linearizedOfClass[cls[entry]!]!++;
          unlink(entry);
          unlink(entry + n);
          entry = next[HEAD]!;
          advanced = true;
        }
      }
      if (!advanced) entry = next[entry]!;
    } else {
      // A return whose call is not yet linearized: the current prefix cannot be extended. Backtrack.
      noteDepth();
      const top = stack.pop();
      if (!top) {
        return { ops, verdict: 'illegal', steps, longestLinearized: longest.map((i) => ops[i]!) };
      }
      state = top.state;
      if (cls[top.op]! >= 0) linearizedOfClass[cls[top.op]!]!--;
      hashLow = (hashLow ^ deltaLow(top.op)) >>> 0;
      hashHigh = (hashHigh ^ deltaHigh(top.op)) >>> 0;
      relink(top.op + n);
      relink(top.op);
      entry = next[top.op]!;
    }
  }
  return { ops, verdict: 'ok', steps };
}

// ---------------------------------------------------------------------------------------------
// The key-value register model used by the simulator and by the chaos tests of real processes.

export type KvInput =
  | { type: 'read'; key: string }
  | { type: 'write'; key: string; value: string }
  | { type: 'cas'; key: string; expected: string | null; value: string };

/** read: the value seen (null = absent); write: nothing; cas: whether it swapped. */
export type KvOutput = { value: string | null } | { ok: boolean } | Record<string, never>;

export type KvOp = HistoryOp<KvInput, KvOutput>;

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.type) {
      case 'read': {
        if (output === undefined) return state;
        const v = (output as { value?: string | null }).value;
        return v === state ? state : undefined;
      }
      case 'write':
        return input.value;
      case 'cas': {
        const matches = state === input.expected;
        if (output === undefined) return matches ? input.value : state;
        const ok = (output as { ok?: boolean }).ok;
        if (ok === true) return matches ? input.value : undefined;
        if (ok === false) return matches ? undefined : state;
        return undefined;
      }
    }
  },
  // null and every string must hash apart: a prefix makes "null" (the string) differ from absent.
  hash: (s) => (s === null ? '-' : '=' + s),
  partition(ops) {
    const byKey = new Map<string, KvOp[]>();
    for (const op of ops) {
      let list = byKey.get(op.input.key);
      if (!list) byKey.set(op.input.key, (list = []));
      list.push(op);
    }
    return [...byKey.values()];
  },
  describe(op) {
    const i = op.input;
    const out = op.output === undefined ? '?' : JSON.stringify(op.output);
    const when = `[${op.call}, ${op.ret === Infinity ? 'inf' : op.ret}]`;
    const what =
      i.type === 'read' ? `read(${i.key})` : i.type === 'write' ? `write(${i.key}=${i.value})` : `cas(${i.key}: ${i.expected} -> ${i.value})`;
    return `client ${op.client} ${what} -> ${out} ${when}`;
  },
};

/** A one-paragraph explanation of a failed check, for violation reports. */
export function describeFailure(result: CheckResult<KvInput, KvOutput>, maxOps = 12): string {
  const f = result.failure;
  if (!f) return 'linearizable';
  const key = f.ops[0]?.input.key;
  const lines = [`key ${key}: ${f.verdict === 'unknown' ? 'undecided' : f.verdict} (${f.ops.length} ops, ${f.steps} search steps${f.undecided ? ': ' + f.undecided : ''})`];
  if (f.longestLinearized) {
    lines.push(`  longest linearizable prefix (${f.longestLinearized.length} ops), last ones:`);
    for (const op of f.longestLinearized.slice(-4)) lines.push('    ' + kvModel.describe!(op));
    const done = new Set(f.longestLinearized);
    const rest = f.ops.filter((o) => !done.has(o)).sort((a, b) => a.call - b.call);
    lines.push(`  ops it could not place next (first ${Math.min(maxOps, rest.length)}):`);
    for (const op of rest.slice(0, maxOps)) lines.push('    ' + kvModel.describe!(op));
  }
  return lines.join('\n');
}

/** Convenience for the chaos tests: check a KV register history and explain the verdict. */
export function checkKvHistory(history: readonly KvOp[], opts: CheckOptions = {}): { verdict: Verdict; explanation: string } {
  const res = checkLinearizability(kvModel, history, opts);
  return { verdict: res.verdict, explanation: describeFailure(res) };
}

export interface KeyCheck {
  key: string;
  ops: number;
  verdict: Verdict;
  steps: number;
  ms: number;
}

/** The value that stands for every unobserved value in `canonicalUnobservedWrites`. */
const UNOBSERVED = '\u0000unobserved';

/**
 * The key's history with every unobserved unknown-outcome write (no answer; its value returned by
 * no read and expected by no compare-and-set) writing one stand-in value instead. Exact: no op can
 * tell these values apart (a read cannot return one, a CAS never matches one), so the history is
 * linearizable iff the rewritten one is; and the rewritten writes share one memo class (see
 * memoClasses), which keeps the search for a violation from trying every subset of them.
 */
export function canonicalUnobservedWrites(ops: readonly KvOp[]): KvOp[] {
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.input.type === 'read' && op.output && 'value' in op.output && op.output.value !== null) observed.add(op.output.value);
    if (op.input.type === 'cas' && op.input.expected !== null) observed.add(op.input.expected);
  }
  return ops.map((op) =>
    op.ret === Infinity && op.output === undefined && op.input.type === 'write' && !observed.has(op.input.value) ? { ...op, input: { ...op.input, value: UNOBSERVED } } : op,
  );
}

/**
 * The KV check for long histories: one key at a time, each key's sub-history produced on demand by
 * `perKey` and dropped once checked, so memory holds one key's search at a time (the memo bounded
 * by `maxCacheEntriesPerPartition`). Stops at the first illegal key; an undecided key (a bound
 * reached) makes the verdict 'unknown' and the remaining keys are still checked.
 */
export function checkKvHistoryByKey(perKey: Iterable<KvOp[]>, opts: CheckOptions = {}): { verdict: Verdict; explanation: string; keys: KeyCheck[] } {
  const keys: KeyCheck[] = [];
  let verdict: Verdict = 'ok';
  let failure: PartitionResult<KvInput, KvOutput> | undefined;
  for (const ops of perKey) {
    if (ops.length === 0) continue;
    const t = performance.now();
    const r = checkPartition(kvModel, canonicalUnobservedWrites(ops), opts.maxStepsPerPartition ?? 2_000_000, opts.maxCacheEntriesPerPartition ?? DEFAULT_MAX_CACHE_ENTRIES);
    const steps = r.steps;
    keys.push({ key: ops[0]!.input.key, ops: ops.length, verdict: r.verdict, steps, ms: Math.round(performance.now() - t) });
    if (r.verdict === 'illegal') {
      verdict = 'illegal';
      failure = r;
      break;
    }
    if (r.verdict === 'unknown' && verdict === 'ok') {
      verdict = 'unknown';
      failure = r;
    }
  }
  const explanation = failure ? describeFailure({ verdict, partitions: [], failure }) : 'linearizable';
  return { verdict, explanation, keys };
}
