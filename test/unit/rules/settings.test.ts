// The settings allow-list (clickhouse-adapter/rules/settings.ts): what is refused where, with which
// ClickHouse code, and that every name it allows or fixes is a setting the embedded ClickHouse knows.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseError } from '../../../clickhouse-adapter/engine/errors.js';
import { queryRows } from '../../../clickhouse-adapter/engine/sql.js';
import {
  APPLY_BOUNDS, APPLY_SETTINGS, allowedSettingNames, checkSettings, settingsInSql,
} from '../../../clickhouse-adapter/rules/settings.js';
import type { SettingInput, SettingsPlace } from '../../../clickhouse-adapter/rules/settings.js';

function codeOf(settings: Record<string, SettingInput>, where: SettingsPlace): number | 'ok' {
  try {
    checkSettings(settings, where);
    return 'ok';
  } catch (e) {
    expect(e).to.be.instanceOf(ClickHouseError);
    return (e as ClickHouseError).code;
  }
}

describe('rules/settings: the settings allow-list', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rh-settings-'));
    engine = await openEmbedded({ dataDir: dir });
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('knows only settings ClickHouse knows (allowed, fixed and bounded ones)', async () => {
    const known = new Set((await queryRows<{ name: string }>(engine, 'SELECT name FROM system.settings')).map((r) => r.name));
    const names = [...allowedSettingNames('read'), ...Object.keys(APPLY_SETTINGS), ...Object.keys(APPLY_BOUNDS)];
    expect(names.filter((n) => !known.has(n))).to.deep.equal([]);
    // And ClickHouse takes the fixed values as they are.
    await engine.query('SELECT 1', { settings: { ...APPLY_SETTINGS, ...APPLY_BOUNDS }, format: 'TSV' });
  });

  it('refuses on the apply path every limit, readonly and thread/block setting (452), allows format and semantics settings', () => {
    for (const where of ['entry', 'set'] as const) {
      for (const s of <Array<Record<string, SettingInput>>>[
        { max_execution_time: 1 }, { max_memory_usage: 1 }, { max_block_size: 1 }, { readonly: 1 }, { max_threads: 1 },
        { max_rows_to_read: 10 }, { timeout_before_checking_execution_speed: 0 }, { min_execution_speed: 1e12 },
        { max_partitions_per_insert_block: 1 }, { default_table_engine: 'URL' }, { allow_ddl: 0 }, { max_result_rows: 1 },
        { receive_timeout: 1 }, { lock_acquire_timeout: 1 }, { MAX_EXECUTION_TIME: 1 },
      ]) expect(codeOf(s, where), `${where} ${JSON.stringify(s)}`).to.equal(452);
      for (const s of <Array<Record<string, SettingInput>>>[
        { input_format_skip_unknown_fields: 0 }, { format_csv_delimiter: ';' }, { date_time_input_format: 'best_effort' },
        { input_format_allow_errors_ratio: 0.1 }, { join_use_nulls: true }, { insert_null_as_default: '1' }, {},
      ]) expect(codeOf(s, where), `${where} ${JSON.stringify(s)}`).to.equal('ok');
    }
    expect(codeOf({ 'bad name': 1 }, 'entry')).to.equal(115);
  });

  it('checks values: booleans, bounds, enumerations, one-character delimiters', () => {
    expect(codeOf({ input_format_skip_unknown_fields: 2 }, 'entry')).to.equal(452);
    expect(codeOf({ input_format_allow_errors_ratio: 5 }, 'entry')).to.equal(452);
    expect(codeOf({ date_time_input_format: 'whatever' }, 'set')).to.equal(452);
    expect(codeOf({ format_csv_delimiter: ';;' }, 'entry')).to.equal(452);
    expect(codeOf({ input_format_allow_errors_num: -1 }, 'entry')).to.equal(452);
  });

  it('lets a read carry limits and output settings, never readonly or anything unknown', () => {
    expect(codeOf({ max_execution_time: 5, max_result_rows: 10, result_overflow_mode: 'break', output_format_json_quote_64bit_integers: 0 }, 'read')).to.equal('ok');
    expect(codeOf({ readonly: 0 }, 'read')).to.equal(452);
    expect(codeOf({ allow_introspection_functions: 1 }, 'read')).to.equal(452);
    expect(codeOf({ max_threads: 100000 }, 'read')).to.equal(452);
  });

  it('finds query-level SETTINGS clauses anywhere in a statement, not in strings, comments or a CREATE\'s table settings', () => {
    expect(settingsInSql('INSERT INTO t SELECT * FROM (SELECT 1 SETTINGS max_block_size = 1) SETTINGS max_execution_time=1, `max_threads` = -2'))
      .to.deep.equal({ max_block_size: 1, max_execution_time: 1, max_threads: -2 });
    expect(settingsInSql("INSERT INTO t SELECT 'SETTINGS max_threads = 1' /* SETTINGS readonly = 1 */")).to.deep.equal({});
    expect(settingsInSql("SELECT 1 settings max_memory_usage = '1'")).to.deep.equal({ max_memory_usage: '1' });
    const create = 'CREATE TABLE t ENGINE = MergeTree ORDER BY x SETTINGS index_granularity = 8192 AS SELECT 1 AS x SETTINGS max_execution_time = 1';
    expect(settingsInSql(create, true)).to.deep.equal({ max_execution_time: 1 });
  });
});
