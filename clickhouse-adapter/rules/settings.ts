// Which ClickHouse settings a client may choose, and where (docs/clickhouse.md, "Settings").
//
// An allow-list, not a deny-list. Three places:
// - 'entry': settings an INSERT or DDL entry carries (its own SETTINGS clause or the request's URL
//   settings). They run on the APPLY path of every replica.
// - 'set':   a `SET x = v` statement: stored in the group and a default of every later entry there,
//   so also the apply path.
// - 'read':  settings of a read query (one node, one client).
// On the apply path a setting must give the same result on every replica and must not be able to
// starve apply: no limit (time, memory, rows, threads, block size), no readonly, nothing that reaches
// outside the database. Those are FIXED by RaftHouse (APPLY_SETTINGS) and cannot be overridden. Reads
// may carry limits: they only ever make a read stricter (the runtime caps are another module's).
//
// A refusal answers what a ClickHouse server whose profile has constraints answers: code 452
// SETTING_CONSTRAINT_VIOLATION "Setting x should not be changed", or 115 UNKNOWN_SETTING for a name
// that is no setting name at all. The same function runs in the gateway (refused up front) and in the
// state machine (refused at apply, identically on every replica: it depends on the entry alone).

import { clickHouseError, type ClickHouseError } from '../engine/errors.js';
import { significant, tokenize } from '../sql/scanner.js';

export type SettingsPlace = 'entry' | 'set' | 'read';
export type SettingInput = string | number | boolean;

type ValueRule =
  | { type: 'bool' }
  | { type: 'uint'; max: number }
  | { type: 'float'; min: number; max: number }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'char' }
  | { type: 'text' };

const BOOL: ValueRule = { type: 'bool' };
const uint = (max: number): ValueRule => ({ type: 'uint', max });
const oneOf = (...values: string[]): ValueRule => ({ type: 'enum', values });
const CHAR: ValueRule = { type: 'char' };

/** Settings that change only how data is parsed or how a statement is interpreted: same input, same result. */
const APPLY_SETTINGS_ALLOWED: Readonly<Record<string, ValueRule>> = {
  // input formats (INSERT data)
  input_format_null_as_default: BOOL,
  input_format_skip_unknown_fields: BOOL,
  input_format_defaults_for_omitted_fields: BOOL,
  input_format_allow_errors_num: uint(1_000_000_000),
  input_format_allow_errors_ratio: { type: 'float', min: 0, max: 1 },
  input_format_import_nested_json: BOOL,
  input_format_json_read_numbers_as_strings: BOOL,
  input_format_json_read_bools_as_numbers: BOOL,
  input_format_json_validate_types_from_metadata: BOOL,
  input_format_tsv_empty_as_default: BOOL,
  input_format_tsv_enum_as_number: BOOL,
  input_format_csv_empty_as_default: BOOL,
  input_format_csv_enum_as_number: BOOL,
  input_format_csv_arrays_as_nested_csv: BOOL,
  input_format_csv_trim_whitespaces: BOOL,
  input_format_csv_allow_variable_number_of_columns: BOOL,
  input_format_tsv_allow_variable_number_of_columns: BOOL,
  input_format_with_names_use_header: BOOL,
  input_format_with_types_use_header: BOOL,
  input_format_values_interpret_expressions: BOOL,
  input_format_values_deduce_templates_of_expressions: BOOL,
  input_format_values_accurate_types_of_literals: BOOL,
  format_csv_delimiter: CHAR,
  format_csv_allow_single_quotes: BOOL,
  format_csv_allow_double_quotes: BOOL,
  format_csv_null_representation: { type: 'enum', values: [] }, // any short string: checked below
  format_tsv_null_representation: { type: 'enum', values: [] },
  date_time_input_format: oneOf('basic', 'best_effort', 'best_effort_us'),
  // inserts
  insert_null_as_default: BOOL,
  insert_allow_materialized_columns: BOOL,
  // deduplication of a client's retries: they choose the block id of an insert (statemachine/dedup.ts)
  // and never reach ClickHouse; async_insert is served synchronously
  insert_deduplication_token: { type: 'text' },
  insert_deduplicate: BOOL,
  async_insert: BOOL,
  wait_for_async_insert: BOOL,
  // statement semantics (same statement, same data: same result)
  join_use_nulls: BOOL,
  join_default_strictness: oneOf('ALL', 'ANY', ''),
  any_join_distinct_right_table_keys: BOOL,
  cast_keep_nullable: BOOL,
  transform_null_in: BOOL,
  aggregate_functions_null_for_empty: BOOL,
  union_default_mode: oneOf('ALL', 'DISTINCT', ''),
  data_type_default_nullable: BOOL,
  flatten_nested: BOOL,
  allow_suspicious_low_cardinality_types: BOOL,
  allow_suspicious_codecs: BOOL,
  allow_experimental_object_type: BOOL,
  allow_experimental_json_type: BOOL,
  allow_experimental_variant_type: BOOL,
  allow_experimental_dynamic_type: BOOL,
  enable_json_type: BOOL,
  optimize_throw_if_noop: BOOL,
  enable_lightweight_delete: BOOL,
  allow_experimental_lightweight_delete: BOOL,
};

/** More for reads: output shaping and limits (a limit on a read only ever stops that read). */
const READ_ONLY_ALLOWED: Readonly<Record<string, ValueRule>> = {
  max_execution_time: uint(86_400),
  max_result_rows: uint(Number.MAX_SAFE_INTEGER),
  max_result_bytes: uint(Number.MAX_SAFE_INTEGER),
  result_overflow_mode: oneOf('throw', 'break'),
  max_rows_to_read: uint(Number.MAX_SAFE_INTEGER),
  max_bytes_to_read: uint(Number.MAX_SAFE_INTEGER),
  read_overflow_mode: oneOf('throw', 'break'),
  max_memory_usage: uint(Number.MAX_SAFE_INTEGER),
  max_threads: uint(1024),
  max_block_size: uint(10_000_000),
  timeout_overflow_mode: oneOf('throw', 'break'),
  extremes: BOOL,
  totals_mode: oneOf('before_having', 'after_having_exclusive', 'after_having_inclusive', 'after_having_auto'),
  use_query_cache: BOOL,
  final: BOOL,
  limit: uint(Number.MAX_SAFE_INTEGER),
  offset: uint(Number.MAX_SAFE_INTEGER),
  send_progress_in_http_headers: BOOL,
  date_time_output_format: oneOf('simple', 'iso', 'unix_timestamp'),
  output_format_json_quote_64bit_integers: BOOL,
  output_format_json_quote_64bit_floats: BOOL,
  output_format_json_quote_denormals: BOOL,
  output_format_json_quote_decimals: BOOL,
  output_format_json_named_tuples_as_objects: BOOL,
  output_format_json_array_of_rows: BOOL,
  output_format_json_validate_utf8: BOOL,
  output_format_write_statistics: BOOL,
  output_format_pretty_max_rows: uint(Number.MAX_SAFE_INTEGER),
  output_format_pretty_color: oneOf('0', '1', 'auto'),
  output_format_csv_crlf_end_of_line: BOOL,
  output_format_decimal_trailing_zeros: BOOL,
  output_format_tsv_crlf_end_of_line: BOOL,
  output_format_arrow_string_as_string: BOOL,
  output_format_parquet_string_as_string: BOOL,
};

/**
 * What the apply path runs with, whatever the entry or the group's SETs say: limits off (a replica's
 * own limits would make the same entry succeed here and fail there), so that apply only fails for a
 * reason the entry and the data give. The deterministic bounds of APPLY_BOUNDS come on top.
 */
export const APPLY_SETTINGS: Readonly<Record<string, string | number>> = {
  readonly: 0,
  max_execution_time: 0,
  max_memory_usage: 0,
  max_memory_usage_for_user: 0,
  max_rows_to_read: 0,
  max_bytes_to_read: 0,
  max_result_rows: 0,
  max_result_bytes: 0,
  max_rows_to_group_by: 0,
  max_rows_to_sort: 0,
  max_rows_in_join: 0,
  max_rows_in_set: 0,
  max_rows_in_distinct: 0,
  min_execution_speed: 0,
  max_execution_speed: 0,
  timeout_before_checking_execution_speed: 0,
  max_partitions_per_insert_block: 100,
  max_columns_to_read: 0,
  max_temporary_columns: 0,
  max_ast_depth: 1000,
  max_ast_elements: 50000,
  max_expanded_ast_elements: 500000,
  max_query_size: 262144,
};

/**
 * The deterministic bound on what an INSERT ... SELECT (and CREATE ... AS SELECT) may read on apply:
 * the SELECT's rows read from its sources (a table function such as numbers() knows its size up front:
 * refused before a row is produced). TOO_MANY_ROWS (158) / TOO_MANY_BYTES (307) are entry errors: every
 * replica holds the same data, so every replica hits the bound (docs/design-notes.md on the margin).
 */
export const APPLY_READ_BOUND_ROWS = 100_000_000;
export const APPLY_READ_BOUND_BYTES = 16 * 1024 * 1024 * 1024;
export const APPLY_BOUNDS: Readonly<Record<string, string | number>> = {
  max_rows_to_read: APPLY_READ_BOUND_ROWS,
  max_bytes_to_read: APPLY_READ_BOUND_BYTES,
  read_overflow_mode: 'throw',
};

function refused(name: string, why: string): ClickHouseError {
  const message = `Setting ${name} should not be changed: ${why}`;
  return clickHouseError('SETTING_CONSTRAINT_VIOLATION', message);
}

function badValue(name: string, value: SettingInput, want: string): ClickHouseError {
  const message = `Setting ${name} shouldn't be ${JSON.stringify(value)}: ${want}`;
  return clickHouseError('SETTING_CONSTRAINT_VIOLATION', message);
}

function checkValue(name: string, value: SettingInput, rule: ValueRule): void {
  const s = typeof value === 'boolean' ? (value ? '1' : '0') : String(value).trim();
  if (s.length > 256) throw badValue(name, s.slice(0, 32) + '...', 'too long');
  switch (rule.type) {
    case 'bool':
      if (!/^(0|1|true|false)$/i.test(s)) throw badValue(name, value, 'a boolean (0, 1, true, false) is expected');
      return;
    case 'uint': {
      const n = Number(s);
      if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n > rule.max) throw badValue(name, value, `an integer in 0..${rule.max} is expected`);
      return;
    }
    case 'float': {
      const n = Number(s);
      if (s === '' || !Number.isFinite(n) || n < rule.min || n > rule.max) throw badValue(name, value, `a number in ${rule.min}..${rule.max} is expected`);
      return;
    }
    case 'text':
      return; // any string up to the length above
    case 'char':
      if ([...s].length !== 1 || s === '\n' || s === '\r') throw badValue(name, value, 'one character is expected');
      return;
    case 'enum':
      // An empty list: any short printable string (null representations).
      if (rule.values.length === 0) {
        if (!/^[\x20-\x7e]{0,16}$/.test(s)) throw badValue(name, value, 'up to 16 printable ASCII characters are expected');
        return;
      }
      if (!rule.values.some((v) => v.toLowerCase() === s.replace(/^'(.*)'$/, '$1').toLowerCase())) {
        throw badValue(name, value, `one of ${rule.values.map((v) => JSON.stringify(v)).join(', ')} is expected`);
      }
  }
}

/** The rule for `name` at `where`, or undefined when the setting may not be changed there. */
export function settingRule(name: string, where: SettingsPlace): ValueRule | undefined {
  const own = Object.prototype.hasOwnProperty;
  if (own.call(APPLY_SETTINGS_ALLOWED, name)) return APPLY_SETTINGS_ALLOWED[name];
  if (where === 'read' && own.call(READ_ONLY_ALLOWED, name)) return READ_ONLY_ALLOWED[name];
  return undefined;
}

/** Every name the allow-list knows (tests check that ClickHouse knows them too). */
export function allowedSettingNames(where: SettingsPlace): string[] {
  return [...Object.keys(APPLY_SETTINGS_ALLOWED), ...(where === 'read' ? Object.keys(READ_ONLY_ALLOWED) : [])].sort();
}

/**
 * Throws a ClickHouseError (452 SETTING_CONSTRAINT_VIOLATION, 115 UNKNOWN_SETTING) for the first
 * setting that may not be changed at `where`, or whose value is out of its bounds.
 */
export function checkSettings(settings: Record<string, SettingInput>, where: SettingsPlace): void {
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) {
      const message = `Unknown setting ${JSON.stringify(name.slice(0, 64))}`;
      throw clickHouseError('UNKNOWN_SETTING', message);
    }
    const rule = settingRule(name, where);
    if (!rule) {
      throw refused(name, where === 'read'
        ? 'RaftHouse does not let a read change it'
        : 'RaftHouse fixes it on the apply path, where every replica must do the same thing (docs/clickhouse.md, "Settings")');
    }
    checkValue(name, value, rule);
  }
}

/**
 * Query-level `SETTINGS a = 1, ...` clauses anywhere in a statement's text (subqueries too), by tokens:
 * strings, quoted names and comments never count. `afterSelectOnly`: only clauses after a SELECT or
 * WITH (a CREATE's table-engine SETTINGS come before its AS SELECT and are not query settings).
 * A value that is not a literal is returned as its token text (then refused by its rule).
 */
export function settingsInSql(sql: string, afterSelectOnly = false): Record<string, string | number> {
  const toks = significant(tokenize(sql));
  const out: Record<string, string | number> = {};
  let seenSelect = false;
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    if (t.kind !== 'word') continue;
    const w = t.text.toUpperCase();
    if (w === 'SELECT' || w === 'WITH') seenSelect = true;
    if (w !== 'SETTINGS' || (afterSelectOnly && !seenSelect)) continue;
    let j = k + 1;
    while (toks[j] && (toks[j]!.kind === 'word' || toks[j]!.kind === 'quoted') && toks[j + 1]?.text === '=') {
      const nameTok = toks[j]!;
      const name = nameTok.kind === 'quoted' ? nameTok.text.slice(1, -1) : nameTok.text;
      let v = toks[j + 2];
      let neg = '';
      if (v?.text === '-') { neg = '-'; v = toks[j + 3]; j++; }
      if (!v) break;
      out[name] = v.kind === 'string' ? v.text.slice(1, -1) : v.kind === 'number' && /^-?\d+(\.\d+)?$/.test(neg + v.text) ? Number(neg + v.text) : neg + v.text;
      j += 3;
      if (toks[j]?.text !== ',') break;
      j++;
    }
  }
  return out;
}
