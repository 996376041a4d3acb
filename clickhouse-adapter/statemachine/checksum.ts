// Replica checksums: per group, per user table, count() and sum(cityHash64(<all stored columns>)).
// Both are independent of part layout and row order (measured: identical on replicas with different
// parts), so two replicas at the same applied index must print the same lines.

import type { ClickHouseEngine } from '../engine/types.js';
import { quoteIdent, quoteString } from '../engine/sql.js';
import { APPLIED_TABLE, DATA_DB_REGEXP, isInternalTable, parseDbName } from './naming.js';

export interface TableChecksum {
  table: string;
  rows: string;
  hash: string;
}

export interface GroupChecksum {
  group: number;
  lastLogIndex: number;
  tables: TableChecksum[];
}

function lines(buf: Buffer): string[][] {
  return buf.toString('utf8').split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

/** Checksums of every user table with data in database `db` (views and bookkeeping excluded). */
export async function groupChecksum(engine: ClickHouseEngine, db: string): Promise<TableChecksum[]> {
  const tables = lines(await engine.query(
    `SELECT name FROM system.tables WHERE database = ${quoteString(db)} AND engine NOT LIKE '%View' AND engine != 'Dictionary' ORDER BY name`,
    { format: 'TabSeparated' })).map((r) => r[0]!).filter((t) => !isInternalTable(t));
  const out: TableChecksum[] = [];
  for (const t of tables) {
    const cols = lines(await engine.query(
      `SELECT name FROM system.columns WHERE database = ${quoteString(db)} AND table = ${quoteString(t)}
       AND default_kind NOT IN ('ALIAS', 'EPHEMERAL') ORDER BY position`, { format: 'TabSeparated' })).map((r) => quoteIdent(r[0]!));
    const row = lines(await engine.query(
      `SELECT count(), sum(cityHash64(${cols.join(', ')})) FROM ${db}.${quoteIdent(t)}`, { format: 'TabSeparated' }))[0] ?? ['0', '0'];
    out.push({ table: t, rows: row[0]!, hash: row[1]! });
  }
  return out;
}

/** Checksums of every group database on this engine (databases matching DATA_DB_REGEXP). */
export async function groupChecksums(engine: ClickHouseEngine): Promise<GroupChecksum[]> {
  const dbs = lines(await engine.query(
    `SELECT name FROM system.databases WHERE match(name, ${quoteString(DATA_DB_REGEXP)})`, { format: 'TabSeparated' })).map((r) => r[0]!);
  const out: GroupChecksum[] = [];
  for (const db of dbs) {
    const p = parseDbName(db);
    if (!p || p.kind !== 'data') continue;
    const idx = lines(await engine.query(
      `SELECT max(idx) FROM ${db}.${APPLIED_TABLE} WHERE state = 1`, { format: 'TabSeparated' }).catch(() => Buffer.from('0\n')));
    out.push({ group: p.group, lastLogIndex: Number(idx[0]?.[0] ?? 0), tables: await groupChecksum(engine, db) });
  }
  return out.sort((a, b) => a.group - b.group);
}

/** One line per table: `g<group> <table> rows=<n> hash=<h>` (and `g<group> index=<i>`), stable order. */
export function formatChecksums(groups: GroupChecksum[]): string {
  const out: string[] = [];
  for (const g of groups) {
    out.push(`g${g.group} index=${g.lastLogIndex}`);
    for (const t of g.tables) out.push(`g${g.group} ${t.table} rows=${t.rows} hash=${t.hash}`);
  }
  return out.join('\n') + (out.length ? '\n' : '');
}
