// Functions and table functions: what a statement may call.
//
// Table functions are an ALLOW-list: only those that compute rows from their arguments alone (no file,
// network, other database, process or server state). Reads may call a few more than writes (random
// generators), and an operator may open specific others for reads (`rafthouse --allow-table-functions`);
// writes never: a replicated statement must give the same rows on every replica from the log alone.
//
// Scalar functions: ClickHouse's own flag (system.functions.deterministic) decides what a write may
// call; a few functions reach outside the database whatever that flag says, and are refused everywhere.

import type { ClickHouseEngine } from '../engine/types.js';
import { queryRows } from '../engine/sql.js';
import { significant, tokenize } from '../sql/scanner.js';
import { denied } from './errors.js';

/**
 * Pure table functions a replicated statement may read from. Not numbers_mt / zeros_mt (row order
 * depends on threads), not generateRandom (random unless seeded), not format / input (they parse data
 * with the Values format, which evaluates expressions: file() inside the data would run).
 */
export const WRITE_TABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  'numbers', 'zeros', 'values', 'null', 'generate_series', 'generateseries', 'primes', 'view',
]);

/** Reads add the multi-threaded and random generators (a read's result is the caller's alone). */
export const READ_TABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  ...WRITE_TABLE_FUNCTIONS, 'numbers_mt', 'zeros_mt', 'generaterandom',
]);

/**
 * Scalar functions that reach outside the statement's own tables: a server file (file), a model file
 * (catboostEvaluate), dictionaries (dictGet & co. — RaftHouse creates none; any there would come from
 * server configuration or another database), Join tables of any database (joinGet), other databases'
 * metadata (hasColumnInTable). Lower case; matched case-insensitively.
 */
const EXTERNAL_FUNCTIONS: ReadonlySet<string> = new Set([
  'file', 'catboostevaluate', 'joinget', 'joingetornull', 'hascolumnintable',
]);
const EXTERNAL_FUNCTION_RE = /^dict(get|has|isin)/i;

export function isExternalFunction(name: string): boolean {
  const lower = name.toLowerCase();
  return EXTERNAL_FUNCTIONS.has(lower) || EXTERNAL_FUNCTION_RE.test(lower);
}

export function checkTableFunction(name: string, allowed: ReadonlySet<string>, where: string): void {
  if (!allowed.has(name.toLowerCase())) {
    denied(`the table function ${name}() is not allowed ${where} (RaftHouse allows ${[...allowed].sort().join(', ')})`);
  }
}

export function checkScalarFunction(name: string, allowed: ReadonlySet<string> = new Set()): void {
  if (isExternalFunction(name) && !allowed.has(name.toLowerCase())) {
    denied(`${name}() reaches outside the database (a server file, a dictionary, another table's storage) and is not allowed`);
  }
}

export function isNondeterministic(name: string, nondeterministic: ReadonlySet<string>): boolean {
  return nondeterministic.has(name) || nondeterministic.has(name.toLowerCase());
}

/** Loads the names of non-deterministic functions (lower case for case-insensitive ones, both forms kept). */
export async function loadNondeterministic(engine: ClickHouseEngine): Promise<Set<string>> {
  const list = await queryRows<{ name: string; ci: number }>(engine,
    'SELECT name, case_insensitive AS ci FROM system.functions WHERE deterministic = 0');
  const out = new Set<string>();
  for (const r of list) {
    out.add(r.name);
    out.add(r.name.toLowerCase());
  }
  return out;
}

/**
 * Inline VALUES rows are evaluated by ClickHouse (the gateway evaluates them once, with ClickHouse's
 * Values parser, before proposing literal rows): they may call functions. Refused here: functions that
 * reach outside the database, and subqueries (a scalar SELECT inside a row could read any table).
 */
export function checkValuesData(text: string): void {
  const toks = significant(tokenize(text));
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.kind !== 'word') continue;
    const w = t.text.toUpperCase();
    if (w === 'SELECT' || w === 'WITH') denied('a subquery inside VALUES rows');
    if (toks[i + 1]?.text === '(') checkScalarFunction(t.text);
  }
}
