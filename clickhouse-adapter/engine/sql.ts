// Small SQL helpers shared by both engines: quoting, setting literals, and taking apart the
// `INSERT INTO ... FORMAT X` statement the engine interface accepts.

import { EngineError } from './errors.js';
import { firstSignificant, significant, stringValue, tokenize } from '../sql/scanner.js';
import type { ClickHouseEngine, Settings, SettingValue } from './types.js';

const SETTING_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Backquoted identifier, safe for any name. */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

/** Single-quoted string literal. */
export function quoteString(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** The rows of a JSONEachRow result. */
export function jsonEachRow<T>(buf: Buffer): T[] {
  return buf.toString('utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as T);
}

/** Runs a query and returns its rows as objects; 64-bit integers come back as numbers, not strings. */
export async function queryRows<T>(engine: ClickHouseEngine, sql: string): Promise<T[]> {
  return jsonEachRow<T>(await engine.query(sql, { format: 'JSONEachRow', settings: { output_format_json_quote_64bit_integers: 0 } }));
}

export function checkSettingName(name: string): void {
  if (!SETTING_NAME_RE.test(name)) {
    throw new EngineError('ENGINE_BAD_REQUEST', `invalid setting name ${JSON.stringify(name)}`);
  }
}

export function settingLiteral(name: string, value: SettingValue): string {
  checkSettingName(name);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new EngineError('ENGINE_BAD_REQUEST', `setting ${name}: ${value} is not a finite number`);
    return String(value);
  }
  return quoteString(value);
}

/**
 * `SET param_a = '<value>', ...` for query parameters given in ClickHouse's HTTP form: each value is
 * the text a client sends as `param_<name>`, which ClickHouse itself parses in the escaped text format
 * of the placeholder's type (`foo\'bar` is `foo'bar` for a String, `\N` is NULL for a Nullable).
 * Setting them on the session hands that text to ClickHouse unchanged, so it is parsed exactly as a
 * server parses an HTTP request's parameters (chdb's own binding escapes strings again first).
 */
export function paramsStatement(params: Readonly<Record<string, string>>): string | undefined {
  const parts = Object.entries(params).map(([k, v]) => {
    if (!SETTING_NAME_RE.test(k)) throw new EngineError('ENGINE_BAD_REQUEST', `invalid query parameter name ${JSON.stringify(k)}`);
    return `param_${k} = ${quoteString(v)}`;
  });
  return parts.length ? `SET ${parts.join(', ')}` : undefined;
}

/** `SET a = 1, b = 'x'` for a non-empty settings object, else undefined. */
export function setStatement(settings: Settings | undefined): string | undefined {
  if (!settings) return undefined;
  const parts = Object.entries(settings).map(([k, v]) => `${k} = ${settingLiteral(k, v)}`);
  return parts.length ? `SET ${parts.join(', ')}` : undefined;
}

export interface ParsedInsert {
  /** Everything before SETTINGS/FORMAT: `INSERT INTO db.t (a, b)`. */
  head: string;
  /** `db.t` when the target is a plain [A-Za-z0-9_] name (what chdb's raw insert accepts), else undefined. */
  table: string | undefined;
  /** Plain column names, when all are plain; undefined when there is no list or a name needs quoting. */
  columns: string[] | undefined;
  /** True when a column list is present. */
  hasColumnList: boolean;
  /** The statement's own SETTINGS, when they are plain `name = number|'string'` pairs. */
  settings: Settings;
  /** False when a SETTINGS clause is present but could not be taken apart. */
  settingsParsed: boolean;
  format: string;
}

const FORMAT_TAIL_RE = /\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*$/i;
const HEAD_RE = /^\s*INSERT\s+INTO\s+(?:TABLE\s+)?/i;
const PLAIN_TABLE_RE = /^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)\s*/;
const PLAIN_IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Takes apart `INSERT INTO db.t [(cols)] [SETTINGS k=v, ...] FORMAT X`. Throws ENGINE_BAD_REQUEST when
 * the statement is not an INSERT ending in FORMAT (data must come separately, never inline).
 */
export function parseInsert(sql: string): ParsedInsert {
  const fm = FORMAT_TAIL_RE.exec(sql);
  if (!HEAD_RE.test(sql) || !fm) {
    throw new EngineError('ENGINE_BAD_REQUEST',
      'insert() takes "INSERT INTO db.t [(cols)] [SETTINGS ...] FORMAT X" with the data passed separately');
  }
  const format = fm[1]!;
  let body = sql.slice(0, fm.index).trimEnd();
  let settings: Settings = {};
  let settingsParsed = true;
  const sIdx = findTopLevelKeyword(body, 'SETTINGS');
  if (sIdx >= 0) {
    const parsed = parseSettingsList(body.slice(sIdx + 'SETTINGS'.length));
    if (parsed) settings = parsed; else settingsParsed = false;
    body = body.slice(0, sIdx).trimEnd();
  }
  const head = body;
  const afterInto = body.replace(HEAD_RE, '');
  let table: string | undefined;
  let columns: string[] | undefined;
  let hasColumnList = false;
  const tm = PLAIN_TABLE_RE.exec(afterInto);
  const rest = tm ? afterInto.slice(tm[0].length) : afterInto;
  if (tm) table = tm[1];
  const trimmedRest = rest.trim();
  if (trimmedRest.startsWith('(')) {
    hasColumnList = true;
    if (trimmedRest.endsWith(')')) {
      const names = trimmedRest.slice(1, -1).split(',').map((c) => c.trim());
      if (names.every((n) => PLAIN_IDENT_RE.test(n))) columns = names;
    }
  } else if (trimmedRest.length > 0) {
    table = undefined; // something we do not understand follows the name (a quoted name, a function)
  }
  if (hasColumnList && !columns) table = undefined;
  return { head, table, columns, hasColumnList, settings, settingsParsed, format };
}

/** Position of a keyword outside strings, comments and parentheses, or -1. */
function findTopLevelKeyword(s: string, kw: string): number {
  let depth = 0;
  for (const t of significant(tokenize(s))) {
    if (t.text === '(') depth++;
    else if (t.text === ')') depth--;
    else if (depth === 0 && t.kind === 'word' && t.text.toUpperCase() === kw) return t.start;
  }
  return -1;
}

/** `a = 1, b = 'x'` -> {a: 1, b: 'x'}; undefined if anything else is there. */
function parseSettingsList(s: string): Settings | undefined {
  const out: Settings = {};
  const toks = significant(tokenize(s));
  for (let k = 0; k < toks.length;) {
    const [name, eq] = [toks[k], toks[k + 1]];
    if (name?.kind !== 'word' || eq?.text !== '=') return undefined;
    k += 2;
    const minus = toks[k]?.text === '-' && toks[k]!.end === toks[k + 1]?.start ? '-' : '';
    if (minus) k++;
    const value = toks[k++];
    if (value?.kind === 'string' && !minus) out[name.text] = stringValue(value.text);
    else if (value?.kind === 'number' && /^\d+(?:\.\d+)?$/.test(value.text)) {
      const n = Number(minus + value.text);
      // Large integers would lose digits as a JS number: keep them as text.
      out[name.text] = Number.isSafeInteger(n) || !Number.isInteger(n) ? n : minus + value.text;
    } else return undefined;
    if (k < toks.length && toks[k++]!.text !== ',') return undefined;
  }
  return out;
}

/** Line-delimited text formats: each non-empty line is one row. */
const LINE_FORMATS = new Set([
  'jsoneachrow', 'jsonlines', 'ndjson', 'jsoncompacteachrow', 'jsonstringseachrow', 'jsoncompactstringseachrow',
  'tabseparated', 'tsv', 'tabseparatedraw', 'tsvraw',
]);

/** Row count of a payload when the format makes it knowable from the bytes, else -1. */
export function countPayloadRows(format: string, data: Uint8Array): number {
  if (!LINE_FORMATS.has(format.toLowerCase())) return -1;
  let rows = 0;
  let lineHasContent = false;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 10) { if (lineHasContent) rows++; lineHasContent = false; }
    else if (b !== 13 && b !== 32 && b !== 9) lineHasContent = true;
  }
  if (lineHasContent) rows++;
  return rows;
}

/** Collects a payload into one Buffer (one INSERT per call, see ClickHouseEngine.insert). */
export async function collectBytes(data: Uint8Array | AsyncIterable<Uint8Array>): Promise<Buffer> {
  if (data instanceof Uint8Array) return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const parts: Buffer[] = [];
  for await (const chunk of data) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(parts);
}

/**
 * `USE` and `SET` would stick to the embedded engine's shared chdb Session and silently change later
 * calls (over HTTP they would do nothing at all), so both engines refuse them: pass `database` and
 * `settings` per call instead.
 */
export function refuseSessionStatements(sql: string): void {
  const first = firstSignificant(sql);
  if (first?.kind === 'word' && /^(USE|SET)$/i.test(first.text)) {
    throw new EngineError('ENGINE_BAD_REQUEST',
      'USE and SET statements are refused: they would outlive the call; pass the database / settings options instead');
  }
}
