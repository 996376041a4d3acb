// The one naming rule between Raft groups and ClickHouse databases. Everything that needs a physical
// name (the adapter, the gateway, read views, the checksum tool) goes through these functions.
//
//   rh_g<g>                  the data database of group g (all the group's user tables)
//   rh_g<g>._rh_applied      adapter bookkeeping inside it: the applied index (lives WITH the data, so
//                            a database swap on snapshot restore moves data and index together)
//   rh_g<g>._rh_settings     settings changes applied through the log (kind "settings")
//   rh_snap_g<g>_<index>     a prepared snapshot (hard-linked clones of the group's tables)
//   rh_restore_g<g>_<index>  a snapshot being restored (swapped in by RENAME when complete)
//   rh_old_g<g>_<index>      the replaced database during a restore (dropped right after)
//
// A read view over all groups must match data databases only: DATA_DB_REGEXP is anchored so that the
// snapshot / restore / old databases never match it.

export const DATA_DB_REGEXP = '^rh_g[0-9]+$';
/** Tables whose name starts with this are adapter bookkeeping, never user data. */
export const INTERNAL_TABLE_PREFIX = '_rh_';
export const APPLIED_TABLE = '_rh_applied';
export const SETTINGS_TABLE = '_rh_settings';
/** Views and other definitions a restore creates right after its database swap (crash-safe list). */
export const PENDING_DDL_TABLE = '_rh_pending_ddl';
/** Written into a snapshot database last: its rows describe the snapshot and mark it complete. */
export const SNAPSHOT_META_TABLE = '_rh_snapshot';

export function checkGroup(group: number): void {
  if (!Number.isSafeInteger(group) || group < 0) throw new RangeError(`group must be a non-negative integer, got ${group}`);
}

export function dataDb(group: number): string {
  checkGroup(group);
  return `rh_g${group}`;
}

export function snapshotDb(group: number, index: number): string {
  checkGroup(group);
  return `rh_snap_g${group}_${index}`;
}

export function restoreDb(group: number, index: number): string {
  checkGroup(group);
  return `rh_restore_g${group}_${index}`;
}

export function oldDb(group: number, index: number): string {
  checkGroup(group);
  return `rh_old_g${group}_${index}`;
}

const DATA_RE = /^rh_g(\d+)$/;
const SNAP_RE = /^rh_snap_g(\d+)_(\d+)$/;
const RESTORE_RE = /^rh_restore_g(\d+)_(\d+)$/;
const OLD_RE = /^rh_old_g(\d+)_(\d+)$/;

export type ParsedDbName =
  | { kind: 'data'; group: number }
  | { kind: 'snapshot' | 'restore' | 'old'; group: number; index: number };

/** Classifies a database name under the rule above; undefined for databases that are not ours. */
export function parseDbName(name: string): ParsedDbName | undefined {
  let m = DATA_RE.exec(name);
  if (m) return { kind: 'data', group: Number(m[1]) };
  for (const [re, kind] of [[SNAP_RE, 'snapshot'], [RESTORE_RE, 'restore'], [OLD_RE, 'old']] as const) {
    m = re.exec(name);
    if (m) return { kind, group: Number(m[1]), index: Number(m[2]) };
  }
  return undefined;
}

export function isInternalTable(name: string): boolean {
  return name.startsWith(INTERNAL_TABLE_PREFIX);
}
