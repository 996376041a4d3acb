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
import { CodedError } from '../engine/errors.js';
import { CODES } from '../engine/codes.js';

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

/** Keywords that end a FROM clause (walking back from a comma: the clause the comma is in). */
const CLAUSE_WORDS = new Set(['FROM', 'JOIN', 'SELECT', 'WHERE', 'PREWHERE', 'GROUP', 'ORDER', 'HAVING', 'LIMIT', 'ON', 'USING', 'SETTINGS', 'WITH', 'UNION', 'BY', 'ARRAY', 'QUALIFY', 'WINDOW', 'FORMAT', 'VALUES', 'IN']);

/** Whether the comma at sig[k] separates tables of a FROM clause (`FROM a, t`: a cross join). */
function commaInFrom(sig: Token[], k: number): boolean {
  let depth = 0;
  for (let i = k - 1; i >= 0; i--) {
    const t = sig[i]!;
    if (t.text === ')') depth++;
    else if (t.text === '(') {
      if (depth === 0) return false;
      depth--;
    } else if (depth === 0 && t.kind === 'word' && CLAUSE_WORDS.has(t.text.toUpperCase())) {
      const w = t.text.toUpperCase();
      return w === 'FROM' || w === 'JOIN';
    }
  }
  return false;
}

/**
 * References to the placed tables in table position: after FROM / JOIN, after a comma of a FROM
 * clause. A placed table after IN (`x IN t`) is refused: it would read only the groups here, a silently
 * partial answer; `x IN (SELECT c FROM t)` is rewritten like any FROM.
 */
function tableRefs(sig: Token[], input: RewriteInput): Ref[] {
  const refs: Ref[] = [];
  for (let k = 1; k < sig.length; k++) {
    const prev = sig[k - 1]!.text.toUpperCase();
    // `x IN t`, which ClickHouse's canonical text writes `x IN (t)`.
    const isIn = (t: Token | undefined): boolean => t !== undefined && t.kind === 'word' && t.text.toUpperCase() === 'IN';
    const inSet = isIn(sig[k - 1]) || (prev === '(' && isIn(sig[k - 2]));
    if (prev !== 'FROM' && prev !== 'JOIN' && !inSet && !(prev === ',' && commaInFrom(sig, k - 1))) continue;
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
    if (inSet) {
      throw new CodedError(CODES.NOT_IMPLEMENTED, `IN ${name}: the table ${name} has rows in groups on other nodes, which IN <table> would miss; write IN (SELECT <column> FROM ${name})`);
    }
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

// ---- partial aggregation: -State on the members, -Merge here --------------------------------------
//
// A read of one placed table that only groups by plain columns and aggregates with functions that have
// a -State form is split the way ClickHouse's Distributed tables split it: every leg (local merge()
// and each remote group) computes `GROUP BY keys` with `fooState(args) AS _rh_aN`, and the coordinator
// runs the query over their union with each `foo(args)` replaced by `fooMerge(_rh_aN)` (named as the
// original call, so the result's column names do not change) and without its WHERE (done in the legs).
// Rows do not travel; one partial state per key per group does.

/** Aggregates split into -State / -Merge (each has both forms with the same result). */
const SPLIT_AGGREGATES: ReadonlySet<string> = new Set(['count', 'sum', 'min', 'max', 'avg', 'any', 'anylast', 'uniq', 'uniqexact', 'grouparray', 'argmin', 'argmax']);
/** Words a split query's SELECT list, HAVING and ORDER BY may hold outside aggregates, keys and aliases. */
const SPLIT_WORDS = new Set(['BY', 'AS', 'ASC', 'DESC', 'NULLS', 'FIRST', 'LAST', 'AND', 'OR', 'NOT', 'IN', 'BETWEEN', 'IS', 'NULL', 'TRUE', 'FALSE', 'LIKE', 'CASE', 'WHEN', 'THEN', 'ELSE', 'END']);
/** Anything that makes a query other than "aggregate rows of one table grouped by columns". */
const NO_SPLIT = new Set(['JOIN', 'ARRAY', 'UNION', 'PREWHERE', 'WINDOW', 'OVER', 'DISTINCT', 'QUALIFY', 'FINAL', 'SAMPLE', 'TOTALS', 'ROLLUP', 'CUBE', 'GROUPING', 'BY_LIMIT', 'INTERSECT', 'EXCEPT', 'WITH']);

export interface SplitPlan {
  table: string;
  keys: string[];
  /** Aggregate calls as written, in order, with their text range in the statement. */
  aggregates: Array<{ start: number; end: number; fn: string; args: string; text: string; aliased: boolean; inSelect: boolean }>;
  /** The WHERE clause's range (keyword included), removed from the coordinator's query. */
  where: { start: number; end: number; text: string } | undefined;
  /**
   * DESCRIBE of this (over an empty table of the same structure) gives ClickHouse's types of the
   * -State columns, then the column names of the unaliased aggregates of the SELECT list, in `named`'s order.
   */
  describeSql: string;
  /** Texts of the unaliased SELECT-list aggregates whose column names DESCRIBE gives after the states. */
  named: string[];
}

/** The split of `input.sql`, when the query allows one; undefined: legs pull the (filtered) rows. */
export function planAggregateSplit(input: Omit<RewriteInput, 'remote' | 'isLocal'>): SplitPlan | undefined {
  if (!input.allowWhere) return undefined;
  const sig = significant(tokenize(input.sql));
  const refs = tableRefs(sig, { ...input, isLocal: () => true, remote: () => '' });
  if (refs.length !== 1) return undefined;
  const ref = refs[0]!;
  const t = input.tables.get(ref.table)!;
  const columns = new Set(t.columns.map((c) => c.name));
  const upper = sig.map((x) => (x.kind === 'word' ? x.text.toUpperCase() : ''));
  if (upper.filter((w) => w === 'SELECT').length !== 1 || upper.some((w) => NO_SPLIT.has(w))) return undefined;
  // Top-level clauses.
  const clause = new Map<string, number>();
  let depth = 0;
  for (let k = 0; k < sig.length; k++) {
    const x = sig[k]!;
    if (x.text === '(') depth++;
    else if (x.text === ')') depth--;
    else if (depth === 0 && ['SELECT', 'FROM', 'WHERE', 'GROUP', 'HAVING', 'ORDER', 'LIMIT', 'SETTINGS', 'FORMAT', 'OFFSET'].includes(upper[k]!) && !clause.has(upper[k]!)) clause.set(upper[k]!, k);
  }
  if (clause.get('SELECT') !== 0 || !clause.has('FROM')) return undefined;
  const nextClause = (k: number): number => Math.min(...[...clause.values()].filter((v) => v > k), sig.length);
  // GROUP BY: plain columns only.
  const keys: string[] = [];
  const g = clause.get('GROUP');
  if (g !== undefined) {
    if (upper[g + 1] !== 'BY') return undefined;
    const end = nextClause(g);
    for (let k = g + 2; k < end; k++) {
      const x = sig[k]!;
      if (x.text === ',') continue;
      const n = nameOf(x);
      if (n === undefined || !columns.has(n) || (sig[k + 1] && k + 1 < end && sig[k + 1]!.text !== ',')) return undefined;
      keys.push(n);
    }
    if (keys.length === 0) return undefined;
  }
  // WHERE: the whole of it goes to the legs, so it must be pushable.
  let where: SplitPlan['where'];
  const w = clause.get('WHERE');
  if (w !== undefined) {
    const text = pushableWhere(input.sql, sig, columns);
    if (text === undefined) return undefined;
    const end = nextClause(w);
    where = { start: sig[w]!.start, end: sig[end - 1]!.end, text };
  }
  // SELECT list, HAVING, ORDER BY: aggregates over columns, keys, aliases, functions of those.
  const aliases = new Set<string>();
  for (let k = 0; k + 1 < sig.length; k++) if (upper[k] === 'AS') aliases.add(nameOf(sig[k + 1]) ?? '');
  for (const a of aliases) if (columns.has(a) && !keys.includes(a)) return undefined;
  const aggregates: SplitPlan['aggregates'] = [];
  const from = clause.get('FROM')!;
  const ranges: Array<[number, number, boolean]> = [[1, from, true]];
  for (const c of ['HAVING', 'ORDER']) {
    const at = clause.get(c);
    if (at !== undefined) ranges.push([at + 1, nextClause(at), false]);
  }
  for (const [a, b, inSelect] of ranges) {
    let level = 0;
    for (let k = a; k < b; k++) {
      const x = sig[k]!;
      if (x.text === '(') level++;
      else if (x.text === ')') level--;
      if (x.kind === 'punct' && (x.text === '{' || x.text === '?' || x.text === '.' || x.text === '*')) return undefined;
      if (x.kind !== 'word' && x.kind !== 'quoted') continue;
      const n = nameOf(x)!;
      if (sig[k + 1]?.text === '(' && SPLIT_AGGREGATES.has(n.toLowerCase())) {
        // Its arguments, up to the matching parenthesis: columns, literals and plain functions of them.
        let d = 0;
        let j = k + 1;
        for (; j < b; j++) {
          if (sig[j]!.text === '(') d++;
          else if (sig[j]!.text === ')' && --d === 0) break;
        }
        if (j >= b || sig[j + 1]?.text === '(') return undefined; // parametric aggregates: not split
        for (let i = k + 2; i < j; i++) {
          const y = sig[i]!;
          if (y.kind === 'punct' && (y.text === '{' || y.text === '?' || y.text === '.' || y.text === '*')) return undefined;
          if (y.kind !== 'word' && y.kind !== 'quoted') continue;
          const m = nameOf(y)!;
          if (sig[i + 1]?.text === '(') { if (SPLIT_AGGREGATES.has(m.toLowerCase()) || !/^[a-z]/i.test(m)) return undefined; continue; }
          if (!columns.has(m)) return undefined;
        }
        // In the SELECT list only as a whole item (`sum(x)` or `sum(x) AS s`): its column keeps its name.
        const prev = sig[k - 1]!.text.toUpperCase();
        const next = sig[j + 1]?.text.toUpperCase();
        if (inSelect && !(level === 0 && (prev === 'SELECT' || prev === ',') && (next === ',' || next === 'FROM' || next === 'AS'))) return undefined;
        const args = j > k + 2 ? input.sql.slice(sig[k + 2]!.start, sig[j - 1]!.end) : '';
        aggregates.push({ start: x.start, end: sig[j]!.end, fn: n, args, text: input.sql.slice(x.start, sig[j]!.end), aliased: upper[j + 1] === 'AS', inSelect });
        k = j;
        continue;
      }
      if (sig[k + 1]?.text === '(') continue; // a plain function of what it is given
      if (x.kind === 'word' && SPLIT_WORDS.has(upper[k]!)) continue;
      if (keys.includes(n) || aliases.has(n)) continue;
      return undefined;
    }
  }
  if (aggregates.length === 0) return undefined;
  const structure = t.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
  const named = [...new Set(aggregates.filter((a) => a.inSelect && !a.aliased).map((a) => a.text))];
  const states = aggregates.map((a, i) => `${a.fn}State(${a.args}) AS _rh_a${i + 1}`);
  return {
    table: ref.table, keys, aggregates, where, named,
    describeSql: `DESCRIBE TABLE (SELECT ${[...states, ...named].join(', ')} FROM null(${quoteString(structure)}))`,
  };
}

/** `input.sql` split into -State legs and a -Merge over their union; `described`: the rows of the plan's describeSql. */
export function rewriteAggregateSplit(input: RewriteInput, plan: SplitPlan, described: ReadonlyArray<{ name: string; type: string }>): string {
  const stateTypes = described.slice(0, plan.aggregates.length).map((d) => d.type);
  const columnName = new Map(plan.named.map((text, i) => [text, described[plan.aggregates.length + i]?.name ?? text]));
  const t = input.tables.get(plan.table)!;
  const types = new Map(t.columns.map((c) => [c.name, c.type]));
  const keyList = plan.keys.map(quoteIdent);
  const states = plan.aggregates.map((a, i) => `${a.fn}State(${a.args}) AS _rh_a${i + 1}`);
  const inner = (from: string) => `SELECT ${[...keyList, ...states].join(', ')} FROM ${from}${plan.where ? ` WHERE ${plan.where.text}` : ''}${keyList.length ? ` GROUP BY ${keyList.join(', ')}` : ''}`;
  const structure = [...plan.keys.map((k) => `${quoteIdent(k)} ${types.get(k)!}`), ...stateTypes.map((ty, i) => `_rh_a${i + 1} ${ty}`)].join(', ');
  const cols = [...keyList, ...plan.aggregates.map((_, i) => `_rh_a${i + 1}`)].join(', ');
  const local = t.groups.filter((g) => input.isLocal(g));
  const parts: string[] = [];
  if (local.length) parts.push(inner(`merge(REGEXP(${quoteString(`^rh_g(${local.join('|')})$`)}), ${quoteString('^' + regexEscape(plan.table) + '$')})`));
  for (const g of t.groups.filter((x) => !input.isLocal(x))) parts.push(`SELECT ${cols} FROM ${input.remote(g, inner(quoteIdent(plan.table)), structure)}`);
  const source = `(${parts.join(' UNION ALL ')})`;
  // Replacements, in text order: the table, the WHERE (gone), each aggregate.
  const sig = significant(tokenize(input.sql));
  const ref = tableRefs(sig, input)[0]!;
  const edits: Array<{ start: number; end: number; text: string }> = [
    { start: ref.start, end: ref.end, text: source + (ref.aliased ? '' : ` AS ${quoteIdent(plan.table)}`) },
    ...(plan.where ? [{ start: plan.where.start, end: plan.where.end, text: '' }] : []),
    ...plan.aggregates.map((a, i) => ({ start: a.start, end: a.end, text: `${a.fn}Merge(_rh_a${i + 1})${a.inSelect && !a.aliased ? ` AS ${quoteIdent(columnName.get(a.text)!)}` : ''}` })),
  ].sort((x, y) => x.start - y.start);
  let out = '';
  let at = 0;
  for (const e of edits) {
    out += input.sql.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + input.sql.slice(at);
}
