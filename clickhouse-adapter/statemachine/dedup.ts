// Client-retry deduplication of INSERTs (docs/clickhouse.md, "Retry-safe inserts").
//
// Each insert entry already applies exactly once under its own per-entry token (statemachine.ts). A
// client that retries an INSERT after an unknown outcome sends a NEW entry, though: what keeps its rows
// from landing twice is a block id derived from the entry alone, remembered per table in the group's
// `_rh_dedup` registry, the way a ReplicatedMergeTree remembers its blocks in Keeper:
// - with `insert_deduplication_token`: hash(token, group) — each group's part of a sharded insert
//   deduplicates on its own;
// - without: hash(the INSERT's column list and format, the entry's settings, the data bytes) — an
//   identical block.
// As in ClickHouse, the id does not name the table: the registry remembers blocks per table, so a
// RENAME carries a table's blocks to its new name.
// `insert_deduplicate = 0` turns it off for that insert. INSERT ... SELECT has no data in the entry to
// hash: it deduplicates only with a token.
//
// The registry is an ordinary table of the group's database: its rows written before the index of the
// inserts they remember is recorded, read at apply time (cached per table in the group state), carried
// in snapshots, the same on every replica, so every replica makes the same decision. ClickHouse's own non_replicated_deduplication_window was not used for this: its log lives in
// files beside the parts, is NOT in a snapshot (a replica restored from one would insert the retry the
// others dropped), and already serves the per-entry tokens (docs/design-notes.md).

import { createHash } from 'node:crypto';
import type { Settings } from '../engine/types.js';
import { INTERNAL_TABLE_PREFIX } from './naming.js';

export const DEDUP_TABLE = `${INTERNAL_TABLE_PREFIX}dedup`;

/** Registry rows: a remembered block, or a marker that forgets every earlier block of the table. */
export const DEDUP_BLOCK = 0;
export const DEDUP_CLEAR = 1;

/** ClickHouse's replicated_deduplication_window default: the newest blocks per table remembered. */
export const DEFAULT_INSERT_DEDUP_WINDOW = 1000;

/** Settings about deduplication and asynchronous inserts: they decide the block id's mode, never its hash. */
const DEDUP_SETTINGS = new Set(['insert_deduplication_token', 'insert_deduplicate', 'async_insert', 'wait_for_async_insert']);

export type DedupMode = { mode: 'off' } | { mode: 'token'; token: string } | { mode: 'data' };

function falsy(v: string | number | boolean | undefined): boolean {
  return v !== undefined && /^(0|false)$/i.test(String(v).trim().replace(/^'(.*)'$/, '$1'));
}

/** How an insert with these (entry) settings deduplicates. */
export function dedupMode(settings: Settings): DedupMode {
  if (falsy(settings.insert_deduplicate)) return { mode: 'off' };
  const token = settings.insert_deduplication_token;
  if (token !== undefined && String(token) !== '') return { mode: 'token', token: String(token) };
  return { mode: 'data' };
}

export interface BlockSource {
  group: number;
  /** The INSERT text after its table name: column list, FORMAT (qualifyInsert's tail). */
  columnsAndFormat: string;
  /** The entry's own settings (the ones that change how data is parsed are part of the block). */
  settings: Settings;
  payload: Uint8Array;
}

/** Length-prefixed fields: no two different field lists hash the same bytes. */
function hashFields(fields: Array<string | Uint8Array>): string {
  const h = createHash('sha256');
  for (const f of fields) {
    const bytes = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(bytes.byteLength));
    h.update(len);
    h.update(bytes);
  }
  return h.digest('hex');
}

/** Settings other than the deduplication ones, in name order, as text. */
function canonicalSettings(settings: Settings): string {
  return JSON.stringify(Object.keys(settings).filter((k) => !DEDUP_SETTINGS.has(k)).sort().map((k) => [k, String(settings[k])]));
}

/**
 * The block id of an insert entry, or undefined when it does not deduplicate (`insert_deduplicate=0`,
 * or INSERT ... SELECT without a token). Depends on the entry and the group only.
 */
export function blockId(src: BlockSource): string | undefined {
  const m = dedupMode(src.settings);
  if (m.mode === 'off') return undefined;
  if (m.mode === 'token') return `t_${hashFields(['token', m.token, String(src.group)])}`;
  if (src.payload.byteLength === 0) return undefined;
  return `d_${hashFields(['data', src.columnsAndFormat.trim(), canonicalSettings(src.settings), src.payload])}`;
}

/** The registry's definition (no deduplication of its own: a replayed row is tolerated, see seenQuery). */
export function createDedupTableSql(db: string): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.${DEDUP_TABLE} (tbl String, idx UInt64, kind UInt8, block_id String)
    ENGINE = MergeTree ORDER BY (tbl, idx)`;
}
