// The KV command and query language, shared by the adapter (apply), its front (building
// commands) and the conformance kit's effect checks. Pure functions: apply must be deterministic.

export type KvCommand =
  | { op: 'set'; key: string; value: string }
  | { op: 'delete'; key: string }
  /** Compare-and-set: `expect: null` means "absent"; `value: null` deletes. */
  | { op: 'cas'; key: string; expect: string | null; value: string | null };

export type KvQuery = { op: 'get'; key: string } | { op: 'scan'; prefix?: string; limit?: number };

export type KvCommandResult = { ok: true } | { deleted: boolean } | { swapped: boolean; value: string | null };

export type KvApplyOutcome = { ok: true; result: KvCommandResult } | { ok: false; error: { code: string; message: string } };

const decoder = new TextDecoder('utf-8', { fatal: true });

function badCommand(message: string): KvApplyOutcome {
  return { ok: false, error: { code: 'BAD_COMMAND', message } };
}

const isStr = (v: unknown): v is string => typeof v === 'string';

/** Parses an entry's bytes into a command, or explains why it is not one. */
export function parseCommand(data: Uint8Array): KvCommand | string {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(data));
  } catch {
    return 'entry is not UTF-8 JSON';
  }
  if (typeof raw !== 'object' || raw === null) return 'command must be a JSON object';
  const c = raw as Record<string, unknown>;
  if (!isStr(c.key)) return 'command needs a string "key"';
  switch (c.op) {
    case 'set':
      if (!isStr(c.value)) return 'set needs a string "value"';
      return { op: 'set', key: c.key, value: c.value };
    case 'delete':
      return { op: 'delete', key: c.key };
    case 'cas':
      if (!(c.expect === null || isStr(c.expect))) return 'cas needs "expect": string or null';
      if (!(c.value === null || isStr(c.value))) return 'cas needs "value": string or null';
      return { op: 'cas', key: c.key, expect: c.expect, value: c.value };
    default:
      return `unknown op ${JSON.stringify(c.op)} (set, delete, cas)`;
  }
}

/** Applies one entry to `kv` in place. Empty data is a no-op. */
export function applyCommand(kv: Map<string, string>, data: Uint8Array): KvApplyOutcome | { ok: true; result: null } {
  if (data.length === 0) return { ok: true, result: null };
  const cmd = parseCommand(data);
  if (typeof cmd === 'string') return badCommand(cmd);
  switch (cmd.op) {
    case 'set':
      kv.set(cmd.key, cmd.value);
      return { ok: true, result: { ok: true } };
    case 'delete':
      return { ok: true, result: { deleted: kv.delete(cmd.key) } };
    case 'cas': {
      const current = kv.get(cmd.key) ?? null;
      if (current !== cmd.expect) return { ok: true, result: { swapped: false, value: current } };
      if (cmd.value === null) kv.delete(cmd.key);
      else kv.set(cmd.key, cmd.value);
      return { ok: true, result: { swapped: true, value: cmd.value } };
    }
  }
}

/** Byte order of UTF-8, the order snapshots are written in (same as Python's str sort). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function sortedEntries(kv: Map<string, string>): Array<[string, string]> {
  return [...kv].sort((x, y) => compareUtf8(x[0], y[0]));
}

/** Answers a query, or returns an error message for BAD_QUERY. */
export function runQuery(kv: Map<string, string>, query: unknown): { result: unknown } | { error: string } {
  if (typeof query !== 'object' || query === null) return { error: 'query must be a JSON object {"op":"get","key":..} or {"op":"scan"}' };
  const q = query as Record<string, unknown>;
  if (q.op === 'get') {
    if (!isStr(q.key)) return { error: 'get needs a string "key"' };
    return { result: { value: kv.get(q.key) ?? null } };
  }
  if (q.op === 'scan') {
    if (q.prefix !== undefined && !isStr(q.prefix)) return { error: 'scan "prefix" must be a string' };
    if (q.limit !== undefined && !(Number.isSafeInteger(q.limit) && (q.limit as number) >= 0)) return { error: 'scan "limit" must be an integer >= 0' };
    const prefix = (q.prefix as string | undefined) ?? '';
    const limit = (q.limit as number | undefined) ?? Infinity;
    const items: Array<{ key: string; value: string }> = [];
    for (const [key, value] of sortedEntries(kv)) {
      if (items.length >= limit) break;
      if (key.startsWith(prefix)) items.push({ key, value });
    }
    return { result: { items } };
  }
  return { error: `unknown query op ${JSON.stringify(q.op)} (get, scan)` };
}

// ---- snapshot format, shared with the Python example adapter:
// line 1: {"format":"raftd-kv-snapshot/1","lastLogIndex":N,"count":C}
// then C lines: ["key","value"], sorted by the UTF-8 bytes of the key; every line ends in \n.
export const SNAPSHOT_FORMAT = 'raftd-kv-snapshot/1';

export function encodeSnapshot(lastLogIndex: number, entries: Array<[string, string]>): Buffer {
  const lines = [JSON.stringify({ format: SNAPSHOT_FORMAT, lastLogIndex, count: entries.length })];
  for (const e of entries) lines.push(JSON.stringify(e));
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

/** Parses and fully validates snapshot bytes; throws Error with a reason. */
export function decodeSnapshot(bytes: Buffer): { lastLogIndex: number; kv: Map<string, string> } {
  const text = bytes.toString('utf8');
  if (!text.endsWith('\n')) throw new Error('snapshot is truncated (no final newline)');
  const lines = text.slice(0, -1).split('\n');
  let header: { format?: unknown; lastLogIndex?: unknown; count?: unknown };
  try {
    header = JSON.parse(lines[0]!) as typeof header;
  } catch {
    throw new Error('snapshot header is not JSON');
  }
  if (header.format !== SNAPSHOT_FORMAT) throw new Error(`snapshot format is ${JSON.stringify(header.format)}, expected ${SNAPSHOT_FORMAT}`);
  const idx = header.lastLogIndex;
  if (typeof idx !== 'number' || !Number.isSafeInteger(idx) || idx < 0) throw new Error('snapshot header has no valid lastLogIndex');
  if (header.count !== lines.length - 1) throw new Error(`snapshot header says ${String(header.count)} keys, body has ${lines.length - 1}`);
  const kv = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    let pair: unknown;
    try {
      pair = JSON.parse(lines[i]!);
    } catch {
      throw new Error(`snapshot line ${i + 1} is not JSON`);
    }
    if (!Array.isArray(pair) || pair.length !== 2 || !isStr(pair[0]) || !isStr(pair[1])) throw new Error(`snapshot line ${i + 1} is not ["key","value"]`);
    kv.set(pair[0], pair[1]);
  }
  return { lastLogIndex: idx, kv };
}
