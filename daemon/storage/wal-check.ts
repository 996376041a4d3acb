// Verifies RocksDB's write-ahead log files before RocksDB opens them.
//
// Why: the `rocksdb` binding hard-codes paranoid_checks = false and does not expose
// wal_recovery_mode, so RocksDB recovers a damaged WAL in "point in time" mode: it replays up to
// the first bad record, silently drops everything after it, flushes, and deletes the evidence.
// Entries this node had acknowledged (and votes it had cast) would be gone without a word. So
// before opening, we read every WAL file ourselves and check each record's CRC32C, exactly as
// RocksDB's log reader would (db/log_format.h: 32 KiB blocks; records of checksum u32 LE, length
// u16 LE, type u8 [, log number u32 for recyclable types], payload; the checksum is a masked
// CRC32C over type, log number and payload).
//
// A bad record FOLLOWED by a good one (in the same file or a later one) is corruption of data
// that was written, and synced, after it: refused. A bad record with nothing good after it is a
// torn last write (the process or machine died mid-write, before the write was acknowledged) and
// RocksDB's recovery of it loses nothing that was promised: tolerated, as RocksDB's
// kTolerateCorruptedTailRecords mode would.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const BLOCK = 32768;
const HEADER = 7;
const RECYCLABLE_HEADER = 11;
const MAX_TYPE = 8;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli), as RocksDB's crc32c::Value. */
export function crc32c(data: Uint8Array, start = 0, end = data.length, seed = 0): number {
  let c = ~seed >>> 0;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** RocksDB stores checksums masked (crc32c::Mask), so a CRC of data containing CRCs stays useful. */
function mask(crc: number): number {
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

export interface WalDamage {
  file: string;
  offset: number;
  reason: string;
}

/** First bad record of one WAL file, and whether any good record follows it in that file. */
interface FileScan {
  firstBad: WalDamage | undefined;
  goodAfterBad: boolean;
  good: number;
}

/** Why the record at `pos` is not a good one (undefined = good); its size in `out.size`. */
function checkRecord(buf: Uint8Array, view: DataView, pos: number, out: { size: number }): string | undefined {
  const blockEnd = Math.min(buf.length, (Math.floor(pos / BLOCK) + 1) * BLOCK);
  if (blockEnd - pos < HEADER) return 'header runs past its block';
  const length = view.getUint16(pos + 4, true);
  const type = buf[pos + 6]!;
  if (type === 0 || type > MAX_TYPE) return `unknown record type ${type}`;
  const headerSize = type >= 5 ? RECYCLABLE_HEADER : HEADER;
  if (pos + headerSize + length > blockEnd) return `record length ${length} runs past its block`;
  if (mask(crc32c(buf, pos + 6, pos + headerSize + length)) !== view.getUint32(pos, true)) return 'checksum mismatch';
  out.size = headerSize + length;
  return undefined;
}

export function scanWal(name: string, buf: Uint8Array): FileScan {
  const scan: FileScan = { firstBad: undefined, goodAfterBad: false, good: 0 };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const rec = { size: 0 };
  let pos = 0;
  while (pos < buf.length) {
    const blockEnd = Math.min(buf.length, (Math.floor(pos / BLOCK) + 1) * BLOCK);
    if (blockEnd - pos < HEADER) {
      pos = blockEnd; // block trailer: zero padding
      continue;
    }
    if (view.getUint32(pos, true) === 0 && view.getUint16(pos + 4, true) === 0 && buf[pos + 6] === 0) {
      pos = blockEnd; // preallocated space or padding: nothing more in this block
      continue;
    }
    const reason = checkRecord(buf, view, pos, rec);
    if (reason === undefined) {
      scan.good++;
      pos += rec.size;
      continue;
    }
    scan.firstBad = { file: name, offset: pos, reason };
    // RocksDB drops the rest of the block after a bad record (and, in point-in-time mode,
    // everything after it). Is there anything written after the damage? Search every later
    // offset for a record whose checksum holds: a chance match is 1 in 2^32, and most offsets
    // fail on the type or length byte before any CRC is computed.
    for (let p = pos + 1; p + HEADER <= buf.length; p++) {
      if (buf[p + 6] === 0 || buf[p + 6]! > MAX_TYPE) continue;
      if (checkRecord(buf, view, p, rec) === undefined && rec.size > HEADER) {
        scan.goodAfterBad = true;
        break;
      }
    }
    return scan;
  }
  return scan;
}

/**
 * Checks every WAL file (NNNNNN.log) of a RocksDB directory, oldest first. Returns the damage
 * that would make RocksDB drop synced writes, or undefined when the WAL is sound (a torn last
 * record included). A missing directory is sound (a new store).
 */
export async function checkWal(dir: string): Promise<WalDamage | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const logs = names.filter((n) => /^\d+\.log$/.test(n)).sort((a, b) => Number(a.slice(0, -4)) - Number(b.slice(0, -4)));
  let pending: WalDamage | undefined;
  for (const name of logs) {
    const scan = scanWal(name, await readFile(join(dir, name)));
    if (pending && scan.good > 0) return pending; // a bad tail in an older file, then more writes
    if (scan.goodAfterBad) return scan.firstBad;
    pending ??= scan.firstBad;
  }
  return undefined;
}
