// The one SQL scanner of RaftHouse, with ClickHouse's own lexical rules (src/Parsers/Lexer.cpp;
// test/unit/clickhouse/scanner.test.ts checks the tricky cases against the embedded ClickHouse):
//   'string'          a backslash escapes the next character; '' is a quote inside the string
//   "name" `name`     quoted identifiers, the same two escapes
//   $$text$$ $tag$text$tag$   heredoc strings: no escapes; the tag is word characters
//   -- comment        to the end of the line
//   # comment  #!...  likewise, only when '#' is followed by a space or '!' (#x is not a comment)
//   /* comment */     nested: /* a /* b */ c */ is one comment
//   words             [A-Za-z_$][A-Za-z0-9_$]*   numbers: 1, 1.5, 1e-3, 0x1F, 0b101
// An unterminated string, identifier or comment runs to the end of the text (ClickHouse refuses it;
// callers that only look for boundaries see no boundary inside it, which is the safe reading).
// Classification of statements is never done here: that is ClickHouse's parser's job (gateway/parse.ts).

export type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'punct' | 'space' | 'comment';

export interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || (c > '\x7f' && /\s/.test(c));
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isWordStart = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c === '$';
const isWordChar = (c: string | undefined): boolean => c !== undefined && (isWordStart(c) || isDigit(c));
const HEREDOC_TAG_RE = /\$[A-Za-z0-9_]*\$/y;

/** The end of a quoted string or identifier opened by `sql[start]`; -1 when it is not closed. */
function quotedEnd(sql: string, start: number): number {
  const q = sql[start]!;
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '\\') i += 2;
    else if (c !== q) i++;
    else if (sql[i + 1] === q) i += 2;
    else return i + 1;
  }
  return -1;
}

/** The end of a nested block comment starting at `start` ("/*"); -1 when it is not closed. */
function blockCommentEnd(sql: string, start: number): number {
  let depth = 1;
  let i = start + 2;
  while (i + 1 < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') { depth++; i += 2; }
    else if (sql[i] === '*' && sql[i + 1] === '/') { i += 2; if (--depth === 0) return i; }
    else i++;
  }
  return -1;
}

function numberEnd(sql: string, start: number): number {
  const hex = sql[start] === '0' && (sql[start + 1] === 'x' || sql[start + 1] === 'X');
  let i = start + 1;
  for (;;) {
    const c = sql[i];
    if (isWordChar(c) && c !== '$' || c === '.') i++;
    // An exponent's sign: 1e-3, 2.5E+10 (a hexadecimal literal's exponent is p: 0x1p-2).
    else if ((c === '-' || c === '+') && isDigit(sql[i + 1]) && (hex ? /[pP]/ : /[eE]/).test(sql[i - 1]!)) i++;
    else return i;
  }
}

/** A token's kind and end, `unclosed` for a string, quoted name or comment that runs off the end. */
export interface Scanned {
  kind: TokenKind;
  end: number;
  unclosed?: true;
}

function closing(kind: TokenKind, end: number, length: number): Scanned {
  return end < 0 ? { kind, end: length, unclosed: true } : { kind, end };
}

/** The kind and end of the token at `start` (< sql.length): the scanner's one step. */
export function scanToken(sql: string, start: number): Scanned {
  const c = sql[start]!;
  const next = sql[start + 1];
  if (isSpace(c)) {
    let i = start + 1;
    while (i < sql.length && isSpace(sql[i]!)) i++;
    return { kind: 'space', end: i };
  }
  if ((c === '-' && next === '-') || (c === '#' && (next === ' ' || next === '!'))) {
    const nl = sql.indexOf('\n', start);
    return { kind: 'comment', end: nl < 0 ? sql.length : nl };
  }
  if (c === '/' && next === '*') return closing('comment', blockCommentEnd(sql, start), sql.length);
  if (c === "'") return closing('string', quotedEnd(sql, start), sql.length);
  if (c === '"' || c === '`') return closing('quoted', quotedEnd(sql, start), sql.length);
  if (c === '$') {
    HEREDOC_TAG_RE.lastIndex = start;
    const tag = HEREDOC_TAG_RE.exec(sql);
    if (tag) {
      const close = sql.indexOf(tag[0], start + tag[0].length);
      if (close >= 0) return { kind: 'string', end: close + tag[0].length };
    }
  }
  // A '$' that opens no heredoc is a word's first letter only before a word character ($x).
  if (isWordStart(c) && (c !== '$' || (isWordChar(next) && next !== '$'))) {
    let i = start + 1;
    while (isWordChar(sql[i])) i++;
    return { kind: 'word', end: i };
  }
  if (isDigit(c)) return { kind: 'number', end: numberEnd(sql, start) };
  return { kind: 'punct', end: start + 1 };
}

export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < sql.length;) {
    const { kind, end } = scanToken(sql, i);
    out.push({ kind, text: sql.slice(i, end), start: i, end });
    i = end;
  }
  return out;
}

/** The tokens that carry meaning (no spaces, no comments). */
export function significant(tokens: Token[]): Token[] {
  return tokens.filter((t) => t.kind !== 'space' && t.kind !== 'comment');
}

/** The first token that is not space or comment, scanning no further than it. */
export function firstSignificant(sql: string): Token | undefined {
  for (let i = 0; i < sql.length;) {
    const { kind, end } = scanToken(sql, i);
    if (kind !== 'space' && kind !== 'comment') return { kind, text: sql.slice(i, end), start: i, end };
    i = end;
  }
  return undefined;
}

/**
 * Offset of the first top-level `;` (outside strings, quoted names and comments), or -1. Scans
 * without building tokens: it runs over inline INSERT data too.
 */
export function firstSemicolon(text: string): number {
  for (let i = 0; i < text.length;) {
    if (text[i] === ';') return i;
    i = scanToken(text, i).end;
  }
  return -1;
}

// ClickHouse's escapes (readEscapedString): these letters stand for a control character (\N for nothing,
// the NULL marker), these five for themselves; a backslash before anything else stays in the value.
const ESCAPES: Readonly<Record<string, string>> = { n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b', f: '\f', a: '\x07', v: '\v', e: '\x1b', N: '' };
const SELF_ESCAPES = new Set(['\\', "'", '"', '`', '/']);

function unescape(body: string, quote: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i + 1 < body.length) {
      const e = body[++i]!;
      const hex = e === 'x' ? /^[0-9A-Fa-f]{2}/.exec(body.slice(i + 1, i + 3)) : null;
      if (hex) { out += String.fromCharCode(parseInt(hex[0], 16)); i += 2; }
      else out += ESCAPES[e] ?? (SELF_ESCAPES.has(e) ? e : `\\${e}`);
    } else if (c === quote && body[i + 1] === quote) {
      out += quote;
      i++;
    } else out += c;
  }
  return out;
}

/** The value of a string token: a quoted literal with its escapes undone, or a heredoc's text as is. */
export function stringValue(text: string): string {
  if (text.startsWith('$')) {
    const tag = /^\$[A-Za-z0-9_]*\$/.exec(text)![0];
    return text.slice(tag.length, text.length - tag.length);
  }
  return unescape(text.slice(1, text.endsWith("'") && text.length > 1 ? -1 : undefined), "'");
}

/** The name a word or quoted-identifier token stands for (`a``b` and "a\"b" are both a`b / a"b). */
export function identifierName(text: string): string {
  const q = text[0];
  if (q !== '`' && q !== '"') return text;
  return unescape(text.slice(1, text.length > 1 && text.endsWith(q) ? -1 : undefined), q);
}
