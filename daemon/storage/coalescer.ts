// Group commit for callers that do not batch themselves: while one fsync'd batch is in flight,
// new submissions wait and then all go together in the next batch, so many groups' Readies share
// one fsync. Batches are written one after another in submission order, and each submission's
// writes stay in order inside its batch, so a later submission never overtakes an earlier one.

import { StorageError } from './errors.js';
import type { GroupWrite } from './log-store.js';

export interface BatchWriter {
  write(batch: GroupWrite[]): Promise<void>;
}

export interface CoalescerOptions {
  /** Upper bound on GroupWrite records per batch (a single larger submission still goes whole). */
  maxWritesPerBatch?: number;
}

interface Pending {
  writes: GroupWrite[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface CoalescerStats {
  batches: number;
  submissions: number;
}

export class WriteCoalescer {
  private queue: Pending[] = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];
  private readonly maxWrites: number;
  readonly stats: CoalescerStats = { batches: 0, submissions: 0 };

  constructor(
    private readonly store: BatchWriter,
    opts: CoalescerOptions = {},
  ) {
    this.maxWrites = opts.maxWritesPerBatch ?? 100_000;
  }

  /** Resolves once these writes are durable (in whichever batch carried them). */
  submit(writes: GroupWrite[]): Promise<void> {
    this.stats.submissions++;
    const p = new Promise<void>((resolve, reject) => this.queue.push({ writes, resolve, reject }));
    if (!this.running) {
      this.running = true;
      // Start on a microtask so that submissions made in the same synchronous turn share the batch.
      queueMicrotask(() => void this.drain());
    }
    return p;
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  get queued(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const take: Pending[] = [];
      let n = 0;
      while (this.queue.length > 0 && (take.length === 0 || n + this.queue[0]!.writes.length <= this.maxWrites)) {
        const p = this.queue.shift()!;
        take.push(p);
        n += p.writes.length;
      }
      await this.writeBatch(take);
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private async writeBatch(take: Pending[]): Promise<void> {
    this.stats.batches++;
    try {
      await this.store.write(take.length === 1 ? take[0]!.writes : take.flatMap((p) => p.writes));
      for (const p of take) p.resolve();
    } catch (err) {
      if (take.length > 1 && err instanceof StorageError && err.code === 'INVALID') {
        // A rejected batch wrote nothing; write each submission alone so that only the
        // submission that broke the rules fails, not everyone who shared its batch.
        for (const p of take) await this.writeBatch([p]);
        return;
      }
      for (const p of take) p.reject(err);
    }
  }
}
