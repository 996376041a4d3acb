// ClickHouse's "external data for query processing" over HTTP: a multipart body whose file part N is a
// table the query may read, described by the fields N_structure ("id UInt32, s String") or N_types
// ("UInt32,String", columns _1, _2, ...) and N_format (default TabSeparated). RaftHouse creates each
// as a TEMPORARY TABLE (Memory) in a session of its own for the one query, inserts the part's rows as
// structured data in their format, runs the (read-only) query there and closes the session.
// Everything here is bounded and checked before ClickHouse sees it; the CREATE it builds is then
// parsed by ClickHouse itself and checked as a session's CREATE is (gateway.ts).

import { CODES } from '../engine/codes.js';
import { INPUT_FORMATS } from '../rules/index.js';
import { significant, tokenize } from '../sql/scanner.js';
import { GatewayError } from './errors.js';

/** One external table as the request gave it. */
export interface ExternalTable {
  name: string;
  /** `name Type, ...` as N_structure gives it. */
  structure?: string;
  /** `Type,Type,...` as N_types gives it (columns _1, _2, ...). */
  types?: string;
  /** N_format as sent; TabSeparated when absent. */
  format?: string;
  data: Buffer;
}

export const EXTERNAL_LIMITS = {
  /** External tables one query may have. */
  maxTables: 16,
  /** Characters of one N_structure / N_types. */
  maxStructureChars: 16 * 1024,
  /** Columns of one external table. */
  maxColumns: 1000,
} as const;

/** A table name: an identifier a client would write unquoted, bounded. */
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** What an external table becomes: its CREATE and its insert. */
export interface ExternalPlan {
  name: string;
  create: string;
  format: string;
}

/** The fields of the parameters that describe external table `name` (removed from the settings). */
export function externalFieldNames(name: string): string[] {
  return [`${name}_structure`, `${name}_types`, `${name}_format`];
}

/** Checks the tables and builds each one's CREATE TEMPORARY TABLE; throws ClickHouse's errors. */
export function planExternalTables(tables: readonly ExternalTable[]): ExternalPlan[] {
  if (tables.length > EXTERNAL_LIMITS.maxTables) {
    throw new GatewayError(CODES.BAD_ARGUMENTS, `Too many external data tables: ${tables.length}, at most ${EXTERNAL_LIMITS.maxTables} per query`);
  }
  const seen = new Set<string>();
  return tables.map((t) => {
    if (!NAME_RE.test(t.name)) {
      throw new GatewayError(CODES.BAD_ARGUMENTS, `External data table name '${t.name.slice(0, 64)}' must be 1 to 64 letters, digits or _ (not starting with a digit)`);
    }
    if (seen.has(t.name.toLowerCase())) throw new GatewayError(CODES.BAD_ARGUMENTS, `External data table '${t.name}' is given twice`);
    seen.add(t.name.toLowerCase());
    const format = INPUT_FORMATS.get((t.format || 'TabSeparated').toLowerCase());
    if (!format || format === 'Values') {
      throw new GatewayError(CODES.UNKNOWN_FORMAT, `Format ${(t.format ?? '').slice(0, 64)} of external data table '${t.name}' is not accepted; use one of ${[...new Set(INPUT_FORMATS.values())].filter((f) => f !== 'Values').join(', ')}`);
    }
    const columns = t.structure !== undefined ? structureColumns(t.name, t.structure)
      : t.types !== undefined ? typesColumns(t.name, t.types)
        : undefined;
    if (columns === undefined) {
      throw new GatewayError(CODES.BAD_ARGUMENTS, `Neither structure nor types have not been provided for external table ${t.name}. Use fields ${t.name}_structure or ${t.name}_types to do so.`);
    }
    return { name: t.name, create: `CREATE TEMPORARY TABLE \`${t.name}\` (${columns}) ENGINE = Memory`, format };
  });
}

/**
 * N_structure as the column list of the CREATE, checked only so far that it cannot leave that list:
 * parentheses balanced and never closed below the list, no statement separator. ClickHouse's parser
 * then judges the rest (a bad type or name is its error) and the session rules check the expressions.
 */
function structureColumns(name: string, structure: string): string {
  const toks = bounded(name, structure);
  let depth = 0;
  for (const t of toks) {
    if (t.text === '(') depth++;
    else if (t.text === ')' && --depth < 0) throw badStructure(name, 'unbalanced parentheses');
    else if (t.text === ';') throw badStructure(name, "';' is not part of a structure");
  }
  if (depth !== 0) throw badStructure(name, 'unbalanced parentheses');
  return structure;
}

/** N_types (`UInt32,Array(String)`) as `_1 UInt32, _2 Array(String)`, split at top-level commas. */
function typesColumns(name: string, types: string): string {
  const toks = bounded(name, types);
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (const t of toks) {
    if (t.text === '(') depth++;
    else if (t.text === ')' && --depth < 0) throw badStructure(name, 'unbalanced parentheses');
    else if (t.text === ';') throw badStructure(name, "';' is not part of a type");
    else if (t.text === ',' && depth === 0) {
      parts.push(types.slice(start, t.start));
      start = t.start + 1;
    }
  }
  if (depth !== 0) throw badStructure(name, 'unbalanced parentheses');
  parts.push(types.slice(start));
  if (parts.length > EXTERNAL_LIMITS.maxColumns) throw badStructure(name, `more than ${EXTERNAL_LIMITS.maxColumns} columns`);
  return parts.map((p, i) => {
    if (p.trim() === '') throw badStructure(name, `type ${i + 1} is empty`);
    return `_${i + 1} ${p.trim()}`;
  }).join(', ');
}

function bounded(name: string, text: string): Array<{ text: string; start: number }> {
  if (text.trim() === '') throw badStructure(name, 'it is empty');
  if (text.length > EXTERNAL_LIMITS.maxStructureChars) throw badStructure(name, `longer than ${EXTERNAL_LIMITS.maxStructureChars} characters`);
  const all = tokenize(text);
  // A comment would swallow the rest of the CREATE built around the text.
  if (all.some((t) => t.kind === 'comment')) throw badStructure(name, 'comments are not part of a structure');
  return significant(all);
}

function badStructure(name: string, why: string): GatewayError {
  return new GatewayError(CODES.BAD_ARGUMENTS, `Cannot use the structure of external data table '${name}': ${why}`);
}
