// The consistent cut of a read that touches several Raft groups (docs/design-notes.md, "Consistent
// cut"). Each group alone is linearizable; a read over several must also see all of them as they
// were at ONE instant between its start and its end, or real-time order across groups breaks (a
// client's later insert seen, its earlier one in another group missed).
//
// One round, on the serving replica (the gateway shares its process with the state machine):
//   1. hold apply in the touched groups (no entry, restore or deletion runs in them meanwhile) and
//      record each one's applied index a_g; call that instant t_h;
//   2. start a ReadIndex per group (after t_h) — it answers r_g = the group's commit index at some
//      instant after t_h — and run the round's reads while apply stays held (they see exactly a_g);
//   3. release, await the ReadIndexes. If r_g == a_g for every group a read touched, then for each
//      such g: a_g was committed before t_h (it was applied), commit indexes only grow, and
//      commit_g(after t_h) = a_g, so commit_g(t_h) = a_g: the read saw the committed state of all its
//      groups at the one instant t_h, which lies after the read arrived (rounds only take reads that
//      arrived before they begin) and before it returned. Otherwise the round's read is dropped and it
//      joins the next round, after a short back-off; after maxAttempts it fails with a retryable error.
// Reads waiting at the same time share one round (one hold, one ReadIndex per group), the way the
// gateway shares barriers.
//
// Placed groups (issue 21, placed/groups.ts): `hold` also holds the groups this node has no replica of,
// each on one member through its internal endpoint, and returns only once every hold is in place; `run`
// gets the hold (its remote legs name the members' hold ids). A hold no member grants, or a leg that
// fails (member gone, lease over), is a CutRetryError: the round is retried, like a group that moved.

import { setTimeout as sleep } from 'node:timers/promises';
import { JITTER, backoffDelay } from '../../protocol/backoff.js';
import type { ApplyHold } from '../statemachine/statemachine.js';
import { CODES, codeSet } from '../engine/codes.js';
import { ClickHouseError } from '../engine/errors.js';
import { GatewayError } from './errors.js';

export interface CutOptions {
  /** Holds apply in these groups of the local state machine and reports their applied indexes. */
  hold(groups: readonly number[]): Promise<ApplyHold>;
  /** A ReadIndex STARTED after this call: the group's commit index at an instant after it. */
  readIndex(group: number): Promise<number>;
  /** Rounds a read may take part in before it fails (each one after a back-off). */
  maxAttempts?: number;
  /** Longest a round keeps apply held; a read still running then is dropped from the round. */
  maxHoldMs?: number;
  /** Back-off before attempt n: up to backoffMs * n (random: rounds of several nodes spread out). */
  backoffMs?: number;
  /** Test-only mutant: skip step 3's check (the model test and the real-process test's "cut off"). */
  skipCheck?: boolean;
}

export const CUT_DEFAULTS = { maxAttempts: 30, maxHoldMs: 3_000, backoffMs: 2, maxStaleErrorAttempts: 2 } as const;

/**
 * The statement errors a group behind its commit index can explain (a member that has not applied a
 * CREATE / ALTER yet): only these are retried after a round saw such a group, and only
 * CUT_DEFAULTS.maxStaleErrorAttempts times — any other error is the statement's own, reported at once
 * (a client must not buy 30 rounds of held apply with an error of its making).
 */
const STALE_STATE_CODES = codeSet('UNKNOWN_TABLE', 'UNKNOWN_IDENTIFIER', 'NO_SUCH_COLUMN_IN_TABLE', 'NOT_FOUND_COLUMN_IN_BLOCK', 'UNKNOWN_DATABASE');

/** Such an error here, or in a remote leg (url(): the member's 4xx answer carries its code in its body). */
export function staleStateError(e: unknown): boolean {
  if (!(e instanceof ClickHouseError)) return false;
  if (STALE_STATE_CODES.has(e.code)) return true;
  if (e.code !== CODES.RECEIVED_ERROR_FROM_REMOTE_IO_SERVER) return false;
  const member = /^Received error from remote server \S+ HTTP status code: 4\d\d .*?, body: 'Code: (\d+)\./.exec(e.message);
  return member !== null && STALE_STATE_CODES.has(Number(member[1]));
}

export interface CutStats {
  /** Reads served through a cut. */
  reads: number;
  /** Rounds run (one hold each). */
  rounds: number;
  /** Read attempts dropped because a group moved (r_g > a_g). */
  retries: number;
  /** Reads that failed after maxAttempts or over maxHoldMs. */
  failures: number;
}

/**
 * A round that cannot go on but may succeed on the next (placed groups: no member of a remote group
 * granted a hold, a member died or its lease ran out under a leg). The read joins the next round.
 */
export class CutRetryError extends Error {
  override readonly name = 'CutRetryError';
}

/** The retryable error of a read that found no cut in time (ClickHouse's TIMEOUT_EXCEEDED). */
export class CutUnavailableError extends GatewayError {
  constructor(message: string) {
    super(CODES.TIMEOUT_EXCEEDED, `RH_CUT_UNAVAILABLE: ${message}; the read is safe to retry`);
  }
}

interface Pending {
  groups: readonly number[];
  run: (hold: ApplyHold) => Promise<Buffer>;
  attempts: number;
  resolve(b: { body: Buffer; attempts: number }): void;
  reject(e: unknown): void;
}

type Outcome = { ok: true; body: Buffer } | { ok: false; error: unknown } | { ok: false; late: true } | { ok: false; retry: CutRetryError };

export class CutReader {
  private readonly maxAttempts: number;
  private readonly maxHoldMs: number;
  private readonly backoffMs: number;
  private pending: Pending[] = [];
  private running = false;
  private readonly counters: CutStats = { reads: 0, rounds: 0, retries: 0, failures: 0 };

  constructor(private readonly o: CutOptions) {
    this.maxAttempts = o.maxAttempts ?? CUT_DEFAULTS.maxAttempts;
    this.maxHoldMs = o.maxHoldMs ?? CUT_DEFAULTS.maxHoldMs;
    this.backoffMs = o.backoffMs ?? CUT_DEFAULTS.backoffMs;
  }

  stats(): CutStats {
    return { ...this.counters };
  }

  /**
   * Runs `run` (a read of the local replica) so that it sees every group in `groups` at one instant
   * between this call and its return; resolves with its result and the number of rounds it took.
   */
  read(groups: readonly number[], run: (hold: ApplyHold) => Promise<Buffer>): Promise<{ body: Buffer; attempts: number }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ groups: [...new Set(groups)], run, attempts: 0, resolve, reject });
      if (!this.running) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const again = await this.round(batch);
        if (again.length === 0) continue;
        // Those that must retry go before the reads that arrived meanwhile (same next round anyway).
        this.pending = [...again, ...this.pending];
        const n = Math.max(...again.map((p) => p.attempts));
        await sleep(backoffDelay({ initialMs: this.backoffMs, maxMs: this.backoffMs * this.maxAttempts, growth: 'linear', jitter: JITTER.full }, n));
      }
    } finally {
      this.running = false;
    }
  }

  /** One round for `batch`; returns the reads that must try again. */
  private async round(batch: Pending[]): Promise<Pending[]> {
    this.counters.rounds++;
    const union = [...new Set(batch.flatMap((p) => p.groups))].sort((a, b) => a - b);
    let hold: ApplyHold;
    try {
      hold = await this.o.hold(union);
    } catch (e) {
      if (!(e instanceof CutRetryError)) {
        for (const p of batch) p.reject(e);
        return [];
      }
      // Placed groups: some member would not hold (down, busy). Every read tries again, up to its limit.
      this.counters.retries++;
      return batch.filter((p) => {
        p.attempts++;
        if (p.attempts < this.maxAttempts) return true;
        this.counters.failures++;
        p.reject(new CutUnavailableError(`no consistent cut of groups ${p.groups.join(',')} in ${p.attempts} attempts (${e.message})`));
        return false;
      });
    }
    // Started only now (after t_h): each answers the commit index at an instant after t_h.
    const indexes = union.map((g) => this.o.readIndex(g));
    const settled = Promise.allSettled(indexes);
    let late = false;
    let timer: NodeJS.Timeout | undefined;
    const capped = new Promise<void>((r) => { timer = setTimeout(() => { late = true; r(); }, this.maxHoldMs); });
    const outcomes: Outcome[] = new Array<Outcome>(batch.length);
    const reads = batch.map(async (p, i) => {
      try {
        const body = await p.run(hold);
        outcomes[i] = late ? { ok: false, late: true } : { ok: true, body };
      } catch (error) {
        outcomes[i] = late ? { ok: false, late: true } : error instanceof CutRetryError ? { ok: false, retry: error } : { ok: false, error };
      }
    });
    await Promise.race([Promise.all(reads), capped]);
    clearTimeout(timer);
    hold.release();
    // A read still running past the cap sees apply resumed: whatever it returns is not the cut's.
    for (let i = 0; i < batch.length; i++) outcomes[i] ??= { ok: false, late: true };
    const committed = new Map<number, number>();
    const failedGroups = new Map<number, unknown>();
    (await settled).forEach((r, i) => {
      if (r.status === 'fulfilled') committed.set(union[i]!, r.value);
      else failedGroups.set(union[i]!, r.reason);
    });
    const again: Pending[] = [];
    batch.forEach((p, i) => {
      const out = outcomes[i]!;
      p.attempts++;
      if (!out.ok && 'retry' in out) {
        this.counters.retries++;
        if (p.attempts >= this.maxAttempts) {
          this.counters.failures++;
          p.reject(new CutUnavailableError(`no consistent cut of groups ${p.groups.join(',')} in ${p.attempts} attempts (${out.retry.message})`));
        } else again.push(p);
        return;
      }
      if (!out.ok && 'error' in out) {
        // The statement's own error (syntax, unknown column): no retry changes it — unless the round saw
        // a group behind its commit index, where the error may be the stale state's (placed groups: a
        // member that has not applied the CREATE yet answers UNKNOWN_TABLE for its leg).
        const stale = !this.o.skipCheck && p.groups.some((g) => committed.has(g) && committed.get(g) !== hold.applied.get(g));
        if (!stale || !staleStateError(out.error) || p.attempts >= Math.min(this.maxAttempts, CUT_DEFAULTS.maxStaleErrorAttempts)) {
          p.reject(out.error);
          return;
        }
        this.counters.retries++;
        again.push(p);
        return;
      }
      if (!out.ok) {
        this.counters.failures++;
        p.reject(new CutUnavailableError(`the read of groups ${p.groups.join(',')} ran longer than the ${this.maxHoldMs} ms a consistent cut may hold apply; narrow it, or read the local endpoint`));
        return;
      }
      const broken = p.groups.find((g) => failedGroups.has(g));
      if (broken !== undefined) {
        p.reject(failedGroups.get(broken)); // raftd's own error (no leader, timeout): reported as it is
        return;
      }
      const moved = this.o.skipCheck ? [] : p.groups.filter((g) => committed.get(g) !== hold.applied.get(g));
      if (moved.length === 0) {
        this.counters.reads++;
        p.resolve({ body: out.body, attempts: p.attempts });
        return;
      }
      this.counters.retries++;
      if (p.attempts >= this.maxAttempts) {
        this.counters.failures++;
        p.reject(new CutUnavailableError(`no consistent cut of groups ${p.groups.join(',')} in ${p.attempts} attempts (group ${moved[0]} kept committing: applied ${hold.applied.get(moved[0]!)}, committed ${committed.get(moved[0]!)})`));
        return;
      }
      again.push(p);
    });
    return again;
  }
}
