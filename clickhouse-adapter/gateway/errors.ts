// Errors the gateway answers with, in ClickHouse's modern HTTP form so stock clients parse them:
//   body   "Code: N. DB::Exception: <message>. (NAME) (version V)\n"
//   header X-ClickHouse-Exception-Code: N, status from ClickHouse's own code -> status table.

import { ClickHouseError, CodedError, EngineError } from '../engine/errors.js';
import { CODES, codeName, codeSet, exceptionText as chExceptionText } from '../engine/codes.js';
import { RaftdError } from '../../adapters/sdk/client.js';
import { RouterError } from '../router/ring.js';

/** An error the gateway itself raises, carrying a ClickHouse code (engine/codes.ts) so clients see a familiar one. */
export class GatewayError extends CodedError {
  override readonly name = 'GatewayError';
}

// Modern ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
const STATUS_400 = codeSet(
  'BAD_ARGUMENTS', 'CANNOT_PARSE_TEXT', 'CANNOT_PARSE_ESCAPE_SEQUENCE', 'CANNOT_PARSE_QUOTED_STRING', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
  'CANNOT_PARSE_DATE', 'CANNOT_PARSE_DATETIME', 'CANNOT_PARSE_NUMBER', 'DUPLICATE_COLUMN', 'ILLEGAL_COLUMN', 'THERE_IS_NO_COLUMN',
  'SYNTAX_ERROR', 'INCORRECT_DATA', 'TYPE_MISMATCH', 'CANNOT_COMPILE_REGEXP', 'SETTING_CONSTRAINT_VIOLATION',
);
const STATUS_403 = codeSet('UNKNOWN_USER', 'WRONG_PASSWORD', 'AUTHENTICATION_FAILED', 'SET_NON_GRANTED_ROLE', 'ACCESS_DENIED', 'DATABASE_ACCESS_DENIED');
const STATUS_404 = codeSet(
  'UNKNOWN_TABLE', 'UNKNOWN_FUNCTION', 'UNKNOWN_IDENTIFIER', 'UNKNOWN_TYPE', 'UNKNOWN_STORAGE', 'UNKNOWN_DATABASE', 'UNKNOWN_SETTING',
  'UNKNOWN_DIRECTION_OF_SORTING', 'UNKNOWN_AGGREGATE_FUNCTION', 'UNKNOWN_FORMAT', 'UNKNOWN_DATABASE_ENGINE', 'UNKNOWN_TYPE_OF_QUERY', 'UNKNOWN_ROLE',
);
const STATUS_503 = codeSet('SOCKET_TIMEOUT', 'CANNOT_OPEN_FILE', 'CANNOT_SCHEDULE_TASK');
export function httpStatusFor(code: number): number {
  if (code === CODES.REQUIRED_PASSWORD) return 401;
  if (STATUS_403.has(code)) return 403;
  if (STATUS_400.has(code)) return 400;
  if (STATUS_404.has(code)) return 404;
  if (code === CODES.TOO_MANY_BYTES) return 413;
  if (code === CODES.TOO_MANY_SIMULTANEOUS_QUERIES) return 429;
  if (code === CODES.NOT_IMPLEMENTED) return 501;
  if (STATUS_503.has(code)) return 503;
  if (code === CODES.TIMEOUT_EXCEEDED) return 408;
  return 500;
}

export interface ClickHouseFault {
  code: number;
  name: string;
  message: string;
}

/** Maps anything thrown below the HTTP layer to ClickHouse's code, name and message. */
export function toFault(e: unknown): ClickHouseFault {
  if (e instanceof CodedError) return { code: e.code, name: e.codeName, message: e.message };
  if (e instanceof ClickHouseError) return { code: e.code, name: e.name === 'Error' || !/^[A-Z]/.test(e.name) ? codeName(e.code) : e.name, message: e.message };
  if (e instanceof RaftdError) {
    // The state machine's refusal of an entry: "CLICKHOUSE_<n>" carries ClickHouse's own code.
    const m = /^CLICKHOUSE_(\d+)$/.exec(e.code);
    if (m) {
      const code = Number(m[1]);
      const inner = /DB::Exception:\s*([\s\S]*?)(?:\s*\([A-Z][A-Z0-9_]+\))?(?:\s*\(version [^)]*\))?\s*$/.exec(e.message);
      return { code, name: codeName(code), message: (inner ? inner[1]! : e.message).replace(/\.$/, '') };
    }
    if (e.code === 'RH_UNSUPPORTED' || e.code === 'RH_CROSS_DATABASE' || e.code === 'RH_BAD_ENTRY') return fault('BAD_ARGUMENTS', `${e.code}: ${e.message}`);
    if (e.code === 'TIMEOUT') return fault('TIMEOUT_EXCEEDED', `raftd: ${e.message}`);
    if (e.code === 'UNREACHABLE') return fault('NETWORK_ERROR', `raftd: ${e.message}`);
    return fault('KEEPER_EXCEPTION', `raftd ${e.code}: ${e.message}`);
  }
  if (e instanceof RouterError) return fault('BAD_ARGUMENTS', `${e.code}: ${e.message}`);
  if (e instanceof EngineError) {
    const name = e.code === 'ENGINE_FORMAT_UNSUPPORTED' ? 'NOT_IMPLEMENTED' : e.code === 'ENGINE_BAD_REQUEST' ? 'BAD_ARGUMENTS' : 'UNKNOWN_EXCEPTION';
    return fault(name, `${e.code}: ${e.message}`);
  }
  return fault('UNKNOWN_EXCEPTION', (e as Error)?.message ?? String(e));
}

function fault(name: keyof typeof CODES, message: string): ClickHouseFault {
  return { code: CODES[name], name, message };
}

/** The body of an HTTP error answer, as a ClickHouse server of `version` writes it. */
export function exceptionText(f: ClickHouseFault, version: string): string {
  return chExceptionText(f.code, f.message, { name: f.name, version });
}
