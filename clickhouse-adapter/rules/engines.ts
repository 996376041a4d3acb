// Table engines and table-level settings a group table may use, and the ALTER commands RaftHouse
// replicates. Allow-lists: anything ClickHouse adds later is refused until someone argues it in here.

import { badArguments, denied } from './errors.js';

/**
 * - The non-replicated MergeTree family: RaftHouse's exactly-once apply rests on its insert
 *   deduplication (insert_deduplication_token + non_replicated_deduplication_window), and its merges
 *   give every replica the same rows (the engine's own semantics, independent of part layout).
 *   Not Replicated* (ZooKeeper: RaftHouse is the replication), not GraphiteMergeTree (its rollup rules
 *   come from the server's configuration, which may differ per replica).
 * - Null: keeps nothing, so nothing can diverge; it is the usual source table of materialized views.
 * Refused with reasons: Memory (its rows vanish on restart while the applied index stays: the replica
 * would silently lack them), Log / TinyLog / StripeLog / Set / Join (no insert deduplication: a
 * redelivered entry would apply twice), Buffer / Merge / Distributed / Dictionary / View-like engines
 * (read or write other tables, possibly of other databases), and every engine with external reach
 * (File, URL, S3, HDFS, MySQL, PostgreSQL, ODBC, JDBC, Kafka, Executable, ...).
 */
export const ALLOWED_ENGINES: ReadonlySet<string> = new Set([
  'MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree', 'CollapsingMergeTree',
  'VersionedCollapsingMergeTree', 'CoalescingMergeTree', 'Null',
]);

export function checkEngine(name: string | undefined): void {
  if (name === undefined) {
    badArguments('give the table ENGINE explicitly (RaftHouse does not use default_table_engine): e.g. ENGINE = MergeTree ORDER BY ...');
  }
  if (!ALLOWED_ENGINES.has(name)) {
    denied(`the table engine ${name} is not allowed for RaftHouse tables (allowed: ${[...ALLOWED_ENGINES].join(', ')})`);
  }
}

/**
 * MergeTree settings a table may set: layout and merge tuning that changes neither the rows nor where
 * they are stored. Not disk / storage_policy (other disks, possibly remote: `disk = disk(type = s3 ...)`),
 * nothing about replication or ZooKeeper, and not parts_to_throw_insert / parts_to_delay_insert /
 * max_parts_in_total (an insert would fail or stall on one replica and not on another, as merges run).
 * rafthouse_shard_key is the gateway's (it becomes a COMMENT).
 */
export const ALLOWED_TABLE_SETTINGS: ReadonlySet<string> = new Set([
  'index_granularity', 'index_granularity_bytes', 'min_index_granularity_bytes', 'enable_mixed_granularity_parts',
  'min_bytes_for_wide_part', 'min_rows_for_wide_part', 'allow_nullable_key', 'ttl_only_drop_parts',
  'merge_with_ttl_timeout', 'non_replicated_deduplication_window', 'deduplicate_merge_projection_mode',
  'lightweight_mutation_projection_mode', 'allow_experimental_replacing_merge_with_cleanup',
  'max_bytes_to_merge_at_max_space_in_pool', 'max_bytes_to_merge_at_min_space_in_pool', 'merge_max_block_size',
  'min_age_to_force_merge_seconds', 'min_age_to_force_merge_on_partition_only', 'old_parts_lifetime',
  'rafthouse_shard_key',
]);

export function checkTableSettings(names: string[]): void {
  for (const n of names) {
    if (!ALLOWED_TABLE_SETTINGS.has(n)) {
      denied(`the table setting ${n} is not allowed for RaftHouse tables (allowed: ${[...ALLOWED_TABLE_SETTINGS].join(', ')})`);
    }
  }
}

/**
 * ALTER commands (EXPLAIN AST's AlterCommand names) that change only the table's own definition or
 * rows, the same way on every replica. Not: FREEZE / UNFREEZE (files in shadow/), DETACH / ATTACH /
 * FETCH / MOVE / REPLACE PARTITION and DROP DETACHED (they move parts between the table, its detached/
 * directory, other tables or disks — per-replica state the log does not carry), MODIFY_REFRESH
 * (refreshable views run on timers), MODIFY_DATABASE_SETTING.
 * DETACH PARTITION prints as DROP_PARTITION: statements.ts tells them apart on the canonical text.
 */
export const ALLOWED_ALTER_COMMANDS: ReadonlySet<string> = new Set([
  'ADD_COLUMN', 'DROP_COLUMN', 'MODIFY_COLUMN', 'COMMENT_COLUMN', 'RENAME_COLUMN', 'MATERIALIZE_COLUMN', 'CLEAR_COLUMN',
  'MODIFY_ORDER_BY', 'MODIFY_SAMPLE_BY', 'REMOVE_SAMPLE_BY',
  'ADD_INDEX', 'DROP_INDEX', 'MATERIALIZE_INDEX', 'CLEAR_INDEX',
  'ADD_CONSTRAINT', 'DROP_CONSTRAINT',
  'ADD_PROJECTION', 'DROP_PROJECTION', 'MATERIALIZE_PROJECTION', 'CLEAR_PROJECTION',
  'DROP_PARTITION', 'DELETE', 'UPDATE',
  'MODIFY_TTL', 'REMOVE_TTL', 'MATERIALIZE_TTL',
  'MODIFY_SETTING', 'RESET_SETTING', 'MODIFY_QUERY', 'MODIFY_COMMENT',
]);

export function checkAlterCommand(name: string): void {
  if (!ALLOWED_ALTER_COMMANDS.has(name)) denied(`ALTER ... ${name.replace(/_/g, ' ')} is not allowed through RaftHouse`);
}
