// Linearizability checker: Wing & Gong's search with Lowe's just-in-time linearization and
// memoization of (linearized set, model state), as in Porcupine. Histories are split by a
// model-provided partition (per key for the KV register), which is sound because a history of
// independent objects is linearizable iff each object's sub-history is (P-compositionality).
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
}

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
    const r = checkPartition(model, p, opts.maxStepsPerPartition ?? 2_000_000);
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

function checkPartition<S, I, O>(model: Model<S, I, O>, opsIn: readonly HistoryOp<I, O>[], maxSteps: number): PartitionResult<I, O> {
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

  const words = Math.ceil(n / 32);
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const stack: { op: number; state: S }[] = [];
  let state = model.init();
  let entry = next[HEAD]!;
  let steps = 0;
  let longest: number[] = [];

  const key = (h: string) => {
    let s = '';
    for (let w = 0; w < words; w++) s += linearized[w]!.toString(36) + ',';
    return s + h;
  };

  while (next[HEAD]! !== -1) {
    if (++steps > maxSteps) return { ops, verdict: 'unknown', steps };
    if (entry === -1) throw new Error('linearizability search ran off the event list');
    if (entry < n) {
      const op = ops[entry]!;
      const after = model.step(state, op.input, op.output);
      let advanced = false;
      if (after !== undefined) {
        linearized[entry >> 5]! |= 1 << (entry & 31);
        const k = key(model.hash(after));
        if (!cache.has(k)) {
          cache.add(k);
          stack.push({ op: entry, state });
          state = after;
          unlink(entry);
          unlink(entry + n);
          if (stack.length > longest.length) longest = stack.map((f) => f.op);
          entry = next[HEAD]!;
          advanced = true;
        } else {
          linearized[entry >> 5]! &= ~(1 << (entry & 31));
        }
      }
      if (!advanced) entry = next[entry]!;
    } else {
      // A return whose call is not yet linearized: the current prefix cannot be extended. Backtrack.
      const top = stack.pop();
      if (!top) {
        return { ops, verdict: 'illegal', steps, longestLinearized: longest.map((i) => ops[i]!) };
      }
      state = top.state;
      linearized[top.op >> 5]! &= ~(1 << (top.op & 31));
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
  const lines = [`key ${key}: ${f.verdict} (${f.ops.length} ops, ${f.steps} search steps)`];
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
