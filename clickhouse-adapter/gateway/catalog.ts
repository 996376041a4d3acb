// The system catalogs as the user sees the database (docs/clickhouse.md, "System tables").
//
// Physically a user table t lives as rh_g<home>.t (or in every group when sharded) and is read through
// the Merge view <userDb>.t; the replica also keeps RaftHouse's own tables (_rh_*), snapshot and
// restore databases (rh_snap_*, rh_restore_*, rh_old_*) and the gateway's scratch and local
// databases. A read of system.tables / system.columns / system.databases is rewritten so each user
// table appears once, under the user database, as it was created (its MergeTree engine, not the Merge
// view; the row and byte totals summed over its groups), and everything internal is hidden. A read of
// system.query_log reads the gateway's own log of the caller's queries (query-log.ts).
//
// The rewrite replaces each `system.<catalog>` in the text by a subquery over the real table with the
// same columns (what processes.ts does for system.processes). A statement that names a catalog any
// other way (unqualified under database=system) is refused rather than guessed at.

import { quoteString } from '../engine/sql.js';
import { DATA_DB_REGEXP, INTERNAL_TABLE_PREFIX } from '../statemachine/naming.js';
import { CODES } from '../engine/codes.js';
import { GatewayError } from './errors.js';
import { significant, tokenize } from '../sql/scanner.js';
import type { ParsedStatement } from './parse.js';

/** Databases of this node that are not the user's: the gateway's scratch space and its query log. */
export const SCRATCH_DB = 'rafthouse_scratch';
export const LOCAL_DB = 'rafthouse_local';

export type Catalog = 'tables' | 'columns' | 'databases' | 'query_log';
const CATALOGS: ReadonlySet<string> = new Set<Catalog>(['tables', 'columns', 'databases', 'query_log']);

/** Databases hidden from every catalog: RaftHouse's physical databases and the gateway's own. */
function hiddenDb(column: string): string {
  return `(match(${column}, '^rh_') OR ${column} IN (${quoteString(SCRATCH_DB)}, ${quoteString(LOCAL_DB)}))`;
}

/** `rh_g<n>.` inside a definition, as the user's database. */
function unqualify(column: string, userDb: string): string {
  return `replaceRegexpAll(${column}, '\\\\brh_g[0-9]+\\\\.', ${quoteString(userDb.replace(/\\/g, '\\\\') + '.')})`;
}

export interface CatalogSources {
  userDb: string;
  /** The caller's rows of the query log (query-log.ts). */
  queryLog: (user: string) => string;
}

/** The subquery that stands for `system.<name>` in a user's read. */
export function catalogSource(name: Catalog, src: CatalogSources, user: string): string {
  const db = quoteString(src.userDb);
  const data = `match(database, ${quoteString(DATA_DB_REGEXP)})`;
  const own = `NOT startsWith(%s, ${quoteString(INTERNAL_TABLE_PREFIX)})`;
  switch (name) {
    case 'tables':
      // One row per user table (the first group's, ordered by name and database), the totals summed
      // over the groups that hold it; then every other database but the hidden ones and the user's own
      // (which holds only the Merge views).
      return `(SELECT * EXCEPT (_rh_rows, _rh_bytes) REPLACE (${db} AS database, CAST(_rh_rows, 'Nullable(UInt64)') AS total_rows,
          CAST(_rh_bytes, 'Nullable(UInt64)') AS total_bytes, ${unqualify('create_table_query', src.userDb)} AS create_table_query,
          ${unqualify('as_select', src.userDb)} AS as_select)
        FROM (SELECT *, sum(total_rows) OVER (PARTITION BY name) AS _rh_rows, sum(total_bytes) OVER (PARTITION BY name) AS _rh_bytes
          FROM system.tables WHERE ${data} AND ${own.replace('%s', 'name')} ORDER BY name, database LIMIT 1 BY name)
        UNION ALL SELECT * FROM system.tables WHERE NOT ${hiddenDb('database')} AND database != ${db})`;
    case 'columns':
      // REPLACE one level up: ClickHouse's WHERE sees the SELECT list's aliases, `database` included.
      return `(SELECT * REPLACE (${db} AS database) FROM (SELECT * FROM system.columns WHERE ${data} AND ${own.replace('%s', 'table')}
          ORDER BY table, position, database LIMIT 1 BY table, name)
        UNION ALL SELECT * FROM system.columns WHERE NOT ${hiddenDb('database')} AND database != ${db})`;
    case 'databases':
      return `(SELECT * FROM system.databases WHERE NOT ${hiddenDb('name')})`;
    case 'query_log':
      return src.queryLog(user);
  }
}

const PLAIN_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `SHOW CREATE TABLE t` of a user table as the table was created (its definition from the user's
 * system.tables, see catalogSource), not the Merge read view's; undefined for anything else (another
 * database, a session's temporary table, a name that needs quoting): ClickHouse answers those itself.
 * A table that does not exist is 60 UNKNOWN_TABLE.
 */
export function showCreateAsCreated(stmt: ParsedStatement, database: string, userDb: string, temporary: ReadonlySet<string>): string | undefined {
  if (stmt.ast.type !== 'ShowCreateTableQuery' || !/^SHOW CREATE (TABLE )?/i.test(stmt.canonical)) return undefined;
  const parts = stmt.ast.arg.trim().split(/\s+/);
  const table = parts.pop();
  const db = parts.pop() ?? database;
  if (!table || parts.length > 0 || db !== userDb || !PLAIN_NAME_RE.test(table) || temporary.has(table.toLowerCase())) return undefined;
  const format = /\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*$/i.exec(stmt.canonical)?.[1];
  const missing = `Table ${userDb}.${table} does not exist`;
  return `SELECT any(create_table_query) AS statement FROM system.tables WHERE database = ${quoteString(userDb)} AND name = ${quoteString(table)}
    HAVING throwIf(count() = 0, ${quoteString(missing)}, toInt32(60)) = 0 SETTINGS allow_custom_error_code_in_throwif = 1${format ? ` FORMAT ${format}` : ''}`;
}

/** Words after a table expression that are not its alias. */
export const NOT_ALIAS = new Set([
  'WHERE', 'PREWHERE', 'GROUP', 'ORDER', 'LIMIT', 'OFFSET', 'FORMAT', 'SETTINGS', 'JOIN', 'INNER', 'LEFT', 'RIGHT', 'FULL', 'CROSS',
  'ARRAY', 'UNION', 'EXCEPT', 'INTERSECT', 'ON', 'USING', 'HAVING', 'WINDOW', 'FINAL', 'SAMPLE', 'INTO', 'GLOBAL', 'ANY', 'ALL',
  'ASOF', 'SEMI', 'ANTI', 'PASTE', 'QUALIFY', 'LOCAL',
]);

/** The catalogs `sql` reads as `system.<name>`. */
export function catalogsIn(sql: string): Set<Catalog> {
  const toks = significant(tokenize(sql));
  const out = new Set<Catalog>();
  for (let i = 0; i + 2 < toks.length; i++) {
    if (identName(toks[i]!) === 'system' && toks[i + 1]!.text === '.') {
      const n = identName(toks[i + 2]!);
      if (CATALOGS.has(n)) out.add(n as Catalog);
    }
  }
  return out;
}

function identName(t: { kind: string; text: string }): string {
  if (t.kind === 'quoted') return t.text.slice(1, -1).toLowerCase();
  return t.kind === 'word' ? t.text.toLowerCase() : '';
}

/**
 * `sql` with every `system.tables`, `system.columns`, `system.databases` and `system.query_log`
 * replaced by the user's view of it (catalogSource). Refuses a statement that reads one of them by
 * another name (database=system and an unqualified name).
 */
export function rewriteCatalogs(sql: string, stmt: ParsedStatement, database: string, src: CatalogSources, user: string): string {
  const tokens = tokenize(sql);
  const sig = tokens.map((t, i) => ({ t, i })).filter((x) => x.t.kind !== 'space' && x.t.kind !== 'comment');
  let out = '';
  let at = 0;
  let replaced = 0;
  for (let k = 0; k + 2 < sig.length; k++) {
    const a = sig[k]!.t;
    const dot = sig[k + 1]!.t;
    const b = sig[k + 2]!.t;
    if (identName(a) !== 'system' || dot.text !== '.' || !CATALOGS.has(identName(b))) continue;
    // `system.tables.name` (a qualified column) is not a table reference.
    if (sig[k + 3]?.t.text === '.') continue;
    const name = identName(b) as Catalog;
    const next = sig[k + 3]?.t;
    const aliased = next !== undefined && (next.text.toUpperCase() === 'AS' || ((next.kind === 'word' || next.kind === 'quoted') && !NOT_ALIAS.has(next.text.toUpperCase())));
    out += sql.slice(at, a.start) + catalogSource(name, src, user) + (aliased ? '' : ` AS ${name}`);
    at = b.end;
    replaced++;
    k += 2;
  }
  const unqualified = stmt.tables.some((t) => t.database === undefined && database.toLowerCase() === 'system' && CATALOGS.has(t.table.toLowerCase()));
  if (unqualified) {
    throw new GatewayError(CODES.ACCESS_DENIED, 'read the system catalogs as system.tables, system.columns, system.databases, system.query_log (RaftHouse shows them as the user\'s database)');
  }
  return replaced ? out + sql.slice(at) : sql;
}
