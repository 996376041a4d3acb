// ClickHouse's HTTP interface as a server speaks it (issue 23, deliverable 1), on both endpoints of one
// real node (raftd + rafthouse with embedded chdb): parameter escaping, implicit_select off, error
// names and texts, compressed answers and errors, Content-Type per format, multipart bodies, and the
// X-ClickHouse-* headers. Driven with raw HTTP (what curl sends) and the stock @clickhouse/client.

import { expect } from 'chai';
import * as nodeHttp from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { RafthouseCluster } from './harness.js';

interface Raw { status: number; body: Buffer; text: string; headers: nodeHttp.IncomingHttpHeaders }

/** One request through node:http: no decoding of the answer, any headers (what curl does). */
function request(base: string, body: string | Buffer, opts: { query?: Record<string, string>; headers?: Record<string, string>; method?: string } = {}): Promise<Raw> {
  const u = new URL(`${base}/?${new URLSearchParams(opts.query ?? {})}`);
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'POST', headers: opts.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, body: b, text: b.toString('utf8'), headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function decode(r: Raw): string {
  const e = r.headers['content-encoding'];
  if (e === 'gzip') return gunzipSync(r.body).toString('utf8');
  if (e === 'deflate') return inflateSync(r.body).toString('utf8');
  if (e === 'br') return brotliDecompressSync(r.body).toString('utf8');
  return r.text;
}

describe('RaftHouse HTTP interface fidelity (1 node, both endpoints)', function () {
  this.timeout(120_000);
  let cluster: RafthouseCluster;
  let endpoints: Array<[string, string]>;
  const clients: ClickHouseClient[] = [];

  before(async () => {
    cluster = await RafthouseCluster.start({ nodes: 1, groups: 1 });
    endpoints = [['consistent', cluster.nodes[0]!.consistentUrl], ['local', cluster.nodes[0]!.localUrl]];
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.destroy();
  });

  function client(url: string, extra: Partial<Parameters<typeof createClient>[0]> = {}): ClickHouseClient {
    const c = createClient({ url, request_timeout: 30_000, ...extra });
    clients.push(c);
    return c;
  }

  it('unescapes query parameters as ClickHouse does (the escaped format of their type)', async () => {
    const cases: Array<[string, string, unknown, unknown]> = [
      ['String', "foo_\\'_bar", "foo_'_bar", 9],
      ['String', 'a\\tb', 'a\tb', 3],
      ['String', 'a\\\\b', 'a\\b', 3],
      ['String', 'a\\nb', 'a\nb', 3],
      ['Nullable(String)', '\\N', null, null],
      ['Array(String)', "['it\\'s','x']", ["it's", 'x'], 2],
    ];
    for (const [name, base] of endpoints) {
      for (const [type, raw, value, length] of cases) {
        const r = await request(base, `SELECT {s:${type}} AS s, length(s) AS n FORMAT JSONEachRow`, { query: { param_s: raw } });
        expect(r.status, `${name} ${raw}: ${r.text}`).to.equal(200);
        expect(JSON.parse(r.text), `${name} ${raw}`).to.deep.equal({ s: value, n: length });
      }
      // A raw tab ends an escaped value early: BAD_QUERY_PARAMETER, as on a server.
      const tab = await request(base, 'SELECT {s:String}', { query: { param_s: 'a\tb' } });
      expect(tab.headers['x-clickhouse-exception-code'], tab.text).to.equal('457');
      // The stock client escapes its values; they arrive as given.
      const c = client(base);
      const rows = await (await c.query({
        query: 'SELECT {s:String} AS s, {a:Array(String)} AS a, {n:Nullable(UInt8)} AS n',
        query_params: { s: "it's a \\ back\tslash\n", a: ["o'k", 'b\\c'], n: null }, format: 'JSONEachRow',
      })).json<{ s: string; a: string[]; n: number | null }>();
      expect(rows, name).to.deep.equal([{ s: "it's a \\ back\tslash\n", a: ["o'k", 'b\\c'], n: null }]);
    }
  });

  it('has implicit_select off: a bare expression is a syntax error (62), as on a server', async () => {
    for (const [name, base] of endpoints) {
      for (const sql of ['foobar', '1+2']) {
        const r = await request(base, sql);
        expect(r.status, `${name} ${sql}: ${r.text}`).to.equal(400);
        expect(r.headers['x-clickhouse-exception-code']).to.equal('62');
        expect(r.text).to.match(/^Code: 62\. DB::Exception: Syntax error.*\(SYNTAX_ERROR\) \(version [0-9.]+\)\n$/s);
      }
    }
  });

  it('keeps the whole error text and the right name when the message holds an (UPPERCASE) word', async () => {
    for (const [name, base] of endpoints) {
      const r = await request(base, "SELECT throwIf(1, 'failed (BOOM) here')");
      expect(r.headers['x-clickhouse-exception-code'], name).to.equal('395');
      expect(r.text).to.match(/^Code: 395\. DB::Exception: failed \(BOOM\) here\b.*\. \(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO\) \(version [0-9.]+\)\n$/s);
      const c = client(base);
      const err = await c.query({ query: "SELECT throwIf(1, 'failed (BOOM) here')" }).then(() => undefined, (e: unknown) => e as { code?: string; type?: string; message: string });
      expect(err?.code, name).to.equal('395');
      // The client's own parser cuts the message at the first upper-case word in parentheses and takes it
      // for the type, against a ClickHouse server too: the text is the server's, so only its code is checked.
      expect(err?.message).to.be.a('string');
    }
  });

  it('compresses answers and errors in gzip, deflate and br when asked, and only then', async () => {
    for (const [name, base] of endpoints) {
      for (const enc of ['gzip', 'deflate', 'br']) {
        const ok = await request(base, 'SELECT 41 + 1 FORMAT CSV', { query: { enable_http_compression: '1' }, headers: { 'accept-encoding': enc } });
        expect(ok.status, name).to.equal(200);
        expect(ok.headers['content-encoding'], `${name} ${enc}`).to.equal(enc);
        expect(decode(ok)).to.equal('42\n');
        const bad = await request(base, "SELECT throwIf(1, 'zipped')", { query: { enable_http_compression: '1' }, headers: { 'accept-encoding': enc } });
        expect(bad.headers['content-encoding'], `${name} ${enc} error`).to.equal(enc);
        expect(bad.headers['x-clickhouse-exception-code']).to.equal('395');
        expect(decode(bad)).to.match(/^Code: 395\. DB::Exception: zipped/);
      }
      // Not asked (no enable_http_compression, or an encoding Node cannot produce): plain.
      const plain = await request(base, 'SELECT 1', { headers: { 'accept-encoding': 'gzip' } });
      expect(plain.headers['content-encoding']).to.equal(undefined);
      const zstd = await request(base, 'SELECT 1', { query: { enable_http_compression: '1' }, headers: { 'accept-encoding': 'zstd' } });
      expect(zstd.headers['content-encoding']).to.equal(undefined);
      expect(zstd.text).to.equal('1\n');
      // ClickHouse's native block compression: refused clearly rather than answered in another form.
      const native = await request(base, 'SELECT 1', { query: { compress: '1' } });
      expect(native.headers['x-clickhouse-exception-code'], native.text).to.equal('48');
      // The stock client with response compression reads compressed results and errors.
      const c = client(base, { compression: { response: true } });
      expect(await (await c.query({ query: 'SELECT 7 AS x', format: 'JSONEachRow' })).json()).to.deep.equal([{ x: 7 }]);
      const err = await c.query({ query: "SELECT throwIf(1, 'gz')" }).then(() => undefined, (e: unknown) => e as { code?: string });
      expect(err?.code, name).to.equal('395');
    }
  });

  it('sends ClickHouse\'s Content-Type for each format family', async () => {
    const expected: Array<[string, string]> = [
      ['JSONEachRow', 'application/x-ndjson; charset=UTF-8'],
      ['JSONStringsEachRow', 'application/x-ndjson; charset=UTF-8'],
      ['JSON', 'application/json; charset=UTF-8'],
      ['JSONCompact', 'application/json; charset=UTF-8'],
      ['CSV', 'text/csv; charset=UTF-8; header=absent'],
      ['CSVWithNames', 'text/csv; charset=UTF-8; header=present'],
      ['TabSeparated', 'text/tab-separated-values; charset=UTF-8'],
      ['TSVWithNames', 'text/tab-separated-values; charset=UTF-8'],
      ['RowBinary', 'application/octet-stream'],
      ['Native', 'application/octet-stream'],
      ['Parquet', 'application/octet-stream'],
      ['Pretty', 'text/plain; charset=UTF-8'],
      ['XML', 'application/xml; charset=UTF-8'],
    ];
    for (const [name, base] of endpoints) {
      for (const [format, type] of expected) {
        const r = await request(base, `SELECT 1 AS x FORMAT ${format}`);
        expect(r.status, `${name} ${format}: ${r.text}`).to.equal(200);
        expect(r.headers['content-type'], `${name} ${format}`).to.equal(type);
        expect(r.headers['x-clickhouse-format']).to.equal(format);
      }
      const arr = await request(base, 'SELECT 1 AS x FORMAT JSONEachRow', { query: { output_format_json_array_of_rows: '1' } });
      expect(arr.headers['content-type']).to.equal('application/json; charset=UTF-8');
    }
  });

  it('takes multipart/form-data bodies as fields, never as SQL, taking file parts as external data', async () => {
    for (const [name, base] of endpoints) {
      const form = new FormData();
      form.set('query', 'SELECT {x:UInt8} + 1 AS y FORMAT JSONEachRow');
      form.set('param_x', '41');
      const r = await fetch(`${base}/`, { method: 'POST', body: form });
      expect(r.status, `${name}: ${await r.clone().text()}`).to.equal(200);
      expect(await r.json()).to.deep.equal({ y: 42 });
      // The query in the URL, parameters and settings in the form.
      const form2 = new FormData();
      form2.set('param_s', "a\\'b");
      form2.set('max_block_size', '777');
      const r2 = await fetch(`${base}/?query=${encodeURIComponent("SELECT {s:String} AS s, getSetting('max_block_size') AS b FORMAT JSONEachRow")}`, { method: 'POST', body: form2 });
      expect(await r2.json(), name).to.deep.equal({ s: "a'b", b: 777 });
      // No query field: an empty query, whatever the parts say.
      const none = new FormData();
      none.set('sql', 'SELECT 1');
      const n = await fetch(`${base}/`, { method: 'POST', body: none });
      expect(n.headers.get('x-clickhouse-exception-code'), name).to.equal('62');
    }
  });

  it('reads external data tables (multipart file parts) on both endpoints, joined with a replicated table', async () => {
    const consistent = endpoints[0]![1];
    await request(consistent, 'CREATE TABLE ext_names (id UInt32, name String) ENGINE = MergeTree ORDER BY id').then((r) => expect(r.status, r.text).to.equal(200));
    await request(consistent, "INSERT INTO ext_names VALUES (1, 'one'), (2, 'two'), (3, 'three')").then((r) => expect(r.status, r.text).to.equal(200));
    const post = async (base: string, fill: (f: FormData) => void, url = ''): Promise<{ status: number; code: string | null; text: string }> => {
      const f = new FormData();
      fill(f);
      const r = await fetch(`${base}/${url}`, { method: 'POST', body: f });
      return { status: r.status, code: r.headers.get('x-clickhouse-exception-code'), text: await r.text() };
    };
    for (const [name, base] of endpoints) {
      // One table, TabSeparated by default, structure as a field (what curl -F sends).
      const one = await post(base, (f) => {
        f.set('query', 'SELECT id, s FROM tmp ORDER BY id FORMAT JSONEachRow');
        f.set('tmp_structure', 'id UInt32, s String');
        f.set('tmp', new Blob(['2\tb\n1\ta\\tb\n']), 'tmp.tsv');
      });
      expect(one.status, `${name}: ${one.text}`).to.equal(200);
      expect(one.text.trim().split('\n').map((l) => JSON.parse(l)), name).to.deep.equal([{ id: 1, s: 'a\tb' }, { id: 2, s: 'b' }]);
      // Two tables: CSV with _types (columns _1, _2) and JSONEachRow, the structure in the URL; joined
      // with each other and with a replicated table.
      const two = await post(base, (f) => {
        f.set('query', 'SELECT n.name, c._2 AS w, j.tag FROM csvt AS c INNER JOIN ext_names AS n ON n.id = c._1 INNER JOIN js AS j ON j.id = c._1 ORDER BY n.name FORMAT JSONEachRow');
        f.set('csvt_types', 'UInt32,Float64');
        f.set('csvt_format', 'CSV');
        f.set('csvt', new Blob(['1,0.5\n3,2.25\n9,1\n']), 'a.csv');
        f.set('js_format', 'JSONEachRow');
        f.set('js', new Blob(['{"id":1,"tag":"x"}\n{"id":3,"tag":"y"}\n']), 'b.json');
      }, `?js_structure=${encodeURIComponent('id UInt32, tag LowCardinality(String)')}`);
      expect(two.status, `${name}: ${two.text}`).to.equal(200);
      expect(two.text.trim().split('\n').map((l) => JSON.parse(l)), name).to.deep.equal([{ name: 'one', w: 0.5, tag: 'x' }, { name: 'three', w: 2.25, tag: 'y' }]);
      // What curl -F 'query=...' -F 'q_structure=...' -F 'q=@rows.tsv' sends, byte for byte; a result
      // bigger than the prefetch streams from the query's session (closed when the stream ends).
      const boundary = '------------------------d74496d66958873e';
      const part = (head: string, value: string): string => `--${boundary}\r\nContent-Disposition: form-data; ${head}\r\n${head.includes('filename') ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n${value}\r\n`;
      const curlBody = part('name="query"', 'SELECT q.k, n.number FROM q CROSS JOIN numbers(300000) AS n ORDER BY n.number, q.k FORMAT TabSeparated')
        + part('name="q_structure"', 'k UInt8') + part('name="q"; filename="rows.tsv"', '7\n8\n') + `--${boundary}--\r\n`;
      const curl = await request(base, curlBody, { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
      expect(curl.status, `${name}: ${curl.text.slice(0, 300)}`).to.equal(200);
      const lines = curl.text.split('\n');
      expect(lines.length, name).to.equal(600_001);
      expect(lines.slice(0, 3), name).to.deep.equal(['7\t0', '8\t0', '7\t1']);
      expect(lines[599_999], name).to.equal('8\t299999');
      // The tables were the query's own: a later query does not see them.
      const gone = await request(base, 'SELECT count() FROM tmp');
      expect(gone.headers['x-clickhouse-exception-code'], `${name}: ${gone.text}`).to.equal('60');
      // A bad type is ClickHouse's own error; a structure that would leave its column list is refused.
      const badType = await post(base, (f) => {
        f.set('query', 'SELECT * FROM t1');
        f.set('t1_structure', 'a NoSuchType');
        f.set('t1', new Blob(['1\n']), 'x');
      });
      expect(badType.code, `${name}: ${badType.text}`).to.equal('50');
      expect(badType.text).to.match(/^Code: 50\. DB::Exception: .*NoSuchType.*\(UNKNOWN_TYPE\)/);
      const escape = await post(base, (f) => {
        f.set('query', 'SELECT * FROM t1');
        f.set('t1_structure', "a UInt8) ENGINE = File(TSV, '/etc/passwd'");
        f.set('t1', new Blob(['1\n']), 'x');
      });
      expect(escape.code, `${name}: ${escape.text}`).to.equal('36');
      const syntax = await post(base, (f) => {
        f.set('query', 'SELECT * FROM t1');
        f.set('t1_structure', 'a UInt8 b');
        f.set('t1', new Blob(['1\n']), 'x');
      });
      expect(syntax.code, `${name}: ${syntax.text}`).to.equal('62');
      const noStructure = await post(base, (f) => {
        f.set('query', 'SELECT * FROM t1');
        f.set('t1', new Blob(['1\n']), 'x');
      });
      expect(noStructure.code, `${name}: ${noStructure.text}`).to.equal('36');
      const badFormat = await post(base, (f) => {
        f.set('query', 'SELECT * FROM t1');
        f.set('t1_structure', 'a UInt8');
        f.set('t1_format', 'Nope');
        f.set('t1', new Blob(['1\n']), 'x');
      });
      expect(badFormat.code, `${name}: ${badFormat.text}`).to.equal('73');
      // More than 16 tables.
      const many = await post(base, (f) => {
        f.set('query', 'SELECT 1');
        for (let i = 0; i < 17; i++) {
          f.set(`t${i}_structure`, 'a UInt8');
          f.set(`t${i}`, new Blob(['1\n']), 'x');
        }
      });
      expect(many.code, `${name}: ${many.text}`).to.equal('36');
      expect(many.text).to.match(/Too many external data tables: 17/);
      // A write from external data stays refused, on either endpoint.
      const write = await post(base, (f) => {
        f.set('query', 'INSERT INTO ext_names SELECT _1, toString(_1) FROM t1');
        f.set('t1_types', 'UInt32');
        f.set('t1', new Blob(['7\n']), 'x');
      });
      expect(write.code, `${name}: ${write.text}`).to.equal('48');
      expect(write.text).to.match(/external data tables must be a read/);
      // Not inside a client session (its temporary tables would mix with the query's).
      const inSession = await post(base, (f) => {
        f.set('query', 'SELECT * FROM t1');
        f.set('t1_types', 'UInt32');
        f.set('t1', new Blob(['7\n']), 'x');
      }, `?session_id=ext-${name}`);
      expect(inSession.code, `${name}: ${inSession.text}`).to.equal('48');
    }
    const rows = await request(consistent, 'SELECT count() FROM ext_names');
    expect(rows.text.trim()).to.equal('3');
  });

  it('sends the X-ClickHouse-* headers and honours the protocol parameters', async () => {
    for (const [name, base] of endpoints) {
      const r = await request(base, 'SELECT 1 AS a', {
        query: { query_id: `mine-${name}`, default_format: 'JSONEachRow', send_progress_in_http_headers: '1', wait_end_of_query: '1', database: 'default' },
      });
      expect(r.status, r.text).to.equal(200);
      expect(JSON.parse(r.text)).to.deep.equal({ a: 1 });
      expect(r.headers['x-clickhouse-query-id']).to.equal(`mine-${name}`);
      expect(r.headers['x-clickhouse-format']).to.equal('JSONEachRow');
      expect(r.headers['x-clickhouse-timezone']).to.be.a('string').and.not.equal('');
      expect(JSON.parse(String(r.headers['x-clickhouse-summary']))).to.include.keys('read_rows', 'written_rows', 'elapsed_ns');
      expect(JSON.parse(String(r.headers['x-clickhouse-progress']))).to.include.keys('read_rows', 'total_rows_to_read');
      const counted = await request(base, 'SELECT number FROM numbers(1000) WHERE number % 10 = 0', { query: { send_progress_in_http_headers: '1' } });
      const summary = JSON.parse(String(counted.headers['x-clickhouse-summary'])) as Record<string, string>;
      expect(summary['result_rows'], name).to.equal('100');
      expect(summary['result_bytes']).to.equal(String(counted.body.length));
      expect(JSON.parse(String(counted.headers['x-clickhouse-progress']))).to.deep.equal(summary);
      const cors = await request(base, 'SELECT 1', { query: { add_http_cors_header: '1' } });
      expect(cors.headers['access-control-allow-origin']).to.equal('*');
      const noProgress = await request(base, 'SELECT 1');
      expect(noProgress.headers['access-control-allow-origin']).to.equal(undefined);
      expect(noProgress.headers['x-clickhouse-progress']).to.equal(undefined);
      // The database parameter names the default database; max_result_rows is honoured as ClickHouse does (overflow: 396).
      const db = await request(base, 'SELECT dummy FROM one', { query: { database: 'system' } });
      expect(db.text, name).to.equal('0\n');
      const unknown = await request(base, 'SELECT 1', { query: { database: 'nope' } });
      expect(unknown.headers['x-clickhouse-exception-code'], unknown.text).to.equal('81');
      expect(unknown.status).to.equal(404);
      expect(unknown.text).to.match(/^Code: 81\. DB::Exception: Database nope does not exist\. \(UNKNOWN_DATABASE\)/);
      const rows = await request(base, 'SELECT number FROM numbers(10)', { query: { max_result_rows: '2' } });
      expect(rows.headers['x-clickhouse-exception-code'], rows.text).to.equal('396');
      const cut = await request(base, 'SELECT number FROM numbers(10)', { query: { max_result_rows: '2', result_overflow_mode: 'break' } });
      expect(cut.status, cut.text).to.equal(200);
      // Errors carry the client's query id too.
      const err = await request(base, 'SELECT * FROM nowhere', { query: { query_id: `bad-${name}` } });
      expect(err.headers['x-clickhouse-query-id']).to.equal(`bad-${name}`);
      expect(err.headers['x-clickhouse-exception-code']).to.equal('60');
      // The stock client: its query_id comes back.
      const c = client(base);
      const rs = await c.query({ query: 'SELECT 2 AS b', format: 'JSONEachRow', query_id: `client-${name}` });
      expect(rs.query_id).to.equal(`client-${name}`);
      expect(await rs.json()).to.deep.equal([{ b: 2 }]);
    }
  });
});
