// The member side of a cross-node consistent cut (docs/design-notes.md, "RaftHouse over placed
// groups"): apply of one group held on this replica for a bounded lease, on behalf of another node's
// gateway. While the hold lives no batch, snapshot restore or deletion runs in the group (the state
// machine's group lock, as for the local cut), so every leg read under it sees exactly `applied`.
//
// Bounded: at most `maxHolds` at once, a lease of at most `maxLeaseMs`, and a hold whose lock is not
// granted within `grantWaitMs` is given up (two coordinators each holding a group the other wants
// would otherwise wait on each other until their leases ran out; the cut retries instead).

import { randomBytes } from 'node:crypto';
import type { ApplyHold } from '../statemachine/statemachine.js';

export interface HoldSource {
  holdApply(groups: readonly number[]): Promise<ApplyHold>;
  /** undefined when this replica has no state for the group (not placed here, or dropped). */
  appliedIndexNow(group: number): number | undefined;
}

export interface HoldLimits {
  /** Holds alive (or waiting for their lock) at once. */
  maxHolds: number;
  /** The longest lease granted. */
  maxLeaseMs: number;
  /** How long a hold waits for its group's lock before it is refused (HOLD_BUSY). */
  grantWaitMs: number;
}

export const HOLD_DEFAULTS: HoldLimits = { maxHolds: 64, maxLeaseMs: 10_000, grantWaitMs: 1_000 };

export type HoldRefusal = 'TOO_MANY_HOLDS' | 'HOLD_BUSY' | 'NOT_PLACED_HERE';

export class HoldRefused extends Error {
  constructor(readonly reason: HoldRefusal, message: string) {
    super(message);
  }
}

interface Held {
  group: number;
  applied: number;
  hold: ApplyHold;
  timer: NodeJS.Timeout;
  /** Leg reads running under it: an expiry while one runs makes that read's answer void. */
  readsRunning: number;
  /** Aborted when the hold ends (release, expiry, close): the leg reads under it stop in the engine. */
  abort: AbortController;
  /** When the lease runs out (Date.now() ms). */
  expiresAt: number;
}

/** What a leg read under a hold gets: stop when it fires, and never run past the lease. */
export interface HoldScope {
  signal: AbortSignal;
  remainingMs: number;
}

export class HoldTable {
  private readonly holds = new Map<string, Held>();
  private readonly maxHolds: number;
  private readonly maxLeaseMs: number;
  private readonly grantWaitMs: number;
  private pending = 0;
  /** Expired before release (tests and /status). */
  expired = 0;

  constructor(private readonly source: HoldSource, o: Partial<HoldLimits> = {}) {
    this.maxHolds = o.maxHolds ?? HOLD_DEFAULTS.maxHolds;
    this.maxLeaseMs = o.maxLeaseMs ?? HOLD_DEFAULTS.maxLeaseMs;
    this.grantWaitMs = o.grantWaitMs ?? HOLD_DEFAULTS.grantWaitMs;
  }

  get size(): number {
    return this.holds.size;
  }

  /** Holds apply of `group` for `leaseMs` (capped); resolves with the hold's id and the applied index. */
  async hold(group: number, leaseMs: number): Promise<{ id: string; applied: number; leaseMs: number }> {
    if (this.holds.size + this.pending >= this.maxHolds) throw new HoldRefused('TOO_MANY_HOLDS', `this node already holds apply for ${this.maxHolds} reads`);
    const lease = Math.max(1, Math.min(this.maxLeaseMs, Math.floor(leaseMs)));
    this.pending++;
    let given: ApplyHold;
    try {
      const attempt = this.source.holdApply([group]);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), this.grantWaitMs); });
      const won = await Promise.race([attempt, late]);
      clearTimeout(timer);
      if (won === 'late') {
        // Granted later, if ever: let go at once.
        void attempt.then((h) => h.release(), () => undefined);
        throw new HoldRefused('HOLD_BUSY', `group ${group}'s apply lock was not granted within ${this.grantWaitMs} ms`);
      }
      given = won;
    } finally {
      this.pending--;
    }
    const applied = given.applied.get(group) ?? 0;
    if (this.source.appliedIndexNow(group) === undefined) {
      given.release();
      throw new HoldRefused('NOT_PLACED_HERE', `group ${group} has no replica on this node`);
    }
    const id = randomBytes(16).toString('hex');
    const timer = setTimeout(() => {
      this.expired++;
      this.drop(id);
    }, lease);
    timer.unref();
    this.holds.set(id, { group, applied, hold: given, timer, readsRunning: 0, abort: new AbortController(), expiresAt: Date.now() + lease });
    return { id, applied, leaseMs: lease };
  }

  /** Ends a hold early (the coordinator's read is done); unknown ids are ignored. */
  release(id: string): boolean {
    return this.drop(id);
  }

  /**
   * Runs `read` under hold `id` of `group`; its answer counts only if the hold lived from before the
   * read began until after it ended (otherwise apply may have resumed under it: refused, never torn).
   */
  async underHold<T>(id: string, group: number, read: (scope: HoldScope) => Promise<T>): Promise<T | undefined> {
    const h = this.holds.get(id);
    if (!h || h.group !== group) return undefined;
    const remainingMs = h.expiresAt - Date.now();
    if (remainingMs <= 0) return undefined;
    h.readsRunning++;
    try {
      const out = await read({ signal: h.abort.signal, remainingMs });
      return this.holds.get(id) === h ? out : undefined;
    } finally {
      h.readsRunning--;
    }
  }

  /** Whether `id` holds `group` now. */
  alive(id: string, group: number): boolean {
    return this.holds.get(id)?.group === group;
  }

  closeAll(): void {
    for (const id of [...this.holds.keys()]) this.drop(id);
  }

  private drop(id: string): boolean {
    const h = this.holds.get(id);
    if (!h) return false;
    this.holds.delete(id);
    clearTimeout(h.timer);
    h.abort.abort();
    h.hold.release();
    return true;
  }
}
