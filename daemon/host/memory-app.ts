// The built-in in-memory application ("--app-url memory:"): a key-value map per group.
// A test and benchmark aid only — it keeps nothing across restarts, so raftd replays the
// whole log into it. Real applications speak the state-machine API over HTTP.

import type { AppEntry, EntryResult } from '../statemachine/index.js';

interface GroupState {
  lastIndex: number;
  kv: Map<string, string>;
  prepared: Map<string, { lastIndex: number; bytes: Uint8Array }>;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export class MemoryApp {
  private readonly groups = new Map<number, GroupState>();
  private preparedSeq = 0;

  private state(group: number): GroupState {
    let s = this.groups.get(group);
    if (!s) this.groups.set(group, (s = { lastIndex: 0, kv: new Map(), prepared: new Map() }));
    return s;
  }

  async lastLogIndex(group: number): Promise<number> {
    return this.state(group).lastIndex;
  }

  async updateEntries(group: number, entries: AppEntry[]): Promise<{ results: EntryResult[]; lastLogIndex: number }> {
    const s = this.state(group);
    const results: EntryResult[] = [];
    for (const e of entries) {
      if (e.index <= s.lastIndex) {
        results.push({ index: e.index, ok: true, skipped: true });
        continue;
      }
      s.lastIndex = e.index;
      if (e.data.length === 0) {
        results.push({ index: e.index, ok: true, result: null });
        continue;
      }
      // Only JSON objects can be commands; anything else is opaque payload (no exception cost).
      if (e.data[0] !== 0x7b /* { */) {
        results.push({ index: e.index, ok: true, result: null });
        continue;
      }
      try {
        const cmd = JSON.parse(decoder.decode(e.data)) as { op?: string; key?: string; value?: string };
        if (cmd.op === 'set' && typeof cmd.key === 'string') {
          s.kv.set(cmd.key, String(cmd.value));
          results.push({ index: e.index, ok: true, result: { ok: true } });
        } else if (cmd.op === 'delete' && typeof cmd.key === 'string') {
          results.push({ index: e.index, ok: true, result: { deleted: s.kv.delete(cmd.key) } });
        } else {
          results.push({ index: e.index, ok: true, result: { bytes: e.data.length } });
        }
      } catch {
        results.push({ index: e.index, ok: true, result: { bytes: e.data.length } });
      }
    }
    return { results, lastLogIndex: s.lastIndex };
  }

  async read(group: number, query: unknown): Promise<unknown> {
    const s = this.state(group);
    const key = (query as { key?: unknown } | undefined)?.key;
    if (typeof key === 'string') return { key, value: s.kv.get(key) ?? null, index: s.lastIndex };
    return { lastIndex: s.lastIndex, keys: s.kv.size };
  }

  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    const s = this.state(group);
    const sorted = [...s.kv].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const bytes = encoder.encode(JSON.stringify({ lastIndex: s.lastIndex, kv: sorted }));
    const prepared = `p${++this.preparedSeq}`;
    s.prepared.clear(); // only the newest prepared snapshot is kept
    s.prepared.set(prepared, { lastIndex: s.lastIndex, bytes });
    return { prepared, lastLogIndex: s.lastIndex };
  }

  async *saveSnapshot(group: number, prepared: string): AsyncIterable<Uint8Array> {
    const p = this.state(group).prepared.get(prepared);
    if (!p) throw new Error(`unknown prepared snapshot ${prepared}`);
    yield p.bytes;
  }

  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<number> {
    const chunks: Uint8Array[] = [];
    if (data instanceof Uint8Array) chunks.push(data);
    else for await (const c of data) chunks.push(c);
    const parsed = JSON.parse(decoder.decode(Buffer.concat(chunks))) as { lastIndex: number; kv: Array<[string, string]> };
    this.groups.set(group, { lastIndex: parsed.lastIndex, kv: new Map(parsed.kv), prepared: new Map() });
    return parsed.lastIndex;
  }

  async sync(group: number): Promise<number> {
    return this.state(group).lastIndex;
  }

  async deleteGroup(group: number): Promise<void> {
    this.groups.delete(group);
  }

  healthy(): boolean {
    return true;
  }
}
