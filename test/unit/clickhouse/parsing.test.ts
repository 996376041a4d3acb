// Pure parsing: ClickHouse error texts of every form we meet, and the INSERT statement the engines take.
import { expect } from 'chai';
import { parseClickHouseError, parseInsert, requireCapabilities } from '../../../clickhouse-adapter/engine/index.js';
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
