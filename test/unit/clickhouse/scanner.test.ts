// The one SQL scanner (clickhouse-adapter/sql/scanner.ts): tricky inputs, each checked against what
// the embedded ClickHouse itself makes of the same text (string values, identifier names, which
// text is a comment), so a rule that drifts from ClickHouse's lexer fails here.

import { expect } from 'chai';
import { embeddedEngineForSuite } from '../../support/embedded-engine.js';
import { queryRows } from '../../../clickhouse-adapter/engine/sql.js';
import { firstSemicolon, firstSignificant, identifierName, scanToken, significant, stringValue, tokenize } from '../../../clickhouse-adapter/sql/scanner.js';

const kinds = (sql: string) => tokenize(sql).map((t) => `${t.kind}:${t.text}`);

describe('SQL scanner (sql/scanner.ts)', () => {
  const engine = embeddedEngineForSuite('ch-scanner-');

  /** What ClickHouse answers for `SELECT <expr> AS v`, or the error's text. */
  async function chValue(expr: string): Promise<unknown> {
    const rows = await queryRows<{ v: unknown }>(engine(), `SELECT ${expr} AS v`);
    return rows[0]!.v;
  }

  it('reads string literals as ClickHouse does: both escapes, \\xHH, heredocs', async () => {
    const literals = ["'a''b'", "'a\\'b'", "'a\\\\'", "'tab\\there'", "'\\x41\\x42'", "'x\\qy'", "'\\`\\\"\\/\\e\\N'", "$$it's$$", '$tag$a$b$tag$', '$x$ $$ $x$', '$$$$'];
    for (const lit of literals) {
      const toks = significant(tokenize(lit));
      expect(toks.map((t) => t.kind), lit).to.deep.equal(['string']);
      expect(stringValue(toks[0]!.text), lit).to.equal(await chValue(lit));
    }
  });

  it('reads quoted identifiers as ClickHouse does', async () => {
    // `\x5frh_t` is _rh_t to ClickHouse: the state machine's check of internal names must read it so too.
    for (const ident of ['`a``b`', '`a\\`b`', '"a""b"', '"a\\"b"', '`sp ace`', 'x$y', '$x', '`\\x5frh_t`']) {
      const toks = significant(tokenize(ident));
      expect(toks, ident).to.have.length(1);
      const rows = await queryRows<Record<string, unknown>>(engine(), `SELECT 1 AS ${ident}`);
      expect(Object.keys(rows[0]!), ident).to.deep.equal([identifierName(toks[0]!.text)]);
    }
  });

  it('takes exactly ClickHouse\'s comments: --, "# " and "#!", nested /* */', async () => {
    const comments = ['--x', '-- a; b', '# c', '#!/usr/bin/clickhouse', '/* a /* b; */ c */', '/*/ z */', '/**/', "/* 'a */"];
    for (const c of comments) {
      expect(kinds(c), c).to.deep.equal([`comment:${c}`]);
      expect(await chValue(`1 ${c}\n`), c).to.equal(1); // ClickHouse skips it too
    }
    // Not comments: '#' followed by anything else, and a nested comment left open.
    expect(kinds('#x')[0]).to.equal('punct:#');
    let err = '';
    await chValue('1 #x\n').catch((e: Error) => (err = e.message));
    expect(err).to.match(/SYNTAX_ERROR|Unrecognized token/);
    expect(scanToken('/* a /* b */ c', 0)).to.deep.equal({ kind: 'comment', end: 14, unclosed: true });
    await chValue('1 /* a /* b */').then(() => expect.fail('ClickHouse accepted an unclosed nested comment'), (e: Error) => expect(e.message).to.match(/not closed/i));
  });

  it('reads numbers with an exponent sign as one token, and hexadecimal minus a number as three', async () => {
    expect(kinds('1e-3')).to.deep.equal(['number:1e-3']);
    expect(kinds('2.5E+10')).to.deep.equal(['number:2.5E+10']);
    expect(kinds('0x1E-3')).to.deep.equal(['number:0x1E', 'punct:-', 'number:3']);
    expect(await chValue('0x1E-3')).to.equal(27);
    expect(await chValue('1e-3')).to.equal(0.001);
  });

  it('marks what runs off the end, and never loops on it', () => {
    for (const open of ["'abc", "'abc\\'", '`ab', '"a""', '/* x', '$$ x']) {
      const toks = tokenize(open);
      expect(toks.map((t) => t.text).join(''), open).to.equal(open);
      if (open !== '$$ x') expect(scanToken(open, 0).unclosed, open).to.equal(true);
    }
    // An unclosed heredoc is no heredoc: '$' then words.
    expect(kinds('$$ x')).to.deep.equal(['punct:$', 'punct:$', 'space: ', 'word:x']);
  });

  it('finds the first top-level semicolon, not one in a string, name, heredoc or comment', () => {
    expect(firstSemicolon("(1, 'a;b'), (2, \"c;d\"), (3, `e;f`)")).to.equal(-1);
    expect(firstSemicolon("(1, 'it''s;')")).to.equal(-1);
    expect(firstSemicolon('(1) /* a /* ; */ ; */')).to.equal(-1);
    expect(firstSemicolon('(1, $$;$$) # ;\n')).to.equal(-1);
    expect(firstSemicolon('(1) #;\n')).to.equal(5); // '#;' is not a comment
    expect(firstSemicolon('(1); DROP TABLE x')).to.equal(3);
  });

  it('finds the first significant token past comments of every kind', () => {
    expect(firstSignificant('/* a /* b */ */ -- c\n# d\n  SET x = 1')).to.include({ kind: 'word', text: 'SET' });
    expect(firstSignificant(' -- only a comment')).to.equal(undefined);
  });
});
