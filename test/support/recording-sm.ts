// A state machine for SDK-level tests: it applies nothing, remembers every batch and each group's
// last index, and answers each entry with `result` (default: ok, with the entry's data length).

import type { Entry, EntryResult, StateMachine } from '../../adapters/sdk/types.js';

export class RecordingStateMachine implements StateMachine {
  readonly last = new Map<number, number>();
  readonly batches: Entry[][] = [];

  constructor(private readonly result: (e: Entry) => EntryResult = (e) => ({ ok: true, result: { len: e.data.length } })) {}

  /** The latest data applied at `index` (the entries' bytes, as the SDK handed them over). */
  dataAt(index: number): Uint8Array | undefined {
    for (let b = this.batches.length - 1; b >= 0; b--) {
      const e = this.batches[b]!.find((x) => x.index === index);
      if (e) return e.data;
    }
    return undefined;
  }

  async lastLogIndex(group: number): Promise<number> {
    return this.last.get(group) ?? 0;
  }
  async applyBatch(group: number, entries: Entry[]): Promise<EntryResult[]> {
    this.batches.push(entries);
    this.last.set(group, entries[entries.length - 1]!.index);
    return entries.map(this.result);
  }
  async read(): Promise<unknown> {
    return null;
  }
  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    return { prepared: 'p', lastLogIndex: await this.lastLogIndex(group) };
  }
  async *saveSnapshot(): AsyncIterable<Uint8Array> {}
  async recoverFromSnapshot(): Promise<number> {
    return 0;
  }
}
