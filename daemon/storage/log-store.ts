// The node's Raft log store: one RocksDB database holding every group's entries, hard state and
// snapshot metadata (see codec.ts for the key layout). One write() = one RocksDB write batch = one
// fsync, whatever the number of groups in it: that is the group commit the host relies on.
//
// Per group the store keeps, in memory, the span of stored entries (compacted, last] so that a
// write can truncate a conflicting suffix or compact a prefix with plain deletes inside the same
// atomic batch, without scanning. Writes (and loads, which fill that cache) run one at a time.
// A registry record per group (written in the same batch as the group's first record) lets open()
// know every existing group from one short scan: a write to a group not in it needs no reads.

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry, HardState, SnapshotMetadata } from '../raft/types.js';
import {
  FORMAT_VERSION,
  IDENTITY_KEY,
  KIND_COMPACTED,
  KIND_ENTRY,
  KIND_GROUP,
  KIND_HARDSTATE,
  KIND_SNAPSHOT,
  checkU32,
  decodeEntryIndex,
  decodeGroupOf,
  decodeHardState,
  decodeIdentity,
  decodeRun,
  decodeSnapshot,
  decodeU64,
  encodeHardState,
  encodeIdentity,
  encodeRun,
  encodeSnapshot,
  encodeU64,
  entryKey,
  groupKey,
  groupRangeEnd,
  kindStart,
  metaKey,
  splitRuns,
} from './codec.js';
import { StorageError, fromRocksError } from './errors.js';
import { Rocks, type Batch } from './rocks.js';
import { checkWal, type WalDamage } from './wal-check.js';

/** What one group asks to persist. Within one write, parts apply in this order: snapshot, entries, compactTo, hardState. */
export interface GroupWrite {
  group: number;
  /**
   * Appended entries (contiguous, increasing). Appending at index i deletes the group's stored
   * entries >= i that these do not overwrite (conflict truncation). i must not leave a gap.
   * Entries at or below the snapshot index are skipped.
   */
  entries?: Entry[];
  hardState?: HardState;
  /**
   * A snapshot becomes the base of the log: every entry <= its index is deleted. Entries after it
   * are kept only if the stored entry at the snapshot's index has the snapshot's term (then the
   * stored suffix continues the same log, as after a local snapshot); otherwise the whole log is
   * replaced (a snapshot installed from a leader). A snapshot not newer than the stored one is ignored.
   */
  snapshot?: SnapshotMetadata;
  /**
   * Delete entries <= compactTo. Must not exceed the group's snapshot index (after this write):
   * the log may only lose what a snapshot covers. A snapshot write already compacts up to its
   * index, so this only matters for callers that record the snapshot and compact separately.
   */
  compactTo?: number;
}

export interface LoadedGroup {
  hardState: HardState;
  snapshot: SnapshotMetadata | null;
  /** Every stored entry after the snapshot, contiguous. */
  entries: Entry[];
}

export interface LogStoreOptions {
  dir: string;
  nodeId: number;
  clusterId: string;
  /** fsync every write (default true). Only tests and benchmarks turn it off. */
  sync?: boolean;
}

export interface LogStoreStats {
  /** RocksDB write batches issued by write() (one fsync each when sync is on). */
  batches: number;
  /** GroupWrite records persisted. */
  groupWrites: number;
  entries: number;
  /** Compacted runs deleted by the background cleaner. */
  garbageRunsDeleted: number;
  cleanerErrors: number;
}

/** The cleaner waits this long after a write, and deletes at most this many runs per slice. */
const CLEAN_DELAY_MS = 20;
const CLEAN_SLICE = 1000;
/** After this many postponements because the store was busy, a slice runs anyway. */
const CLEAN_MAX_POSTPONE = 10;

/** Stored entries of a group are exactly (compacted, last]; snapIndex is 0 without a snapshot. */
interface Span {
  compacted: number;
  last: number;
  snapIndex: number;
}

const EMPTY_HARDSTATE: HardState = { term: 0, vote: 0, commit: 0 };

/** Meta key of the data directory's incarnation (LogStore.incarnation). */
export const INCARNATION_META = 'incarnation';

export class LogStore {
  private readonly spans = new Map<number, Span>();
  /** Groups with a registry record on disk (exactly: updated only after a batch is durable). */
  private readonly registered: Set<number>;
  /** Tail of the queue that runs writes and loads one at a time; never rejects. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly sync: boolean;
  readonly stats: LogStoreStats = { batches: 0, groupWrites: 0, entries: 0, garbageRunsDeleted: 0, cleanerErrors: 0 };
  /** Operations queued or running. */
  private queued = 0;
  /** Groups with runs at or below their compaction marker still on disk: group -> marker. */
  private readonly garbage = new Map<number, number>();
  private cleanTimer: NodeJS.Timeout | undefined;
  private cleanPostponed = 0;

  private constructor(
    private readonly db: Rocks,
    readonly dir: string,
    sync: boolean,
    registered: Set<number>,
    /**
     * Random id of this data directory, made when it was first opened and kept for its life (meta
     * INCARNATION_META). Peers record it: the same node id with another incarnation is a wiped or
     * replaced disk that may have forgotten votes and log entries (see daemon/storage/incarnation.ts).
     */
    readonly incarnation: string,
  ) {
    this.sync = sync;
    this.registered = registered;
  }

  /**
   * Opens (or, for a missing or empty directory, creates) the node's store. Never resets an
   * existing directory: a foreign identity gives IDENTITY_MISMATCH, damage gives CORRUPT.
   */
  static async open(opts: LogStoreOptions): Promise<LogStore> {
    checkU32(opts.nodeId, 'node id');
    if (opts.nodeId < 1) throw new StorageError('INVALID', `node id must be >= 1, got ${opts.nodeId}`);
    if (opts.clusterId.length === 0) throw new StorageError('INVALID', 'cluster id must not be empty');
    const dir = opts.dir;
    const fresh = await isFreshDir(dir);
    if (!fresh) {
      // RocksDB would happily create a new database next to the debris of a damaged one.
      const hasCurrent = await stat(join(dir, 'CURRENT')).then(
        (s) => s.isFile(),
        () => false,
      );
      if (!hasCurrent) {
        throw new StorageError('CORRUPT', `data directory ${dir} is not empty but holds no RocksDB database (CURRENT file missing); refusing to touch it`);
      }
    } else {
      await mkdir(dir, { recursive: true }).catch((e: unknown) => {
        throw fromRocksError(e, `cannot create data directory ${dir}`);
      });
    }
    if (!fresh) await LogStore.checkWalBeforeOpen(dir);
    let db: Rocks;
    try {
      db = await Rocks.open(dir, { createIfMissing: fresh, errorIfExists: fresh });
    } catch (e) {
      throw fromRocksError(e, `cannot open the log store in ${dir}`);
    }
    let registered: Set<number>;
    let incarnation: string;
    try {
      await LogStore.checkIdentity(db, dir, opts, opts.sync ?? true);
      incarnation = await LogStore.ensureIncarnation(db, opts.sync ?? true);
      registered = new Set();
      await db.scan({ gte: kindStart(KIND_GROUP), lt: kindStart(KIND_GROUP + 1), values: false }, (k) => {
        registered.add(decodeGroupOf(k));
      });
    } catch (e) {
      await db.close().catch(() => undefined);
      throw fromRocksError(e, `cannot open the log store in ${dir}`);
    }
    return new LogStore(db, dir, opts.sync ?? true, registered, incarnation);
  }

  /**
   * RocksDB (through this binding: paranoid_checks off, wal_recovery_mode point-in-time, neither
   * settable) would drop every write after a damaged WAL record without a word: check first.
   */
  private static async checkWalBeforeOpen(dir: string): Promise<void> {
    let damage: WalDamage | undefined;
    try {
      damage = await checkWal(dir);
    } catch (e) {
      throw fromRocksError(e, `cannot read the write-ahead log in ${dir}`);
    }
    if (damage) {
      throw new StorageError(
        'CORRUPT',
        `log store ${dir} is corrupt: write-ahead log ${damage.file} damaged at byte ${damage.offset} (${damage.reason}) with synced writes after it; ` +
          'refusing to start rather than silently drop acknowledged entries (recovery: docs/operations.md "A corrupt log")',
      );
    }
  }

  /**
   * Written once, right after the identity of a new directory. A directory without one (made by
   * a raftd before incarnations, or a crash between the two writes) gets one now: no peer can
   * have recorded another for it, since it never sent one.
   */
  private static async ensureIncarnation(db: Rocks, sync: boolean): Promise<string> {
    const k = metaKey(INCARNATION_META);
    const v = await db.get(k);
    if (v !== undefined && v.length > 0) return v.toString('utf8');
    const inc = randomBytes(8).toString('hex');
    await db.put(k, Buffer.from(inc, 'utf8'), sync);
    return inc;
  }

  private static async checkIdentity(db: Rocks, dir: string, opts: LogStoreOptions, sync: boolean): Promise<void> {
    let raw: Buffer | undefined;
    try {
      raw = await db.get(IDENTITY_KEY);
    } catch (e) {
      throw fromRocksError(e, `cannot read the node identity in ${dir}`);
    }
    if (raw === undefined) {
      // Only a database with nothing in it may be (re)initialized: that covers a crash between
      // creating the database and writing the identity, and nothing else.
      const any = await db.first({}).catch((e: unknown) => {
        throw fromRocksError(e, `cannot read ${dir}`);
      });
      if (any) throw new StorageError('CORRUPT', `data directory ${dir} holds Raft data but no node identity record; refusing to use it`);
      await db.put(IDENTITY_KEY, encodeIdentity({ format: FORMAT_VERSION, nodeId: opts.nodeId, clusterId: opts.clusterId }), sync).catch((e: unknown) => {
        throw fromRocksError(e, `cannot write the node identity in ${dir}`);
      });
      return;
    }
    const id = decodeIdentity(raw);
    if (id.format !== FORMAT_VERSION) {
      throw new StorageError('CORRUPT', `data directory ${dir} has storage format ${id.format}; this raftd reads format ${FORMAT_VERSION}`);
    }
    if (id.nodeId !== opts.nodeId || id.clusterId !== opts.clusterId) {
      throw new StorageError(
        'IDENTITY_MISMATCH',
        `data directory ${dir} belongs to node ${id.nodeId} of cluster "${id.clusterId}", not node ${opts.nodeId} of cluster "${opts.clusterId}"; use that node's id and cluster or another directory`,
      );
    }
  }

  /**
   * Persists every group's write in ONE RocksDB batch with one fsync. Atomic: all or nothing.
   * `sync: false` skips the fsync for writes that Raft does not need durable before it acts
   * (only a commit index moved); the store's own `sync: false` wins over a `true` here.
   */
  write(batch: GroupWrite[], opts: { sync?: boolean } = {}): Promise<void> {
    return this.exclusive(() => this.doWrite(batch, this.sync && opts.sync !== false));
  }

  loadGroup(group: number): Promise<LoadedGroup> {
    return this.exclusive(() => this.doLoadGroup(group));
  }

  /**
   * Every group at once, with one scan per record kind: far cheaper than loadGroup per group at
   * start-up with thousands of groups. Same content as loadGroup for each listed group.
   */
  loadAll(): Promise<Map<number, LoadedGroup>> {
    return this.exclusive(() => this.doLoadAll());
  }

  /** Every group with any stored state, ascending. */
  listGroups(): Promise<number[]> {
    return this.exclusive(async () => [...this.registered].sort((a, b) => a - b));
  }

  /** Removes every record of the group in one synced batch. */
  deleteGroup(group: number): Promise<void> {
    return this.exclusive(() => this.doDeleteGroup(group));
  }

  getMeta(key: string): Promise<Uint8Array | undefined> {
    const k = metaKey(key);
    return this.exclusive(async () => {
      const v = await this.db.get(k).catch((e: unknown) => {
        throw fromRocksError(e, `reading meta "${key}"`);
      });
      return v === undefined ? undefined : new Uint8Array(v.buffer, v.byteOffset, v.length);
    });
  }

  putMeta(key: string, value: Uint8Array): Promise<void> {
    const k = metaKey(key);
    const v = Buffer.from(value);
    return this.exclusive(() =>
      this.db.put(k, v, this.sync).catch((e: unknown) => {
        throw fromRocksError(e, `writing meta "${key}"`);
      }),
    );
  }

  /**
   * Deletes every compacted run still on disk now (normally the background cleaner does it in
   * slices while the store is idle). For tests and tools.
   */
  async collectGarbage(): Promise<void> {
    while (this.garbage.size > 0) await this.exclusive(() => this.cleanSlice());
  }

  /** Waits for queued operations, then closes the database. Later calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.cleanTimer) clearTimeout(this.cleanTimer);
    this.cleanTimer = undefined;
    await this.tail;
    await this.db.close().catch((e: unknown) => {
      throw fromRocksError(e, 'closing the log store');
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StorageError('CLOSED', `log store ${this.dir} is closed`));
    this.queued++;
    const run = this.tail.then(fn).finally(() => this.queued--);
    this.tail = run.catch(() => undefined);
    return run;
  }

  // ---- background deletion of compacted runs ----

  private scheduleCleanup(): void {
    if (this.closed || this.cleanTimer || this.garbage.size === 0) return;
    this.cleanTimer = setTimeout(() => {
      this.cleanTimer = undefined;
      if (this.closed) return;
      // Stay out of the way of writes: run when nothing is queued, or after waiting long enough.
      if (this.queued > 0 && this.cleanPostponed < CLEAN_MAX_POSTPONE) {
        this.cleanPostponed++;
        this.scheduleCleanup();
        return;
      }
      this.cleanPostponed = 0;
      this.exclusive(() => this.cleanSlice()).then(
        () => this.scheduleCleanup(),
        () => {
          // Left in `garbage`: the next write that schedules the cleaner retries it.
          this.stats.cleanerErrors++;
        },
      );
    }, CLEAN_DELAY_MS);
    this.cleanTimer.unref();
  }

  /** Deletes up to CLEAN_SLICE compacted runs of one group, without fsync (losing it only leaves garbage). */
  private async cleanSlice(): Promise<void> {
    const next = this.garbage.entries().next();
    if (next.done) return;
    const [group, marker] = next.value;
    const b = this.db.batch();
    try {
      await this.db.scan({ gte: entryKey(group, 0), lte: entryKey(group, marker), values: false, limit: CLEAN_SLICE }, (k) => {
        b.del(k);
      });
      if (b.length > 0) await b.write(false);
    } catch (e) {
      throw fromRocksError(e, `group ${group}: deleting compacted log runs`);
    }
    this.stats.garbageRunsDeleted += b.length;
    if (b.length < CLEAN_SLICE && this.garbage.get(group) === marker) this.garbage.delete(group);
  }

  // ---- write ----

  private async doWrite(writes: GroupWrite[], sync: boolean): Promise<void> {
    if (writes.length === 0) return;
    await this.loadSpans(writes.map((w) => w.group));
    // Staging works on copies so that a rejected or failed write leaves the cache as the disk is.
    const stages = new Map<number, GroupStage>();
    const b = this.db.batch();
    let entries = 0;
    for (const w of writes) {
      let st = stages.get(w.group);
      if (!st) stages.set(w.group, (st = new GroupStage(w.group, { ...this.spans.get(w.group)! })));
      if (w.snapshot) await this.stageSnapshot(b, st, w.snapshot);
      if (w.entries && w.entries.length > 0) {
        await this.stageEntries(st, w.entries);
        entries += w.entries.length;
      }
      if (w.compactTo !== undefined) await this.stageCompact(b, st, w.compactTo);
      if (w.hardState) {
        b.put(groupKey(KIND_HARDSTATE, w.group), encodeHardState(w.hardState));
        st.touched = true;
      }
    }
    const newGroups: number[] = [];
    for (const st of stages.values()) {
      st.flush(b);
      if (st.touched && !this.registered.has(st.group)) {
        newGroups.push(st.group);
        b.put(groupKey(KIND_GROUP, st.group), Buffer.alloc(0));
      }
    }
    if (b.length === 0) return;
    try {
      await b.write(sync);
    } catch (e) {
      // The batch did not apply (RocksDB batches are atomic), but after an fsync error the disk
      // may disagree with what we believe: forget these groups so the next write re-reads them.
      for (const g of stages.keys()) this.spans.delete(g);
      throw fromRocksError(e, `writing a batch of ${writes.length} group writes`);
    }
    for (const [g, st] of stages) {
      const before = this.spans.get(g);
      if (before && st.span.compacted > before.compacted) this.garbage.set(g, st.span.compacted);
      this.spans.set(g, st.span);
    }
    for (const g of newGroups) this.registered.add(g);
    this.scheduleCleanup();
    this.stats.batches++;
    this.stats.groupWrites += writes.length;
    this.stats.entries += entries;
  }

  private async stageEntries(st: GroupStage, all: Entry[]): Promise<void> {
    const { group, span } = st;
    for (let i = 1; i < all.length; i++) {
      if (all[i]!.index !== all[i - 1]!.index + 1) {
        throw new StorageError('INVALID', `group ${group}: entries not contiguous (${all[i - 1]!.index} then ${all[i]!.index})`);
      }
    }
    // Entries a snapshot already covers are committed, hence identical to what it covers: skip
    // them, as MemoryStorage.append does, rather than fail the whole batch.
    const entries = all[0]!.index <= span.compacted ? all.slice(span.compacted + 1 - all[0]!.index) : all;
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first > span.last + 1) {
      throw new StorageError('INVALID', `group ${group}: entry ${first} would leave a gap after the last stored entry ${span.last}`);
    }
    if (first <= span.last) {
      // Conflict truncation: whatever followed index first-1 is not part of the new log.
      await this.ensureRuns(st);
      await this.cutFrom(st, first);
    }
    for (const run of splitRuns(entries)) st.addRun(run);
    span.last = entries[entries.length - 1]!.index;
    st.touched = true;
  }

  private async stageSnapshot(b: Batch, st: GroupStage, snap: SnapshotMetadata): Promise<void> {
    const { span } = st;
    if (snap.index <= span.snapIndex) return;
    let keepTail = false;
    if (snap.index > span.compacted && snap.index <= span.last) {
      const { start, run } = await this.locate(st, snap.index);
      keepTail = run[snap.index - start]!.term === snap.term;
    }
    if (keepTail) {
      await this.cutBelow(st, snap.index);
    } else {
      if (span.last > span.compacted) {
        // Another history: every stored entry goes now (the ones after the snapshot would load).
        await this.ensureRuns(st);
        st.starts!.length = 0;
      }
      span.last = snap.index;
    }
    span.compacted = snap.index;
    span.snapIndex = snap.index;
    b.put(groupKey(KIND_SNAPSHOT, st.group), encodeSnapshot(snap));
    b.put(groupKey(KIND_COMPACTED, st.group), encodeU64(span.compacted));
    st.touched = true;
  }

  private async stageCompact(b: Batch, st: GroupStage, compactTo: number): Promise<void> {
    const { group, span } = st;
    if (!Number.isSafeInteger(compactTo) || compactTo < 0) throw new StorageError('INVALID', `group ${group}: bad compactTo ${compactTo}`);
    if (compactTo > span.snapIndex) {
      throw new StorageError('INVALID', `group ${group}: compactTo ${compactTo} is beyond the snapshot index ${span.snapIndex}; only entries a snapshot covers may be deleted`);
    }
    if (compactTo <= span.compacted) return;
    if (span.last > span.compacted) await this.cutBelow(st, Math.min(compactTo, span.last));
    span.compacted = compactTo;
    if (span.last < compactTo) span.last = compactTo;
    b.put(groupKey(KIND_COMPACTED, group), encodeU64(compactTo));
    st.touched = true;
  }

  /**
   * Switches a stage to the slow path: the full list of the group's live runs (those above the
   * compaction marker, on disk or added by this batch). Runs at or below the marker are garbage
   * that the cleaner deletes; they never straddle the marker (cutBelow sees to that).
   */
  private async ensureRuns(st: GroupStage): Promise<void> {
    if (st.starts) return;
    const disk: number[] = [];
    try {
      await this.db.scan({ gt: entryKey(st.group, st.span.compacted), lt: groupRangeEnd(KIND_ENTRY, st.group), values: false }, (k) => {
        disk.push(decodeEntryIndex(k));
      });
    } catch (e) {
      throw fromRocksError(e, `group ${st.group}: listing log runs`);
    }
    st.diskStarts = new Set(disk);
    st.starts = [...new Set([...disk, ...st.added])].sort((x, y) => x - y);
  }

  /** Entries of the run starting at `start` (this batch's version if it changed it). */
  private async runAt(st: GroupStage, start: number): Promise<Entry[]> {
    const known = st.content.get(start);
    if (known) return known;
    let v: Buffer | undefined;
    try {
      v = await this.db.get(entryKey(st.group, start));
    } catch (e) {
      throw fromRocksError(e, `group ${st.group}: reading log run ${start}`);
    }
    if (v === undefined) throw new StorageError('CORRUPT', `group ${st.group}: log run ${start} vanished`);
    const run = decodeRun(start, v);
    st.content.set(start, run);
    return run;
  }

  /** Position in st.starts of the run holding index i (runs are contiguous, so the last start <= i). */
  private runIndexOf(st: GroupStage, i: number): number {
    const starts = st.starts!;
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= i) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) throw new StorageError('CORRUPT', `group ${st.group}: no log run holds entry ${i} inside the stored span (${st.span.compacted}, ${st.span.last}]`);
    return found;
  }

  /** The live run holding entry i (compacted < i <= last), found without listing the group's runs. */
  private async locate(st: GroupStage, i: number): Promise<{ start: number; run: Entry[] }> {
    let start: number | undefined;
    if (st.starts) {
      start = st.starts[this.runIndexOf(st, i)]!;
    } else {
      // Fast path: the holder is the run with the greatest start <= i among this batch's runs and
      // the live runs on disk. Added runs follow the disk runs unless a cut put one in front.
      for (const s of st.added) if (s <= i) start = s;
      if (start === undefined || st.addedInFront) {
        let kv: [Buffer, Buffer] | undefined;
        try {
          kv = await this.db.first({ gt: entryKey(st.group, st.span.compacted), lte: entryKey(st.group, i), reverse: true });
        } catch (e) {
          throw fromRocksError(e, `group ${st.group}: finding the log run of entry ${i}`);
        }
        const diskStart = kv && !st.fastDels.has(decodeEntryIndex(kv[0])) ? decodeEntryIndex(kv[0]) : undefined;
        if (diskStart !== undefined && (start === undefined || diskStart > start)) {
          start = diskStart;
          if (!st.content.has(start)) st.content.set(start, decodeRun(start, kv![1]));
        }
      }
      if (start === undefined) throw new StorageError('CORRUPT', `group ${st.group}: no log run holds entry ${i} inside the stored span (${st.span.compacted}, ${st.span.last}]`);
    }
    const run = await this.runAt(st, start);
    if (run[i - start]?.index !== i) throw new StorageError('CORRUPT', `group ${st.group}: log run ${start} does not hold entry ${i}`);
    return { start, run };
  }

  /** Removes entries >= i: later runs go, the run holding i is cut short. */
  private async cutFrom(st: GroupStage, i: number): Promise<void> {
    const k = this.runIndexOf(st, i);
    const start = st.starts![k]!;
    st.starts!.length = k;
    if (start < i) {
      const kept = (await this.runAt(st, start)).filter((e) => e.index < i);
      st.starts!.push(start);
      st.setRun(start, kept);
    }
  }

  /**
   * Makes i the new bottom of the log (compacted < i <= last). Only the run holding i is touched:
   * its key goes and what follows i moves to key i+1. Everything below becomes garbage for the
   * cleaner, so a snapshot costs the write path O(1) instead of one delete per compacted run.
   */
  private async cutBelow(st: GroupStage, i: number): Promise<void> {
    const { start, run } = await this.locate(st, i);
    const rest = run.filter((e) => e.index > i);
    if (st.starts) {
      const k = st.starts.indexOf(start);
      // Live runs wholly below the cut one whose disk record this batch did not change end below
      // i on disk too: leave them to the cleaner. Any other disk run (the cut one, one rewritten
      // or dropped by a truncation earlier in this batch) may reach past i and must go now.
      for (const s of st.starts.slice(0, k)) if (!st.dirty.has(s)) st.diskStarts!.delete(s);
      st.starts.splice(0, k + 1);
      if (rest.length > 0) st.starts.unshift(i + 1);
    } else {
      // This batch's runs before the cut one were never written: just drop them. The cut run
      // goes too; if it is on disk its key is deleted now (its record reaches past i).
      const wasAdded = st.added.includes(start);
      const keep = st.added.filter((s) => s > start);
      st.added.length = 0;
      st.added.push(...keep);
      if (!wasAdded) st.fastDels.add(start);
      if (rest.length > 0) {
        st.added.unshift(i + 1);
        // It now precedes the live disk runs after it.
        st.addedInFront = true;
      }
    }
    if (rest.length > 0) st.setRun(i + 1, rest);
  }

  // ---- load ----

  /** Fills the span cache for groups not yet in it (two point reads and a reverse seek each). */
  private async loadSpans(groups: number[]): Promise<void> {
    const missing: number[] = [];
    for (const g of new Set(groups)) {
      if (this.spans.has(g)) continue;
      checkU32(g, 'group');
      // Not registered: the group has no record at all, so its span is empty.
      if (!this.registered.has(g)) this.spans.set(g, { compacted: 0, last: 0, snapIndex: 0 });
      else missing.push(g);
    }
    await Promise.all(
      missing.map(async (g) => {
        try {
          const [snapV, compV] = await this.db.getMany([groupKey(KIND_SNAPSHOT, g), groupKey(KIND_COMPACTED, g)]);
          const snapIndex = snapV ? decodeSnapshot(snapV).index : 0;
          const compacted = Math.max(compV ? decodeU64(compV, `group ${g} compaction marker`) : 0, snapIndex);
          const lastKv = await this.db.first({ gte: entryKey(g, 0), lt: groupRangeEnd(KIND_ENTRY, g), reverse: true });
          let last = compacted;
          if (lastKv) {
            const run = decodeRun(decodeEntryIndex(lastKv[0]), lastKv[1]);
            last = Math.max(run[run.length - 1]!.index, compacted);
          }
          this.spans.set(g, { compacted, last, snapIndex });
        } catch (e) {
          throw fromRocksError(e, `group ${g}: reading the log span`);
        }
      }),
    );
  }

  private async doLoadGroup(group: number): Promise<LoadedGroup> {
    checkU32(group, 'group');
    try {
      const [hsV, snapV, compV] = await this.db.getMany([groupKey(KIND_HARDSTATE, group), groupKey(KIND_SNAPSHOT, group), groupKey(KIND_COMPACTED, group)]);
      const lg: LoadedGroup = {
        hardState: hsV ? decodeHardState(hsV) : { ...EMPTY_HARDSTATE },
        snapshot: snapV ? decodeSnapshot(snapV) : null,
        entries: [],
      };
      await this.db.scan({ gte: entryKey(group, 0), lt: groupRangeEnd(KIND_ENTRY, group) }, (k, v) => {
        if (!appendRun(lg, group, decodeRun(decodeEntryIndex(k), v))) this.noteGarbage(group, lg);
      });
      this.scheduleCleanup();
      this.cacheSpan(group, lg, compV ? decodeU64(compV, `group ${group} compaction marker`) : 0);
      return lg;
    } catch (e) {
      throw fromRocksError(e, `group ${group}: loading`);
    }
  }

  /** A run wholly covered by the snapshot was found (left by a crash before the cleaner ran). */
  private noteGarbage(group: number, lg: LoadedGroup): void {
    if (lg.snapshot) this.garbage.set(group, Math.max(this.garbage.get(group) ?? 0, lg.snapshot.index));
  }

  private cacheSpan(group: number, lg: LoadedGroup, marker: number): void {
    const base = lg.snapshot ? lg.snapshot.index : 0;
    const compacted = Math.max(marker, base);
    const last = lg.entries.length > 0 ? lg.entries[lg.entries.length - 1]!.index : compacted;
    this.spans.set(group, { compacted, last, snapIndex: base });
  }

  private async doLoadAll(): Promise<Map<number, LoadedGroup>> {
    const out = new Map<number, LoadedGroup>();
    const compactedOf = new Map<number, number>();
    for (const g of [...this.registered].sort((a, b) => a - b)) out.set(g, { hardState: { ...EMPTY_HARDSTATE }, snapshot: null, entries: [] });
    const groupOf = (k: Buffer, what: string): LoadedGroup => {
      const g = decodeGroupOf(k);
      const lg = out.get(g);
      if (!lg) throw new StorageError('CORRUPT', `${what} of group ${g}, which is not in the group registry`);
      return lg;
    };
    try {
      await this.db.scan({ gte: kindStart(KIND_HARDSTATE), lt: kindStart(KIND_HARDSTATE + 1) }, (k, v) => {
        groupOf(k, 'hard state').hardState = decodeHardState(v);
      });
      await this.db.scan({ gte: kindStart(KIND_SNAPSHOT), lt: kindStart(KIND_SNAPSHOT + 1) }, (k, v) => {
        groupOf(k, 'snapshot').snapshot = decodeSnapshot(v);
      });
      await this.db.scan({ gte: kindStart(KIND_COMPACTED), lt: kindStart(KIND_COMPACTED + 1) }, (k, v) => {
        compactedOf.set(decodeGroupOf(k), decodeU64(v, 'compaction marker'));
      });
      await this.db.scan({ gte: kindStart(KIND_ENTRY), lt: kindStart(KIND_ENTRY + 1) }, (k, v) => {
        const g = decodeGroupOf(k);
        const lg = groupOf(k, 'log run');
        if (!appendRun(lg, g, decodeRun(decodeEntryIndex(k), v))) this.noteGarbage(g, lg);
      });
      this.scheduleCleanup();
    } catch (e) {
      throw fromRocksError(e, 'loading all groups');
    }
    for (const [g, lg] of out) this.cacheSpan(g, lg, compactedOf.get(g) ?? 0);
    return out;
  }

  private async doDeleteGroup(group: number): Promise<void> {
    checkU32(group, 'group');
    const b = this.db.batch();
    b.del(groupKey(KIND_HARDSTATE, group));
    b.del(groupKey(KIND_SNAPSHOT, group));
    b.del(groupKey(KIND_COMPACTED, group));
    b.del(groupKey(KIND_GROUP, group));
    try {
      await this.db.scan({ gte: entryKey(group, 0), lt: groupRangeEnd(KIND_ENTRY, group), values: false }, (k) => {
        b.del(k);
      });
      this.spans.delete(group);
      this.garbage.delete(group);
      await b.write(this.sync);
      this.registered.delete(group);
    } catch (e) {
      throw fromRocksError(e, `group ${group}: deleting`);
    }
  }
}

/**
 * Adds a run's entries after the snapshot to a loaded group, checking that the log has no gap.
 * Returns false for a run wholly at or below the snapshot (garbage awaiting the cleaner).
 */
function appendRun(lg: LoadedGroup, group: number, run: Entry[]): boolean {
  const base = lg.snapshot ? lg.snapshot.index : 0;
  if (run[run.length - 1]!.index <= base) return false;
  for (const e of run) {
    if (e.index <= base) continue;
    const expect = lg.entries.length === 0 ? base + 1 : lg.entries[lg.entries.length - 1]!.index + 1;
    if (e.index !== expect) throw new StorageError('CORRUPT', `group ${group}: log has a gap, expected entry ${expect}, found ${e.index}`);
    lg.entries.push(e);
  }
  return true;
}

/**
 * One group's part of a batch being staged. Fast path (appends at last+1): runs are only added.
 * Slow path (truncation, snapshot, compaction): `starts` lists every run of the group as this
 * batch leaves it, and flush() turns the difference with the disk into puts and deletes.
 */
class GroupStage {
  /** Something was staged for the group (it then needs its registry record). */
  touched = false;
  /** Runs this batch must put: start -> entries. Also caches runs read from disk (not in `dirty`). */
  readonly content = new Map<number, Entry[]>();
  readonly dirty = new Set<number>();
  /** Fast path: starts of the runs added by this batch, in order. */
  readonly added: number[] = [];
  /** Fast path: disk runs to delete (a run cut by a snapshot). */
  readonly fastDels = new Set<number>();
  /** Fast path: a cut put a run of this batch before live disk runs. */
  addedInFront = false;
  /** Slow path only: all run starts, ascending, and those on disk before the batch. */
  starts: number[] | null = null;
  diskStarts: Set<number> | null = null;

  constructor(
    readonly group: number,
    readonly span: Span,
  ) {}

  addRun(run: Entry[]): void {
    const start = run[0]!.index;
    this.setRun(start, run);
    if (this.starts) this.starts.push(start);
    else this.added.push(start);
  }

  setRun(start: number, run: Entry[]): void {
    this.content.set(start, run);
    this.dirty.add(start);
  }

  flush(b: Batch): void {
    for (const start of this.fastDels) b.del(entryKey(this.group, start));
    if (!this.starts) {
      for (const start of this.added) b.put(entryKey(this.group, start), encodeRun(this.content.get(start)!));
      return;
    }
    const live = new Set(this.starts);
    for (const start of this.diskStarts!) if (!live.has(start)) b.del(entryKey(this.group, start));
    for (const start of this.starts) if (this.dirty.has(start)) b.put(entryKey(this.group, start), encodeRun(this.content.get(start)!));
  }
}

/** A directory that does not exist yet, or exists and is empty, is a new store. */
async function isFreshDir(dir: string): Promise<boolean> {
  try {
    const names = await readdir(dir);
    return names.length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw fromRocksError(e, `cannot read data directory ${dir}`);
  }
}
