// The stock @clickhouse/client against both endpoints of a real node (raftd + rafthouse, 2 groups):
// every call a user makes — ping, command, exec, insert, query, stream, query parameters, sessions,
// abort — with the answer checked, not just the absence of an error. The local endpoint is read-only:
// there a write is expected to fail with READONLY (164), and everything else to work as on the
// consistent one.

import { expect } from 'chai';
import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ClickHouseClientConfigOptions } from '@clickhouse/client';
import { Readable } from 'node:stream';
import { RafthouseCluster } from './harness.js';

type Endpoint = 'consistent' | 'local';

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

async function bytes(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return String((e as { code?: unknown }).code);
  }
  throw new Error('expected the call to fail');
}

describe('@clickhouse/client matrix: every call on both endpoints (1 node, 2 groups)', function () {
  this.timeout(180_000);
  let cluster: RafthouseCluster;
  const clients: ClickHouseClient[] = [];
  const url: Record<Endpoint, string> = { consistent: '', local: '' };

  before(async () => {
    cluster = await RafthouseCluster.start({ nodes: 1, groups: 2 });
    url.consistent = cluster.nodes[0]!.consistentUrl;
    url.local = cluster.nodes[0]!.localUrl;
    const c = client('consistent');
    await c.command({ query: 'CREATE TABLE m (id UInt32, name String, tags Array(String)) ENGINE = MergeTree ORDER BY id' });
    await c.insert({ table: 'm', values: [{ id: 1, name: 'one', tags: ['a'] }, { id: 2, name: "it's", tags: [] }], format: 'JSONEachRow' });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.destroy();
  });

  function client(endpoint: Endpoint, extra: Partial<ClickHouseClientConfigOptions> = {}): ClickHouseClient {
    // Quiet: the READONLY refusals this test expects would be logged as errors.
    const c = createClient({ url: url[endpoint], request_timeout: 60_000, log: { level: ClickHouseLogLevel.OFF }, ...extra });
    clients.push(c);
    return c;
  }

  for (const endpoint of ['consistent', 'local'] as const) {
    describe(endpoint, () => {
      it('ping', async () => {
        const r = await client(endpoint).ping();
        expect(r.success).to.equal(true);
      });

      it('command: DDL (consistent) or READONLY (local)', async () => {
        const c = client(endpoint);
        const ddl = c.command({ query: `CREATE TABLE cmd_${endpoint} (x UInt8) ENGINE = MergeTree ORDER BY x` });
        if (endpoint === 'local') {
          expect(await codeOf(ddl)).to.equal('164');
          const t = await (await c.query({ query: "SELECT count() AS n FROM system.tables WHERE name = 'cmd_local'", format: 'JSONEachRow' })).json<{ n: number }>();
          expect(Number(t[0]!.n)).to.equal(0);
          return;
        }
        const r = await ddl;
        expect(r.query_id).to.be.a('string').and.not.equal('');
        const t = await (await c.query({ query: "SELECT database, engine FROM system.tables WHERE name = 'cmd_consistent'", format: 'JSONEachRow' })).json<{ database: string; engine: string }>();
        expect(t).to.deep.equal([{ database: 'default', engine: 'MergeTree' }]);
      });

      it('insert: rows land once (consistent) or READONLY (local)', async () => {
        const c = client(endpoint);
        const values = [{ id: endpoint === 'local' ? 20 : 10, name: endpoint, tags: ['x', 'y'] }];
        const ins = c.insert({ table: 'm', values, format: 'JSONEachRow', query_id: `ins-${endpoint}` });
        if (endpoint === 'local') {
          expect(await codeOf(ins)).to.equal('164');
        } else {
          const r = await ins;
          expect(r.executed).to.equal(true);
          expect(r.query_id).to.equal(`ins-${endpoint}`);
          expect(Number(r.summary?.written_rows)).to.equal(1);
        }
        const rows = await (await client('consistent').query({ query: 'SELECT id, name, tags FROM m WHERE id >= 10 AND id < 30 ORDER BY id', format: 'JSONEachRow' })).json();
        expect(rows).to.deep.equal([{ id: 10, name: 'consistent', tags: ['x', 'y'] }]);
      });

      it('query: JSONEachRow, JSON with meta, CSV text, and its summary', async () => {
        const c = client(endpoint);
        const rs = await c.query({ query: 'SELECT id, name, tags FROM m WHERE id < 10 ORDER BY id', format: 'JSONEachRow', query_id: `q-${endpoint}` });
        expect(rs.query_id).to.equal(`q-${endpoint}`);
        expect(await rs.json()).to.deep.equal([{ id: 1, name: 'one', tags: ['a'] }, { id: 2, name: "it's", tags: [] }]);
        const doc = await (await c.query({ query: 'SELECT count() AS n FROM m WHERE id < 10', format: 'JSON' })).json<{ data: Array<{ n: number }>; meta: Array<{ name: string; type: string }>; rows: number }>();
        expect(doc.data).to.deep.equal([{ n: 2 }]); // ClickHouse 26's default: 64-bit integers unquoted
        expect(doc.meta).to.deep.equal([{ name: 'n', type: 'UInt64' }]);
        expect(doc.rows).to.equal(1);
        expect(await (await c.query({ query: 'SELECT id, name FROM m WHERE id < 10 ORDER BY id', format: 'CSV' })).text()).to.equal('1,"one"\n2,"it\'s"\n');
      });

      it('query parameters: typed, escaped, arrays, NULL', async () => {
        const c = client(endpoint);
        const rows = await (await c.query({
          query: 'SELECT {id:UInt32} AS id, {s:String} AS s, {arr:Array(String)} AS arr, {n:Nullable(String)} AS n, (SELECT name FROM m WHERE id = {id:UInt32}) AS name',
          query_params: { id: 2, s: "tab\there 'quoted' \\ back", arr: ["a'b", 'c'], n: null },
          format: 'JSONEachRow',
        })).json();
        expect(rows).to.deep.equal([{ id: 2, s: "tab\there 'quoted' \\ back", arr: ["a'b", 'c'], n: null, name: "it's" }]);
      });

      it('stream: rows as they come, in order', async () => {
        const rs = await client(endpoint).query({ query: 'SELECT number AS n FROM numbers(300000)', format: 'JSONCompactEachRow' });
        let count = 0;
        let sum = 0;
        let ordered = true;
        for await (const batch of rs.stream()) {
          for (const row of batch as Array<{ json: () => [string] }>) {
            const n = Number(row.json()[0]);
            if (n !== count) ordered = false;
            sum += n;
            count++;
          }
        }
        expect(count).to.equal(300_000);
        expect(ordered).to.equal(true);
        expect(sum).to.equal((300_000 * 299_999) / 2);
      });

      it('exec: the raw answer stream of a read, and of a write', async () => {
        const c = client(endpoint);
        const r = await c.exec({ query: 'SELECT name FROM m WHERE id = 1 FORMAT TabSeparated' });
        expect(await text(r.stream)).to.equal('one\n');
        const w = c.exec({ query: 'INSERT INTO m (id, name) VALUES (30, \'exec\')' });
        if (endpoint === 'local') {
          expect(await codeOf(w)).to.equal('164');
          return;
        }
        await text((await w).stream);
        const rows = await (await c.query({ query: 'SELECT name, tags FROM m WHERE id = 30', format: 'JSONEachRow' })).json();
        expect(rows).to.deep.equal([{ name: 'exec', tags: [] }]);
      });

      it('sessions: a temporary table (text and binary rows) and SET live in their session', async () => {
        const a = client(endpoint, { session_id: `matrix-${endpoint}-a` });
        const b = client(endpoint, { session_id: `matrix-${endpoint}-b` });
        await a.command({ query: 'CREATE TEMPORARY TABLE tmp (x UInt32)' });
        await a.insert({ table: 'tmp', values: [{ x: 4 }, { x: 5 }], format: 'JSONEachRow' });
        // Binary rows into the temporary table too (Parquet made by the node itself).
        const pq = await bytes((await a.exec({ query: 'SELECT toUInt32(100) AS x FORMAT Parquet' })).stream);
        await a.insert({ table: 'tmp', values: Readable.from([pq], { objectMode: false }), format: 'Parquet' });
        expect(await (await a.query({ query: 'SELECT sum(x) AS s FROM tmp', format: 'JSONEachRow' })).json()).to.deep.equal([{ s: 109 }]);
        expect(await codeOf(b.query({ query: 'SELECT sum(x) FROM tmp', format: 'JSONEachRow' }))).to.equal('60');
        await a.command({ query: 'SET output_format_json_quote_64bit_integers = 1' });
        expect(await (await a.query({ query: 'SELECT toUInt64(7) AS v', format: 'JSONEachRow' })).json()).to.deep.equal([{ v: '7' }]);
        expect(await (await b.query({ query: 'SELECT toUInt64(7) AS v', format: 'JSONEachRow' })).json()).to.deep.equal([{ v: 7 }]);
      });

      it('abort: the query stops in the engine, not just in the client', async () => {
        const c = client(endpoint);
        const ac = new AbortController();
        const running = c.query({ query: 'SELECT count() FROM numbers_mt(100000000000) WHERE sipHash64(number) = 0', format: 'JSONEachRow', abort_signal: ac.signal, query_id: `abort-${endpoint}` });
        const seen = async () => (await (await c.query({ query: `SELECT count() AS n FROM system.processes WHERE query_id = 'abort-${endpoint}'`, format: 'JSONEachRow' })).json<{ n: number }>())[0]!.n;
        for (let i = 0; i < 100 && (await seen()) === 0; i++) await new Promise((r) => setTimeout(r, 50));
        expect(await seen(), 'running before the abort').to.equal(1);
        ac.abort();
        let failed = false;
        try {
          await running;
        } catch {
          failed = true;
        }
        expect(failed).to.equal(true);
        let left = 1;
        for (let i = 0; i < 100 && left !== 0; i++) {
          left = await seen();
          if (left !== 0) await new Promise((r) => setTimeout(r, 100));
        }
        expect(left, 'gone from system.processes after the abort').to.equal(0);
      });
    });
  }
});
