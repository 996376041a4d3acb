// One back-off rule for every retry loop of the repository: raftd's peer reconnects (transport), its
// applier and app health probe (statemachine), the SDK's resend of a refusal, and RaftHouse's
// consistent-cut rounds. Each loop only chooses its numbers; how a delay grows and is jittered is here.
//
// The delay before attempt n (n = 1 after the first failure) is
//   base(n) = min(maxMs, initialMs * 2^(n-1))    growth 'double' (default)
//   base(n) = min(maxMs, initialMs * n)          growth 'linear'
// times a factor drawn uniformly from [jitter[0], jitter[1]], rounded to a whole millisecond.
// Jitter spreads many retriers (peers, groups, readers) apart so they do not fire in step.

export interface BackoffPolicy {
  /** The first delay (before jitter). */
  readonly initialMs: number;
  /** No base delay grows past this (the jitter factor applies after the cap). */
  readonly maxMs: number;
  /** How the base grows from one failure to the next. Default 'double'. */
  readonly growth?: 'double' | 'linear';
  /** The range of the factor each delay is multiplied by. Default JITTER.none. */
  readonly jitter?: readonly [low: number, high: number];
}

/** The jitter ranges the repository uses. */
export const JITTER = {
  /** The same delay every time (a single client: nobody to spread apart from). */
  none: [1, 1],
  /** "Equal jitter": never less than half the base, never more than it. */
  equal: [0.5, 1],
  /** Plus or minus 20 % around the base. */
  spread: [0.8, 1.2],
  /** Anywhere from nothing to the base. */
  full: [0, 1],
} as const satisfies Record<string, readonly [number, number]>;

/** Refuses a policy that would give negative, infinite or NaN delays. */
export function checkBackoffPolicy(p: BackoffPolicy): void {
  const [low, high] = p.jitter ?? JITTER.none;
  const ok = Number.isFinite(p.initialMs) && p.initialMs >= 0 && p.maxMs >= p.initialMs && !Number.isNaN(p.maxMs)
    && Number.isFinite(low) && Number.isFinite(high) && low >= 0 && high >= low;
  if (!ok) throw new RangeError(`back-off policy ${JSON.stringify(p)}: needs 0 <= initialMs <= maxMs and 0 <= jitter low <= high`);
}

/** The delay before attempt `failures + 1`, after `failures` (>= 1) failures in a row. */
export function backoffDelay(p: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(failures));
  // 2^(n-1) overflows to Infinity long after the cap applies; clamp the exponent so it never does.
  const grown = p.growth === 'linear' ? p.initialMs * n : p.initialMs * 2 ** Math.min(n - 1, 60);
  const base = Math.min(p.maxMs, grown);
  const [low, high] = p.jitter ?? JITTER.none;
  return Math.round(base * (low + (high - low) * random()));
}

/** A retry loop's state: counts failures in a row and gives the next delay; `reset` after a success. */
export class Backoff {
  private failures = 0;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {
    checkBackoffPolicy(policy);
  }

  /** Counts one more failure and returns how long to wait before the next attempt. */
  next(): number {
    this.failures++;
    return backoffDelay(this.policy, this.failures, this.random);
  }

  /** After a success: the next failure waits the initial delay again. */
  reset(): void {
    this.failures = 0;
  }

  /** Failures in a row since the last reset. */
  get failuresInARow(): number {
    return this.failures;
  }
}
