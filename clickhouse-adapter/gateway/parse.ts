// Classifying statements with ClickHouse's own parser. Two calls into the embedded engine:
//   1. SELECT formatQuery('<text>')    — the statement travels as a quoted string VALUE, never as SQL,
//      so a multi-statement text cannot run anything; ClickHouse refuses it ("Multi-statements are not
//      allowed", Code 62) and gives the canonical single-statement text otherwise.
//   2. EXPLAIN AST <canonical text>     — the tree, parsed below from its indented text form; query
//      parameters are substituted by the gateway as typed literals first (substituteParams), for
//      classification only: the query itself gets them from ClickHouse (engine QueryOptions.params).
// Neither call is parameterized on purpose: chdb runs parameterized calls one at a time per process,
// so a parse must never queue behind a user's slow `{x:T}` query (measured: it did, for 18 s).
// The engine is a read-only session (readonly=2), so even a mistake here cannot write.
// Results are cached by statement text: the same statement with new parameter values parses alike.

import type { ClickHouseEngine } from '../engine/types.js';
import { quoteIdent, quoteString } from '../engine/sql.js';
import { identifierName, tokenize } from '../sql/scanner.js';

export interface AstNode {
  type: string;
  /** What follows the type on the node's line (e.g. the identifier or function name). */
  arg: string;
  children: AstNode[];
}

export type StatementKind =
  | 'select' | 'show' | 'describe' | 'exists' | 'explain' | 'check'
  | 'insert' | 'create' | 'alter' | 'drop' | 'truncate' | 'rename' | 'optimize' | 'set'
  | 'access' | 'system' | 'other';

export interface TableRef {
  database?: string;
  table: string;
}

export interface ParsedStatement {
  /** ClickHouse's canonical text of the statement (formatQuery); an INSERT's inline data is not in it. */
  canonical: string;
  ast: AstNode;
  kind: StatementKind;
  /** True for statements that change state (must go through Raft, refused on the local endpoint). */
  write: boolean;
  /** The statement's own target for INSERT / DDL (CREATE, ALTER, DROP, TRUNCATE, OPTIMIZE). */
  target?: TableRef;
  /** Every table the statement reads (TableIdentifier nodes). */
  tables: TableRef[];
  /** Every function called anywhere in the statement, as written (case kept). */
  functions: string[];
  /** INSERT: the explicit column list. */
  columns?: string[];
  /** INSERT ... SELECT / CREATE ... AS SELECT. */
  hasSelect: boolean;
  /** A trailing FORMAT clause (output format of a read, input format of an INSERT). */
  format?: string;
}

export function parseAstText(text: string): AstNode {
  const root: AstNode = { type: '#root', arg: '', children: [] };
  const stack: Array<{ depth: number; node: AstNode }> = [{ depth: -1, node: root }];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const depth = line.length - line.trimStart().length;
    // "Function rand (alias r) (children 1)": the alias is not part of the name.
    const body = line.trim().replace(/\s*\(children \d+\)$/, '').replace(/\s*\(alias (?:[^()`]|`(?:[^`\\]|\\.)*`)*\)$/, '');
    const sp = body.indexOf(' ');
    const node: AstNode = { type: sp < 0 ? body : body.slice(0, sp), arg: sp < 0 ? '' : body.slice(sp + 1).trim(), children: [] };
    while (stack.length > 1 && stack[stack.length - 1]!.depth >= depth) stack.pop();
    stack[stack.length - 1]!.node.children.push(node);
    stack.push({ depth, node });
  }
  if (root.children.length === 0) throw new Error('empty AST');
  return root.children[0]!;
}

function walk(n: AstNode, f: (n: AstNode, parent: AstNode | undefined) => void, parent?: AstNode): void {
  f(n, parent);
  for (const c of n.children) walk(c, f, n);
}

/** `db.t`, `t`, and the backquoted forms EXPLAIN AST prints for odd names. */
function tableRef(name: string): TableRef {
  const unq = (s: string) => (s.startsWith('`') && s.endsWith('`') ? s.slice(1, -1).replace(/\\`/g, '`') : s);
  const m = /^(`(?:[^`\\]|\\.)*`|[^.`]+)\.(`(?:[^`\\]|\\.)*`|[^.`]+)$/.exec(name);
  if (m) return { database: unq(m[1]!), table: unq(m[2]!) };
  return { table: unq(name) };
}

const READ_TYPES: Array<[RegExp, StatementKind]> = [
  [/^Select/, 'select'],
  [/^Show/, 'show'],
  [/^Describe/, 'describe'],
  [/^Exists/, 'exists'],
  [/^Explain$/, 'explain'],
  [/^CheckQuery$|^CheckTable/, 'check'],
];
const WRITE_TYPES: Array<[RegExp, StatementKind]> = [
  [/^InsertQuery$/, 'insert'],
  [/^CreateQuery$/, 'create'],
  [/^AlterQuery$/, 'alter'],
  [/^DropQuery$/, 'drop'],
  [/^TruncateQuery$/, 'truncate'],
  [/^Rename$/, 'rename'],
  [/^OptimizeQuery$/, 'optimize'],
  [/^Set$/, 'set'],
  [/^(Create|Drop|Alter)(User|Role|Quota|RowPolicy|SettingsProfile|Function|NamedCollection)|^Grant|^Revoke|^SetRole/, 'access'],
  [/^System/, 'system'],
];

export function describeStatement(canonical: string, ast: AstNode): ParsedStatement {
  let kind: StatementKind = 'other';
  let write = true; // anything not known to be a read is treated as a write: refused locally
  for (const [re, k] of READ_TYPES) if (re.test(ast.type)) { kind = k; write = false; break; }
  if (write) for (const [re, k] of WRITE_TYPES) if (re.test(ast.type)) { kind = k; break; }
  const tables: TableRef[] = [];
  const functions: string[] = [];
  walk(ast, (n) => {
    if (n.type === 'TableIdentifier') tables.push(tableRef(n.arg));
    if (n.type === 'Function') functions.push(n.arg);
  });
  const out: ParsedStatement = { canonical, ast, kind, write, tables, functions, hasSelect: false };
  const idents = ast.children.filter((c) => c.type === 'Identifier').map((c) => c.arg);
  if (kind === 'insert') {
    // InsertQuery children: Identifier [db], Identifier t, [ExpressionList columns], [Select], [Set]
    const firstNonIdent = ast.children.findIndex((c) => c.type !== 'Identifier');
    const head = (firstNonIdent < 0 ? ast.children : ast.children.slice(0, firstNonIdent)).map((c) => c.arg);
    if (head.length >= 2) out.target = { database: tableRef(head[0]!).table, table: tableRef(head[1]!).table };
    else if (head.length === 1) out.target = tableRef(head[0]!);
    const cols = ast.children.find((c) => c.type === 'ExpressionList');
    if (cols) out.columns = cols.children.filter((c) => c.type === 'Identifier').map((c) => tableRef(c.arg).table);
    out.hasSelect = ast.children.some((c) => c.type.startsWith('Select'));
  } else if (['create', 'alter', 'drop', 'truncate', 'optimize'].includes(kind)) {
    // The target is the LAST plain Identifier child pair: "Identifier db" "Identifier t" or "Identifier t".
    const dbAndTable = ast.children.filter((c) => c.type === 'Identifier').map((c) => c.arg);
    if (kind === 'create' || kind === 'drop' || kind === 'truncate' || kind === 'optimize' || kind === 'alter') {
      if (dbAndTable.length >= 2 && kind !== 'alter') out.target = { database: tableRef(dbAndTable[0]!).table, table: tableRef(dbAndTable[1]!).table };
      else if (dbAndTable.length >= 1) out.target = tableRef(dbAndTable[dbAndTable.length - 1]!);
      if (kind === 'alter' && dbAndTable.length >= 2) out.target = { database: tableRef(dbAndTable[0]!).table, table: tableRef(dbAndTable[1]!).table };
    }
    out.hasSelect = kind === 'create' && ast.children.some((c) => c.type.startsWith('Select'));
  } else if (kind === 'rename') {
    if (idents.length) out.target = tableRef(idents[0]!);
  }
  // formatQuery backquotes a format named like a keyword (FORMAT `Values`).
  const fmt = /\bFORMAT\s+`?([A-Za-z][A-Za-z0-9_]*)`?\s*$/.exec(canonical);
  if (fmt) out.format = fmt[1]!;
  return out;
}

export class SqlParser {
  private readonly cache = new Map<string, ParsedStatement>();

  constructor(private readonly engine: ClickHouseEngine, private readonly cacheSize = 1000) {}

  /** Throws ClickHouseError (62 SYNTAX_ERROR for bad or multiple statements) from ClickHouse itself. */
  async parse(sql: string, params?: Record<string, string>): Promise<ParsedStatement> {
    const hit = this.cache.get(sql);
    if (hit) {
      // LRU: refresh the entry's position.
      this.cache.delete(sql);
      this.cache.set(sql, hit);
      return hit;
    }
    const canonical = (await this.engine.query(`SELECT formatQuery(${quoteString(sql)})`, { format: 'TSVRaw' })).toString('utf8').replace(/\n$/, '');
    const astText = (await this.engine.query(`EXPLAIN AST ${substituteParams(canonical, params ?? {})}`, { format: 'TSVRaw' })).toString('utf8');
    const parsed = describeStatement(canonical, parseAstText(astText));
    this.cache.set(sql, parsed);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return parsed;
  }
}

/**
 * `{name:Type}` placeholders of a canonical statement replaced by the bound values, as ClickHouse's
 * own substitution does: `_CAST('value', 'Type')`, or the quoted name for `Identifier`. Used only to
 * classify the statement (the query itself is still bound by ClickHouse); a placeholder without a
 * value is left as it is, and EXPLAIN AST then refuses it (UNKNOWN_QUERY_PARAMETER) as before.
 */
export function substituteParams(canonical: string, params: Readonly<Record<string, string>>): string {
  const tokens = tokenize(canonical);
  let out = '';
  let at = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'punct' || t.text !== '{') continue;
    const name = tokens[i + 1];
    const colon = tokens[i + 2];
    if (!name || (name.kind !== 'word' && name.kind !== 'quoted') || !colon || colon.text !== ':') continue;
    let depth = 0;
    let j = i + 3;
    for (; j < tokens.length; j++) {
      const x = tokens[j]!;
      if (x.kind !== 'punct') continue;
      if (x.text === '(') depth++;
      else if (x.text === ')') depth--;
      else if (x.text === '}' && depth === 0) break;
    }
    if (j >= tokens.length) break;
    const key = identifierName(name.text);
    const type = canonical.slice(colon.end, tokens[j]!.start).trim();
    const value = params[key];
    if (value !== undefined) {
      out += canonical.slice(at, t.start) + (type === 'Identifier' ? quoteIdent(value) : `_CAST(${quoteString(value)}, ${quoteString(type)})`);
      at = tokens[j]!.end;
    }
    i = j;
  }
  return out + canonical.slice(at);
}
