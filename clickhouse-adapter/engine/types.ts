// The one interface both ClickHouse engines (embedded chdb, HTTP server) implement. Everything above
// the engine layer (state machine, gateway, router, benchmarks) talks to ClickHouse only through this.

/** What the connected ClickHouse can do, found by probing it (see capabilities.ts), not assumed. */
export interface Capabilities {
  /** `SELECT version()`, e.g. "26.7.2.1" or "18.16.1". */
  version: string;
  major: number;
  minor: number;
  /** `insert_deduplication_token` + `non_replicated_deduplication_window`: a replayed tokenised insert is dropped. */
  dedupTokens: boolean;
  /** `CREATE TABLE x CLONE AS y` (hard-linked copy of a table). */
  cloneAs: boolean;
  /** `ALTER TABLE x ATTACH PARTITION ALL FROM y`. */
  attachPartitionAll: boolean;
  /** `merge(REGEXP('db-regexp'), 'table-regexp')` / `Merge(REGEXP(...))` over many databases. */
  mergeRegexp: boolean;
  /** `BACKUP` / `RESTORE` statements (the `system.backups` table exists). */
  backupRestore: boolean;
  /** `EXPLAIN AST <statement>`. */
  explainAst: boolean;
  /** `system.functions.deterministic` tells which functions are non-deterministic. */
  deterministicFunctionsTable: boolean;
}

export type CapabilityName = Exclude<keyof Capabilities, 'version' | 'major' | 'minor'>;

export type SettingValue = string | number;
export type Settings = Record<string, SettingValue>;

export interface ExecOptions {
  /** Default database for unqualified names in this statement only. */
  database?: string;
  /** ClickHouse settings for this statement only (never leak into later calls). */
  settings?: Settings;
  /** Sent as the query id on the server engine; the embedded engine has no query log and ignores it. */
  queryId?: string;
}

export interface QueryOptions {
  database?: string;
  settings?: Settings;
  /** Output format; default JSONEachRow. A FORMAT clause inside the SQL itself wins over this. */
  format?: string;
  /**
   * Values for `{name:Type}` placeholders, bound by ClickHouse (never spliced into the SQL), in
   * ClickHouse's HTTP form: the text of a `param_<name>` URL parameter, which ClickHouse parses in the
   * escaped text format of the placeholder's type (`a\'b` is `a'b`, `\N` is NULL for a Nullable).
   * Both engines hand the text to ClickHouse unchanged.
   */
  params?: Record<string, string>;
  /**
   * Identifies the running query so it can be cancelled and listed (processesSource / kill). The
   * embedded engine uses it only when it is 1-64 letters, digits or '-' (the gateway's own UUIDs).
   */
  queryId?: string;
  /** Aborting it cancels the query in the engine (not just the wait): KILL QUERY on its queryId. */
  signal?: AbortSignal;
  /** Cancel the query in the engine after this long, whatever its own settings say; TIMEOUT_EXCEEDED. */
  timeoutMs?: number;
  /**
   * Told the size of the result, for the X-ClickHouse-Summary the gateway sends: by query() when it
   * returns, by queryStream() when the stream has run to its end.
   */
  onStats?: (stats: QueryStats) => void;
}

/**
 * A finished query's result size, as ClickHouse's X-ClickHouse-Summary result_rows counts it. (What it
 * read is not known: chdb's counters are those of the result.)
 */
export interface QueryStats {
  resultRows: number;
}

export interface InsertOptions {
  /** Settings for this INSERT; a setting also named in the statement's own SETTINGS clause keeps the statement's value
   *  (that is what ClickHouse itself does with URL settings vs a SETTINGS clause). */
  settings?: Settings;
  queryId?: string;
}

/**
 * An INSERT as structured data: the engines build its statement themselves (names quoted, the format
 * name checked, settings as a SETTINGS clause), so nothing is written as SQL text and parsed again.
 */
export interface DataInsert {
  database: string;
  table: string;
  /** The columns the data gives, in its order; all stored columns when absent. */
  columns?: readonly string[];
  /** An input format name (letters, digits, '_'); the data is in it, text or binary. */
  format: string;
  /** Settings of this INSERT only. */
  settings?: Settings;
  queryId?: string;
}

/** A structured insert into a session's temporary table. */
export type SessionInsert = Omit<DataInsert, 'database' | 'queryId'>;

export interface InsertResult {
  /**
   * Rows ClickHouse reports written (chdb's result counters; the server's X-ClickHouse-Summary).
   * A server too old to send a summary (18.16) gets the payload's line count for line-delimited
   * formats instead, and -1 when that cannot be known (CSV with quoted newlines, binary formats).
   * A deduplicated replay still reports its rows: ClickHouse does not tell the caller it dropped them.
   */
  writtenRows: number;
}

export type EngineKind = 'embedded' | 'server';

/**
 * A ClickHouse session kept for one client session (HTTP `session_id`): its temporary tables and the
 * settings a `SET` gives live in it and nowhere else. Its calls must not overlap (the caller serialises
 * them). `opts.database` and `opts.settings` are applied with USE / SET before a statement and stay
 * in the session (a session's context is the last one it was given, as in a ClickHouse session).
 */
export interface EngineSession {
  /** Any statement the session may run (reads, SET, temporary-table DDL and inserts); the result bytes. */
  query(sql: string, opts?: QueryOptions): Promise<Buffer>;
  /** The result as it is produced; breaking out of the loop cancels it. */
  queryStream(sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array>;
  /**
   * Rows into one of the session's temporary tables, as structured data (no database: a temporary
   * table has none); `data` in `format`, text or binary, passed on unchanged. Values is refused (its
   * rows are SQL: send them as a statement).
   */
  insertData(target: SessionInsert, data: Uint8Array): Promise<InsertResult>;
  close(): Promise<void>;
}

export interface ClickHouseEngine {
  readonly kind: EngineKind;
  readonly capabilities: Capabilities;
  /** True when this engine refuses writes (embedded `readonly: true`). */
  readonly readonly: boolean;
  /** DDL and other statements whose result is not needed. */
  exec(sql: string, opts?: ExecOptions): Promise<void>;
  /** The whole result, raw bytes in the chosen format. */
  query(sql: string, opts?: QueryOptions): Promise<Buffer>;
  /** The result as it is produced, for snapshots and big results. Breaking out of the loop cancels it. */
  queryStream(sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array>;
  /**
   * `sql` is `INSERT INTO db.t [(cols)] [SETTINGS k=v, ...] FORMAT X` with no data; `data` is the
   * payload in format X. One call is one INSERT statement: the engine never splits it into several
   * (a split would form different blocks and break deduplication-token replay).
   */
  insert(sql: string, data: Uint8Array | AsyncIterable<Uint8Array>, opts?: InsertOptions): Promise<InsertResult>;
  /**
   * One INSERT given as structured data (DataInsert), `data` passed to ClickHouse unchanged in any input
   * format the engine reads, binary ones included. One call is one INSERT statement, as for insert().
   */
  insertData(target: DataInsert, data: Uint8Array): Promise<InsertResult>;
  /**
   * SQL of a subquery over system.processes that holds only the running queries whose queryId is a key
   * of `ids`, with `query_id` showing the map's value (the id the client knows) and `query` the text
   * the client sent. An empty map gives an empty subquery with the same columns.
   */
  processesSource(ids: ReadonlyMap<string, string>): string;
  /** A session of this engine's kind and rights (a read-only engine gives a read-only session). */
  openSession(timeoutSeconds: number): EngineSession;
  close(): Promise<void>;
}
