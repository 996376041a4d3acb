// The write path's allow-list: the statement kinds RaftHouse replicates and what each may contain.
// checkWrite() runs on the gateway before a statement is proposed and in the state machine on every
// replica before an entry is applied: the same function over the same parse, so a statement refused
// in one place is refused in the other, and an entry proposed around the gateway gains nothing.

import type { AstNode, ParsedStatement, TableRef, Token } from './ast.js';
import { canonicalTokens, findWords, headWords, isWord, readName, settingNamesAfter, tableRef } from './ast.js';
import { badArguments, denied, notReplicable } from './errors.js';
import { checkAlterCommand, checkEngine, checkTableSettings } from './engines.js';
import { WRITE_TABLE_FUNCTIONS, isNondeterministic } from './functions.js';
import { checkWriteName } from './names.js';
import type { WriteScope } from './names.js';
import { checkFileClauses, checkTree } from './tree.js';
import { checkSettings } from './settings.js';
import { extractSettings } from '../gateway/lexer.js';

export type WriteKind = 'insert' | 'create' | 'alter' | 'drop' | 'truncate' | 'rename' | 'optimize' | 'set';

export interface WriteContext {
  scope: WriteScope;
  /** Names of non-deterministic functions (system.functions.deterministic = 0; functions.ts). */
  nondeterministic: ReadonlySet<string>;
  /**
   * The gateway pins now() & co. to literals after this check (they are allowed then); the state
   * machine receives them pinned, so any non-deterministic call there is refused.
   */
  allowPinnable: boolean;
}

/** Pinned by the gateway at proposal time: replaced by the literal value it computed. */
export const PINNABLE: ReadonlySet<string> = new Set(['now', 'now64', 'today', 'yesterday', 'current_timestamp', 'current_date']);

/**
 * Input formats a replicated INSERT may carry, text and binary (lower-case name or alias -> name). Each
 * one's data runs to the end of the input and is read the same way on every replica from the bytes and
 * the entry's settings alone. Left out: formats that read a file on the server (Template*, Protobuf*,
 * CapnProto: format_schema / format_template_* files; DWARF), a network service (AvroConfluent: a
 * schema registry), SQL text (MySQLDump), HTTP forms (Form), and metadata formats (One, ParquetMetadata).
 * Values is accepted from clients but never travels as data: the gateway evaluates its rows first.
 */
const INPUT_FORMAT_NAMES = [
  'Values', 'JSON', 'JSONCompact', 'JSONColumns', 'JSONColumnsWithMetadata', 'JSONCompactColumns', 'JSONEachRow',
  'JSONStringsEachRow', 'JSONCompactEachRow', 'JSONCompactEachRowWithNames', 'JSONCompactEachRowWithNamesAndTypes',
  'JSONCompactStringsEachRow', 'JSONCompactStringsEachRowWithNames', 'JSONCompactStringsEachRowWithNamesAndTypes',
  'JSONObjectEachRow', 'JSONAsString', 'JSONAsObject', 'BSONEachRow',
  'CSV', 'CSVWithNames', 'CSVWithNamesAndTypes',
  'TabSeparated', 'TabSeparatedRaw', 'TabSeparatedWithNames', 'TabSeparatedWithNamesAndTypes', 'TabSeparatedRawWithNames',
  'TabSeparatedRawWithNamesAndTypes', 'TSKV', 'CustomSeparated', 'CustomSeparatedWithNames', 'CustomSeparatedWithNamesAndTypes',
  'CustomSeparatedIgnoreSpaces', 'CustomSeparatedIgnoreSpacesWithNames', 'CustomSeparatedIgnoreSpacesWithNamesAndTypes',
  'Regexp', 'LineAsString', 'RawBLOB',
  'RowBinary', 'RowBinaryWithNames', 'RowBinaryWithNamesAndTypes', 'RowBinaryWithDefaults', 'Native',
  'Parquet', 'Arrow', 'ArrowStream', 'ORC', 'Avro', 'MsgPack', 'Npy',
];
const INPUT_FORMAT_ALIASES: ReadonlyArray<[string, string]> = [
  ['tsv', 'TabSeparated'], ['tsvraw', 'TabSeparatedRaw'], ['raw', 'TabSeparatedRaw'], ['tsvwithnames', 'TabSeparatedWithNames'],
  ['tsvwithnamesandtypes', 'TabSeparatedWithNamesAndTypes'], ['tsvrawwithnames', 'TabSeparatedRawWithNames'],
  ['tsvrawwithnamesandtypes', 'TabSeparatedRawWithNamesAndTypes'], ['rawwithnames', 'TabSeparatedRawWithNames'],
  ['rawwithnamesandtypes', 'TabSeparatedRawWithNamesAndTypes'], ['jsonlines', 'JSONEachRow'], ['ndjson', 'JSONEachRow'], ['jsonl', 'JSONEachRow'],
];
export const INPUT_FORMATS: ReadonlyMap<string, string> = new Map([
  ...INPUT_FORMAT_NAMES.map((n): [string, string] => [n.toLowerCase(), n]), ...INPUT_FORMAT_ALIASES,
]);

/** Formats whose data is not text: sent with the query in the URL (or after FORMAT X in the body), never inline in SQL. */
export const BINARY_INPUT_FORMATS: ReadonlySet<string> = new Set([
  'BSONEachRow', 'RowBinary', 'RowBinaryWithNames', 'RowBinaryWithNamesAndTypes', 'RowBinaryWithDefaults', 'Native',
  'Parquet', 'Arrow', 'ArrowStream', 'ORC', 'Avro', 'MsgPack', 'Npy',
]);

export function checkInputFormat(format: string): string {
  const f = INPUT_FORMATS.get(format.toLowerCase());
  if (!f) notReplicable(`format ${format} is not accepted for writes through RaftHouse; use one of ${[...new Set(INPUT_FORMATS.values())].join(', ')}`);
  return f;
}

const KINDS: ReadonlyMap<string, WriteKind> = new Map([
  ['InsertQuery', 'insert'], ['CreateQuery', 'create'], ['AlterQuery', 'alter'], ['DropQuery', 'drop'],
  ['TruncateQuery', 'truncate'], ['Rename', 'rename'], ['OptimizeQuery', 'optimize'], ['Set', 'set'],
]);

/** Throws RuleError unless RaftHouse replicates the statement; returns its kind. */
export function checkWrite(stmt: ParsedStatement, ctx: WriteContext): WriteKind {
  const toks = canonicalTokens(stmt);
  checkFileClauses(toks);
  const kind = KINDS.get(stmt.ast.type);
  if (!kind) denied(`${stmt.ast.type} is not a statement RaftHouse replicates (INSERT, CREATE TABLE / VIEW / MATERIALIZED VIEW, ALTER TABLE, DROP, TRUNCATE, RENAME, OPTIMIZE, SET)`);
  const head = headWords(toks);
  const engines = new Set<string>();
  switch (kind) {
    case 'insert': checkInsert(stmt, ctx); break;
    case 'create': checkCreate(stmt, toks, head, ctx, engines); break;
    case 'alter': checkAlter(stmt, toks, head, ctx); break;
    case 'drop': case 'truncate': case 'optimize': checkDropLike(stmt, kind, head, ctx); break;
    case 'rename': checkRename(toks, head, ctx); break;
    case 'set': checkSettings(extractSettings('SETTINGS ' + stmt.canonical.replace(/^SET\s+/i, '')).settings, 'set'); return kind;
  }
  if (findWords(toks, ['TO', 'DISK']) >= 0 || findWords(toks, ['TO', 'VOLUME']) >= 0) {
    denied('TTL ... TO DISK / TO VOLUME moves data to storage RaftHouse does not replicate');
  }
  checkTree(stmt.ast, {
    tableFunctions: WRITE_TABLE_FUNCTIONS,
    where: 'in a replicated statement',
    engines,
    table: (ref) => checkWriteName(ref, ctx.scope),
    fn: (name, path) => checkDeterministic(name, path, ctx, kind === 'insert' || kind === 'alter'),
  });
  if (kind === 'insert') checkSettings(extractSettings(stmt.canonical).settings, 'entry');
  return kind;
}

/** `pinned`: the gateway pins now() & co. in this kind of statement (INSERT ... SELECT, ALTER). */
function checkDeterministic(name: string, path: readonly AstNode[], ctx: WriteContext, pinned: boolean): void {
  if (!isNondeterministic(name, ctx.nondeterministic)) return;
  // Column DEFAULT / MATERIALIZED expressions of CREATE: the gateway evaluates them once, at insert.
  if (path.some((p) => p.type === 'Columns')) return;
  const inAlterColumn = path.some((p) => p.type === 'AlterCommand' && (p.arg === 'ADD_COLUMN' || p.arg === 'MODIFY_COLUMN'));
  if (ctx.allowPinnable && pinned && PINNABLE.has(name.toLowerCase()) && !inAlterColumn) return;
  badArguments(`${name}() is non-deterministic: ${inAlterColumn ? 'in a column default added by ALTER (existing rows compute it when read)' : 'in a replicated statement'} it would give a different value on each replica; compute the value in the client and send it as a literal`);
}

/** The statement's own target: the plain Identifier children before anything else ("db" "t" or "t"). */
function leadingTarget(ast: AstNode): TableRef | undefined {
  const ids: string[] = [];
  for (const c of ast.children) {
    if (c.type !== 'Identifier') { if (ids.length) break; continue; }
    ids.push(c.arg);
  }
  if (ids.length >= 2) return { database: tableRef(ids[0]!).table, table: tableRef(ids[1]!).table };
  if (ids.length === 1) return tableRef(ids[0]!);
  return undefined;
}

function checkInsert(stmt: ParsedStatement, ctx: WriteContext): void {
  const first = stmt.ast.children[0];
  if (first?.type === 'Function') denied(`INSERT INTO FUNCTION ${first.arg}(): RaftHouse inserts into tables of its own database only`);
  if (first?.type === 'Literal') denied('FROM INFILE reads a server file; send the data with the request instead');
  const target = leadingTarget(stmt.ast);
  if (!target) badArguments('cannot find the table this INSERT targets');
  checkWriteName(target, ctx.scope, true);
  if (stmt.format !== undefined) checkInputFormat(stmt.format);
}

function checkCreate(stmt: ParsedStatement, toks: Token[], head: string[], ctx: WriteContext, engines: Set<string>): void {
  let i = 1;
  if (head[i] === 'OR' && head[i + 1] === 'REPLACE') i += 2;
  if (head[i] === 'TEMPORARY') notReplicable('CREATE TEMPORARY TABLE: a temporary table lives in one session on one node; create an ordinary table');
  const what = head[i] === 'MATERIALIZED' && head[i + 1] === 'VIEW' ? 'MATERIALIZED VIEW' : head[i];
  if (what !== 'TABLE' && what !== 'VIEW' && what !== 'MATERIALIZED VIEW') {
    denied(`CREATE ${head.slice(i, i + 2).join(' ')}: RaftHouse replicates tables, views and materialized views of its one database only`);
  }
  const target = leadingTarget(stmt.ast);
  if (!target) badArguments('cannot find the name this CREATE gives');
  checkWriteName(target, ctx.scope);
  for (const c of stmt.ast.children) {
    if (c.type === 'Function') denied(`CREATE TABLE ... AS ${c.arg}(): a table over a table function is not a RaftHouse table`);
    if (c.type === 'Refresh') notReplicable('a refreshable materialized view runs on a timer on each replica, not from the log');
  }
  // Every `ENGINE = X` of the statement (the table's, or a materialized view's inner table).
  for (let k = findWords(toks, ['ENGINE']); k >= 0; k = findWords(toks, ['ENGINE'], k + 1)) {
    if (toks[k + 1]?.text !== '=') continue;
    const name = readName(toks, k + 2);
    if (!name || name.ref.database !== undefined) badArguments('cannot read the ENGINE name');
    checkEngine(name.ref.table);
    engines.add(name.ref.table);
  }
  // `AS [db.]t` / `CLONE AS [db.]t` right after the name: the structure (and engine) of another table.
  const nameEnd = findNameEnd(toks, i + 1);
  let asTable: TableRef | undefined;
  if (isWord(toks[nameEnd], 'AS') || (isWord(toks[nameEnd], 'CLONE') && isWord(toks[nameEnd + 1], 'AS'))) {
    const at = isWord(toks[nameEnd], 'AS') ? nameEnd + 1 : nameEnd + 2;
    if (!isWord(toks[at], 'SELECT', 'WITH') && toks[at]?.text !== '(') {
      const src = readName(toks, at);
      if (src) { checkWriteName(src.ref, ctx.scope); asTable = src.ref; }
    }
  }
  if (what === 'TABLE' && engines.size === 0 && !asTable) checkEngine(undefined);
  if (what === 'MATERIALIZED VIEW') {
    const to = findWords(toks, ['TO']);
    if (to >= 0 && to < findWords(toks, ['AS'])) {
      const dest = readName(toks, to + 1);
      if (!dest) badArguments('cannot read the TO table of the materialized view');
      checkWriteName(dest.ref, ctx.scope);
    } else if (engines.size === 0) checkEngine(undefined);
  }
  checkTableSettings(settingNamesAfter(toks, ['SETTINGS']));
}

/** After `CREATE ... TABLE [IF NOT EXISTS]` at index `from`: the index just past the object's name. */
function findNameEnd(toks: Token[], from: number): number {
  let i = from;
  if (isWord(toks[i - 1], 'MATERIALIZED')) i++;
  if (isWord(toks[i], 'IF') && isWord(toks[i + 1], 'NOT') && isWord(toks[i + 2], 'EXISTS')) i += 3;
  const name = readName(toks, i);
  return name ? name.next : i;
}

function checkAlter(stmt: ParsedStatement, toks: Token[], head: string[], ctx: WriteContext): void {
  if (head[1] !== 'TABLE') denied(`ALTER ${head[1] ?? ''}: RaftHouse replicates ALTER TABLE only`);
  const ids = stmt.ast.children.filter((c) => c.type === 'Identifier').map((c) => c.arg);
  const target = ids.length >= 2 ? { database: tableRef(ids[0]!).table, table: tableRef(ids[1]!).table } : ids.length ? tableRef(ids[0]!) : undefined;
  if (!target) badArguments('cannot find the table this ALTER targets');
  checkWriteName(target, ctx.scope);
  const list = stmt.ast.children.find((c) => c.type === 'ExpressionList');
  for (const cmd of list?.children ?? []) if (cmd.type === 'AlterCommand') checkAlterCommand(cmd.arg.split(' ')[0]!);
  if (findWords(toks, ['DETACH']) >= 0) denied('ALTER ... DETACH PARTITION / PART moves parts out of the table into per-replica storage');
  checkTableSettings(settingNamesAfter(toks, ['MODIFY', 'SETTING']));
  checkTableSettings(settingNamesAfter(toks, ['RESET', 'SETTING']));
}

function checkDropLike(stmt: ParsedStatement, kind: 'drop' | 'truncate' | 'optimize', head: string[], ctx: WriteContext): void {
  const word = head[0]!;
  const allowed = kind === 'drop' ? ['TABLE', 'VIEW'] : ['TABLE'];
  if (!allowed.includes(head[1] ?? '')) denied(`${word} ${head[1] ?? ''}: RaftHouse replicates ${word} ${allowed.join(' / ')} of its own database only`);
  const targets: TableRef[] = [];
  const lead = leadingTarget(stmt.ast);
  if (lead) targets.push(lead);
  for (const c of stmt.ast.children) if (c.type === 'ExpressionList') for (const t of c.children) if (t.type === 'TableIdentifier') targets.push(tableRef(t.arg));
  if (targets.length === 0) badArguments(`cannot find the table this ${word} targets`);
  for (const t of targets) checkWriteName(t, ctx.scope);
}

function checkRename(toks: Token[], head: string[], ctx: WriteContext): void {
  const exchange = head[0] === 'EXCHANGE';
  if (!(head[0] === 'RENAME' && head[1] === 'TABLE') && !(exchange && head[1] === 'TABLES')) {
    denied(`${head.slice(0, 2).join(' ')}: RaftHouse replicates RENAME TABLE / EXCHANGE TABLES of its own database only`);
  }
  // RENAME TABLE a TO b [, c TO d]  |  EXCHANGE TABLES a AND b
  let i = 2;
  let names = 0;
  while (i < toks.length) {
    const n = readName(toks, i);
    if (!n) break;
    checkWriteName(n.ref, ctx.scope);
    names++;
    i = n.next;
    if (isWord(toks[i], 'TO', 'AND') || toks[i]?.text === ',') i++;
    else break;
  }
  if (names < 2) badArguments('cannot read the tables this RENAME / EXCHANGE names');
}
