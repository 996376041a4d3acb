// Splitting one INSERT's rows by the shard key onto the ring. Each group gets one payload (one entry,
// applied atomically in that group); the insert across groups is not atomic (docs/clickhouse.md).
//
// The shard value of a row is hashed in one canonical text form, so the same value lands in the same
// group whatever the format it arrived in: JSON numbers as their decimal text (JSON.parse then
// String(), so 1, 1.0 and 1e0 agree), strings as themselves, booleans as "true"/"false", null as
// "\N" (ClickHouse's text NULL), arrays/objects as their JSON.

import { HashRing, RouterError } from './ring.js';

export function shardText(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

export interface SplitResult {
  /** group -> the rows of that group, in the input order, as a JSONEachRow payload. */
  parts: Map<number, Buffer>;
  rows: number;
}

/**
 * Splits a JSONEachRow payload (one JSON object per line; blank lines ignored) by `key`. A row
 * without the key is refused (ClickHouse would give it the column's default, which the gateway cannot
 * know to hash; refusing is exact). Rows are copied byte for byte: no re-serialisation.
 */
export function splitJsonEachRow(ring: HashRing, payload: Uint8Array, key: string): SplitResult {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const chunks = new Map<number, Buffer[]>();
  let rows = 0;
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    const line = buf.subarray(start, end);
    start = end + 1;
    const text = line.toString('utf8').trim();
    if (text === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      throw new RouterError('ROUTER_BAD_ROW', `row ${rows + 1} is not JSON: ${(e as Error).message}`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new RouterError('ROUTER_BAD_ROW', `row ${rows + 1} is not a JSON object`);
    if (!Object.prototype.hasOwnProperty.call(row, key)) throw new RouterError('ROUTER_NO_SHARD_KEY', `row ${rows + 1} has no value for the shard key ${key}`);
    const g = ring.groupOf(shardText((row as Record<string, unknown>)[key]));
    let list = chunks.get(g);
    if (!list) chunks.set(g, (list = []));
    list.push(line, NL);
    rows++;
  }
  const parts = new Map<number, Buffer>();
  for (const [g, list] of chunks) parts.set(g, Buffer.concat(list));
  return { parts, rows };
}

const NL = Buffer.from('\n');
