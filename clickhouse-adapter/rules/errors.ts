// The refusals of the rules module, with the ClickHouse code a server would give a restricted user for
// the same statement, so stock clients see a familiar error:
//   497 ACCESS_DENIED            reaching outside the group's database: other databases, `_rh_*`
//                                tables, table functions / engines / functions with external reach,
//                                statement kinds a user without the grant may not run (KILL, SYSTEM,
//                                BACKUP, ATTACH, access control, CREATE DATABASE ...). A server answers
//                                a user lacking the grant (FILE, TABLE ENGINE ON URL, CREATE DATABASE,
//                                SELECT ON db.t, KILL QUERY, SYSTEM ...) with exactly this code.
//   358 INTO_OUTFILE_NOT_ALLOWED what a server's HTTP interface answers to INTO OUTFILE.
//    48 NOT_IMPLEMENTED          allowed in ClickHouse, but RaftHouse cannot apply it identically on
//                                every replica from the log alone (TEMPORARY tables, refreshable views).
//    36 BAD_ARGUMENTS            the statement could be written another way that RaftHouse accepts
//                                (a non-deterministic function, a qualified name, no ENGINE given).
// (Numbers and names: engine/codes.ts.)

import { CODES } from '../engine/codes.js';
import { CodedError } from '../engine/errors.js';

export class RuleError extends CodedError {
  override readonly name = 'RuleError';
}

export function denied(message: string): never {
  throw new RuleError(CODES.ACCESS_DENIED, `Not enough privileges: ${message}`);
}

export function notReplicable(message: string): never {
  throw new RuleError(CODES.NOT_IMPLEMENTED, message);
}

export function badArguments(message: string): never {
  throw new RuleError(CODES.BAD_ARGUMENTS, message);
}
