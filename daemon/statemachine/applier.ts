// One group's ordered apply pipeline into the application.
//
// The host enqueues committed entries (contiguous, increasing); one loop per group sends
// everything queued as ONE UpdateEntries call per round, so a burst of commits becomes a few
// large calls. Invariants: entries reach the app in index order with no gaps and none is ever
// dropped before the app confirmed it (with sync: confirmed durable by Sync). A failed call is
// retried with the SAME entries after a capped exponential back-off; the app skips what it
// already has (idempotent by index), which is what makes apply exactly-once across retries.

import { Backoff, JITTER } from '../../protocol/backoff.js';
import type { RetryPolicy } from './app-client.js';
import { AppError } from './errors.js';
import { realClock, type Cancel, type Clock } from '../clock.js';
import type { AppEntry, EntryResult, UpdateEntriesResult } from './types.js';

/** What the applier needs from the app: AppClient, or an in-process app with the same calls. */
export interface ApplyTarget {
  lastLogIndex(group: number): Promise<number>;
  updateEntries(group: number, entries: AppEntry[]): Promise<UpdateEntriesResult>;
  sync(group: number): Promise<number>;
  readonly retryPolicy?: RetryPolicy;
  healthy?(): boolean;
}

export interface GroupApplierOptions {
  maxBatchEntries?: number;
  maxBatchBytes?: number;
  /** RAFT_SYNC=1: call Sync after each applied batch; report entries only once durable. */
  sync?: boolean;
  /**
   * How long committed entries may wait to leave together in one UpdateEntries call while `lazy()`
   * holds and nobody waits on waitApplied (0, the default: never). One call costs about as much CPU
   * on each side as a bare HTTP exchange whatever it carries (npm run bench:app-calls), so a
   * follower, whose applies answer no client, spends far less on a few large calls than on one per
   * commit. A batch of maxBatchEntries leaves at once.
   */
  lingerMs?: number;
  /** Whether lingering is allowed now (the host: this replica follows and has no proposal waiting). */
  lazy?(): boolean;
  /** Newly confirmed entries: `lastIndex` is the new applied index, `results` one per entry. */
  onApplied(lastIndex: number, results: Map<number, EntryResult>): void;
  /** Each failed attempt (the applier keeps retrying; this is for logs and metrics). */
  onError?(err: AppError): void;
  /**
   * Entries lo..hi (inclusive) again, from raftd's log, or undefined when it no longer holds
   * them. Lets the applier resend what an app lost after confirming it (an app that broke its
   * durability promise) instead of stalling; without it, or once compacted, it stalls.
   */
  refetch?(lo: number, hi: number): AppEntry[] | undefined;
  /**
   * The app misses committed entries lo..hi that raftd's log no longer holds (it was compacted
   * past them): the applier hands nothing past the gap to the app and answers every wait beyond it
   * with APPLY_GAP until it is replaced. The host repairs this by restoring the app from a snapshot
   * (a new applier). Without it a gap is still never applied across; it just stays.
   */
  onGap?(lo: number, hi: number): void;
  /** Timers and the time of failures (default: the real clock; virtual time in the simulator). */
  clock?: Clock;
  /** Back-off jitter in [0, 1) (default Math.random; the simulator's seeded stream). */
  random?: () => number;
  /**
   * A deliberate bug only the simulator sets (test/sim, mutation `applyPastGap`): a restarted
   * applier whose app misses entries the log no longer holds hands it the later ones anyway.
   */
  unsafeApplyPastGap?: boolean;
}

/** The most a batch grows to in bytes after failed calls (see nextBatch). */
const GROWN_BATCH_BYTES = 32 << 20;

export type ApplyOrderCode = 'APPLY_DUPLICATE';

/**
 * The caller broke enqueue's contract irreparably: an index enqueued twice with another term
 * (committed entries never change, so the host's log disagrees with itself). A gap is not an
 * order error any more: the applier bridges it from raftd's log or reports it (onGap).
 */
export class ApplyOrderError extends Error {
  override readonly name = 'ApplyOrderError';
  constructor(
    readonly code: ApplyOrderCode,
    message: string,
  ) {
    super(message);
  }
}

interface Waiter {
  index: number;
  resolve(): void;
  reject(err: AppError): void;
  cancelTimer: Cancel;
}

export class GroupApplier {
  private readonly maxBatchEntries: number;
  private readonly maxBatchBytes: number;
  private readonly sync: boolean;
  private readonly lingerMs: number;

  /** Confirmed by the app (durable when sync is on); reported to onApplied. */
  private applied = 0;
  /** The app acknowledged applying through here (> applied only while a Sync is owed). */
  private acked = 0;
  /**
   * Highest index handed to onApplied. Entries an app lost and got again (refill) are applied twice
   * but reported once: their proposals were settled the first time, and metrics count each once.
   */
  private reported = 0;
  /** Entries with index > applied, in order: queue[head..]. Kept until confirmed, for resends. */
  private queue: AppEntry[] = [];
  private head = 0;
  /** Results of acked-but-not-yet-durable entries (sync mode). */
  private readonly held = new Map<number, EntryResult>();

  private started = false;
  /** Entries the app misses and raftd's log no longer holds: nothing past them is taken. */
  private gap: { lo: number; hi: number } | undefined;
  /** The last call failed: learn the app's index again before sending anything. */
  private recheck = false;
  private stopped = false;
  private loopDone: Promise<void> | undefined;
  /** Wakes the idle loop (new entries, stop). */
  private wake: (() => void) | undefined;
  /** Cuts a back-off sleep short: only stop() does, so new entries never defeat the back-off. */
  private wakeSleep: (() => void) | undefined;
  /** Between failed calls: doubling from the client's retry policy's first delay, +-20% jitter so many groups retrying one app do not fire in lockstep. */
  private readonly backoff: Backoff;
  /**
   * Failed calls in a row, and since when (clock.now()). After failures, batches grow (doubling,
   * up to 64x the entries and 32 MiB): an app that resolves a failing entry with the help of a later one (RaftHouse's abandon
   * entries) sees that one however much was committed behind the failing entry.
   */
  private failStreak = 0;
  private failingSince: number | undefined;
  private lastFailure: AppError | undefined;
  private readonly waiters: Waiter[] = [];
  /** When the entries now lingering started to wait (undefined: none linger). */
  private lingerSince: number | undefined;
  /**
   * Ends a linger early. Apart from `wake` so that new entries, which arrive once per commit, do
   * not end it (only a full batch does): a linger outlives many enqueues with one timer.
   */
  private endLinger: (() => void) | undefined;

  constructor(
    readonly group: number,
    private readonly client: ApplyTarget,
    private readonly opts: GroupApplierOptions,
  ) {
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.maxBatchEntries = Math.max(1, opts.maxBatchEntries ?? 10_000);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? 8 << 20);
    this.sync = opts.sync ?? false;
    this.lingerMs = Math.max(0, opts.lingerMs ?? 0);
    this.backoff = new Backoff({ ...(client.retryPolicy ?? { initialMs: 50, maxMs: 250 }), jitter: JITTER.spread }, this.random);
  }

  private readonly clock: Clock;
  private readonly random: () => number;

  /**
   * Learns the app's last index (retrying with back-off while the app is down) and starts the
   * loop. Resolves once the index is known; rejects with APPLIER_STOPPED if stopped first.
   */
  async start(): Promise<void> {
    if (this.started) return;
    for (;;) {
      if (this.stopped) throw new AppError('APPLIER_STOPPED', `group ${this.group}: applier stopped before it started`);
      try {
        const last = await this.client.lastLogIndex(this.group);
        this.applied = this.acked = last;
        break;
      } catch (e) {
        await this.failed(e);
      }
    }
    this.started = true;
    this.adoptEarlyEntries();
    this.loopDone = this.loop();
  }

  /** Entries enqueued before start() knew the app's index: those it has are reported skipped. */
  private adoptEarlyEntries(): void {
    const q = this.queue.slice(this.head);
    if (q.length === 0) return;
    this.queue = [];
    this.head = 0;
    const skipped = new Map<number, EntryResult>();
    for (const e of q) {
      if (e.index <= this.applied) skipped.set(e.index, { index: e.index, ok: true, skipped: true });
      else this.queue.push(e);
    }
    if (skipped.size > 0) this.report(this.applied, skipped);
    const first = this.queue[0];
    if (first && first.index !== this.applied + 1) {
      // The app is behind where the host started handing entries over (its snapshot, say, was
      // taken of a state the app has since lost). Bridge from raftd's log if it still has them.
      const missing = this.bridge(this.applied + 1, first.index - 1);
      if (missing) this.queue = [...missing, ...this.queue];
      else if (this.opts.unsafeApplyPastGap) this.applied = this.acked = first.index - 1;
      else {
        this.queue = [];
        this.enterGap(this.applied + 1, first.index - 1);
      }
    }
  }

  /** Entries lo..hi from raftd's log, exactly and in order, or undefined. */
  private bridge(lo: number, hi: number): AppEntry[] | undefined {
    const got = this.opts.refetch?.(lo, hi);
    if (!got || got.length !== hi - lo + 1) return undefined;
    for (let k = 0; k < got.length; k++) if (got[k]!.index !== lo + k) return undefined;
    return got;
  }

  /**
   * The app misses lo..hi for good (as far as this applier can tell): what is queued before the gap
   * is still applied, nothing after it is taken, and waits past it fail at once (a read waiting for
   * them would otherwise hang until its deadline, and must never be served from the state short of
   * them). Reported once, for the host to repair by snapshot.
   */
  private enterGap(lo: number, hi: number): void {
    if (this.gap) return;
    this.gap = { lo, hi };
    const err = this.gapError();
    this.opts.onError?.(err);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.index < lo) continue;
      this.waiters.splice(i, 1);
      w.cancelTimer();
      w.reject(err);
    }
    this.opts.onGap?.(lo, hi);
  }

  private gapError(): AppError {
    const g = this.gap!;
    return new AppError('APPLY_GAP', `group ${this.group}: the app misses entries ${g.lo}..${g.hi}, which raftd's log no longer holds; repairing from a snapshot`);
  }

  /** The missing range, while the applier cannot go on (the host repairs it by snapshot). */
  missing(): { lo: number; hi: number } | undefined {
    return this.gap ? { ...this.gap } : undefined;
  }

  enqueue(entries: AppEntry[]): void {
    if (this.stopped || entries.length === 0) return;
    const skipped = new Map<number, EntryResult>();
    for (const e of entries) {
      // Past a gap nothing is taken: those entries stay in raftd's log, and the repair (a new
      // applier over the restored app) is handed them from there.
      if (this.gap) break;
      const tail = this.tail();
      if (e.index <= tail) {
        // Redelivered below what the app already has (e.g. app ahead of raftd's durable commit
        // after a crash): its effect is in the app, so it is skipped, never re-sent.
        if (e.index <= this.applied) {
          skipped.set(e.index, { index: e.index, ok: true, skipped: true });
          continue;
        }
        // Still queued: a committed entry never changes, so the same index and term is the same
        // entry, handed over twice (harmless: it is queued once). Another term means raftd's
        // log contradicts itself: stop rather than apply either.
        const queued = this.queue[this.head + (e.index - this.queue[this.head]!.index)];
        if (queued && queued.index === e.index && queued.term === e.term) continue;
        throw new ApplyOrderError('APPLY_DUPLICATE', `group ${this.group}: entry ${e.index} enqueued twice with different terms (queued through ${tail})`);
      }
      // Before start() the app's index is unknown: the first entry may be anything.
      const firstBeforeStart = !this.started && this.queue.length === this.head;
      if (e.index !== tail + 1 && !firstBeforeStart) {
        // The host handed over past what this applier has: bridge from raftd's log, or stop at
        // the gap and have it repaired (APPLY_GAP used to throw here, and the host exited).
        const missing = this.bridge(tail + 1, e.index - 1);
        if (!missing) {
          this.enterGap(tail + 1, e.index - 1);
          break;
        }
        for (const m of missing) this.queue.push(m);
      }
      this.queue.push(e);
    }
    if (skipped.size > 0) {
      const at = this.applied;
      queueMicrotask(() => this.report(at, skipped));
    }
    // A full batch also ends a linger; anything less only wakes an idle loop.
    if (this.tail() - this.acked >= this.maxBatchEntries) this.interrupt();
    else this.poke();
  }

  appliedIndex(): number {
    return this.applied;
  }

  /** Undefined while calls succeed; else how long (ms) and how many calls in a row have failed, and the last error. */
  applyFailure(): { sinceMs: number; attempts: number; error: AppError } | undefined {
    if (this.failingSince === undefined || !this.lastFailure) return undefined;
    return { sinceMs: this.clock.now() - this.failingSince, attempts: this.failStreak, error: this.lastFailure };
  }

  queuedEntries(): number {
    return this.queue.length - this.head;
  }

  waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    if (this.stopped) return Promise.reject(new AppError('APPLIER_STOPPED', `group ${this.group}: applier stopped`));
    if (this.gap && index >= this.gap.lo) return Promise.reject(this.gapError());
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        index,
        resolve,
        reject,
        cancelTimer: this.clock.after(timeoutMs, () => {
          this.removeWaiter(w);
          const down = this.client.healthy ? !this.client.healthy() : false;
          reject(
            down
              ? new AppError('APP_UNAVAILABLE', `group ${this.group}: the app is unavailable; applied ${this.applied} of ${index}`)
              : new AppError('APP_TIMEOUT', `group ${this.group}: index ${index} not applied within ${timeoutMs} ms (applied ${this.applied})`),
          );
        }),
      };
      this.waiters.push(w);
      this.interrupt(); // a lingering batch leaves now: somebody waits for it
    });
  }

  /** Re-decides at once whether queued entries may linger (the host's `lazy()` answer changed). */
  nudge(): void {
    this.interrupt();
  }

  /** Stops after the call in flight (if any) finished; queued entries stay unapplied. */
  async stop(): Promise<void> {
    if (this.stopped) return this.loopDone;
    this.stopped = true;
    this.interrupt();
    const s = this.wakeSleep;
    this.wakeSleep = undefined;
    s?.();
    for (const w of this.waiters.splice(0)) {
      w.cancelTimer();
      w.reject(new AppError('APPLIER_STOPPED', `group ${this.group}: applier stopped`));
    }
    await this.loopDone;
  }

  // ---- the loop ----

  /** Puts entries appIndex+1..applied back in front of the queue so they are sent again. */
  private refill(appIndex: number): boolean {
    if (!this.opts.refetch || appIndex >= this.applied) return false;
    const lost = this.opts.refetch(appIndex + 1, this.applied);
    if (!lost || lost.length !== this.applied - appIndex || lost[0]!.index !== appIndex + 1) return false;
    this.queue = [...lost, ...this.queue.slice(this.head)];
    this.head = 0;
    this.applied = this.acked = appIndex;
    this.held.clear();
    return true;
  }

  private tail(): number {
    return this.queue.length > this.head ? this.queue[this.queue.length - 1]!.index : this.applied;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.recheck) await this.recheckRound();
        else if (this.sync && this.acked > this.applied) await this.syncRound();
        else if (this.tail() > this.acked) {
          if (await this.linger()) continue;
          await this.applyRound();
        } else {
          this.clearFailure(); // nothing owed to the app: whatever failed before is behind us
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      } catch (e) {
        await this.failed(e);
      }
    }
  }

  /**
   * After a failed call, ask the app where it is before resending: it may have restarted and
   * lost unsynced entries (resend from its index) or lost confirmed ones (stop feeding it).
   */
  private async recheckRound(): Promise<void> {
    const last = await this.client.lastLogIndex(this.group);
    this.recheck = false;
    if (last < this.applied) {
      const err = new AppError('APP_REGRESSED', `group ${this.group}: app's last index ${last} is below ${this.applied}, which it had confirmed`);
      if (!this.refill(last)) throw err;
      this.opts.onError?.(err); // resent from raftd's log; reported for the operator all the same
      return;
    }
    if (last < this.acked) {
      this.acked = last;
      this.held.forEach((_, i) => i > last && this.held.delete(i));
    }
  }

  /**
   * Holds unsent entries until lingerMs after the loop first found them waiting, unless lingering is off,
   * not allowed now, somebody waits, or a full batch is queued. True when it waited (anything may
   * have changed: the loop decides again). A waiter, nudge(), stop() or a full batch ends the wait
   * early (interrupt); an entry that merely joins the batch does not.
   */
  private async linger(): Promise<boolean> {
    const unsent = this.tail() - this.acked;
    if (this.lingerMs === 0 || this.stopped || this.waiters.length > 0 || unsent >= this.maxBatchEntries || !this.opts.lazy?.()) {
      this.lingerSince = undefined;
      return false;
    }
    const now = this.clock.now();
    this.lingerSince ??= now;
    const left = this.lingerSince + this.lingerMs - now;
    if (left <= 0) {
      this.lingerSince = undefined;
      return false;
    }
    await new Promise<void>((resolve) => {
      const cancel = this.clock.after(left, () => {
        this.endLinger = undefined;
        resolve();
      });
      this.endLinger = () => {
        cancel();
        resolve();
      };
    });
    return true;
  }

  private async applyRound(): Promise<void> {
    const batch = this.nextBatch();
    const first = batch[0]!.index;
    const last = batch[batch.length - 1]!.index;
    const { results, lastLogIndex } = await this.client.updateEntries(this.group, batch);
    if (lastLogIndex < first - 1) {
      // The app is behind what it acknowledged before. Unsynced entries lost in an app crash
      // (sync mode) are still queued and can be resent; anything older is gone from raftd.
      if (lastLogIndex >= this.applied) {
        this.acked = lastLogIndex;
        this.held.forEach((_, i) => i > lastLogIndex && this.held.delete(i));
        return;
      }
      const err = new AppError('APP_REGRESSED', `group ${this.group}: app's last index ${lastLogIndex} is below ${this.applied}, which it had confirmed`);
      if (!this.refill(lastLogIndex)) throw err;
      this.opts.onError?.(err);
      return;
    }
    const confirmed = Math.min(lastLogIndex, last);
    const byIndex = new Map<number, EntryResult>();
    for (const r of results) if (r.index <= confirmed) byIndex.set(r.index, r);
    if (confirmed < first) {
      // 2xx but nothing applied: resend the same batch, after a pause rather than in a hot loop.
      throw new AppError('APP_ERROR', `group ${this.group}: app applied none of ${first}..${last} (last index ${lastLogIndex})`, { appCode: 'NO_PROGRESS', status: 503 });
    }
    this.backoff.reset();
    this.clearFailure();
    this.acked = confirmed;
    if (this.sync) {
      byIndex.forEach((r, i) => this.held.set(i, r));
      return; // the next round Syncs before anything is reported
    }
    this.confirm(confirmed, byIndex);
  }

  private async syncRound(): Promise<void> {
    const durable = await this.client.sync(this.group);
    if (durable < this.applied) {
      throw new AppError('APP_REGRESSED', `group ${this.group}: Sync answered ${durable}, below ${this.applied} which it had made durable`);
    }
    this.backoff.reset();
    const upTo = Math.min(durable, this.acked);
    if (durable < this.acked) {
      // Applied but not durable (the app restarted in between): resend those entries.
      this.acked = durable;
      this.held.forEach((_, i) => i > durable && this.held.delete(i));
    }
    if (upTo <= this.applied) return;
    const results = new Map<number, EntryResult>();
    for (let i = this.applied + 1; i <= upTo; i++) {
      const r = this.held.get(i);
      if (r) results.set(i, r);
      this.held.delete(i);
    }
    this.confirm(upTo, results);
  }

  private clearFailure(): void {
    this.failStreak = 0;
    this.failingSince = undefined;
    this.lastFailure = undefined;
  }

  private nextBatch(): AppEntry[] {
    const start = this.head + (this.acked + 1 - this.queue[this.head]!.index);
    const batch: AppEntry[] = [];
    let bytes = 0;
    const grow = 2 ** Math.min(this.failStreak, 6);
    const maxEntries = this.maxBatchEntries * grow;
    // Bytes grow only up to GROWN_BATCH_BYTES: an app's request limit (the SDK's: 64 MiB, base64 included)
    // would otherwise refuse every grown call and the failing entry would never be tried again.
    const maxBytes = Math.max(this.maxBatchBytes, Math.min(this.maxBatchBytes * grow, GROWN_BATCH_BYTES));
    for (let i = start; i < this.queue.length && batch.length < maxEntries; i++) {
      const e = this.queue[i]!;
      if (batch.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      bytes += e.data.byteLength;
      batch.push(e);
    }
    return batch;
  }

  private confirm(upTo: number, results: Map<number, EntryResult>): void {
    this.applied = upTo;
    while (this.head < this.queue.length && this.queue[this.head]!.index <= upTo) this.head++;
    // Drop the consumed prefix once it is half the array (amortised O(1) per entry): it holds the
    // confirmed entries' data, and a fixed floor here (it was 1,024 entries) kept up to that many
    // entries alive, 600 MB of 0.6 MB RaftHouse inserts.
    if (this.head * 2 >= this.queue.length) {
      this.queue = this.head === this.queue.length ? [] : this.queue.slice(this.head);
      this.head = 0;
    }
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.index <= upTo) {
        this.waiters.splice(i, 1);
        w.cancelTimer();
        w.resolve();
      }
    }
    this.report(upTo, results);
  }

  /** onApplied with only the indexes not reported before (one pass; a copy only after a refill). */
  private report(upTo: number, results: Map<number, EntryResult>): void {
    const before = this.reported;
    let stale = false;
    for (const i of results.keys()) {
      if (i <= before) stale = true;
      else if (i > this.reported) this.reported = i;
    }
    this.opts.onApplied(upTo, stale ? new Map([...results].filter(([k]) => k > before)) : results);
  }

  private async failed(e: unknown): Promise<void> {
    if (this.started) this.recheck = true;
    const err = e instanceof AppError ? e : new AppError('APP_PROTOCOL', `group ${this.group}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    this.failStreak++;
    this.failingSince ??= this.clock.now();
    this.lastFailure = err;
    this.opts.onError?.(err);
    if (err.code === 'APP_REGRESSED') await this.waitForRecovery();
    else await this.sleep(this.backoff.next());
  }

  /** An app that lost confirmed state is not fed more entries until its index is back. */
  private async waitForRecovery(): Promise<void> {
    while (!this.stopped) {
      await this.sleep(this.backoff.next());
      if (this.stopped) return;
      try {
        if ((await this.client.lastLogIndex(this.group)) >= this.applied) return;
        this.opts.onError?.(new AppError('APP_REGRESSED', `group ${this.group}: app still below applied index ${this.applied}`));
      } catch (e) {
        if (e instanceof AppError) this.opts.onError?.(e);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const cancel = this.clock.after(ms, done);
      function done(): void {
        cancel();
        resolve();
      }
      this.wakeSleep = done;
    });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** poke(), and a linger in progress ends too. */
  private interrupt(): void {
    this.poke();
    const e = this.endLinger;
    this.endLinger = undefined;
    e?.();
  }

  private removeWaiter(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
