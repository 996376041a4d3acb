// Which databases and tables a statement may name. A replicated statement names only its group's own
// database (unqualified names run there); `_rh_*` tables are RaftHouse's bookkeeping, never a source
// or a destination; reads see the served user database and ClickHouse's system catalogs only.

import type { TableRef } from './ast.js';
import { badArguments, denied } from './errors.js';
import { INTERNAL_TABLE_PREFIX } from '../statemachine/naming.js';

export interface WriteScope {
  /** Qualifiers that name the group's own database (the state machine: rh_g<g>; the gateway: none). */
  own: ReadonlySet<string>;
  /** Further qualifiers accepted for an INSERT's target only (the user database: mapped to the group's). */
  insertTarget: ReadonlySet<string>;
  /** The user database, to explain a refused `<userDb>.t` (the gateway's scope). */
  userDb?: string;
}

export function checkInternalName(table: string): void {
  if (table.startsWith(INTERNAL_TABLE_PREFIX)) denied(`tables named ${INTERNAL_TABLE_PREFIX}* are RaftHouse's own`);
}

export function checkWriteName(ref: TableRef, scope: WriteScope, insertTarget = false): void {
  checkInternalName(ref.table);
  const db = ref.database;
  if (db === undefined || scope.own.has(db) || (insertTarget && scope.insertTarget.has(db))) return;
  if (scope.userDb !== undefined && db === scope.userDb) {
    badArguments(`name the table without a database (${ref.table}, not ${db}.${ref.table}): the statement runs in the database that holds its table`);
  }
  denied(`a RaftHouse statement names only its own database, not ${db}`);
}

/** Databases a read may name besides the user database: ClickHouse's catalogs. */
export const READ_DATABASES: ReadonlySet<string> = new Set(['system', 'information_schema', 'INFORMATION_SCHEMA']);

export function checkReadName(ref: TableRef, currentDb: string, userDb: string): void {
  checkInternalName(ref.table);
  const db = ref.database ?? currentDb;
  if (db !== userDb && !READ_DATABASES.has(db)) denied(`reads may name the database ${userDb} and the system catalogs, not ${db}`);
}

export function checkReadDatabase(db: string, userDb: string): void {
  if (db !== userDb && !READ_DATABASES.has(db)) denied(`reads may name the database ${userDb} and the system catalogs, not ${db}`);
}
