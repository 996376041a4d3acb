// Temp directories for real RocksDB stores, removed after each test.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, type Entry } from '../../../daemon/raft/types.js';

export class TempDirs {
  private dirs: string[] = [];

  async make(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'raftd-storage-'));
    this.dirs.push(d);
    return d;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** A deterministic payload per (group, index, term), so a reload can be checked byte for byte. */
export function payload(group: number, index: number, term: number, size = 16): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (group * 31 + index * 7 + term * 13 + i) & 0xff;
  return b;
}

export function entries(group: number, from: number, to: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: EntryType.Normal, data: payload(group, i, term, size) });
  return out;
}

export async function expectRejects(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the promise to reject');
}
