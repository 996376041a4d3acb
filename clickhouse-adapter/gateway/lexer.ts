// What the gateway reads from SQL tokens (the scanner: sql/scanner.ts): the boundaries the parser's
// output does not give (where an INSERT's inline data starts, the SETTINGS clause of a canonical
// statement) and replacing a function call token by a literal. Classification never relies on it: that is the real
// parser's job (parse.ts). Everything here runs on ClickHouse's own canonical text (formatQuery) except
// dataOffset(), which needs the user's text.

import { significant, stringValue, tokenize, type Token } from '../sql/scanner.js';

/**
 * Where an INSERT's inline data begins in the user's text: after `FORMAT <name>` (and one line break
 * or the whitespace after it), or right at `VALUES`'s first `(`. Undefined when the statement carries
 * no inline data (INSERT ... SELECT, or data sent separately).
 */
export function insertDataOffset(sql: string): { offset: number; values: boolean } | undefined {
  const toks = significant(tokenize(sql));
  let depth = 0;
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    if (t.text === '(') depth++;
    else if (t.text === ')') depth--;
    else if (depth === 0 && t.kind === 'word') {
      const w = t.text.toUpperCase();
      if (w === 'SELECT' || w === 'WITH') return undefined;
      if (w === 'FORMAT' && toks[k + 1]?.kind === 'word') {
        let off = toks[k + 1]!.end;
        // ClickHouse skips the whitespace up to and including the first line break after the format name.
        while (off < sql.length && (sql[off] === ' ' || sql[off] === '\t')) off++;
        if (sql[off] === '\r') off++;
        if (sql[off] === '\n') off++;
        return { offset: off, values: toks[k + 1]!.text.toLowerCase() === 'values' };
      }
      if (w === 'VALUES') return { offset: toks[k + 1]?.start ?? t.end, values: true };
    }
  }
  return undefined;
}

export interface SettingsClause {
  settings: Record<string, string | number>;
  /** The text with the SETTINGS clause removed. */
  without: string;
}

function literalValue(t: Token): string | number {
  if (t.kind === 'string') return stringValue(t.text);
  if (t.kind === 'number' && /^-?[0-9]+(\.[0-9]+)?$/.test(t.text)) return Number(t.text);
  return t.text;
}

/**
 * The top-level `SETTINGS a = 1, b = 'x'` clause of a canonical INSERT / SELECT (ClickHouse's
 * formatQuery output), and the text without it. A CREATE's table-engine SETTINGS are not taken
 * (pass `includeCreate` to read those).
 */
export function extractSettings(sql: string): SettingsClause {
  const all = tokenize(sql);
  const toks = significant(all);
  let depth = 0;
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    if (t.text === '(') depth++;
    else if (t.text === ')') depth--;
    else if (depth === 0 && t.kind === 'word' && t.text.toUpperCase() === 'SETTINGS') {
      const settings: Record<string, string | number> = {};
      let j = k + 1;
      let endPos = t.end;
      while (j + 2 < toks.length + 1 && toks[j]?.kind === 'word' && toks[j + 1]?.text === '=') {
        let valTok = toks[j + 2];
        if (!valTok) break;
        let neg = false;
        if (valTok.text === '-' && toks[j + 3]) { neg = true; valTok = toks[j + 3]!; j++; }
        const v = literalValue(valTok);
        settings[toks[j]!.text] = neg && typeof v === 'number' ? -v : v;
        endPos = valTok.end;
        j += 3;
        if (toks[j]?.text === ',') { j++; continue; }
        break;
      }
      const without = (sql.slice(0, t.start).replace(/\s+$/, '') + (endPos < sql.length ? ' ' + sql.slice(endPos).replace(/^\s+/, '') : '')).trim();
      return { settings, without };
    }
  }
  return { settings: {}, without: sql };
}

/**
 * Replaces calls of the named functions (case-insensitive names -> a replacement builder getting the
 * call's argument text) outside strings and quoted identifiers. Used to pin now() & co. to literals.
 */
export function replaceCalls(sql: string, builders: Record<string, (args: string) => string>): { sql: string; replaced: string[] } {
  const all = tokenize(sql);
  const replaced: string[] = [];
  let out = '';
  let pos = 0;
  for (let k = 0; k < all.length; k++) {
    const t = all[k]!;
    if (t.kind !== 'word') continue;
    const b = builders[t.text.toLowerCase()];
    if (!b) continue;
    // next significant token must be "("; the previous must not be "." (a qualified column a.now)
    let j = k + 1;
    while (j < all.length && (all[j]!.kind === 'space' || all[j]!.kind === 'comment')) j++;
    if (all[j]?.text !== '(') continue;
    let p = k - 1;
    while (p >= 0 && (all[p]!.kind === 'space' || all[p]!.kind === 'comment')) p--;
    if (p >= 0 && all[p]!.text === '.') continue;
    let depth = 0;
    let e = j;
    for (; e < all.length; e++) {
      if (all[e]!.text === '(') depth++;
      else if (all[e]!.text === ')' && --depth === 0) break;
    }
    if (e >= all.length) continue;
    const args = sql.slice(all[j]!.end, all[e]!.start).trim();
    out += sql.slice(pos, t.start) + b(args);
    pos = all[e]!.end;
    replaced.push(t.text);
    k = e;
  }
  return { sql: out + sql.slice(pos), replaced };
}
