// The embedded engine: ClickHouse in-process through chdb, on one data directory per process.
//
// What chdb does (measured, chdb 3.4): every async call runs on a libuv worker thread, so the event
// loop stays free; but one chdb connection (Session) runs its calls ONE AT A TIME, and a failed call
// leaves its partial output in the connection, where it is returned in front of the next call's
// result. So each call checks a Session out of a pool for its own use, and a Session on which any call
// failed is closed, never reused: no call waits behind another's on a shared connection, and no byte
// of one result can appear in another.
//
// Per-call database and settings must not leak between calls either, and chdb has no per-query
// settings: `USE` and `SET` stick to a Session. So the pool is keyed by the settings a Session was
// set up for (opening one costs about 1.5 ms here, far more while chdb is busy; a pooled one costs
// nothing), and a pooled Session is moved to the call's database with `USE` (see contextKey).
// A stream holds its (pooled) Session until it ends: chdb allows one open stream per Session.
//
// Query parameters are set on a fresh Session with `SET param_<name> = '<text>'` (sql.ts
// paramsStatement): ClickHouse then parses each as a server parses an HTTP request's, and calls with
// parameters run in parallel (chdb's own binding escapes strings again and runs one call at a time).
//
// Cancellation: chdb's own abort only stops the wait, the computation runs on. A query given a
// queryId is sent as `/*rh_query_id:<id>*/ <sql>`, so it can be found in system.processes by that
// prefix and cancelled for real with KILL QUERY (run on a separate control Session); the engine
// repeats the KILL until the call settles, since the query may not be registered yet at the first.

import { mkdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Session } from 'chdb';
import type { ChdbResult } from 'chdb';
import { probeCapabilities } from './capabilities.js';
import { ClickHouseError, EngineError, clickHouseError, parseClickHouseError } from './errors.js';
import { codeName } from './codes.js';
import { insertRaw, RAW_INSERT_ANY_FORMAT } from './chdb-raw.js';
import { collectBytes, countPayloadRows, dataInsertStatement, paramsStatement, sessionInsertStatement, parseInsert, quoteIdent, quoteString, refuseSessionStatements, setStatement } from './sql.js';
import { firstSemicolon } from '../sql/scanner.js';
import { YoungGcPacer } from './young-gc.js';
import type {
  Capabilities, ClickHouseEngine, DataInsert, EngineSession, ExecOptions, InsertOptions, SessionInsert, InsertResult, QueryOptions, Settings,
} from './types.js';

export interface EmbeddedOptions {
  /** The process's one chdb data directory (created if missing). */
  dataDir: string;
  /** Open a Session that refuses writes (readonly=1): INSERT, DDL, SET and SETTINGS get Code 164. */
  readonly?: boolean;
  /** With `readonly`, still allow per-call settings (ClickHouse readonly=2). */
  allowSettings?: boolean;
  /** More `clickhouse local` arguments, e.g. `--backups.allowed_path=/dir`. Never `--path`. */
  connectionArgs?: string[];
}

// chdb's raw insert takes only these (text) formats; anything else goes through inline SQL.
const RAW_FORMATS: Readonly<Record<string, 'JSONEachRow' | 'JSONCompactEachRow' | 'CSV' | 'CSVWithNames' | 'TabSeparated' | 'TabSeparatedWithNames'>> = {
  jsoneachrow: 'JSONEachRow',
  jsoncompacteachrow: 'JSONCompactEachRow',
  csv: 'CSV',
  csvwithnames: 'CSVWithNames',
  tsv: 'TabSeparated',
  tabseparated: 'TabSeparated',
  tsvwithnames: 'TabSeparatedWithNames',
  tabseparatedwithnames: 'TabSeparatedWithNames',
};

/** Maps anything chdb throws to ClickHouseError (keeping ClickHouse's code) or EngineError. */
function mapChdbError(e: unknown): Error {
  if (e instanceof ClickHouseError || e instanceof EngineError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const chCode = (err as { clickhouseCode?: unknown }).clickhouseCode;
  const parsed = parseClickHouseError(err.message, err);
  if (parsed) return parsed;
  if (typeof chCode === 'number') {
    return new ClickHouseError(chCode, codeName(chCode), err.message, err.message, { cause: err });
  }
  const kind = (err as { code?: unknown }).code;
  if (kind === 'CHDB_CLOSED') return new EngineError('ENGINE_CLOSED', err.message, { cause: err });
  if (kind === 'CHDB_CONNECTION') return new EngineError('ENGINE_OPEN_FAILED', err.message, { cause: err });
  if (kind === 'CHDB_INSERT' || kind === 'CHDB_BIND') return new EngineError('ENGINE_BAD_REQUEST', err.message, { cause: err });
  return new EngineError('ENGINE_PROTOCOL', err.message, { cause: err });
}

function toBuffer(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function hasContext(opts: { database?: string | undefined; settings?: Settings | undefined } | undefined): boolean {
  return !!opts && (opts.database !== undefined || (opts.settings !== undefined && Object.keys(opts.settings).length > 0));
}

const POOL_PER_KEY = 8;
/**
 * Calls (exec, query, insert on a pooled Session) running at once; more wait in line. Past a few,
 * chdb only contends: at 256 groups the state machine had hundreds in flight, each opening its own
 * Session, and opening one or starting a query blocked the event loop for most of the time (issue 24).
 * Streams are not counted (one is held while its reader consumes it), nor read-only engines' calls.
 */
const MAX_RUNNING_CALLS = 8;
const POOL_KEYS = 16;
// A `;` followed by more text: several statements in one call.
const MULTI_STATEMENT_RE = /;\s*\S/;

/**
 * The pool key: the settings, and whether a database is named at all, but not which one. A pooled
 * Session is switched to the call's database with one `USE` (well under a millisecond): keyed by
 * database too, a state machine of 256 groups (a database each) thrashed the pool, and every call
 * opened and closed a Session, which blocks the event loop while chdb is busy (issue 24).
 */
function contextKey(opts: { database?: string | undefined; settings?: Settings | undefined } | undefined): string {
  const settings = Object.entries(opts?.settings ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([opts?.database !== undefined, settings.map(([k, v]) => [k, typeof v, String(v)])]);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Query ids the engine tags a statement with: they go into a comment, so nothing that could end it. */
const TAGGABLE_ID_RE = /^[A-Za-z0-9-]{1,64}$/;
/** A `...-signature' = '<64 hex>'` header value in a statement's text (a placed read's url() leg), and its mask. */
const SIGNATURE_PATTERN = quoteString("(-signature' = ')[0-9a-fA-F]{64}");
const SIGNATURE_MASK = quoteString('\\1<masked>');
const KILL_RETRY_MS = 200;

function tagOf(queryId: string): string {
  return `/*rh_query_id:${queryId}*/`;
}

class EmbeddedEngine implements ClickHouseEngine {
  readonly kind = 'embedded' as const;
  readonly readonly: boolean;
  private caps: Capabilities | undefined;
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Idle Sessions set up for one (database, settings) context, by contextKey(). */
  private readonly idle = new Map<string, Session[]>();
  /** Calls holding a slot of MAX_RUNNING_CALLS, and the calls waiting for one (first come, first served). */
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  /** The database each Session of a context that names one is in (set by contextSession or checkout's USE). */
  private readonly sessionDb = new WeakMap<Session, string>();
  /** Runs KILL QUERY; opened on first use, without readonly (a read-only Session may not kill). */
  private control: Session | undefined;
  private readonly controlArgs: string[];

  constructor(
    private readonly dir: string,
    private readonly args: string[],
    private readonly main: Session,
    readonly_: boolean,
  ) {
    this.readonly = readonly_;
    this.controlArgs = args.filter((a) => !a.startsWith('--readonly'));
  }

  get capabilities(): Capabilities {
    if (!this.caps) throw new EngineError('ENGINE_PROTOCOL', 'capabilities not probed yet');
    return this.caps;
  }

  setCapabilities(c: Capabilities): void {
    this.caps = c;
  }

  /** Runs one operation, mapping errors and keeping close() from tearing down under it. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new EngineError('ENGINE_CLOSED', 'the embedded engine is closed');
    const p = (async () => {
      try {
        return await fn();
      } catch (e) {
        throw mapChdbError(e);
      }
    })();
    this.inFlight.add(p);
    try {
      return await p;
    } finally {
      this.inFlight.delete(p);
    }
  }

  private openChdb(): Session {
    return this.args.length ? new Session(this.dir, { connectionArgs: this.args }) : new Session(this.dir);
  }

  /** Opens a Session with USE/SET applied; the caller closes it. */
  private async contextSession(opts: { database?: string | undefined; settings?: Settings | undefined } | undefined): Promise<Session> {
    const set = setStatement(opts?.settings); // validates names before opening anything
    const s = this.openChdb();
    try {
      if (opts?.database !== undefined) await s.queryAsync(`USE ${quoteIdent(opts.database)}`, { format: 'TabSeparated' });
      if (set) await s.queryAsync(set, { format: 'TabSeparated' });
      if (opts?.database !== undefined) this.sessionDb.set(s, opts.database);
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /**
   * Runs `fn` on a Session of its own, set up for the call's (database, settings) context. Idle
   * Sessions are kept in a small pool keyed by that context, so repeated calls with the same database
   * and settings (the gateway's reads) skip the set-up. A Session is pooled again only when the call
   * succeeded (a failed call leaves output behind in it, see the top of this file), held one
   * statement (several might have changed its state) and `keep` is true (false: `fn` changes the
   * Session's state, e.g. sets query parameters).
   */
  private async withSession<T>(
    opts: { database?: string | undefined; settings?: Settings | undefined } | undefined,
    sql: string,
    fn: (s: Session) => Promise<T>,
    keep = true,
  ): Promise<T> {
    // Only the writer waits in line: a read-only engine's reads may wait on other nodes' reads (url()
    // legs), and a bounded line on both sides could wait on itself.
    if (!this.readonly && this.running >= MAX_RUNNING_CALLS) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      // A Session that will not be pooled again (keep = false) is a fresh one: a pooled one would be lost.
      const { key, s } = await this.checkout(opts, keep);
      let reusable = keep && !MULTI_STATEMENT_RE.test(sql.trim().replace(/;+$/, ''));
      try {
        return await fn(s);
      } catch (e) {
        reusable = false;
        throw e;
      } finally {
        this.release(key, s, reusable);
      }
    } finally {
      // The slot passes straight to the next waiting call (running stays the same), else frees up.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /**
   * A Session for the call's context: an idle pooled one (`pooled`), switched to the call's database
   * if it was last in another, else a fresh one set up for it.
   */
  private async checkout(
    opts: { database?: string | undefined; settings?: Settings | undefined } | undefined,
    pooled: boolean,
  ): Promise<{ key: string; s: Session }> {
    const key = contextKey(hasContext(opts) ? opts : undefined);
    const s = pooled ? this.idle.get(key)?.pop() : undefined;
    if (!s) return { key, s: hasContext(opts) ? await this.contextSession(opts) : this.openChdb() };
    const db = opts?.database;
    if (db !== undefined && this.sessionDb.get(s) !== db) {
      try {
        await s.queryAsync(`USE ${quoteIdent(db)}`, { format: 'TabSeparated' });
      } catch (e) {
        s.close();
        throw e;
      }
      this.sessionDb.set(s, db);
    }
    return { key, s };
  }

  private release(key: string, s: Session, reusable: boolean): void {
    const list = this.idle.get(key) ?? [];
    if (!reusable || this.closed || list.length >= POOL_PER_KEY) {
      s.close();
      return;
    }
    if (!this.idle.has(key)) {
      if (this.idle.size >= POOL_KEYS) {
        // Forget the least recently added context.
        const [oldest, sessions] = this.idle.entries().next().value as [string, Session[]];
        for (const x of sessions) x.close();
        this.idle.delete(oldest);
      }
      this.idle.set(key, list);
    }
    list.push(s);
  }

  exec(sql: string, opts?: ExecOptions): Promise<void> {
    return this.run(() => {
      refuseSessionStatements(sql);
      return this.withSession(opts, sql, async (s) => {
        await s.queryAsync(sql, { format: 'TabSeparated' });
      });
    });
  }

  query(sql: string, opts?: QueryOptions): Promise<Buffer> {
    const format = opts?.format ?? 'JSONEachRow';
    return this.run(async () => {
      refuseSessionStatements(sql);
      const id = opts?.queryId !== undefined && TAGGABLE_ID_RE.test(opts.queryId) ? opts.queryId : undefined;
      const text = id ? `${tagOf(id)} ${sql}` : sql;
      // Parameters are set on the Session (see paramsStatement), which is then not pooled again: they
      // would stay set for its next call. Not chdb's binding, which also runs one call at a time per process.
      const setParams = opts?.params ? paramsStatement(opts.params) : undefined;
      const running = this.withSession(opts, sql, async (s) => {
        if (setParams) await s.queryAsync(setParams, { format: 'TabSeparated' });
        const r: ChdbResult = await s.queryAsync(text, { format });
        // chdb's "rows read" are the rows of the result (measured: 1 for SELECT sum(number) FROM numbers(1000)).
        opts?.onStats?.({ resultRows: r.rowsRead });
        return toBuffer(r.bytes());
      }, setParams === undefined);
      if (!id || (!opts?.signal && !opts?.timeoutMs)) return running;
      return this.cancellable(running, id, opts);
    });
  }

  /**
   * Kills the query tagged `id` when `opts.signal` aborts or `opts.timeoutMs` passes, again every
   * KILL_RETRY_MS until it settles (it may not be in system.processes yet when the first KILL runs).
   */
  private async cancellable<T>(running: Promise<T>, id: string, opts: QueryOptions): Promise<T> {
    const watch = this.killWatch(id, opts);
    try {
      return await running;
    } catch (e) {
      throw watch.mapError(e);
    } finally {
      watch.done();
    }
  }

  /** The KILL side of cancellable(), for calls (streams) that settle in several steps. */
  killWatch(id: string, opts: QueryOptions): { done: () => void; mapError: (e: unknown) => unknown } {
    let settled = false;
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      if (settled || killer) return;
      const once = (): void => {
        if (settled) return;
        void this.killTagged(id).catch(() => undefined);
        killer = setTimeout(once, KILL_RETRY_MS);
      };
      once();
    };
    const deadline = opts.timeoutMs ? setTimeout(() => { timedOut = true; kill(); }, opts.timeoutMs) : undefined;
    opts.signal?.addEventListener('abort', kill, { once: true });
    if (opts.signal?.aborted) kill();
    return {
      mapError: (e) => timedOut
        ? clickHouseError('TIMEOUT_EXCEEDED', `Timeout exceeded: maximum: ${opts.timeoutMs} ms`, { cause: e })
        : e,
      done: () => {
        settled = true;
        if (deadline) clearTimeout(deadline);
        if (killer) clearTimeout(killer);
        opts.signal?.removeEventListener('abort', kill);
      },
    };
  }

  /** KILL QUERY for the statement tagged `id`, on the control Session (never a busy one). */
  private async killTagged(id: string): Promise<void> {
    if (this.closed) return;
    this.control ??= new Session(this.dir, { connectionArgs: this.controlArgs });
    await this.control.queryAsync(`KILL QUERY WHERE startsWith(query, '${tagOf(id)}') ASYNC`, { format: 'TabSeparated' });
  }

  /**
   * The reads running, as system.processes rows. A placed read's url() legs carry a signature header
   * (placed/auth.ts) valid for the hold's lease: masked, so a client reading its own queries cannot
   * replay a leg.
   */
  processesSource(ids: ReadonlyMap<string, string>): string {
    const tags = [...ids.keys()].filter((k) => TAGGABLE_ID_RE.test(k));
    const from = tags.map((k) => `'${k}'`).join(', ');
    const to = tags.map((k) => quoteString(ids.get(k)!)).join(', ');
    // The inner SELECT names the id before REPLACE redefines query_id and query (an alias would shadow
    // the column in WHERE).
    return `(SELECT * EXCEPT (rh_id) REPLACE (transform(rh_id, [${from}]::Array(String), [${to}]::Array(String), '') AS query_id, `
      + `replaceRegexpAll(substring(query, position(query, '*/') + 3), ${SIGNATURE_PATTERN}, ${SIGNATURE_MASK}) AS query) `
      + `FROM (SELECT *, extract(query, '^/[*]rh_query_id:([A-Za-z0-9-]+)[*]/') AS rh_id FROM system.processes) WHERE rh_id IN (${from || "''"}))`;
  }

  queryStream(sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array> {
    // Sequential steps of the generator each go through run(), so close() waits for a fetch in flight.
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        refuseSessionStatements(sql);
        // A pooled Session, as query() takes (no set-up cost for a small read); pooled again only when
        // the stream ran to its end (a failed or abandoned one may have left output behind) and set no
        // query parameters (they would stay set for its next call: such a stream takes a fresh Session).
        const withParams = !!opts?.params && Object.keys(opts.params).length > 0;
        const { key, s } = await self.run(() => self.checkout(opts, !withParams));
        let reusable = false;
        try {
          reusable = (yield* self.streamOn(s, sql, opts)) && !withParams && !MULTI_STATEMENT_RE.test(sql.trim().replace(/;+$/, ''));
        } finally {
          self.release(key, s, reusable);
        }
      },
    };
  }

  /**
   * Streams `sql` on `s` chunk by chunk as chdb produces them (about 0.5 MiB each, measured): nothing
   * is held beyond the chunk in hand. A tagged query (queryId) is KILLed on abort or deadline, as
   * query() does. Resolves `true` when the stream ran to its end.
   */
  async *streamOn(s: Session, sql: string, opts: QueryOptions | undefined): AsyncGenerator<Uint8Array, boolean> {
    const format = opts?.format ?? 'JSONEachRow';
    const id = opts?.queryId !== undefined && TAGGABLE_ID_RE.test(opts.queryId) ? opts.queryId : undefined;
    const text = id ? `${tagOf(id)} ${sql}` : sql;
    // Parameters as query() sets them (paramsStatement), on this Session; the callers decide whether it
    // may be used again. A stream that fails to start leaves the Session to them too (they close or clean it).
    const setParams = opts?.params ? paramsStatement(opts.params) : undefined;
    const stream = await this.run(async () => {
      if (setParams) await s.queryAsync(setParams, { format: 'TabSeparated' });
      return s.queryStream(text, { format });
    });
    const watch = id && (opts?.signal || opts?.timeoutMs) ? this.killWatch(id, opts!) : undefined;
    const it = stream[Symbol.asyncIterator]();
    let ended = false;
    let rows = 0;
    const pacer = new YoungGcPacer();
    try {
      for (;;) {
        let next: IteratorResult<{ numRows: number; raw(): Uint8Array }>;
        try {
          next = await this.run(() => it.next());
        } catch (e) {
          ended = true;
          throw watch ? watch.mapError(e) : e;
        }
        if (next.done) {
          ended = true;
          opts?.onStats?.({ resultRows: rows });
          return true;
        }
        rows += next.value.numRows;
        const chunk = next.value.raw();
        pacer.add(chunk.byteLength);
        yield chunk;
      }
    } finally {
      // Left early (the consumer stopped): chdb's cancel frees the stream but the pipeline may run on
      // until it next produces a chunk, so the query is KILLed by its tag as well.
      if (!ended && id) await this.killTagged(id).catch(() => undefined);
      watch?.done();
      stream.cancel();
      await it.return?.(undefined).catch(() => undefined);
    }
  }

  openSession(timeoutSeconds: number): EngineSession {
    void timeoutSeconds; // the gateway expires embedded sessions itself
    if (this.closed) throw new EngineError('ENGINE_CLOSED', 'the embedded engine is closed');
    return new EmbeddedSession(this, this.openChdb());
  }

  /** Runs `fn` on `s` with the engine's error mapping and close() bookkeeping. */
  runOn<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(fn);
  }

  tagged(sql: string, opts: QueryOptions | undefined): { text: string; id: string | undefined } {
    const id = opts?.queryId !== undefined && TAGGABLE_ID_RE.test(opts.queryId) ? opts.queryId : undefined;
    return { text: id ? `${tagOf(id)} ${sql}` : sql, id };
  }

  cancellableCall<T>(running: Promise<T>, id: string | undefined, opts: QueryOptions | undefined): Promise<T> {
    if (!id || (!opts?.signal && !opts?.timeoutMs)) return running;
    return this.cancellable(running, id, opts);
  }

  insert(sql: string, data: Uint8Array | AsyncIterable<Uint8Array>, opts?: InsertOptions): Promise<InsertResult> {
    return this.run(async () => {
      const parsed = parseInsert(sql);
      const buf = await collectBytes(data);
      const raw = RAW_FORMATS[parsed.format.toLowerCase()];
      const settings: Settings = { ...(opts?.settings ?? {}), ...parsed.settings };
      const settingsOk = Object.values(settings).every((v) => typeof v === 'string' || Number.isSafeInteger(v) || !Number.isInteger(v));
      if (raw && parsed.table && parsed.settingsParsed && settingsOk && (!parsed.hasColumnList || parsed.columns)) {
        // Fast path: the payload goes to the engine zero-copy, parsed by ClickHouse's own parser.
        const table = parsed.table;
        const r = await this.withSession(undefined, sql, (s) => s.insert({
          table,
          values: buf,
          format: raw,
          ...(parsed.columns ? { columns: parsed.columns } : {}),
          ...(Object.keys(settings).length ? { settings } : {}),
        }));
        return { writtenRows: r.rowsWritten };
      }
      // Anything else (quoted names, other text formats, unusual SETTINGS): the statement with its data
      // inline. That needs text: binary payloads would be mangled on the way, so they are refused.
      let text: string;
      try {
        text = utf8Strict.decode(buf);
      } catch {
        text = '\0';
      }
      if (text.includes('\0')) {
        throw new EngineError('ENGINE_FORMAT_UNSUPPORTED',
          `the embedded engine cannot insert binary format ${parsed.format}; use a text format (JSONEachRow, TabSeparated, CSV, Values, ...)`);
      }
      // The data is appended to the statement. Only Values data is parsed as SQL, where a `;` ends the
      // statement and chdb runs what follows (measured); after FORMAT CSV/TSV/JSON... everything is
      // format data, and a `;` there is just a character of a value (`"a;b"`, `O'Brien;`).
      const semicolon = parsed.format.toLowerCase() === 'values' ? firstSemicolon(text) : -1;
      if (semicolon >= 0 && text.slice(semicolon + 1).trim() !== '') {
        throw new EngineError('ENGINE_BAD_REQUEST', `INSERT data contains a ';' that would end the statement (at byte ${semicolon}); one statement per insert`);
      }
      const stmt = sql.trimEnd().replace(/;$/, '') + '\n' + text;
      await this.withSession({ settings: opts?.settings }, stmt, (s) => s.queryAsync(stmt, { format: 'TabSeparated' }));
      return { writtenRows: countPayloadRows(parsed.format, buf) };
    });
  }

  /**
   * A structured insert (types.ts DataInsert): the statement is built from its parts, the payload goes
   * to the engine zero-copy in any format (chdb-raw.ts), or, on a chdb without that entry, through
   * Session.insert for the text formats chdb allows.
   */
  insertData(target: DataInsert, data: Uint8Array): Promise<InsertResult> {
    return this.run(async () => {
      const statement = dataInsertStatement(target);
      // Values data is parsed as SQL: after a top-level ';' chdb runs what follows (measured, raw path
      // included). insert()'s inline path refuses such data; every other format's data is data.
      if (RAW_INSERT_ANY_FORMAT && target.format.toLowerCase() !== 'values') {
        const rows = await this.withSession(undefined, statement, (s) => insertRaw(s, statement, data));
        return { writtenRows: rows };
      }
      return this.insert(statement, data, {});
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    for (const list of this.idle.values()) for (const s of list) s.close();
    this.idle.clear();
    this.control?.close();
    this.main.close();
  }
}

/**
 * One client session's chdb Session (EngineSession). Unlike pooled Sessions it is kept after a failed
 * call, since its temporary tables must survive a typo; but a call that failed after producing output
 * leaves that output in the Session, in front of the next result (see the top of this file). So after
 * a failure the session is read clean: a marker query is run until it answers exactly its marker (the
 * leftovers come out in front of the first one); a Session that will not come clean is closed and
 * the client session ends (372 SESSION_NOT_FOUND on its next call).
 */
class EmbeddedSession implements EngineSession {
  private database: string | undefined;
  /** The per-call settings last SET here (a SET by the client forgets them: it may have changed them). */
  private readonly applied = new Map<string, string>();
  private broken = false;

  constructor(private readonly engine: EmbeddedEngine, private readonly s: Session) {}

  private check(): void {
    if (this.broken) {
      throw clickHouseError('SESSION_NOT_FOUND', 'Session is closed: a failed query left it unusable');
    }
  }

  private async prepare(opts: QueryOptions | undefined): Promise<void> {
    if (opts?.database !== undefined && opts.database !== this.database) {
      await this.s.queryAsync(`USE ${quoteIdent(opts.database)}`, { format: 'TabSeparated' });
      this.database = opts.database;
    }
    const changed: Settings = {};
    for (const [k, v] of Object.entries(opts?.settings ?? {})) if (this.applied.get(k) !== String(v)) changed[k] = v;
    const set = setStatement(changed);
    if (set) {
      await this.s.queryAsync(set, { format: 'TabSeparated' });
      for (const [k, v] of Object.entries(changed)) this.applied.set(k, String(v));
    }
  }

  /** Reads the Session clean after a failure (see the class comment); closes it if it will not. */
  private async clean(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const mark = `rh_clean_${randomUUID().replace(/-/g, '')}`;
      try {
        const out = toBuffer((await this.s.queryAsync(`SELECT '${mark}'`, { format: 'TabSeparated' })).bytes()).toString('latin1');
        if (out === `${mark}\n`) return;
      } catch {
        // try again
      }
    }
    this.broken = true;
    this.s.close();
  }

  query(sql: string, opts?: QueryOptions): Promise<Buffer> {
    return this.engine.runOn(async () => {
      this.check();
      const { text, id } = this.engine.tagged(sql, opts);
      const setParams = opts?.params ? paramsStatement(opts.params) : undefined;
      const running = (async () => {
        await this.prepare(opts);
        const format = opts?.format ?? 'JSONEachRow';
        // Parameters as the engine's query() sets them (paramsStatement). They stay set in this Session
        // for its later calls, which only this client's own session sees.
        if (setParams) await this.s.queryAsync(setParams, { format: 'TabSeparated' });
        const r: ChdbResult = await this.s.queryAsync(text, { format });
        if (/^\s*SET\b/i.test(sql)) this.applied.clear();
        opts?.onStats?.({ resultRows: r.rowsRead });
        return toBuffer(r.bytes());
      })();
      try {
        return await this.engine.cancellableCall(running, id, opts);
      } catch (e) {
        await this.clean();
        throw e;
      }
    });
  }

  queryStream(sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array> {
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        self.check();
        await self.engine.runOn(() => self.prepare(opts));
        let ended = false;
        try {
          ended = yield* self.engine.streamOn(self.s, sql, opts);
        } finally {
          if (!ended) await self.clean();
        }
      },
    };
  }

  insertData(target: SessionInsert, data: Uint8Array): Promise<InsertResult> {
    return this.engine.runOn(async () => {
      this.check();
      const statement = sessionInsertStatement(target);
      if (!RAW_INSERT_ANY_FORMAT) throw new EngineError('ENGINE_FORMAT_UNSUPPORTED', 'this chdb cannot insert data into a session\'s table apart from a statement');
      try {
        return { writtenRows: await insertRaw(this.s, statement, data) };
      } catch (e) {
        await this.clean();
        throw e;
      }
    });
  }

  async close(): Promise<void> {
    if (this.broken) return;
    this.broken = true;
    this.s.close();
  }
}

/**
 * Opens chdb on `dataDir`. chdb binds one data directory per process: a second engine on the same
 * directory is fine (e.g. the read-only one for the local endpoint), a different directory fails with
 * ENGINE_OPEN_FAILED until every engine on the first one is closed.
 */
export async function openEmbedded(opts: EmbeddedOptions): Promise<ClickHouseEngine> {
  mkdirSync(opts.dataDir, { recursive: true });
  // A bare expression (`1+2`, `foobar`) is a syntax error (62) on a ClickHouse server; chdb, like
  // clickhouse-local, reads it as a SELECT unless implicit_select is off.
  const args = ['--implicit_select=0', ...(opts.connectionArgs ?? [])];
  if (opts.readonly) args.push(opts.allowSettings ? '--readonly=2' : '--readonly=1');
  let main: Session;
  try {
    main = args.length ? new Session(opts.dataDir, { connectionArgs: args }) : new Session(opts.dataDir);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    throw new EngineError('ENGINE_OPEN_FAILED', `cannot open chdb on ${opts.dataDir}: ${err.message}`, { cause: err });
  }
  const engine = new EmbeddedEngine(opts.dataDir, args, main, !!opts.readonly);
  try {
    engine.setCapabilities(await probeCapabilities(engine));
  } catch (e) {
    await engine.close();
    throw e;
  }
  return engine;
}
