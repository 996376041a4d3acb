// The RaftHouse gateway's core: what a ClickHouse statement does on each endpoint.
//
//   consistent  reads: a raftd barrier on every group the statement touches, then run locally
//               (read-only session); writes: classified by ClickHouse's parser, non-deterministic
//               parts pinned or refused, routed to their group(s), proposed through raftd.
//   local       reads on the local replica, on a read-only ClickHouse session (readonly=2: settings
//               may change, `readonly` itself may not, nothing can be written); writes get Code 164.
//
// The one naming rule (docs/clickhouse.md, "Gateway"): the gateway serves one user database
// (`userDb`, default "default"); its table t lives as rh_g<home>.t where home = ring.homeGroup(userDb, t)
// (unsharded), or as rh_g<g>.t in every group g (sharded); `<userDb>.t` is the local Merge read view.

import { randomUUID } from 'node:crypto';
import type { ClickHouseEngine, EngineSession, QueryOptions, QueryStats, Settings } from '../engine/types.js';
import { ClickHouseError } from '../engine/errors.js';
import { queryRows, quoteIdent, quoteString } from '../engine/sql.js';
import type { RaftdClient } from '../../adapters/sdk/client.js';
import { RaftdError } from '../../adapters/sdk/client.js';
import { encodeEntry } from '../statemachine/entry.js';
import type { EntryHeader } from '../statemachine/entry.js';
import { dataDb, INTERNAL_TABLE_PREFIX } from '../statemachine/naming.js';
import type { HashRing } from '../router/ring.js';
import { splitJsonEachRow } from '../router/split.js';
import { CODES, codeSet } from '../engine/codes.js';
import { GatewayError } from './errors.js';
import { extractSettings, insertDataOffset, replaceCalls } from './lexer.js';
import { significant, tokenize } from '../sql/scanner.js';
import type { ParsedStatement, SqlParser, TableRef } from './parse.js';
import { ReadViews } from './views.js';
import { DEFAULT_READ_LIMITS, checkStatementSettings, killAfterMs, readSettings } from './limits.js';
import type { ReadLimits } from './limits.js';
import { RunningQueries, isKillQuery } from './processes.js';
import { checkSettings, settingRule, settingsInSql } from '../rules/settings.js';
import { READ_DATABASES } from '../rules/names.js';
import { INPUT_FORMATS, PINNABLE, checkRead, checkSessionStatement, checkValuesData, checkWrite, loadNondeterministic } from '../rules/index.js';
import type { WriteContext } from '../rules/index.js';

export { loadNondeterministic };
import { CutRetryError } from './cut.js';
import type { CutReader } from './cut.js';
import type { ApplyHold } from '../statemachine/statemachine.js';
import { unwiredReadRefusal, type PlacedGroups, type PlacedHold } from '../placed/groups.js';
import { planAggregateSplit, rewriteAggregateSplit, rewritePlacedRead, type PlacedTable, type SplitPlan } from '../placed/rewrite.js';
import { DATA_DB_REGEXP } from '../statemachine/naming.js';
import { SessionRegistry } from './sessions.js';
import { planExternalTables } from './external.js';
import type { ExternalTable } from './external.js';
import { SCRATCH_DB, catalogsIn, rewriteCatalogs, showCreateAsCreated } from './catalog.js';
import { QueryLog, failedBeforeStart, toQueryLogQuery } from './query-log.js';
import type { QueryLogOptions, QueryLogType } from './query-log.js';
import { toFault } from './errors.js';
import type { SessionLease, SessionOptions } from './sessions.js';

export type Endpoint = 'consistent' | 'local';

export interface GatewayRequest {
  endpoint: Endpoint;
  /** The statement; an INSERT may carry its data inline (after FORMAT X / VALUES). */
  sql: string;
  /** INSERT data sent apart from the statement (query in the URL, data in the body). */
  data?: Buffer;
  database?: string;
  /** default_format. */
  format?: string;
  queryId?: string;
  settings?: Settings;
  params?: Record<string, string>;
  /** HTTP GET: ClickHouse treats it as read-only. */
  readonlyMethod?: boolean;
  /** The authenticated gateway user (limits, system.processes, KILL QUERY); default "default". */
  user?: string;
  /** Aborted when the client goes away: the read is cancelled in the engine. */
  signal?: AbortSignal;
  /** HTTP session_id & co.: the request runs in that client session (gateway/sessions.ts). */
  session?: { id: string; timeout?: string; check: boolean };
  /** External data tables (multipart file parts): the read runs in a session of its own holding them (gateway/external.ts). */
  external?: readonly ExternalTable[];
}

export interface GatewaySummary {
  read_rows: string; read_bytes: string; written_rows: string; written_bytes: string;
  total_rows_to_read: string; result_rows: string; result_bytes: string; elapsed_ns: string;
  /** Rounds the consistent cut took (a consistent read of several groups only). */
  rafthouse_cut_attempts?: string;
}

export interface GatewayResponse {
  /** The whole result; empty when `stream` is given. */
  body: Buffer;
  /**
   * A read's result as ClickHouse produces it (a result bigger than the prefetch, see STREAM_PREFETCH_BYTES).
   * It must be iterated to its end or returned: that ends the query and frees its slot (and session).
   * It throws mid-way for an error found after the first bytes were handed out.
   */
  stream?: AsyncIterable<Uint8Array>;
  format: string;
  queryId: string;
  summary: GatewaySummary;
}

export interface GatewayOptions {
  /** The engine the state machine writes with (used for read views, table lookups, scratch evaluation). */
  engine: ClickHouseEngine;
  /** A read-only session (readonly=2) on the same ClickHouse: every read runs here. */
  readEngine: ClickHouseEngine;
  parser: SqlParser;
  raftd: RaftdClient;
  ring: HashRing;
  userDb?: string;
  /** Names (lower case) of non-deterministic functions (system.functions.deterministic = 0). */
  nondeterministic: ReadonlySet<string>;
  /**
   * The index up to which this process's state machine has applied a group (every effect up to it is
   * visible to reads), or undefined when not known. When given, a consistent read runs while its
   * barrier is in flight and is kept when the replica had already reached the read index (see
   * consistentRead); without it the read waits for the barrier.
   */
  localApplied?: (group: number) => number | undefined;
  /**
   * The local state machine's schema generation (ClickHouseStateMachine.schemaGeneration): when given,
   * table definitions are cached while it keeps its value instead of being read from system tables on
   * every INSERT, and a read that did not begin and end on the same even value (a restore swapped a
   * group's database in meanwhile, so the Merge views may have skipped it) is run again.
   */
  schemaGeneration?: () => number;
  /** Reads running at once through this gateway; more are refused (202); default 32. */
  maxConcurrentQueries?: number;
  /** The read limits of a gateway user; default DEFAULT_READ_LIMITS for everyone. */
  limits?: (user: string) => ReadLimits;
  /** Table functions (and functions with external reach) an operator opened for reads, lower case (rafthouse --allow-table-functions). */
  allowTableFunctions?: ReadonlySet<string>;
  /**
   * The consistent cut (gateway/cut.ts): when given, a consistent read touching several groups runs
   * through it and sees them all at one instant. Without it (rafthouse --consistent-cut off, tests
   * only) each group is read fresh but not as one cut.
   */
  cut?: CutReader;
  /** Client sessions (session_id) on this node: their bounds. */
  sessions?: Partial<SessionOptions>;
  /**
   * Placed groups (issue 21): where the groups are. When some group has no replica here, a consistent
   * read of a table with rows in such a group runs through the cut with remote holds, its remote
   * groups pulled by url() legs (placedRead); table definitions of remote groups are read from a member.
   */
  placed?: PlacedGroups;
  /** The bounds of system.query_log (query-log.ts); false: no query log. */
  queryLog?: Partial<QueryLogOptions> | false;
}

/**
 * A streamed read is first read up to this many bytes before anything is answered: a result that fits
 * is answered whole (with Content-Length, and an error in it is an HTTP error, as before), and the
 * consistent endpoint's early read (consistentReadOneCut) is confirmed by its barrier before the first
 * byte leaves. Past it, chunks go out as chdb produces them.
 */
export const STREAM_PREFETCH_BYTES = 1024 * 1024;

/**
 * Output formats whose blocks concatenate into the whole result: chdb's stream formats every block as a
 * document of its own (measured: JSON, XML, Pretty, Parquet, CSVWithNames... repeat their header and
 * footer per block; Values misses the ',' between blocks), so only formats without a header, footer or
 * row separator are streamed; the others are read whole (bounded by max_result_bytes), as before.
 */
const STREAMABLE_FORMATS = new Set([
  'tabseparated', 'tsv', 'tabseparatedraw', 'tsvraw', 'csv', 'jsoneachrow', 'jsonlines', 'ndjson', 'jsoncompacteachrow',
  'jsonstringseachrow', 'jsoncompactstringseachrow', 'lineasstring', 'rowbinary',
]);

function truthy(v: string | number | undefined): boolean {
  return v !== undefined && String(v) !== '0' && String(v).toLowerCase() !== 'false';
}

/** Whether a read's result may be streamed (see STREAMABLE_FORMATS); a setting that wraps rows in an array turns it off. */
function streamable(format: string, sql: string, settings: Settings): boolean {
  if (!STREAMABLE_FORMATS.has(format.toLowerCase())) return false;
  if (/output_format_json_array_of_rows/i.test(sql)) return false;
  return !Object.entries(settings).some(([k, v]) => k.toLowerCase() === 'output_format_json_array_of_rows' && truthy(v));
}

/** A read whose first bytes are in hand: the rest is still to come from `it` unless `done`. */
interface StartedRead {
  chunks: Buffer[];
  bytes: number;
  done: boolean;
  it: AsyncIterator<Uint8Array>;
}

function closeStarted(r: StartedRead | undefined): void {
  if (r && !r.done) void Promise.resolve(r.it.return?.(undefined)).catch(() => undefined);
}

/** How often a read overlapping restore swaps is retried before it fails with UNKNOWN_DATABASE. */
const SWAP_RETRIES = 40;
const SWAP_RETRY_MS = 25;

/** Settings the adapter owns (dropped from writes, like the state machine does) or that only mean something to HTTP. */
const DROPPED_WRITE_SETTINGS = new Set([
  'max_insert_block_size', 'min_insert_block_size_rows', 'min_insert_block_size_bytes', 'max_insert_threads', 'max_threads',
  'max_block_size', 'deduplicate_blocks_in_dependent_materialized_views',
  'deduplicate_insert', 'mutations_sync', 'alter_sync', 'readonly',
]);

/**
 * Settings an INSERT carries into its entry for the state machine alone: they choose the block id a
 * client's retry is deduplicated by (statemachine/dedup.ts). Any other write ignores them, and a SET
 * may not make them a default.
 */
const INSERT_DEDUP_SETTINGS = new Set(['insert_deduplication_token', 'insert_deduplicate']);
/** Served synchronously: the answer comes after the entry applied, which is what an async insert that waits gives. */
const ASYNC_INSERT_SETTINGS = new Set(['async_insert', 'wait_for_async_insert']);

export const SHARD_SETTING = 'rafthouse_shard_key';

/** Input formats accepted for writes: the rules' (rules/statements.ts). */
const WRITE_FORMATS = INPUT_FORMATS;

const SHARD_COMMENT_RE = /^rafthouse_shard_key=([A-Za-z_][A-Za-z0-9_]*)$/;

interface TableInfo {
  shardKey?: string;
  /** Stored columns (not ALIAS), in order, with their type, default kind and expression. */
  columns: Array<{ name: string; type: string; kind: string; expr: string }>;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Text the gateway has to read as SQL must be valid UTF-8: a replacement character put silently in
 * place of a bad byte would store other data than was sent. (Data in a row format sent apart from the
 * statement, e.g. JSONEachRow in the body, is passed on as bytes and keeps them.)
 */
export function utf8Text(b: Buffer, what: string): string {
  try {
    return utf8Strict.decode(b);
  } catch {
    throw new GatewayError(CODES.BAD_ARGUMENTS, `${what} is not valid UTF-8; send binary strings in a row format (JSONEachRow, TabSeparated, CSV) with the statement in the URL`);
  }
}

/** The entry settings that reach ClickHouse (the deduplication ones only choose a block id: dedup.ts). */
function parseSettings(settings: Settings): Settings {
  const out: Settings = {};
  for (const [k, v] of Object.entries(settings)) if (!INSERT_DEDUP_SETTINGS.has(k)) out[k] = v;
  return out;
}

function tsvEscape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
}

function emptySummary(): GatewaySummary {
  return { read_rows: '0', read_bytes: '0', written_rows: '0', written_bytes: '0', total_rows_to_read: '0', result_rows: '0', result_bytes: '0', elapsed_ns: '0' };
}

interface ReadOpts {
  database: string; format: string; settings: Settings | undefined; params: Record<string, string> | undefined;
  queryId?: string; signal?: AbortSignal; timeoutMs?: number | undefined;
  /** The client session the read runs in (its temporary tables, its SET); else the shared read engine. */
  session?: EngineSession | undefined;
  /** Filled with the result size of the read (the last one to finish, which is the one kept). */
  stats?: QueryStats;
}

function readQuery(opts: ReadOpts): QueryOptions {
  return {
    database: opts.database, format: opts.format,
    ...(opts.queryId ? { queryId: opts.queryId } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.settings && Object.keys(opts.settings).length ? { settings: opts.settings } : {}),
    ...(opts.params && Object.keys(opts.params).length ? { params: opts.params } : {}),
    ...(opts.stats ? { onStats: (s: QueryStats) => Object.assign(opts.stats!, s) } : {}),
  };
}

function checkResultBytes(bytes: number, limits: ReadLimits): void {
  if (limits.maxResultBytes > 0 && bytes > limits.maxResultBytes) {
    throw new GatewayError(CODES.TOO_MANY_ROWS_OR_BYTES, `Limit for result exceeded, max bytes: ${limits.maxResultBytes}, current bytes: ${bytes}`);
  }
}

/** `source`, then `after()` however its iteration ends (completed, thrown, returned early). */
async function* withFinally<T>(source: AsyncIterable<T>, after: () => void): AsyncGenerator<T> {
  try {
    yield* source;
  } finally {
    after();
  }
}

/** Codes after which a read is retried once with freshly synced views (a view missing or stale). */
const VIEW_MISS_CODES = codeSet('UNKNOWN_TABLE', 'UNKNOWN_IDENTIFIER', 'NO_SUCH_COLUMN_IN_TABLE', 'NOT_FOUND_COLUMN_IN_BLOCK');

/** A table's comment (its shard key) in one group database. */
function tableCommentSql(db: string, table: string): string {
  return `SELECT comment FROM system.tables WHERE database = ${quoteString(db)} AND name = ${quoteString(table)}`;
}

/** A table's stored columns in one group database. */
function tableColumnsSql(db: string, table: string): string {
  return `SELECT name, type, default_kind AS kind, default_expression AS expr FROM system.columns
         WHERE database = ${quoteString(db)} AND table = ${quoteString(table)} AND default_kind != 'ALIAS' ORDER BY position`;
}

/**
 * How the embedded engine fetches a remote leg (url()): one try (a failed leg fails the round, which
 * the cut retries on another member), short connect and receive timeouts.
 */
const LEG_FETCH_SETTINGS: Settings = { http_max_tries: 1, http_connection_timeout: 2, http_receive_timeout: 10, http_send_timeout: 10 };

/** Network failures of a url() leg (a refused connection names no URL: ClickHouse reports it as 1001). */
const LEG_NETWORK_CODES = codeSet('SOCKET_TIMEOUT', 'NETWORK_ERROR', 'POCO_EXCEPTION', 'STD_EXCEPTION');

/** The one error url() raises for a non-2xx answer: its URL, then the status (engine's own text). */
const LEG_HTTP_ERROR = /^Received error from remote server (https?:\/\/[^/\s'"]+)\/internal\/select\?([^\s'"]+?)\. HTTP status code: (\d+) /;
/** A network failure the engine reports without a URL (a refused or reset connection, a timeout). */
const LEG_NETWORK_TEXT = /^(Poco::Net::[A-Za-z]+Exception|Timeout exceeded while (reading from|writing to) socket|Connection reset by peer)/;

/**
 * Whether a placed read failed in one of THIS round's remote legs in a way another round may not (the
 * member died or is unreachable, its lease ran out: 410, or it is overloaded: 5xx), with the member's
 * base URL when the error names it; undefined for anything else (the member's 4xx refusal of the
 * statement, the statement's own error), which is reported as it is. Only the engine's own url() error
 * (RECEIVED_ERROR_FROM_REMOTE_IO_SERVER, anchored at the start of the text) naming a leg URL that
 * carries one of `holds`, or a network error code with the engine's network text, counts: a statement
 * that merely mentions "HTTP status code: 503" or a member's address (throwIf) is the statement's error.
 */
export function legFailure(e: unknown, holds: ReadonlySet<string>): { base: string | undefined } | undefined {
  if (!(e instanceof ClickHouseError)) return undefined;
  if (e.code === CODES.RECEIVED_ERROR_FROM_REMOTE_IO_SERVER) {
    const m = LEG_HTTP_ERROR.exec(e.message);
    if (!m) return undefined;
    const hold = new URLSearchParams(m[2]!).get('hold');
    if (hold === null || !holds.has(hold)) return undefined;
    const s = Number(m[3]);
    return s === 410 || s === 408 || s === 429 || s >= 500 ? { base: m[1] } : undefined;
  }
  if (!LEG_NETWORK_CODES.has(e.code)) return undefined;
  const url = /(https?:\/\/[^/'"\s]+)\/internal\/select\?([^\s'"]+)/.exec(e.message);
  if (url) {
    const hold = new URLSearchParams(url[2]!).get('hold');
    return hold !== null && holds.has(hold) ? { base: url[1] } : undefined;
  }
  // No URL named: which member failed is unknown (no one is marked suspect); only the engine's text.
  return LEG_NETWORK_TEXT.test(e.message) ? { base: undefined } : undefined;
}

export class Gateway {
  readonly userDb: string;
  readonly views: ReadViews;
  /** The reads running through this gateway, by user (KILL QUERY, system.processes). */
  readonly running = new RunningQueries();
  private readonly o: GatewayOptions;
  private scratchReady: Promise<void> | undefined;
  /** table -> whether it is sharded, as read from its home group, stamped with shardStamp(). */
  private readonly shardCache = new Map<string, { group: number; stamp: number; sharded: boolean }>();
  /** Per group: the barrier in flight, and the one queued behind it that later reads share. */
  private readonly barriers = new Map<number, { running: Promise<number> | undefined; queued: Promise<number> | undefined }>();
  /** table -> its definition on this replica, read while the schema generation was `gen`. */
  private readonly infoCache = new Map<string, { gen: number; info: TableInfo }>();
  private writeContext: WriteContext | undefined;
  /** Client sessions (session_id), each a session of the read engine. */
  readonly sessions: SessionRegistry;
  /** Sessions open for queries with external data tables (executeWithExternal). */
  private externalSessions = 0;

  constructor(opts: GatewayOptions) {
    this.o = opts;
    this.userDb = opts.userDb ?? 'default';
    this.views = new ReadViews(opts.engine, this.userDb);
    this.sessions = new SessionRegistry(opts.readEngine, opts.sessions);
    this.queryLog = opts.queryLog === false ? undefined : new QueryLog(opts.engine, opts.queryLog ?? {});
  }

  /** What this node served (system.query_log); undefined when turned off. */
  readonly queryLog: QueryLog | undefined;

  /**
   * Runs one request and records it in the query log (when it ends: a streamed answer when its stream
   * has been read to its end or failed).
   */
  async execute(req: GatewayRequest): Promise<GatewayResponse> {
    const log = this.queryLog;
    if (!log) return this.executeLeased(req);
    const startMs = performance.timeOrigin + performance.now();
    const queryId = req.queryId || randomUUID();
    const base = {
      startMs, user: req.user ?? 'default', queryId, query: toQueryLogQuery(req.sql), database: req.database || this.userDb,
      endpoint: req.endpoint, httpMethod: req.readonlyMethod ? 'GET' as const : 'POST' as const,
    };
    const write = (type: QueryLogType, summary: GatewaySummary | undefined, resultBytes: number | undefined, error: unknown): void => {
      const f = error === undefined ? undefined : toFault(error);
      log.record({
        ...base, type, endMs: performance.timeOrigin + performance.now(),
        readRows: Number(summary?.read_rows ?? 0), readBytes: Number(summary?.read_bytes ?? 0),
        writtenRows: Number(summary?.written_rows ?? 0), writtenBytes: Number(summary?.written_bytes ?? 0),
        resultRows: Number(summary?.result_rows ?? 0), resultBytes: resultBytes ?? Number(summary?.result_bytes ?? 0),
        exceptionCode: f?.code ?? 0, exception: f ? `Code: ${f.code}. DB::Exception: ${f.message}. (${f.name})` : '',
      });
    };
    let r: GatewayResponse;
    try {
      r = await this.executeLeased({ ...req, queryId });
    } catch (e) {
      write(failedBeforeStart(e) ? 'ExceptionBeforeStart' : 'ExceptionWhileProcessing', undefined, undefined, e);
      throw e;
    }
    if (!r.stream) {
      write('QueryFinish', r.summary, undefined, undefined);
      return r;
    }
    const source = r.stream;
    const summary = r.summary;
    r.stream = (async function* logged(): AsyncGenerator<Uint8Array> {
      let bytes = 0;
      let failure: unknown;
      try {
        for await (const c of source) {
          bytes += c.length;
          yield c;
        }
      } catch (e) {
        failure = e;
        throw e;
      } finally {
        // A client that went away mid-stream ends it early: logged as finished with what it was sent.
        write(failure === undefined ? 'QueryFinish' : 'ExceptionWhileProcessing', summary, bytes, failure);
      }
    })();
    return r;
  }

  /**
   * Runs one request. In a client session (req.session) the session is held until the answer is done
   * (a streamed one included): a second request of the same session meanwhile gets 373.
   */
  private async executeLeased(req: GatewayRequest): Promise<GatewayResponse> {
    if (req.external?.length) return this.executeWithExternal(req);
    const lease = req.session ? this.sessions.acquire({ ...req.session, user: req.user ?? 'default' }) : undefined;
    let handedOff = false;
    try {
      const r = await this.executeIn(req, lease);
      if (r.stream && lease) {
        handedOff = true;
        r.stream = withFinally(r.stream, () => lease.release());
      }
      return r;
    } finally {
      if (!handedOff) lease?.release();
    }
  }

  /**
   * A read with external data tables: a session of the read engine for this one request, each table
   * created in it as a TEMPORARY TABLE (its CREATE parsed by ClickHouse and checked as a session's
   * CREATE is), its rows inserted as structured data, the read run there (after the usual barrier on
   * the consistent endpoint) and the session closed when the answer is done, a streamed one included.
   */
  private async executeWithExternal(req: GatewayRequest): Promise<GatewayResponse> {
    if (req.session) {
      throw new GatewayError(CODES.NOT_IMPLEMENTED, 'External data tables in a client session (session_id) are not supported by RaftHouse: send the query without session_id');
    }
    const plans = planExternalTables(req.external ?? []);
    // Each holds a session of the read engine (and its tables' rows) while it runs: bounded as reads are.
    const max = this.o.maxConcurrentQueries ?? 32;
    if (this.externalSessions >= max) throw new GatewayError(CODES.TOO_MANY_SIMULTANEOUS_QUERIES, `Too many simultaneous queries. Maximum: ${max}`);
    const database = req.database || this.userDb;
    const ctx = { database, userDb: this.userDb, ...(this.o.allowTableFunctions ? { allowFunctions: this.o.allowTableFunctions } : {}) };
    const session = this.o.readEngine.openSession(60);
    this.externalSessions++;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.externalSessions--;
      void session.close().catch(() => undefined);
    };
    let handedOff = false;
    try {
      const temporary = new Set<string>();
      for (const [i, plan] of plans.entries()) {
        const stmt = await this.o.parser.parse(plan.create);
        if (stmt.kind !== 'create' || stmt.hasSelect || stmt.target?.table !== plan.name || stmt.target.database !== undefined) {
          throw new GatewayError(CODES.BAD_ARGUMENTS, `Cannot use the structure of external data table '${plan.name}'`);
        }
        checkSessionStatement(stmt, ctx);
        await session.query(plan.create, { format: 'TabSeparated', database });
        temporary.add(plan.name.toLowerCase());
        const data = req.external![i]!.data;
        if (data.length > 0) await session.insertData({ table: plan.name, format: plan.format }, data);
      }
      const r = await this.executeIn(req, { session, temporary, release: () => undefined });
      if (r.stream) {
        handedOff = true;
        r.stream = withFinally(r.stream, close);
      }
      return r;
    } finally {
      if (!handedOff) close();
    }
  }

  private async executeIn(req: GatewayRequest, lease: SessionLease | undefined): Promise<GatewayResponse> {
    const t0 = process.hrtime.bigint();
    const queryId = req.queryId || randomUUID();
    let sql = req.sql;
    let data = req.data;
    // An INSERT with its data inline: the statement is parsed without the data.
    const first = significant(tokenize(sql.slice(0, 200)))[0];
    if (first && first.text.toUpperCase() === 'INSERT' && data === undefined) {
      const at = insertDataOffset(sql);
      if (at && at.offset < sql.length) {
        const head = at.values ? sql.slice(0, at.offset) : sql.slice(0, at.offset);
        data = Buffer.from(sql.slice(at.offset), 'utf8');
        sql = head;
      }
    }
    const stmt = await this.o.parser.parse(sql, req.params);
    const database = req.database || this.userDb;
    const summary = emptySummary();
    let body: Buffer = Buffer.alloc(0);
    let format = stmt.format ?? req.format ?? 'TabSeparated';
    let stream: AsyncIterable<Uint8Array> | undefined;
    const local = lease ? this.sessionLocal(stmt, lease) : undefined;
    if (req.external?.length && (stmt.write || local || isKillQuery(stmt))) {
      // The external tables live on this node for this query only; a write through Raft would have
      // to carry their rows into the log, which RaftHouse does not do (yet).
      throw new GatewayError(CODES.NOT_IMPLEMENTED, 'A query with external data tables must be a read (SELECT) in RaftHouse: a write from external data is not replicated; INSERT the rows as data instead');
    }
    if (local) {
      // Session state only (SET, temporary tables): run in the session, never replicated.
      await this.runSessionLocal(local, stmt, sql, data, lease!, req);
      format = req.format ?? 'TabSeparated';
    } else if (isKillQuery(stmt)) {
      const rows = await this.running.kill(stmt, this.o.readEngine, req.user ?? 'default');
      format = stmt.format ?? req.format ?? 'TabSeparated';
      body = Buffer.from(/^JSONEachRow$/i.test(format)
        ? rows.map((r) => JSON.stringify(r) + '\n').join('')
        : rows.map((r) => [r.kill_status, r.query_id, r.user, r.query].map(tsvEscape).join('\t') + '\n').join(''));
      if (!/^JSONEachRow$/i.test(format)) format = 'TabSeparated';
    } else if (stmt.write) {
      if (req.endpoint === 'local') {
        throw new GatewayError(CODES.READONLY, 'Cannot execute query in readonly mode: this is the local (read-only) endpoint; send writes to the consistent endpoint');
      }
      if (req.readonlyMethod) {
        throw new GatewayError(CODES.READONLY, 'Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries');
      }
      if (database !== this.userDb) throw new GatewayError(CODES.UNKNOWN_DATABASE, `Database ${database} does not exist: RaftHouse serves the database ${this.userDb}`);
      // The write path's allow-list (rules/): the state machine checks every entry again on apply.
      checkWrite(stmt, this.writeRules());
      const written = await this.write(stmt, sql, data, req);
      summary.written_rows = String(Math.max(0, written));
      format = req.format ?? 'TabSeparated';
    } else {
      if (database !== this.userDb && !READ_DATABASES.has(database)) await this.refuseUnknownDatabase(database);
      checkRead(stmt, { database, userDb: this.userDb, ...(this.o.allowTableFunctions ? { allowFunctions: this.o.allowTableFunctions } : {}) });
      const user = req.user ?? 'default';
      const limits = this.o.limits?.(user) ?? DEFAULT_READ_LIMITS;
      checkStatementSettings(sql, limits);
      const settings = readSettings(req.settings, limits);
      const showCreate = showCreateAsCreated(stmt, database, this.userDb, lease?.temporary ?? new Set());
      let text = showCreate ?? sql;
      text = this.running.sandboxProcesses(text, stmt, database, this.o.readEngine, user);
      // system.tables / columns / databases as the user's database, system.query_log from this node's log.
      const catalogs = catalogsIn(text);
      if (catalogs.has('query_log')) await this.queryLog?.flush();
      const queryLog = this.queryLog;
      // The user's catalogs (and SHOW CREATE) describe every group: on the consistent endpoint they are
      // read as SHOW TABLES is, after a barrier on every group (a table created through another node
      // is there).
      const barrierStmt: ParsedStatement = catalogs.has('tables') || catalogs.has('columns') || catalogs.has('databases') || showCreate !== undefined
        ? { ...stmt, kind: 'show' } : stmt;
      text = rewriteCatalogs(text, stmt, database, {
        userDb: this.userDb,
        queryLog: (u) => queryLog ? queryLog.source(u) : `(SELECT * FROM system.one WHERE 0)`,
      }, user);
      if (this.running.size >= (this.o.maxConcurrentQueries ?? 32)) {
        throw new GatewayError(CODES.TOO_MANY_SIMULTANEOUS_QUERIES, `Too many simultaneous queries. Maximum: ${this.o.maxConcurrentQueries ?? 32}`);
      }
      const ticket = this.running.start(user, queryId, req.signal);
      let streaming = false;
      const stats: QueryStats = { resultRows: 0 };
      try {
        const opts: ReadOpts = {
          database, format, settings, params: req.params, queryId: ticket.id, signal: ticket.signal, timeoutMs: killAfterMs(settings, limits), stats,
          session: lease?.session,
        };
        const r = !streamable(format, text, settings)
          ? (req.endpoint === 'consistent' ? await this.consistentRead(barrierStmt, text, opts) : { body: await this.read(text, opts) })
          : req.endpoint === 'consistent' ? await this.consistentStart(barrierStmt, text, opts) : { started: await this.startRead(text, opts) };
        if ('body' in r) {
          body = r.body;
          if (r.cutAttempts !== undefined) summary.rafthouse_cut_attempts = String(r.cutAttempts);
        } else if (r.started.done) {
          body = Buffer.concat(r.started.chunks);
        } else {
          checkResultBytes(r.started.bytes, limits);
          streaming = true;
          stream = this.streamRest(r.started, limits, () => ticket.finish());
        }
      } finally {
        if (!streaming) ticket.finish();
      }
      checkResultBytes(body.length, limits);
      summary.result_bytes = String(body.length);
      summary.result_rows = String(stats.resultRows);
    }
    summary.elapsed_ns = String(process.hrtime.bigint() - t0);
    return { body, format, queryId, summary, ...(stream ? { stream } : {}) };
  }

  /** The rest of a started read, counted against max_result_bytes; `finish` runs however it ends. */
  private async *streamRest(started: StartedRead, limits: ReadLimits, finish: () => void): AsyncGenerator<Uint8Array> {
    let bytes = 0;
    try {
      const prefix = started.chunks;
      started.chunks = [];
      for (const c of prefix) {
        bytes += c.length;
        yield c;
      }
      for (;;) {
        const next = await started.it.next();
        if (next.done) {
          started.done = true;
          return;
        }
        bytes += next.value.length;
        checkResultBytes(bytes, limits);
        yield next.value;
      }
    } finally {
      closeStarted(started);
      finish();
    }
  }

  // ---- client sessions -----------------------------------------------------------------------------

  /**
   * What of a statement stays in its client session: a SET (session settings, never replicated as
   * the consistent endpoint's SET without a session is), CREATE TEMPORARY TABLE, and INSERT into or
   * DROP of one of the session's temporary tables. undefined: the statement takes its usual path
   * (a write through Raft, a read in the session).
   */
  private sessionLocal(stmt: ParsedStatement, lease: SessionLease): 'set' | 'create' | 'insert' | 'drop' | undefined {
    if (stmt.kind === 'set') return 'set';
    const head = significant(tokenize(stmt.canonical.slice(0, 200))).slice(0, 4).map((t) => t.text.toUpperCase());
    if (stmt.kind === 'create' && (head[1] === 'TEMPORARY' || (head[1] === 'OR' && head[3] === 'TEMPORARY'))) return 'create';
    const t = stmt.target;
    const temporary = t && t.database === undefined && lease.temporary.has(t.table.toLowerCase());
    if (!temporary) return undefined;
    if (stmt.kind === 'insert') return 'insert';
    if (stmt.kind === 'drop') return 'drop';
    return undefined;
  }

  private async runSessionLocal(what: 'set' | 'create' | 'insert' | 'drop', stmt: ParsedStatement, sql: string, data: Buffer | undefined,
    lease: SessionLease, req: GatewayRequest): Promise<void> {
    const database = req.database || this.userDb;
    // Query parameters reach the session as they reach a read (the engine's SET param_ form).
    const params = req.params && Object.keys(req.params).length ? { params: req.params } : {};
    const run = (text: string) => lease.session.query(text, { format: 'TabSeparated', database, ...params });
    // Whatever runs in the session runs on this node as a read does: a read's reach for its expressions.
    if (what !== 'set') checkSessionStatement(stmt, { database, userDb: this.userDb, ...(this.o.allowTableFunctions ? { allowFunctions: this.o.allowTableFunctions } : {}) });
    switch (what) {
      case 'set': {
        const { settings } = extractSettings('SETTINGS ' + stmt.canonical.replace(/^SET\s+/i, ''));
        // What a read may set (rules/settings.ts), within the user's read limits.
        checkSettings(settings, 'read');
        readSettings(settings, this.o.limits?.(req.user ?? 'default') ?? DEFAULT_READ_LIMITS);
        await run(stmt.canonical);
        return;
      }
      case 'create': {
        if (stmt.hasSelect) {
          throw new GatewayError(CODES.NOT_IMPLEMENTED, 'CREATE TEMPORARY TABLE ... AS SELECT is not supported in a RaftHouse session: create the table, then INSERT rows as data');
        }
        const engine = /\bENGINE\s*=\s*([A-Za-z]+)/i.exec(stmt.canonical)?.[1];
        if (engine !== undefined && engine.toLowerCase() !== 'memory') {
          throw new GatewayError(CODES.NOT_IMPLEMENTED, `a temporary table in a RaftHouse session is a Memory table (ENGINE = ${engine} refused)`);
        }
        if (!stmt.target) throw new GatewayError(CODES.BAD_ARGUMENTS, 'cannot find the name this CREATE gives');
        await run(stmt.canonical);
        lease.temporary.add(stmt.target.table.toLowerCase());
        return;
      }
      case 'insert': {
        if (stmt.hasSelect) {
          throw new GatewayError(CODES.NOT_IMPLEMENTED, 'INSERT ... SELECT into a temporary table is not supported in a RaftHouse session: insert rows as data');
        }
        if (!data || data.length === 0) return;
        // Rows as data go to the session's structured insert in their format, binary ones included;
        // VALUES rows are SQL and run as the statement they are part of.
        const format = WRITE_FORMATS.get((stmt.format ?? 'Values').toLowerCase());
        if (format && format !== 'Values') {
          await lease.session.insertData({ table: stmt.target!.table, format, ...(stmt.columns?.length ? { columns: stmt.columns } : {}) }, data);
          return;
        }
        await run(`${sql.trimEnd()}\n${utf8Text(data, 'The INSERT data of a temporary table')}`);
        return;
      }
      case 'drop':
        await run(stmt.canonical);
        lease.temporary.delete(stmt.target!.table.toLowerCase());
        return;
    }
  }

  /**
   * A `database` parameter naming no database at all is UNKNOWN_DATABASE (81), as a server answers
   * before it reads the query; one that exists but is not for reads is left to the rules (497).
   */
  private async refuseUnknownDatabase(database: string): Promise<void> {
    const found = await queryRows<{ n: number }>(this.o.engine, `SELECT count() AS n FROM system.databases WHERE name = ${quoteString(database)}`);
    if (!found[0]?.n) throw new GatewayError(CODES.UNKNOWN_DATABASE, `Database ${database} does not exist`);
  }

  private writeRules(): WriteContext {
    this.writeContext ??= {
      scope: { own: new Set(), insertTarget: new Set([this.userDb]), userDb: this.userDb },
      nondeterministic: this.o.nondeterministic,
      allowPinnable: true,
    };
    return this.writeContext;
  }

  // ---- reads ---------------------------------------------------------------------------------------

  /**
   * A linearizable read. The plain way: barriers (ReadIndex) on the groups the statement touches, then
   * the read. The barrier's round trip (gateway -> raftd -> group leader -> quorum) is most of the cost,
   * so when the local applied indexes are known the read runs at the same time as the barrier instead:
   * with A = the local applied index of each group taken just before the read started, and R = the read
   * index the barrier returns, A >= R means the read saw every entry up to R — every write acknowledged
   * before this request arrived (they were committed before the ReadIndex started, so their index is
   * at most R) — which is what the barrier-then-read order guarantees. Otherwise (replica behind, or the
   * early read failed) the result is dropped and the ordinary path runs.
   *
   * A read of several groups goes through the consistent cut instead (gateway/cut.ts): per-group
   * freshness is not enough there, the groups must be seen at one instant. The early path never serves
   * it (it reads while apply runs, so its groups may be seen at different instants).
   */
  private async consistentRead(stmt: ParsedStatement, sql: string, opts: ReadOpts): Promise<{ body: Buffer; cutAttempts?: number }> {
    await this.refuseUnwiredPartialRead(stmt, opts);
    if (this.o.placed?.wired && this.o.placed.partial() && this.o.cut && stmt.kind === 'select') {
      const placed = await this.placedRead(stmt, sql, opts);
      if (placed) return placed;
    }
    const plan = this.speculativePlan(stmt, opts.database);
    if (this.o.cut && plan && plan.groups.length > 1) {
      // The groups are known without asking (the sharding cached at this schema generation): straight
      // to the cut. If a statement was applied since the plan, its groups may be wrong: barrier below.
      const stamp = this.o.schemaGeneration?.();
      let stale = false;
      const r = await this.o.cut.read(plan.groups, () => {
        if (stamp === undefined || stamp % 2 === 1 || this.o.schemaGeneration!() !== stamp) {
          stale = true;
          return Promise.resolve(Buffer.alloc(0));
        }
        return this.read(sql, opts);
      });
      if (!stale) return { body: r.body, cutAttempts: r.attempts };
    }
    if (this.o.cut && (!plan || plan.groups.length > 1)) {
      // This barrier finds the groups (a table's sharding, read in its home group) and brings the
      // replica up to date; what makes the read one cut is the cut's own check.
      const groups = await this.barrierFor(stmt, opts.database);
      if (groups.length > 1) {
        const r = await this.o.cut.read(groups, () => this.read(sql, opts));
        return { body: r.body, cutAttempts: r.attempts };
      }
      return { body: await this.read(sql, opts) };
    }
    return { body: await this.consistentReadOneCut(stmt, sql, opts, plan) };
  }

  /**
   * consistentRead's streaming form: a read of one group (or none) starts a stream, kept once its
   * barrier confirms it; a read of several groups under the consistent cut is read whole, as
   * consistentRead does (the cut holds apply in those groups while it runs, so it must not wait on a
   * client reading slowly), bounded by max_result_bytes.
   */
  private async consistentStart(stmt: ParsedStatement, sql: string, opts: ReadOpts): Promise<{ body: Buffer; cutAttempts?: number } | { started: StartedRead }> {
    await this.refuseUnwiredPartialRead(stmt, opts);
    // Placed groups: read whole, as the cut does (a leg's hold must not wait on a slow client).
    if (this.o.placed?.wired && this.o.placed.partial() && this.o.cut && stmt.kind === 'select') return this.consistentRead(stmt, sql, opts);
    const plan = this.speculativePlan(stmt, opts.database);
    if (this.o.cut && (!plan || plan.groups.length > 1)) {
      if (plan) return this.consistentRead(stmt, sql, opts);
      const groups = await this.barrierFor(stmt, opts.database);
      if (groups.length > 1) {
        const r = await this.o.cut.read(groups, () => this.read(sql, opts));
        return { body: r.body, cutAttempts: r.attempts };
      }
      return { started: await this.startRead(sql, opts) };
    }
    if (!plan) {
      await this.barrierFor(stmt, opts.database);
      return { started: await this.startRead(sql, opts) };
    }
    if (plan.groups.length === 0) return { started: await this.startRead(sql, opts) };
    // As consistentReadOneCut: the read runs while its barrier is in flight, and is kept when the
    // replica had reached the read index when it started. Nothing leaves before that is known.
    const planStamp = this.o.schemaGeneration?.();
    const barrier = this.barrierGroups(plan.groups);
    barrier.catch(() => undefined);
    let early: StartedRead | undefined;
    try {
      early = await this.startOnce(sql, opts);
    } catch {
      early = undefined;
    }
    let reached: number[];
    try {
      reached = await barrier;
    } catch (e) {
      closeStarted(early);
      throw e;
    }
    if (early !== undefined && reached.every((r, i) => plan.applied[i]! >= r)) return { started: early };
    closeStarted(early);
    if (planStamp === undefined || planStamp % 2 === 1 || this.o.schemaGeneration!() !== planStamp) await this.barrierFor(stmt, opts.database);
    return { started: await this.startRead(sql, opts) };
  }

  /**
   * Starts a streamed read and reads up to STREAM_PREFETCH_BYTES of it; undefined when the schema
   * moved under a read that ended within them (as whole()), or a restore swap is running. A read that
   * goes on past them was started on an even schema generation; a restore swap later in a long
   * stream is not detected (a single group's read sees its own tables or fails).
   */
  private async startOnce(sql: string, opts: ReadOpts): Promise<StartedRead | undefined> {
    const generation = this.o.schemaGeneration;
    const before = generation?.();
    if (before !== undefined && before % 2 === 1) return undefined;
    const engine = opts.session ?? this.o.readEngine;
    const it = engine.queryStream(sql, readQuery(opts))[Symbol.asyncIterator]();
    const started: StartedRead = { chunks: [], bytes: 0, done: false, it };
    try {
      while (started.bytes < STREAM_PREFETCH_BYTES) {
        const next = await it.next();
        if (next.done) {
          started.done = true;
          break;
        }
        const b = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
        started.chunks.push(b);
        started.bytes += b.length;
      }
    } catch (e) {
      closeStarted(started);
      throw e;
    }
    if (started.done && generation && generation() !== before) return undefined;
    return started;
  }

  /** read()'s streaming form: startOnce with read()'s retries (a view missing, a restore swap). */
  private async startRead(sql: string, opts: ReadOpts): Promise<StartedRead> {
    for (let attempt = 0; ; attempt++) {
      let r: StartedRead | undefined;
      try {
        r = await this.startOnce(sql, opts);
      } catch (e) {
        if (!(e instanceof ClickHouseError) || !VIEW_MISS_CODES.has(e.code)) throw e;
        await this.views.sync();
        r = await this.startOnce(sql, opts);
      }
      if (r !== undefined) return r;
      if (attempt >= SWAP_RETRIES) {
        throw new GatewayError(CODES.UNKNOWN_DATABASE, 'a group database of this replica is being replaced by a snapshot restore; retry');
      }
      await new Promise((res) => setTimeout(res, SWAP_RETRY_MS));
    }
  }

  /** The consistent read without a cut: one group (or --consistent-cut off). */
  private async consistentReadOneCut(stmt: ParsedStatement, sql: string, opts: ReadOpts, plan: { groups: number[]; applied: number[] } | undefined): Promise<Buffer> {
    if (!plan) {
      await this.barrierFor(stmt, opts.database);
      return this.read(sql, opts);
    }
    if (plan.groups.length === 0) return this.read(sql, opts);
    const planStamp = this.o.schemaGeneration?.();
    const barrier = this.barrierGroups(plan.groups);
    // Settled even when the early read is awaited first: a failing barrier must not go unhandled.
    barrier.catch(() => undefined);
    let early: Buffer | undefined;
    try {
      early = await this.whole(() => (opts.session ?? this.o.readEngine).query(sql, readQuery(opts)));
    } catch {
      early = undefined; // the ordinary path below reports (or recovers from) the error
    }
    const reached = await barrier;
    if (early !== undefined && reached.every((r, i) => plan.applied[i]! >= r)) return early;
    // The barrier left this replica at R or beyond in the plan's groups. If no statement was applied
    // since the plan (same even schema generation), its groups are still the right ones: just read.
    // Otherwise the sharding may have changed with entries up to R: barrier again on the groups it
    // names now.
    if (planStamp === undefined || planStamp % 2 === 1 || this.o.schemaGeneration!() !== planStamp) await this.barrierFor(stmt, opts.database);
    return this.read(sql, opts);
  }

  /** The user tables a read touches, with the groups holding their rows (ascending). */
  private async placedTables(stmt: ParsedStatement, opts: ReadOpts): Promise<{ tables: Map<string, PlacedTable>; groups: number[] }> {
    const tables = new Map<string, PlacedTable>();
    for (const t of stmt.tables) {
      const db = t.database ?? opts.database;
      if (db !== this.userDb || t.table.startsWith(INTERNAL_TABLE_PREFIX) || tables.has(t.table)) continue;
      const info = await this.tableInfo(t.table);
      if (!info) continue; // ClickHouse answers for a table that does not exist
      tables.set(t.table, { columns: info.columns, groups: info.shardKey ? this.allGroups() : [this.o.ring.homeGroup(this.userDb, t.table)] });
    }
    return { tables, groups: [...new Set([...tables.values()].flatMap((t) => t.groups))].sort((a, b) => a - b) };
  }

  /**
   * A rafthouse not wired to the others (no --internal-peers) whose raftd placed groups on other nodes
   * only: a consistent read touching such a group would answer from the groups here alone, a silently
   * partial result. Refused instead, naming the flag (placed/groups.ts, unwiredReadRefusal).
   */
  private async refuseUnwiredPartialRead(stmt: ParsedStatement, opts: ReadOpts): Promise<void> {
    const placed = this.o.placed;
    if (!placed || placed.wired || stmt.kind !== 'select') return;
    if (!placed.known) await placed.refresh().catch(() => undefined); // the first reads after start
    if (placed.placedElsewhere().length === 0) return;
    const { groups } = await this.placedTables(stmt, opts);
    const refusal = unwiredReadRefusal(groups, placed.placedElsewhere());
    if (refusal) throw new GatewayError(CODES.NO_REMOTE_SHARD_AVAILABLE, refusal);
  }

  /**
   * A consistent read whose tables have rows in groups without a replica here (placed groups, issue
   * 21): one cut over every touched group — local ones held in this process, each remote one held on a
   * member (PlacedGroups.hold) — and, if every r_g == a_g, the read rewritten so that each table is the
   * union of its local databases (merge()) and one url() leg per remote group, served by the member
   * under its hold (placed/rewrite.ts). undefined: every touched group is here (the usual path).
   */
  private async placedRead(stmt: ParsedStatement, sql: string, opts: ReadOpts): Promise<{ body: Buffer; cutAttempts: number } | undefined> {
    const placed = this.o.placed!;
    const { tables, groups } = await this.placedTables(stmt, opts);
    if (groups.length === 0 || groups.every((g) => placed.isLocal(g))) return undefined;
    // ClickHouse's canonical text (aliases always with AS, which the WHERE push-down looks for) when the
    // read was not rewritten for the catalogs; else the text as it is, without a WHERE push-down.
    const own = stmt.tables.every((t) => (t.database ?? opts.database) === this.userDb);
    const base = own ? stmt.canonical : sql;
    // Partial aggregation where the query allows it: -State in the legs, -Merge here (placed/rewrite.ts).
    let split: { plan: SplitPlan; described: Array<{ name: string; type: string }> } | undefined;
    const plan = planAggregateSplit({ sql: base, database: opts.database, userDb: this.userDb, tables, allowWhere: own });
    if (plan) {
      const described = await queryRows<{ name: string; type: string }>(this.o.readEngine, plan.describeSql).catch(() => undefined);
      if (described && described.length === plan.aggregates.length + plan.named.length) split = { plan, described };
    }
    const run = async (hold: ApplyHold): Promise<Buffer> => {
      const legs = (hold as Partial<PlacedHold>).legs ?? new Map();
      const input = {
        sql: base, database: opts.database, userDb: this.userDb, tables, allowWhere: own,
        isLocal: (g: number) => !legs.has(g), remote: (g: number, legSql: string, structure: string) => placed.legSource(legs.get(g)!, legSql, structure),
      };
      const text = split ? rewriteAggregateSplit(input, split.plan, split.described) : rewritePlacedRead(input).sql;
      try {
        return await this.read(text, { ...opts, settings: { ...(opts.settings ?? {}), ...LEG_FETCH_SETTINGS } });
      } catch (e) {
        const retry = legFailure(e, new Set([...legs.values()].map((l) => l.hold)));
        if (!retry) throw e;
        // A leg that failed (member gone, lease over): the round fails, the next holds elsewhere. The
        // engine's text names the leg URL (member address, hold id, signature-bearing query): logged,
        // and the client is told only the node.
        const node = retry.base ? placed.nodeOfBase(retry.base) : undefined;
        if (node !== undefined) placed.markSuspect(node);
        placed.logLegFailure((e as Error).message);
        throw new CutRetryError(`a remote leg failed${node !== undefined ? ` on node ${node}` : ''} (${(e as ClickHouseError).name})`);
      }
    };
    const r = await this.o.cut!.read(groups, run);
    return { body: r.body, cutAttempts: r.attempts };
  }

  /**
   * The groups a consistent read must barrier and their local applied indexes, when both are known
   * without asking anything: every named table's sharding is cached at exactly the applied index its
   * home group has now (see barrierFor). undefined: take the ordinary path.
   */
  private speculativePlan(stmt: ParsedStatement, database: string): { groups: number[]; applied: number[] } | undefined {
    const local = this.o.localApplied;
    if (!local) return undefined;
    let groups: number[];
    if (stmt.kind === 'show') groups = this.allGroups();
    else {
      const homes = new Set<number>();
      let sharded = false;
      for (const t of stmt.tables) {
        const db = t.database ?? database;
        if (db !== this.userDb || t.table.startsWith(INTERNAL_TABLE_PREFIX)) continue;
        const h = this.o.ring.homeGroup(this.userDb, t.table);
        const a = local(h);
        const c = this.shardCache.get(t.table);
        if (a === undefined || !c || c.group !== h || c.stamp !== this.shardStamp(a)) return undefined;
        homes.add(h);
        if (c.sharded) sharded = true;
      }
      groups = sharded ? this.allGroups() : [...homes];
    }
    const applied: number[] = [];
    for (const g of groups) {
      const a = local(g);
      if (a === undefined) return undefined;
      applied.push(a);
    }
    return { groups, applied };
  }

  private async read(sql: string, opts: ReadOpts): Promise<Buffer> {
    const q = readQuery(opts);
    for (let attempt = 0; ; attempt++) {
      const body = await this.whole(async () => {
        try {
          return await (opts.session ?? this.o.readEngine).query(sql, q);
        } catch (e) {
          if (!(e instanceof ClickHouseError) || !VIEW_MISS_CODES.has(e.code)) throw e;
          await this.views.sync();
          return (opts.session ?? this.o.readEngine).query(sql, q);
        }
      });
      if (body !== undefined) return body;
      if (attempt >= SWAP_RETRIES) {
        throw new GatewayError(CODES.UNKNOWN_DATABASE, 'a group database of this replica is being replaced by a snapshot restore; retry');
      }
      await new Promise((r) => setTimeout(r, SWAP_RETRY_MS));
    }
  }

  /** Runs a read; undefined when the schema moved under it (a restore swap may have hidden a group). */
  private async whole(run: () => Promise<Buffer>): Promise<Buffer | undefined> {
    const generation = this.o.schemaGeneration;
    if (!generation) return run();
    const before = generation();
    if (before % 2 === 1) return undefined;
    const body = await run();
    return generation() === before ? body : undefined;
  }

  /**
   * Barriers on the groups a read touches: the home group of each table it names; every group for a
   * sharded one. Resolves with those groups.
   */
  private async barrierFor(stmt: ParsedStatement, database: string): Promise<number[]> {
    const names = new Set<string>();
    for (const t of stmt.tables) {
      const db = t.database ?? database;
      if (db === this.userDb && !t.table.startsWith(INTERNAL_TABLE_PREFIX)) names.add(t.table);
    }
    if (stmt.kind === 'show') {
      await this.barrierGroups(this.allGroups());
      return this.allGroups();
    }
    if (names.size === 0) return [];
    const homes = new Map<number, string[]>();
    for (const n of names) {
      const h = this.o.ring.homeGroup(this.userDb, n);
      homes.set(h, [...(homes.get(h) ?? []), n]);
    }
    const homeList = [...homes.keys()];
    const applied = await this.barrierGroups(homeList);
    let sharded = false;
    for (let i = 0; i < homeList.length; i++) {
      const h = homeList[i]!;
      const list = homes.get(h)!;
      // A table's definition (sharded or not) always lives in its home group.
      const stamp = this.shardStamp(applied[i]!);
      const cached = list.map((t) => this.shardCache.get(t));
      if (cached.every((c) => c !== undefined && c.group === h && c.stamp === stamp)) {
        if (cached.some((c) => c!.sharded)) sharded = true;
        continue;
      }
      const found = await queryRows<{ name: string; comment: string }>(this.o.engine,
        `SELECT name, comment FROM system.tables WHERE database = ${quoteString(dataDb(h))} AND name IN (${list.map(quoteString).join(', ')})`);
      const shardedNames = new Set(found.filter((r) => SHARD_COMMENT_RE.test(r.comment)).map((r) => r.name));
      // Not while a restore swap runs (odd generation): a group's tables may be missing then.
      if (stamp % 2 === 0 || !this.o.schemaGeneration) {
        for (const t of list) {
          if (this.shardCache.size > 10_000) this.shardCache.clear();
          this.shardCache.set(t, { group: h, stamp, sharded: shardedNames.has(t) });
        }
      }
      if (shardedNames.size) sharded = true;
    }
    if (!sharded) return homeList;
    await this.barrierGroups(this.allGroups().filter((g) => !homes.has(g)));
    return this.allGroups();
  }

  /**
   * What a cached sharding answer is valid for. With the local state machine's schema generation: as
   * long as it has not moved (no statement applied, no restore since), so inserts do not invalidate it
   * and consistent reads under write load keep their early path. Without it: the home group's applied
   * index `at` (no entry at all applied since).
   */
  private shardStamp(at: number): number {
    return this.o.schemaGeneration ? this.o.schemaGeneration() : at;
  }

  private allGroups(): number[] {
    return Array.from({ length: this.o.ring.groups }, (_, i) => i + 1);
  }

  /** Linearizable barriers; resolves with the local applied index each group reached. */
  private barrierGroups(groups: number[]): Promise<number[]> {
    return Promise.all(groups.map((g) => this.sharedBarrier(g)));
  }

  /**
   * A linearizable barrier for a read that arrived now. A barrier already in flight may have started
   * before the read arrived, so it does not count for it; every read arriving while one is in flight
   * shares the next one, started as soon as it ends: concurrent reads cost one ReadIndex per group
   * and round instead of one each.
   */
  private sharedBarrier(group: number): Promise<number> {
    let s = this.barriers.get(group);
    if (!s) {
      s = { running: undefined, queued: undefined };
      this.barriers.set(group, s);
    }
    const slot = s;
    if (slot.queued) return slot.queued;
    const start = (): Promise<number> => {
      const p = this.o.raftd.barrier(group, 'linearizable');
      slot.running = p;
      const done = (): void => { if (slot.running === p) slot.running = undefined; };
      p.then(done, done);
      return p;
    };
    if (!slot.running) return start();
    const queued = slot.running.then(() => undefined, () => undefined).then(() => {
      slot.queued = undefined;
      return start();
    });
    slot.queued = queued;
    return queued;
  }

  // ---- table metadata (local replica, refreshed with a barrier when missing) -----------------------

  private async tableInfo(table: string, barrier = true): Promise<TableInfo | undefined> {
    const home = this.o.ring.homeGroup(this.userDb, table);
    const generation = this.o.schemaGeneration;
    const cached = generation ? this.infoCache.get(table) : undefined;
    if (cached && cached.gen === generation!()) return cached.info;
    const look = async (): Promise<TableInfo | undefined> => {
      // Read before the lookup: a statement applied during it changes the generation, so the entry
      // cached below is never taken for newer than it is.
      const gen = generation?.();
      const db = await this.localDbOf(table, home);
      // Placed groups: a table whose home group is elsewhere (and not sharded into a group here) is
      // described by a member of its home group (a linearizable read through raftd); not cached.
      if (db === undefined) return this.remoteTableInfo(home, table);
      const info = await lookNow(db);
      if (info && gen !== undefined) {
        if (this.infoCache.size > 10_000) this.infoCache.clear();
        this.infoCache.set(table, { gen, info });
      }
      return info;
    };
    const lookNow = async (db: string): Promise<TableInfo | undefined> => {
      const t = await queryRows<{ comment: string }>(this.o.engine, tableCommentSql(db, table));
      if (t.length === 0) return undefined;
      const cols = await queryRows<{ name: string; type: string; kind: string; expr: string }>(this.o.engine, tableColumnsSql(db, table));
      const m = SHARD_COMMENT_RE.exec(t[0]!.comment);
      return { ...(m ? { shardKey: m[1]! } : {}), columns: cols };
    };
    let info = await look();
    if (!info && barrier) {
      await this.sharedBarrier(home);
      info = await look();
    }
    return info;
  }

  /**
   * The local database to read a table's definition from: its home group's, when that group is here
   * (or placement is not partial); else a group here holding it as a sharded table (a sharded table
   * is in every group); undefined: only a member of the home group can say.
   */
  private async localDbOf(table: string, home: number): Promise<string | undefined> {
    const placed = this.o.placed;
    if (!placed || placed.isLocal(home)) return dataDb(home);
    const rows = await queryRows<{ database: string }>(this.o.engine,
      `SELECT database FROM system.tables WHERE match(database, ${quoteString(DATA_DB_REGEXP)}) AND name = ${quoteString(table)}
       AND startsWith(comment, ${quoteString(SHARD_SETTING + '=')}) ORDER BY database LIMIT 1`);
    return rows[0]?.database;
  }

  private async remoteTableInfo(home: number, table: string): Promise<TableInfo | undefined> {
    const db = dataDb(home);
    const ask = async <T>(sql: string): Promise<T[]> => (await this.o.raftd.read<{ rows: T[] }>(home, { sql, format: 'JSONEachRow' })).rows;
    const t = await ask<{ comment: string }>(tableCommentSql(db, table));
    if (t.length === 0) return undefined;
    const cols = await ask<{ name: string; type: string; kind: string; expr: string }>(tableColumnsSql(db, table));
    const m = SHARD_COMMENT_RE.exec(t[0]!.comment);
    return { ...(m ? { shardKey: m[1]! } : {}), columns: cols };
  }

  // ---- writes --------------------------------------------------------------------------------------

  /**
   * The settings a write carries into its entry: from the allow-list (rules/settings.ts), refused with
   * 452 otherwise. A setting from the URL that only a read may use (output formats, a read's limits) is
   * left out: the write has no result to shape, and what it does on apply RaftHouse fixes.
   */
  private writeSettings(req: GatewayRequest, stmt: ParsedStatement): { settings: Settings; sqlWithout: string } {
    const clause = extractSettings(stmt.canonical);
    // Clauses inside the statement (a subquery's SETTINGS) run on apply too.
    checkSettings(settingsInSql(clause.without, stmt.kind === 'create'), 'entry');
    const settings: Settings = {};
    const readOnly = (k: string) => settingRule(k, 'read') !== undefined && settingRule(k, 'entry') === undefined && !DROPPED_WRITE_SETTINGS.has(k);
    const fromUrl = Object.entries(req.settings ?? {}).filter(([k]) => !readOnly(k));
    for (const [k, v] of [...fromUrl, ...Object.entries(clause.settings)]) {
      if (DROPPED_WRITE_SETTINGS.has(k) || ASYNC_INSERT_SETTINGS.has(k)) continue;
      if (INSERT_DEDUP_SETTINGS.has(k) && stmt.kind !== 'insert') continue;
      settings[k] = v;
    }
    checkSettings(settings, 'entry');
    return { settings, sqlWithout: clause.without };
  }

  private async write(stmt: ParsedStatement, sql: string, data: Buffer | undefined, req: GatewayRequest): Promise<number> {
    switch (stmt.kind) {
      case 'insert': return this.insert(stmt, data, req);
      case 'create': case 'alter': case 'drop': case 'truncate': case 'optimize': case 'rename': {
        await this.ddl(stmt, req);
        return 0;
      }
      case 'set': {
        const { settings } = extractSettings('SETTINGS ' + stmt.canonical.replace(/^SET\s+/i, ''));
        for (const k of Object.keys(settings)) {
          if (DROPPED_WRITE_SETTINGS.has(k) || ASYNC_INSERT_SETTINGS.has(k) || INSERT_DEDUP_SETTINGS.has(k)) throw new GatewayError(CODES.BAD_ARGUMENTS, `setting ${k} is owned by RaftHouse and cannot be changed`);
        }
        // A SET becomes a default of every later entry of every group: the apply path's allow-list.
        checkSettings(settings, 'set');
        await this.proposeAll(this.allGroups(), { v: 1, kind: 'settings', settings, database: this.userDb });
        return 0;
      }
      case 'access':
        throw new GatewayError(CODES.NOT_IMPLEMENTED, `${stmt.ast.type}: RaftHouse does not replicate users, roles or grants; configure gateway users with rafthouse --users-file`);
      default:
        void sql;
        throw new GatewayError(CODES.NOT_IMPLEMENTED, `${stmt.ast.type} statements are not supported through RaftHouse's consistent endpoint`);
    }
  }

  private checkTarget(t: TableRef | undefined, what: string): string {
    if (!t) throw new GatewayError(CODES.BAD_ARGUMENTS, `cannot find the table this ${what} targets`);
    if (t.database !== undefined && t.database !== this.userDb) {
      throw new GatewayError(CODES.UNKNOWN_DATABASE, `Database ${t.database} does not exist: RaftHouse serves the database ${this.userDb}`);
    }
    if (t.table.startsWith(INTERNAL_TABLE_PREFIX)) throw new GatewayError(CODES.BAD_ARGUMENTS, `tables named ${INTERNAL_TABLE_PREFIX}* are RaftHouse's own`);
    return t.table;
  }

  /** Whether `fns` call now() & co. (to pin; every other non-deterministic call was refused by the rules). */
  private nondet(fns: string[]): { pin: boolean } {
    return { pin: fns.some((f) => PINNABLE.has(f.toLowerCase()) && (this.o.nondeterministic.has(f.toLowerCase()) || this.o.nondeterministic.has(f))) };
  }

  /** now() & co. replaced by the values the gateway's ClickHouse gives them now (one instant for the whole statement). */
  private async pinTime(sql: string): Promise<string> {
    const r = (await queryRows<{ t: number; ms: string; today: string; yesterday: string }>(this.o.engine,
      'SELECT toUnixTimestamp(now()) AS t, toString(toUnixTimestamp64Milli(now64(3))) AS ms, toString(today()) AS today, toString(yesterday()) AS yesterday'))[0]!;
    const dt = (args: string) => `toDateTime(${r.t}${args ? ', ' + args : ''})`;
    const out = replaceCalls(sql, {
      now: dt,
      current_timestamp: dt,
      now64: (args) => {
        if (args !== '' && args !== '3') throw new GatewayError(CODES.BAD_ARGUMENTS, `now64(${args}) is non-deterministic and only now64() / now64(3) can be pinned; send the value as a literal`);
        return `fromUnixTimestamp64Milli(${r.ms})`;
      },
      today: () => `toDate(${quoteString(r.today)})`,
      current_date: () => `toDate(${quoteString(r.today)})`,
      yesterday: () => `toDate(${quoteString(r.yesterday)})`,
    });
    return out.sql;
  }

  private async insert(stmt: ParsedStatement, data: Buffer | undefined, req: GatewayRequest): Promise<number> {
    const table = this.checkTarget(stmt.target, 'INSERT');
    const { settings, sqlWithout } = this.writeSettings(req, stmt);
    const info = await this.tableInfo(table);
    if (!info) throw new GatewayError(CODES.UNKNOWN_TABLE, `Table ${this.userDb}.${table} does not exist`);
    const home = this.o.ring.homeGroup(this.userDb, table);

    if (stmt.hasSelect) {
      if (info.shardKey) throw new GatewayError(CODES.NOT_IMPLEMENTED, `INSERT ... SELECT into the sharded table ${table} is not supported: select the rows and insert them (JSONEachRow)`);
      const nd = this.nondet(stmt.functions); // refusals: rules/statements.ts; pinning: here
      await this.refuseNondetDefaults(info, stmt.columns);
      const text = nd.pin ? await this.pinTime(sqlWithout) : sqlWithout;
      const r = await this.proposeOne(home, { v: 1, kind: 'insert', sql: text, database: this.userDb, settings });
      return (r as { writtenRows?: number } | null)?.writtenRows ?? 0;
    }

    if (data === undefined || data.length === 0) return 0;
    let format = WRITE_FORMATS.get((stmt.format ?? 'Values').toLowerCase());
    if (!format) {
      throw new GatewayError(CODES.NOT_IMPLEMENTED,
        `format ${stmt.format} is not accepted for writes through RaftHouse; use one of ${[...new Set(WRITE_FORMATS.values())].join(', ')}`);
    }
    let columns = stmt.columns;
    let payload: Buffer = data;
    if (format === 'Values') {
      // VALUES rows may hold expressions (now(), rand(), 1+1): ClickHouse evaluates them here, once, on
      // the read-only session with the rows as a bound parameter (never spliced into SQL), and the
      // replicas get the resulting literal rows.
      const given = columns ?? info.columns.filter((c) => c.kind === '' || c.kind === 'DEFAULT').map((c) => c.name);
      const types = new Map(info.columns.map((c) => [c.name, c.type]));
      const structure = given.map((c) => {
        const t = types.get(c);
        if (!t) throw new GatewayError(CODES.NO_SUCH_COLUMN_IN_TABLE, `No such column ${c} in table ${this.userDb}.${table}`);
        return `${quoteIdent(c)} ${t}`;
      }).join(', ');
      const text = utf8Text(data, 'The VALUES data');
      checkValuesData(text);
      const toks = significant(tokenize(text));
      const semi = toks.findIndex((t) => t.text === ';');
      if (semi >= 0 && semi < toks.length - 1) {
        throw new GatewayError(CODES.SYNTAX_ERROR, 'Multi-statements are not allowed: text follows the VALUES rows after ";"');
      }
      // Quoted literals, not bound parameters: chdb runs parameterized calls one at a time per process.
      payload = await this.o.readEngine.query(`SELECT * FROM format(Values, ${quoteString(structure)}, ${quoteString(text)})`,
        { format: 'JSONEachRow', settings: { output_format_json_quote_64bit_integers: 0 } });
      format = 'JSONEachRow';
      columns = given;
    }
    // DEFAULT / MATERIALIZED columns with non-deterministic expressions are computed here, once; a
    // sharded table's rows must be JSONEachRow for the splitter: chdb reads the body (any format) once
    // here and the groups get JSONEachRow. Every other insert passes its body through unchanged.
    const nondetDefaults = await this.nondetDefaultColumns(info, columns);
    if (nondetDefaults.length > 0 || (info.shardKey && format !== 'JSONEachRow')) {
      payload = await this.materialize(home, table, info, columns, format, payload, settings);
      format = 'JSONEachRow';
      columns = info.columns.map((c) => c.name);
      settings.insert_allow_materialized_columns = 1;
    }
    // A structured insert (statemachine/entry.ts): table, columns, format and settings as data, the
    // payload as the client sent it (or as the gateway converted it above), whatever its format.
    const header: EntryHeader = {
      v: 1, kind: 'insert', table, format, database: this.userDb, settings, ...(columns && columns.length ? { columns } : {}),
    };
    if (!info.shardKey) {
      const r = await this.proposeOne(home, header, payload);
      return (r as { writtenRows?: number } | null)?.writtenRows ?? 0;
    }
    const split = splitJsonEachRow(this.o.ring, payload, info.shardKey);
    const groups = [...split.parts.keys()];
    const results = await this.proposeAll(groups, header, (g) => split.parts.get(g)!);
    return results.reduce<number>((s, r) => s + Math.max(0, (r as { writtenRows?: number } | null)?.writtenRows ?? 0), 0);
  }

  private async nondetDefaultColumns(info: TableInfo, given: string[] | undefined): Promise<string[]> {
    const out: string[] = [];
    for (const c of info.columns) {
      if (c.kind !== 'DEFAULT' && c.kind !== 'MATERIALIZED') continue;
      if (c.kind === 'DEFAULT' && given && given.includes(c.name)) continue;
      const p = await this.o.parser.parse(`SELECT ${c.expr}`);
      if (p.functions.some((f) => this.o.nondeterministic.has(f.toLowerCase()) || this.o.nondeterministic.has(f))) out.push(c.name);
    }
    return out;
  }

  private async refuseNondetDefaults(info: TableInfo, given: string[] | undefined): Promise<void> {
    const cols = await this.nondetDefaultColumns(info, given);
    if (cols.length) {
      throw new GatewayError(CODES.BAD_ARGUMENTS,
        `column ${cols[0]} of the target table has a non-deterministic DEFAULT/MATERIALIZED expression: INSERT ... SELECT cannot pin it; insert rows as data (they are materialized on the gateway) or give the column explicitly`);
    }
  }

  /**
   * Evaluates the rows on the gateway: a scratch Memory table with the target's structure (defaults
   * included) receives the data, and every stored column is read back as JSONEachRow. Replicas then
   * insert literal values (insert_allow_materialized_columns=1), never re-evaluating an expression.
   */
  private async materialize(home: number, table: string, info: TableInfo, columns: string[] | undefined, format: string, data: Buffer, entrySettings: Settings): Promise<Buffer> {
    this.scratchReady ??= this.o.engine.exec(`CREATE DATABASE IF NOT EXISTS ${SCRATCH_DB} ENGINE = Memory`);
    await this.scratchReady;
    const scratchTable = `s_${randomUUID().replace(/-/g, '')}`;
    const scratch = `${SCRATCH_DB}.${scratchTable}`;
    const src = await this.localDbOf(table, home);
    // Placed groups: without the table here, its structure from the definition read from a member.
    await this.o.engine.exec(src !== undefined
      ? `CREATE TABLE ${scratch} AS ${src}.${quoteIdent(table)} ENGINE = Memory`
      : `CREATE TABLE ${scratch} (${info.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.kind ? ` ${c.kind} ${c.expr}` : ''}`).join(', ')}) ENGINE = Memory`);
    try {
      // Never FORMAT Values here: its data could end in "; <statement>" (payloads reach this point as
      // JSONEachRow or another allow-listed text format, whose data runs to the end of the input).
      if (format === 'Values') throw new GatewayError(CODES.BAD_ARGUMENTS, 'internal: Values rows must be evaluated before materialization');
      // One parsing thread, in order, and one reading thread: the same body gives the same bytes (a
      // client's retry of it is then deduplicated by its block id, statemachine/dedup.ts).
      await this.o.engine.insertData({
        database: SCRATCH_DB, table: scratchTable, format, ...(columns && columns.length ? { columns } : {}),
        // The entry's own settings (allow-listed: how the data is parsed) read it as apply would have.
        settings: { ...parseSettings(entrySettings), max_parsing_threads: 1, input_format_parquet_preserve_order: 1, max_insert_threads: 1 },
      }, data);
      return await this.o.engine.query(`SELECT ${info.columns.map((c) => quoteIdent(c.name)).join(', ')} FROM ${scratch}`,
        { format: 'JSONEachRow', settings: { output_format_json_quote_64bit_integers: 0, output_format_json_quote_denormals: 1, max_threads: 1 } });
    } finally {
      await this.o.engine.exec(`DROP TABLE IF EXISTS ${scratch}`);
    }
  }

  private async ddl(stmt: ParsedStatement, req: GatewayRequest): Promise<void> {
    const table = this.checkTarget(stmt.target, stmt.kind.toUpperCase());
    if (stmt.target?.database !== undefined) {
      // The state machine runs DDL inside the group database: a qualified name would escape it.
      throw new GatewayError(CODES.BAD_ARGUMENTS, `name the table without a database (${table}, not ${stmt.target.database}.${table}): the database is the request's (${this.userDb})`);
    }
    const { settings } = this.writeSettings(req, { ...stmt, canonical: '' });
    let text = stmt.canonical;
    const home = this.o.ring.homeGroup(this.userDb, table);
    let groups: number[] = [home];
    if (stmt.kind === 'create') {
      // Column DEFAULTs may be non-deterministic (they are materialized on the gateway at insert time);
      // anything else (CREATE ... AS SELECT rand()) was refused by the rules.
      const clause = extractSettings(text);
      const key = clause.settings[SHARD_SETTING];
      if (key !== undefined) {
        const k = String(key);
        const declared = new Set<string>();
        const find = (n: ParsedStatement['ast']) => { if (n.type === 'ColumnDeclaration') declared.add(n.arg); n.children.forEach(find); };
        find(stmt.ast);
        if (!declared.has(k)) throw new GatewayError(CODES.BAD_ARGUMENTS, `${SHARD_SETTING} names ${k}, which is not a column of ${table}`);
        if (/\bCOMMENT\s+'/i.test(clause.without.slice(clause.without.lastIndexOf(')')))) {
          throw new GatewayError(CODES.BAD_ARGUMENTS, `a sharded table keeps its shard key in the table COMMENT: drop the COMMENT clause`);
        }
        const rest = Object.entries(clause.settings).filter(([n]) => n !== SHARD_SETTING)
          .map(([n, v]) => `${n} = ${typeof v === 'number' ? v : quoteString(v)}`);
        text = `${clause.without}${rest.length ? ' SETTINGS ' + rest.join(', ') : ''} COMMENT ${quoteString(`${SHARD_SETTING}=${k}`)}`;
        groups = this.allGroups();
      }
    } else {
      const info = await this.tableInfo(table);
      if (info?.shardKey) groups = this.allGroups();
      if (stmt.kind === 'alter') {
        // Non-deterministic calls were refused by the rules, but for now() & co.: pinned here.
        if (this.nondet(stmt.functions).pin) text = await this.pinTime(text);
      }
      if (stmt.kind === 'rename') {
        const to = stmt.ast.children.filter((c) => c.type === 'Identifier').map((c) => c.arg);
        const dest = to[to.length - 1];
        if (!info?.shardKey && dest !== undefined && this.o.ring.homeGroup(this.userDb, dest.replace(/^`|`$/g, '')) !== home) {
          throw new GatewayError(CODES.NOT_IMPLEMENTED, `RENAME would move ${table} to another group (tables are placed by name): create the new table and INSERT ... SELECT instead`);
        }
      }
    }
    await this.proposeAll(groups, { v: 1, kind: 'ddl', sql: text, database: this.userDb, ...(Object.keys(settings).length ? { settings } : {}) });
    await this.views.sync();
  }

  // ---- proposing -----------------------------------------------------------------------------------

  private async proposeOne(group: number, header: EntryHeader, payload?: Uint8Array): Promise<unknown> {
    const r = await this.o.raftd.propose(group, encodeEntry(header, payload));
    return r.result;
  }

  /** One entry per group, all in one request; the first failure is reported (others may have applied). */
  private async proposeAll(groups: number[], header: EntryHeader, payloadOf?: (g: number) => Uint8Array): Promise<unknown[]> {
    if (groups.length === 1) return [await this.proposeOne(groups[0]!, header, payloadOf?.(groups[0]!))];
    const res = await this.o.raftd.proposeBatch(groups.map((g) => ({ group: g, data: encodeEntry(header, payloadOf?.(g)) })));
    const out: unknown[] = [];
    for (const r of res) {
      if ('error' in r) throw new RaftdError(r.error.code, r.error.message, 0, r.error.leader, r.index);
      out.push(r.result);
    }
    return out;
  }
}
