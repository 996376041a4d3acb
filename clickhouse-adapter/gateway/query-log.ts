// system.query_log on the embedded engine (docs/clickhouse.md, "system.query_log"): chdb keeps no query
// log of its own, so the gateway records every query it served in a local Memory table of this node,
// rafthouse_local.query_log, with ClickHouse's column names and types where they exist. The table is
// a bounded ring (the Memory engine drops its oldest blocks past max_rows_to_keep / max_bytes_to_keep)
// and lives only as long as the process, like a server's log before it is flushed. Rows are written
// in batches (ClickHouse's flush_interval_milliseconds idea), and a read of system.query_log flushes
// first, so a client sees the queries it made before. Per node, never replicated: a query is logged
// by the node that served it. A user sees their own queries only (as with system.processes).

import type { ClickHouseEngine } from '../engine/types.js';
import { quoteString } from '../engine/sql.js';
import { LOCAL_DB } from './catalog.js';
import { insertDataOffset } from './lexer.js';

export const QUERY_LOG_TABLE = 'query_log';

export interface QueryLogOptions {
  /** Rows kept (the oldest go first). */
  maxRows: number;
  /** Bytes kept in memory. */
  maxBytes: number;
  /** Longest query text kept (ClickHouse: log_queries_cut_to_length). */
  maxQueryChars: number;
  /** How often pending rows are written. */
  flushMs: number;
}

export const QUERY_LOG_DEFAULTS: QueryLogOptions = { maxRows: 100_000, maxBytes: 64 * 1024 * 1024, maxQueryChars: 16_384, flushMs: 1_000 };

export type QueryLogType = 'QueryFinish' | 'ExceptionBeforeStart' | 'ExceptionWhileProcessing';

export interface QueryLogRecord {
  type: QueryLogType;
  /** Epoch milliseconds (fractional) when the query arrived and when it ended. */
  startMs: number;
  endMs: number;
  user: string;
  queryId: string;
  query: string;
  database: string;
  endpoint: 'consistent' | 'local';
  httpMethod: 'GET' | 'POST' | undefined;
  readRows: number;
  readBytes: number;
  writtenRows: number;
  writtenBytes: number;
  resultRows: number;
  resultBytes: number;
  exceptionCode: number;
  exception: string;
}

/** The table, with ClickHouse's query_log names and types (what the gateway does not know is left out). */
function createSql(o: QueryLogOptions): string[] {
  return [
    `CREATE DATABASE IF NOT EXISTS ${LOCAL_DB} ENGINE = Memory`,
    `CREATE TABLE IF NOT EXISTS ${LOCAL_DB}.${QUERY_LOG_TABLE} (
      type Enum8('QueryStart' = 1, 'QueryFinish' = 2, 'ExceptionBeforeStart' = 3, 'ExceptionWhileProcessing' = 4),
      event_date Date DEFAULT toDate(event_time),
      event_time DateTime DEFAULT toDateTime(event_time_microseconds),
      event_time_microseconds DateTime64(6),
      query_start_time DateTime DEFAULT toDateTime(query_start_time_microseconds),
      query_start_time_microseconds DateTime64(6),
      query_duration_ms UInt64,
      read_rows UInt64, read_bytes UInt64, written_rows UInt64, written_bytes UInt64, result_rows UInt64, result_bytes UInt64,
      current_database String,
      query String,
      normalized_query_hash UInt64 DEFAULT normalizedQueryHash(query),
      query_kind LowCardinality(String),
      exception_code Int32,
      exception String,
      is_initial_query UInt8 DEFAULT 1,
      user String,
      query_id String,
      initial_user String DEFAULT user,
      initial_query_id String DEFAULT query_id,
      interface UInt8 DEFAULT 2,
      http_method UInt8,
      rafthouse_endpoint LowCardinality(String)
    ) ENGINE = Memory SETTINGS max_rows_to_keep = ${o.maxRows}, max_bytes_to_keep = ${o.maxBytes}`,
  ];
}

/**
 * The text logged for a request: an INSERT's inline data left out (ClickHouse logs the statement, not
 * its data), and no more than the cut length.
 */
export function toQueryLogQuery(sql: string): string {
  const head = sql.slice(0, 64 * 1024);
  if (/^\s*INSERT\b/i.test(head)) {
    const at = insertDataOffset(head);
    if (at) return sql.slice(0, at.offset).trimEnd();
  }
  return sql.length > QUERY_LOG_DEFAULTS.maxQueryChars ? sql.slice(0, QUERY_LOG_DEFAULTS.maxQueryChars) : sql;
}

/**
 * Codes ClickHouse raises before a query's pipeline runs (parsing, analysis, access and setting checks):
 * logged as ExceptionBeforeStart there; anything raised while it runs is ExceptionWhileProcessing.
 */
const BEFORE_START_CODES: ReadonlySet<number> = new Set([
  10, 16, 35, 36, 42, 43, 44, 46, 47, 48, 53, 60, 62, 81, 113, 115, 164, 184, 215, 386, 452, 456, 457, 497,
]);

/** Whether `e` (anything a request threw) ended it before it ran, as ClickHouse's query_log tells. */
export function failedBeforeStart(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'number') return BEFORE_START_CODES.has(code);
  // raftd's and the router's own refusals (strings), and anything else, never ran in ClickHouse here.
  return typeof code !== 'string' || !/^CLICKHOUSE_\d+$/.test(code) || BEFORE_START_CODES.has(Number(code.slice(11)));
}

/** ClickHouse's query_kind: the statement's first word (Select, Insert, Create, ...). */
export function queryKind(sql: string): string {
  const m = /^\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*\(*\s*([A-Za-z]+)/.exec(sql);
  if (!m) return '';
  const w = m[1]!.toLowerCase();
  if (w === 'with') return 'Select';
  return w.charAt(0).toUpperCase() + w.slice(1);
}

function micros(ms: number): string {
  return (ms / 1000).toFixed(6);
}

export class QueryLog {
  private readonly o: QueryLogOptions;
  private pending: string[] = [];
  private pendingBytes = 0;
  private ready: Promise<void> | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly engine: ClickHouseEngine, opts: Partial<QueryLogOptions> = {}) {
    this.o = { ...QUERY_LOG_DEFAULTS, ...opts };
  }

  record(r: QueryLogRecord): void {
    const query = r.query.length > this.o.maxQueryChars ? r.query.slice(0, this.o.maxQueryChars) : r.query;
    this.pending.push(JSON.stringify({
      type: r.type,
      event_time_microseconds: micros(r.endMs),
      query_start_time_microseconds: micros(r.startMs),
      query_duration_ms: Math.max(0, Math.round(r.endMs - r.startMs)),
      read_rows: r.readRows, read_bytes: r.readBytes, written_rows: r.writtenRows, written_bytes: r.writtenBytes,
      result_rows: r.resultRows, result_bytes: r.resultBytes,
      current_database: r.database, query, query_kind: queryKind(query),
      exception_code: r.exceptionCode, exception: r.exception,
      user: r.user, query_id: r.queryId,
      http_method: r.httpMethod === 'GET' ? 1 : r.httpMethod === 'POST' ? 2 : 0,
      rafthouse_endpoint: r.endpoint,
    }));
    this.pendingBytes += this.pending[this.pending.length - 1]!.length;
    // Bounded before it is written too (a burst, or writes failing): the newest rows are kept.
    while (this.pending.length > this.o.maxRows || this.pendingBytes > this.o.maxBytes) this.pendingBytes -= this.pending.shift()!.length;
    this.timer ??= setTimeout(() => { this.timer = undefined; void this.flush().catch(() => undefined); }, this.o.flushMs).unref();
  }

  /** Writes the pending rows; resolves when every row recorded before the call is in the table. */
  flush(): Promise<void> {
    const rows = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const run = this.flushing.then(async () => {
      this.ready ??= (async () => { for (const s of createSql(this.o)) await this.engine.exec(s); })().catch((e: unknown) => { this.ready = undefined; throw e; });
      await this.ready;
      if (rows.length === 0) return;
      await this.engine.insertData({ database: LOCAL_DB, table: QUERY_LOG_TABLE, format: 'JSONEachRow' }, Buffer.from(rows.join('\n') + '\n'));
    });
    this.flushing = run.catch(() => undefined);
    return run;
  }

  /** The subquery standing for system.query_log in `user`'s read (catalog.ts). */
  source(user: string): string {
    return `(SELECT * FROM ${LOCAL_DB}.${QUERY_LOG_TABLE} WHERE user = ${quoteString(user)})`;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
  }
}
