// The server engine against a real clickhouse-server (CI starts Debian's 18.16 on port 18423 with
// scripts/clickhouse-server.sh). Skipped, saying so, only when nothing answers at CLICKHOUSE_URL.
import { expect } from 'chai';
import {
  ClickHouseError, EngineError, EngineUnsupportedError, MODE_REQUIREMENTS, openServer, requireCapabilities,
} from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { engineContract, rejection } from './contract.js';

const URL_ = process.env['CLICKHOUSE_URL'] ?? 'http://127.0.0.1:18423';

describe('clickhouse engine: server (HTTP)', function () {
  this.timeout(60_000);
  let engine: ClickHouseEngine | undefined;
  const db = `engine_test_${process.pid}_${Date.now()}`;

  before(async function () {
    try {
      engine = await openServer({ url: URL_, requestTimeoutMs: 20_000 });
    } catch (e) {
      if (e instanceof EngineError && e.code === 'ENGINE_UNREACHABLE') {
        console.log(`      (skipped: no ClickHouse server at ${URL_}; start one with "bash scripts/clickhouse-server.sh start" or set CLICKHOUSE_URL)`);
        this.skip();
      }
      throw e;
    }
  });

  after(async function () {
    if (!engine) return;
    await engine.exec(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
    await engine.close();
  });

  const get = (): ClickHouseEngine => {
    if (!engine) throw new Error('no server engine');
    return engine;
  };

  it('detects the version and the capabilities', async function () {
    const e = get();
    const v = (await e.query('SELECT version()', { format: 'TabSeparated' })).toString('utf8').trim();
    expect(e.kind).to.equal('server');
    expect(e.capabilities.version).to.equal(v);
    expect(`${e.capabilities.major}.${e.capabilities.minor}`).to.equal(v.split('.').slice(0, 2).join('.'));
    if (e.capabilities.major === 18) {
      // Debian's 18.16: none of the modern features RaftHouse leans on.
      expect(e.capabilities).to.include({
        dedupTokens: false, cloneAs: false, attachPartitionAll: false, mergeRegexp: false, backupRestore: false,
        explainAst: false, deterministicFunctionsTable: false,
      });
    }
  });

  it('leaves no probe database behind', async function () {
    const n = await get().query("SELECT count() FROM system.databases WHERE name LIKE '_rafthouse_probe_%'", { format: 'TabSeparated' });
    expect(n.toString('utf8').trim()).to.equal('0');
  });

  it('refuses exactly-once apply on a server without dedup tokens, naming what is missing', function () {
    const e = get();
    const mode = 'RaftHouse exactly-once apply';
    if (e.capabilities.dedupTokens) {
      requireCapabilities(e, [...MODE_REQUIREMENTS[mode]], mode); // a modern server passes
      return;
    }
    let thrown: unknown;
    try {
      requireCapabilities(e, [...MODE_REQUIREMENTS[mode]], mode);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).to.be.instanceOf(EngineUnsupportedError);
    const err = thrown as EngineUnsupportedError;
    expect(err.code).to.equal('ENGINE_UNSUPPORTED');
    expect(err.missing).to.deep.equal(['dedupTokens']);
    expect(err.message).to.contain(`ClickHouse ${e.capabilities.version} cannot run RaftHouse exactly-once apply: it lacks insert_deduplication_token (needs 22.2+)`);
  });

  it('names every missing capability of a mode, and only those', function () {
    const e = get();
    const needed = ['dedupTokens', 'cloneAs', 'attachPartitionAll', 'mergeRegexp'] as const;
    const expected = needed.filter((n) => !e.capabilities[n]);
    let thrown: unknown;
    try {
      requireCapabilities(e, [...needed], 'RaftHouse');
    } catch (err) {
      thrown = err;
    }
    if (expected.length === 0) expect(thrown).to.equal(undefined);
    else expect((thrown as EngineUnsupportedError).missing).to.deep.equal(expected);
  });

  it('passes query ids through to the server', async function () {
    const e = get();
    const id = `engine-test-${process.pid}-${Date.now()}`;
    await e.query('SELECT 1', { queryId: id, settings: { log_queries: 1 } });
    await e.exec('SYSTEM FLUSH LOGS');
    const n = await e.query('SELECT count() FROM system.query_log WHERE query_id = {id:String}', { format: 'TabSeparated' })
      .catch(async () => e.query(`SELECT count() FROM system.query_log WHERE query_id = '${id}'`, { format: 'TabSeparated' }));
    expect(Number(n.toString('utf8').trim())).to.be.at.least(1);
  });

  it('gives the legacy or modern error text the same code and name', async function () {
    const e = get();
    const err = await rejection(e.query('SELECT * FROM system.no_such_table_x'));
    expect(err).to.be.instanceOf(ClickHouseError);
    expect((err as ClickHouseError).code).to.equal(60);
    expect((err as ClickHouseError).name).to.equal('UNKNOWN_TABLE');
    if (e.capabilities.major === 18) {
      expect((err as ClickHouseError).raw).to.match(/^Code: 60, e\.displayText\(\) = /);
      expect(err.message).to.not.contain('e.what()');
    }
  });

  it('reports an unknown setting as 115', async function () {
    const err = await rejection(get().query('SELECT 1', { settings: { no_such_setting_xyz: 1 } }));
    expect((err as ClickHouseError).code).to.equal(115);
    expect((err as ClickHouseError).name).to.equal('UNKNOWN_SETTING');
  });

  describe('a read-only server user', function () {
    let ro: ClickHouseEngine | undefined;
    before(async function () {
      // scripts/clickhouse-server.sh defines `reader` with a readonly=1 profile; other servers may not.
      try {
        ro = await openServer({ url: URL_, username: 'reader', requestTimeoutMs: 20_000 });
      } catch (e) {
        if (e instanceof ClickHouseError && [192, 193, 516].includes(e.code)) {
          console.log('      (skipped: this server has no passwordless `reader` user; scripts/clickhouse-server.sh creates one)');
          this.skip();
        }
        throw e;
      }
    });
    after(async function () {
      await ro?.close();
    });

    it('is detected as read-only and probed without writing', function () {
      expect(ro!.readonly).to.equal(true);
      expect(ro!.capabilities.version).to.equal(get().capabilities.version);
      expect(ro!.capabilities.dedupTokens).to.equal(get().capabilities.dedupTokens);
    });

    it('gets 164 READONLY for DDL, INSERT and settings', async function () {
      for (const attempt of [
        () => ro!.exec(`CREATE DATABASE ${db}_ro`),
        () => ro!.insert('INSERT INTO system.one FORMAT TabSeparated', Buffer.from('0\n')),
        // A value no machine has as its default: readonly=1 lets a user "set" a setting to the value it
        // already has (max_threads: 1 passed on a one-core machine, where that is the default).
        () => ro!.query('SELECT 1', { settings: { max_result_rows: 987_654_321 } }),
      ]) {
        const err = await rejection(attempt());
        expect(err).to.be.instanceOf(ClickHouseError);
        expect((err as ClickHouseError).code).to.equal(164);
        expect((err as ClickHouseError).name).to.equal('READONLY');
      }
    });
  });

  describe('shared contract', function () {
    engineContract(get, db);
  });
});

describe('clickhouse engine: server unreachable', function () {
  it('fails to open with ENGINE_UNREACHABLE', async function () {
    const err = await rejection(openServer({ url: 'http://127.0.0.1:1', requestTimeoutMs: 2000 }));
    expect(err).to.be.instanceOf(EngineError);
    expect((err as EngineError).code).to.equal('ENGINE_UNREACHABLE');
  });
});
