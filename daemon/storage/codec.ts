// Binary keys and values of the log store.
//
// Keys sort byte-wise in RocksDB, so every number in a key is fixed-width big-endian: the byte order
// then equals numeric order (group 256 after group 255, index 2^40 after index 255), and all keys of
// one kind and one group form one contiguous range that a single iterator or seek covers.
//
//   [0x00]                          node identity (one record)
//   [0x01][utf8 name]               small node-local metadata (getMeta / putMeta)
//   [0x0f][group u32]               group registry: present while the group has any record
//   [0x10][group u32]               hard state
//   [0x11][group u32]               snapshot metadata (index, term, membership)
//   [0x12][group u32]               compaction marker: every entry <= it is deleted
//   [0x20][group u32][index u64]    a run of log entries starting at index
//
// Values are fixed-layout big-endian records; JSON never appears on the write path.
//
// Entries are stored in runs: one record holds the consecutive entries of one append (up to
// MAX_RUN_ENTRIES / MAX_RUN_BYTES), keyed by its first index. A group's runs are disjoint and
// contiguous, so a run ends where the next begins. Appending 10 entries thus costs RocksDB one key,
// not ten: the memtable insert, not the encoding, is what dominates the cost of a write.

import { EntryType, type ConfState, type Entry, type HardState, type SnapshotMetadata } from '../raft/types.js';
import { StorageError } from './errors.js';

export const KIND_IDENTITY = 0x00;
export const KIND_META = 0x01;
export const KIND_GROUP = 0x0f;
export const KIND_HARDSTATE = 0x10;
export const KIND_SNAPSHOT = 0x11;
export const KIND_COMPACTED = 0x12;
export const KIND_ENTRY = 0x20;

/** Bump when any record layout changes; an older daemon must refuse a newer directory. */
export const FORMAT_VERSION = 1;
const MAGIC = 0x52465444; // "RFTD"
const TWO32 = 0x1_0000_0000;
export const MAX_GROUP = 0xffff_ffff;

function checkU32(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_GROUP) throw new StorageError('INVALID', `${what} must be an integer in [0, 2^32): ${n}`);
}

function checkU53(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new StorageError('INVALID', `${what} must be a non-negative safe integer: ${n}`);
}

function putU64(buf: Buffer, off: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO32), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}

function getU64(buf: Buffer, off: number): number {
  const hi = buf.readUInt32BE(off);
  if (hi >= 0x20_0000) throw new StorageError('CORRUPT', `stored integer exceeds 2^53 at offset ${off}`);
  return hi * TWO32 + buf.readUInt32BE(off + 4);
}

// ---- keys ----

export function groupKey(kind: number, group: number): Buffer {
  checkU32(group, 'group');
  const k = Buffer.allocUnsafe(5);
  k[0] = kind;
  k.writeUInt32BE(group, 1);
  return k;
}

export function entryKey(group: number, index: number): Buffer {
  checkU32(group, 'group');
  checkU53(index, 'entry index');
  const k = Buffer.allocUnsafe(13);
  k[0] = KIND_ENTRY;
  k.writeUInt32BE(group, 1);
  putU64(k, 5, index);
  return k;
}

/** The exclusive upper bound of a group's range of `kind` keys: the next group's prefix, or the next kind. */
export function groupRangeEnd(kind: number, group: number): Buffer {
  return group === MAX_GROUP ? Buffer.from([kind + 1]) : groupKey(kind, group + 1);
}

export function kindStart(kind: number): Buffer {
  return Buffer.from([kind]);
}

export function decodeGroupOf(key: Buffer): number {
  if (key.length < 5) throw new StorageError('CORRUPT', `short key ${key.toString('hex')}`);
  return key.readUInt32BE(1);
}

export function decodeEntryIndex(key: Buffer): number {
  if (key.length !== 13 || key[0] !== KIND_ENTRY) throw new StorageError('CORRUPT', `bad entry key ${key.toString('hex')}`);
  return getU64(key, 5);
}

export const IDENTITY_KEY = Buffer.from([KIND_IDENTITY]);

export function metaKey(name: string): Buffer {
  if (name.length === 0 || name.length > 1024) throw new StorageError('INVALID', 'meta key must be 1..1024 characters');
  return Buffer.concat([Buffer.from([KIND_META]), Buffer.from(name, 'utf8')]);
}

// ---- values ----

export const MAX_RUN_ENTRIES = 128;
export const MAX_RUN_BYTES = 64 * 1024;
const ENTRY_HEADER = 13;

// Run: per entry [type u8][term u64][length u32][data]. Indexes follow from the key.
export function encodeRun(entries: readonly Entry[]): Buffer {
  let size = 0;
  for (const e of entries) size += ENTRY_HEADER + e.data.length;
  const v = Buffer.allocUnsafe(size);
  let off = 0;
  for (const e of entries) {
    checkU53(e.term, 'entry term');
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) throw new StorageError('INVALID', `entry ${e.index}: unknown type ${e.type}`);
    v[off] = e.type;
    putU64(v, off + 1, e.term);
    v.writeUInt32BE(e.data.length, off + 9);
    v.set(e.data, off + ENTRY_HEADER);
    off += ENTRY_HEADER + e.data.length;
  }
  return v;
}

export function decodeRun(first: number, v: Buffer): Entry[] {
  const out: Entry[] = [];
  let off = 0;
  let index = first;
  while (off < v.length) {
    if (off + ENTRY_HEADER > v.length) throw new StorageError('CORRUPT', `entry ${index}: run record truncated`);
    const type = v[off]!;
    if (type !== EntryType.Normal && type !== EntryType.ConfChange) throw new StorageError('CORRUPT', `entry ${index}: unknown type ${type}`);
    const term = getU64(v, off + 1);
    const len = v.readUInt32BE(off + 9);
    const start = off + ENTRY_HEADER;
    if (start + len > v.length) throw new StorageError('CORRUPT', `entry ${index}: data runs past the end of its record`);
    // A view, not a copy: the binding hands out a fresh buffer per value.
    out.push({ index, term, type, data: new Uint8Array(v.buffer, v.byteOffset + start, len) });
    off = start + len;
    index++;
  }
  if (out.length === 0) throw new StorageError('CORRUPT', `run at ${first} is empty`);
  return out;
}

/** Splits contiguous entries into runs no larger than the limits (a single big entry gets its own run). */
export function splitRuns(entries: readonly Entry[]): Entry[][] {
  const runs: Entry[][] = [];
  let cur: Entry[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (cur.length > 0 && (cur.length >= MAX_RUN_ENTRIES || bytes + e.data.length > MAX_RUN_BYTES)) {
      runs.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += e.data.length;
  }
  if (cur.length > 0) runs.push(cur);
  return runs;
}

// Hard state: [term u64][vote u32][commit u64].
export function encodeHardState(hs: HardState): Buffer {
  checkU53(hs.term, 'term');
  checkU32(hs.vote, 'vote');
  checkU53(hs.commit, 'commit');
  const v = Buffer.allocUnsafe(20);
  putU64(v, 0, hs.term);
  v.writeUInt32BE(hs.vote, 8);
  putU64(v, 12, hs.commit);
  return v;
}

export function decodeHardState(v: Buffer): HardState {
  if (v.length !== 20) throw new StorageError('CORRUPT', `hard state record has ${v.length} bytes, expected 20`);
  return { term: getU64(v, 0), vote: v.readUInt32BE(8), commit: getU64(v, 12) };
}

// Snapshot metadata: [index u64][term u64][nVoters u32][voters u32...][nLearners u32][learners u32...].
export function encodeSnapshot(m: SnapshotMetadata): Buffer {
  checkU53(m.index, 'snapshot index');
  checkU53(m.term, 'snapshot term');
  const { voters, learners } = m.confState;
  const v = Buffer.allocUnsafe(24 + 4 * (voters.length + learners.length));
  putU64(v, 0, m.index);
  putU64(v, 8, m.term);
  let off = 16;
  for (const list of [voters, learners]) {
    v.writeUInt32BE(list.length, off);
    off += 4;
    for (const id of list) {
      checkU32(id, 'node id');
      v.writeUInt32BE(id, off);
      off += 4;
    }
  }
  return v;
}

export function decodeSnapshot(v: Buffer): SnapshotMetadata {
  const bad = (): StorageError => new StorageError('CORRUPT', `snapshot metadata record malformed (${v.length} bytes)`);
  if (v.length < 24) throw bad();
  const index = getU64(v, 0);
  const term = getU64(v, 8);
  let off = 16;
  const lists: number[][] = [];
  for (let l = 0; l < 2; l++) {
    if (off + 4 > v.length) throw bad();
    const n = v.readUInt32BE(off);
    off += 4;
    if (off + 4 * n > v.length) throw bad();
    const ids: number[] = [];
    for (let i = 0; i < n; i++, off += 4) ids.push(v.readUInt32BE(off));
    lists.push(ids);
  }
  if (off !== v.length) throw bad();
  const confState: ConfState = { voters: lists[0]!, learners: lists[1]! };
  return { index, term, confState };
}

export function encodeU64(n: number): Buffer {
  checkU53(n, 'index');
  const v = Buffer.allocUnsafe(8);
  putU64(v, 0, n);
  return v;
}

export function decodeU64(v: Buffer, what: string): number {
  if (v.length !== 8) throw new StorageError('CORRUPT', `${what} record has ${v.length} bytes, expected 8`);
  return getU64(v, 0);
}

// Identity: [magic u32][format u16][node id u32][cluster id length u16][cluster id utf8].
export interface Identity {
  format: number;
  nodeId: number;
  clusterId: string;
}

export function encodeIdentity(id: Identity): Buffer {
  const cid = Buffer.from(id.clusterId, 'utf8');
  if (cid.length > 0xffff) throw new StorageError('INVALID', 'cluster id too long');
  const v = Buffer.allocUnsafe(12 + cid.length);
  v.writeUInt32BE(MAGIC, 0);
  v.writeUInt16BE(id.format, 4);
  v.writeUInt32BE(id.nodeId, 6);
  v.writeUInt16BE(cid.length, 10);
  cid.copy(v, 12);
  return v;
}

export function decodeIdentity(v: Buffer): Identity {
  if (v.length < 12 || v.readUInt32BE(0) !== MAGIC || v.readUInt16BE(10) !== v.length - 12) {
    throw new StorageError('CORRUPT', `node identity record malformed (${v.length} bytes)`);
  }
  return { format: v.readUInt16BE(4), nodeId: v.readUInt32BE(6), clusterId: v.toString('utf8', 12) };
}

export { checkU32, checkU53 };
