// Read limits: what one query on either endpoint may use, per gateway user. The gateway sets them as
// the query's settings, refuses a client's attempt to raise them (URL parameters and SETTINGS clauses
// alike, Code 452 as ClickHouse's settings constraints do), and backs the time limit with a KILL of
// its own, so a limit holds whatever the statement says.

import type { Settings } from '../engine/types.js';
import { CODES } from '../engine/codes.js';
import { GatewayError } from './errors.js';
import { identifierName, tokenize } from '../sql/scanner.js';

export interface ReadLimits {
  /** Seconds; ClickHouse's max_execution_time. 0: none. */
  maxExecutionTime: number;
  /** Bytes per query; ClickHouse's max_memory_usage. 0: none. */
  maxMemoryUsage: number;
  /** Rows of a result; max_result_rows. 0: none. */
  maxResultRows: number;
  /** Bytes of a result (ClickHouse's max_result_bytes, and the response body the gateway sends). 0: none. */
  maxResultBytes: number;
}

export const DEFAULT_READ_LIMITS: ReadLimits = {
  maxExecutionTime: 60,
  maxMemoryUsage: 4 * 1024 ** 3,
  maxResultRows: 0,
  maxResultBytes: 1024 ** 3,
};

/** ClickHouse setting name -> the limit that caps it. */
const LIMITED: ReadonlyMap<string, keyof ReadLimits> = new Map([
  ['max_execution_time', 'maxExecutionTime'],
  ['max_memory_usage', 'maxMemoryUsage'],
  ['max_result_rows', 'maxResultRows'],
  ['max_result_bytes', 'maxResultBytes'],
]);

/** Settings that would lift a limit some other way; a client may not set them at all. */
// allow_custom_error_code_in_throwif: a client's throwIf could otherwise raise a network error code
// with a network error's text, which a placed read takes for a failed leg and retries (gateway.ts, legFailure).
const FORBIDDEN = new Set(['max_memory_usage_for_user', 'max_server_memory_usage', 'max_execution_time_leaf', 'readonly', 'allow_custom_error_code_in_throwif']);

function violation(name: string, limit: number): GatewayError {
  return new GatewayError(CODES.SETTING_CONSTRAINT_VIOLATION,
    `Setting ${name} shouldn't be greater than ${limit} (the gateway's limit for this user)`);
}

function checkValue(name: string, raw: string, limit: number): number {
  const v = Number(raw.replace(/^'|'$/g, ''));
  // 0 means "no limit" in ClickHouse: as much a raise as a big number.
  if (!Number.isFinite(v) || v < 0 || (limit > 0 && (v === 0 || v > limit))) throw violation(name, limit);
  return v;
}

/**
 * The settings a read runs with: the client's own, checked against `limits`, then every limit the
 * client did not lower itself. Throws 452 for a client setting above its limit (or 0, "unlimited").
 */
export function readSettings(client: Settings | undefined, limits: ReadLimits): Settings {
  const out: Settings = {};
  for (const [k, v] of Object.entries(client ?? {})) {
    const name = k.toLowerCase();
    if (name === 'readonly' && (String(v) === '1' || String(v) === '2')) continue; // the session is readonly=2 anyway
    if (FORBIDDEN.has(name)) throw new GatewayError(CODES.READONLY, `Cannot modify '${k}' setting in readonly mode`);
    const limit = LIMITED.get(name);
    out[k] = limit ? checkValue(k, String(v), limits[limit]) : v;
  }
  for (const [name, key] of LIMITED) {
    if (limits[key] > 0 && !Object.keys(out).some((k) => k.toLowerCase() === name)) out[name] = limits[key];
  }
  return out;
}

/**
 * Refuses a statement whose own SETTINGS (anywhere: subqueries, table functions) raise a limit. Works
 * on tokens, so names inside strings or comments do not count; a limited name followed by `=` is
 * taken as a setting wherever it appears (a column of that name compared to a big number is refused
 * too, which costs nothing real).
 */
export function checkStatementSettings(sql: string, limits: ReadLimits): void {
  const tokens = tokenize(sql).filter((t) => t.kind !== 'space' && t.kind !== 'comment');
  for (let i = 0; i + 2 < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'word' && t.kind !== 'quoted') continue;
    const name = identifierName(t.text).toLowerCase();
    if (tokens[i + 1]!.text !== '=') continue;
    if (FORBIDDEN.has(name) && name !== 'readonly') throw new GatewayError(CODES.READONLY, `Cannot modify '${name}' setting in readonly mode`);
    const limit = LIMITED.get(name);
    if (!limit) continue;
    const value = tokens[i + 2]!;
    const after = tokens[i + 3];
    // A literal, and only a literal: `= 10 * 1000` must not pass as 10.
    if ((value.kind !== 'number' && value.kind !== 'string') || (after && after.kind === 'punct' && after.text !== ',' && after.text !== ')' && after.text !== ';')) {
      throw violation(name, limits[limit]);
    }
    checkValue(name, value.text, limits[limit]);
  }
}

/** The engine-side deadline backing max_execution_time: the limit plus a second of grace. */
export function killAfterMs(settings: Settings, limits: ReadLimits): number | undefined {
  const own = Number(settings['max_execution_time'] ?? 0);
  const s = own > 0 ? own : limits.maxExecutionTime;
  return s > 0 ? Math.ceil(s * 1000) + 1000 : undefined;
}
