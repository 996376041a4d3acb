// What a read (either endpoint) may touch: the served user database (its read views) and ClickHouse's
// system catalogs; pure table functions only, plus those an operator opened with
// `rafthouse --allow-table-functions`; no INTO OUTFILE; never a `_rh_*` table or a RaftHouse-internal
// database (rh_g<g>, snapshots, the gateway's scratch database).

import type { AstNode, ParsedStatement } from './ast.js';
import { canonicalTokens, tableRef, walk } from './ast.js';
import { denied } from './errors.js';
import { READ_TABLE_FUNCTIONS } from './functions.js';
import { checkInternalName, checkReadDatabase, checkReadName } from './names.js';
import { checkFileClauses, checkTree } from './tree.js';

export interface ReadContext {
  /** The database unqualified names resolve to (the request's). */
  database: string;
  /** The database RaftHouse serves. */
  userDb: string;
  /** Table (and scalar) functions an operator opened for reads, lower case. */
  allowFunctions?: ReadonlySet<string>;
}

/** Throws RuleError when the read reaches outside what reads may touch. */
export function checkRead(stmt: ParsedStatement, ctx: ReadContext): void {
  checkFileClauses(canonicalTokens(stmt));
  checkReadDatabase(ctx.database, ctx.userDb);
  const allowed = ctx.allowFunctions?.size ? new Set([...READ_TABLE_FUNCTIONS, ...ctx.allowFunctions]) : READ_TABLE_FUNCTIONS;
  checkTree(stmt.ast, {
    tableFunctions: allowed,
    where: 'in a read',
    ...(ctx.allowFunctions ? { scalarAllowed: ctx.allowFunctions } : {}),
    table: (ref) => checkReadName(ref, ctx.database, ctx.userDb),
  });
  checkShowNames(stmt.ast, ctx);
  // EXPLAIN of a write builds its storage (INSERT INTO FUNCTION file(...), CREATE ... ENGINE = URL):
  // reads explain reads only.
  walk(stmt.ast, (n) => {
    if (WRITE_NODES.has(n.type)) denied(`EXPLAIN of a ${n.type}: reads may explain reads only`);
  });
}

/**
 * A statement that changes only a client session's own state (CREATE TEMPORARY TABLE, INSERT into or
 * DROP of one, gateway/sessions.ts): its expressions get a read's reach (no file clauses, pure table
 * and scalar functions only unless opened, no internal names), since they run on the node like a read.
 */
export function checkSessionStatement(stmt: ParsedStatement, ctx: ReadContext): void {
  checkFileClauses(canonicalTokens(stmt));
  checkReadDatabase(ctx.database, ctx.userDb);
  const allowed = ctx.allowFunctions?.size ? new Set([...READ_TABLE_FUNCTIONS, ...ctx.allowFunctions]) : READ_TABLE_FUNCTIONS;
  checkTree(stmt.ast, {
    tableFunctions: allowed,
    where: 'in a session',
    ...(ctx.allowFunctions ? { scalarAllowed: ctx.allowFunctions } : {}),
    table: (ref) => checkReadName(ref, ctx.database, ctx.userDb),
  });
}

const WRITE_NODES: ReadonlySet<string> = new Set([
  'InsertQuery', 'CreateQuery', 'AlterQuery', 'DropQuery', 'TruncateQuery', 'Rename', 'OptimizeQuery', 'DeleteQuery',
  'AttachQuery', 'DetachQuery', 'UndropQuery', 'BackupQuery', 'KillQueryQuery',
]);

/** SHOW CREATE TABLE db.t, EXISTS db.t, SHOW TABLES FROM db ...: names printed as plain Identifiers. */
function checkShowNames(ast: AstNode, ctx: ReadContext): void {
  if (!/^(Show|Exists|Check)/.test(ast.type)) return;
  const ids = ast.children.filter((c) => c.type === 'Identifier').map((c) => tableRef(c.arg).table);
  if (ids.length === 0) return;
  if (/^ShowTables|^ShowDictionaries/.test(ast.type)) {
    checkReadDatabase(ids[0]!, ctx.userDb);
    return;
  }
  if (ids.length >= 2) {
    checkReadName({ database: ids[0]!, table: ids[1]! }, ctx.database, ctx.userDb);
  } else {
    checkInternalName(ids[0]!);
  }
}
