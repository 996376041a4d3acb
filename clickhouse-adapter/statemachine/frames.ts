// Byte framing of the snapshot stream: [u32 big-endian length][bytes]. Data is re-cut into frames of a
// fixed size so the bytes never depend on how the engine happened to chunk its output.

import { ChsmError } from './errors.js';

export const SNAPSHOT_MAGIC = Buffer.from('RHSNAP1\n', 'ascii');
export const FRAME_SIZE = 1 << 20;

export function frame(payload: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(payload.length, 0);
  return Buffer.concat([head, payload]);
}

/** Re-cuts a byte stream into frames of exactly FRAME_SIZE (the last one shorter), then an empty frame. */
export async function* reframe(source: AsyncIterable<Uint8Array>, size = FRAME_SIZE): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLen = 0;
  for await (const chunk of source) {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (buf.length > 0) {
      const take = Math.min(size - pendingLen, buf.length);
      pending.push(buf.subarray(0, take));
      pendingLen += take;
      buf = buf.subarray(take);
      if (pendingLen === size) {
        yield frame(Buffer.concat(pending));
        pending = [];
        pendingLen = 0;
      }
    }
  }
  if (pendingLen > 0) yield frame(Buffer.concat(pending));
  yield frame(Buffer.alloc(0));
}

/** Pull-based reader over an async byte stream. */
export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  async readExact(n: number): Promise<Buffer> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
    if (this.buf.length < n) throw new ChsmError('RH_BAD_SNAPSHOT', `snapshot truncated: needed ${n} more bytes, got ${this.buf.length}`);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async readFrame(): Promise<Buffer> {
    const len = (await this.readExact(4)).readUInt32BE(0);
    return len === 0 ? Buffer.alloc(0) : Buffer.from(await this.readExact(len));
  }

  /** Frames up to (not including) the empty terminator frame. */
  async *frames(): AsyncGenerator<Buffer> {
    for (;;) {
      const f = await this.readFrame();
      if (f.length === 0) return;
      yield f;
    }
  }

  async expectEnd(): Promise<void> {
    if (this.buf.length > 0) throw new ChsmError('RH_BAD_SNAPSHOT', 'trailing bytes after the snapshot');
    const r = await this.it.next();
    if (!r.done && r.value.length > 0) throw new ChsmError('RH_BAD_SNAPSHOT', 'trailing bytes after the snapshot');
  }
}
