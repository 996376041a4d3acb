// The embedded engine: ClickHouse in-process through chdb, on one data directory per process.
//
// Per-call database and settings must not leak between calls, but chdb has no per-query settings:
// `USE` and `SET` stick to a chdb Session. So a call that names a database or settings runs on another
// Session on the same directory, set up with USE/SET for exactly that context and pooled by it (opening
// one costs about 1.5 ms here; a pooled one costs nothing); calls without them go straight to the
// long-lived Session. Streams always get their own
// Session too, because chdb allows one open stream per Session and a snapshot stream must not block
// inserts.

import { mkdirSync } from 'node:fs';
import { Session } from 'chdb';
import type { ChdbResult } from 'chdb';
import { probeCapabilities } from './capabilities.js';
import { ClickHouseError, EngineError, parseClickHouseError } from './errors.js';
import { collectBytes, countPayloadRows, parseInsert, quoteIdent, refuseSessionStatements, setStatement, topLevelSemicolon } from './sql.js';
import type {
  Capabilities, ClickHouseEngine, ExecOptions, InsertOptions, InsertResult, QueryOptions, Settings,
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
    return new ClickHouseError(chCode, `CODE_${chCode}`, err.message, err.message, { cause: err });
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

const POOL_PER_KEY = 2;
const POOL_KEYS = 16;
// A `;` followed by more text: several statements in one call.
const MULTI_STATEMENT_RE = /;\s*\S/;

function contextKey(opts: { database?: string | undefined; settings?: Settings | undefined } | undefined): string {
  const settings = Object.entries(opts?.settings ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([opts?.database ?? null, settings.map(([k, v]) => [k, typeof v, String(v)])]);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

class EmbeddedEngine implements ClickHouseEngine {
  readonly kind = 'embedded' as const;
  readonly readonly: boolean;
  private caps: Capabilities | undefined;
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Idle Sessions set up for one (database, settings) context, by contextKey(). */
  private readonly idle = new Map<string, Session[]>();

  constructor(
    private readonly dir: string,
    private readonly args: string[],
    private readonly main: Session,
    readonly_: boolean,
  ) {
    this.readonly = readonly_;
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

  private openSession(): Session {
    return this.args.length ? new Session(this.dir, { connectionArgs: this.args }) : new Session(this.dir);
  }

  /** Opens a Session with USE/SET applied; the caller closes it. */
  private async contextSession(opts: { database?: string | undefined; settings?: Settings | undefined } | undefined): Promise<Session> {
    const set = setStatement(opts?.settings); // validates names before opening anything
    const s = this.openSession();
    try {
      if (opts?.database !== undefined) await s.queryAsync(`USE ${quoteIdent(opts.database)}`, { format: 'TabSeparated' });
      if (set) await s.queryAsync(set, { format: 'TabSeparated' });
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /**
   * Runs `fn` on the main Session, or, when the call names a database or settings, on a Session set up
   * for exactly that context. Such Sessions are kept in a small pool keyed by the context, so repeated
   * calls with the same database and settings (the gateway's reads) skip the set-up. A Session whose
   * statement held several statements is never pooled: one of them might have changed its state.
   */
  private async withSession<T>(
    opts: { database?: string | undefined; settings?: Settings | undefined } | undefined,
    sql: string,
    fn: (s: Session) => Promise<T>,
  ): Promise<T> {
    if (!hasContext(opts)) return fn(this.main);
    const key = contextKey(opts);
    const s = this.idle.get(key)?.pop() ?? await this.contextSession(opts);
    let reusable = !MULTI_STATEMENT_RE.test(sql.trim().replace(/;+$/, ''));
    try {
      return await fn(s);
    } catch (e) {
      reusable = reusable && e instanceof Error && parseClickHouseError(e.message) !== undefined;
      throw e;
    } finally {
      this.release(key, s, reusable);
    }
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
    return this.run(() => {
      refuseSessionStatements(sql);
      return this.withSession(opts, sql, async (s) => {
        const r: ChdbResult = opts?.params
          ? await s.queryBindAsync(sql, opts.params, { format })
          : await s.queryAsync(sql, { format });
        return toBuffer(r.bytes());
      });
    });
  }

  queryStream(sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array> {
    const format = opts?.format ?? 'JSONEachRow';
    // Sequential steps of the generator each go through run(), so close() waits for a fetch in flight.
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const s = await self.run(() => self.contextSession(opts));
        const stream = await self.run(async () => opts?.params
          ? s.queryStreamBind(sql, opts.params, { format })
          : s.queryStream(sql, { format }));
        const it = stream[Symbol.asyncIterator]();
        try {
          for (;;) {
            const next = await self.run(() => it.next());
            if (next.done) break;
            yield next.value.raw();
          }
        } finally {
          stream.cancel();
          await it.return?.(undefined).catch(() => undefined);
          s.close();
        }
      },
    };
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
        const r = await this.main.insert({
          table: parsed.table,
          values: buf,
          format: raw,
          ...(parsed.columns ? { columns: parsed.columns } : {}),
          ...(Object.keys(settings).length ? { settings } : {}),
        });
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
      const semicolon = parsed.format.toLowerCase() === 'values' ? topLevelSemicolon(text) : -1;
      if (semicolon >= 0 && text.slice(semicolon + 1).trim() !== '') {
        throw new EngineError('ENGINE_BAD_REQUEST', `INSERT data contains a ';' that would end the statement (at byte ${semicolon}); one statement per insert`);
      }
      const stmt = sql.trimEnd().replace(/;$/, '') + '\n' + text;
      await this.withSession({ settings: opts?.settings }, stmt, (s) => s.queryAsync(stmt, { format: 'TabSeparated' }));
      return { writtenRows: countPayloadRows(parsed.format, buf) };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    for (const list of this.idle.values()) for (const s of list) s.close();
    this.idle.clear();
    this.main.close();
  }
}

/**
 * Opens chdb on `dataDir`. chdb binds one data directory per process: a second engine on the same
 * directory is fine (e.g. the read-only one for the local endpoint), a different directory fails with
 * ENGINE_OPEN_FAILED until every engine on the first one is closed.
 */
export async function openEmbedded(opts: EmbeddedOptions): Promise<ClickHouseEngine> {
  mkdirSync(opts.dataDir, { recursive: true });
  const args = [...(opts.connectionArgs ?? [])];
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
