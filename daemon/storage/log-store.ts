// The node's Raft log store: one RocksDB database holding every group's entries, hard state and
// snapshot metadata (see codec.ts for the key layout). One write() = one RocksDB write batch = one
// fsync, whatever the number of groups in it: that is the group commit the host relies on.
//
// Per group the store keeps, in memory, the span of stored entries (compacted, last] so that a
// write can truncate a conflicting suffix or compact a prefix with plain deletes inside the same
// atomic batch, without scanning. Writes (and loads, which fill that cache) run one at a time.
// A registry record per group (written in the same batch as the group's first record) lets open()
// know every existing group from one short scan: a write to a group not in it needs no reads.

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
  decodeEntry,
  decodeEntryIndex,
  decodeGroupOf,
  decodeHardState,
  decodeIdentity,
  decodeSnapshot,
  decodeU64,
  encodeEntry,
  encodeHardState,
  encodeIdentity,
  encodeSnapshot,
  encodeU64,
  entryKey,
  entryTerm,
  groupKey,
  groupRangeEnd,
  kindStart,
  metaKey,
} from './codec.js';
import { StorageError, fromRocksError } from './errors.js';
import { Rocks, type Batch } from './rocks.js';

/** What one group asks to persist. Within one write, parts apply in this order: snapshot, entries, compactTo, hardState. */
export interface GroupWrite {
  group: number;
  /**
   * Appended entries (contiguous, increasing). Appending at index i deletes the group's stored
   * entries >= i that these do not overwrite (conflict truncation). i must not leave a gap.
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
}

/** Stored entries of a group are exactly (compacted, last]; snapIndex is 0 without a snapshot. */
interface Span {
  compacted: number;
  last: number;
  snapIndex: number;
}

const EMPTY_HARDSTATE: HardState = { term: 0, vote: 0, commit: 0 };

export class LogStore {
  private readonly spans = new Map<number, Span>();
  /** Groups with a registry record on disk (exactly: updated only after a batch is durable). */
  private readonly registered: Set<number>;
  /** Tail of the queue that runs writes and loads one at a time; never rejects. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly sync: boolean;
  readonly stats: LogStoreStats = { batches: 0, groupWrites: 0, entries: 0 };

  private constructor(
    private readonly db: Rocks,
    readonly dir: string,
    sync: boolean,
    registered: Set<number>,
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
    let db: Rocks;
    try {
      db = await Rocks.open(dir, { createIfMissing: fresh, errorIfExists: fresh });
    } catch (e) {
      throw fromRocksError(e, `cannot open the log store in ${dir}`);
    }
    let registered: Set<number>;
    try {
      await LogStore.checkIdentity(db, dir, opts, opts.sync ?? true);
      registered = new Set();
      await db.scan({ gte: kindStart(KIND_GROUP), lt: kindStart(KIND_GROUP + 1), values: false }, (k) => {
        registered.add(decodeGroupOf(k));
      });
    } catch (e) {
      await db.close().catch(() => undefined);
      throw fromRocksError(e, `cannot open the log store in ${dir}`);
    }
    return new LogStore(db, dir, opts.sync ?? true, registered);
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

  /** Persists every group's write in ONE RocksDB batch with one fsync. Atomic: all or nothing. */
  write(batch: GroupWrite[]): Promise<void> {
    return this.exclusive(() => this.doWrite(batch));
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

  /** Waits for queued operations, then closes the database. Later calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  // ---- write ----

  private async doWrite(writes: GroupWrite[]): Promise<void> {
    if (writes.length === 0) return;
    await this.loadSpans(writes.map((w) => w.group));
    // Work on copies so that a rejected or failed write leaves the cache as the disk is.
    const spans = new Map<number, Span>();
    // Entries put earlier in this same batch, for the snapshot term check.
    const pending = new Map<number, Map<number, number>>();
    const b = this.db.batch();
    let entries = 0;
    const newGroups = new Set<number>();
    for (const w of writes) {
      const opsBefore = b.length;
      let span = spans.get(w.group);
      if (!span) spans.set(w.group, (span = { ...this.spans.get(w.group)! }));
      let terms = pending.get(w.group);
      if (!terms) pending.set(w.group, (terms = new Map()));
      if (w.snapshot) await this.stageSnapshot(b, w.group, span, w.snapshot, terms);
      if (w.entries && w.entries.length > 0) {
        stageEntries(b, w.group, span, w.entries, terms);
        entries += w.entries.length;
      }
      if (w.compactTo !== undefined) stageCompact(b, w.group, span, w.compactTo);
      if (w.hardState) b.put(groupKey(KIND_HARDSTATE, w.group), encodeHardState(w.hardState));
      if (b.length > opsBefore && !this.registered.has(w.group) && !newGroups.has(w.group)) {
        newGroups.add(w.group);
        b.put(groupKey(KIND_GROUP, w.group), Buffer.alloc(0));
      }
    }
    if (b.length === 0) return;
    try {
      await b.write(this.sync);
    } catch (e) {
      // The batch did not apply (RocksDB batches are atomic), but after an fsync error the disk
      // may disagree with what we believe: forget these groups so the next write re-reads them.
      for (const g of spans.keys()) this.spans.delete(g);
      throw fromRocksError(e, `writing a batch of ${writes.length} group writes`);
    }
    for (const [g, s] of spans) this.spans.set(g, s);
    for (const g of newGroups) this.registered.add(g);
    this.stats.batches++;
    this.stats.groupWrites += writes.length;
    this.stats.entries += entries;
  }

  private async stageSnapshot(b: Batch, group: number, span: Span, snap: SnapshotMetadata, terms: Map<number, number>): Promise<void> {
    if (snap.index <= span.snapIndex) return;
    let keepTail = false;
    if (snap.index > span.compacted && snap.index <= span.last) {
      let term = terms.get(snap.index);
      if (term === undefined) {
        const v = await this.db.get(entryKey(group, snap.index)).catch((e: unknown) => {
          throw fromRocksError(e, `group ${group}: reading entry ${snap.index}`);
        });
        if (v === undefined) throw new StorageError('CORRUPT', `group ${group}: entry ${snap.index} missing inside the stored span (${span.compacted}, ${span.last}]`);
        term = entryTerm(snap.index, v);
      }
      keepTail = term === snap.term;
    }
    const delTo = keepTail ? snap.index : span.last;
    for (let i = span.compacted + 1; i <= delTo; i++) b.del(entryKey(group, i));
    span.compacted = snap.index;
    span.snapIndex = snap.index;
    if (!keepTail) span.last = snap.index;
    b.put(groupKey(KIND_SNAPSHOT, group), encodeSnapshot(snap));
    b.put(groupKey(KIND_COMPACTED, group), encodeU64(span.compacted));
  }

  // ---- load ----

  /** Fills the span cache for groups not yet in it (a few point reads and a reverse seek each). */
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
          const compacted = compV ? decodeU64(compV, `group ${g} compaction marker`) : 0;
          const lastKv = await this.db.first({ gte: entryKey(g, 0), lt: groupRangeEnd(KIND_ENTRY, g), reverse: true, values: false });
          const last = lastKv ? Math.max(decodeEntryIndex(lastKv[0]), compacted) : compacted;
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
      const hardState = hsV ? decodeHardState(hsV) : { ...EMPTY_HARDSTATE };
      const snapshot = snapV ? decodeSnapshot(snapV) : null;
      const compacted = compV ? decodeU64(compV, `group ${group} compaction marker`) : 0;
      const base = snapshot ? snapshot.index : 0;
      const entries: Entry[] = [];
      await this.db.scan({ gt: entryKey(group, base), lt: groupRangeEnd(KIND_ENTRY, group) }, (k, v) => {
        const index = decodeEntryIndex(k);
        const expect = entries.length === 0 ? base + 1 : entries[entries.length - 1]!.index + 1;
        if (index !== expect) throw new StorageError('CORRUPT', `group ${group}: log has a gap, expected entry ${expect}, found ${index}`);
        entries.push(decodeEntry(index, v));
      });
      const last = entries.length > 0 ? entries[entries.length - 1]!.index : Math.max(base, compacted);
      this.spans.set(group, { compacted: Math.max(compacted, base), last, snapIndex: base });
      return { hardState, snapshot, entries };
    } catch (e) {
      throw fromRocksError(e, `group ${group}: loading`);
    }
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
        const lg = groupOf(k, 'entry');
        const index = decodeEntryIndex(k);
        const base = lg.snapshot ? lg.snapshot.index : 0;
        if (index <= base) return;
        const expect = lg.entries.length === 0 ? base + 1 : lg.entries[lg.entries.length - 1]!.index + 1;
        if (index !== expect) throw new StorageError('CORRUPT', `group ${decodeGroupOf(k)}: log has a gap, expected entry ${expect}, found ${index}`);
        lg.entries.push(decodeEntry(index, v));
      });
    } catch (e) {
      throw fromRocksError(e, 'loading all groups');
    }
    for (const [g, lg] of out) {
      const base = lg.snapshot ? lg.snapshot.index : 0;
      const compacted = Math.max(compactedOf.get(g) ?? 0, base);
      const last = lg.entries.length > 0 ? lg.entries[lg.entries.length - 1]!.index : compacted;
      this.spans.set(g, { compacted, last, snapIndex: base });
    }
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
      await b.write(this.sync);
      this.registered.delete(group);
    } catch (e) {
      throw fromRocksError(e, `group ${group}: deleting`);
    }
  }
}

function stageEntries(b: Batch, group: number, span: Span, entries: Entry[], terms: Map<number, number>): void {
  const first = entries[0]!.index;
  if (first <= span.compacted) {
    throw new StorageError('INVALID', `group ${group}: entry ${first} is at or below the compacted index ${span.compacted}`);
  }
  if (first > span.last + 1) {
    throw new StorageError('INVALID', `group ${group}: entry ${first} would leave a gap after the last stored entry ${span.last}`);
  }
  let prev = first - 1;
  for (const e of entries) {
    if (e.index !== prev + 1) throw new StorageError('INVALID', `group ${group}: entries not contiguous (${prev} then ${e.index})`);
    prev = e.index;
    b.put(entryKey(group, e.index), encodeEntry(e));
    terms.set(e.index, e.term);
  }
  // Conflict truncation: whatever followed the old entries at these indexes is not part of the new log.
  for (let i = prev + 1; i <= span.last; i++) {
    b.del(entryKey(group, i));
    terms.delete(i);
  }
  span.last = prev;
}

function stageCompact(b: Batch, group: number, span: Span, compactTo: number): void {
  if (!Number.isSafeInteger(compactTo) || compactTo < 0) throw new StorageError('INVALID', `group ${group}: bad compactTo ${compactTo}`);
  if (compactTo > span.snapIndex) {
    throw new StorageError('INVALID', `group ${group}: compactTo ${compactTo} is beyond the snapshot index ${span.snapIndex}; only entries a snapshot covers may be deleted`);
  }
  if (compactTo <= span.compacted) return;
  for (let i = span.compacted + 1; i <= Math.min(compactTo, span.last); i++) b.del(entryKey(group, i));
  span.compacted = compactTo;
  if (span.last < compactTo) span.last = compactTo;
  b.put(groupKey(KIND_COMPACTED, group), encodeU64(compactTo));
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
