// Pure parsing: ClickHouse error texts of every form we meet, and the INSERT statement the engines take.
import { expect } from 'chai';
import { parseError } from '@clickhouse/client';
import { ClickHouseError, EngineError, parseClickHouseError, parseInsert, requireCapabilities } from '../../../clickhouse-adapter/engine/index.js';
import { findErrorTrailer, mapClientError } from '../../../clickhouse-adapter/engine/server.js';
import type { Capabilities } from '../../../clickhouse-adapter/engine/index.js';

describe('clickhouse engine: error parsing', function () {
  it('parses the modern form', function () {
    const e = parseClickHouseError('Code: 60. DB::Exception: Unknown table expression identifier \'g.t\' in scope SELECT * FROM g.t. (UNKNOWN_TABLE) (version 26.7.2.1)');
    expect(e?.code).to.equal(60);
    expect(e?.name).to.equal('UNKNOWN_TABLE');
    expect(e?.message).to.equal("Unknown table expression identifier 'g.t' in scope SELECT * FROM g.t");
  });

  it('parses a re-thrown modern error to its inner message', function () {
    const e = parseClickHouseError("Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'max_threads' setting in readonly mode. (READONLY) (version 26.7.2.1). (READONLY)");
    expect(e?.code).to.equal(164);
    expect(e?.name).to.equal('READONLY');
    expect(e?.message).to.equal("Cannot modify 'max_threads' setting in readonly mode");
  });

  it('keeps an upper-case word in parentheses inside the message (the name is the last one)', function () {
    const e = parseClickHouseError("Code: 395. DB::Exception: failed (BOOM) here: while executing 'FUNCTION throwIf(1_UInt8 :: 1, 'failed (BOOM) here'_String :: 2) -> throwIf(1_UInt8, 'failed (BOOM) here'_String) UInt8 : 3'. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 25.8.2.1)");
    expect(e?.code).to.equal(395);
    expect(e?.name).to.equal('FUNCTION_THROW_IF_VALUE_IS_NON_ZERO');
    expect(e?.message).to.match(/^failed \(BOOM\) here: while executing 'FUNCTION throwIf\(.*UInt8 : 3'$/);
  });

  it('does not take "(at row 1)" or "(official build)" for a name', function () {
    const e = parseClickHouseError('Code: 27. DB::Exception: Cannot parse input: expected \'"\' (at row 1)\n: While executing X. (CANNOT_PARSE_INPUT_ASSERTION_FAILED) (version 26.7.2.1 (official build))');
    expect(e?.name).to.equal('CANNOT_PARSE_INPUT_ASSERTION_FAILED');
    expect(e?.message).to.contain('(at row 1)');
  });

  it('parses the legacy 18.16 form and names the code itself', function () {
    const e = parseClickHouseError("Code: 60, e.displayText() = DB::Exception: Table default.nope doesn't exist., e.what() = DB::Exception\n");
    expect(e?.code).to.equal(60);
    expect(e?.name).to.equal('UNKNOWN_TABLE');
    expect(e?.message).to.equal("Table default.nope doesn't exist");
  });

  it('keeps a multi-line legacy message and names an unknown code CODE_<n>', function () {
    const e = parseClickHouseError('Code: 9999, e.displayText() = DB::Exception: first line\nsecond line, e.what() = DB::Exception');
    expect(e?.code).to.equal(9999);
    expect(e?.name).to.equal('CODE_9999');
    expect(e?.message).to.equal('first line\nsecond line');
  });

  it('returns undefined for text without a ClickHouse code', function () {
    expect(parseClickHouseError('<html>502 Bad Gateway</html>')).to.equal(undefined);
    expect(parseClickHouseError('connect ECONNREFUSED 127.0.0.1:1')).to.equal(undefined);
  });
});

describe('clickhouse engine: INSERT statement parsing', function () {
  it('takes apart table, columns, settings and format', function () {
    const p = parseInsert("INSERT INTO g1.t (a, b) SETTINGS insert_deduplication_token = 'g1:42', max_insert_block_size = 1000 FORMAT JSONEachRow");
    expect(p).to.deep.include({ table: 'g1.t', columns: ['a', 'b'], hasColumnList: true, format: 'JSONEachRow', settingsParsed: true });
    expect(p.settings).to.deep.equal({ insert_deduplication_token: 'g1:42', max_insert_block_size: 1000 });
  });

  it('unescapes quoted setting values and keeps huge integers as text', function () {
    const p = parseInsert("insert into t settings insert_deduplication_token = 'a\\'b', x = 18446744073709551615 format TSV;");
    expect(p.table).to.equal('t');
    expect(p.format).to.equal('TSV');
    expect(p.settings).to.deep.equal({ insert_deduplication_token: "a'b", x: '18446744073709551615' });
  });

  it('marks quoted names and odd settings for the inline path', function () {
    expect(parseInsert('INSERT INTO `my db`.`t` FORMAT CSV').table).to.equal(undefined);
    expect(parseInsert('INSERT INTO t ("a b") FORMAT CSV').table).to.equal(undefined);
    expect(parseInsert('INSERT INTO t SETTINGS x = now() FORMAT CSV').settingsParsed).to.equal(false);
  });

  it('does not mistake a SETTINGS word inside a quoted name', function () {
    const p = parseInsert('INSERT INTO `a SETTINGS b` FORMAT CSV');
    expect(p.settingsParsed).to.equal(true);
    expect(p.settings).to.deep.equal({});
  });

  it('refuses statements that are not INSERT ... FORMAT X', function () {
    expect(() => parseInsert("INSERT INTO t VALUES (1, 'x')")).to.throw(/FORMAT X/);
    expect(() => parseInsert('SELECT 1 FORMAT CSV')).to.throw(/FORMAT X/);
  });
});

describe('clickhouse engine: requireCapabilities', function () {
  const old: Capabilities = {
    version: '21.3.1', major: 21, minor: 3, dedupTokens: false, cloneAs: false, attachPartitionAll: false,
    mergeRegexp: true, backupRestore: false, explainAst: true, deterministicFunctionsTable: false,
  };
  it('names exactly the missing ones, in the order asked', function () {
    expect(() => requireCapabilities({ capabilities: old }, ['mergeRegexp', 'cloneAs', 'dedupTokens'], 'snapshots'))
      .to.throw(/^ClickHouse 21\.3\.1 cannot run snapshots: it lacks CREATE TABLE \.\.\. CLONE AS \(.*\); insert_deduplication_token \(needs 22\.2\+\)\./);
  });
  it('passes when nothing is missing', function () {
    expect(() => requireCapabilities({ capabilities: old }, ['mergeRegexp', 'explainAst'], 'x')).to.not.throw();
  });
});

describe('clickhouse engine: server error mapping', function () {
  it('keeps code and name of an error the client parsed (modern servers)', function () {
    const clientErr = parseError('Code: 60. DB::Exception: Table g.x does not exist. (UNKNOWN_TABLE) (version 24.8.4.13)');
    const e = mapClientError(clientErr, 'http://x');
    expect(e).to.be.instanceOf(ClickHouseError);
    expect((e as ClickHouseError).code).to.equal(60);
    expect((e as ClickHouseError).name).to.equal('UNKNOWN_TABLE');
    expect(e.message).to.equal('Table g.x does not exist');
  });

  it('parses the legacy body the client could not', function () {
    const clientErr = parseError("Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: SELEC 1, e.what() = DB::Exception\n");
    const e = mapClientError(clientErr, 'http://x');
    expect((e as ClickHouseError).code).to.equal(62);
    expect((e as ClickHouseError).name).to.equal('SYNTAX_ERROR');
  });

  it('turns socket errors into ENGINE_UNREACHABLE and anything else into ENGINE_PROTOCOL', function () {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect((mapClientError(refused, 'http://x') as EngineError).code).to.equal('ENGINE_UNREACHABLE');
    expect((mapClientError(new Error('<html>502</html>'), 'http://x') as EngineError).code).to.equal('ENGINE_PROTOCOL');
  });

  it('finds an exception trailer at the end of a streamed body, in both forms', function () {
    const legacy = findErrorTrailer(Buffer.from("0\n0\nCode: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception\n"));
    expect(legacy?.code).to.equal(395);
    const modern = findErrorTrailer(Buffer.from('1\n2\nCode: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED) (version 23.8.1.1)\n'));
    expect(modern?.name).to.equal('MEMORY_LIMIT_EXCEEDED');
    expect(findErrorTrailer(Buffer.from('1\n2\n3\n'))).to.equal(undefined);
    expect(findErrorTrailer(Buffer.from('x\tCode: 1. DB::Exception: in a value, not at a line start\n'))).to.equal(undefined);
  });
});

describe('clickhouse engine: statement-ending semicolons in inline data', () => {
  it('finds a top-level ; and ignores those in quotes and comments', async () => {
    const { firstSemicolon } = await import('../../../clickhouse-adapter/sql/scanner.js');
    expect(firstSemicolon("(1, 'a')")).to.equal(-1);
    expect(firstSemicolon("(1, 'a;b'), (2, \"c;d\"), (3, `e;f`)")).to.equal(-1);
    expect(firstSemicolon("(1, 'it\\'s;')")).to.equal(-1);
    expect(firstSemicolon('(1) -- a; comment\n')).to.equal(-1);
    expect(firstSemicolon('(1) /* a; */')).to.equal(-1);
    expect(firstSemicolon('(1); DROP TABLE x')).to.equal(3);
  });
});
