// The coordinator's rewrite of a consistent read over placed groups (issue 21): each user table the
// read names becomes a subquery that is the union of its groups — the ones held here through a merge()
// of their local databases, every remote one through a url() table function that pulls the rows, in
// ClickHouse's Native format, from a member holding that group (groups.ts legSource). ClickHouse runs
// everything else (joins, aggregation, ORDER BY, the output format) as it would over a local table.
//
// Pushed down to each remote leg: the columns the read names (every stored column for `*`), and, for
// a read of one table with one SELECT, its WHERE when it names only the table's own columns (it then
// filters that group's rows alone, so running it on the member is the same filter; the coordinator
// applies it again over the union anyway).

import { quoteIdent, quoteString } from '../engine/sql.js';
import { identifierName, significant, tokenize, type Token } from '../sql/scanner.js';
import { NOT_ALIAS } from '../gateway/catalog.js';

export interface PlacedTable {
  /** Stored columns in order (no ALIAS), with their types and default kind. */
  columns: ReadonlyArray<{ name: string; type: string; kind: string }>;
  /** The groups holding its rows: every group when sharded, else its home group. */
  groups: readonly number[];
}

export interface RewriteInput {
  sql: string;
  database: string;
  userDb: string;
  tables: ReadonlyMap<string, PlacedTable>;
  /** Whether a WHERE may be pushed down (the text is ClickHouse's canonical form: aliases with AS). */
  allowWhere: boolean;
  isLocal(group: number): boolean;
  /** The table function reading `legSql` (a SELECT in the group's database) from the member holding `group`. */
  remote(group: number, legSql: string, structure: string): string;
}

export interface Rewritten {
  sql: string;
  /** Per table: the columns and WHERE sent to the remote legs (tests, the query log). */
  pushed: Map<string, { columns: string[]; where: string | undefined }>;
}

/** Words a pushed-down WHERE may hold besides column names and function calls. */
const WHERE_WORDS = new Set(['AND', 'OR', 'NOT', 'IN', 'BETWEEN', 'LIKE', 'ILIKE', 'IS', 'NULL', 'TRUE', 'FALSE', 'CASE', 'WHEN', 'THEN', 'ELSE', 'END']);
/** Clauses after WHERE at the same level. */
const AFTER_WHERE = new Set(['GROUP', 'ORDER', 'LIMIT', 'HAVING', 'SETTINGS', 'FORMAT', 'WINDOW', 'QUALIFY', 'INTO', 'UNION', 'OFFSET', 'EXCEPT', 'INTERSECT']);

function regexEscape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

function nameOf(t: Token | undefined): string | undefined {
  if (!t) return undefined;
  if (t.kind === 'word') return t.text;
  if (t.kind === 'quoted') return identifierName(t.text);
  return undefined;
}

interface Ref { start: number; end: number; table: string; aliased: boolean }

/** References to the placed tables in FROM / JOIN position. */
function tableRefs(sig: Token[], input: RewriteInput): Ref[] {
  const refs: Ref[] = [];
  for (let k = 1; k < sig.length; k++) {
    const prev = sig[k - 1]!.text.toUpperCase();
    if (prev !== 'FROM' && prev !== 'JOIN') continue;
    const first = sig[k]!;
    let name = nameOf(first);
    if (name === undefined) continue;
    let last = first;
    let db = input.database;
    if (sig[k + 1]?.text === '.' && nameOf(sig[k + 2]) !== undefined) {
      db = name;
      last = sig[k + 2]!;
      name = nameOf(last)!;
    }
    if (db !== input.userDb || !input.tables.has(name)) continue;
    const after = sig[sig.indexOf(last) + 1];
    if (after?.text === '(') continue; // a function of that name
    const aliased = after !== undefined && (after.text.toUpperCase() === 'AS' || ((after.kind === 'word' || after.kind === 'quoted') && !NOT_ALIAS.has(after.text.toUpperCase())));
    refs.push({ start: first.start, end: last.end, table: name, aliased });
  }
  return refs;
}

/** The WHERE of a one-table, one-SELECT read, when it names only `columns`; else undefined. */
function pushableWhere(sql: string, sig: Token[], columns: ReadonlySet<string>): string | undefined {
  const upper = sig.map((t) => (t.kind === 'word' ? t.text.toUpperCase() : ''));
  if (upper.filter((w) => w === 'SELECT').length !== 1) return undefined;
  if (upper.some((w) => w === 'JOIN' || w === 'ARRAY' || w === 'PREWHERE' || w === 'UNION')) return undefined;
  // An alias of the same name as a column is what WHERE would mean (ClickHouse resolves aliases first).
  for (let k = 0; k + 1 < sig.length; k++) if (upper[k] === 'AS' && columns.has(nameOf(sig[k + 1]) ?? '')) return undefined;
  let depth = 0;
  let from = -1;
  let to = sig.length;
  for (let k = 0; k < sig.length; k++) {
    const t = sig[k]!;
    if (t.text === '(') depth++;
    else if (t.text === ')') depth--;
    else if (depth === 0 && from < 0 && upper[k] === 'WHERE') from = k + 1;
    else if (depth === 0 && from >= 0 && (AFTER_WHERE.has(upper[k]!) || t.text === ';')) { to = k; break; }
  }
  if (from < 0 || from >= to) return undefined;
  for (let k = from; k < to; k++) {
    const t = sig[k]!;
    if (t.kind === 'punct' && (t.text === '{' || t.text === '?' || t.text === '.')) return undefined;
    if (t.kind !== 'word' && t.kind !== 'quoted') continue;
    if (sig[k + 1]?.text === '(') continue; // a function call
    if (t.kind === 'word' && WHERE_WORDS.has(upper[k]!)) continue;
    if (!columns.has(nameOf(t)!)) return undefined;
  }
  return sql.slice(sig[from]!.start, sig[to - 1]!.end);
}

/** `input.sql` with every placed table read as the union of its groups (see the file comment). */
export function rewritePlacedRead(input: RewriteInput): Rewritten {
  const tokens = tokenize(input.sql);
  const sig = significant(tokens);
  const refs = tableRefs(sig, input);
  const named = new Set(sig.map((t) => nameOf(t)).filter((n): n is string => n !== undefined));
  const star = sig.some((t) => t.text === '*');
  const pushed = new Map<string, { columns: string[]; where: string | undefined }>();
  const sources = new Map<string, string>();
  for (const table of new Set(refs.map((r) => r.table))) {
    const t = input.tables.get(table)!;
    let cols = t.columns.filter((c) => named.has(c.name) || (star && (c.kind === '' || c.kind === 'DEFAULT')));
    if (cols.length === 0) cols = t.columns.slice(0, 1);
    const list = cols.map((c) => quoteIdent(c.name)).join(', ');
    const structure = cols.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
    const where = refs.length === 1 && input.allowWhere ? pushableWhere(input.sql, sig, new Set(t.columns.map((c) => c.name))) : undefined;
    pushed.set(table, { columns: cols.map((c) => c.name), where });
    const local = t.groups.filter((g) => input.isLocal(g));
    const parts: string[] = [];
    if (local.length) {
      parts.push(`SELECT ${list} FROM merge(REGEXP(${quoteString(`^rh_g(${local.join('|')})$`)}), ${quoteString('^' + regexEscape(table) + '$')})`);
    }
    for (const g of t.groups.filter((x) => !input.isLocal(x))) {
      const leg = `SELECT ${list} FROM ${quoteIdent(table)}${where ? ` WHERE ${where}` : ''}`;
      parts.push(`SELECT ${list} FROM ${input.remote(g, leg, structure)}`);
    }
    sources.set(table, `(${parts.join(' UNION ALL ')})`);
  }
  let out = '';
  let at = 0;
  for (const r of refs) {
    out += input.sql.slice(at, r.start) + sources.get(r.table)! + (r.aliased ? '' : ` AS ${quoteIdent(r.table)}`);
    at = r.end;
  }
  return { sql: out + input.sql.slice(at), pushed };
}
