// RaftHouse's rules: the one place that decides what a statement may do. The gateway (both endpoints)
// and the state machine (every entry, on every replica, before it applies it) call the same functions
// over the same parse (ClickHouse's own parser: EXPLAIN AST of formatQuery's canonical text).
//   statements.ts  the write path's allow-list: kinds, targets, clauses, determinism
//   engines.ts     table engines, table settings, ALTER commands a group table may use
//   functions.ts   table functions (allow-lists), functions with external reach, VALUES rows
//   names.ts       databases and tables a statement may name (`_rh_*` never)
//   reads.ts       what reads may touch
//   settings.ts    user settings in statements and SET
//   errors.ts      RuleError with the ClickHouse code a server would answer

export { RuleError } from './errors.js';
export { checkWrite, checkInputFormat, INPUT_FORMATS, PINNABLE } from './statements.js';
export type { WriteContext, WriteKind } from './statements.js';
export { checkRead, checkSessionStatement } from './reads.js';
export type { ReadContext } from './reads.js';
export type { WriteScope } from './names.js';
export { checkValuesData, loadNondeterministic, isNondeterministic, READ_TABLE_FUNCTIONS, WRITE_TABLE_FUNCTIONS } from './functions.js';
export { ALLOWED_ENGINES, ALLOWED_TABLE_SETTINGS, ALLOWED_ALTER_COMMANDS } from './engines.js';
export { checkSettings } from './settings.js';
