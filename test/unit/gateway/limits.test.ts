// Read limits (clickhouse-adapter/gateway/limits.ts) and parameter substitution for classification
// (parse.ts substituteParams): pure functions, checked on the cases a hostile client would try.

import { expect } from 'chai';
import { checkStatementSettings, killAfterMs, readSettings } from '../../../clickhouse-adapter/gateway/limits.js';
import type { ReadLimits } from '../../../clickhouse-adapter/gateway/limits.js';
import { substituteParams } from '../../../clickhouse-adapter/gateway/parse.js';
import { GatewayError } from '../../../clickhouse-adapter/gateway/errors.js';

const limits: ReadLimits = { maxExecutionTime: 10, maxMemoryUsage: 1000, maxResultRows: 0, maxResultBytes: 500 };

function code(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof GatewayError ? e.code : -1;
  }
  return undefined;
}

describe('gateway: read limits', () => {
  it('adds every limit the client did not lower, and keeps its own lower values', () => {
    expect(readSettings(undefined, limits)).to.deep.equal({ max_execution_time: 10, max_memory_usage: 1000, max_result_bytes: 500 });
    expect(readSettings({ max_execution_time: '2', output_format_json_quote_64bit_integers: '0' }, limits))
      .to.deep.equal({ max_execution_time: 2, output_format_json_quote_64bit_integers: '0', max_memory_usage: 1000, max_result_bytes: 500 });
    // No limit configured: any value (max_result_rows is 0 here).
    expect(readSettings({ max_result_rows: '99999' }, limits)['max_result_rows']).to.equal(99999);
  });

  it('refuses a raise, 0 ("unlimited") and settings that lift limits another way', () => {
    expect(code(() => readSettings({ max_execution_time: '11' }, limits))).to.equal(452);
    expect(code(() => readSettings({ MAX_MEMORY_USAGE: '0' }, limits))).to.equal(452);
    expect(code(() => readSettings({ max_memory_usage: '1G' }, limits))).to.equal(452);
    expect(code(() => readSettings({ max_memory_usage_for_user: '1' }, limits))).to.equal(164);
    expect(code(() => readSettings({ readonly: '0' }, limits))).to.equal(164);
    expect(code(() => readSettings({ readonly: '2' }, limits))).to.equal(undefined);
  });

  it('finds SETTINGS anywhere in a statement, never inside strings or comments', () => {
    expect(code(() => checkStatementSettings('SELECT 1 SETTINGS max_execution_time = 100', limits))).to.equal(452);
    expect(code(() => checkStatementSettings('SELECT * FROM (SELECT 1 SETTINGS `max_memory_usage`=0)', limits))).to.equal(452);
    expect(code(() => checkStatementSettings("SELECT 1 SETTINGS max_memory_usage = '5000'", limits))).to.equal(452);
    expect(code(() => checkStatementSettings('SELECT 1 SETTINGS max_memory_usage = 10 * 1000', limits))).to.equal(452);
    expect(code(() => checkStatementSettings('SELECT 1 SETTINGS max_memory_usage = 10, max_threads = 1', limits))).to.equal(undefined);
    expect(code(() => checkStatementSettings("SELECT 'max_execution_time = 100' /* max_memory_usage = 0 */", limits))).to.equal(undefined);
    expect(code(() => checkStatementSettings('SELECT 1 SETTINGS max_execution_time = 5', limits))).to.equal(undefined);
  });

  it('backs max_execution_time with a kill one second later', () => {
    expect(killAfterMs({ max_execution_time: 2 }, limits)).to.equal(3000);
    expect(killAfterMs({}, limits)).to.equal(11000);
    expect(killAfterMs({}, { ...limits, maxExecutionTime: 0 })).to.equal(undefined);
  });
});

describe('gateway: parameters substituted for classification', () => {
  it('replaces placeholders by typed literals and identifiers, quoting every value', () => {
    expect(substituteParams('SELECT {a:UInt8} + 1', { a: '7' })).to.equal("SELECT _CAST('7', 'UInt8') + 1");
    expect(substituteParams('SELECT * FROM {t:Identifier}', { t: 'x`y' })).to.equal('SELECT * FROM `x\\`y`');
    expect(substituteParams("SELECT {s:String}, '{s:String}'", { s: "it's" })).to.equal("SELECT _CAST('it\\'s', 'String'), '{s:String}'");
    expect(substituteParams("SELECT {e:Enum8('a' = 1, 'b' = 2)}", { e: 'a' })).to.equal("SELECT _CAST('a', 'Enum8(\\'a\\' = 1, \\'b\\' = 2)')");
    // Without a value the placeholder stays (EXPLAIN AST then refuses it, as ClickHouse would).
    expect(substituteParams('SELECT {missing:UInt8}', {})).to.equal('SELECT {missing:UInt8}');
  });
});
