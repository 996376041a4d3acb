// The RaftHouse entry: what the gateway proposes to a group and the adapter applies.
//
//   <header: one line of JSON>\n<payload: raw bytes, optional>
//
// header = {"v":1, "kind":"insert"|"ddl"|"statement"|"settings", "sql":"...", "database":"<user db>",
//           "settings":{...}, "format":"JSONEachRow"}
// - insert, structured (what the gateway proposes for rows sent as data): {"table":"t", "columns":[...],
//   "format":"X"} and no `sql`; the payload is the data in input format X, text or binary, passed to
//   the engine's structured insert unchanged (engine/types.ts DataInsert). Nothing of it is SQL text.
// - insert, as SQL (INSERT ... SELECT, and entries of earlier versions): `sql` is `INSERT INTO t [(cols)]
//   [FORMAT X]`; the payload is the data in format X (FORMAT may be given in `format` instead of the
//   SQL). Without a payload the SQL runs as is.
// - ddl / statement: `sql` is one statement (CREATE / ALTER / DROP / TRUNCATE / RENAME, or anything else).
// - settings: `settings` are stored in the group and become defaults of the group's later statements.
// - abandon: {"v":1,"kind":"abandon","index":i,"mac":"<hex>"}: entry i (< this entry's index) kept failing
//   with an error that is not the entry's fault on every replica of the group; every replica that has
//   not applied i treats it as failed (docs/design-notes.md, "No poison entries"). Proposed by the
//   leader's RaftHouse only: `mac` is an HMAC keyed by the app secret (abandon-auth.ts), checked at
//   apply; an abandon without a valid one is refused and gives up nothing.
// JSON.stringify never emits a raw newline, so the first "\n" always ends the header.

import { ChsmError } from './errors.js';

export type EntryKind = 'insert' | 'ddl' | 'statement' | 'settings' | 'abandon';
export type SettingValue = string | number;

export interface EntryHeader {
  v: 1;
  kind: EntryKind;
  sql?: string;
  /** The user's database name; a qualifier `<database>.t` in the SQL is mapped to the group database. */
  database?: string;
  settings?: Record<string, SettingValue>;
  format?: string;
  /** A structured insert's target table (unqualified: the group's database). */
  table?: string;
  /** A structured insert's columns, in the data's order; all stored columns when absent. */
  columns?: string[];
  /** abandon: the index of the entry given up. */
  index?: number;
  /** abandon: hex HMAC-SHA256 of (group, index) keyed by the app secret (abandon-auth.ts). */
  mac?: string;
}

export interface Entry {
  header: EntryHeader;
  payload: Uint8Array;
}

const KINDS: ReadonlySet<string> = new Set(['insert', 'ddl', 'statement', 'settings', 'abandon']);

/** Bounds of a structured insert's names (ClickHouse's own limit on a name is the file system's). */
const MAX_NAME_BYTES = 255;
const MAX_COLUMNS = 10_000;

function checkName(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '' || Buffer.byteLength(v, 'utf8') > MAX_NAME_BYTES || v.includes('\0')) {
    throw new ChsmError('RH_BAD_ENTRY', `${what} must be a name of 1-${MAX_NAME_BYTES} bytes without NUL`);
  }
  return v;
}

export function encodeEntry(header: EntryHeader, payload?: Uint8Array): Buffer {
  const head = Buffer.from(JSON.stringify(header) + '\n', 'utf8');
  return payload && payload.length ? Buffer.concat([head, payload]) : head;
}

export function decodeEntry(data: Uint8Array): Entry {
  const nl = data.indexOf(10);
  const headBytes = nl < 0 ? data : data.subarray(0, nl);
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(headBytes.buffer, headBytes.byteOffset, headBytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new ChsmError('RH_BAD_ENTRY', `entry header is not JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ChsmError('RH_BAD_ENTRY', 'entry header must be a JSON object');
  const h = raw as Record<string, unknown>;
  if (h.v !== 1) throw new ChsmError('RH_BAD_ENTRY', `unsupported entry version ${JSON.stringify(h.v)}`);
  if (typeof h.kind !== 'string' || !KINDS.has(h.kind)) throw new ChsmError('RH_BAD_ENTRY', `unknown entry kind ${JSON.stringify(h.kind)}`);
  if (h.sql !== undefined && typeof h.sql !== 'string') throw new ChsmError('RH_BAD_ENTRY', 'sql must be a string');
  if (h.kind === 'abandon' && !(Number.isSafeInteger(h.index) && (h.index as number) > 0)) throw new ChsmError('RH_BAD_ENTRY', 'an abandon entry needs a positive integer index');
  const structured = h.table !== undefined;
  if (structured) {
    if (h.kind !== 'insert' || h.sql !== undefined || typeof h.format !== 'string') throw new ChsmError('RH_BAD_ENTRY', 'table/columns make a structured insert: kind insert, a format, no sql');
    checkName(h.table, 'table');
    if (h.columns !== undefined) {
      if (!Array.isArray(h.columns) || h.columns.length === 0 || h.columns.length > MAX_COLUMNS) throw new ChsmError('RH_BAD_ENTRY', `columns must be a list of 1-${MAX_COLUMNS} names`);
      h.columns.forEach((c) => checkName(c, 'a column'));
    }
  } else if (h.columns !== undefined) {
    throw new ChsmError('RH_BAD_ENTRY', 'columns belong to a structured insert (with table)');
  }
  if (!structured && h.kind !== 'settings' && h.kind !== 'abandon' && (typeof h.sql !== 'string' || h.sql.trim() === '')) throw new ChsmError('RH_BAD_ENTRY', `a ${h.kind} entry needs sql`);
  if (h.mac !== undefined && (h.kind !== 'abandon' || typeof h.mac !== 'string' || h.mac.length > 128)) throw new ChsmError('RH_BAD_ENTRY', 'mac belongs to an abandon entry and is a short string');
  if (h.database !== undefined && typeof h.database !== 'string') throw new ChsmError('RH_BAD_ENTRY', 'database must be a string');
  if (h.format !== undefined && (typeof h.format !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*$/.test(h.format))) throw new ChsmError('RH_BAD_ENTRY', 'format must be a format name');
  if (h.settings !== undefined) {
    if (typeof h.settings !== 'object' || h.settings === null || Array.isArray(h.settings)) throw new ChsmError('RH_BAD_ENTRY', 'settings must be an object');
    for (const [k, v] of Object.entries(h.settings)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ChsmError('RH_BAD_ENTRY', `bad setting name ${JSON.stringify(k)}`);
      if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) throw new ChsmError('RH_BAD_ENTRY', `setting ${k} must be a string or a finite number`);
    }
  }
  if (h.kind === 'settings' && h.settings === undefined) throw new ChsmError('RH_BAD_ENTRY', 'a settings entry needs settings');
  const header: EntryHeader = { v: 1, kind: h.kind as EntryKind };
  if (typeof h.sql === 'string') header.sql = h.sql;
  if (typeof h.database === 'string') header.database = h.database;
  if (h.settings !== undefined) header.settings = h.settings as Record<string, SettingValue>;
  if (typeof h.format === 'string') header.format = h.format;
  if (structured) header.table = h.table as string;
  if (h.columns !== undefined) header.columns = [...(h.columns as string[])];
  if (h.kind === 'abandon') header.index = h.index as number;
  if (typeof h.mac === 'string') header.mac = h.mac;
  return { header, payload: nl < 0 ? new Uint8Array(0) : data.subarray(nl + 1) };
}
