// The deterministic environment behind the applier's scenario commands: the real GroupApplier over
// an in-process app whose calls answer at once (no sockets, no timers), and a stand-in for raftd's
// log that can be compacted, so the sequences behind issue 18's APPLY_GAP can be replayed step by
// step. Every effect (app calls, onApplied, onGap, onError) is printed in the order it happened.
import { GroupApplier, type ApplyTarget } from '../../daemon/statemachine/applier.js';
import type { AppError } from '../../daemon/statemachine/errors.js';
import type { AppEntry, EntryResult, UpdateEntriesResult } from '../../daemon/statemachine/types.js';
import type { Args } from './args.js';
import { ArgError } from './args.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const GROUP = 13;

/** An app with an applied index and a durable one: a crash goes back to the durable one. Its calls never fail. */
class SimApp implements ApplyTarget {
  applied = 0;
  durable = 0;
  /** Sync calls wait until released (app-hold-sync): the window in which an app crash loses applied entries. */
  holdSync = false;
  private releaseSync: (() => void) | undefined;
  readonly retryPolicy = { initialMs: 1, maxMs: 1 };

  constructor(private readonly log: (line: string) => void) {}

  async lastLogIndex(): Promise<number> {
    this.log(`app: LastLogIndex -> ${this.applied}`);
    return this.applied;
  }

  async updateEntries(_group: number, entries: AppEntry[]): Promise<UpdateEntriesResult> {
    const results: EntryResult[] = [];
    let refused = '';
    for (const e of entries) {
      if (e.index <= this.applied) results.push({ index: e.index, ok: true, skipped: true });
      else if (e.index === this.applied + 1) {
        this.applied = e.index;
        results.push({ index: e.index, ok: true, result: null });
      } else {
        refused = ` (refused ${e.index}: not next after ${this.applied})`;
        break;
      }
    }
    const first = entries[0]!.index;
    const last = entries[entries.length - 1]!.index;
    this.log(`app: UpdateEntries ${first}..${last} -> lastLogIndex=${this.applied}${refused}`);
    return { results, lastLogIndex: this.applied };
  }

  async sync(): Promise<number> {
    if (this.holdSync) {
      this.log('app: Sync called (held)');
      await new Promise<void>((r) => (this.releaseSync = r));
    }
    this.durable = this.applied;
    this.log(`app: Sync -> ${this.durable}`);
    return this.durable;
  }

  release(): void {
    this.holdSync = false;
    const r = this.releaseSync;
    this.releaseSync = undefined;
    r?.();
  }
}

/** Lets every promise chain that needs no timer run to its end. */
async function settle(): Promise<void> {
  for (let k = 0; k < 20; k++) await new Promise<void>((r) => setImmediate(r));
}

export class ApplierEnv {
  private out: string[] = [];
  private readonly app = new SimApp((l) => this.out.push(l));
  private applier: GroupApplier | undefined;
  private generation = 0;
  /** raftd's log of the group: entries logFirst..logLast are still held (refetch answers from here). */
  private logFirst = 1;
  private logLast = 0;
  private readonly waits: Array<{ index: number; state: string }> = [];

  private entry(index: number): AppEntry {
    return { index, term: 1, data: enc(`e${index}`) };
  }

  private range(lo: number, hi: number): AppEntry[] {
    const r: AppEntry[] = [];
    for (let i = lo; i <= hi; i++) r.push(this.entry(i));
    return r;
  }

  async run(cmd: string, a: Args): Promise<string | undefined> {
    this.out = [];
    switch (cmd) {
      case 'log-append':
        this.logLast = Math.max(this.logLast, a.int('to'));
        this.out.push(`log: ${this.logFirst}..${this.logLast}`);
        break;
      case 'log-compact':
        this.logFirst = Math.max(this.logFirst, a.int('index') + 1);
        this.out.push(`log: ${this.logFirst}..${this.logLast} (snapshot at ${this.logFirst - 1})`);
        break;
      case 'app-new':
        this.app.applied = this.app.durable = a.int('index', 0);
        this.out.push(`app at ${this.app.applied}`);
        break;
      case 'app-crash':
        this.out.push(`app crashed: applied ${this.app.applied} -> ${this.app.durable} (unsynced entries lost)`);
        this.app.applied = this.app.durable;
        break;
      case 'app-hold-sync':
        this.app.holdSync = true;
        this.out.push('app holds Sync calls');
        break;
      case 'app-release-sync':
        this.out.push('app releases Sync calls');
        this.app.release();
        break;
      case 'app-restore': {
        const idx = a.int('index');
        this.app.applied = this.app.durable = idx;
        this.out.push(`app restored from a snapshot at ${idx}`);
        break;
      }
      case 'app-state':
        this.out.push(`app applied=${this.app.applied} durable=${this.app.durable}`);
        break;
      case 'applier-start':
        await this.start(a);
        break;
      case 'applier-enqueue': {
        const lo = a.int('from');
        const hi = a.int('to');
        this.out.push(`enqueue ${lo}..${hi}`);
        try {
          this.current().enqueue(this.range(lo, hi));
        } catch (e) {
          this.out.push(`enqueue threw ${(e as { code?: string }).code ?? ''}: ${(e as Error).message}`);
        }
        break;
      }
      case 'applier-wait': {
        const index = a.int('index');
        const w = { index, state: 'pending' };
        this.waits.push(w);
        this.current()
          .waitApplied(index, 3_600_000)
          .then(
            () => (w.state = 'resolved'),
            (e: AppError) => (w.state = `rejected ${e.code}`),
          );
        break;
      }
      case 'applier-state': {
        const ap = this.current();
        const gap = ap.missing();
        this.out.push(`applier#${this.generation} applied=${ap.appliedIndex()} queued=${ap.queuedEntries()}${gap ? ` missing=${gap.lo}..${gap.hi}` : ''}`);
        break;
      }
      case 'applier-stop':
        await this.stop();
        break;
      default:
        return undefined;
    }
    await settle();
    for (const w of this.waits.splice(0)) {
      if (w.state === 'pending') this.waits.push(w);
      else this.out.push(`wait ${w.index}: ${w.state}`);
    }
    return this.out.length ? this.out.join('\n') : 'ok';
  }

  private current(): GroupApplier {
    if (!this.applier) throw new ArgError('no applier (applier-start first)');
    return this.applier;
  }

  private async start(a: Args): Promise<void> {
    await this.stop();
    const gen = ++this.generation;
    const tag = `applier#${gen}`;
    const ap = new GroupApplier(GROUP, this.app, {
      sync: a.bool('sync'),
      maxBatchEntries: a.int('batch', 10_000),
      onApplied: (last, results) => {
        let skipped = 0;
        for (const r of results.values()) if ('skipped' in r) skipped++;
        this.out.push(`${tag}: applied through ${last} (${results.size} result(s)${skipped ? `, ${skipped} skipped` : ''})`);
      },
      onError: (e) => this.out.push(`${tag}: error ${e.code}: ${e.message}`),
      onGap: (lo, hi) => this.out.push(`${tag}: gap ${lo}..${hi} reported to the host (repair by snapshot)`),
      refetch: (lo, hi) => {
        const ok = lo >= this.logFirst && hi <= this.logLast;
        this.out.push(`${tag}: refetch ${lo}..${hi} from raftd's log -> ${ok ? 'ok' : `no (log holds ${this.logFirst}..${this.logLast})`}`);
        return ok ? this.range(lo, hi) : undefined;
      },
    });
    this.applier = ap;
    // Entries the host hands over before start() knew the app's index (the restart case).
    if (a.has('enqueued-from')) {
      const lo = a.int('enqueued-from');
      const hi = a.int('enqueued-to', lo);
      this.out.push(`${tag}: enqueue ${lo}..${hi} before start`);
      ap.enqueue(this.range(lo, hi));
    }
    try {
      await ap.start();
      this.out.push(`${tag}: started`);
    } catch (e) {
      this.out.push(`${tag}: start failed: ${(e as Error).message}`);
    }
  }

  private async stop(): Promise<void> {
    if (!this.applier) return;
    const ap = this.applier;
    this.applier = undefined;
    await ap.stop();
    this.out.push(`applier#${this.generation} stopped`);
  }

  /** Stops whatever runs (the test's cleanup: no waiter timers left behind). */
  async close(): Promise<void> {
    this.app.release();
    if (this.applier) await this.applier.stop();
    this.applier = undefined;
  }
}
