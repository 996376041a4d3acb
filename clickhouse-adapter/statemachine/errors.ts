// Error codes of the ClickHouse state machine. Entry results carry them as `{code, message}`; the
// adapter's own failures (not an entry's fault) are thrown as ChsmError.

import { StateMachineError } from '../../adapters/sdk/types.js';

export type ChsmErrorCode =
  | 'RH_BAD_ENTRY'            // the entry bytes are not a valid RaftHouse entry (header JSON, kind, fields)
  | 'RH_UNSUPPORTED'          // a well-formed entry asking for something the adapter refuses (INSERT INTO FUNCTION, async_insert)
  | 'RH_CROSS_DATABASE'       // the statement names a database other than the group's
  | 'RH_BAD_SNAPSHOT'         // RecoverFromSnapshot got bytes that are not a RaftHouse snapshot
  | 'RH_SNAPSHOT_GONE'        // SaveSnapshot for a prepared value that no longer exists (a newer one replaced it)
  | 'RH_BAD_PREPARED'         // a prepared value that does not name a snapshot of this group
  | 'RH_BAD_QUERY'            // a Read query the adapter does not understand
  | 'RH_REPAIR_FAILED'        // rows a crash lost inside ClickHouse could not be re-inserted (the call fails; raftd retries)
  | 'RH_CATCHING_UP'          // PrepareSnapshot before the entries a crash interrupted are re-applied (raftd retries)
  | 'RH_FENCED'               // the group's failing entry is held for the leader's abandon decision (raftd retries)
  | 'RH_UNAUTHENTICATED';     // an abandon check without a valid app-secret MAC (or with no secret configured)

const STATUS: Readonly<Record<ChsmErrorCode, number>> = {
  RH_BAD_ENTRY: 409, // thrown only for an index gap; bad entries otherwise become failed results
  RH_UNSUPPORTED: 422,
  RH_CROSS_DATABASE: 422,
  RH_BAD_SNAPSHOT: 400,
  RH_SNAPSHOT_GONE: 410,
  RH_BAD_PREPARED: 400,
  RH_BAD_QUERY: 400,
  RH_REPAIR_FAILED: 500,
  RH_CATCHING_UP: 503,
  RH_FENCED: 503,
  RH_UNAUTHENTICATED: 403,
};

/** A StateMachineError, so the SDK answers it with its code and an HTTP status. */
export class ChsmError extends StateMachineError {
  override readonly code: ChsmErrorCode;
  constructor(code: ChsmErrorCode, message: string) {
    super(code, message, STATUS[code]);
    this.code = code;
    this.name = 'ChsmError';
  }
}

/** Code of an entry that failed inside ClickHouse: `CLICKHOUSE_<numeric code>`, e.g. CLICKHOUSE_60. */
export function clickhouseCode(n: number): string {
  return `CLICKHOUSE_${n}`;
}
