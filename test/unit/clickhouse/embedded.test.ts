// The embedded engine (chdb 26.7) for real: the shared contract, plus what only it does here —
// a read-only Session beside the writer, dedup tokens, CLONE AS / ATTACH PARTITION ALL, capabilities.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClickHouseError, EngineError, MODE_REQUIREMENTS, openEmbedded, requireCapabilities,
} from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';
import { engineContract, lines, rejection } from './contract.js';
import { queryRows, quoteString } from '../../../clickhouse-adapter/engine/sql.js';

describe('clickhouse engine: embedded (chdb)', function () {
  this.timeout(60_000);
  let dir: string;
  let engine: ClickHouseEngine;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'rafthouse-engine-'));
    engine = await openEmbedded({ dataDir: dir });
  });

  after(async function () {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  engineContract(() => engine, 'contract_db');

  async function count(sql: string): Promise<number> {
    return Number((await engine.query(sql, { format: 'TabSeparated' })).toString('utf8').trim());
  }

  describe('capabilities', function () {
    it('probes every modern capability as present on 26.x', function () {
      const c = engine.capabilities;
      expect(c.major).to.be.at.least(22);
      expect(c.version.startsWith(`${c.major}.${c.minor}.`)).to.equal(true);
      expect(c).to.include({
        dedupTokens: true, cloneAs: true, attachPartitionAll: true, mergeRegexp: true, backupRestore: true,
        explainAst: true, deterministicFunctionsTable: true,
      });
      for (const [mode, needed] of Object.entries(MODE_REQUIREMENTS)) requireCapabilities(engine, needed, mode);
    });

    it('leaves no probe database behind', async function () {
      expect(await count("SELECT count() FROM system.databases WHERE name LIKE '_rafthouse_probe_%'")).to.equal(0);
    });

    it('reports the version SELECT version() reports', async function () {
      const v = (await engine.query('SELECT version()', { format: 'TabSeparated' })).toString('utf8').trim();
      expect(engine.capabilities.version).to.equal(v);
    });
  });

  describe('inserts', function () {
    before(async function () {
      await engine.exec('CREATE DATABASE ins');
      await engine.exec('CREATE TABLE ins.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a');
    });

    it('insertData: binary formats (Native, RowBinary, Parquet) with quoted names, a column list and settings, zero-copy', async function () {
      await engine.exec('CREATE TABLE ins.`we ird` (`a b` UInt32, s String, d UInt8 DEFAULT 9) ENGINE = MergeTree ORDER BY `a b`');
      for (const [i, format] of ['Native', 'RowBinary', 'Parquet'].entries()) {
        const data = await engine.query(`SELECT toUInt32(number + ${i * 10}) AS \`a b\`, concat('x', char(0), toString(number)) AS s FROM numbers(3)`, { format });
        const r = await engine.insertData({ database: 'ins', table: 'we ird', columns: ['a b', 's'], format, settings: { input_format_null_as_default: 1 } }, data);
        expect(r.writtenRows, format).to.equal(3);
      }
      const rows = await queryRows<{ n: number; h: string; d: number }>(engine, 'SELECT `a b` AS n, hex(s) AS h, d FROM ins.`we ird` ORDER BY n');
      expect(rows.map((r) => r.n)).to.deep.equal([0, 1, 2, 10, 11, 12, 20, 21, 22]);
      expect(rows[1]).to.deep.equal({ n: 1, h: '780031', d: 9 });
    });

    it('insertData: data is data whatever it holds (a `;` and a statement after it run nothing)', async function () {
      await engine.exec('CREATE TABLE ins.victim_raw (a UInt32) ENGINE = MergeTree ORDER BY a');
      await engine.exec('CREATE TABLE ins.lines (l String) ENGINE = MergeTree ORDER BY l');
      const text = "x'); DROP TABLE ins.victim_raw; --\n; DROP TABLE ins.victim_raw\n";
      await engine.insertData({ database: 'ins', table: 'lines', format: 'LineAsString' }, Buffer.from(text));
      await engine.insertData({ database: 'ins', table: 'lines', format: 'RawBLOB' }, Buffer.from(text));
      await rejection(engine.insertData({ database: 'ins', table: 'victim_raw', format: 'CSV' }, Buffer.from('1\n; DROP TABLE ins.victim_raw\n')));
      expect(await count("SELECT count() FROM system.tables WHERE database = 'ins' AND name = 'victim_raw'")).to.equal(1);
      expect(await count('SELECT count() FROM ins.lines')).to.equal(3);
      expect(await count(`SELECT count() FROM ins.lines WHERE l = ${quoteString(text)}`)).to.equal(1);
      // Values data is SQL: a statement after its rows is refused, not run.
      await rejection(engine.insertData({ database: 'ins', table: 'victim_raw', format: 'Values' }, Buffer.from('(1); DROP TABLE ins.victim_raw')));
      expect(await count("SELECT count() FROM system.tables WHERE database = 'ins' AND name = 'victim_raw'")).to.equal(1);
      // A format name is a name, never text to splice.
      const bad = await rejection(engine.insertData({ database: 'ins', table: 'lines', format: 'CSV; DROP TABLE ins.victim_raw' }, Buffer.from('a\n')));
      expect((bad as EngineError).code).to.equal('ENGINE_BAD_REQUEST');
    });

    it('takes other text formats and quoted names through the inline path', async function () {
      await engine.insert('INSERT INTO `ins`.`t` FORMAT Values', Buffer.from("(100, 'v1'), (101, 'v2')"));
      const r = await engine.insert('INSERT INTO ins.t FORMAT JSONCompactEachRow', Buffer.from('[102, "c"]\n'));
      expect(r.writtenRows).to.equal(1);
      expect(await count('SELECT count() FROM ins.t WHERE a >= 100')).to.equal(3);
    });

    it('refuses inline data that would end the statement and run another (`(1); DROP TABLE ...`)', async function () {
      await engine.exec('CREATE TABLE ins.victim (a UInt32) ENGINE = MergeTree ORDER BY a');
      const err = await rejection(engine.insert('INSERT INTO `ins`.`t` FORMAT Values', Buffer.from("(200, 'x'); DROP TABLE ins.victim")));
      expect((err as EngineError).code).to.equal('ENGINE_BAD_REQUEST');
      expect(await count("SELECT count() FROM system.tables WHERE database = 'ins' AND name = 'victim'")).to.equal(1);
      expect(await count('SELECT count() FROM ins.t WHERE a = 200')).to.equal(0);
      // A ';' inside a string, or a lone trailing one, is data, not a second statement.
      await engine.insert('INSERT INTO `ins`.`t` FORMAT Values', Buffer.from("(201, 'a;b');\n"));
      expect(await count("SELECT count() FROM ins.t WHERE a = 201 AND s = 'a;b'")).to.equal(1);
    });

    it('takes a `;` in CSV/TSV data on the inline path as data, and runs nothing after it', async function () {
      await engine.insert('INSERT INTO `ins`.`t` FORMAT CSV', Buffer.from('300,"p;q"\n'));
      await engine.insert('INSERT INTO `ins`.`t` FORMAT TabSeparated', Buffer.from("301\tu;v\n302\tO'Brien;\n"));
      expect(await count("SELECT count() FROM ins.t WHERE (a = 300 AND s = 'p;q') OR (a = 301 AND s = 'u;v') OR (a = 302 AND s = 'O\\'Brien;')")).to.equal(3);
      // Format data cannot end the statement: this fails to parse as CSV instead of running the DROP.
      await engine.exec('CREATE TABLE ins.victim_csv (a UInt32) ENGINE = MergeTree ORDER BY a');
      await rejection(engine.insert('INSERT INTO `ins`.`t` FORMAT CSV', Buffer.from('303,"x"\n; DROP TABLE ins.victim_csv\n')));
      expect(await count("SELECT count() FROM system.tables WHERE database = 'ins' AND name = 'victim_csv'")).to.equal(1);
    });

    it('refuses a binary payload it cannot carry, with ENGINE_FORMAT_UNSUPPORTED', async function () {
      const err = await rejection(engine.insert('INSERT INTO ins.t FORMAT RowBinary', Buffer.from([1, 0, 0, 0, 1, 0x78])));
      expect((err as EngineError).code).to.equal('ENGINE_FORMAT_UNSUPPORTED');
    });

    it('binds query parameters without splicing them into the SQL', async function () {
      const out = await engine.query('SELECT {v:String} AS v', { params: { v: "x'); DROP DATABASE ins; --" } });
      expect(JSON.parse(out.toString('utf8'))).to.deep.equal({ v: "x'); DROP DATABASE ins; --" });
    });
  });

  describe('per-call context', function () {
    it('keeps interleaved, concurrent database/settings contexts apart', async function () {
      await engine.exec('CREATE DATABASE IF NOT EXISTS ctx_a');
      await engine.exec('CREATE DATABASE IF NOT EXISTS ctx_b');
      const q = "SELECT currentDatabase() AS d, (SELECT value FROM system.settings WHERE name = 'max_block_size') AS m";
      const contexts = [
        { database: 'ctx_a', settings: { max_block_size: 111 } },
        { database: 'ctx_b', settings: { max_block_size: 222 } },
        { database: 'ctx_a', settings: { max_block_size: 333 } },
        { database: 'ctx_b' },
      ];
      const calls = Array.from({ length: 40 }, (_, i) => contexts[i % contexts.length]!);
      const results = await Promise.all(calls.map((c) => engine.query(q, { ...c, format: 'TabSeparated' })));
      const plain = (await engine.query("SELECT value FROM system.settings WHERE name = 'max_block_size'", { format: 'TabSeparated' })).toString('utf8').trim();
      results.forEach((r, i) => {
        const c = calls[i]!;
        const expected = `${c.database}\t${c.settings ? c.settings.max_block_size : plain}`;
        expect(r.toString('utf8').trim()).to.equal(expected);
      });
      const after = await engine.query('SELECT currentDatabase()', { format: 'TabSeparated' });
      expect(after.toString('utf8').trim()).to.equal('default');
    });

    it('moves pooled Sessions between many databases (more than ever pooled) without mixing them up', async function () {
      // One database per state-machine group: 40 databases, 200 concurrent calls over them and back.
      const dbs = Array.from({ length: 40 }, (_, i) => `ctx_many_${i}`);
      for (const d of dbs) await engine.exec(`CREATE DATABASE IF NOT EXISTS ${d}`);
      const calls = Array.from({ length: 200 }, (_, i) => ({ database: dbs[(i * 7) % dbs.length]!, ...(i % 3 === 0 ? { settings: { max_block_size: 1000 + i } } : {}) }));
      const q = "SELECT currentDatabase(), (SELECT value FROM system.settings WHERE name = 'max_block_size')";
      const plain = (await engine.query("SELECT value FROM system.settings WHERE name = 'max_block_size'", { format: 'TabSeparated' })).toString('utf8').trim();
      const results = await Promise.all(calls.map((c) => engine.query(q, { ...c, format: 'TabSeparated' })));
      results.forEach((r, i) => expect(r.toString('utf8').trim()).to.equal(`${calls[i]!.database}\t${calls[i]!.settings?.max_block_size ?? plain}`));
      expect((await engine.query('SELECT currentDatabase()', { format: 'TabSeparated' })).toString('utf8').trim()).to.equal('default');
    });

    it('does not reuse a context Session after a statement list that could have changed it', async function () {
      const ctx = { database: 'ctx_a', settings: { max_block_size: 444 } };
      await engine.exec('SELECT 1; USE ctx_b', ctx); // chdb runs both; that Session must be dropped, not pooled
      const d = await engine.query('SELECT currentDatabase()', { ...ctx, format: 'TabSeparated' });
      expect(d.toString('utf8').trim()).to.equal('ctx_a');
    });
  });

  describe('exactly-once building blocks: dedup tokens', function () {
    const settings = {
      max_insert_block_size: 100, min_insert_block_size_rows: 0, min_insert_block_size_bytes: 0, max_insert_threads: 1,
    };
    const rowsPayload = (from: number, n: number): Buffer =>
      Buffer.from(Array.from({ length: n }, (_, i) => JSON.stringify({ a: from + i, s: `r${from + i}` })).join('\n') + '\n');

    before(async function () {
      await engine.exec('CREATE DATABASE dd');
      await engine.exec('CREATE TABLE dd.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 1000');
    });

    it('drops a replay with the same token, even with different data', async function () {
      await engine.insert("INSERT INTO dd.t SETTINGS insert_deduplication_token = 'g1:1' FORMAT JSONEachRow", rowsPayload(0, 5));
      await engine.insert("INSERT INTO dd.t SETTINGS insert_deduplication_token = 'g1:1' FORMAT JSONEachRow", rowsPayload(500, 5));
      expect(await count('SELECT count() FROM dd.t')).to.equal(5);
      expect(await count('SELECT max(a) FROM dd.t')).to.equal(4);
      // The token may come as an option instead of in the statement: same effect.
      await engine.insert('INSERT INTO dd.t FORMAT JSONEachRow', rowsPayload(0, 5), { settings: { insert_deduplication_token: 'g1:1' } });
      expect(await count('SELECT count() FROM dd.t')).to.equal(5);
      await engine.insert('INSERT INTO dd.t FORMAT JSONEachRow', rowsPayload(5, 5), { settings: { insert_deduplication_token: 'g1:2' } });
      expect(await count('SELECT count() FROM dd.t')).to.equal(10);
    });

    it('drops a replay of a many-block insert only when block formation is pinned the same', async function () {
      await engine.exec('TRUNCATE TABLE dd.t');
      const data = rowsPayload(1000, 1000);
      const sql = "INSERT INTO dd.t SETTINGS insert_deduplication_token = 'g1:7' FORMAT JSONEachRow";
      await engine.insert(sql, data, { settings });
      expect(await count('SELECT count() FROM dd.t')).to.equal(1000);
      await engine.insert(sql, data, { settings }); // same pinned settings: every block is a duplicate
      expect(await count('SELECT count() FROM dd.t')).to.equal(1000);
      // A different block split gives blocks different tokens: rows come in again. Here an entry applied
      // as one block and replayed as ten 100-row blocks re-inserts 900 rows. This is why the apply path
      // must pin block formation identically on apply and on replay.
      const once = "INSERT INTO dd.t SETTINGS insert_deduplication_token = 'g1:8' FORMAT JSONEachRow";
      const more = rowsPayload(5000, 1000);
      await engine.insert(once, more, { settings: { ...settings, max_insert_block_size: 1000 } });
      expect(await count('SELECT count() FROM dd.t')).to.equal(2000);
      await engine.insert(once, more, { settings });
      expect(await count('SELECT count() FROM dd.t')).to.be.greaterThan(2000);
    });
  });

  describe('point-in-time copies', function () {
    before(async function () {
      await engine.exec('CREATE DATABASE src');
      await engine.exec('CREATE DATABASE snap');
      await engine.exec('CREATE TABLE src.t (a UInt32) ENGINE = MergeTree ORDER BY a');
      await engine.insert('INSERT INTO src.t FORMAT TabSeparated', Buffer.from('1\n2\n3\n'));
    });

    it('CLONE AS copies a table that later source inserts do not change', async function () {
      await engine.exec('CREATE TABLE snap.c CLONE AS src.t');
      await engine.insert('INSERT INTO src.t FORMAT TabSeparated', Buffer.from('4\n'));
      expect(await count('SELECT count() FROM snap.c')).to.equal(3);
      expect(await count('SELECT count() FROM src.t')).to.equal(4);
    });

    it('ATTACH PARTITION ALL FROM copies every part', async function () {
      await engine.exec('CREATE TABLE snap.a AS src.t');
      await engine.exec('ALTER TABLE snap.a ATTACH PARTITION ALL FROM src.t');
      expect(await count('SELECT count() FROM snap.a')).to.equal(4);
      await engine.insert('INSERT INTO src.t FORMAT TabSeparated', Buffer.from('5\n'));
      expect(await count('SELECT count() FROM snap.a')).to.equal(4);
    });
  });

  describe('read-only engine beside the writer', function () {
    let ro: ClickHouseEngine;
    before(async function () {
      await engine.exec('CREATE DATABASE rodb');
      await engine.exec('CREATE TABLE rodb.t (a UInt32) ENGINE = MergeTree ORDER BY a');
      await engine.insert('INSERT INTO rodb.t FORMAT TabSeparated', Buffer.from('1\n'));
      ro = await openEmbedded({ dataDir: dir, readonly: true });
    });
    after(async function () {
      await ro?.close();
    });

    it('reads what the writer wrote', async function () {
      expect(ro.readonly).to.equal(true);
      expect(lines(await ro.query('SELECT a FROM rodb.t', { format: 'TabSeparated' }))).to.deep.equal(['1']);
    });

    it('refuses INSERT, DDL and settings with 164 READONLY, while the writer still writes', async function () {
      for (const attempt of [
        () => ro.insert('INSERT INTO rodb.t FORMAT TabSeparated', Buffer.from('2\n')),
        () => ro.exec('CREATE TABLE rodb.x (a UInt8) ENGINE = Memory'),
        () => ro.query('SELECT 1', { settings: { max_threads: 1 } }),
      ]) {
        const err = await rejection(attempt());
        expect(err).to.be.instanceOf(ClickHouseError);
        expect((err as ClickHouseError).code).to.equal(164);
        expect((err as ClickHouseError).name).to.equal('READONLY');
      }
      await engine.insert('INSERT INTO rodb.t FORMAT TabSeparated', Buffer.from('3\n'));
      expect(lines(await ro.query('SELECT a FROM rodb.t ORDER BY a', { format: 'TabSeparated' }))).to.deep.equal(['1', '3']);
    });

    it('with allowSettings (readonly=2) takes per-call settings but still refuses writes', async function () {
      const ro2 = await openEmbedded({ dataDir: dir, readonly: true, allowSettings: true });
      try {
        const m = await ro2.query("SELECT value FROM system.settings WHERE name = 'max_block_size'", { settings: { max_block_size: 555 }, format: 'TabSeparated' });
        expect(m.toString('utf8').trim()).to.equal('555');
        const err = await rejection(ro2.insert('INSERT INTO rodb.t FORMAT TabSeparated', Buffer.from('9\n')));
        expect((err as ClickHouseError).code).to.equal(164);
      } finally {
        await ro2.close();
      }
    });

    it('probes capabilities without writing', function () {
      expect(ro.capabilities).to.deep.equal(engine.capabilities);
    });
  });

  describe('sessions (EngineSession, for HTTP session_id)', function () {
    let ro: ClickHouseEngine;
    before(async function () {
      ro = await openEmbedded({ dataDir: dir, readonly: true, allowSettings: true });
    });
    after(async function () {
      await ro?.close();
    });

    it('keeps temporary tables and SET in its own session, and still refuses real writes', async function () {
      const a = ro.openSession(60);
      const b = ro.openSession(60);
      try {
        await a.query('CREATE TEMPORARY TABLE tmp (x UInt32)', { format: 'TabSeparated' });
        await a.query('INSERT INTO tmp VALUES (1), (2)', { format: 'TabSeparated' });
        await a.query('SET max_threads = 3', { format: 'TabSeparated' });
        expect(lines(await a.query("SELECT count(), getSetting('max_threads') FROM tmp", { format: 'TabSeparated' }))).to.deep.equal(['2\t3']);
        expect((await rejection(b.query('SELECT count() FROM tmp', { format: 'TabSeparated' })) as ClickHouseError).code).to.equal(60);
        expect(lines(await b.query("SELECT getSetting('max_threads') = 3", { format: 'TabSeparated' }))).to.deep.equal(['0']);
        expect((await rejection(a.query('CREATE TABLE default.x (a UInt8) ENGINE = Memory', { format: 'TabSeparated' })) as ClickHouseError).code).to.equal(164);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('comes clean after a query that failed half-way through its output (no byte of it in the next result)', async function () {
      const s = ro.openSession(60);
      try {
        await s.query('CREATE TEMPORARY TABLE keep (x UInt8)', { format: 'TabSeparated' });
        await s.query('INSERT INTO keep VALUES (7)', { format: 'TabSeparated' });
        const err = await rejection(s.query('SELECT throwIf(number = 500000) FROM numbers(1000000)', { format: 'TabSeparated' }));
        expect((err as ClickHouseError).code).to.equal(395);
        expect(lines(await s.query('SELECT 43', { format: 'TabSeparated' }))).to.deep.equal(['43']);
        // The same after a stream that failed half-way, and one abandoned early.
        const failed = await rejection((async () => {
          for await (const c of s.queryStream('SELECT number, throwIf(number = 3000000) FROM numbers(5000000)', { format: 'TabSeparated' })) void c;
        })());
        expect((failed as ClickHouseError).code).to.equal(395);
        expect(lines(await s.query('SELECT 44', { format: 'TabSeparated' }))).to.deep.equal(['44']);
        for await (const c of s.queryStream('SELECT number FROM numbers(10000000)', { format: 'TabSeparated' })) {
          void c;
          break;
        }
        expect(lines(await s.query('SELECT x FROM keep', { format: 'TabSeparated' }))).to.deep.equal(['7']);
      } finally {
        await s.close();
      }
    });

    it('query parameters in the escaped format, in streams and sessions alike; a stream never leaves them in a pooled Session', async function () {
      // ClickHouse's escaped text of a String: `\'` is a quote, `\t` a tab.
      const params = { s: "a\\'b\\tc" };
      const streamed = async (e: ClickHouseEngine | ReturnType<ClickHouseEngine['openSession']>, sql: string, p?: Record<string, string>) => {
        const parts: Buffer[] = [];
        for await (const c of e.queryStream(sql, { format: 'JSONEachRow', ...(p ? { params: p } : {}) })) parts.push(Buffer.from(c));
        return Buffer.concat(parts).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { s: string });
      };
      const rows = await streamed(ro, 'SELECT {s:String} AS s, number FROM numbers(300000)', params);
      expect(rows.length).to.equal(300_000);
      expect(rows[0]!.s).to.equal("a'b\tc");
      expect(rows[299_999]!.s).to.equal("a'b\tc");
      // The Session that carried them is not pooled: the next stream and query without them fail (456).
      for (let i = 0; i < 3; i++) {
        const err = await rejection(streamed(ro, 'SELECT {s:String} AS s'));
        expect((err as ClickHouseError).code, String(err)).to.equal(456);
        expect((await rejection(ro.query('SELECT {s:String} AS s', { format: 'JSONEachRow' })) as ClickHouseError).code).to.equal(456);
      }
      const s = ro.openSession(60);
      try {
        expect(JSON.parse((await s.query('SELECT {s:String} AS s', { format: 'JSONEachRow', params })).toString('utf8'))).to.deep.equal({ s: "a'b\tc" });
        const inSession = await streamed(s, 'SELECT {s:String} AS s FROM numbers(200000)', { s: 'x\\ny' });
        expect(inSession.length).to.equal(200_000);
        expect(inSession[199_999]!.s).to.equal('x\ny');
      } finally {
        await s.close();
      }
    });

    it('streams in order, block by block, concatenating to the whole result', async function () {
      const s = ro.openSession(60);
      try {
        let n = 0;
        let chunks = 0;
        for await (const c of s.queryStream('SELECT number FROM numbers(1000000)', { format: 'TabSeparated' })) {
          chunks++;
          n += c.length;
        }
        expect(n).to.equal(6_888_890);
        expect(chunks).to.be.above(1);
      } finally {
        await s.close();
      }
    });
  });

  describe('lifecycle', function () {
    it('refuses a second data directory while this one is open', async function () {
      const other = mkdtempSync(join(tmpdir(), 'rafthouse-engine-other-'));
      try {
        const err = await rejection(openEmbedded({ dataDir: other }));
        expect((err as EngineError).code).to.equal('ENGINE_OPEN_FAILED');
        expect(await count('SELECT 7')).to.equal(7);
      } finally {
        rmSync(other, { recursive: true, force: true });
      }
    });

    it('a closed engine fails with ENGINE_CLOSED', async function () {
      const second = await openEmbedded({ dataDir: dir });
      await second.close();
      const err = await rejection(second.query('SELECT 1'));
      expect((err as EngineError).code).to.equal('ENGINE_CLOSED');
      expect(await count('SELECT 8')).to.equal(8);
    });
  });
});
