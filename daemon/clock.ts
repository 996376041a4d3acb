// Time as a port. The host (daemon/host) and the applier take their clock from the shell instead of
// reading timers and the wall clock themselves, so the simulator (test/sim) can run the very same
// code in virtual time, deterministically. realClock is the only implementation raftd uses.

/** Cancels a pending timer (no effect once it fired). */
export type Cancel = () => void;

export interface Clock {
  /** Milliseconds on a monotonic clock (only differences mean anything). */
  now(): number;
  /** Runs fn once after ms. */
  after(ms: number, fn: () => void): Cancel;
  /** Runs fn every ms until cancelled. */
  every(ms: number, fn: () => void): Cancel;
  /** Runs fn soon, after the current event and the promise jobs it queued (setImmediate). */
  defer(fn: () => void): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  defer(fn) {
    setImmediate(fn);
  },
};

/** Resolves after ms on the given clock. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}
