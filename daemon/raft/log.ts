// The Raft log of one node: durable storage below, the unstable tail above, and the commit and
// applied marks. All index/term questions go through here.
import { Unstable } from './log-unstable.js';
import { CompactedError, type Entry, type Snapshot, type Storage } from './types.js';

export class RaftLog {
  readonly unstable: Unstable;
  committed: number;
  /** Highest index handed to the application in a Ready (not necessarily applied yet). */
  applying: number;
  applied: number;

  constructor(readonly storage: Storage) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
    this.applying = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    const u = this.unstable;
    if (u.entries.length > 0) return u.offset + u.entries.length - 1;
    if (u.snapshot) return u.snapshot.metadata.index;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.termOr(this.lastIndex(), 0);
  }

  /** Term at i, or `dflt` when i is compacted or beyond the log. */
  termOr(i: number, dflt: number): number {
    const u = this.unstable;
    if (i >= u.offset) {
      const k = i - u.offset;
      return k < u.entries.length ? u.entries[k]!.term : dflt;
    }
    const ut = u.maybeTerm(i);
    if (ut !== undefined) return ut;
    if (u.snapshot) return dflt; // below a pending snapshot: the old storage is obsolete
    if (i < this.storage.firstIndex() - 1 || i > this.storage.lastIndex()) return dflt;
    return this.storage.term(i);
  }

  /** Term at i; -1 when i is compacted, 0 when beyond the log (etcd's convention). */
  term(i: number): number {
    if (i < this.firstIndex() - 1) return -1;
    if (i > this.lastIndex()) return 0;
    return this.termOr(i, -1);
  }

  matchTerm(i: number, t: number): boolean {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return false;
    return this.termOr(i, -1) === t;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** First index in `ents` whose term differs from ours (or that we lack); 0 if none. */
  findConflict(ents: readonly Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: where a leader probing
   * with (index, term) can jump to after a reject, skipping whole terms at once.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    const floor = this.firstIndex() - 1;
    for (let i = Math.min(index, this.lastIndex()); i >= floor; i--) {
      const t = this.termOr(i, -1);
      if (t < 0) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: floor, term: 0 };
  }

  /** Appends entries (consecutive, starting at or below lastIndex+1). Returns the new last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length > 0) this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Fast path for one leader proposal. */
  appendOne(e: Entry): void {
    this.unstable.pushOne(e);
  }

  commitTo(i: number): boolean {
    if (i <= this.committed) return false;
    this.committed = i;
    return true;
  }

  appliedTo(i: number): void {
    if (i > this.applied) this.applied = i;
    if (i > this.applying) this.applying = i;
  }

  stableTo(i: number, t: number): boolean {
    return this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Highest index this node has durably persisted (entries still unstable are not). */
  persistedIndex(): number {
    const u = this.unstable;
    // Only leaders ask, and a leader never has a snapshot pending; be conservative anyway.
    if (u.snapshot) return 0;
    return u.entries.length > 0 ? u.offset - 1 : this.lastIndex();
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /**
   * Entries [lo, hi) with at most maxBytes of data (at least one). Throws CompactedError when lo
   * is no longer in the log.
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new CompactedError(lo);
    const u = this.unstable;
    let out: Entry[];
    if (lo < u.offset) {
      const storageHi = Math.min(hi, u.offset);
      out = this.storage.entries(lo, storageHi, maxBytes);
      if (out.length < storageHi - lo || hi <= u.offset) return out;
      out = out.slice(); // the storage may hand out its own array
      let size = 0;
      for (let i = 0; i < out.length; i++) size += out[i]!.data.length;
      // Continue into the unstable tail while the budget lasts.
      const ents = u.entries;
      let k = 0;
      const stop = hi - u.offset;
      while (k < stop) {
        size += ents[k]!.data.length;
        if (size > maxBytes) break;
        out.push(ents[k]!);
        k++;
      }
      return out;
    }
    const ents = u.entries;
    const start = lo - u.offset;
    const stop = hi - u.offset;
    let end = start + 1;
    let size = ents[start]!.data.length;
    while (end < stop) {
      size += ents[end]!.data.length;
      if (size > maxBytes) break;
      end++;
    }
    return ents.slice(start, end);
  }

  /** Committed entries not yet handed to the application, at most maxBytes (at least one). */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, maxBytes);
  }

  hasNextCommitted(): boolean {
    return this.committed > Math.max(this.applying, this.firstIndex() - 1);
  }
}
