// Errors the gateway answers with, in ClickHouse's modern HTTP form so stock clients parse them:
//   body   "Code: N. DB::Exception: <message>. (NAME) (version V)\n"
//   header X-ClickHouse-Exception-Code: N, status from ClickHouse's own code -> status table.

import { ClickHouseError, EngineError, clickHouseCodeName } from '../engine/errors.js';
import { RaftdError } from '../../adapters/sdk/client.js';
import { RouterError } from '../router/ring.js';
import { RuleError } from '../rules/errors.js';

/** An error the gateway itself raises, carrying a ClickHouse code so clients see a familiar one. */
export class GatewayError extends Error {
  readonly codeName: string;
  constructor(readonly code: number, message: string, name?: string) {
    super(message);
    this.codeName = name ?? clickHouseCodeName(code);
    this.name = 'GatewayError';
  }
}

export const CODES = {
  BAD_ARGUMENTS: 36,
  NOT_IMPLEMENTED: 48,
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  UNKNOWN_DATABASE: 81,
  UNKNOWN_SETTING: 115,
  READONLY: 164,
  UNKNOWN_USER: 192,
  REQUIRED_PASSWORD: 194,
  NETWORK_ERROR: 210,
  UNKNOWN_QUERY_PARAMETER: 456,
  AUTHENTICATION_FAILED: 516,
  /** ClickHouse's code for coordination (Keeper) failures: the closest match for "raftd could not commit". */
  KEEPER_EXCEPTION: 999,
  TIMEOUT_EXCEEDED: 159,
  CANNOT_DECOMPRESS: 271,
  TOO_MANY_BYTES: 307,
  TOO_MANY_ROWS_OR_BYTES: 396,
  SETTING_CONSTRAINT_VIOLATION: 452,
  ACCESS_DENIED: 497,
} as const;

const NAMES: Record<number, string> = {
  36: 'BAD_ARGUMENTS', 48: 'NOT_IMPLEMENTED', 81: 'UNKNOWN_DATABASE', 164: 'READONLY', 194: 'REQUIRED_PASSWORD',
  210: 'NETWORK_ERROR', 516: 'AUTHENTICATION_FAILED', 999: 'KEEPER_EXCEPTION', 159: 'TIMEOUT_EXCEEDED',
};

function nameOf(code: number): string {
  return NAMES[code] ?? clickHouseCodeName(code);
}

// Modern ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
const STATUS_400 = new Set([36, 6, 25, 26, 27, 38, 41, 72, 15, 44, 8, 62, 117, 53, 427, 452]);
const STATUS_404 = new Set([60, 46, 47, 50, 56, 81, 115, 64, 63, 73, 336, 511]);
export function httpStatusFor(code: number): number {
  if (code === 194) return 401;
  if (code === 192 || code === 193 || code === 516 || code === 512 || code === 497 || code === 291) return 403;
  if (STATUS_400.has(code)) return 400;
  if (STATUS_404.has(code)) return 404;
  if (code === 307) return 413;
  if (code === 202) return 429;
  if (code === 48) return 501;
  if (code === 209 || code === 76 || code === 439) return 503; // SOCKET_TIMEOUT, CANNOT_OPEN_FILE, CANNOT_SCHEDULE_TASK
  if (code === 159) return 408;
  return 500;
}

export interface ClickHouseFault {
  code: number;
  name: string;
  message: string;
}

/** Maps anything thrown below the HTTP layer to ClickHouse's code, name and message. */
export function toFault(e: unknown): ClickHouseFault {
  if (e instanceof GatewayError || e instanceof RuleError) return { code: e.code, name: e.codeName, message: e.message };
  if (e instanceof ClickHouseError) return { code: e.code, name: e.name === 'Error' || !/^[A-Z]/.test(e.name) ? nameOf(e.code) : e.name, message: e.message };
  if (e instanceof RaftdError) {
    // The state machine's refusal of an entry: "CLICKHOUSE_<n>" carries ClickHouse's own code.
    const m = /^CLICKHOUSE_(\d+)$/.exec(e.code);
    if (m) {
      const code = Number(m[1]);
      const inner = /DB::Exception:\s*([\s\S]*?)(?:\s*\([A-Z][A-Z0-9_]+\))?(?:\s*\(version [^)]*\))?\s*$/.exec(e.message);
      return { code, name: nameOf(code), message: (inner ? inner[1]! : e.message).replace(/\.$/, '') };
    }
    if (e.code === 'RH_UNSUPPORTED' || e.code === 'RH_CROSS_DATABASE' || e.code === 'RH_BAD_ENTRY') return { code: 36, name: 'BAD_ARGUMENTS', message: `${e.code}: ${e.message}` };
    if (e.code === 'TIMEOUT') return { code: 159, name: 'TIMEOUT_EXCEEDED', message: `raftd: ${e.message}` };
    if (e.code === 'UNREACHABLE') return { code: 210, name: 'NETWORK_ERROR', message: `raftd: ${e.message}` };
    return { code: 999, name: 'KEEPER_EXCEPTION', message: `raftd ${e.code}: ${e.message}` };
  }
  if (e instanceof RouterError) return { code: 36, name: 'BAD_ARGUMENTS', message: `${e.code}: ${e.message}` };
  if (e instanceof EngineError) return { code: e.code === 'ENGINE_FORMAT_UNSUPPORTED' ? 48 : e.code === 'ENGINE_BAD_REQUEST' ? 36 : 1002, name: e.code === 'ENGINE_FORMAT_UNSUPPORTED' ? 'NOT_IMPLEMENTED' : e.code === 'ENGINE_BAD_REQUEST' ? 'BAD_ARGUMENTS' : 'UNKNOWN_EXCEPTION', message: `${e.code}: ${e.message}` };
  return { code: 1002, name: 'UNKNOWN_EXCEPTION', message: (e as Error)?.message ?? String(e) };
}

export function exceptionText(f: ClickHouseFault, version: string): string {
  return `Code: ${f.code}. DB::Exception: ${f.message}. (${f.name}) (version ${version})\n`;
}
