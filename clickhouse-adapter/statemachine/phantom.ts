// Finding the block ClickHouse remembers but never stored, after a crash inside an insert.
//
// Non-replicated deduplication (MergeTreeSink) appends a block's id to the table's deduplication log
// BEFORE it renames the new part into the table. A kill -9 between the two leaves a "phantom": the id
// is remembered, while the part, still a tmp_insert_* directory, is deleted at the next start. Replaying
// that insert with the same token is then dropped as a duplicate and its rows are lost for good.
// Measured on chdb 26.7: 2 lost rows in about 70 random kills of a process inserting back to back
// (docs/clickhouse.md, "Exactly once"), and seen once in a 10-minute RaftHouse chaos run.
//
// What makes a phantom findable:
// - applies of a group are serialised, so a crash interrupts at most one insert per group, and that
//   insert was the last writer of each table it touched: a phantom is the LAST record of a table's log;
// - the part it names is covered by no part of the table (its block number is above every part that
//   survived; nothing has been inserted since the restart);
// - its block id is `<partition id>_<hash of the token>`, independent of the table (measured on 26.7),
//   so the in-flight entry's token identifies it. The hash is learnt from ClickHouse itself, by a probe
//   insert with the same token into a scratch table, rather than re-implemented.
// A last record whose part is missing but whose hash is another entry's is not a phantom (a part emptied
// by a DELETE or a TTL): the in-flight insert did not reach that table, and its replay inserts it.
//
// This reads the engine's files, so it needs the embedded engine (the same limit as applied-file.ts).

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouseEngine } from '../engine/types.js';
import { queryRows, quoteString } from '../engine/sql.js';
import { APPLIED_TABLE, INTERNAL_TABLE_PREFIX } from './naming.js';

/** Scratch tables of the repair, inside the group database (internal names: never snapshotted or checksummed). */
export const PROBE_TABLE = `${INTERNAL_TABLE_PREFIX}probe`;
export const REPAIR_TABLE = `${INTERNAL_TABLE_PREFIX}repair`;

export interface DedupRecord {
  /** 1: a block was added; 2: parts were dropped. */
  op: number;
  part: string;
  blockId: string;
}

export interface Phantom {
  table: string;
  partitionId: string;
  /** Materialized views read from the table: repairing it would re-run them (see statemachine.ts). */
  hasViews: boolean;
}

const LOG_FILE_RE = /^deduplication_log_(\d+)\.txt$/;

/** Every complete record of a table's deduplication log, oldest first (none when it has no log). */
export function dedupRecords(tableDataPath: string): DedupRecord[] {
  const dir = join(tableDataPath, 'deduplication_logs');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files = names.flatMap((name) => {
    const m = LOG_FILE_RE.exec(name);
    return m ? [{ n: Number(m[1]), name }] : [];
  }).sort((a, b) => a.n - b.n);
  const out: DedupRecord[] = [];
  for (const f of files) {
    const lines = readFileSync(join(dir, f.name), 'utf8').split('\n');
    lines.pop(); // text after the last newline is not a complete record
    for (const line of lines) {
      const fields = line.split('\t');
      if (fields.length === 3 && /^\d+$/.test(fields[0]!)) out.push({ op: Number(fields[0]), part: fields[1]!, blockId: fields[2]! });
    }
  }
  return out;
}

/** The last complete record (after a rotation the newest file may still be empty: then an older one's). */
export function lastDedupRecord(tableDataPath: string): DedupRecord | undefined {
  const records = dedupRecords(tableDataPath);
  return records[records.length - 1];
}

/** `<partition id>_<min block>_<max block>_<level>[_<mutation>]`. */
export function parsePartName(name: string): { partitionId: string; min: number; max: number } | undefined {
  const m = /^(.+?)_(\d+)_(\d+)_(\d+)(?:_(\d+))?$/.exec(name);
  return m ? { partitionId: m[1]!, min: Number(m[2]), max: Number(m[3]) } : undefined;
}

/** The token part of a block id (`<partition id>_<hash>`). */
export function blockIdHash(blockId: string): string {
  const cut = blockId.indexOf('_');
  return cut < 0 ? blockId : blockId.slice(cut + 1);
}

/** The hash part of the block id ClickHouse gives an insert with each token, in order. */
async function tokenHashes(engine: ClickHouseEngine, db: string, tokens: string[]): Promise<string[]> {
  const probe = `${db}.${PROBE_TABLE}`;
  await engine.exec(`DROP TABLE IF EXISTS ${probe} SYNC`);
  await engine.exec(`CREATE TABLE ${probe} (x UInt8) ENGINE = MergeTree ORDER BY x
    SETTINGS non_replicated_deduplication_window = ${tokens.length + 10}`);
  try {
    for (const token of tokens) {
      await engine.insert(`INSERT INTO ${probe} FORMAT JSONEachRow`, Buffer.from('{"x":0}\n'),
        { settings: { insert_deduplicate: 1, insert_deduplication_token: token } });
    }
    const path = (await queryRows<{ p: string }>(engine,
      `SELECT data_paths[1] AS p FROM system.tables WHERE database = ${quoteString(db)} AND name = ${quoteString(PROBE_TABLE)}`))[0]?.p;
    const hashes = (path ? dedupRecords(path) : []).map((r) => blockIdHash(r.blockId));
    if (hashes.length !== tokens.length || new Set(hashes).size !== tokens.length) {
      throw new Error(`cannot learn ClickHouse's block ids: ${tokens.length} probe inserts left ${hashes.length} distinct records`);
    }
    return hashes;
  } finally {
    await engine.exec(`DROP TABLE IF EXISTS ${probe} SYNC`);
  }
}

export interface PhantomSearch {
  phantoms: Phantom[];
  /**
   * Tables whose last record names a missing part with another token: a part a DELETE or a TTL
   * emptied, or a block of a materialized view lost in the crash (its token is derived, not ours).
   */
  unexplained: Array<{ table: string; part: string }>;
}

/**
 * The phantoms an insert with one of `tokens` (the in-flight entry's, and its repairs') may have left in
 * the tables of `db`. Runs at a group's first load after a crash, before anything is inserted.
 */
export async function findPhantoms(engine: ClickHouseEngine, db: string, tokens: string[]): Promise<PhantomSearch> {
  // Scratch tables a crash left behind (a repair or a probe cut short).
  for (const t of [REPAIR_TABLE, PROBE_TABLE]) await engine.exec(`DROP TABLE IF EXISTS ${db}.${t} SYNC`);
  const tables = await queryRows<{ name: string; path: string; views: number }>(engine,
    `SELECT name, data_paths[1] AS path, length(dependencies_table) AS views FROM system.tables
     WHERE database = ${quoteString(db)} AND engine LIKE '%MergeTree' AND name NOT IN (${quoteString(APPLIED_TABLE)}, ${quoteString(PROBE_TABLE)})
     ORDER BY name`);
  const candidates: Array<Phantom & { hash: string; part: string }> = [];
  for (const t of tables) {
    const rec = t.path ? lastDedupRecord(t.path) : undefined;
    const part = rec && rec.op === 1 ? parsePartName(rec.part) : undefined;
    if (!rec || !part) continue;
    const covering = await queryRows<{ c: number }>(engine,
      `SELECT count() AS c FROM system.parts WHERE database = ${quoteString(db)} AND table = ${quoteString(t.name)} AND active
       AND partition_id = ${quoteString(part.partitionId)} AND min_block_number <= ${part.min} AND max_block_number >= ${part.max}`);
    if ((covering[0]?.c ?? 0) > 0) continue;
    candidates.push({ table: t.name, partitionId: part.partitionId, hasViews: t.views > 0, hash: blockIdHash(rec.blockId), part: rec.part });
  }
  if (candidates.length === 0) return { phantoms: [], unexplained: [] };
  const hashes = new Set(await tokenHashes(engine, db, tokens));
  return {
    phantoms: candidates.filter((c) => hashes.has(c.hash)).map(({ table, partitionId, hasViews }) => ({ table, partitionId, hasViews })),
    unexplained: candidates.filter((c) => !hashes.has(c.hash)).map(({ table, part }) => ({ table, part })),
  };
}
