// The behaviour both engines must share, run against each of them (embedded.test.ts, server.test.ts).
import { expect } from 'chai';
import { ClickHouseError, EngineError } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';

/** Rejects with what `p` throws; fails the test if `p` resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  expect.fail('expected the call to fail, it succeeded');
}

export function lines(buf: Buffer): string[] {
  return buf.toString('utf8').split('\n').filter((l) => l.length > 0);
}

export function engineContract(getEngine: () => ClickHouseEngine, dbName: string): void {
  const rows = [{ a: 1, s: 'one' }, { a: 2, s: "it's \"two\"" }, { a: 3, s: 'three\ttab' }];
  const payload = Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

  describe('contract: DDL / INSERT / SELECT round trips', function () {
    before(async function () {
      const e = getEngine();
      await e.exec(`CREATE DATABASE IF NOT EXISTS ${dbName}`);
      await e.exec('CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a', { database: dbName });
      const r = await e.insert(`INSERT INTO ${dbName}.t FORMAT JSONEachRow`, payload);
      expect(r.writtenRows).to.equal(3);
    });

    it('reads JSONEachRow by default', async function () {
      const out = await getEngine().query(`SELECT a, s FROM ${dbName}.t ORDER BY a`);
      expect(lines(out).map((l) => JSON.parse(l) as unknown)).to.deep.equal(rows);
    });

    it('reads CSV, TabSeparated and JSON', async function () {
      const e = getEngine();
      const csv = await e.query(`SELECT a, s FROM ${dbName}.t ORDER BY a`, { format: 'CSV' });
      expect(lines(csv)[1]).to.equal('2,"it\'s ""two"""');
      const tsv = await e.query(`SELECT a, s FROM ${dbName}.t ORDER BY a`, { format: 'TabSeparated' });
      expect(lines(tsv)[2]).to.equal('3\tthree\\ttab');
      const json = JSON.parse((await e.query(`SELECT a, s FROM ${dbName}.t ORDER BY a`, { format: 'JSON' })).toString('utf8')) as { data: unknown[]; rows: number };
      expect(json.rows).to.equal(3);
      expect(json.data).to.deep.equal(rows);
    });

    it('lets a FORMAT clause in the SQL win over the format option', async function () {
      const out = await getEngine().query(`SELECT a FROM ${dbName}.t ORDER BY a FORMAT TabSeparated`, { format: 'JSONEachRow' });
      expect(out.toString('utf8')).to.equal('1\n2\n3\n');
    });

    it('takes a TabSeparated insert with a column list and a chunked payload as one insert', async function () {
      const e = getEngine();
      await e.exec(`CREATE TABLE ${dbName}.t2 (a UInt32, s String) ENGINE = MergeTree ORDER BY a`);
      async function* chunks(): AsyncIterable<Uint8Array> {
        yield Buffer.from('10\tten\n11\tel');
        yield Buffer.from('even\n');
      }
      const r = await e.insert(`INSERT INTO ${dbName}.t2 (a, s) FORMAT TabSeparated`, chunks());
      expect(r.writtenRows).to.equal(2);
      const out = await e.query(`SELECT s FROM ${dbName}.t2 ORDER BY a`, { format: 'TabSeparated' });
      expect(out.toString('utf8')).to.equal('ten\neleven\n');
    });

    it('applies the database option to one call only', async function () {
      const e = getEngine();
      const inDb = await e.query('SELECT currentDatabase() AS d', { database: dbName, format: 'TabSeparated' });
      expect(inDb.toString('utf8').trim()).to.equal(dbName);
      const after = await e.query('SELECT currentDatabase() AS d', { format: 'TabSeparated' });
      expect(after.toString('utf8').trim()).to.equal('default');
    });

    it('applies settings to one call only', async function () {
      const e = getEngine();
      const q = "SELECT value FROM system.settings WHERE name = 'max_block_size'";
      const before = (await e.query(q, { format: 'TabSeparated' })).toString('utf8').trim();
      const during = (await e.query(q, { format: 'TabSeparated', settings: { max_block_size: 4321 } })).toString('utf8').trim();
      const after = (await e.query(q, { format: 'TabSeparated' })).toString('utf8').trim();
      expect(during).to.equal('4321');
      expect(after).to.equal(before);
      expect(before).to.not.equal('4321');
    });

    it('refuses USE and SET, which would outlive the call', async function () {
      const e = getEngine();
      for (const sql of [`USE ${dbName}`, 'SET max_threads = 1', '  -- comment\n set max_threads = 1']) {
        const err = await rejection(e.exec(sql));
        expect((err as EngineError).code).to.equal('ENGINE_BAD_REQUEST');
      }
      const d = await e.query('SELECT currentDatabase()', { format: 'TabSeparated' });
      expect(d.toString('utf8').trim()).to.equal('default');
    });

    it('refuses a bad setting name before sending anything', async function () {
      const err = await rejection(getEngine().query('SELECT 1', { settings: { 'max_threads = 1; DROP': 1 } }));
      expect(err).to.be.instanceOf(EngineError);
      expect((err as EngineError).code).to.equal('ENGINE_BAD_REQUEST');
    });

    it('streams a big result that equals the buffered one, and survives an early break', async function () {
      const e = getEngine();
      const sql = 'SELECT number, toString(number) FROM system.numbers LIMIT 200000';
      const whole = await e.query(sql, { format: 'TabSeparated' });
      const parts: Buffer[] = [];
      for await (const c of e.queryStream(sql, { format: 'TabSeparated' })) parts.push(Buffer.from(c));
      expect(Buffer.concat(parts).equals(whole)).to.equal(true);
      expect(whole.length).to.be.greaterThan(1_000_000);
      let seen = 0;
      for await (const c of e.queryStream(sql, { format: 'TabSeparated' })) {
        seen += c.length;
        break;
      }
      expect(seen).to.be.greaterThan(0);
      const still = await e.query('SELECT 42', { format: 'TabSeparated' });
      expect(still.toString('utf8').trim()).to.equal('42');
    });
  });

  describe('contract: errors keep ClickHouse codes', function () {
    it('unknown table is 60 UNKNOWN_TABLE', async function () {
      const err = await rejection(getEngine().query(`SELECT * FROM ${dbName}.no_such_table`));
      expect(err).to.be.instanceOf(ClickHouseError);
      expect((err as ClickHouseError).code).to.equal(60);
      expect((err as ClickHouseError).name).to.equal('UNKNOWN_TABLE');
      expect(err.message).to.contain('no_such_table');
    });

    it('syntax error is 62 SYNTAX_ERROR, from exec too', async function () {
      const err = await rejection(getEngine().exec('SELEC 1'));
      expect(err).to.be.instanceOf(ClickHouseError);
      expect((err as ClickHouseError).code).to.equal(62);
      expect((err as ClickHouseError).name).to.equal('SYNTAX_ERROR');
    });

    it('unknown database is 81 UNKNOWN_DATABASE', async function () {
      const err = await rejection(getEngine().exec('CREATE TABLE no_such_db_x.t (a UInt8) ENGINE = Memory'));
      expect((err as ClickHouseError).code).to.equal(81);
      expect((err as ClickHouseError).name).to.equal('UNKNOWN_DATABASE');
    });

    it('bad insert data fails with a parse code and writes nothing', async function () {
      const e = getEngine();
      const err = await rejection(e.insert(`INSERT INTO ${dbName}.t FORMAT JSONEachRow`, Buffer.from('{"a":"not a number","s":"x"}\n')));
      expect(err).to.be.instanceOf(ClickHouseError);
      expect((err as ClickHouseError).code).to.be.oneOf([6, 26, 27, 72, 117]);
      const n = await e.query(`SELECT count() FROM ${dbName}.t`, { format: 'TabSeparated' });
      expect(n.toString('utf8').trim()).to.equal('3');
    });

    it('a stream that fails half-way throws the error instead of handing it out as data', async function () {
      const sql = 'SELECT throwIf(number = 3000000) AS x FROM system.numbers LIMIT 5000000';
      let bytes = 0;
      let text = '';
      const err = await rejection((async () => {
        for await (const c of getEngine().queryStream(sql, { format: 'TabSeparated', settings: { max_block_size: 10000 } })) {
          bytes += c.length;
          text = Buffer.from(c).toString('latin1');
        }
      })());
      expect(err).to.be.instanceOf(ClickHouseError);
      expect((err as ClickHouseError).code).to.equal(395);
      expect(text).to.not.contain('DB::Exception');
      expect(bytes).to.be.lessThan(5000000 * 2);
    });

    it('refuses an insert statement without FORMAT', async function () {
      const err = await rejection(getEngine().insert(`INSERT INTO ${dbName}.t VALUES (1, 'x')`, Buffer.alloc(0)));
      expect((err as EngineError).code).to.equal('ENGINE_BAD_REQUEST');
    });
  });
}
