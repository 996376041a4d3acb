// Binary framing of /v1/propose-batch (content-type application/octet-stream), beside the JSON
// form: JSON + base64 per entry costs more to parse than replicating the entry does.
//
// Request:  repeated { u32 group, u32 length, length bytes of entry data }      (big-endian)
// Response: repeated { u8 kind, f64 index, u32 length, length bytes of JSON }   one per item, in order
//   kind 0 = applied (JSON = the app's result; length 0 for null), 1 = skipped (length 0),
//   2 = failed (JSON = the error object {code, message, leader?}); index is -1 when unknown.

export const BINARY_BATCH_TYPE = 'application/octet-stream';

export interface BatchItem {
  group: number;
  data: Uint8Array;
}

export type BatchResult =
  | { kind: 'applied'; index: number; result: unknown }
  | { kind: 'skipped'; index: number }
  | { kind: 'failed'; index: number; error: { code: string; message: string } };

const KIND_APPLIED = 0;
const KIND_SKIPPED = 1;
const KIND_FAILED = 2;

export function encodeBatchRequest(items: readonly BatchItem[]): Buffer {
  let size = 0;
  for (const it of items) size += 8 + it.data.length;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const it of items) {
    out.writeUInt32BE(it.group, o);
    out.writeUInt32BE(it.data.length, o + 4);
    out.set(it.data, o + 8);
    o += 8 + it.data.length;
  }
  return out;
}

/** Entry data are views into `buf` (no copy); throws a message fit for a 400 on a malformed body. */
export function decodeBatchRequest(buf: Buffer): Array<{ group: number; data: Buffer }> {
  const items: Array<{ group: number; data: Buffer }> = [];
  let o = 0;
  while (o < buf.length) {
    if (o + 8 > buf.length) throw new Error(`truncated item header at byte ${o}`);
    const group = buf.readUInt32BE(o);
    const len = buf.readUInt32BE(o + 4);
    if (len === 0) throw new Error(`item ${items.length} has empty data`);
    if (o + 8 + len > buf.length) throw new Error(`item ${items.length} runs past the end of the body`);
    items.push({ group, data: buf.subarray(o + 8, o + 8 + len) });
    o += 8 + len;
  }
  return items;
}

/** `bodies` are the JSON form's per-item results ({index, result} | {index, skipped} | {error}). */
export function encodeBatchResponse(bodies: ReadonlyArray<Record<string, unknown>>): Buffer {
  const kinds = new Uint8Array(bodies.length);
  const jsons: Array<Buffer | undefined> = new Array(bodies.length);
  let size = 0;
  bodies.forEach((b, i) => {
    let json: Buffer | undefined;
    if (b.error !== undefined) {
      kinds[i] = KIND_FAILED;
      json = Buffer.from(JSON.stringify(b.error));
    } else if (b.skipped) {
      kinds[i] = KIND_SKIPPED;
    } else if (b.result !== null && b.result !== undefined) {
      json = Buffer.from(JSON.stringify(b.result));
    }
    jsons[i] = json;
    size += 13 + (json ? json.length : 0);
  });
  // One allocation for the whole answer: the common item (opaque data, null result) is 13 bytes.
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  bodies.forEach((b, i) => {
    const json = jsons[i];
    out.writeUInt8(kinds[i]!, o);
    out.writeDoubleBE(typeof b.index === 'number' ? b.index : -1, o + 1);
    out.writeUInt32BE(json ? json.length : 0, o + 9);
    if (json) json.copy(out, o + 13);
    o += 13 + (json ? json.length : 0);
  });
  return out;
}

export function decodeBatchResponse(buf: Uint8Array): BatchResult[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: BatchResult[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 13 > b.length) throw new Error(`truncated result header at byte ${o}`);
    const kind = b.readUInt8(o);
    const index = b.readDoubleBE(o + 1);
    const len = b.readUInt32BE(o + 9);
    if (o + 13 + len > b.length) throw new Error(`result ${out.length} runs past the end of the body`);
    const json = len > 0 ? (JSON.parse(b.toString('utf8', o + 13, o + 13 + len)) as unknown) : null;
    o += 13 + len;
    if (kind === KIND_FAILED) out.push({ kind: 'failed', index, error: json as { code: string; message: string } });
    else if (kind === KIND_SKIPPED) out.push({ kind: 'skipped', index });
    else if (kind === KIND_APPLIED) out.push({ kind: 'applied', index, result: json });
    else throw new Error(`unknown result kind ${kind}`);
  }
  return out;
}
