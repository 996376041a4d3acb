// The one rewrite the apply path needs: pointing an INSERT's target at the group database. The
// payload-carrying INSERT goes through engine.insert(), which has no "current database", so its
// target must be qualified. Everything else runs with `database = rh_g<g>` and needs no rewrite.

import { ChsmError } from './errors.js';
import { identifierName, scanToken } from '../sql/scanner.js';

const HEAD_RE = /^\s*INSERT\s+INTO\s+(?:TABLE\s+)?/i;
const FUNCTION_RE = /^FUNCTION\b/i;
const FORMAT_TAIL_RE = /\bFORMAT\s+[A-Za-z][A-Za-z0-9_]*\s*;?\s*$/i;

/** Reads one identifier (plain, `backquoted` or "double-quoted") at the start of s. */
function readIdent(s: string): { text: string; name: string } | undefined {
  if (s.length === 0) return undefined;
  const t = scanToken(s, 0);
  if ((t.kind !== 'word' && t.kind !== 'quoted') || t.unclosed) return undefined;
  const text = s.slice(0, t.end);
  return { text, name: identifierName(text) };
}

export interface InsertTarget {
  /** The INSERT statement with its target qualified by the group database. */
  sql: string;
  /** The table name (unquoted). */
  table: string;
  /** What follows the table name (column list, FORMAT, SELECT ...): the same insert into table x is `INSERT INTO x` + tail. */
  tail: string;
}

/**
 * Qualifies `INSERT INTO [db.]t ...` with `groupDb`. A qualifier is accepted when it is the user's own
 * database name for this entry (`userDb`) or the group database itself; any other database is refused
 * (a group's entries write only into the group's database).
 */
export function qualifyInsert(sql: string, groupDb: string, userDb: string | undefined): InsertTarget {
  const head = HEAD_RE.exec(sql);
  if (!head) throw new ChsmError('RH_BAD_ENTRY', 'an insert entry must start with INSERT INTO');
  let rest = sql.slice(head[0].length);
  if (FUNCTION_RE.test(rest)) throw new ChsmError('RH_UNSUPPORTED', 'INSERT INTO FUNCTION is not replicated');
  const first = readIdent(rest);
  if (!first) throw new ChsmError('RH_BAD_ENTRY', 'cannot read the INSERT target table name');
  rest = rest.slice(first.text.length);
  let tableText = first.text;
  let table = first.name;
  if (rest.startsWith('.')) {
    const second = readIdent(rest.slice(1));
    if (!second) throw new ChsmError('RH_BAD_ENTRY', 'cannot read the INSERT target table name');
    if (first.name !== groupDb && first.name !== userDb) {
      throw new ChsmError('RH_CROSS_DATABASE', `INSERT into database ${first.name} from an entry of database ${userDb ?? groupDb}`);
    }
    rest = rest.slice(1 + second.text.length);
    tableText = second.text;
    table = second.name;
  }
  return { sql: `INSERT INTO ${groupDb}.${tableText}${rest}`, table, tail: rest };
}

export function hasFormatClause(sql: string): boolean {
  return FORMAT_TAIL_RE.test(sql);
}
