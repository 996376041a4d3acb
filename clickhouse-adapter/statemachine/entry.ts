// The RaftHouse entry: what the gateway proposes to a group and the adapter applies.
//
//   <header: one line of JSON>\n<payload: raw bytes, optional>
//
// header = {"v":1, "kind":"insert"|"ddl"|"statement"|"settings", "sql":"...", "database":"<user db>",
//           "settings":{...}, "format":"JSONEachRow"}
// - insert: `sql` is `INSERT INTO t [(cols)] [FORMAT X]`; the payload is the data in format X (FORMAT may
//   be given in `format` instead of the SQL). Without a payload the SQL runs as is (INSERT ... SELECT,
//   INSERT ... VALUES with literals).
// - ddl / statement: `sql` is one statement (CREATE / ALTER / DROP / TRUNCATE / RENAME, or anything else).
// - settings: `settings` are stored in the group and become defaults of the group's later statements.
// - abandon: {"v":1,"kind":"abandon","index":i}: entry i (< this entry's index) kept failing with an error
//   that is not the entry's fault on the group's leader; every replica that has not applied i treats it
//   as failed (docs/design-notes.md, "Poison entries"). Proposed by the leader's RaftHouse, not by clients.
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
  /** abandon: the index of the entry given up. */
  index?: number;
}

export interface Entry {
  header: EntryHeader;
  payload: Uint8Array;
}

const KINDS: ReadonlySet<string> = new Set(['insert', 'ddl', 'statement', 'settings', 'abandon']);

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
  if (h.kind !== 'settings' && h.kind !== 'abandon' && (typeof h.sql !== 'string' || h.sql.trim() === '')) throw new ChsmError('RH_BAD_ENTRY', `a ${h.kind} entry needs sql`);
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
  if (h.kind === 'abandon') header.index = h.index as number;
  return { header, payload: nl < 0 ? new Uint8Array(0) : data.subarray(nl + 1) };
}
