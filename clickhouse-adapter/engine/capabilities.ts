// Finds what a ClickHouse can do by trying it, the same way on both engines, and refuses modes the
// connected ClickHouse cannot run safely.

import { randomBytes } from 'node:crypto';
import { ClickHouseError, EngineUnsupportedError } from './errors.js';
import type { Capabilities, CapabilityName, ExecOptions, InsertOptions, InsertResult, QueryOptions } from './types.js';

/** What the probe needs from an engine (the engine's own methods, before capabilities are known). */
export interface ProbeTarget {
  readonly readonly: boolean;
  exec(sql: string, opts?: ExecOptions): Promise<void>;
  query(sql: string, opts?: QueryOptions): Promise<Buffer>;
  insert(sql: string, data: Uint8Array, opts?: InsertOptions): Promise<InsertResult>;
}

/** Human description of each capability and, where we know it, the release that brought it. */
export const CAPABILITY_INFO: Readonly<Record<CapabilityName, { what: string; needs: string }>> = {
  dedupTokens: { what: 'insert_deduplication_token', needs: 'needs 22.2+' },
  cloneAs: { what: 'CREATE TABLE ... CLONE AS', needs: 'needs a recent release; measured present in 26.7' },
  attachPartitionAll: { what: 'ALTER TABLE ... ATTACH PARTITION ALL FROM', needs: 'needs a recent release; measured present in 26.7' },
  mergeRegexp: { what: "merge(REGEXP('...')) over many databases", needs: 'needs a recent release; measured present in 26.7' },
  backupRestore: { what: 'BACKUP / RESTORE', needs: 'needs 22.8+' },
  explainAst: { what: 'EXPLAIN AST', needs: 'needs 20.6+' },
  deterministicFunctionsTable: { what: 'system.functions.deterministic', needs: 'needs a recent release; measured present in 26.7' },
};

/** The capabilities each RaftHouse mode relies on; pass to requireCapabilities. */
export const MODE_REQUIREMENTS = {
  'RaftHouse exactly-once apply': ['dedupTokens'],
  'RaftHouse snapshots': ['cloneAs', 'attachPartitionAll'],
  'RaftHouse sharded read views': ['mergeRegexp'],
  'RaftHouse write classification': ['explainAst', 'deterministicFunctionsTable'],
} as const satisfies Record<string, readonly CapabilityName[]>;

export function parseVersion(version: string): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)/.exec(version.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : { major: 0, minor: 0 };
}

/** Runs `fn`; true if it succeeds, false if ClickHouse refuses it. Anything else (network) propagates. */
async function tries(fn: () => Promise<boolean | void>): Promise<boolean> {
  try {
    const r = await fn();
    return r !== false;
  } catch (e) {
    if (e instanceof ClickHouseError) return false;
    throw e;
  }
}

async function scalar(t: ProbeTarget, sql: string): Promise<string> {
  return (await t.query(sql, { format: 'TabSeparated' })).toString('utf8').trim();
}

/**
 * Probes `t`. A writable engine tries dedup, CLONE AS and ATTACH PARTITION ALL for real on a scratch
 * database (dropped afterwards); a read-only engine cannot, so it checks that the settings exist and
 * that the statements parse.
 */
export async function probeCapabilities(t: ProbeTarget): Promise<Capabilities> {
  const version = await scalar(t, 'SELECT version()');
  const { major, minor } = parseVersion(version);

  const explainAst = await tries(() => t.query('EXPLAIN AST SELECT 1', { format: 'TabSeparated' }).then(() => true));
  const mergeRegexp = await tries(() => t.query("SELECT count() FROM merge(REGEXP('^system$'), '^one$')", { format: 'TabSeparated' }).then(() => true));
  const deterministicFunctionsTable = await tries(async () =>
    (await scalar(t, "SELECT count() FROM system.columns WHERE database = 'system' AND table = 'functions' AND name = 'deterministic'")) === '1');
  const backupRestore = await tries(async () =>
    (await scalar(t, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'backups'")) === '1');

  let dedupTokens: boolean;
  let cloneAs: boolean;
  let attachPartitionAll: boolean;
  if (t.readonly) {
    dedupTokens = await tries(async () =>
      (await scalar(t, "SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'")) === '1' &&
      (await scalar(t, "SELECT count() FROM system.merge_tree_settings WHERE name = 'non_replicated_deduplication_window'")) === '1');
    cloneAs = explainAst && await tries(() => t.query('EXPLAIN AST CREATE TABLE a.b CLONE AS a.c', { format: 'TabSeparated' }).then(() => true));
    attachPartitionAll = explainAst && await tries(() => t.query('EXPLAIN AST ALTER TABLE a.b ATTACH PARTITION ALL FROM a.c', { format: 'TabSeparated' }).then(() => true));
  } else {
    const db = `_rafthouse_probe_${randomBytes(6).toString('hex')}`;
    await t.exec(`CREATE DATABASE ${db}`);
    try {
      await t.exec(`CREATE TABLE ${db}.base (a UInt8) ENGINE = MergeTree ORDER BY a`);
      await t.insert(`INSERT INTO ${db}.base FORMAT TabSeparated`, Buffer.from('1\n'));
      dedupTokens = await tries(async () => {
        await t.exec(`CREATE TABLE ${db}.dedup (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 10`);
        const sql = `INSERT INTO ${db}.dedup SETTINGS insert_deduplication_token = 'probe' FORMAT TabSeparated`;
        await t.insert(sql, Buffer.from('1\n'));
        await t.insert(sql, Buffer.from('2\n')); // same token, different data: must be dropped
        return (await scalar(t, `SELECT count() FROM ${db}.dedup`)) === '1';
      });
      cloneAs = await tries(async () => {
        await t.exec(`CREATE TABLE ${db}.clone CLONE AS ${db}.base`);
        return (await scalar(t, `SELECT count() FROM ${db}.clone`)) === '1';
      });
      attachPartitionAll = await tries(async () => {
        await t.exec(`CREATE TABLE ${db}.attached AS ${db}.base`);
        await t.exec(`ALTER TABLE ${db}.attached ATTACH PARTITION ALL FROM ${db}.base`);
        return (await scalar(t, `SELECT count() FROM ${db}.attached`)) === '1';
      });
    } finally {
      await t.exec(`DROP DATABASE IF EXISTS ${db}`);
    }
  }
  return {
    version, major, minor, dedupTokens, cloneAs, attachPartitionAll, mergeRegexp, backupRestore, explainAst,
    deterministicFunctionsTable,
  };
}

/** Throws EngineUnsupportedError naming exactly what `engine` lacks for `mode`. */
export function requireCapabilities(
  engine: { readonly capabilities: Capabilities },
  needed: ReadonlyArray<keyof Capabilities>,
  mode: string,
): void {
  const caps = engine.capabilities;
  const missing = needed.filter((n): n is CapabilityName => n !== 'version' && n !== 'major' && n !== 'minor' && !caps[n]);
  if (missing.length === 0) return;
  const list = missing.map((n) => `${CAPABILITY_INFO[n].what} (${CAPABILITY_INFO[n].needs})`);
  const message = `ClickHouse ${caps.version} cannot run ${mode}: it lacks ${list.join('; ')}. ` +
    'Run a ClickHouse release that has it, or use the embedded engine (chdb).';
  throw new EngineUnsupportedError(message, missing, caps.version, mode);
}
