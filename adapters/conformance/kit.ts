// The conformance kit: checks any application against the state-machine API v1
// (docs/state-machine-api.md) over HTTP, knowing nothing but the contract.
//
// Effects: to see whether an entry was applied twice, the kit must build entries with effects
// it can observe. By default it uses the KV command convention (entries
// {"op":"set","key","value"}, reads {"op":"get","key"} -> {"value"}), which every adapter that
// wants its effects checked accepts. With `kv: false` (CLI --no-kv) the kit sends only no-op and
// opaque entries and checks results, indexes and snapshots, not effects.

import * as http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import { signAppRequest } from '../../protocol/app-auth.js';
import { STATE_MACHINE_API_PATH } from '../../protocol/state-machine-api.js';
import { BODY_HEAD_BYTES, ENTRIES_CONTENT_TYPE, ENTRIES_HEADER, ENTRY_HEAD_BYTES, advertisesBinary, encodeEntries } from '../../protocol/entries-codec.js';

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP' | 'INFO';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  reason: string;
}

export interface ConformanceOptions {
  /** The application's base URL (what raftd gets as --app-url). */
  appUrl: string;
  /** First group number used; the kit uses this group and the next one. Must be unused. */
  group?: number;
  /** Restarts the application (kill + start); enables the durability check. */
  restart?: () => Promise<void>;
  /** Use the KV command convention for effect checks (default true). */
  kv?: boolean;
  /** Per-call deadline (default 10 s). */
  timeoutMs?: number;
  /**
   * The app secret: the kit signs its calls as raftd does (docs/state-machine-api.md "Authentication")
   * and checks that unsigned, wrongly signed, replayed and altered calls are refused. Undefined: the
   * app is taken to serve unsigned calls (insecure) and 'auth-required' is skipped.
   */
  appSecret?: string;
  /** Called with each finished check (the CLI prints it). */
  onResult?: (r: CheckResult) => void;
}

/** The check names, in order. Stable: scripts and tests refer to them. */
export const CHECKS = [
  'fresh-group-starts-at-0',
  'apply-advances-index',
  'noop-advances-index',
  'failing-entry-advances-index',
  'redelivery-skipped',
  'index-gap-rejected',
  'snapshot-deterministic',
  'snapshot-deterministic-under-updates',
  'recover-replaces-state',
  'restart-durable',
  'malformed-requests-rejected',
  'auth-required',
  'sync',
  'delete-group',
  'h2c',
  'binary-entries',
] as const;
export type CheckName = (typeof CHECKS)[number];

class Fail extends Error {}
class Skip extends Error {}
class Info extends Error {}

function must(cond: unknown, reason: string): asserts cond {
  if (!cond) throw new Fail(reason);
}

interface CallResult {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: unknown;
}

/** One entry of a binary UpdateEntries body; `len` lies about the data's length when set. */
interface BinaryEntry {
  index: number;
  data: string | Uint8Array;
  len?: number;
}

/** The binary UpdateEntries body (the codec raftd sends with), term 1; `count` and `len` may lie. */
function binaryBody(group: number, entries: BinaryEntry[], count = entries.length): Buffer {
  const body = encodeEntries(group, entries.map((e) => ({ index: e.index, term: 1, data: typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data })));
  body.writeUInt32BE(count, 4);
  let off = BODY_HEAD_BYTES;
  for (const e of entries) {
    const len = body.readUInt32BE(off + 16);
    if (e.len !== undefined) body.writeUInt32BE(e.len, off + 16);
    off += ENTRY_HEAD_BYTES + len;
  }
  return body;
}

const b64 = (s: string | Uint8Array): string => Buffer.from(typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('base64');
const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 300 ? `${s.slice(0, 300)}...` : s;
};

export async function runConformance(opts: ConformanceOptions): Promise<CheckResult[]> {
  const base = `${opts.appUrl.replace(/\/+$/, '')}${STATE_MACHINE_API_PATH}/`;
  const kv = opts.kv ?? true;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const G = opts.group ?? 1_000_000 + Math.floor(Math.random() * 1_000_000_000);
  const G2 = G + 1;
  const results: CheckResult[] = [];

  /** The headers raftd would sign this call with ({} without a secret). */
  function auth(method: string, url: string, payload: Buffer | undefined): Record<string, string> {
    if (opts.appSecret === undefined) return {};
    const u = new URL(url);
    return signAppRequest(opts.appSecret, method, u.pathname + u.search, payload ?? Buffer.alloc(0));
  }

  /** `auth`: headers instead of raftd's signature ('unsigned' sends none). */
  async function call(name: string, body: unknown, init: { raw?: Buffer | string; query?: string; method?: string; contentType?: string; auth?: Record<string, string> | 'unsigned' } = {}): Promise<CallResult> {
    const payload = Buffer.from(init.raw !== undefined ? init.raw : JSON.stringify(body));
    const url = base + name + (init.query ?? '');
    const method = init.method ?? 'POST';
    const signature = init.auth === 'unsigned' ? {} : init.auth ?? auth(method, url, method === 'GET' ? undefined : payload);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { 'content-type': init.contentType ?? (init.raw instanceof Buffer ? 'application/octet-stream' : 'application/json'), ...signature },
        ...(init.method === 'GET' ? {} : { body: payload }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new Fail(`${name}: no answer from the application (${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message})`);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, bytes, json };
  }

  async function ok(name: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await call(name, body);
    must(r.status >= 200 && r.status < 300, `${name} ${show(body)} answered HTTP ${r.status}: ${r.bytes.toString('utf8').slice(0, 300)}`);
    must(typeof r.json === 'object' && r.json !== null, `${name} answered a body that is not a JSON object: ${r.bytes.toString('utf8').slice(0, 200)}`);
    return r.json as Record<string, unknown>;
  }

  async function lastIndex(group: number): Promise<number> {
    const j = await ok('LastLogIndex', { group });
    must(Number.isSafeInteger(j.lastLogIndex) && (j.lastLogIndex as number) >= 0, `LastLogIndex answered ${show(j)}: lastLogIndex must be an integer >= 0`);
    return j.lastLogIndex as number;
  }

  type Wire = { index?: unknown; ok?: unknown; skipped?: unknown; result?: unknown; error?: { code?: unknown } };
  async function update(group: number, first: number, datas: Array<string | Uint8Array>): Promise<{ results: Wire[]; lastLogIndex: number }> {
    const entries = datas.map((d, k) => ({ index: first + k, term: 1, data: b64(d) }));
    const j = await ok('UpdateEntries', { group, entries });
    must(Array.isArray(j.results) && j.results.length === entries.length, `UpdateEntries answered ${show(j)}: needs one result per entry (${entries.length})`);
    (j.results as Wire[]).forEach((r, k) => must(r && r.index === first + k, `UpdateEntries result ${k} has index ${show(r?.index)}, expected ${first + k}`));
    must(Number.isSafeInteger(j.lastLogIndex), `UpdateEntries answered no integer lastLogIndex: ${show(j)}`);
    return { results: j.results as Wire[], lastLogIndex: j.lastLogIndex as number };
  }

  const applied = (r: Wire): boolean => r.ok === true && r.skipped !== true;
  const set = (key: string, value: string): string => (kv ? JSON.stringify({ op: 'set', key, value }) : '');
  async function get(group: number, key: string): Promise<unknown> {
    const j = await ok('Read', { group, query: { op: 'get', key } });
    must(typeof j.result === 'object' && j.result !== null && 'value' in j.result, `Read {op:"get"} answered ${show(j)}; the KV convention answers {"result":{"value":...}}`);
    return (j.result as { value: unknown }).value;
  }

  async function prepare(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    const j = await ok('PrepareSnapshot', { group });
    must(typeof j.prepared === 'string' && j.prepared.length > 0, `PrepareSnapshot answered ${show(j)}: "prepared" must be a non-empty string`);
    must(Number.isSafeInteger(j.lastLogIndex), `PrepareSnapshot answered ${show(j)}: no integer lastLogIndex`);
    return { prepared: j.prepared, lastLogIndex: j.lastLogIndex as number };
  }

  async function save(group: number, prepared: string): Promise<Buffer> {
    const r = await call('SaveSnapshot', { group, prepared });
    must(r.status === 200, `SaveSnapshot answered HTTP ${r.status}: ${r.bytes.toString('utf8').slice(0, 300)}`);
    must(r.bytes.length > 0, 'SaveSnapshot returned no bytes (a snapshot must at least carry its last index)');
    return r.bytes;
  }

  const firstDiff = (a: Buffer, b: Buffer): string => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return `${a.length} vs ${b.length} bytes, first difference at byte ${i}`;
  };

  // State shared between checks (each check leaves G at a known index).
  let idx = 0;
  let snap: { prepared: string; lastLogIndex: number; bytes: Buffer } | undefined;

  const checks: Record<CheckName, () => Promise<string>> = {
    'fresh-group-starts-at-0': async () => {
      const [a, b] = [await lastIndex(G), await lastIndex(G2)];
      must(a === 0 && b === 0, `groups ${G} and ${G2} report lastLogIndex ${a} and ${b}; a group the app has never seen must report 0 (or pass --group of an unused group)`);
      return `groups ${G}, ${G2} start at 0`;
    },
    'apply-advances-index': async () => {
      const r = await update(G, 1, [set('k1', 'a'), set('k2', 'b')]);
      must(r.results.every(applied), `entries 1..2 were not applied: ${show(r.results)}`);
      must(r.lastLogIndex === 2, `UpdateEntries answered lastLogIndex ${r.lastLogIndex}, expected 2`);
      const li = await lastIndex(G);
      must(li === 2, `LastLogIndex is ${li} after applying 1..2`);
      if (kv) {
        const v = await get(G, 'k1');
        must(v === 'a', `after set k1=a, Read get k1 answered ${show(v)}`);
      }
      idx = 2;
      return 'entries 1..2 applied, index 2';
    },
    'noop-advances-index': async () => {
      const r = await update(G, idx + 1, ['']);
      must(applied(r.results[0]!), `no-op entry ${idx + 1} answered ${show(r.results[0])}, expected {ok:true}`);
      must(r.lastLogIndex === idx + 1, `after a no-op at ${idx + 1} lastLogIndex is ${r.lastLogIndex}`);
      idx++;
      return `no-op at ${idx} advanced the index`;
    },
    'failing-entry-advances-index': async () => {
      const bad = kv ? JSON.stringify({ op: 'no-such-op', key: 'k1' }) : new Uint8Array([0xff, 0xfe, 0x00, 0x42]);
      const r = await update(G, idx + 1, [bad]);
      const res = r.results[0]!;
      must(res.skipped !== true, `a new entry was answered skipped: ${show(res)}`);
      if (kv) must(res.ok === false && typeof res.error?.code === 'string', `an unknown command should be {ok:false, error:{code,message}}, got ${show(res)}`);
      must(r.lastLogIndex === idx + 1, `after a failing entry at ${idx + 1} lastLogIndex is ${r.lastLogIndex}; a failed entry must still advance the index`);
      idx++;
      const r2 = await update(G, idx + 1, [set('k1', 'c')]);
      must(applied(r2.results[0]!) && r2.lastLogIndex === idx + 1, `the entry after a failing one was not applied: ${show(r2)}`);
      idx++;
      return `failing entry at ${idx - 1} advanced the index; ${idx} applied after it`;
    },
    'redelivery-skipped': async () => {
      // Entry 1 (set k1=a) was overwritten by a later set k1=c: applying it again would show.
      const r = await update(G, 1, [set('k1', 'a')]);
      const problems: string[] = [];
      if (r.results[0]!.skipped !== true) problems.push(`redelivered entry 1 answered ${show(r.results[0])}, expected {index:1, skipped:true}`);
      if (r.lastLogIndex !== idx) problems.push(`after redelivering entry 1 lastLogIndex is ${r.lastLogIndex}, expected ${idx}`);
      if (kv) {
        const v = await get(G, 'k1');
        if (v !== 'c') problems.push(`its effect was applied again (set k1=a): k1 is ${show(v)}, expected "c"`);
      }
      must(problems.length === 0, problems.join('; '));
      // A batch straddling the last index: the old part is skipped, the new part applied.
      const r2 = await update(G, idx - 1, [bad(), set('k1', 'c'), set('k3', 'x')]);
      must(r2.results[0]!.skipped === true && r2.results[1]!.skipped === true, `entries ${idx - 1}..${idx} (already applied) were not skipped: ${show(r2.results)}`);
      must(applied(r2.results[2]!), `new entry ${idx + 1} in a straddling batch was not applied: ${show(r2.results[2])}`);
      must(r2.lastLogIndex === idx + 1, `after the straddling batch lastLogIndex is ${r2.lastLogIndex}, expected ${idx + 1}`);
      idx++;
      if (kv) {
        const v = await get(G, 'k3');
        must(v === 'x', `k3 is ${show(v)} after set k3=x`);
      }
      return `redelivered entries skipped, effects not repeated; index ${idx}`;
    },
    'index-gap-rejected': async () => {
      const r = await call('UpdateEntries', { group: G, entries: [{ index: idx + 5, term: 1, data: '' }] });
      const code = (r.json as { error?: { code?: unknown } } | undefined)?.error?.code;
      must(r.status === 409 && code === 'INDEX_GAP', `an entry at ${idx + 5} after last index ${idx} answered HTTP ${r.status} ${r.bytes.toString('utf8').slice(0, 200)}; expected 409 INDEX_GAP`);
      const li = await lastIndex(G);
      must(li === idx, `after a rejected gap LastLogIndex is ${li}, expected ${idx}`);
      return 'gap answered 409 INDEX_GAP, nothing applied';
    },
    'snapshot-deterministic': async () => {
      if (kv) {
        // Enough state that the snapshot spans many chunks.
        const big = Array.from({ length: 400 }, (_, i) => set(`bulk-${String(i).padStart(4, '0')}`, 'v'.repeat(1000) + i));
        const r = await update(G, idx + 1, big);
        must(r.results.every(applied) && r.lastLogIndex === idx + big.length, `bulk load of ${big.length} entries failed: lastLogIndex ${r.lastLogIndex}`);
        idx += big.length;
      }
      const p = await prepare(G);
      must(p.lastLogIndex === idx, `PrepareSnapshot lastLogIndex is ${p.lastLogIndex}, the group is at ${idx}`);
      const a = await save(G, p.prepared);
      const b = await save(G, p.prepared);
      must(a.equals(b), `two SaveSnapshot of "${p.prepared}" differ: ${firstDiff(a, b)}`);
      snap = { ...p, bytes: a };
      return `SaveSnapshot of "${p.prepared}" identical twice (${a.length} bytes)`;
    },
    'snapshot-deterministic-under-updates': async () => {
      if (!snap) throw new Skip('needs snapshot-deterministic');
      // Open a SaveSnapshot stream, apply updates while it is open, then finish reading it.
      const saveBody = Buffer.from(JSON.stringify({ group: G, prepared: snap.prepared }));
      const res = await fetch(base + 'SaveSnapshot', { method: 'POST', headers: { 'content-type': 'application/json', ...auth('POST', base + 'SaveSnapshot', saveBody) }, body: saveBody, signal: AbortSignal.timeout(timeoutMs) });
      must(res.status === 200 && res.body, `SaveSnapshot answered HTTP ${res.status}`);
      const reader = res.body.getReader();
      const chunks: Buffer[] = [];
      const firstChunk = await reader.read();
      if (!firstChunk.done) chunks.push(Buffer.from(firstChunk.value));
      const n = 50;
      const r = await update(G, idx + 1, Array.from({ length: n }, (_, i) => set(kv ? `bulk-${String(i).padStart(4, '0')}` : 'x', `changed-${i}`)));
      must(r.lastLogIndex === idx + n, `updates during SaveSnapshot failed: lastLogIndex ${r.lastLogIndex}`);
      idx += n;
      for (;;) {
        const c = await reader.read();
        if (c.done) break;
        chunks.push(Buffer.from(c.value));
      }
      const during = Buffer.concat(chunks);
      must(during.equals(snap.bytes), `SaveSnapshot streamed while entries were applied differs from before: ${firstDiff(snap.bytes, during)}`);
      const after = await save(G, snap.prepared);
      must(after.equals(snap.bytes), `SaveSnapshot of "${snap.prepared}" after ${n} more entries differs: ${firstDiff(snap.bytes, after)}`);
      return `identical during and after ${n} concurrent updates`;
    },
    'recover-replaces-state': async () => {
      if (!snap) throw new Skip('needs snapshot-deterministic');
      // Give G2 state of its own first: recovery must replace it, not merge.
      const pre = await update(G2, 1, [set('only-in-g2', 'y'), '']);
      must(pre.lastLogIndex === 2, `could not prepare group ${G2}: ${show(pre)}`);
      const garbage = await call('RecoverFromSnapshot', undefined, { raw: Buffer.from('this is not a snapshot'), query: `?group=${G2}` });
      must(garbage.status >= 400 && garbage.status < 500, `RecoverFromSnapshot of garbage answered HTTP ${garbage.status}, expected 4xx (BAD_SNAPSHOT)`);
      must((await lastIndex(G2)) === 2, 'a rejected RecoverFromSnapshot changed the group');
      const r = await call('RecoverFromSnapshot', undefined, { raw: snap.bytes, query: `?group=${G2}` });
      must(r.status === 200, `RecoverFromSnapshot answered HTTP ${r.status}: ${r.bytes.toString('utf8').slice(0, 300)}`);
      const li = (r.json as { lastLogIndex?: unknown } | undefined)?.lastLogIndex;
      must(li === snap.lastLogIndex, `RecoverFromSnapshot answered lastLogIndex ${show(li)}, the snapshot is at ${snap.lastLogIndex}`);
      must((await lastIndex(G2)) === snap.lastLogIndex, `LastLogIndex of the recovered group is not ${snap.lastLogIndex}`);
      if (kv) {
        const gone = await get(G2, 'only-in-g2');
        must(gone === null, `a key the recovered group had before the snapshot survived (${show(gone)}): recovery merged instead of replacing`);
        const k1 = await get(G2, 'k1');
        must(k1 === 'c', `k1 in the recovered group is ${show(k1)}, expected "c"`);
      }
      const p2 = await prepare(G2);
      const bytes2 = await save(G2, p2.prepared);
      must(bytes2.equals(snap.bytes), `a snapshot of the recovered group differs from the snapshot it was recovered from: ${firstDiff(snap.bytes, bytes2)}`);
      const next = await update(G2, snap.lastLogIndex + 1, [set('after', 'z')]);
      must(applied(next.results[0]!), `the recovered group did not accept entry ${snap.lastLogIndex + 1}: ${show(next.results)}`);
      return `group ${G2} replaced by the snapshot at ${snap.lastLogIndex}; its own snapshot is byte-identical`;
    },
    'restart-durable': async () => {
      if (!opts.restart) throw new Skip('no restart command given (--restart-cmd)');
      const before = await lastIndex(G);
      const before2 = await lastIndex(G2);
      const k3 = kv ? await get(G, 'k3') : undefined;
      await opts.restart();
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await lastIndex(G);
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Fail(`the application did not answer within 30 s of the restart: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const after = await lastIndex(G);
      must(after === before, `LastLogIndex was ${before} before the restart and is ${after} after it`);
      const after2 = await lastIndex(G2);
      must(after2 === before2, `the recovered group's LastLogIndex was ${before2} before the restart and is ${after2} after it`);
      if (kv) {
        const v = await get(G, 'k3');
        must(v === k3, `k3 was ${show(k3)} before the restart and is ${show(v)} after it`);
        const k1 = await get(G, 'k1');
        must(k1 === 'c', `k1 is ${show(k1)} after the restart, expected "c"`);
      }
      const r = await update(G, after, [set('k1', 'c')]);
      must(r.results[0]!.skipped === true, `entry ${after}, redelivered after the restart, answered ${show(r.results[0])}`);
      const r2 = await update(G, after + 1, [set('k4', 'w')]);
      must(applied(r2.results[0]!), `entry ${after + 1} after the restart answered ${show(r2.results[0])}`);
      idx = after + 1;
      return `index ${before} and state survived the restart`;
    },
    'auth-required': async () => {
      if (opts.appSecret === undefined) throw new Skip('no app secret given (--app-secret-file): the app is taken to serve unsigned calls, which lets any local process rewrite its state');
      const before = await lastIndex(G);
      if (before < 1) throw new Skip('needs an applied entry to redeliver (apply-advances-index failed)');
      const forgedValue = `forged-${randomBytes(6).toString('hex')}`;
      const forged = { group: G, entries: [{ index: before + 1, term: 1, data: b64(set('auth-probe', forgedValue)) }] };
      const forgedBytes = Buffer.from(JSON.stringify(forged));
      const redelivery = Buffer.from(JSON.stringify({ group: G, entries: [{ index: before, term: 1, data: '' }] }));
      const url = base + 'UpdateEntries';
      const captured = auth('POST', url, redelivery);
      const first = await call('UpdateEntries', undefined, { raw: redelivery, contentType: 'application/json', auth: captured });
      must(first.status === 200, `a correctly signed redelivery of index ${before} answered HTTP ${first.status}: ${first.bytes.toString('utf8').slice(0, 200)}`);
      const refusals: Array<[string, Buffer, Record<string, string> | 'unsigned']> = [
        ['an unsigned UpdateEntries', forgedBytes, 'unsigned'],
        ['an UpdateEntries signed with a wrong secret', forgedBytes, signAppRequest(randomBytes(24).toString('base64url'), 'POST', new URL(url).pathname, forgedBytes)],
        ['the secret itself sent as a bearer token', forgedBytes, { authorization: `Bearer ${opts.appSecret}` }],
        ['a signed call replayed (same nonce)', redelivery, captured],
        ['a signed call whose body was altered', forgedBytes, auth('POST', url, redelivery)],
        ['a signature made for another call', forgedBytes, auth('POST', base + 'LastLogIndex', forgedBytes)],
      ];
      for (const [what, bytes, headers] of refusals) {
        const r = await call('UpdateEntries', undefined, { raw: bytes, contentType: 'application/json', auth: headers });
        must(r.status === 401, `${what} answered HTTP ${r.status}, expected 401: ${r.bytes.toString('utf8').slice(0, 200)}`);
        const code = (r.json as { error?: { code?: unknown } } | undefined)?.error?.code;
        must(typeof code === 'string', `${what}: the 401 has no {"error":{"code"}} body: ${r.bytes.toString('utf8').slice(0, 200)}`);
      }
      const unsignedRead = await call('LastLogIndex', { group: G }, { auth: 'unsigned' });
      must(unsignedRead.status === 401, `an unsigned LastLogIndex answered HTTP ${unsignedRead.status}, expected 401 (every call is authenticated)`);
      const after = await lastIndex(G);
      must(after === before, `refused calls changed the state: LastLogIndex ${before} -> ${after}`);
      if (kv) {
        const v = await get(G, 'auth-probe');
        must(v !== forgedValue, 'a refused forged entry took effect (Read get auth-probe shows its value)');
      }
      return `unsigned, wrong-secret, bearer, replayed, altered and misdirected calls refused with 401; index still ${after}`;
    },
    'malformed-requests-rejected': async () => {
      const li = await lastIndex(G);
      const e = (index: unknown, data: unknown = '') => ({ index, term: 1, data });
      const cases: Array<[string, string, { raw?: string | Buffer; query?: string; method?: string; body?: unknown }]> = [
        ['body that is not JSON', 'UpdateEntries', { raw: '{"group":' }],
        ['JSON that is not an object', 'UpdateEntries', { raw: '[1,2]' }],
        ['missing group', 'UpdateEntries', { body: { entries: [e(li + 1)] } }],
        ['negative group', 'UpdateEntries', { body: { group: -1, entries: [e(1)] } }],
        ['group that is a string of letters', 'LastLogIndex', { body: { group: 'abc' } }],
        ['entries not an array', 'UpdateEntries', { body: { group: G, entries: 'x' } }],
        ['empty entries', 'UpdateEntries', { body: { group: G, entries: [] } }],
        ['index not an integer', 'UpdateEntries', { body: { group: G, entries: [e('one')] } }],
        ['data not base64', 'UpdateEntries', { body: { group: G, entries: [e(li + 1, '!!not base64!!')] } }],
        ['non-contiguous indexes', 'UpdateEntries', { body: { group: G, entries: [e(li + 1), e(li + 3)] } }],
        ['Read without group', 'Read', { body: { query: null } }],
        ['SaveSnapshot without prepared', 'SaveSnapshot', { body: { group: G } }],
        ['RecoverFromSnapshot without ?group', 'RecoverFromSnapshot', { raw: Buffer.from('x') }],
        ['unknown call', 'NoSuchCall', { body: { group: G } }],
      ];
      const wrong: string[] = [];
      for (const [what, name, c] of cases) {
        let r: CallResult;
        try {
          r = await call(name, c.body, { ...(c.raw !== undefined ? { raw: c.raw } : {}), ...(c.query ? { query: c.query } : {}) });
        } catch (err) {
          wrong.push(`${what}: ${(err as Error).message}`);
          continue;
        }
        const code = (r.json as { error?: { code?: unknown } } | undefined)?.error?.code;
        if (r.status < 400 || r.status > 499) wrong.push(`${what}: HTTP ${r.status}`);
        else if (typeof code !== 'string') wrong.push(`${what}: HTTP ${r.status} without {"error":{"code":...}}`);
      }
      must(wrong.length === 0, `expected a 4xx with a JSON error for: ${wrong.join('; ')}`);
      const after = await lastIndex(G);
      must(after === li, `malformed requests changed LastLogIndex from ${li} to ${after}`);
      return `${cases.length} malformed requests answered 4xx with an error code; the app still answers`;
    },
    sync: async () => {
      const r = await call('Sync', { group: G });
      if (r.status === 501 || r.status === 404) throw new Info(`the app does not offer Sync (HTTP ${r.status}); fine unless raftd runs with RAFT_SYNC=1`);
      must(r.status === 200, `Sync answered HTTP ${r.status}: ${r.bytes.toString('utf8').slice(0, 200)}`);
      const li = (r.json as { lastLogIndex?: unknown } | undefined)?.lastLogIndex;
      must(li === idx, `Sync answered lastLogIndex ${show(li)}, expected ${idx}`);
      return `Sync answered ${idx}`;
    },
    'delete-group': async () => {
      const r = await call('DeleteGroup', { group: G2 });
      if (r.status === 501 || r.status === 404) throw new Info(`the app does not offer DeleteGroup (HTTP ${r.status})`);
      must(r.status === 200, `DeleteGroup answered HTTP ${r.status}`);
      const li = await lastIndex(G2);
      must(li === 0, `after DeleteGroup, LastLogIndex of group ${G2} is ${li}, expected 0`);
      const again = await call('DeleteGroup', { group: G2 });
      must(again.status === 200, `a second DeleteGroup answered HTTP ${again.status}; it must be idempotent`);
      return `group ${G2} deleted, LastLogIndex back to 0`;
    },
    h2c: async () => {
      const spoken = await new Promise<string | undefined>((resolve) => {
        const session = http2.connect(opts.appUrl);
        const timer = setTimeout(() => {
          session.destroy();
          resolve(undefined);
        }, 3000);
        session.on('error', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
        const h2Body = Buffer.from(JSON.stringify({ group: G }));
        const req = session.request({ ':method': 'POST', ':path': new URL(base + 'LastLogIndex').pathname, 'content-type': 'application/json', ...auth('POST', base + 'LastLogIndex', h2Body) });
        req.on('error', () => undefined);
        let text = '';
        req.on('data', (d: Buffer) => (text += d.toString('utf8')));
        req.on('end', () => {
          clearTimeout(timer);
          session.close();
          resolve(text);
        });
        req.end(h2Body);
      });
      if (spoken === undefined) throw new Info('HTTP/1.1 only (raftd falls back to it)');
      must(spoken.includes('lastLogIndex'), `h2c LastLogIndex answered ${spoken.slice(0, 200)}`);
      return 'speaks h2c with prior knowledge (raftd will use HTTP/2)';
    },
    'binary-entries': async () => {
      if (!advertisesBinary((await call('LastLogIndex', { group: G })).headers.get(ENTRIES_HEADER))) throw new Info('no "raftd-entries: binary" on LastLogIndex: raftd sends UpdateEntries as JSON');
      const li = await lastIndex(G);
      const send = async (entries: BinaryEntry[], count?: number): Promise<CallResult> =>
        call('UpdateEntries', undefined, { raw: binaryBody(G, entries, count), contentType: ENTRIES_CONTENT_TYPE });
      const expectApplied = (r: CallResult, what: string, first: number, n: number): Wire[] => {
        must(r.status === 200, `binary UpdateEntries (${what}) answered HTTP ${r.status}: ${r.bytes.toString('utf8').slice(0, 300)}`);
        const j = r.json as { results?: unknown; lastLogIndex?: unknown } | undefined;
        must(Array.isArray(j?.results) && j.results.length === n, `binary UpdateEntries (${what}) answered ${show(j)}: needs ${n} results`);
        (j.results as Wire[]).forEach((x, k) => must(x && x.index === first + k, `binary UpdateEntries (${what}) result ${k} has index ${show(x?.index)}, expected ${first + k}`));
        must(j.lastLogIndex === first + n - 1, `binary UpdateEntries (${what}) answered lastLogIndex ${show(j.lastLogIndex)}, expected ${first + n - 1}`);
        return j.results as Wire[];
      };
      const r1 = expectApplied(await send([{ index: li + 1, data: set('kb', 'bin1') }, { index: li + 2, data: '' }]), 'a command and a no-op', li + 1, 2);
      must(applied(r1[0]!) && applied(r1[1]!), `binary UpdateEntries answered ${show(r1)}: both entries should be applied`);
      const r2 = expectApplied(await send([{ index: li + 2, data: '' }, { index: li + 3, data: set('kb', 'bin2') }]), 'a redelivery', li + 2, 2);
      must(r2[0]!.skipped === true && applied(r2[1]!), `redelivered binary entries answered ${show(r2)}: the first must be skipped, the second applied`);
      if (kv) {
        const v = await get(G, 'kb');
        must(v === 'bin2', `after binary UpdateEntries k "kb" reads ${show(v)}, expected "bin2"`);
      }
      const at = li + 3;
      const good = binaryBody(G, [{ index: at + 1, data: set('kb', 'bad') }]);
      const malformed: Array<[string, Buffer]> = [
        ['truncated data', good.subarray(0, good.length - 1)],
        ['truncated header', good.subarray(0, 6)],
        ['count above the entries present', binaryBody(G, [{ index: at + 1, data: set('kb', 'bad') }], 2)],
        ['count 0', binaryBody(G, [], 0)],
        ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
        ['length beyond the body', binaryBody(G, [{ index: at + 1, data: set('kb', 'bad'), len: 0xffffffff }])],
      ];
      const wrong: string[] = [];
      for (const [what, body] of malformed) {
        const r = await call('UpdateEntries', undefined, { raw: body, contentType: ENTRIES_CONTENT_TYPE });
        const code = (r.json as { error?: { code?: unknown } } | undefined)?.error?.code;
        if (r.status !== 400 || typeof code !== 'string') wrong.push(`${what}: HTTP ${r.status} ${show(r.json)}`);
      }
      must(wrong.length === 0, `expected 400 with a JSON error for malformed binary bodies: ${wrong.join('; ')}`);
      const after = await lastIndex(G);
      must(after === at, `malformed binary bodies changed LastLogIndex from ${at} to ${after}`);
      return `binary UpdateEntries advertised and applied, redelivery skipped, ${malformed.length} malformed bodies answered 400`;
    },
  };

  function bad(): string {
    return kv ? JSON.stringify({ op: 'no-such-op', key: 'k1' }) : '';
  }

  for (const name of CHECKS) {
    let r: CheckResult;
    try {
      r = { name, status: 'PASS', reason: await checks[name]() };
    } catch (e) {
      const status: CheckStatus = e instanceof Skip ? 'SKIP' : e instanceof Info ? 'INFO' : 'FAIL';
      r = { name, status, reason: e instanceof Fail || e instanceof Skip || e instanceof Info ? e.message : `unexpected error: ${(e as Error).stack ?? String(e)}` };
    }
    results.push(r);
    opts.onResult?.(r);
  }
  // Leave no test groups behind (best effort; DeleteGroup is optional).
  await call('DeleteGroup', { group: G }).catch(() => undefined);
  await call('DeleteGroup', { group: G2 }).catch(() => undefined);
  return results;
}
