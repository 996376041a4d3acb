// The tail of the log not yet handed to durable storage: an optional incoming snapshot and the
// entries after it. Index arithmetic only; entries are never copied one by one on the hot path.
import type { Entry, Snapshot } from './types.js';

export class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** First index if a snapshot is pending (the entry after it). */
  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const k = i - this.offset;
    return k < this.entries.length ? this.entries[k]!.term : undefined;
  }

  /** Storage now holds entries up to i (with term t): drop them here. */
  stableTo(i: number, t: number): boolean {
    const term = this.maybeTerm(i);
    if (term === undefined || term !== t || i < this.offset) return false;
    const k = i + 1 - this.offset;
    this.entries = k >= this.entries.length ? [] : this.entries.slice(k);
    this.offset = i + 1;
    return true;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  /** Appends `ents` (consecutive), cutting whatever was at or after ents[0].index. */
  truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
    } else if (after <= this.offset) {
      // The whole unstable tail (and possibly stable entries) is replaced.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries.length = after - this.offset;
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
    }
  }

  pushOne(e: Entry): void {
    this.entries.push(e);
  }

  /** Entries [lo, hi), both within the unstable range. */
  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
