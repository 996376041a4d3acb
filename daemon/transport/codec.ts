// Core Message <-> raftd.v1 wire bytes, for the hot path (every Raft message of every group).
//
// Written by hand against proto/raftd/v1/raft.proto rather than through the generated
// protobuf-es classes because: (1) protobuf-es maps uint64 to bigint, and converting every
// term/index of every message both ways costs more than the encoding itself; (2) encoding in
// two passes (sizes, then one write into one exactly-sized buffer) copies entry data exactly
// once, and decoding hands out entry data and contexts as views of the received buffer
// (no copy). test/unit/transport/codec.test.ts checks these bytes against protobuf-es both ways.
//
// 64-bit fields: the core uses numbers, exact up to 2^53; a larger value from a peer is a
// DECODE_ERROR, never a silently rounded index.

import {
  EntryType,
  MessageType,
  type ConfState,
  type Entry,
  type Message,
  type Snapshot,
  type SnapshotMetadata,
} from '../raft/types.js';
import { TransportError } from './errors.js';

export interface GroupMessage {
  group: number;
  message: Message;
}

export interface Batch {
  fromNode: number;
  toNode: number;
  clusterId: string;
  /** Per stream, increasing from 1. */
  seq: number;
  messages: GroupMessage[];
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const EMPTY = new Uint8Array(0);
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

const MAX_MESSAGE_TYPE = MessageType.SnapStatus;
const MAX_ENTRY_TYPE = EntryType.ConfChange;

// ------------------------------------------------------------------ sizes

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  n = Math.floor(n / 0x10000000);
  while (n >= 1) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

/** Size of a uint field with a 1-byte tag, 0 when the value is the proto3 default. */
function uintField(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function lenField(len: number): number {
  return 1 + varintSize(len) + len;
}

function entrySize(e: Entry): number {
  return uintField(e.term) + uintField(e.index) + 1 + varintSize(e.type + 1) + (e.data.length === 0 ? 0 : lenField(e.data.length));
}

function packedSize(ids: number[]): number {
  let s = 0;
  for (const id of ids) s += varintSize(id);
  return s;
}

function confStateSize(c: ConfState): number {
  return (c.voters.length ? lenField(packedSize(c.voters)) : 0) + (c.learners.length ? lenField(packedSize(c.learners)) : 0);
}

function metadataSize(m: SnapshotMetadata): number {
  return uintField(m.index) + uintField(m.term) + lenField(confStateSize(m.confState));
}

function snapshotSize(s: Snapshot): number {
  return lenField(metadataSize(s.metadata)) + (s.data.length === 0 ? 0 : lenField(s.data.length));
}

function messageSize(group: number, m: Message): number {
  let s = uintField(group) + 1 + varintSize(m.type + 1);
  s += uintField(m.to) + uintField(m.from) + uintField(m.term) + uintField(m.logTerm) + uintField(m.index);
  for (const e of m.entries) s += lenField(entrySize(e));
  s += uintField(m.commit) + (m.reject ? 2 : 0) + uintField(m.rejectHint);
  if (m.context.length) s += lenField(m.context.length);
  if (m.snapshot) s += lenField(snapshotSize(m.snapshot));
  return s;
}

/**
 * Bytes one message adds to a batch on the wire. The transport uses it to split batches
 * under the gRPC message size limit before encoding.
 */
export function encodedMessageSize(gm: GroupMessage): number {
  return lenField(messageSize(gm.group, gm.message));
}

// ------------------------------------------------------------------ writer

class Writer {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(n: number): void {
    const buf = this.buf;
    while (n > 0x7fffffff) {
      buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    while (n > 0x7f) {
      buf[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[this.pos++] = n;
  }

  tag(field: number, wire: number): void {
    this.buf[this.pos++] = (field << 3) | wire;
  }

  uint(field: number, n: number): void {
    if (n === 0) return;
    this.tag(field, WIRE_VARINT);
    this.varint(n);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  len(field: number, n: number): void {
    this.tag(field, WIRE_LEN);
    this.varint(n);
  }
}

function checkUint(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new TransportError('DECODE_ERROR', `${what} must be a non-negative safe integer, got ${n}`);
}

function writeMessage(w: Writer, group: number, m: Message): void {
  w.uint(1, group);
  w.tag(2, WIRE_VARINT);
  w.varint(m.type + 1);
  w.uint(3, m.to);
  w.uint(4, m.from);
  w.uint(5, m.term);
  w.uint(6, m.logTerm);
  w.uint(7, m.index);
  for (const e of m.entries) {
    w.len(8, entrySize(e));
    w.uint(1, e.term);
    w.uint(2, e.index);
    w.tag(3, WIRE_VARINT);
    w.varint(e.type + 1);
    if (e.data.length) w.bytes(4, e.data);
  }
  w.uint(9, m.commit);
  if (m.reject) {
    w.tag(10, WIRE_VARINT);
    w.varint(1);
  }
  w.uint(11, m.rejectHint);
  if (m.context.length) w.bytes(12, m.context);
  if (m.snapshot) {
    const s = m.snapshot;
    w.len(13, snapshotSize(s));
    w.len(1, metadataSize(s.metadata));
    writeMetadataBody(w, s.metadata);
    if (s.data.length) w.bytes(2, s.data);
  }
}

function writeMetadataBody(w: Writer, md: SnapshotMetadata): void {
  w.uint(1, md.index);
  w.uint(2, md.term);
  const c = md.confState;
  w.len(3, confStateSize(c));
  if (c.voters.length) {
    w.len(1, packedSize(c.voters));
    for (const v of c.voters) w.varint(v);
  }
  if (c.learners.length) {
    w.len(2, packedSize(c.learners));
    for (const v of c.learners) w.varint(v);
  }
}

/** Encodes a batch as a raftd.v1.StreamRequest, in one exactly-sized buffer. */
export function encodeBatch(b: Batch): Uint8Array {
  checkUint(b.fromNode, 'fromNode');
  checkUint(b.toNode, 'toNode');
  checkUint(b.seq, 'seq');
  const cluster = textEncoder.encode(b.clusterId);
  const sizes = new Array<number>(b.messages.length);
  let body = uintField(b.fromNode) + uintField(b.toNode) + (cluster.length ? lenField(cluster.length) : 0) + uintField(b.seq);
  for (let i = 0; i < b.messages.length; i++) {
    const gm = b.messages[i]!;
    const s = messageSize(gm.group, gm.message);
    sizes[i] = s;
    body += lenField(s);
  }
  // Node's Buffer: grpc-js wants one, and allocUnsafe skips zero-filling bytes we overwrite.
  const out = Buffer.allocUnsafe(lenField(body));
  const w = new Writer(out);
  w.len(1, body);
  w.uint(1, b.fromNode);
  w.uint(2, b.toNode);
  if (cluster.length) w.bytes(3, cluster);
  w.uint(4, b.seq);
  for (let i = 0; i < b.messages.length; i++) {
    const gm = b.messages[i]!;
    w.len(5, sizes[i]!);
    writeMessage(w, gm.group, gm.message);
  }
  if (w.pos !== out.length) throw new Error(`codec bug: wrote ${w.pos} of ${out.length} bytes`);
  return out;
}

/** Encodes a raftd.v1.StreamResponse carrying BatchAck{seq}. */
export function encodeAck(seq: number): Uint8Array {
  const body = uintField(seq);
  const out = Buffer.allocUnsafe(lenField(body));
  const w = new Writer(out);
  w.len(1, body);
  w.uint(1, seq);
  return out;
}

// ------------------------------------------------------------------ reader

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  fail(what: string): never {
    throw new TransportError('DECODE_ERROR', `malformed raftd.v1 message: ${what} at byte ${this.pos}`);
  }

  varint(): number {
    const buf = this.buf;
    let result = 0;
    let shift = 0;
    // Fast path: up to 4 bytes fit in 28 bits, so bit operations are exact.
    for (; shift < 28; shift += 7) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = buf[this.pos++]!;
      result |= (b & 0x7f) << shift;
      if (b < 0x80) return result >>> 0;
    }
    let mul = 0x10000000;
    for (let i = 0; i < 6; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) this.fail('integer beyond 2^53');
        return result;
      }
      mul *= 0x80;
    }
    this.fail('varint too long');
  }

  /** Bounds of a length-delimited field; advances past it. */
  len(): number {
    const n = this.varint();
    const start = this.pos;
    if (n > this.end - start) this.fail('length beyond the end');
    this.pos = start + n;
    return start;
  }

  bytes(): Uint8Array {
    const start = this.len();
    return start === this.pos ? EMPTY : this.buf.subarray(start, this.pos);
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.len();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        this.fail(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) this.fail('truncated field');
  }
}

function expectWire(r: Reader, wire: number, want: number, field: string): void {
  if (wire !== want) r.fail(`field ${field} has wire type ${wire}`);
}

function readEntry(r: Reader, end: number): Entry {
  const e: Entry = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY };
  let typeSeen = false;
  while (r.pos < end) {
    const key = r.varint();
    const field = key >>> 3;
    const wire = key & 7;
    switch (field) {
      case 1: expectWire(r, wire, WIRE_VARINT, 'Entry.term'); e.term = r.varint(); break;
      case 2: expectWire(r, wire, WIRE_VARINT, 'Entry.index'); e.index = r.varint(); break;
      case 3: {
        expectWire(r, wire, WIRE_VARINT, 'Entry.type');
        const t = r.varint() - 1;
        if (t < 0 || t > MAX_ENTRY_TYPE) r.fail(`unknown entry type ${t + 1}`);
        e.type = t;
        typeSeen = true;
        break;
      }
      case 4: expectWire(r, wire, WIRE_LEN, 'Entry.data'); e.data = r.bytes(); break;
      default: r.skip(wire);
    }
  }
  if (!typeSeen) r.fail('entry without a type');
  return e;
}

function readConfState(r: Reader, end: number): ConfState {
  const c: ConfState = { voters: [], learners: [] };
  while (r.pos < end) {
    const key = r.varint();
    const field = key >>> 3;
    const wire = key & 7;
    if (field === 1 || field === 2) {
      const into = field === 1 ? c.voters : c.learners;
      if (wire === WIRE_VARINT) {
        // Unpacked repeated scalars are valid proto3 too.
        into.push(r.varint());
      } else {
        expectWire(r, wire, WIRE_LEN, 'ConfState ids');
        const start = r.len();
        const inner = new Reader(r.buf, start, r.pos);
        while (inner.pos < inner.end) into.push(inner.varint());
      }
    } else {
      r.skip(wire);
    }
  }
  return c;
}

function readMetadata(r: Reader, end: number): SnapshotMetadata {
  const m: SnapshotMetadata = { index: 0, term: 0, confState: { voters: [], learners: [] } };
  while (r.pos < end) {
    const key = r.varint();
    const field = key >>> 3;
    const wire = key & 7;
    switch (field) {
      case 1: expectWire(r, wire, WIRE_VARINT, 'SnapshotMetadata.index'); m.index = r.varint(); break;
      case 2: expectWire(r, wire, WIRE_VARINT, 'SnapshotMetadata.term'); m.term = r.varint(); break;
      case 3: {
        expectWire(r, wire, WIRE_LEN, 'SnapshotMetadata.conf_state');
        const start = r.len();
        const sub = new Reader(r.buf, start, r.pos);
        m.confState = readConfState(sub, r.pos);
        break;
      }
      default: r.skip(wire);
    }
  }
  return m;
}

function readSnapshot(r: Reader, end: number): Snapshot {
  const s: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: EMPTY };
  while (r.pos < end) {
    const key = r.varint();
    const field = key >>> 3;
    const wire = key & 7;
    if (field === 1) {
      expectWire(r, wire, WIRE_LEN, 'Snapshot.metadata');
      const start = r.len();
      s.metadata = readMetadata(new Reader(r.buf, start, r.pos), r.pos);
    } else if (field === 2) {
      expectWire(r, wire, WIRE_LEN, 'Snapshot.data');
      s.data = r.bytes();
    } else {
      r.skip(wire);
    }
  }
  return s;
}

function readMessage(r: Reader, end: number): GroupMessage {
  const m: Message = {
    type: MessageType.Vote, to: 0, from: 0, term: 0, logTerm: 0, index: 0, entries: [],
    commit: 0, reject: false, rejectHint: 0, context: EMPTY,
  };
  let group = 0;
  let typeSeen = false;
  while (r.pos < end) {
    const key = r.varint();
    const field = key >>> 3;
    const wire = key & 7;
    switch (field) {
      case 1: expectWire(r, wire, WIRE_VARINT, 'Message.group'); group = r.varint(); break;
      case 2: {
        expectWire(r, wire, WIRE_VARINT, 'Message.type');
        const t = r.varint() - 1;
        if (t < 0 || t > MAX_MESSAGE_TYPE) r.fail(`unknown message type ${t + 1}`);
        m.type = t;
        typeSeen = true;
        break;
      }
      case 3: expectWire(r, wire, WIRE_VARINT, 'Message.to'); m.to = r.varint(); break;
      case 4: expectWire(r, wire, WIRE_VARINT, 'Message.from'); m.from = r.varint(); break;
      case 5: expectWire(r, wire, WIRE_VARINT, 'Message.term'); m.term = r.varint(); break;
      case 6: expectWire(r, wire, WIRE_VARINT, 'Message.log_term'); m.logTerm = r.varint(); break;
      case 7: expectWire(r, wire, WIRE_VARINT, 'Message.index'); m.index = r.varint(); break;
      case 8: {
        expectWire(r, wire, WIRE_LEN, 'Message.entries');
        const start = r.len();
        m.entries.push(readEntry(new Reader(r.buf, start, r.pos), r.pos));
        break;
      }
      case 9: expectWire(r, wire, WIRE_VARINT, 'Message.commit'); m.commit = r.varint(); break;
      case 10: expectWire(r, wire, WIRE_VARINT, 'Message.reject'); m.reject = r.varint() !== 0; break;
      case 11: expectWire(r, wire, WIRE_VARINT, 'Message.reject_hint'); m.rejectHint = r.varint(); break;
      case 12: expectWire(r, wire, WIRE_LEN, 'Message.context'); m.context = r.bytes(); break;
      case 13: {
        expectWire(r, wire, WIRE_LEN, 'Message.snapshot');
        const start = r.len();
        m.snapshot = readSnapshot(new Reader(r.buf, start, r.pos), r.pos);
        break;
      }
      default: r.skip(wire);
    }
  }
  if (!typeSeen) r.fail('message without a type');
  return { group, message: m };
}

function readBatch(r: Reader, end: number): Batch {
  const b: Batch = { fromNode: 0, toNode: 0, clusterId: '', seq: 0, messages: [] };
  while (r.pos < end) {
    const key = r.varint();
    const field = key >>> 3;
    const wire = key & 7;
    switch (field) {
      case 1: expectWire(r, wire, WIRE_VARINT, 'MessageBatch.from_node'); b.fromNode = r.varint(); break;
      case 2: expectWire(r, wire, WIRE_VARINT, 'MessageBatch.to_node'); b.toNode = r.varint(); break;
      case 3: {
        expectWire(r, wire, WIRE_LEN, 'MessageBatch.cluster_id');
        const bytes = r.bytes();
        try {
          b.clusterId = textDecoder.decode(bytes);
        } catch {
          r.fail('cluster_id is not UTF-8');
        }
        break;
      }
      case 4: expectWire(r, wire, WIRE_VARINT, 'MessageBatch.seq'); b.seq = r.varint(); break;
      case 5: {
        expectWire(r, wire, WIRE_LEN, 'MessageBatch.messages');
        const start = r.len();
        b.messages.push(readMessage(new Reader(r.buf, start, r.pos), r.pos));
        break;
      }
      default: r.skip(wire);
    }
  }
  return b;
}

/**
 * Decodes a raftd.v1.StreamRequest. Entry data, contexts and snapshot data are views of
 * `bytes` (no copy): the caller must not reuse the buffer while the messages are alive.
 */
export function decodeBatch(bytes: Uint8Array): Batch {
  const r = new Reader(bytes, 0, bytes.length);
  let batch: Batch | undefined;
  while (r.pos < r.end) {
    const key = r.varint();
    if (key >>> 3 === 1) {
      expectWire(r, key & 7, WIRE_LEN, 'StreamRequest.batch');
      const start = r.len();
      batch = readBatch(new Reader(bytes, start, r.pos), r.pos);
    } else {
      r.skip(key & 7);
    }
  }
  if (!batch) return r.fail('StreamRequest without a batch');
  return batch;
}

/** Decodes a raftd.v1.StreamResponse: the acknowledged seq. */
export function decodeAck(bytes: Uint8Array): number {
  const r = new Reader(bytes, 0, bytes.length);
  let seq = 0;
  while (r.pos < r.end) {
    const key = r.varint();
    if (key >>> 3 === 1 && (key & 7) === WIRE_LEN) {
      const start = r.len();
      const inner = new Reader(bytes, start, r.pos);
      while (inner.pos < inner.end) {
        const k = inner.varint();
        if (k >>> 3 === 1 && (k & 7) === WIRE_VARINT) seq = inner.varint();
        else inner.skip(k & 7);
      }
    } else {
      r.skip(key & 7);
    }
  }
  return seq;
}
