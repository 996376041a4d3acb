// ClickHouse's error codes: the one table of name -> number every part of RaftHouse uses (the engines,
// the rules, the state machine, the gateway), with ClickHouse's own names and numbers
// (src/Common/ErrorCodes.cpp; test/unit/clickhouse/codes.test.ts checks each against chdb's
// errorCodeToName), and the one way to write ClickHouse's exception text:
//   "Code: N. DB::Exception: <message>. (NAME)"
// 18.16 does not put the name in its messages and clients look for it, so we map numbers to names.

export const CODES = {
  UNSUPPORTED_METHOD: 1,
  CANNOT_PARSE_TEXT: 6,
  THERE_IS_NO_COLUMN: 8,
  NOT_FOUND_COLUMN_IN_BLOCK: 10,
  DUPLICATE_COLUMN: 15,
  NO_SUCH_COLUMN_IN_TABLE: 16,
  NUMBER_OF_COLUMNS_DOESNT_MATCH: 20,
  CANNOT_PARSE_ESCAPE_SEQUENCE: 25,
  CANNOT_PARSE_QUOTED_STRING: 26,
  CANNOT_PARSE_INPUT_ASSERTION_FAILED: 27,
  BAD_ARGUMENTS: 36,
  CANNOT_PARSE_DATE: 38,
  CANNOT_PARSE_DATETIME: 41,
  NUMBER_OF_ARGUMENTS_DOESNT_MATCH: 42,
  ILLEGAL_TYPE_OF_ARGUMENT: 43,
  ILLEGAL_COLUMN: 44,
  UNKNOWN_FUNCTION: 46,
  UNKNOWN_IDENTIFIER: 47,
  NOT_IMPLEMENTED: 48,
  UNKNOWN_TYPE: 50,
  TYPE_MISMATCH: 53,
  UNKNOWN_STORAGE: 56,
  TABLE_ALREADY_EXISTS: 57,
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  UNKNOWN_AGGREGATE_FUNCTION: 63,
  ARGUMENT_OUT_OF_BOUND: 69,
  RECEIVED_ERROR_FROM_REMOTE_IO_SERVER: 86,
  CANNOT_CONVERT_TYPE: 70,
  CANNOT_PARSE_NUMBER: 72,
  UNKNOWN_FORMAT: 73,
  CANNOT_OPEN_FILE: 76,
  UNKNOWN_TYPE_OF_QUERY: 78,
  UNKNOWN_DATABASE: 81,
  DATABASE_ALREADY_EXISTS: 82,
  UNKNOWN_SETTING: 115,
  INCORRECT_DATA: 117,
  UNKNOWN_DIRECTION_OF_SORTING: 152,
  TIMEOUT_EXCEEDED: 159,
  READONLY: 164,
  UNKNOWN_USER: 192,
  WRONG_PASSWORD: 193,
  REQUIRED_PASSWORD: 194,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  SOCKET_TIMEOUT: 209,
  NETWORK_ERROR: 210,
  ABORTED: 236,
  MEMORY_LIMIT_EXCEEDED: 241,
  TABLE_IS_READ_ONLY: 242,
  NOT_ENOUGH_SPACE: 243,
  TOO_MANY_PARTS: 252,
  CANNOT_DECOMPRESS: 271,
  DATABASE_ACCESS_DENIED: 291,
  TOO_MANY_BYTES: 307,
  UNKNOWN_DATABASE_ENGINE: 336,
  SUPPORT_IS_DISABLED: 344,
  INTO_OUTFILE_NOT_ALLOWED: 358,
  SESSION_NOT_FOUND: 372,
  SESSION_IS_LOCKED: 373,
  INVALID_SESSION_TIMEOUT: 374,
  NO_COMMON_TYPE: 386,
  CANNOT_GET_CREATE_TABLE_QUERY: 390,
  QUERY_WAS_CANCELLED: 394,
  FUNCTION_THROW_IF_VALUE_IS_NON_ZERO: 395,
  TOO_MANY_ROWS_OR_BYTES: 396,
  SYSTEM_ERROR: 425,
  CANNOT_COMPILE_REGEXP: 427,
  CANNOT_SCHEDULE_TASK: 439,
  SETTING_CONSTRAINT_VIOLATION: 452,
  UNKNOWN_QUERY_PARAMETER: 456,
  CANNOT_GET_CREATE_DICTIONARY_QUERY: 487,
  ACCESS_ENTITY_NOT_FOUND: 492,
  ACCESS_ENTITY_ALREADY_EXISTS: 493,
  ACCESS_DENIED: 497,
  UNKNOWN_ROLE: 511,
  SET_NON_GRANTED_ROLE: 512,
  AUTHENTICATION_FAILED: 516,
  NO_REMOTE_SHARD_AVAILABLE: 519,
  FUNCTION_ALREADY_EXISTS: 609,
  CANNOT_EXTRACT_TABLE_STRUCTURE: 636,
  /** ClickHouse's code for coordination (Keeper) failures: the closest match for "raftd could not commit". */
  KEEPER_EXCEPTION: 999,
  POCO_EXCEPTION: 1000,
  STD_EXCEPTION: 1001,
  UNKNOWN_EXCEPTION: 1002,
} as const;

export type CodeName = keyof typeof CODES;

const NAMES: ReadonlyMap<number, CodeName> = new Map(Object.entries(CODES).map(([name, code]) => [code, name as CodeName]));

/** ClickHouse's name for a numeric code, or `CODE_<n>` for one this table does not hold. */
export function codeName(code: number): string {
  return NAMES.get(code) ?? `CODE_${code}`;
}

/** Numbers of the given names, as a set (the lists of codes that one rule treats alike). */
export function codeSet(...names: CodeName[]): ReadonlySet<number> {
  return new Set(names.map((n) => CODES[n]));
}

/**
 * ClickHouse's exception text: `Code: N. DB::Exception: <message>. (NAME)`, and ` (version V)` plus a
 * line break when `version` is given (the HTTP answer's body). `name` defaults to the table's.
 */
export function exceptionText(code: number, message: string, opts: { name?: string; version?: string } = {}): string {
  const text = `Code: ${code}. DB::Exception: ${message}. (${opts.name ?? codeName(code)})`;
  return opts.version === undefined ? text : `${text} (version ${opts.version})\n`;
}
