// The reference key-value adapter: a StateMachine kept in memory and made durable with one
// directory per group:
//   DATA/g-<group>/snap-<N>.snap   checkpoint of the state at index N (also the snapshot bytes)
//   DATA/g-<group>/wal-<N>.log     batches applied after index N, one line per UpdateEntries call:
//                                  "<crc32 hex> <json {f: firstIndex, d: [base64 data...]}>"
// A batch's entries and their indexes live in one line guarded by a CRC, so index and effects are
// durable atomically: a torn last line (crash mid-write) is dropped whole at recovery. Recovery
// loads the newest checkpoint and re-applies the WAL lines after it (apply is deterministic).
// PrepareSnapshot writes a checkpoint and starts a new WAL, which is also the compaction.

import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { StateMachineError, type Entry, type EntryResult, type StateMachine } from '../sdk/types.js';
import { applyCommand, decodeSnapshot, encodeSnapshot, runQuery, sortedEntries } from './commands.js';

/** The platform can make each write durable by itself (O_DSYNC; not on Windows). */
const DSYNC_WRITES = fsc.O_DSYNC !== undefined;

export interface KvAdapterOptions {
  dataDir: string;
  /** 'always' (default): fsync every UpdateEntries. 'never': only on Sync (for raftd's RAFT_SYNC=1). */
  fsync?: 'always' | 'never';
  /** Checkpoint on its own once a WAL grows past this many bytes (default 64 MiB). */
  compactBytes?: number;
}

interface GroupState {
  dir: string;
  last: number;
  kv: Map<string, string>;
  wal?: fsp.FileHandle;
  walStart: number;
  walBytes: number;
  unsynced: boolean;
}

const SNAP = /^snap-(\d+)\.snap$/;
const WAL = /^wal-(\d+)\.log$/;

/** A data directory we cannot trust: refuse to serve instead of silently resetting. */
export class KvCorruptionError extends StateMachineError {
  constructor(message: string) {
    super('CORRUPT_DATA', message, 500);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, fsc.O_RDONLY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}

/** Writes a file durably under its final name (tmp + fsync + rename + fsync dir). */
async function writeFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  const h = await fsp.open(tmp, 'w');
  try {
    await h.writeFile(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

export class KvAdapter implements StateMachine {
  private readonly groups = new Map<number, Promise<GroupState>>();
  private readonly fsyncMode: 'always' | 'never';
  private readonly compactBytes: number;

  constructor(private readonly opts: KvAdapterOptions) {
    this.fsyncMode = opts.fsync ?? 'always';
    this.compactBytes = opts.compactBytes ?? 64 * 1024 * 1024;
  }

  /**
   * 'always': O_DSYNC, so each append is durable when write() returns — one thread-pool round
   * trip per batch instead of write + fdatasync (two), a third off the app's part of a write.
   * Where the platform has no O_DSYNC (Windows), appends are followed by datasync() instead.
   */
  private walFlags(): number {
    const base = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND;
    return this.fsyncMode === 'always' && DSYNC_WRITES ? base | fsc.O_DSYNC : base;
  }

  private groupDir(group: number): string {
    return path.join(this.opts.dataDir, `g-${group}`);
  }

  private state(group: number): Promise<GroupState> {
    let p = this.groups.get(group);
    if (!p) {
      p = this.load(group);
      this.groups.set(group, p);
      // A failed load must not be cached: the next call retries (and reports) again.
      p.catch(() => this.groups.delete(group));
    }
    return p;
  }

  /** Rebuilds a group from disk: newest checkpoint, then the WAL lines after it. */
  private async load(group: number): Promise<GroupState> {
    const dir = this.groupDir(group);
    // Finish or undo a directory swap interrupted by a crash (see replaceDir).
    if (!(await exists(dir)) && (await exists(`${dir}.new`))) await fsp.rename(`${dir}.new`, dir);
    await fsp.rm(`${dir}.new`, { recursive: true, force: true });
    await fsp.rm(`${dir}.old`, { recursive: true, force: true });
    const s: GroupState = { dir, last: 0, kv: new Map(), walStart: 0, walBytes: 0, unsynced: false };
    if (!(await exists(dir))) return s;
    const names = await fsp.readdir(dir);
    const snaps = names.flatMap((n) => (SNAP.test(n) ? [Number(SNAP.exec(n)![1])] : [])).sort((a, b) => a - b);
    const wals = names.flatMap((n) => (WAL.test(n) ? [Number(WAL.exec(n)![1])] : [])).sort((a, b) => a - b);
    if (snaps.length > 0) {
      const at = snaps[snaps.length - 1]!;
      let snap;
      try {
        snap = decodeSnapshot(await fsp.readFile(path.join(dir, `snap-${at}.snap`)));
      } catch (e) {
        throw new KvCorruptionError(`${dir}/snap-${at}.snap: ${(e as Error).message}`);
      }
      s.kv = snap.kv;
      s.last = snap.lastLogIndex;
    }
    for (let w = 0; w < wals.length; w++) {
      const file = path.join(dir, `wal-${wals[w]}.log`);
      const text = (await fsp.readFile(file)).toString('utf8');
      let offset = 0;
      for (const line of text.split('\n')) {
        const end = offset + Buffer.byteLength(line) + 1;
        const isLastLine = end > Buffer.byteLength(text);
        if (line.length === 0 && isLastLine) break;
        const batch = this.parseWalLine(line);
        if (!batch || isLastLine) {
          // Only the final line of the newest WAL may be torn (crash mid-append): drop it.
          if (w === wals.length - 1 && isLastLine) {
            await fsp.truncate(file, offset);
            break;
          }
          throw new KvCorruptionError(`${file}: corrupt record at byte ${offset}`);
        }
        const lastOfBatch = batch.f + batch.d.length - 1;
        if (batch.f > s.last + 1) throw new KvCorruptionError(`${file}: record starts at ${batch.f}, state is at ${s.last}: missing history`);
        batch.d.forEach((b64, k) => {
          if (batch.f + k > s.last) applyCommand(s.kv, Buffer.from(b64, 'base64'));
        });
        s.last = Math.max(s.last, lastOfBatch);
        offset = end;
      }
    }
    const start = wals.length > 0 ? wals[wals.length - 1]! : s.last;
    s.walStart = start;
    s.wal = await fsp.open(path.join(dir, `wal-${start}.log`), this.walFlags());
    s.walBytes = (await s.wal.stat()).size;
    return s;
  }

  private parseWalLine(line: string): { f: number; d: string[] } | undefined {
    const sp = line.indexOf(' ');
    if (sp < 0) return undefined;
    const body = line.slice(sp + 1);
    if (line.slice(0, sp) !== crc32(body).toString(16)) return undefined;
    try {
      const rec = JSON.parse(body) as { f?: unknown; d?: unknown };
      if (typeof rec.f !== 'number' || !Array.isArray(rec.d)) return undefined;
      return rec as { f: number; d: string[] };
    } catch {
      return undefined;
    }
  }

  private async openWal(s: GroupState, start: number): Promise<void> {
    await fsp.mkdir(s.dir, { recursive: true });
    const h = await fsp.open(path.join(s.dir, `wal-${start}.log`), this.walFlags());
    await s.wal?.close();
    s.wal = h;
    s.walStart = start;
    s.walBytes = 0;
    await fsyncDir(s.dir);
  }

  async lastLogIndex(group: number): Promise<number> {
    return (await this.state(group)).last;
  }

  async applyBatch(group: number, entries: Entry[]): Promise<EntryResult[]> {
    const s = await this.state(group);
    if (entries[0]!.index !== s.last + 1) {
      // The SDK guarantees this; an adapter still refuses rather than record a hole.
      throw new StateMachineError('INDEX_GAP', `group ${group}: batch starts at ${entries[0]!.index}, last index is ${s.last}`, 409);
    }
    // Views, not copies: the entries' data already sit in the request body.
    const body = JSON.stringify({ f: entries[0]!.index, d: entries.map((e) => Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('base64')) });
    const line = `${crc32(body).toString(16)} ${body}\n`;
    try {
      if (!s.wal) await this.openWal(s, s.last);
      // 'always': the WAL is O_DSYNC, so the write returns once the line is durable.
      await s.wal!.write(line);
      if (this.fsyncMode !== 'always') s.unsynced = true;
      else if (!DSYNC_WRITES) await s.wal!.datasync();
    } catch (e) {
      // Memory and disk may disagree now: forget the group, the next call reloads it from disk.
      this.groups.delete(group);
      await s.wal?.close().catch(() => undefined);
      throw new StateMachineError('UNAVAILABLE', `group ${group}: WAL write failed: ${(e as Error).message}`);
    }
    s.walBytes += Buffer.byteLength(line);
    const results = entries.map((e) => applyCommand(s.kv, e.data) as EntryResult);
    s.last = entries[entries.length - 1]!.index;
    if (s.walBytes > this.compactBytes) await this.checkpoint(s);
    return results;
  }

  async read(group: number, query: unknown): Promise<unknown> {
    const r = runQuery((await this.state(group)).kv, query);
    if ('error' in r) throw new StateMachineError('BAD_QUERY', r.error);
    return r.result;
  }

  /** Writes snap-<last>.snap, switches to a new WAL, and drops what the checkpoint covers. */
  private async checkpoint(s: GroupState): Promise<number> {
    const at = s.last;
    const file = path.join(s.dir, `snap-${at}.snap`);
    if (!(await exists(file))) {
      await fsp.mkdir(s.dir, { recursive: true });
      // Serialize now (synchronously, so no update interleaves), write afterwards.
      const bytes = encodeSnapshot(at, sortedEntries(s.kv));
      if (s.walStart !== at) await this.openWal(s, at);
      await writeFileAtomic(file, bytes);
    }
    // Keep the two newest checkpoints (a SaveSnapshot of the previous one may still be asked for).
    const names = await fsp.readdir(s.dir);
    const snaps = names.flatMap((n) => (SNAP.test(n) ? [Number(SNAP.exec(n)![1])] : [])).sort((a, b) => b - a);
    for (const old of snaps.slice(2)) await fsp.rm(path.join(s.dir, `snap-${old}.snap`), { force: true });
    for (const n of names) {
      const m = WAL.exec(n);
      if (m && Number(m[1]) < at && Number(m[1]) !== s.walStart) await fsp.rm(path.join(s.dir, n), { force: true });
    }
    return at;
  }

  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    const s = await this.state(group);
    const at = await this.checkpoint(s);
    return { prepared: `snap-${at}`, lastLogIndex: at };
  }

  async *saveSnapshot(group: number, prepared: string): AsyncIterable<Uint8Array> {
    const m = /^snap-(\d+)$/.exec(prepared);
    if (!m) throw new StateMachineError('SNAPSHOT_GONE', `"${prepared}" is not a snapshot this adapter prepared`);
    let h: fsp.FileHandle;
    try {
      // Opened before streaming: a later checkpoint may unlink the file, the open handle stays valid.
      h = await fsp.open(path.join(this.groupDir(group), `snap-${m[1]}.snap`), 'r');
    } catch {
      throw new StateMachineError('SNAPSHOT_GONE', `group ${group}: snapshot ${prepared} no longer exists; prepare a new one`);
    }
    try {
      const buf = Buffer.alloc(256 * 1024);
      for (;;) {
        const { bytesRead } = await h.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        yield Buffer.from(buf.subarray(0, bytesRead));
      }
    } finally {
      await h.close();
    }
  }

  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number> {
    const chunks: Buffer[] = [];
    for await (const c of data) chunks.push(Buffer.from(c));
    const bytes = Buffer.concat(chunks);
    let snap;
    try {
      snap = decodeSnapshot(bytes);
    } catch (e) {
      throw new StateMachineError('BAD_SNAPSHOT', (e as Error).message);
    }
    const dir = this.groupDir(group);
    const fresh = `${dir}.new`;
    // Load the group's current state before `fresh` exists: loading a group never seen, with
    // DIR.new present and DIR absent, would take DIR.new for an interrupted swap and move it.
    const old = await this.state(group).catch(() => undefined);
    await fsp.rm(fresh, { recursive: true, force: true });
    await fsp.mkdir(fresh, { recursive: true });
    await writeFileAtomic(path.join(fresh, `snap-${snap.lastLogIndex}.snap`), bytes);
    await this.replaceDir(group, fresh, old);
    return snap.lastLogIndex;
  }

  /** Swaps the group's directory for `fresh` (two renames; load() finishes an interrupted swap). */
  private async replaceDir(group: number, fresh: string | undefined, loaded?: GroupState): Promise<void> {
    const dir = this.groupDir(group);
    // Keep the old state cached during the renames, so a concurrent Read cannot trigger a load
    // that sees the half-swapped directories.
    const old = loaded ?? (await this.state(group).catch(() => undefined));
    if (await exists(dir)) await fsp.rename(dir, `${dir}.old`);
    if (fresh) await fsp.rename(fresh, dir);
    await fsp.mkdir(this.opts.dataDir, { recursive: true });
    await fsyncDir(this.opts.dataDir);
    this.groups.delete(group);
    await old?.wal?.close().catch(() => undefined);
    await fsp.rm(`${dir}.old`, { recursive: true, force: true });
  }

  async sync(group: number): Promise<number> {
    const s = await this.state(group);
    if (s.unsynced && s.wal) {
      await s.wal.datasync();
      s.unsynced = false;
    }
    return s.last;
  }

  async deleteGroup(group: number): Promise<void> {
    await this.replaceDir(group, undefined);
  }

  async close(): Promise<void> {
    for (const p of this.groups.values()) {
      const s = await p.catch(() => undefined);
      if (s?.wal) {
        if (s.unsynced) await s.wal.datasync().catch(() => undefined);
        await s.wal.close().catch(() => undefined);
      }
    }
    this.groups.clear();
  }
}
