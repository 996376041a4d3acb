// The binary UpdateEntries body of the state-machine API (docs/state-machine-api.md, "Binary
// UpdateEntries"), in one place for both ends: raftd encodes it (app-client.ts), the SDK decodes it
// (adapters/sdk/server.ts), the conformance kit builds its test bodies with it. No imports: the SDK
// and the kit take it without the rest of raftd.
//
//   group u32, count u32, then per entry: index u64, term u64, length u32, data   (big-endian)

/** The request's content type. */
export const ENTRIES_CONTENT_TYPE = 'application/vnd.raftd.entries';
/** An app advertises the body with this header on its LastLogIndex answers... */
export const ENTRIES_HEADER = 'raftd-entries';
/** ...carrying this token (the header is a comma-separated list, room for more encodings). */
export const ENTRIES_BINARY = 'binary';
/** group u32, count u32 */
export const BODY_HEAD_BYTES = 8;
/** per entry: index u64, term u64, length u32 */
export const ENTRY_HEAD_BYTES = 20;

export interface WireEntry {
  index: number;
  term: number;
  data: Uint8Array;
}

/** Malformed framing; the message says where (the SDK answers it with a 400). */
export class EntriesFormatError extends Error {
  override readonly name = 'EntriesFormatError';
}

/** Whether a `raftd-entries` header value lists the binary body. */
export function advertisesBinary(v: string | string[] | null | undefined): boolean {
  if (v === undefined || v === null) return false;
  const list = Array.isArray(v) ? v.join(',') : v;
  return list.split(',').some((t) => t.trim().toLowerCase() === ENTRIES_BINARY);
}

/** One allocation; each entry's data is copied once, into it. Indexes and terms must be < 2^53. */
export function encodeEntries(group: number, entries: readonly WireEntry[]): Buffer {
  let size = BODY_HEAD_BYTES;
  for (const e of entries) size += ENTRY_HEAD_BYTES + e.data.byteLength;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(group, 0);
  out.writeUInt32BE(entries.length, 4);
  let off = BODY_HEAD_BYTES;
  for (const e of entries) {
    // Two u32 halves: no BigInt per entry.
    out.writeUInt32BE(Math.floor(e.index / 0x1_0000_0000), off);
    out.writeUInt32BE(e.index >>> 0, off + 4);
    out.writeUInt32BE(Math.floor(e.term / 0x1_0000_0000), off + 8);
    out.writeUInt32BE(e.term >>> 0, off + 12);
    out.writeUInt32BE(e.data.byteLength, off + 16);
    out.set(e.data, off + ENTRY_HEAD_BYTES);
    off += ENTRY_HEAD_BYTES + e.data.byteLength;
  }
  return out;
}

/** A big-endian u64 that must be a safe integer (< 2^53); undefined if it is not. */
function safeU64(b: Buffer, off: number): number | undefined {
  const hi = b.readUInt32BE(off);
  if (hi >= 0x200000) return undefined;
  return hi * 0x1_0000_0000 + b.readUInt32BE(off + 4);
}

/**
 * Decodes the framing exactly: every length must fit in what is left, nothing may follow the last
 * entry, indexes and terms must be below 2^53. The entry rules (non-empty, index >= 1, contiguous)
 * are the caller's, shared with the JSON form. Entry data are views into `body` (no copies).
 */
export function decodeEntries(body: Buffer): { group: number; entries: WireEntry[] } {
  if (body.length < BODY_HEAD_BYTES) throw new EntriesFormatError(`binary UpdateEntries body is ${body.length} bytes, shorter than its ${BODY_HEAD_BYTES}-byte header`);
  const group = body.readUInt32BE(0);
  const count = body.readUInt32BE(4);
  // Checked before allocating anything: a forged count cannot make us build a huge array.
  if (count > (body.length - BODY_HEAD_BYTES) / ENTRY_HEAD_BYTES) throw new EntriesFormatError(`count ${count} does not fit in a ${body.length}-byte body`);
  const entries: WireEntry[] = new Array<WireEntry>(count);
  let off = BODY_HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    if (body.length - off < ENTRY_HEAD_BYTES) throw new EntriesFormatError(`entries[${i}]: body truncated at byte ${off} (header needs ${ENTRY_HEAD_BYTES})`);
    const index = safeU64(body, off);
    const term = safeU64(body, off + 8);
    const len = body.readUInt32BE(off + 16);
    off += ENTRY_HEAD_BYTES;
    if (index === undefined) throw new EntriesFormatError(`entries[${i}].index must be an integer >= 1 below 2^53`);
    if (term === undefined) throw new EntriesFormatError(`entries[${i}].term must be an integer >= 0 below 2^53`);
    if (len > body.length - off) throw new EntriesFormatError(`entries[${i}]: length ${len} exceeds the ${body.length - off} bytes left`);
    entries[i] = { index, term, data: new Uint8Array(body.buffer, body.byteOffset + off, len) };
    off += len;
  }
  if (off !== body.length) throw new EntriesFormatError(`${body.length - off} bytes after the last of ${count} entries`);
  return { group, entries };
}
