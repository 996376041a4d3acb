// An in-memory Storage: the simulator's "disk" and the reference for what durable storage must do.
// ents[0] is a dummy holding the snapshot's index and term.
import { CompactedError, EntryType, UnavailableError, type ConfState, type Entry, type HardState, type Snapshot, type Storage } from './types.js';
import { copyConfState } from './membership.js';

export class StorageError extends Error {
  constructor(
    readonly code: 'RAFT_STORAGE_GAP' | 'RAFT_SNAPSHOT_OUT_OF_DATE' | 'RAFT_SNAPSHOT_INDEX' | 'RAFT_COMPACT_INDEX',
    message: string,
  ) {
    super(message);
  }
}

const EMPTY = new Uint8Array(0);

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];

  constructor(init?: { confState?: ConfState }) {
    const cs = init?.confState ?? { voters: [], learners: [] };
    this.snap = { metadata: { index: 0, term: 0, confState: copyConfState(cs) }, data: EMPTY };
    this.ents = [{ index: 0, term: 0, type: EntryType.Normal, data: EMPTY }];
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: copyConfState(this.snap.metadata.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(i: number): number {
    const off = this.offset();
    if (i < off) throw new CompactedError(i);
    if (i - off >= this.ents.length) throw new UnavailableError(i);
    return this.ents[i - off]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    let end = lo - off + 1;
    let size = this.ents[lo - off]!.data.length;
    const stop = hi - off;
    while (end < stop) {
      size += this.ents[end]!.data.length;
      if (size > maxBytes) break;
      end++;
    }
    return this.ents.slice(lo - off, end);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Appends entries, overwriting a conflicting suffix. Entries at or below the snapshot are skipped. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return;
    let from = 0;
    if (first > entries[0]!.index) from = first - entries[0]!.index;
    const start = entries[from]!.index;
    const off = this.offset();
    if (start - off > this.ents.length) {
      throw new StorageError('RAFT_STORAGE_GAP', `missing log entries: last ${this.lastIndex()}, appending at ${start}`);
    }
    this.ents.length = start - off;
    for (let i = from; i < entries.length; i++) this.ents.push(entries[i]!);
  }

  /** Replaces the whole log with a snapshot (a follower installing one from the leader). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.snap.metadata.index) {
      throw new StorageError('RAFT_SNAPSHOT_OUT_OF_DATE', `snapshot ${snap.metadata.index} is older than ${this.snap.metadata.index}`);
    }
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: EntryType.Normal, data: EMPTY }];
  }

  /** Records a snapshot of the state at `index` (the log is kept; compact() drops it). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new StorageError('RAFT_SNAPSHOT_OUT_OF_DATE', `snapshot ${index} is not newer than ${this.snap.metadata.index}`);
    if (index > this.lastIndex()) throw new StorageError('RAFT_SNAPSHOT_INDEX', `snapshot ${index} is past the last index ${this.lastIndex()}`);
    const term = this.term(index);
    this.snap = { metadata: { index, term, confState: copyConfState(confState) }, data };
    return this.snap;
  }

  /** Drops entries up to `index`, which must be covered by the snapshot. */
  compact(index: number): void {
    const off = this.offset();
    if (index <= off) return;
    if (index > this.snap.metadata.index) {
      throw new StorageError('RAFT_COMPACT_INDEX', `compact ${index} is past the snapshot index ${this.snap.metadata.index}`);
    }
    const k = index - off;
    const dummy: Entry = { index, term: this.ents[k]!.term, type: EntryType.Normal, data: EMPTY };
    this.ents = [dummy, ...this.ents.slice(k + 1)];
  }
}
