// RaftHouse's state machine: each Raft group is one ClickHouse database (naming.ts) and every replica
// applies the group's entries (entry.ts) in log order, exactly once, across crashes and redeliveries.
//
// How exactly-once works (docs/clickhouse.md has the long form):
// - The applied index lives in ClickHouse, in the group's own database (`_rh_applied`), so it travels
//   with the data (snapshot restore swaps both at once).
// - INSERTs carry `insert_deduplication_token = '<g>:<index>'`, every MergeTree table of the group has
//   `non_replicated_deduplication_window`, and block formation is pinned to one block per entry (and
//   partition). A redelivered insert whose effect is already there is dropped by ClickHouse itself, so
//   the index may be recorded once per batch, after the inserts. With `appliedDir` (the embedded
//   engine), that per-batch record is a small file naming the database instance (applied-file.ts);
//   the table record is still written before snapshots, on Sync and on close.
// - DDL and other statements have no token. The index is recorded right BEFORE each one (so no insert
//   is ever replayed across a DDL) and right AFTER it. In between, an "intent" row says the statement
//   may have run; a redelivery that finds the intent re-runs it tolerating "already done" errors, and
//   skips it when a mutation it would have registered is already there.
// - ClickHouse records a block's deduplication id before the block's part is in the table: a crash
//   between the two makes the replay of that one insert look like a duplicate (phantom.ts). With
//   `appliedDir`, each tokenised insert is marked "in flight" in the applied file first; after a crash
//   the group's first load looks for that insert's phantoms, and its redelivery re-inserts the rows of
//   each phantom block under a fresh token before replaying the entry.
// - A client's RETRY of an insert is another entry: it is dropped when its block id (dedup.ts) is among
//   the table's newest blocks in the group's `_rh_dedup` registry, whose rows are written by flush()
//   before the index of the inserts they remember is recorded.

import { randomUUID } from 'node:crypto';
import type { ClickHouseEngine, Settings } from '../engine/types.js';
import { ClickHouseError, EngineError, clickHouseError } from '../engine/errors.js';
import { CODES, codeSet } from '../engine/codes.js';
import { jsonEachRow, queryRows, quoteIdent, quoteString } from '../engine/sql.js';
import { ChsmError, clickhouseCode } from './errors.js';
import { decodeEntry } from './entry.js';
import { verifyAbandonMac } from './abandon-auth.js';
import { FenceFiles } from './abandon-fence.js';
import type { Entry, EntryHeader } from './entry.js';
import { hasFormatClause, qualifyInsert } from './sql.js';
import {
  APPLIED_TABLE, PENDING_DDL_TABLE, SETTINGS_TABLE, SNAPSHOT_META_TABLE, dataDb, isInternalTable, oldDb, parseDbName, restoreDb, snapshotDb,
} from './naming.js';
import { ByteReader, SNAPSHOT_MAGIC, frame, reframe } from './frames.js';
import { AppliedFiles } from './applied-file.js';
import { PROBE_TABLE, REPAIR_TABLE, findPhantoms } from './phantom.js';
import type { Phantom } from './phantom.js';
import { groupChecksum } from './checksum.js';
import { DEDUP_BLOCK, DEDUP_CLEAR, DEDUP_TABLE, DEFAULT_INSERT_DEDUP_WINDOW, blockId, createDedupTableSql } from './dedup.js';
import { APPLY_BOUNDS, APPLY_SETTINGS, checkSettings, settingRule, settingsInSql } from '../rules/settings.js';
import { firstSignificant, identifierName, tokenize } from '../sql/scanner.js';
import { SqlParser } from '../gateway/parse.js';
import { RuleError, checkInputFormat, checkRead, checkWrite, isNondeterministic, loadNondeterministic } from '../rules/index.js';
import type { WriteKind } from '../rules/index.js';
import type { TableChecksum } from './checksum.js';
import type { Entry as SdkEntry, EntryResult, StateMachine } from '../../adapters/sdk/types.js';

export type ApplyEntry = SdkEntry;
export type { EntryResult };

/** Named points of the apply and snapshot paths, for fault injection in tests. */
export type CrashPoint =
  | 'before-insert' | 'after-insert'
  | 'before-record' | 'after-record'
  | 'after-intent' | 'after-ddl'
  | 'after-entry'
  | 'before-swap' | 'mid-swap'
  | 'after-repair';

export interface ChsmOptions {
  engine: ClickHouseEngine;
  /**
   * non_replicated_deduplication_window set on every MergeTree table of a group. It counts blocks: it must
   * cover (blocks per entry) x (entries between two index records), see maxEntriesPerRecord.
   */
  dedupWindow?: number;
  /**
   * Client-retry deduplication (dedup.ts): how many of a table's newest insert blocks its `_rh_dedup`
   * registry remembers (ClickHouse's replicated_deduplication_window). Default 1000. It DECIDES whether an
   * insert lands, so it must be the same on every replica: rafthouse exposes no flag for it (tests only).
   */
  insertDedupWindow?: number;
  /** The index is recorded at least every this many applied entries. */
  maxEntriesPerRecord?: number;
  /**
   * 0 (the default): the index is recorded at the end of every batch, so the LastLogIndex that
   * UpdateEntries reports is durable — raftd (without RAFT_SYNC) relies on that and treats a lower
   * LastLogIndex after a restart as APP_REGRESSED. N > 0 defers the record by N ms after a batch of
   * tokenised entries (back-to-back small batches share one record; faster for 1-entry batches) but
   * after a crash LastLogIndex goes back to the last record: only for callers that redeliver from it.
   * Before a DDL, a snapshot, Sync and close() the record is always written.
   */
  recordDelayMs?: number;
  /**
   * A directory for per-group applied-index files (applied-file.ts): the per-batch record becomes one
   * pwrite instead of an INSERT. Only for an engine in this process (embedded), whose parts share the
   * file's fate on a crash. Unset: every record is an INSERT into `_rh_applied`.
   */
  appliedDir?: string;
  /** Notices for the operator: blocks a crash lost inside ClickHouse, found and re-inserted. */
  log?: (message: string) => void;
  /**
   * The engine whose parser validates every entry (formatQuery + EXPLAIN AST; rules/). Default: `engine`.
   * The server engine's node passes an embedded parser session, so every replica parses with the same
   * ClickHouse whatever server it writes to.
   */
  parserEngine?: ClickHouseEngine;
  /** Called at each CrashPoint (tests kill the process there). Never set in production. */
  hook?: (point: CrashPoint, index: number) => void | Promise<void>;
  /**
   * The RaftHouse app secret: abandon entries and abandon checks must carry its MAC (abandon-auth.ts).
   * Unset (--insecure): every abandon entry is refused and no check is answered, so an entry that keeps
   * failing stays stuck, visibly, instead of being given up on an unauthenticated word.
   */
  abandonSecret?: string;
  /** How long a replica that reported "failing at i" to an abandon check holds i without retrying it (default 30 s). */
  abandonFenceMs?: number;
}

export const ABANDON_FENCE_MS = 30_000;

/** What a replica answers to an abandon check of entry `index` (ClickHouseStateMachine.abandonCheck). */
export interface AbandonCheckReply {
  /**
   * failing: this replica's own attempts at `index` failed, none is running, and it now holds the entry
   * (fence) until the log decides or `fencedForMs` pass; applied: it applied the entry; behind: it has
   * not failed at `index` (not reached yet, not loaded, or failing elsewhere); busy: an attempt is running.
   */
  state: 'failing' | 'applied' | 'behind' | 'busy';
  applied: number;
  fencedForMs?: number;
}

interface Intent {
  index: number;
  /** Highest mutation number per table when the statement was about to run. */
  mutations: Record<string, number>;
}

interface GroupState {
  /** Highest index applied (its effects are in ClickHouse); what LastLogIndex answers. */
  applied: number;
  /** Highest index recorded (in _rh_applied or the applied file); after a crash, redelivery starts after it. */
  recorded: number;
  /** Highest index recorded in _rh_applied itself. */
  tableRecorded: number;
  /** Random id of this group database's instance (a `state = 2` row of _rh_applied), named by the applied file. */
  instance: string;
  /** A deferred record is scheduled. */
  timer: NodeJS.Timeout | undefined;
  intent: Intent | undefined;
  /** The tokenised insert marked in flight in the applied file, and how many repairs of it were started. */
  inflight: { index: number; attempt: number } | undefined;
  /** Blocks of that insert lost in a crash (phantom.ts), to re-insert when it is redelivered. */
  phantoms: Phantom[];
  /** Defaults from applied "settings" entries, in log order. */
  settings: Settings;
  /** The entry that keeps failing with an error that is not its fault (undefined: none). */
  stuck: StuckEntry | undefined;
  /** The entry being attempted right now (an abandon check must not fence an attempt that may still succeed). */
  attempting: number | undefined;
  /** Reported "failing" to an abandon check: the entry is not retried until the log decides or `until`. */
  fence: { index: number; until: number } | undefined;
  /** Blocks remembered in _rh_dedup since its last pruning (by this process: pruning never changes a decision). */
  dedupSincePrune: number;
  /**
   * Per table, the newest blocks remembered (dedup.ts), loaded from _rh_dedup on first use and kept in
   * step with it: the same answers seenBlock's rows give, without a query per insert.
   */
  dedupLogs: Map<string, string[]>;
  /** Registry rows of applied inserts not written yet: written by flush(), before any index covering them is recorded. */
  dedupPending: Array<{ tbl: string; idx: number; kind: number; block_id: string }>;
}

/** An entry whose apply keeps failing for a reason outside the entry (memory, disk, ...). */
export interface StuckEntry {
  index: number;
  /** Date.now() of its first failed attempt. */
  since: number;
  attempts: number;
  error: string;
}

/** Settings that pin block formation: one block per entry (per partition), the same on every replay. */
const HUGE = 1_000_000_000_000;
const PINNED_INSERT_SETTINGS: Settings = {
  max_insert_block_size: HUGE,
  min_insert_block_size_rows: HUGE,
  min_insert_block_size_bytes: HUGE * 1000,
  max_insert_threads: 1,
  max_block_size: 65536,
  deduplicate_blocks_in_dependent_materialized_views: 1,
  // Inline VALUES data is not in the text the rules validated (formatQuery drops it): literals only,
  // so a row cannot call file() or run a subquery on every replica.
  input_format_values_interpret_expressions: 0,
  input_format_values_deduce_templates_of_expressions: 0,
};

/** Settings an entry may not choose: the adapter owns them (exactly-once and determinism). */
const OWNED_SETTINGS = new Set([
  ...Object.keys(PINNED_INSERT_SETTINGS), 'insert_deduplication_token', 'insert_deduplicate', 'deduplicate_insert',
  'async_insert', 'wait_for_async_insert', 'mutations_sync', 'alter_sync', 'readonly',
]);

/**
 * ClickHouse codes that say nothing about the statement (resources, the connection, a shutdown): the
 * entry is NOT failed (replicas would diverge); the call fails and raftd retries it. No limit the entry
 * could set is among the causes: apply runs with APPLY_SETTINGS (rules/settings.ts), so e.g. 159
 * TIMEOUT_EXCEEDED can only be a lock wait, 241 the server's own memory. An entry that keeps failing so
 * on the group's leader is given up through the log (an "abandon" entry: docs/design-notes.md).
 */
const TRANSIENT_CODES = codeSet(
  'TIMEOUT_EXCEEDED', 'READONLY', 'TOO_MANY_SIMULTANEOUS_QUERIES', 'SOCKET_TIMEOUT', 'NETWORK_ERROR', 'ABORTED', 'MEMORY_LIMIT_EXCEEDED',
  'TABLE_IS_READ_ONLY', 'NOT_ENOUGH_SPACE', 'TOO_MANY_PARTS', 'QUERY_WAS_CANCELLED', 'SYSTEM_ERROR', 'KEEPER_EXCEPTION', 'POCO_EXCEPTION', 'STD_EXCEPTION',
);

/** A transient code whose message names a deterministic cause after all. */
function deterministicAfterAll(e: ClickHouseError): boolean {
  // TOO_MANY_PARTS is both "too many parts" (merges behind: transient) and this (the entry's own data).
  return e.code === CODES.TOO_MANY_PARTS && /partitions for (a )?single INSERT block/i.test(e.message);
}

/** The bookkeeping tables' prefix: no entry may name them (the group would stop recording its index). */
const INTERNAL_PREFIX = '_rh_';

/** On a possible replay of a statement, these errors mean "it already happened". */
const ALREADY_DONE_CODES = codeSet(
  'TABLE_ALREADY_EXISTS', // CREATE ran
  'UNKNOWN_TABLE', // DROP / RENAME ran
  'UNKNOWN_DATABASE',
  'DATABASE_ALREADY_EXISTS',
  'DUPLICATE_COLUMN', // ADD COLUMN ran
  'NOT_FOUND_COLUMN_IN_BLOCK', // DROP COLUMN ran
  'NO_SUCH_COLUMN_IN_TABLE',
  'UNKNOWN_IDENTIFIER', // RENAME COLUMN ran
  'CANNOT_GET_CREATE_TABLE_QUERY',
  'CANNOT_GET_CREATE_DICTIONARY_QUERY',
  'ACCESS_ENTITY_NOT_FOUND', // DROP USER / ROLE ran
  'ACCESS_ENTITY_ALREADY_EXISTS', // CREATE USER / ROLE ran
  'FUNCTION_ALREADY_EXISTS',
);

/** What validate() learnt of an entry's statement. */
interface Validated {
  kind: WriteKind;
  canonical: string;
  columns: string[] | undefined;
  /** The statement's own table (INSERT / DDL target), unqualified. */
  target: string | undefined;
  /** Plain identifiers directly under the statement (RENAME: the tables, database qualifiers included). */
  names: string[];
}

interface SnapshotTableMeta {
  ord: number;
  name: string;
  /** 'data': rows are carried; 'ddl': only the definition (views, materialized views with TO, dictionaries). */
  kind: 'data' | 'ddl';
  /** CREATE statement without the database qualifier of the object name. */
  create: string;
}

interface SnapshotHeader {
  v: 1;
  group: number;
  index: number;
  tables: Array<SnapshotTableMeta & { columns: string[] }>;
}

/** Apply held in some groups (holdApply): their applied indexes, fixed until release(). */
export interface ApplyHold {
  applied: ReadonlyMap<number, number>;
  release(): void;
}

export class ClickHouseStateMachine implements StateMachine {
  readonly engine: ClickHouseEngine;
  private readonly dedupWindow: number;
  private readonly insertDedupWindow: number;
  private readonly maxEntriesPerRecord: number;
  private readonly recordDelayMs: number;
  private readonly hook: ((point: CrashPoint, index: number) => void | Promise<void>) | undefined;
  private readonly log: (message: string) => void;
  private readonly appliedFiles: AppliedFiles | undefined;
  private readonly abandonSecret: string | undefined;
  private readonly abandonFenceMs: number;
  /** Embedded engine: fences survive a restart of this process (abandon-fence.ts). */
  private readonly fenceFiles: FenceFiles | undefined;
  private readonly groups = new Map<number, GroupState>();
  /** databaseNames(): the query running, and the one queued behind it for callers that came later. */
  private namesRunning: Promise<string[]> | undefined;
  private namesNext: Promise<string[]> | undefined;
  private readonly locks = new Map<number, Promise<unknown>>();
  private dedupOffSetting: Settings | undefined;
  private readonly parser: SqlParser;
  private readonly parserEngine: ClickHouseEngine;
  private nondeterministic: Promise<Set<string>> | undefined;
  /** `db.table` -> its columns with non-deterministic defaults, read at schema generation `gen`. */
  private readonly defaultsCache = new Map<string, { gen: number; cols: Array<{ name: string; kind: string }> }>();
  /** Restores between their two database renames right now (the group's database is absent). */
  private swapsInProgress = 0;
  /** Goes up after anything that may change a group's tables: a statement applied, a group (re)loaded or deleted. */
  private schemaGen = 0;

  constructor(opts: ChsmOptions) {
    this.engine = opts.engine;
    this.dedupWindow = opts.dedupWindow ?? 10_000;
    this.insertDedupWindow = opts.insertDedupWindow ?? DEFAULT_INSERT_DEDUP_WINDOW;
    this.maxEntriesPerRecord = opts.maxEntriesPerRecord ?? 100;
    this.recordDelayMs = opts.recordDelayMs ?? 0;
    this.hook = opts.hook;
    this.log = opts.log ?? (() => undefined);
    this.appliedFiles = opts.appliedDir ? new AppliedFiles(opts.appliedDir) : undefined;
    this.abandonSecret = opts.abandonSecret || undefined;
    this.abandonFenceMs = opts.abandonFenceMs ?? ABANDON_FENCE_MS;
    this.fenceFiles = opts.appliedDir ? new FenceFiles(opts.appliedDir) : undefined;
    this.parserEngine = opts.parserEngine ?? opts.engine;
    this.parser = new SqlParser(this.parserEngine);
  }

  // ---- per-group serialisation -------------------------------------------------------------------

  /** Runs fn after every earlier call for the same group finished (apply, prepare, recover, delete). */
  private withLock<T>(group: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(group) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(group, tail);
    void tail.then(() => { if (this.locks.get(group) === tail) this.locks.delete(group); });
    return run;
  }

  private async at(point: CrashPoint, index: number): Promise<void> {
    if (this.hook) await this.hook(point, index);
  }

  // ---- group state ---------------------------------------------------------------------------------

  /**
   * The rh_ databases, as of some moment after the call. Concurrent callers share one query (one that
   * started after all of them called): at start every group loads at once, and 256 groups asked for
   * the list twice each, queued behind each other's DDL (issue 24). Callers only read the array.
   */
  private databaseNames(): Promise<string[]> {
    if (!this.namesRunning) return this.startDatabaseNames();
    this.namesNext ??= this.namesRunning.then(() => undefined, () => undefined).then(() => {
      this.namesNext = undefined;
      return this.startDatabaseNames();
    });
    return this.namesNext;
  }

  private startDatabaseNames(): Promise<string[]> {
    const p = queryRows<{ name: string }>(this.engine, "SELECT name FROM system.databases WHERE startsWith(name, 'rh_') ORDER BY name")
      .then((rows) => rows.map((r) => r.name));
    this.namesRunning = p;
    void p.then(() => undefined, () => undefined).then(() => { if (this.namesRunning === p) this.namesRunning = undefined; });
    return p;
  }

  private async tableExists(db: string, table: string): Promise<boolean> {
    const rows = await queryRows<{ c: number }>(this.engine,
      `SELECT count() AS c FROM system.tables WHERE database = ${quoteString(db)} AND name = ${quoteString(table)}`);
    return (rows[0]?.c ?? 0) > 0;
  }

  /**
   * Finishes or undoes a restore a crash interrupted: if the data database is missing, a complete
   * restore database (its index recorded) takes its place, else the old one goes back. Then the
   * leftovers are dropped.
   */
  private async repairGroup(group: number): Promise<void> {
    const names = await this.databaseNames();
    const mine = names.map((n) => ({ n, p: parseDbName(n) })).filter((x) => x.p && x.p.group === group);
    const data = dataDb(group);
    const hasData = mine.some((x) => x.p!.kind === 'data');
    const restores = mine.filter((x) => x.p!.kind === 'restore').sort((a, b) => (b.p as { index: number }).index - (a.p as { index: number }).index);
    const olds = mine.filter((x) => x.p!.kind === 'old').sort((a, b) => (b.p as { index: number }).index - (a.p as { index: number }).index);
    if (!hasData) {
      let promoted: string | undefined;
      for (const r of restores) {
        if (await this.restoreComplete(r.n)) { promoted = r.n; break; }
      }
      if (!promoted && olds.length) promoted = olds[0]!.n;
      if (promoted) await this.engine.exec(`RENAME DATABASE ${promoted} TO ${data}`);
    }
    for (const x of [...restores, ...olds]) {
      await this.engine.exec(`DROP DATABASE IF EXISTS ${x.n} SYNC`);
    }
  }

  /** Creates the views etc. a restore left pending (see recoverFromSnapshot), then drops the list. */
  private async finishPendingDdl(db: string): Promise<void> {
    if (!(await this.tableExists(db, PENDING_DDL_TABLE))) return;
    const rows = await queryRows<{ create: string }>(this.engine, `SELECT create FROM ${db}.${PENDING_DDL_TABLE} ORDER BY ord`);
    for (const r of rows) {
      try {
        await this.engine.exec(r.create, { database: db });
      } catch (e) {
        if (!(e instanceof ClickHouseError && e.code === CODES.TABLE_ALREADY_EXISTS)) throw e; // created before a crash
      }
    }
    await this.engine.exec(`DROP TABLE ${db}.${PENDING_DDL_TABLE} SYNC`);
  }

  private async restoreComplete(db: string): Promise<boolean> {
    if (!(await this.tableExists(db, APPLIED_TABLE))) return false;
    const rows = await queryRows<{ c: number }>(this.engine, `SELECT count() AS c FROM ${db}.${APPLIED_TABLE} WHERE state = 1`);
    return (rows[0]?.c ?? 0) > 0;
  }

  private async createBookkeeping(db: string): Promise<void> {
    await this.engine.exec(`CREATE DATABASE IF NOT EXISTS ${db}`);
    // ReplacingMergeTree keyed by state keeps the newest row per state after merges: the table stays
    // tiny however many batches were recorded, and max(index) is right before and after a merge.
    await this.engine.exec(`CREATE TABLE IF NOT EXISTS ${db}.${APPLIED_TABLE} (idx UInt64, state UInt8, info String)
      ENGINE = ReplacingMergeTree(idx) ORDER BY state`);
    await this.engine.exec(`CREATE TABLE IF NOT EXISTS ${db}.${SETTINGS_TABLE} (idx UInt64, settings String)
      ENGINE = MergeTree ORDER BY idx SETTINGS non_replicated_deduplication_window = ${this.dedupWindow}`);
    await this.engine.exec(createDedupTableSql(db));
  }

  /** Loads (and caches) a group's state; with `create`, makes its database on first use. */
  private async group(group: number, create: boolean): Promise<GroupState | undefined> {
    const cached = this.groups.get(group);
    if (cached) return cached;
    await this.repairGroup(group);
    const db = dataDb(group);
    const exists = (await this.databaseNames()).includes(db);
    if (!exists && !create) return undefined;
    if (exists) await this.finishPendingDdl(db);
    await this.createBookkeeping(db);
    const rows = await queryRows<{ state: number; top: number; info: string }>(this.engine,
      `SELECT state, max(idx) AS top, argMax(info, idx) AS info FROM ${db}.${APPLIED_TABLE} GROUP BY state`);
    const applied = rows.find((r) => r.state === 1);
    const intentRow = rows.find((r) => r.state === 0);
    const tableIndex = applied ? Number(applied.top) : 0;
    let instance = rows.find((r) => r.state === 2)?.info ?? '';
    if (!instance) {
      // A database without an instance id (new, restored from a snapshot, or from an older version).
      instance = randomUUID();
      await this.engine.insert(`INSERT INTO ${db}.${APPLIED_TABLE} FORMAT JSONEachRow`,
        Buffer.from(`{"idx":0,"state":2,"info":"${instance}"}\n`));
    }
    // The applied file counts only for this very database instance (see applied-file.ts).
    const file = this.appliedFiles?.read(group);
    const lastIndex = file && file.instance === instance && file.index > tableIndex ? file.index : tableIndex;
    let intent: Intent | undefined;
    if (intentRow && Number(intentRow.top) > lastIndex) {
      intent = { index: Number(intentRow.top), mutations: JSON.parse(intentRow.info) as Record<string, number> };
    }
    // A crash may have cut the insert marked in flight short inside ClickHouse (phantom.ts).
    const inflight = file && file.instance === instance && file.inflight && file.inflight.index > lastIndex ? file.inflight : undefined;
    let phantoms: Phantom[] = [];
    if (inflight) {
      const found = await findPhantoms(this.engine, db, this.repairTokens(group, inflight));
      phantoms = found.phantoms;
      for (const p of phantoms) {
        this.log(`group ${group}: a crash lost the block of entry ${inflight.index} in table ${p.table} (partition ${p.partitionId}) inside ClickHouse; it is re-inserted when the entry is redelivered`);
      }
      for (const u of found.unexplained) {
        this.log(`group ${group}: table ${u.table}'s last deduplication record names part ${u.part}, which is not there and is not entry ${inflight.index}'s: ` +
          'a part a DELETE or TTL removed, or a materialized view block lost in a crash (compare the replicas\' {"op":"checksum"})');
      }
    }
    const settings: Settings = {};
    // Only settings up to the recorded index: later ones come again with their redelivered entries, and
    // the entries before them must be re-applied without them, as they were the first time.
    const srows = await queryRows<{ settings: string }>(this.engine,
      `SELECT settings FROM ${db}.${SETTINGS_TABLE} WHERE idx <= ${lastIndex} ORDER BY idx`);
    for (const r of srows) Object.assign(settings, allowedDefaults(JSON.parse(r.settings) as Settings));
    const st: GroupState = {
      applied: lastIndex, recorded: lastIndex, tableRecorded: tableIndex, instance, timer: undefined, intent, inflight, phantoms, settings, stuck: undefined,
      attempting: undefined, fence: this.fenceFiles?.load(group, lastIndex), dedupSincePrune: 0,
      dedupLogs: new Map(), dedupPending: [],
    };
    this.groups.set(group, st);
    this.schemaGen++; // a repair or a restore may have swapped the database in
    return st;
  }

  /**
   * The group's applied index as known right now, without waiting for its lock: every effect up to it
   * is already visible in ClickHouse (an entry in progress may be partly visible too). undefined when
   * the group is not loaded. The gateway uses it to check that a read saw a read index.
   */
  appliedIndexNow(group: number): number | undefined {
    return this.groups.get(group)?.applied;
  }

  /** Groups whose next entry keeps failing for a reason outside the entry (for /status and abandon). */
  stuckEntries(): Map<number, StuckEntry> {
    const out = new Map<number, StuckEntry>();
    for (const [g, st] of this.groups) if (st.stuck && st.stuck.index > st.applied) out.set(g, { ...st.stuck });
    return out;
  }

  /**
   * Holds apply in `groups` (the consistent cut of a multi-group read, gateway/cut.ts): resolves once
   * this process holds every group's lock — no batch, snapshot restore or deletion is running in them
   * and none starts until release() — with each group's applied index at that moment (0: nothing
   * applied). raftd's UpdateEntries calls meanwhile wait on the lock (its call timeout, 10 s by default,
   * far above the cut's hold cap), so the caller must release promptly. Locks are taken in increasing
   * group order, so concurrent holds cannot deadlock (every other lock user takes one group at a time).
   */
  async holdApply(groups: readonly number[]): Promise<ApplyHold> {
    const order = [...new Set(groups)].sort((a, b) => a - b);
    const releases: Array<() => void> = [];
    const applied = new Map<number, number>();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      for (const r of releases) r();
    };
    try {
      for (const g of order) {
        await new Promise<void>((granted, failed) => {
          void this.withLock(g, async () => {
            try {
              applied.set(g, (await this.group(g, false))?.applied ?? 0);
            } catch (e) {
              failed(e);
              return;
            }
            await new Promise<void>((done) => { releases.push(done); granted(); });
          });
        });
      }
    } catch (e) {
      release();
      throw e;
    }
    return { applied, release };
  }

  /**
   * A number that changes after anything that may have changed the tables of some group (DDL and other
   * statements, restores and their database swaps, group loads and deletions); inserts leave it alone.
   * It is odd while a restore swaps a group's database in (the database is briefly absent, and a read of
   * the Merge views would silently leave the group out). A read or metadata lookup that began and ended
   * on the same even value saw a stable schema: the gateway caches table definitions by it and reads
   * again otherwise.
   */
  schemaGeneration(): number {
    return this.schemaGen * 2 + (this.swapsInProgress > 0 ? 1 : 0);
  }

  async lastLogIndex(group: number): Promise<number> {
    return this.withLock(group, async () => (await this.group(group, false))?.applied ?? 0);
  }

  /**
   * Records the applied index if it is ahead of the record (caller holds the group lock): in the
   * applied file when there is one, unless `inTable` asks for the _rh_applied row (snapshots, Sync,
   * close), which also keeps the table record from falling far behind.
   */
  private async flush(group: number, st: GroupState, inTable = false): Promise<void> {
    if (st.timer) { clearTimeout(st.timer); st.timer = undefined; }
    if (st.dedupPending.length > 0) {
      try {
        await this.registryInsert(dataDb(group), st.dedupPending);
      } catch (e) {
        // As below: forget the cached state (cached logs included); a reload reads what is there.
        if (this.groups.get(group) === st) this.groups.delete(group);
        throw e;
      }
      st.dedupPending = [];
    }
    const toFile = this.appliedFiles !== undefined && !inTable;
    if (st.applied > (toFile ? st.recorded : st.tableRecorded)) {
      const index = st.applied;
      try {
        if (toFile) {
          await this.at('before-record', index);
          // An in-flight mark above the record stays (a repair still pending: see markInflight).
          const inflight = st.inflight && st.inflight.index > index ? st.inflight : undefined;
          this.appliedFiles!.write(group, { instance: st.instance, index, ...(inflight ? { inflight } : {}) });
          await this.at('after-record', index);
        } else {
          await this.record(group, index);
          st.tableRecorded = index;
        }
      } catch (e) {
        // The cached state now runs ahead of what ClickHouse holds, and LastLogIndex must never
        // report an index that is not recorded. Forget it: the next call reloads the group exactly as
        // a restart would (recorded index, intent), and redelivery takes it from there.
        if (this.groups.get(group) === st) this.groups.delete(group);
        throw e;
      }
      st.recorded = index;
      if (st.inflight && st.inflight.index <= index) { st.inflight = undefined; st.phantoms = []; }
    }
  }

  private scheduleRecord(group: number, st: GroupState): void {
    if (st.timer || st.applied <= st.recorded) return;
    st.timer = setTimeout(() => {
      st.timer = undefined;
      // A failed deferred record is harmless: the entries stay deduplicated and the next flush retries.
      this.withLock(group, () => this.flush(group, st)).catch(() => undefined);
    }, this.recordDelayMs);
    st.timer.unref();
  }

  /** Records every group's applied index (graceful shutdown). */
  async close(): Promise<void> {
    for (const [group, st] of this.groups) await this.withLock(group, () => this.flush(group, st, true));
    this.appliedFiles?.close();
  }

  // ---- blocks lost inside ClickHouse (phantom.ts) -------------------------------------------------

  /** The tokens an in-flight insert may have used: its own, then one per repair started. */
  private repairTokens(group: number, inflight: { index: number; attempt: number }): string[] {
    const tokens = [`${group}:${inflight.index}`];
    for (let a = 1; a <= inflight.attempt; a++) tokens.push(`${group}:${inflight.index}:r${a}`);
    return tokens;
  }

  private writeInflight(group: number, st: GroupState, index: number, attempt: number): void {
    st.inflight = { index, attempt };
    this.appliedFiles!.write(group, { instance: st.instance, index: st.recorded, inflight: st.inflight });
  }

  /**
   * Marks a tokenised insert in flight (one pwrite): after a crash, its phantoms are looked for. The
   * redelivered entries below an in-flight mark landed before the crash: their replays are dropped as
   * duplicates and record nothing, so the mark (and its repair count) stays until the marked entry is done.
   */
  private markInflight(group: number, st: GroupState, index: number): void {
    if (!this.appliedFiles || (st.inflight && index < st.inflight.index)) return;
    this.writeInflight(group, st, index, st.inflight?.index === index ? st.inflight.attempt : 0);
  }

  /**
   * What every tokenised insert (into `table`) does first: re-insert what a crash lost of it, then mark
   * it in flight.
   */
  private async beforeTokenisedInsert(group: number, st: GroupState, index: number, table: string, fill: (scratch: string) => Promise<void>): Promise<void> {
    if (st.phantoms.length > 0 && st.inflight?.index === index) await this.repairLostBlocks(group, st, index, table, fill);
    this.markInflight(group, st, index);
  }

  /**
   * Re-inserts, under a fresh token, the rows of `index`'s blocks that a crash lost (st.phantoms), before
   * the entry is replayed with its own token; that replay still drops those blocks, as duplicates of the
   * phantoms, along with the blocks that did land. `fill` loads the entry's rows into a scratch table
   * with the target's structure; the rows of each phantom's partition go from there into the table.
   */
  private async repairLostBlocks(group: number, st: GroupState, index: number, table: string, fill: (scratch: string) => Promise<void>): Promise<void> {
    const db = dataDb(group);
    let attempt = st.inflight?.attempt ?? 0;
    for (const p of [...st.phantoms]) {
      if (p.table !== table || p.hasViews) {
        // A materialized view's block (or a block under one) cannot be rebuilt from the entry alone.
        throw new ChsmError('RH_REPAIR_FAILED', `group ${group}: a crash lost a block of entry ${index} in table ${p.table}` +
          `${p.hasViews ? ', which materialized views read' : ' (not the table the entry inserts into)'}; RaftHouse cannot rebuild it: ` +
          'restore this replica from another one (docs/clickhouse.md, "Exactly once")');
      }
      const scratch = `${db}.${REPAIR_TABLE}`;
      const target = `${db}.${quoteIdent(p.table)}`;
      try {
        // A fresh token per attempt: an attempt that a crash cut short may have left a phantom of its own.
        attempt++;
        this.writeInflight(group, st, index, attempt);
        await this.engine.exec(`DROP TABLE IF EXISTS ${scratch} SYNC`);
        await this.engine.exec(`CREATE TABLE ${scratch} AS ${target}`);
        await fill(scratch);
        await this.engine.exec(`INSERT INTO ${target} SELECT * FROM ${scratch} WHERE _partition_id = ${quoteString(p.partitionId)}`, {
          database: db,
          settings: { ...PINNED_INSERT_SETTINGS, max_threads: 1, insert_deduplicate: 1, insert_deduplication_token: `${group}:${index}:r${attempt}` },
        });
        // Landed: never again, even if what follows fails (a crash from here on finds it covered).
        st.phantoms = st.phantoms.filter((x) => x !== p);
        this.log(`group ${group}: re-inserted the rows of entry ${index} in table ${p.table} (partition ${p.partitionId}) that a crash lost`);
        await this.at('after-repair', index);
        await this.engine.exec(`DROP TABLE ${scratch} SYNC`);
      } catch (e) {
        if (e instanceof ChsmError) throw e;
        throw Object.assign(new ChsmError('RH_REPAIR_FAILED', `group ${group}: re-inserting the rows of entry ${index} that a crash lost in ${p.table} failed: ${(e as Error).message}`), { cause: e });
      }
    }
  }

  // ---- apply -----------------------------------------------------------------------------------------

  private async record(group: number, index: number): Promise<void> {
    await this.at('before-record', index);
    // engine.insert, not an INSERT ... VALUES statement: the raw-insert path is the cheaper one (~1-2 ms).
    await this.engine.insert(`INSERT INTO ${dataDb(group)}.${APPLIED_TABLE} FORMAT JSONEachRow`,
      Buffer.from(`{"idx":${index},"state":1,"info":""}\n`));
    await this.at('after-record', index);
  }

  async applyBatch(group: number, entries: ApplyEntry[]): Promise<EntryResult[]> {
    return this.withLock(group, async () => {
      const st = (await this.group(group, true))!;
      const results: EntryResult[] = [];
      const flush = (): Promise<void> => this.flush(group, st);
      const abandoned = this.abandonsIn(group, entries);
      try {
        for (const e of entries) {
          if (e.index <= st.applied) {
            // The SDK drops redeliveries before calling; this guards direct callers.
            results.push({ ok: true, result: { skipped: true } });
            continue;
          }
          if (e.index !== st.applied + 1) {
            throw new ChsmError('RH_BAD_ENTRY', `entry ${e.index} does not follow ${st.applied}: indexes must be contiguous`);
          }
          results.push(await this.applyTracked(group, st, e, flush, abandoned));
          st.applied = e.index;
          await this.at('after-entry', e.index);
          if (st.applied - st.recorded >= this.maxEntriesPerRecord) await flush();
        }
      } catch (err) {
        // Whatever was applied gets recorded before the call fails (raftd retries after it).
        await flush().catch(() => undefined);
        throw err;
      }
      if (this.recordDelayMs <= 0) await flush();
      else this.scheduleRecord(group, st);
      // Storage only, never a decision: a failure here is retried after the next window of blocks.
      await this.pruneDedup(group, st).catch((e: unknown) => this.log(`group ${group}: pruning ${DEDUP_TABLE} failed: ${(e as Error).message}`));
      return results;
    });
  }

  /**
   * applyOne, and what a failure that is not the entry's fault leads to: the call fails (raftd retries)
   * and the group is marked stuck on the entry. An authenticated abandon of the entry later in the batch
   * decides it without another attempt: it exists only if every member reported failing at it and holds
   * it (fence), so no replica applied it, and none may now (RH_ABANDONED everywhere). A fenced entry is
   * not retried until the log decides or the fence expires (docs/design-notes.md, "No poison entries").
   */
  private async applyTracked(group: number, st: GroupState, e: ApplyEntry, flush: () => Promise<void>, abandoned: Set<number>): Promise<EntryResult> {
    if (abandoned.has(e.index)) {
      const last = st.stuck?.index === e.index ? st.stuck.error : 'not attempted here';
      st.stuck = undefined;
      if (st.fence) { st.fence = undefined; this.fenceFiles?.clear(group); }
      this.log(`group ${group}: entry ${e.index} abandoned through the log (last error here: ${last.slice(0, 300)})`);
      // A statement may have left an intent row: the next statement's intent replaces it, and a reload
      // finds its index below the applied one.
      if (st.intent?.index === e.index) st.intent = undefined;
      return { ok: false, error: { code: 'RH_ABANDONED', message: `entry ${e.index} was abandoned: it kept failing for a reason outside the entry on every replica of the group (last error here: ${last.slice(0, 500)})` } };
    }
    if (st.fence?.index === e.index) {
      if (Date.now() < st.fence.until) {
        throw new ChsmError('RH_FENCED', `group ${group}: entry ${e.index} is held for the leader's abandon decision (for ${st.fence.until - Date.now()} ms more); last error: ${st.stuck?.error.slice(0, 300) ?? '?'}`);
      }
      st.fence = undefined;
      this.fenceFiles?.clear(group);
    }
    st.attempting = e.index;
    try {
      const r = await this.applyOne(group, st, e, flush);
      st.stuck = undefined;
      return r;
    } catch (err) {
      // An index gap is not this entry's; a lost block that cannot be rebuilt is this replica's alone
      // (the others applied the entry): neither may be abandoned.
      if (err instanceof ChsmError && (err.code === 'RH_BAD_ENTRY' || err.code === 'RH_REPAIR_FAILED')) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (st.stuck?.index === e.index) { st.stuck.attempts++; st.stuck.error = message.slice(0, 1000); }
      else st.stuck = { index: e.index, since: Date.now(), attempts: 1, error: message.slice(0, 1000) };
      throw err;
    } finally {
      st.attempting = undefined;
    }
  }

  /** Entries of the batch that abandon an earlier entry with a valid MAC: the indexes they give up. */
  private abandonsIn(group: number, entries: ApplyEntry[]): Set<number> {
    const out = new Set<number>();
    const secret = this.abandonSecret;
    if (!secret) return out;
    for (const e of entries) {
      // Cheap test first: the header's kind is near the start of the first line.
      const head = Buffer.from(e.data.buffer, e.data.byteOffset, Math.min(e.data.byteLength, 64)).toString('latin1');
      if (!head.includes('"abandon"')) continue;
      try {
        const { header } = decodeEntry(e.data);
        if (header.kind === 'abandon' && header.index !== undefined && header.index < e.index && verifyAbandonMac(secret, 'entry', group, header.index, header.mac)) out.add(header.index);
      } catch {
        // not an entry: applyOne fails it as such
      }
    }
    return out;
  }

  /**
   * The peer check before an abandon (abandon.ts), answered from memory without the group's lock (an
   * attempt may hold it). `release`: drop a fence this check set (the leader decided not to abandon).
   * Needs the check MAC: only a rafthouse node may hold a replica's entry.
   */
  abandonCheck(group: number, index: number, mac: unknown, release = false): AbandonCheckReply {
    const secret = this.abandonSecret;
    if (!secret) throw new ChsmError('RH_UNAUTHENTICATED', 'abandon checks are disabled: this node has no app secret (--insecure)');
    if (!Number.isSafeInteger(index) || index <= 0) throw new ChsmError('RH_BAD_QUERY', 'an abandon check needs a positive integer index');
    if (!verifyAbandonMac(secret, release ? 'release' : 'check', group, index, mac)) throw new ChsmError('RH_UNAUTHENTICATED', 'abandon check: bad MAC');
    const st = this.groups.get(group);
    if (!st) return { state: 'behind', applied: 0 };
    if (release) {
      if (st.fence?.index === index) { st.fence = undefined; this.fenceFiles?.clear(group); }
      return { state: st.applied >= index ? 'applied' : 'behind', applied: st.applied };
    }
    if (st.applied >= index) return { state: 'applied', applied: st.applied };
    if (st.attempting === index) return { state: 'busy', applied: st.applied };
    // Held already (a fence restored after a restart) counts as failing: it cannot apply the entry either.
    if (st.applied !== index - 1 || (st.stuck?.index !== index && st.fence?.index !== index)) return { state: 'behind', applied: st.applied };
    // Synchronously with the checks above: applyTracked tests the fence before it starts an attempt.
    st.fence = { index, until: Date.now() + this.abandonFenceMs };
    // Before the answer leaves: a restart must not forget what it promised.
    this.fenceFiles?.save(group, st.fence);
    return { state: 'failing', applied: st.applied, fencedForMs: this.abandonFenceMs };
  }

  private entryError(e: unknown, index: number): EntryResult {
    if (e instanceof RuleError) return { ok: false, error: { code: clickhouseCode(e.code), message: e.exceptionText() } };
    if (e instanceof ChsmError && e.code === 'RH_REPAIR_FAILED') throw e; // not the entry's fault
    if (e instanceof ClickHouseError && (!TRANSIENT_CODES.has(e.code) || deterministicAfterAll(e))) {
      return { ok: false, error: { code: clickhouseCode(e.code), message: e.message } };
    }
    if (e instanceof ChsmError) return { ok: false, error: { code: e.code, message: e.message } };
    if (e instanceof EngineError && (e.code === 'ENGINE_BAD_REQUEST' || e.code === 'ENGINE_FORMAT_UNSUPPORTED')) {
      return { ok: false, error: { code: e.code, message: e.message } };
    }
    throw e; // not the entry's fault: the call fails, raftd retries
  }

  /**
   * The settings an entry's statement runs with: the group's defaults (SET), the entry's own (header and
   * query-level SETTINGS clauses, both from the allow-list: rules/settings.ts), then what RaftHouse fixes.
   * Throws (an entry error, the same on every replica) for a setting the entry may not choose.
   */
  private statementSettings(st: GroupState, header: EntryHeader): Settings {
    // async_insert is served synchronously (the entry is the insert): it and the deduplication settings
    // reach ClickHouse never, they only choose the block id (dedup.ts); OWNED_SETTINGS drops them below.
    const own = header.settings ?? {};
    checkSettings(own, 'entry');
    const sql = header.sql ?? '';
    const inSql = settingsInSql(sql, firstSignificant(sql)?.text.toUpperCase() === 'CREATE');
    checkSettings(inSql, 'entry');
    // A SETTINGS clause in the text would override what apply passes (the per-entry token above all).
    for (const k of Object.keys(inSql)) {
      if (OWNED_SETTINGS.has(k)) {
        const message = `Setting ${k} should not be changed in the statement's SETTINGS clause: give it as a setting of the request`;
        throw clickHouseError('SETTING_CONSTRAINT_VIOLATION', message);
      }
    }
    refuseInternalNames(sql);
    const out: Settings = {};
    for (const [k, v] of Object.entries({ ...st.settings, ...own })) if (!OWNED_SETTINGS.has(k)) out[k] = v;
    return { ...out, ...APPLY_SETTINGS };
  }

  private async applyOne(group: number, st: GroupState, e: ApplyEntry, flush: () => Promise<void>): Promise<EntryResult> {
    if (e.data.length === 0) return { ok: true, result: null }; // no-op entry
    let entry: Entry;
    try {
      entry = decodeEntry(e.data);
    } catch (err) {
      return this.entryError(err, e.index);
    }
    const kind = entry.header.kind;
    if (kind === 'abandon') {
      // Only the leader's rafthouse can make one (abandon-auth.ts); anything else is refused the same
      // way on every replica, and abandonsIn did not count it.
      if (!this.abandonSecret) return { ok: false, error: { code: 'RH_ABANDON_REFUSED', message: 'abandon entries are disabled on a cluster without an app secret (--insecure)' } };
      if (!verifyAbandonMac(this.abandonSecret, 'entry', group, entry.header.index!, entry.header.mac)) {
        return { ok: false, error: { code: 'RH_ABANDON_REFUSED', message: `abandon of entry ${entry.header.index}: no valid MAC (only the group leader's RaftHouse may propose one)` } };
      }
      // Its target was settled before this entry (applied, failed or abandoned): nothing left to do here.
      return { ok: true, result: { abandoned: entry.header.index } };
    }
    let validated: Validated | undefined;
    try {
      validated = await this.validate(group, entry);
    } catch (err) {
      if (err instanceof RuleError) return { ok: false, error: { code: clickhouseCode(err.code), message: err.exceptionText() } };
      return this.entryError(err, e.index);
    }
    if (kind === 'settings' || !validated) return this.applySettings(group, st, entry, e.index);
    // An INSERT sent as a "statement" still gets a token: untokenised, a replay would duplicate it.
    if (validated.kind === 'insert') return this.applyInsert(group, st, entry, e.index, validated.columns);
    if (kind === 'insert') return { ok: false, error: { code: 'RH_BAD_ENTRY', message: `an insert entry holds a ${validated.kind.toUpperCase()} statement` } };
    // From here on the statement is run as ClickHouse's canonical text of it: exactly what was validated.
    entry = { ...entry, header: { ...entry.header, sql: validated.canonical } };
    // A statement without a token: record everything before it, run it alone, record it.
    await flush();
    let r: EntryResult;
    try {
      r = await this.applyStatement(group, st, entry, e.index);
      if (r.ok) await this.dedupAfterStatement(dataDb(group), st, validated, e.index);
    } finally {
      this.schemaGen++; // after the statement: metadata read before this point is stamped with the old value
    }
    st.applied = e.index;
    await flush();
    return r;
  }

  /**
   * The state machine trusts nothing in its log (rules/): every entry is checked before it is applied,
   * on every replica alike — its bytes, the group, and this ClickHouse's parser decide, never timing or
   * local state. Throws RuleError (refused: a deterministic failed result, the index advances) or
   * ClickHouseError (62: not one valid statement). undefined for a settings entry.
   */
  private async validate(group: number, entry: Entry): Promise<Validated | undefined> {
    const h = entry.header;
    if (h.settings) checkSettings(h.settings, h.kind === 'settings' ? 'set' : 'entry');
    if (h.kind === 'settings') return undefined;
    if (h.format !== undefined) checkInputFormat(h.format);
    if (h.table !== undefined) return validateDataInsert(entry);
    const db = dataDb(group);
    this.nondeterministic ??= loadNondeterministic(this.parserEngine);
    const nondeterministic = await this.nondeterministic.catch((e: unknown) => { this.nondeterministic = undefined; throw e; });
    // An insert may give its FORMAT in the header instead (entry.ts): parse what applyInsert will run.
    const sql = h.format !== undefined && entry.payload.length > 0 && !hasFormatClause(h.sql!) ? `${h.sql!.trimEnd()} FORMAT ${h.format}` : h.sql!;
    const stmt = await this.parser.parse(sql);
    const kind = checkWrite(stmt, {
      scope: { own: new Set([db]), insertTarget: new Set([db, ...(h.database !== undefined ? [h.database] : [])]) },
      nondeterministic,
      allowPinnable: false,
    });
    if (kind === 'set') throw new RuleError(CODES.NOT_IMPLEMENTED, 'SET travels as a settings entry (the gateway proposes one for SET), never as a statement');
    return { kind, canonical: stmt.canonical, columns: stmt.columns, target: stmt.target?.table, names: identifierNames(stmt.ast) };
  }

  /**
   * Columns of `table` whose DEFAULT / MATERIALIZED expression is non-deterministic (rand(), now(),
   * generateUUIDv4() ...): an insert that leaves them to ClickHouse would store a different value on each
   * replica. Read from this replica's schema, which at this index is every replica's (DDL is in the log).
   */
  private async nondetDefaultColumns(db: string, table: string): Promise<Array<{ name: string; kind: string }>> {
    const key = `${db}.${table}`;
    const cached = this.defaultsCache.get(key);
    if (cached && cached.gen === this.schemaGen) return cached.cols;
    const gen = this.schemaGen;
    const rows = await queryRows<{ name: string; kind: string; expr: string }>(this.engine,
      `SELECT name, default_kind AS kind, default_expression AS expr FROM system.columns
       WHERE database = ${quoteString(db)} AND table = ${quoteString(table)} AND default_kind IN ('DEFAULT', 'MATERIALIZED') ORDER BY position`);
    const nondeterministic = await (this.nondeterministic ??= loadNondeterministic(this.parserEngine));
    const cols: Array<{ name: string; kind: string }> = [];
    for (const r of rows) {
      const fns = (await this.parser.parse(`SELECT ${r.expr}`)).functions;
      if (fns.some((f) => isNondeterministic(f, nondeterministic))) cols.push({ name: r.name, kind: r.kind });
    }
    if (this.defaultsCache.size > 10_000) this.defaultsCache.clear();
    this.defaultsCache.set(key, { gen, cols });
    return cols;
  }

  /**
   * An insert into a table with non-deterministic defaults must give those columns itself (the gateway
   * materializes them: every column, insert_allow_materialized_columns = 1). Fields a row omits would
   * still take the default: for such an insert they take the type's zero value instead, the same on
   * every replica. Returns the settings that do that.
   */
  private async checkNondetDefaults(db: string, table: string, columns: string[] | undefined, settings: Settings): Promise<Settings> {
    const risky = await this.nondetDefaultColumns(db, table);
    if (risky.length === 0) return {};
    for (const c of risky) {
      const given = columns?.includes(c.name) === true;
      const materializedAllowed = String(settings.insert_allow_materialized_columns ?? '0') !== '0';
      if (!given || (c.kind === 'MATERIALIZED' && !materializedAllowed)) {
        throw new RuleError(CODES.BAD_ARGUMENTS, `column ${c.name} of ${table} has a non-deterministic ${c.kind} expression: an insert must give its values (the gateway computes them), or every replica would store its own`);
      }
    }
    return { input_format_defaults_for_omitted_fields: 0, input_format_csv_empty_as_default: 0, input_format_tsv_empty_as_default: 0 };
  }

  private async applyInsert(group: number, st: GroupState, entry: Entry, index: number, columns: string[] | undefined): Promise<EntryResult> {
    const db = dataDb(group);
    try {
      let settings: Settings = {
        ...this.statementSettings(st, entry.header),
        // INSERT ... SELECT: what it may read is bounded, the same way on every replica.
        ...(entry.payload.length === 0 ? APPLY_BOUNDS : {}),
        ...PINNED_INSERT_SETTINGS,
        insert_deduplicate: 1,
        insert_deduplication_token: `${group}:${index}`,
      };
      const h = entry.header;
      const withPayload = entry.payload.length > 0;
      let target: { table: string; tail: string };
      // Runs the insert into `into` (the target, or the repair scratch table of the same structure).
      let run: (into: { database: string; table: string; sql: string }, s: Settings) => Promise<number>;
      if (h.table !== undefined) {
        // A structured insert (entry.ts): the engine builds the statement; the payload goes unchanged.
        const format = h.format!;
        target = { table: h.table, tail: dataInsertTail(h.columns, format) };
        settings = { ...settings, ...(COLUMNAR_INPUT.has(format) ? PINNED_COLUMNAR_SETTINGS : {}) };
        run = async (into, s) => (await this.engine.insertData({
          database: into.database, table: into.table, format, settings: s, ...(h.columns ? { columns: h.columns } : {}),
        }, entry.payload)).writtenRows;
      } else {
        let sql = h.sql!;
        if (withPayload && !hasFormatClause(sql)) {
          if (!h.format) throw new ChsmError('RH_BAD_ENTRY', 'an insert with data needs FORMAT in its SQL or a format field');
          sql = `${sql.trimEnd()} FORMAT ${h.format}`;
        }
        const q = qualifyInsert(sql, db, h.database);
        target = q;
        // INSERT ... SELECT: one reading thread, so the rows reach the (single) block in one order.
        run = async (into, s) => {
          const statement = into.table === q.table && into.database === db ? q.sql : `INSERT INTO ${into.sql}${q.tail}`;
          if (withPayload) return (await this.engine.insert(statement, entry.payload, { settings: s })).writtenRows;
          await this.engine.exec(statement, { database: db, settings: { ...s, max_threads: 1 } });
          return -1;
        };
      }
      settings = { ...settings, ...(await this.checkNondetDefaults(db, target.table, columns, settings)) };
      // A client's retry of a block this table already holds (dedup.ts): not inserted again.
      const block = blockId({ group, columnsAndFormat: target.tail, settings: h.settings ?? {}, payload: entry.payload });
      if (block !== undefined && (await this.dedupLog(db, st, target.table)).includes(block)) {
        return { ok: true, result: { writtenRows: 0, deduplicated: true } };
      }
      await this.beforeTokenisedInsert(group, st, index, target.table, async (scratch) => {
        await run({ database: db, table: REPAIR_TABLE, sql: scratch }, { ...settings, ...(await this.dedupOff()), insert_deduplication_token: '' });
      });
      await this.at('before-insert', index);
      const writtenRows = await run({ database: db, table: target.table, sql: `${db}.${quoteIdent(target.table)}` }, settings);
      await this.at('after-insert', index);
      if (block !== undefined) await this.rememberBlock(db, st, target.table, block, index);
      return { ok: true, result: { writtenRows } };
    } catch (err) {
      return this.entryError(err, index);
    }
  }

  // ---- client-retry deduplication (dedup.ts) -------------------------------------------------------

  /**
   * The block ids among the `insertDedupWindow` newest blocks of `table` remembered before the next entry
   * (st.applied + 1), after the table's last clear, oldest first. Loaded from _rh_dedup: rows above the
   * applied index (left by a crash before the index was recorded; their entries come again) do not
   * count, and a row written twice by such a replay counts once (LIMIT 1 BY idx).
   */
  private async dedupLog(db: string, st: GroupState, table: string): Promise<string[]> {
    const cached = st.dedupLogs.get(table);
    if (cached) return cached;
    let rows: Array<{ idx: number | string; kind: number; block_id: string }>;
    try {
      rows = await queryRows(this.engine,
        `SELECT idx, kind, block_id FROM ${db}.${DEDUP_TABLE} WHERE tbl = ${quoteString(table)} AND idx <= ${st.applied}
         ORDER BY idx DESC LIMIT 1 BY idx LIMIT ${this.insertDedupWindow}`);
    } catch (e) {
      // This replica's bookkeeping, never the entry's fault: the call fails and is retried (entryError
      // would turn a ClickHouseError into a failed entry here only).
      throw new Error(`reading ${db}.${DEDUP_TABLE} failed: ${(e as Error).message}`, { cause: e });
    }
    const log: string[] = [];
    for (const r of rows) {
      if (Number(r.kind) === DEDUP_CLEAR) break; // newest first: everything older is forgotten
      log.push(r.block_id);
    }
    log.reverse();
    st.dedupLogs.set(table, log);
    return log;
  }

  private async registryInsert(db: string, rows: Array<{ tbl: string; idx: number; kind: number; block_id: string }>): Promise<void> {
    if (rows.length === 0) return;
    await this.engine.insert(`INSERT INTO ${db}.${DEDUP_TABLE} FORMAT JSONEachRow`,
      Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n'), { settings: await this.dedupOff() });
  }

  /** Remembers an applied insert's block: in the cached log now, in _rh_dedup at the next flush (one insert per batch). */
  private async rememberBlock(db: string, st: GroupState, table: string, block: string, index: number): Promise<void> {
    const log = await this.dedupLog(db, st, table);
    log.push(block);
    if (log.length > this.insertDedupWindow) log.shift();
    st.dedupPending.push({ tbl: table, idx: index, kind: DEDUP_BLOCK, block_id: block });
    st.dedupSincePrune++;
  }

  /**
   * What a statement does to the blocks remembered, as ClickHouse's own deduplication log would: DROP,
   * TRUNCATE (and CREATE OR REPLACE) forget the table's blocks; RENAME a TO b carries a's blocks to b (the
   * log lives with the table); a statement renaming several tables forgets all of them. Re-running it
   * after a crash (intent) writes the same rows again: harmless.
   */
  private async dedupAfterStatement(db: string, st: GroupState, v: Validated, index: number): Promise<void> {
    // Every statement runs after a flush (applyOne): no registry row is pending here. The logs of the
    // tables it touches are read again from the registry when next needed.
    const clear = (tbl: string) => { st.dedupLogs.delete(tbl); return { tbl, idx: index, kind: DEDUP_CLEAR, block_id: '' }; };
    if (v.kind === 'drop' || v.kind === 'truncate' || (v.kind === 'create' && /^CREATE\s+OR\s+REPLACE\b/i.test(v.canonical))) {
      if (v.target !== undefined) await this.registryInsert(db, [clear(v.target)]);
      return;
    }
    if (v.kind !== 'rename') return;
    // Database qualifiers (the group's or the user's) are not table names.
    const tables = v.names.filter((n) => !/^rh_g\d+$/.test(n));
    if (tables.length === 2 && !/\bEXCHANGE\b/i.test(v.canonical)) {
      const [from, to] = tables as [string, string];
      st.dedupLogs.delete(to);
      await this.engine.exec(`INSERT INTO ${db}.${DEDUP_TABLE} (tbl, idx, kind, block_id)
        SELECT ${quoteString(to)}, idx, kind, block_id FROM ${db}.${DEDUP_TABLE}
        WHERE tbl = ${quoteString(from)} AND idx < ${index} AND kind = ${DEDUP_BLOCK}
          AND idx > (SELECT max(idx) FROM ${db}.${DEDUP_TABLE} WHERE tbl = ${quoteString(from)} AND idx < ${index} AND kind = ${DEDUP_CLEAR})
        ORDER BY idx`, { settings: { ...(await this.dedupOff()), max_threads: 1 } });
      await this.registryInsert(db, [clear(from)]);
      return;
    }
    await this.registryInsert(db, tables.map(clear));
  }

  /**
   * Deletes registry rows no window can reach any more: per table, those below its
   * `insertDedupWindow`-th newest block among the RECORDED entries (entries above the record may be
   * replayed after a crash, and their windows reach that far back). Decision-neutral: seenBlock never
   * looks below that row, so when this runs (and whether a mutation finished) may differ per replica.
   */
  private async pruneDedup(group: number, st: GroupState): Promise<void> {
    if (st.dedupSincePrune < this.insertDedupWindow) return;
    st.dedupSincePrune = 0;
    const db = dataDb(group);
    const cutoffs = await queryRows<{ tbl: string; cutoff: number | string; n: number | string }>(this.engine,
      `SELECT tbl, min(idx) AS cutoff, count() AS n FROM (SELECT DISTINCT tbl, idx FROM ${db}.${DEDUP_TABLE} WHERE idx <= ${st.recorded}
         ORDER BY tbl, idx DESC LIMIT ${this.insertDedupWindow} BY tbl) GROUP BY tbl ORDER BY tbl`);
    const full = cutoffs.filter((c) => Number(c.n) >= this.insertDedupWindow);
    if (full.length === 0) return;
    const where = full.map((c) => `(tbl = ${quoteString(c.tbl)} AND idx < ${Number(c.cutoff)})`).join(' OR ');
    await this.engine.exec(`ALTER TABLE ${db}.${DEDUP_TABLE} DELETE WHERE ${where}`, { settings: { mutations_sync: 0 } });
  }

  private async applySettings(group: number, st: GroupState, entry: Entry, index: number): Promise<EntryResult> {
    try {
      const changes = entry.header.settings ?? {};
      for (const k of Object.keys(changes)) {
        if (OWNED_SETTINGS.has(k)) throw new ChsmError('RH_UNSUPPORTED', `setting ${k} is owned by the adapter and cannot be changed`);
      }
      checkSettings(changes, 'set');
      // Validate names and values with ClickHouse itself before storing them.
      await this.engine.query('SELECT 1', { settings: changes, format: 'TabSeparated' });
      const row = Buffer.from(JSON.stringify({ idx: index, settings: JSON.stringify(changes) }) + '\n');
      await this.beforeTokenisedInsert(group, st, index, SETTINGS_TABLE, async (scratch) => {
        await this.engine.insert(`INSERT INTO ${scratch} FORMAT JSONEachRow`, row, { settings: { ...PINNED_INSERT_SETTINGS, ...(await this.dedupOff()) } });
      });
      await this.engine.insert(`INSERT INTO ${dataDb(group)}.${SETTINGS_TABLE} FORMAT JSONEachRow`, row,
        { settings: { ...PINNED_INSERT_SETTINGS, insert_deduplication_token: `${group}:${index}` } });
      await this.at('after-insert', index);
      Object.assign(st.settings, changes);
      return { ok: true, result: {} };
    } catch (err) {
      return this.entryError(err, index);
    }
  }

  /** Highest mutation number per user table: a statement that registered a mutation raised one. */
  private async mutationMarks(db: string): Promise<Record<string, number>> {
    const rows = await queryRows<{ t: string; m: number }>(this.engine,
      `SELECT table AS t, max(toUInt64OrZero(extract(mutation_id, '(\\\\d+)'))) AS m FROM system.mutations
       WHERE database = ${quoteString(db)} AND NOT startsWith(table, '_rh_') GROUP BY table ORDER BY table`);
    const out: Record<string, number> = {};
    for (const r of rows) out[r.t] = Number(r.m);
    return out;
  }

  private async applyStatement(group: number, st: GroupState, entry: Entry, index: number): Promise<EntryResult> {
    const db = dataDb(group);
    const maybeApplied = st.intent?.index === index;
    let settings: Settings;
    try {
      settings = { ...this.statementSettings(st, entry.header), mutations_sync: 2, alter_sync: 2 };
      // CREATE ... AS SELECT, POPULATE, ...: what it may read is bounded as for INSERT ... SELECT.
      if (/\bSELECT\b/i.test(entry.header.sql ?? '')) Object.assign(settings, APPLY_BOUNDS);
    } catch (err) {
      return this.entryError(err, index);
    }
    if (maybeApplied) {
      const before = st.intent!.mutations;
      const now = await this.mutationMarks(db);
      if (Object.entries(now).some(([t, m]) => m > (before[t] ?? 0))) {
        // Its mutation is registered: ClickHouse finishes it by itself; running it again would apply it twice.
        await this.ensureDedupWindow(db);
        return { ok: true, result: {} };
      }
    } else {
      const mutations = await this.mutationMarks(db);
      await this.engine.exec(`INSERT INTO ${db}.${APPLIED_TABLE} (idx, state, info) VALUES (${index}, 0, ${quoteString(JSON.stringify(mutations))})`);
      st.intent = { index, mutations };
    }
    await this.at('after-intent', index);
    let result: EntryResult;
    try {
      await this.engine.exec(entry.header.sql!, { database: db, settings });
      result = { ok: true, result: {} };
    } catch (err) {
      if (maybeApplied && err instanceof ClickHouseError && ALREADY_DONE_CODES.has(err.code)) {
        result = { ok: true, result: {} };
      } else {
        result = this.entryError(err, index);
      }
    }
    await this.ensureDedupWindow(db);
    await this.at('after-ddl', index);
    return result;
  }

  /** Every MergeTree table of the group gets the deduplication window (new tables, renamed-in tables). */
  private async ensureDedupWindow(db: string): Promise<void> {
    const rows = await queryRows<{ name: string; engine_full: string }>(this.engine,
      `SELECT name, engine_full FROM system.tables WHERE database = ${quoteString(db)} AND engine LIKE '%MergeTree'
       AND name NOT IN (${quoteString(APPLIED_TABLE)}, ${quoteString(DEDUP_TABLE)}) ORDER BY name`);
    for (const r of rows) {
      const m = /non_replicated_deduplication_window = (\d+)/.exec(r.engine_full);
      if (m && Number(m[1]) >= this.dedupWindow) continue;
      await this.engine.exec(`ALTER TABLE ${db}.${quoteIdent(r.name)} MODIFY SETTING non_replicated_deduplication_window = ${this.dedupWindow}`);
    }
  }

  // ---- reads -----------------------------------------------------------------------------------------

  /**
   * Read queries: `{op: "checksum"}` -> the group's per-table checksums; `{sql, format?}` -> the result
   * of a read-only query run in the group database (`{data: text}`, or `{rows}` for JSONEachRow);
   * `{op: "abandon-check" | "abandon-release", index, mac}` -> abandonCheck (rafthouse nodes only).
   */
  async read(group: number, query: unknown): Promise<unknown> {
    const q = (typeof query === 'object' && query !== null ? query : {}) as { op?: unknown; sql?: unknown; format?: unknown };
    if (q.op === 'abandon-check' || q.op === 'abandon-release') {
      const a = q as { index?: unknown; mac?: unknown };
      return this.abandonCheck(group, Number(a.index), a.mac, q.op === 'abandon-release');
    }
    if (q.op === 'checksum') {
      const st = await this.withLock(group, () => this.group(group, false));
      return { lastLogIndex: st?.applied ?? 0, tables: st ? await groupChecksum(this.engine, dataDb(group)) : [] };
    }
    if (typeof q.sql === 'string') {
      const format = typeof q.format === 'string' ? q.format : 'JSONEachRow';
      // The same read sandbox as the gateway's, inside the group's database (rules/reads.ts).
      const db = dataDb(group);
      const stmt = await this.parser.parse(q.sql);
      if (stmt.write) throw new ChsmError('RH_BAD_QUERY', 'a read query must not write');
      try {
        checkRead(stmt, { database: db, userDb: db });
      } catch (e) {
        if (e instanceof RuleError) throw new ChsmError('RH_BAD_QUERY', e.exceptionText());
        throw e;
      }
      const buf = await this.engine.query(q.sql, { database: dataDb(group), format, settings: { readonly: 2 } });
      return format === 'JSONEachRow' ? { rows: jsonEachRow(buf) } : { data: buf.toString('utf8') };
    }
    throw new ChsmError('RH_BAD_QUERY', 'a read query is {op:"checksum"}, {sql, format?} or {op:"abandon-check"|"abandon-release", index, mac}');
  }

  async checksum(group: number): Promise<{ lastLogIndex: number; tables: TableChecksum[] }> {
    return this.read(group, { op: 'checksum' }) as Promise<{ lastLogIndex: number; tables: TableChecksum[] }>;
  }

  // ---- snapshots ---------------------------------------------------------------------------------------

  private parsePrepared(group: number, prepared: string): { db: string; index: number } {
    const p = parseDbName(prepared);
    if (!p || p.kind !== 'snapshot' || p.group !== group) throw new ChsmError('RH_BAD_PREPARED', `${JSON.stringify(prepared)} is not a snapshot of group ${group}`);
    return { db: prepared, index: p.index };
  }

  private async snapshotMeta(db: string): Promise<SnapshotTableMeta[] | undefined> {
    if (!(await this.tableExists(db, SNAPSHOT_META_TABLE))) return undefined;
    const rows = await queryRows<SnapshotTableMeta & { complete: number }>(this.engine,
      `SELECT ord, name, kind, create, complete FROM ${db}.${SNAPSHOT_META_TABLE} ORDER BY ord`);
    if (!rows.some((r) => r.complete === 1)) return undefined;
    return rows.filter((r) => r.complete === 0).map((r) => ({ ord: Number(r.ord), name: r.name, kind: r.kind, create: r.create }));
  }

  /**
   * Freezes the group at its applied index: hard-linked clones (CREATE TABLE ... CLONE AS) into
   * rh_snap_g<g>_<index>, plus a description of every object. Older snapshots of the group are dropped.
   */
  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    return this.withLock(group, async () => {
      const st = (await this.group(group, true))!;
      // After a crash, an entry above the applied index may have partly landed (an insert marked in
      // flight, a statement with an intent) until its redelivery is applied: a snapshot now would carry
      // effects past its index, which a follower restoring it would then apply a second time.
      const unsettled = Math.max(st.inflight?.index ?? 0, st.intent?.index ?? 0);
      if (unsettled > st.applied) {
        throw new ChsmError('RH_CATCHING_UP', `group ${group}: entry ${unsettled} may have partly landed before a crash and is not re-applied yet (applied ${st.applied}); retry after its redelivery`);
      }
      await this.flush(group, st, true); // raftd may truncate its log up to this index: it must be recorded
      const src = dataDb(group);
      const index = st.recorded;
      const snap = snapshotDb(group, index);
      if (!(await this.snapshotMeta(snap))) {
        await this.engine.exec(`DROP DATABASE IF EXISTS ${snap} SYNC`);
        await this.engine.exec(`CREATE DATABASE ${snap}`);
        const tables = await queryRows<{ name: string; engine: string }>(this.engine,
          `SELECT name, engine FROM system.tables WHERE database = ${quoteString(src)}
           AND name NOT IN (${[APPLIED_TABLE, REPAIR_TABLE, PROBE_TABLE].map(quoteString).join(', ')})
           AND NOT startsWith(name, '.inner') ORDER BY name`);
        const meta: SnapshotTableMeta[] = [];
        for (const [ord, t] of tables.entries()) {
          const create = (await this.engine.query(`SHOW CREATE TABLE ${src}.${quoteIdent(t.name)}`, { format: 'TabSeparatedRaw' })).toString('utf8').trimEnd();
          const stripped = stripDbQualifier(create, src);
          const isData = !/View$|^Dictionary$/.test(t.engine);
          if (isData) {
            if (t.engine.endsWith('MergeTree')) {
              await this.engine.exec(`CREATE TABLE ${snap}.${quoteIdent(t.name)} CLONE AS ${src}.${quoteIdent(t.name)}`);
            } else {
              // Not MergeTree (Memory, Log, ...): no hard links; copy the rows (small tables by nature).
              await this.engine.exec(`CREATE TABLE ${snap}.${quoteIdent(t.name)} AS ${src}.${quoteIdent(t.name)}`);
              await this.engine.exec(`INSERT INTO ${snap}.${quoteIdent(t.name)} SELECT * FROM ${src}.${quoteIdent(t.name)}`);
            }
          }
          meta.push({ ord, name: t.name, kind: isData ? 'data' : 'ddl', create: stripped });
        }
        await this.engine.exec(`CREATE TABLE ${snap}.${SNAPSHOT_META_TABLE} (ord UInt32, name String, kind String, create String, complete UInt8)
          ENGINE = MergeTree ORDER BY ord`);
        // One insert: the "complete" row arrives with the rest or not at all.
        const lines = meta.map((m) => JSON.stringify({ ...m, complete: 0 }));
        lines.push(JSON.stringify({ ord: meta.length, name: '', kind: '', create: '', complete: 1 }));
        await this.engine.insert(`INSERT INTO ${snap}.${SNAPSHOT_META_TABLE} FORMAT JSONEachRow`, Buffer.from(lines.join('\n') + '\n'));
      }
      for (const n of await this.databaseNames()) {
        const p = parseDbName(n);
        if (p && p.kind === 'snapshot' && p.group === group && n !== snap) await this.engine.exec(`DROP DATABASE IF EXISTS ${n} SYNC`);
      }
      return { prepared: snap, lastLogIndex: index };
    });
  }

  /**
   * The snapshot as bytes: magic, a header frame (JSON: group, index, each object's CREATE statement and
   * columns), then per data table in name order its rows `ORDER BY <all columns>` as TabSeparated in
   * fixed-size frames. Same prepared value, same bytes: the clone does not change and the order is total.
   */
  async *saveSnapshot(group: number, prepared: string): AsyncGenerator<Uint8Array> {
    const { db, index } = this.parsePrepared(group, prepared);
    const meta = await this.snapshotMeta(db);
    if (!meta) throw new ChsmError('RH_SNAPSHOT_GONE', `snapshot ${prepared} does not exist (a newer one replaced it?)`);
    const header: SnapshotHeader = { v: 1, group, index, tables: [] };
    for (const m of meta) {
      const columns = m.kind === 'data' ? await this.storedColumns(db, m.name) : [];
      header.tables.push({ ord: m.ord, name: m.name, kind: m.kind, create: m.create, columns });
    }
    yield SNAPSHOT_MAGIC;
    yield frame(Buffer.from(JSON.stringify(header), 'utf8'));
    for (const t of header.tables) {
      if (t.kind !== 'data') continue;
      const cols = t.columns.map(quoteIdent).join(', ');
      const stream = this.engine.queryStream(
        `SELECT ${cols} FROM ${db}.${quoteIdent(t.name)} ORDER BY ${cols}`,
        { format: 'TabSeparated', settings: { max_threads: 1 } });
      yield* reframe(stream);
    }
  }

  /** Columns that hold data (not ALIAS / EPHEMERAL), in table order. */
  private async storedColumns(db: string, table: string): Promise<string[]> {
    const rows = await queryRows<{ name: string }>(this.engine,
      `SELECT name FROM system.columns WHERE database = ${quoteString(db)} AND table = ${quoteString(table)}
       AND default_kind NOT IN ('ALIAS', 'EPHEMERAL') ORDER BY position`);
    return rows.map((r) => r.name);
  }

  private async dedupOff(): Promise<Settings> {
    if (!this.dedupOffSetting) {
      const rows = await queryRows<{ c: number }>(this.engine, "SELECT count() AS c FROM system.settings WHERE name = 'deduplicate_insert'");
      this.dedupOffSetting = (rows[0]?.c ?? 0) > 0 ? { deduplicate_insert: 'disable' } : { insert_deduplicate: 0 };
    }
    return this.dedupOffSetting;
  }

  /**
   * Loads a snapshot into a fresh rh_restore_g<g>_<index>, records its index there, then swaps it in by
   * two RENAME DATABASE statements (ClickHouse has no EXCHANGE DATABASES): readers see the old state or
   * the new one, never a mix; between the two renames (milliseconds) the database is briefly absent.
   */
  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number> {
    return this.withLock(group, async () => {
      const reader = new ByteReader(data);
      const magic = await reader.readExact(SNAPSHOT_MAGIC.length);
      if (!magic.equals(SNAPSHOT_MAGIC)) throw new ChsmError('RH_BAD_SNAPSHOT', 'not a RaftHouse snapshot (bad magic)');
      let header: SnapshotHeader;
      try {
        header = JSON.parse((await reader.readFrame()).toString('utf8')) as SnapshotHeader;
      } catch {
        throw new ChsmError('RH_BAD_SNAPSHOT', 'snapshot header is not JSON');
      }
      if (header.v !== 1 || header.group !== group || !Number.isSafeInteger(header.index) || !Array.isArray(header.tables)) {
        throw new ChsmError('RH_BAD_SNAPSHOT', `snapshot header does not describe group ${group}`);
      }
      await this.repairGroup(group);
      const target = restoreDb(group, header.index);
      await this.engine.exec(`DROP DATABASE IF EXISTS ${target} SYNC`);
      await this.engine.exec(`CREATE DATABASE ${target}`);
      const off = await this.dedupOff();
      for (const t of header.tables.filter((x) => x.kind === 'data')) {
        await this.engine.exec(t.create, { database: target });
        const chunks: Buffer[] = [];
        for await (const f of reader.frames()) chunks.push(f);
        const rows = Buffer.concat(chunks);
        if (rows.length > 0) {
          await this.engine.insert(
            `INSERT INTO ${target}.${quoteIdent(t.name)} (${t.columns.map(quoteIdent).join(', ')}) FORMAT TabSeparated`, rows,
            { settings: { ...off, insert_allow_materialized_columns: 1 } });
        }
      }
      await reader.expectEnd();
      // Definitions only (views, ...) cannot be created yet: ClickHouse checks a view's query at CREATE
      // and their bodies name rh_g<g>.<table>, which does not hold the restored tables until the swap.
      // They travel with the swap in _rh_pending_ddl and are created right after it (or, after a crash,
      // at the group's next load).
      const ddlOnly = header.tables.filter((x) => x.kind === 'ddl');
      if (ddlOnly.length) {
        await this.engine.exec(`CREATE TABLE ${target}.${PENDING_DDL_TABLE} (ord UInt32, create String) ENGINE = MergeTree ORDER BY ord`);
        await this.engine.insert(`INSERT INTO ${target}.${PENDING_DDL_TABLE} FORMAT JSONEachRow`,
          Buffer.from(ddlOnly.map((t) => JSON.stringify({ ord: t.ord, create: t.create })).join('\n') + '\n'), { settings: off });
      }
      await this.createBookkeeping(target);
      await this.engine.exec(`INSERT INTO ${target}.${APPLIED_TABLE} (idx, state, info) VALUES (${header.index}, 1, '')`);
      await this.at('before-swap', header.index);
      const live = dataDb(group);
      const old = oldDb(group, header.index);
      const hasData = (await this.databaseNames()).includes(live);
      // Between the two renames the group has no data database: schemaGeneration() is odd meanwhile.
      this.swapsInProgress++;
      this.schemaGen++;
      try {
        if (hasData) {
          await this.engine.exec(`DROP DATABASE IF EXISTS ${old} SYNC`);
          await this.engine.exec(`RENAME DATABASE ${live} TO ${old}`);
        }
        await this.at('mid-swap', header.index);
        await this.engine.exec(`RENAME DATABASE ${target} TO ${live}`);
      } finally {
        this.swapsInProgress--;
        this.schemaGen++;
      }
      if (hasData) await this.engine.exec(`DROP DATABASE IF EXISTS ${old} SYNC`);
      const prev = this.groups.get(group);
      if (prev?.timer) clearTimeout(prev.timer);
      this.groups.delete(group);
      const st = (await this.group(group, true))!;
      return st.applied;
    });
  }

  /**
   * Creates the group's database now, unless it exists (placed groups, issue 21: this node is the
   * target of a move, so its replica exists before the learner's snapshot or first entries arrive).
   * An empty database at index 0 is the state every replica starts from; a snapshot swaps it out.
   */
  async prepareGroup(group: number): Promise<void> {
    await this.withLock(group, async () => { await this.group(group, true); });
  }

  async deleteGroup(group: number): Promise<void> {
    return this.withLock(group, async () => {
      for (const n of await this.databaseNames()) {
        const p = parseDbName(n);
        if (p && p.group === group) await this.engine.exec(`DROP DATABASE IF EXISTS ${n} SYNC`);
      }
      const st = this.groups.get(group);
      if (st?.timer) clearTimeout(st.timer);
      this.groups.delete(group);
      this.appliedFiles?.remove(group);
      this.fenceFiles?.clear(group);
      this.schemaGen++;
    });
  }

  /** Records the applied index now (the effects themselves are already in ClickHouse). */
  async sync(group: number): Promise<number> {
    return this.withLock(group, async () => {
      const st = await this.group(group, false);
      if (!st) return 0;
      await this.flush(group, st, true);
      return st.recorded;
    });
  }
}

/** Group defaults stored before the allow-list existed keep only what it allows (on every replica alike). */
function allowedDefaults(stored: Settings): Settings {
  const out: Settings = {};
  for (const [k, v] of Object.entries(stored)) if (settingRule(k, 'set')) out[k] = v;
  return out;
}

/** The `Identifier` children of a statement's root node, backquotes removed. */
function identifierNames(ast: { type: string; arg: string; children: Array<{ type: string; arg: string }> }): string[] {
  const root = ast.type === '#root' && ast.children.length === 1 ? ast.children[0] as typeof ast : ast;
  return root.children.filter((c) => c.type === 'Identifier').map((c) => c.arg.replace(/^`(.*)`$/, '$1'));
}

/** An identifier `_rh_*` anywhere (plain or quoted; strings and comments do not count). */
function refuseInternalNames(sql: string): void {
  for (const t of tokenize(sql)) {
    // As ClickHouse reads the name: `\x5frh_t` is _rh_t.
    const name = t.kind === 'quoted' || t.kind === 'word' ? identifierName(t.text) : undefined;
    if (name !== undefined && name.startsWith(INTERNAL_PREFIX)) {
      const message = `tables named ${INTERNAL_PREFIX}* are RaftHouse's own: an entry may not name ${name}`;
      throw clickHouseError('BAD_ARGUMENTS', message);
    }
  }
}

/** `CREATE TABLE rh_g1.t ...` -> `CREATE TABLE t ...` (the object's own name only; bodies untouched). */
export function stripDbQualifier(create: string, db: string): string {
  const re = new RegExp(`^(CREATE (?:OR REPLACE )?(?:TABLE|VIEW|MATERIALIZED VIEW|DICTIONARY|LIVE VIEW|WINDOW VIEW) (?:IF NOT EXISTS )?)${db}\\.`);
  if (!re.test(create)) throw new ChsmError('RH_BAD_SNAPSHOT', `unexpected CREATE statement form: ${create.slice(0, 80)}`);
  return create.replace(re, '$1');
}

export { isInternalTable };

/** Columnar formats whose readers may hand row groups over out of order: one parsing thread, in order. */
const COLUMNAR_INPUT: ReadonlySet<string> = new Set(['Parquet', 'ORC', 'Arrow', 'ArrowStream']);
const PINNED_COLUMNAR_SETTINGS: Settings = { input_format_parquet_preserve_order: 1, max_parsing_threads: 1 };

/**
 * A structured insert's payload bound, checked at apply: raftd's largest entry (64 MiB) is the real
 * cap; this one keeps the rule in the state machine, whatever raftd is configured with.
 */
export const MAX_INSERT_PAYLOAD_BYTES = 64 * 1024 * 1024;

/** The text after the table name that the same insert as SQL would have (the block id hashes it: dedup.ts). */
function dataInsertTail(columns: readonly string[] | undefined, format: string): string {
  const plain = (c: string) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(c) ? c : quoteIdent(c));
  return `${columns && columns.length ? ' (' + columns.map(plain).join(', ') + ')' : ''} FORMAT ${format}`;
}

/**
 * A structured insert (entry.ts) checked the way the SQL path's rules check an INSERT: an allow-listed
 * data format (Values never: its rows are SQL, evaluated by the gateway), a table of the group that is
 * not RaftHouse's own, a bounded payload. The same on every replica: the entry alone decides.
 */
function validateDataInsert(entry: Entry): Validated {
  const h = entry.header;
  const format = checkInputFormat(h.format!);
  if (format === 'Values') throw new RuleError(36, 'Values rows travel evaluated (the gateway sends them as JSONEachRow), never as a structured insert');
  if (format !== h.format) throw new ChsmError('RH_BAD_ENTRY', `a structured insert names its format by its canonical name (${format}, not ${h.format})`);
  if (h.table!.startsWith(INTERNAL_PREFIX)) throw new RuleError(497, `Not enough privileges: tables named ${INTERNAL_PREFIX}* are RaftHouse's own: an entry may not name ${h.table}`);
  if (entry.payload.length === 0) throw new ChsmError('RH_BAD_ENTRY', 'a structured insert carries its rows');
  if (entry.payload.length > MAX_INSERT_PAYLOAD_BYTES) {
    throw new ClickHouseError(307, 'TOO_MANY_BYTES', `an insert's data is ${entry.payload.length} bytes, over the ${MAX_INSERT_PAYLOAD_BYTES} an entry may carry`,
      `Code: 307. DB::Exception: an insert's data is ${entry.payload.length} bytes, over the ${MAX_INSERT_PAYLOAD_BYTES} an entry may carry. (TOO_MANY_BYTES)`);
  }
  return { kind: 'insert', canonical: '', columns: h.columns, target: h.table, names: [h.table!] };
}
