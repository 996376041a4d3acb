// The simulated ports the host runs on, shared by the host simulator (host-sim.ts) and the host
// scenario environment (test/scenario/host-env.ts): a clock of one process's life (crash, pause),
// a log store whose write and fsync are apart, and an application behind the real GroupApplier.

import type { AppPort, GroupWrite, LogStorePort } from '../../daemon/host/ports.js';
import type { ApplyTarget } from '../../daemon/statemachine/applier.js';
import { AppError } from '../../daemon/statemachine/errors.js';
import type { AppEntry, EntryResult, UpdateEntriesResult } from '../../daemon/statemachine/types.js';
import type { Cancel, Clock } from '../../daemon/clock.js';
import type { Entry, HardState, SnapshotMetadata } from '../../daemon/raft/types.js';
import type { EventQueue } from './eventqueue.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** What the ports ask of the world they run in (randomness, latencies, the checks). */
export interface SimWorld {
  readonly t: { fsyncMs: [number, number]; appMs: [number, number]; appSync: boolean };
  storeIo(store: SimLogStore, delay: [number, number], done: () => void): Promise<void>;
  appLatency(): Promise<void>;
  appFails(): boolean;
  noteApplied(node: number, group: number, e: AppEntry): void;
  violation(property: 'apply-order', detail: string): void;
  count(kind: string): void;
}

/** A clock of one node's life: its timers die with it (a crash), and it never moves on its own. */
export class SimClock implements Clock {
  /** The process died: nothing of it runs again. */
  dead = false;
  /** The process is stopped (SIGSTOP): what would run waits for resume(). */
  private paused = false;
  private held: Array<() => void> = [];
  constructor(private readonly q: EventQueue) {}

  /** Runs fn as this process: not at all once dead, later while paused. */
  run(fn: () => void): void {
    if (this.dead) return;
    if (this.paused) this.held.push(fn);
    else fn();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const fn of this.held.splice(0)) this.q.after(0, () => this.run(fn));
  }

  get isPaused(): boolean {
    return this.paused;
  }

  now(): number {
    return this.q.now;
  }
  after(ms: number, fn: () => void): Cancel {
    let live = true;
    this.q.after(Math.max(0, ms), () => this.run(() => live && fn()));
    return () => (live = false);
  }
  every(ms: number, fn: () => void): Cancel {
    let live = true;
    const again = (): void => {
      this.q.after(ms, () =>
        this.run(() => {
          if (!live) return;
          fn();
          again();
        }),
      );
    };
    again();
    return () => (live = false);
  }
  defer(fn: () => void): void {
    this.q.after(0, () => this.run(fn));
  }
}

export interface StoredGroup {
  hardState: HardState;
  snapshot: SnapshotMetadata | null;
  entries: Entry[];
}

/** The log store of one machine: writes are visible at once and durable only once synced. */
export class SimLogStore implements LogStorePort {
  readonly durable = new Map<number, StoredGroup>();
  /** Written, not yet synced, in write order. A crash drops them. */
  private unsynced: GroupWrite[][] = [];

  constructor(
    private readonly sim: SimWorld,
    /** The machine's clock: a write completes only while its process lives (and runs). */
    readonly clock: () => SimClock,
  ) {}

  write(batch: GroupWrite[], opts: { sync?: boolean } = {}): Promise<void> {
    this.unsynced.push(batch);
    const sync = opts.sync !== false;
    return this.sim.storeIo(this, sync ? this.sim.t.fsyncMs : [0, 1], () => {
      if (!sync) return;
      // An fsync makes every earlier write durable too (one write-ahead log).
      const upTo = this.unsynced.indexOf(batch);
      for (const b of this.unsynced.splice(0, upTo + 1)) for (const w of b) this.apply(w);
    });
  }

  crash(): number {
    const lost = this.unsynced.length;
    this.unsynced = [];
    return lost;
  }

  private apply(w: GroupWrite): void {
    let g = this.durable.get(w.group);
    if (!g) this.durable.set(w.group, (g = { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] }));
    if (w.snapshot && (!g.snapshot || w.snapshot.index > g.snapshot.index)) {
      const s = w.snapshot;
      const at = g.entries.find((e) => e.index === s.index);
      g.entries = at && at.term === s.term ? g.entries.filter((e) => e.index > s.index) : [];
      g.snapshot = s;
    }
    if (w.entries && w.entries.length > 0) {
      const snapIndex = g.snapshot?.index ?? 0;
      const fresh = w.entries.filter((e) => e.index > snapIndex);
      if (fresh.length > 0) g.entries = [...g.entries.filter((e) => e.index < fresh[0]!.index), ...fresh];
    }
    if (w.hardState) g.hardState = { ...w.hardState };
  }

  async loadGroup(group: number): Promise<StoredGroup> {
    const g = this.durable.get(group);
    return g ? { hardState: { ...g.hardState }, snapshot: g.snapshot, entries: g.entries.slice() } : { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: null, entries: [] };
  }

  async listGroups(): Promise<number[]> {
    return [...this.durable.keys()];
  }

  async loadAll(): Promise<Map<number, StoredGroup>> {
    const out = new Map<number, StoredGroup>();
    for (const g of this.durable.keys()) out.set(g, await this.loadGroup(g));
    return out;
  }

  async deleteGroup(group: number): Promise<void> {
    this.durable.delete(group);
  }
}

export interface AppGroup {
  applied: number;
  kv: Map<string, string>;
  durableApplied: number;
  durableKv: Map<string, string>;
}

export interface KvCommand {
  t: 'w' | 'c';
  k: string;
  v: string;
  e?: string | null;
}

/**
 * One node's application (a separate process: it outlives raftd's crashes, and has its own). Calls
 * take a while, fail now and then, and all fail while it is down. It checks what it is handed: in
 * order, no gaps, and the same entry at an index on every node.
 */
export class SimApp implements ApplyTarget, AppPort {
  readonly groups = new Map<number, AppGroup>();
  down = false;
  incarnation = 0;
  private readonly prepared = new Map<string, { group: number; applied: number; kv: [string, string][] }>();
  private seq = 0;
  readonly retryPolicy = { initialMs: 5, maxMs: 100 };

  constructor(
    private readonly sim: SimWorld,
    readonly node: number,
  ) {}

  private group(g: number): AppGroup {
    let s = this.groups.get(g);
    if (!s) this.groups.set(g, (s = { applied: 0, kv: new Map(), durableApplied: 0, durableKv: new Map() }));
    return s;
  }

  /** Waits the app's latency; fails if the app is down (or goes down meanwhile) or, sometimes, at random. */
  private async call(mayFail: boolean): Promise<void> {
    const inc = this.incarnation;
    if (this.down) throw new AppError('APP_UNAVAILABLE', `app of node ${this.node} is down`);
    await this.sim.appLatency();
    if (this.down || inc !== this.incarnation) throw new AppError('APP_UNAVAILABLE', `app of node ${this.node} went down`);
    if (mayFail && this.sim.appFails()) throw new AppError('APP_ERROR', `app of node ${this.node}: injected 503`, { status: 503 });
  }

  healthy(): boolean {
    return !this.down;
  }

  async lastLogIndex(group: number): Promise<number> {
    await this.call(true);
    return this.group(group).applied;
  }

  async updateEntries(group: number, entries: AppEntry[]): Promise<UpdateEntriesResult> {
    await this.call(true);
    const s = this.group(group);
    const results: EntryResult[] = [];
    for (const e of entries) {
      if (e.index <= s.applied) {
        results.push({ index: e.index, ok: true, skipped: true });
        continue;
      }
      if (e.index !== s.applied + 1) this.sim.violation('apply-order', `node ${this.node} group ${group}: the app was handed entry ${e.index} after ${s.applied}`);
      this.sim.noteApplied(this.node, group, e);
      s.applied = e.index;
      results.push({ index: e.index, ok: true, result: e.data.length > 0 ? applyKv(s.kv, e.data) : null });
    }
    return { results, lastLogIndex: s.applied };
  }

  async sync(group: number): Promise<number> {
    await this.call(false);
    const s = this.group(group);
    s.durableApplied = s.applied;
    s.durableKv = new Map(s.kv);
    return s.durableApplied;
  }

  /** Served from the state at the moment the read arrives; the answer then takes the app's latency back. */
  async read(group: number, query: unknown): Promise<unknown> {
    if (this.down) throw new AppError('APP_UNAVAILABLE', `app of node ${this.node} is down`);
    const key = (query as { key: string }).key;
    const value = this.group(group).kv.get(key) ?? null;
    await this.call(false);
    return { value };
  }

  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    await this.call(false);
    const s = this.group(group);
    const id = `${this.node}:${++this.seq}`;
    this.prepared.set(id, { group, applied: s.applied, kv: [...s.kv] });
    return { prepared: id, lastLogIndex: s.applied };
  }

  async *saveSnapshot(_group: number, prepared: string): AsyncIterable<Uint8Array> {
    const p = this.prepared.get(prepared);
    if (!p) throw new AppError('APP_ERROR', `no prepared snapshot ${prepared}`);
    yield enc.encode(JSON.stringify({ applied: p.applied, kv: p.kv }));
  }

  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number> {
    const parts: Uint8Array[] = [];
    for await (const c of data) parts.push(c);
    await this.call(false);
    const snap = JSON.parse(dec.decode(Buffer.concat(parts))) as { applied: number; kv: [string, string][] };
    const s = this.group(group);
    s.applied = s.durableApplied = snap.applied;
    s.kv = new Map(snap.kv);
    s.durableKv = new Map(snap.kv);
    this.sim.count('app-restore');
    return snap.applied;
  }

  async deleteGroup(group: number): Promise<void> {
    this.groups.delete(group);
  }

  /** A crash of the app's process: what it had not synced is gone (with sync off, it promised more). */
  /**
   * A crash of the app's process: what it had not synced is gone. An app without RAFT_SYNC promises
   * durability on every apply and keeps it, unless `breakPromise` (it loses confirmed entries).
   */
  crash(breakPromise = false): void {
    this.down = true;
    this.incarnation++;
    if (!this.sim.t.appSync && !breakPromise) return;
    for (const s of this.groups.values()) {
      s.applied = s.durableApplied;
      s.kv = new Map(s.durableKv);
    }
  }
}

export function applyKv(kv: Map<string, string>, data: Uint8Array): unknown {
  const c = JSON.parse(dec.decode(data)) as KvCommand;
  if (c.t === 'w') {
    kv.set(c.k, c.v);
    return { ok: true };
  }
  const cur = kv.get(c.k) ?? null;
  if (cur !== (c.e ?? null)) return { ok: false };
  kv.set(c.k, c.v);
  return { ok: true };
}


