// What the rules read of a statement: ClickHouse's own AST (EXPLAIN AST, gateway/parse.ts) for its
// structure, and ClickHouse's canonical text of it (formatQuery) for the few details EXPLAIN AST does
// not print (engine SETTINGS, TTL destinations, RENAME / MATERIALIZED VIEW TO / CREATE ... AS names,
// INTO OUTFILE vs a table named outfile). The canonical text is the parser's own rendering: comments
// are gone, keywords are upper case and in one order, so a token scan of it cannot be fooled by spelling.

import type { AstNode, ParsedStatement, TableRef } from '../gateway/parse.js';
import { identifierName, significant, tokenize, type Token } from '../sql/scanner.js';

export type { AstNode, ParsedStatement, TableRef, Token };
export type SettingValue = string | number;

export function walk(n: AstNode, f: (n: AstNode, path: readonly AstNode[]) => void, path: AstNode[] = []): void {
  f(n, path);
  path.push(n);
  for (const c of n.children) walk(c, f, path);
  path.pop();
}

export function unquote(s: string): string {
  return s.length >= 2 && (s[0] === '`' || s[0] === '"') && s[s.length - 1] === s[0] ? identifierName(s) : s;
}

/** `db.t`, `t`, and the backquoted forms EXPLAIN AST prints for odd names. */
export function tableRef(name: string): TableRef {
  const m = /^(`(?:[^`\\]|\\.)*`|[^.`]+)\.(`(?:[^`\\]|\\.)*`|[^.`]+)$/.exec(name);
  if (m) return { database: unquote(m[1]!), table: unquote(m[2]!) };
  return { table: unquote(name) };
}

/** The canonical text's significant tokens (no spaces, no comments). */
export function canonicalTokens(stmt: ParsedStatement): Token[] {
  return significant(tokenize(stmt.canonical));
}

export function isWord(t: Token | undefined, ...words: string[]): boolean {
  return t !== undefined && t.kind === 'word' && words.includes(t.text.toUpperCase());
}

/** The leading keywords of the canonical text, upper case (e.g. ["CREATE", "OR", "REPLACE", "TABLE"]). */
export function headWords(toks: Token[], max = 6): string[] {
  const out: string[] = [];
  for (const t of toks) {
    if (t.kind !== 'word' || out.length >= max) break;
    out.push(t.text.toUpperCase());
  }
  return out;
}

/** Reads `name` or `db.name` (plain or quoted identifiers) at toks[i]; undefined when none is there. */
export function readName(toks: Token[], i: number): { ref: TableRef; next: number } | undefined {
  const a = toks[i];
  if (!a || (a.kind !== 'word' && a.kind !== 'quoted')) return undefined;
  if (toks[i + 1]?.text === '.' && (toks[i + 2]?.kind === 'word' || toks[i + 2]?.kind === 'quoted')) {
    return { ref: { database: unquote(toks[i]!.text), table: unquote(toks[i + 2]!.text) }, next: i + 3 };
  }
  return { ref: { table: unquote(a.text) }, next: i + 1 };
}

/** Index of the first occurrence of the keyword sequence at any depth, or -1. */
export function findWords(toks: Token[], words: string[], from = 0): number {
  for (let i = from; i + words.length <= toks.length; i++) {
    if (words.every((w, k) => isWord(toks[i + k], w))) return i;
  }
  return -1;
}

/** Setting names of every `SETTINGS a = ..., b = ...` / `MODIFY SETTING a = ...` list in the text. */
export function settingNamesAfter(toks: Token[], keyword: string[]): string[] {
  const names: string[] = [];
  for (let at = findWords(toks, keyword); at >= 0; at = findWords(toks, keyword, at + 1)) {
    let depth = 0;
    for (let i = at + keyword.length; i < toks.length; i++) {
      const t = toks[i]!;
      if (t.text === '(') depth++;
      else if (t.text === ')') { if (--depth < 0) break; }
      else if (depth === 0 && (t.kind === 'word' || t.kind === 'quoted') && toks[i + 1]?.text === '=' && (i === at + keyword.length || toks[i - 1]?.text === ',')) {
        names.push(unquote(t.text));
      } else if (depth === 0 && t.kind === 'word' && i > at + keyword.length && toks[i - 1]?.text !== '=' && toks[i - 1]?.text !== ',' && toks[i + 1]?.text !== '=') {
        break; // the next clause (COMMENT ..., a following command)
      }
    }
  }
  return names;
}
