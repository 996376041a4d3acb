// Streamed results and client sessions (issue 23, deliverables 2 and 3), through the stock
// @clickhouse/client and raw HTTP, against one real node (raftd + rafthouse with embedded chdb).

import { expect } from 'chai';
import * as nodeHttp from 'node:http';
import { readFileSync } from 'node:fs';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import { RafthouseCluster } from './harness.js';

interface Raw { status: number; text: string; headers: nodeHttp.IncomingHttpHeaders; aborted: boolean }

function request(base: string, body: string, query: Record<string, string> = {}): Promise<Raw> {
  const u = new URL(`${base}/?${new URLSearchParams(query)}`);
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let aborted = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => { aborted = true; });
      res.on('error', () => { aborted = true; });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers, aborted: aborted || !res.complete }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The body as bytes, with request headers (Accept-Encoding); not decoded. */
function requestBytes(base: string, body: string, query: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: nodeHttp.IncomingHttpHeaders }> {
  const u = new URL(`${base}/?${new URLSearchParams(query)}`);
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => undefined);
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const DECODE: Record<string, (b: Buffer) => Buffer> = { gzip: gunzipSync, deflate: inflateSync, br: brotliDecompressSync };

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

async function errorOf(p: Promise<unknown>): Promise<Error & { code?: string; type?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string; type?: string };
  }
  throw new Error('expected an error');
}

const MAX_SESSIONS = 20;

describe('RaftHouse streamed results and sessions (1 node, real processes)', function () {
  this.timeout(180_000);
  let cluster: RafthouseCluster;
  let consistent: string;
  let local: string;
  const clients: ClickHouseClient[] = [];
  const client = (extra: Record<string, unknown> = {}, base = consistent) => {
    const c = createClient({ url: base, request_timeout: 60_000, log: { level: ClickHouseLogLevel.OFF }, ...extra });
    clients.push(c);
    return c;
  };

  before(async () => {
    cluster = await RafthouseCluster.start({ nodes: 1, groups: 4, args: ['--max-sessions', String(MAX_SESSIONS)] });
    consistent = cluster.nodes[0]!.consistentUrl;
    local = cluster.nodes[0]!.localUrl;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.destroy();
  });

  describe('streaming', () => {
    it('streams SELECT * FROM numbers(1e8): first rows long before the end, the process grows < 64 MiB', async () => {
      const pid = cluster.nodes[0]!.proc.proc!.pid!;
      // Warm up the path (sessions, parser cache) so the baseline is not taken before first use.
      await request(consistent, 'SELECT * FROM numbers(1e6)');
      const rss0 = rssOf(pid);
      let peak = rss0;
      const sampler = setInterval(() => { peak = Math.max(peak, rssOf(pid)); }, 50);
      const u = new URL(consistent);
      const t0 = Date.now();
      const r = await new Promise<{ bytes: number; lines: number; first: number; end: number; headers: nodeHttp.IncomingHttpHeaders; tail: string }>((resolve, reject) => {
        const req = nodeHttp.request({ host: u.hostname, port: u.port, path: '/', method: 'POST', agent: false }, (res) => {
          let bytes = 0;
          let lines = 0;
          let first = 0;
          let tail = '';
          res.on('data', (c: Buffer) => {
            if (!first) first = Date.now();
            bytes += c.length;
            for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
            tail = c.subarray(Math.max(0, c.length - 40)).toString('latin1');
          });
          res.on('end', () => resolve({ bytes, lines, first, end: Date.now(), headers: res.headers, tail }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end('SELECT * FROM numbers(1e8)');
      });
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(pid));
      expect(r.bytes).to.equal(888_888_890);
      expect(r.lines).to.equal(100_000_000);
      expect(r.tail.endsWith('99999999\n')).to.equal(true);
      expect(r.headers['content-length']).to.equal(undefined);
      expect(r.headers['x-clickhouse-exception-tag']).to.match(/^[0-9a-f]{16}$/);
      const total = r.end - t0;
      expect(r.first - t0, `first byte after ${r.first - t0} ms of ${total} ms`).to.be.below(total / 4);
      console.log(`      RSS ${(rss0 / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB; first byte after ${r.first - t0} ms of ${total} ms`);
      expect(peak - rss0, `RSS ${(rss0 / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB`).to.be.below(64 * 1024 * 1024);
    });

    it('a small result still comes whole, with Content-Length', async () => {
      const r = await request(consistent, 'SELECT number FROM numbers(3)');
      expect(r.status).to.equal(200);
      expect(r.text).to.equal('0\n1\n2\n');
      expect(r.headers['content-length']).to.equal('6');
    });

    it('formats that are one document (JSON, CSVWithNames, Values) come whole and well-formed, however many blocks', async () => {
      const json = await request(consistent, 'SELECT number FROM numbers(300000) FORMAT JSON');
      const doc = JSON.parse(json.text) as { rows: number; data: Array<{ number: string | number }> };
      expect(doc.rows).to.equal(300_000);
      expect(Number(doc.data[299_999]!.number)).to.equal(299_999);
      const csv = await request(consistent, 'SELECT number AS n FROM numbers(300000) FORMAT CSVWithNames');
      expect(csv.text.split('\n').filter((l) => l === '"n"').length).to.equal(1);
      const values = await request(local, 'SELECT number FROM numbers(300000) FORMAT Values');
      expect(values.text.split('),(').length).to.equal(300_000);
      const arr = await request(local, 'SELECT number AS n FROM numbers(300000) FORMAT JSONEachRow', { output_format_json_array_of_rows: '1' });
      expect((JSON.parse(arr.text) as unknown[]).length).to.equal(300_000);
    });

    it('the stock client streams rows (ResultSet.stream) on both endpoints', async () => {
      for (const base of [consistent, local]) {
        const rs = await client({}, base).query({ query: 'SELECT number AS n FROM numbers(500000)', format: 'JSONEachRow' });
        let n = 0;
        let last = -1;
        for await (const rows of rs.stream()) {
          for (const row of rows as Array<{ json: () => { n: string } }>) {
            last = Number(row.json().n);
            n++;
          }
        }
        expect(n).to.equal(500_000);
        expect(last).to.equal(499_999);
      }
    });

    it('an exception after the first rows ends the body as ClickHouse 25.11+ does (tag, marker, length), and the client throws it', async () => {
      const sql = 'SELECT number, throwIf(number = 3000000) FROM numbers(5000000)';
      const r = await request(consistent, sql);
      expect(r.status).to.equal(200);
      expect(r.aborted, 'the body must not end as if complete').to.equal(true);
      const tag = String(r.headers['x-clickhouse-exception-tag']);
      expect(tag).to.match(/^[0-9a-f]{16}$/);
      const m = new RegExp(`\\r\\n__exception__\\r\\n${tag}\\r\\n(Code: 395\\. DB::Exception: [^]*\\n)(\\d+) ${tag}\\r\\n__exception__\\r\\n$`).exec(r.text);
      expect(m, r.text.slice(-600)).to.not.equal(null);
      expect(Number(m![2])).to.equal(Buffer.byteLength(m![1]!));
      expect(m![1]).to.match(/\(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO\) \(version /);
      // Rows before the error were sent as they came.
      expect(r.text.startsWith('0\t0\n1\t0\n')).to.equal(true);

      const rs = await client().query({ query: sql, format: 'JSONEachRow' });
      const err = await errorOf((async () => {
        for await (const rows of rs.stream()) void rows;
      })());
      expect(err.code, String(err)).to.equal('395');
      expect(err.type).to.equal('FUNCTION_THROW_IF_VALUE_IS_NON_ZERO');
    });

    it('compressed streams (enable_http_compression=1, gzip): rows and a mid-stream error both arrive', async () => {
      const c = client({ compression: { response: true } });
      const rs = await c.query({ query: 'SELECT number AS n FROM numbers(400000)', format: 'JSONEachRow' });
      let n = 0;
      for await (const rows of rs.stream()) n += (rows as unknown[]).length;
      expect(n).to.equal(400_000);
      const bad = await c.query({ query: 'SELECT number AS n, throwIf(number = 3000000) AS t FROM numbers(5000000)', format: 'JSONEachRow' });
      const err = await errorOf((async () => {
        for await (const rows of bad.stream()) void rows;
      })());
      expect(err.code, String(err)).to.equal('395');
    });

    it('streamed answers take the negotiated compression (gzip, deflate, br) and the format\'s Content-Type, errors included', async () => {
      for (const enc of ['gzip', 'deflate', 'br']) {
        const r = await requestBytes(local, 'SELECT number AS n FROM numbers(500000) FORMAT JSONEachRow', { enable_http_compression: '1' }, { 'accept-encoding': enc });
        expect(r.status, enc).to.equal(200);
        // Streamed (past the prefetch): chunked, tagged, in the negotiated encoding.
        expect(r.headers['content-length'], enc).to.equal(undefined);
        expect(r.headers['x-clickhouse-exception-tag'], enc).to.match(/^[0-9a-f]{16}$/);
        expect(r.headers['content-encoding'], enc).to.equal(enc);
        expect(r.headers['content-type'], enc).to.equal('application/x-ndjson; charset=UTF-8');
        const lines = DECODE[enc]!(r.body).toString('utf8').trim().split('\n');
        expect(lines.length, enc).to.equal(500_000);
        expect(JSON.parse(lines[499_999]!), enc).to.deep.equal({ n: 499_999 });
        const bad = await requestBytes(local, 'SELECT number, throwIf(number = 3000000) FROM numbers(5000000)', { enable_http_compression: '1' }, { 'accept-encoding': enc });
        expect(bad.headers['content-encoding'], enc).to.equal(enc);
        expect(bad.headers['content-type'], enc).to.equal('text/tab-separated-values; charset=UTF-8');
        const text = DECODE[enc]!(bad.body).toString('utf8');
        expect(text, enc).to.match(new RegExp(`__exception__\\r\\n${bad.headers['x-clickhouse-exception-tag']}\\r\\nCode: 395\\.`));
      }
      // Without compression asked for: plain, the same Content-Type.
      const plain = await requestBytes(local, 'SELECT number AS n FROM numbers(500000) FORMAT CSV', {}, { 'accept-encoding': 'gzip' });
      expect(plain.headers['content-encoding']).to.equal(undefined);
      expect(plain.headers['content-type']).to.equal('text/csv; charset=UTF-8; header=absent');
      expect(plain.body.toString('utf8').trim().split('\n').length).to.equal(500_000);
    });

    it('query parameters of a streamed read are parsed as ClickHouse parses them (escaped format), on both endpoints', async () => {
      for (const base of [consistent, local]) {
        const r = await requestBytes(base, 'SELECT {s:String} AS s, number FROM numbers(400000) FORMAT JSONEachRow', { param_s: "a\\'b\\tc" });
        expect(r.status, r.body.toString('utf8').slice(0, 300)).to.equal(200);
        expect(r.headers['content-length']).to.equal(undefined);
        const lines = r.body.toString('utf8').trim().split('\n');
        expect(lines.length).to.equal(400_000);
        expect(JSON.parse(lines[0]!)).to.deep.equal({ s: "a'b\tc", number: 0 });
        expect(JSON.parse(lines[399_999]!)).to.deep.equal({ s: "a'b\tc", number: 399_999 });
      }
    });

    it('max_result_bytes still holds while streaming (the error arrives mid-stream)', async () => {
      const r = await request(local, 'SELECT * FROM numbers(1e7)', { max_result_bytes: '5000000' });
      expect(r.status).to.equal(200);
      expect(r.text).to.match(/Code: 396\. DB::Exception: .*\(TOO_MANY_ROWS_OR_BYTES\)/);
      expect(r.text.length).to.be.below(5_000_000 + 2 * 1024 * 1024);
    });

    it('a client going away mid-stream cancels the query', async () => {
      const u = new URL(local);
      const sql = 'SELECT number FROM numbers(1e11) WHERE number % 3 != 7';
      await new Promise<void>((resolve, reject) => {
        const req = nodeHttp.request({ host: u.hostname, port: u.port, path: '/', method: 'POST', agent: false }, (res) => {
          let got = 0;
          res.on('data', (c: Buffer) => {
            got += c.length;
            if (got > 4 * 1024 * 1024) {
              req.destroy();
              resolve();
            }
          });
        });
        req.on('error', () => undefined);
        req.end(sql);
        setTimeout(() => reject(new Error('no data')), 30_000);
      });
      const running = async () => Number((await request(local, "SELECT count() FROM system.processes WHERE startsWith(query, 'SELECT number FROM numbers(1e11)')")).text.trim());
      const gone = Date.now();
      let left = await running();
      while (left > 0 && Date.now() - gone < 5000) {
        await new Promise((r) => setTimeout(r, 50));
        left = await running();
      }
      expect(left).to.equal(0);
    });
  });

  describe('sessions', () => {
    it('a temporary table lives in its session across requests, and nowhere else', async () => {
      const a = client({ session_id: 'sess-a' });
      const b = client({ session_id: 'sess-b' });
      await a.command({ query: 'CREATE TEMPORARY TABLE tmp (x UInt32, s String)' });
      await a.insert({ table: 'tmp', values: [{ x: 1, s: 'a' }, { x: 2, s: 'b' }], format: 'JSONEachRow' });
      await a.command({ query: "INSERT INTO tmp VALUES (3, 'c')" });
      const rows = await (await a.query({ query: 'SELECT x, s FROM tmp ORDER BY x', format: 'JSONEachRow' })).json<{ x: number; s: string }>();
      expect(rows).to.deep.equal([{ x: 1, s: 'a' }, { x: 2, s: 'b' }, { x: 3, s: 'c' }]);
      const err = await errorOf(b.query({ query: 'SELECT count() FROM tmp', format: 'JSONEachRow' }));
      expect(err.code, String(err)).to.equal('60');
      const none = await errorOf(client().query({ query: 'SELECT count() FROM tmp', format: 'JSONEachRow' }));
      expect(none.code, String(none)).to.equal('60');
      // Raw HTTP, same session: still there; DROP ends it.
      expect((await request(consistent, 'SELECT sum(x) FROM tmp', { session_id: 'sess-a' })).text).to.equal('6\n');
      expect((await request(consistent, 'DROP TEMPORARY TABLE tmp', { session_id: 'sess-a' })).status).to.equal(200);
      expect((await request(consistent, 'SELECT sum(x) FROM tmp', { session_id: 'sess-a' })).headers['x-clickhouse-exception-code']).to.equal('60');
      // What runs in a session has a read's reach: no file access, no internal names, Memory only.
      for (const sql of [
        "CREATE TEMPORARY TABLE f (s String DEFAULT file('/etc/passwd', 'LineAsString', 's String'))",
        "CREATE TEMPORARY TABLE f2 (s String DEFAULT toString(url('http://127.0.0.1:1/')))",
        'CREATE TEMPORARY TABLE m (x UInt8) ENGINE = MergeTree ORDER BY x',
        'CREATE TEMPORARY TABLE c AS SELECT 1 AS x',
      ]) {
        const r = await request(consistent, sql, { session_id: 'sess-a' });
        expect(r.status, `${sql}: ${r.text}`).to.not.equal(200);
      }
      // Without a session a temporary table is still refused (48), as before.
      expect((await request(consistent, 'CREATE TEMPORARY TABLE nos (x UInt8)')).headers['x-clickhouse-exception-code']).to.equal('48');
    });

    it('SET applies to its session only; a session keeps working after a failed query', async () => {
      const a = client({ session_id: 'sess-set' });
      await a.command({ query: 'SET max_threads = 3' });
      const get = async (c: ClickHouseClient) => (await (await c.query({ query: "SELECT getSetting('max_threads') AS v", format: 'JSONEachRow' })).json<{ v: string | number }>())[0]!.v;
      expect(String(await get(a))).to.equal('3');
      expect(String(await get(client({ session_id: 'sess-other' })))).to.not.equal('3');
      expect(String(await get(client()))).to.not.equal('3');
      // A setting no read may change is refused in a session too.
      const refused = await errorOf(a.command({ query: 'SET max_memory_usage_for_user = 1' }));
      expect(refused.code, String(refused)).to.be.oneOf(['164', '452']);
      // A failure half-way through a result leaves the session clean (temporary tables kept).
      await a.command({ query: 'CREATE TEMPORARY TABLE keep (x UInt8)' });
      await a.command({ query: 'INSERT INTO keep VALUES (7)' });
      const r = await request(consistent, 'SELECT number, throwIf(number = 3000000) FROM numbers(5000000)', { session_id: 'sess-set' });
      expect(r.text).to.include('Code: 395.');
      expect((await request(consistent, 'SELECT x FROM keep', { session_id: 'sess-set' })).text).to.equal('7\n');
      expect((await request(consistent, "SELECT 'clean'", { session_id: 'sess-set' })).text).to.equal('clean\n');
      expect(String(await get(a))).to.equal('3');
    });

    it('a write inside a session still goes through Raft', async () => {
      const a = client({ session_id: 'sess-write' });
      await a.command({ query: 'CREATE TABLE sw (id UInt32) ENGINE = MergeTree ORDER BY id' });
      await a.insert({ table: 'sw', values: [{ id: 1 }, { id: 2 }], format: 'JSONEachRow' });
      const n = await (await client().query({ query: 'SELECT count() AS n FROM sw', format: 'JSONEachRow' })).json<{ n: string }>();
      expect(Number(n[0]!.n)).to.equal(2);
      // The replicated group log holds them: another (non-session) client on the local endpoint sees them too.
      const l = await (await client({}, local).query({ query: 'SELECT count() AS n FROM sw', format: 'JSONEachRow' })).json<{ n: string }>();
      expect(Number(l[0]!.n)).to.equal(2);
    });

    it('session_check=1 refuses an unknown session (372); session_timeout expires it; a bad timeout is 374', async () => {
      const unknown = await request(consistent, 'SELECT 1', { session_id: 'never-opened', session_check: '1' });
      expect(unknown.headers['x-clickhouse-exception-code']).to.equal('372');
      expect(unknown.text).to.match(/^Code: 372\. DB::Exception: Session never-opened not found\. \(SESSION_NOT_FOUND\)/);
      expect((await request(consistent, 'CREATE TEMPORARY TABLE t1 (x UInt8)', { session_id: 'short', session_timeout: '1' })).status).to.equal(200);
      expect((await request(consistent, 'SELECT count() FROM t1', { session_id: 'short', session_check: '1', session_timeout: '1' })).text).to.equal('0\n');
      await new Promise((r) => setTimeout(r, 1600));
      expect((await request(consistent, 'SELECT 1', { session_id: 'short', session_check: '1' })).headers['x-clickhouse-exception-code']).to.equal('372');
      expect((await request(consistent, 'SELECT 1', { session_id: 'x', session_timeout: '999999' })).headers['x-clickhouse-exception-code']).to.equal('374');
    });

    it('one request at a time per session: a concurrent one gets 373 SESSION_IS_LOCKED', async () => {
      const slow = request(consistent, 'SELECT sleepEachRow(0.5) FROM numbers(4)', { session_id: 'busy' });
      await new Promise((r) => setTimeout(r, 400));
      const second = await request(consistent, 'SELECT 1', { session_id: 'busy' });
      expect(second.headers['x-clickhouse-exception-code']).to.equal('373');
      expect(second.text).to.match(/^Code: 373\. DB::Exception: Session busy is locked by a concurrent client\. \(SESSION_IS_LOCKED\)/);
      expect((await slow).status).to.equal(200);
      expect((await request(consistent, 'SELECT 2', { session_id: 'busy' })).text).to.equal('2\n');
    });

    it('query parameters in a session: escaped format in reads and streamed reads, temporary tables kept', async () => {
      const q = { session_id: 'sess-param' };
      expect((await request(consistent, 'CREATE TEMPORARY TABLE tp (x UInt32)', q)).status).to.equal(200);
      expect((await request(consistent, 'INSERT INTO tp VALUES (5)', q)).status).to.equal(200);
      const one = await request(consistent, 'SELECT {s:String} AS s, x FROM tp FORMAT JSONEachRow', { ...q, param_s: "x\\'y" });
      expect(JSON.parse(one.text), one.text).to.deep.equal({ s: "x'y", x: 5 });
      const streamed = await requestBytes(consistent, 'SELECT {s:String} AS s, number FROM numbers(300000) FORMAT JSONEachRow', { ...q, param_s: 'p\\nq' });
      expect(streamed.headers['content-length']).to.equal(undefined);
      const lines = streamed.body.toString('utf8').trim().split('\n');
      expect(lines.length).to.equal(300_000);
      expect(JSON.parse(lines[299_999]!)).to.deep.equal({ s: 'p\nq', number: 299_999 });
      expect((await request(consistent, 'SELECT sum(x) FROM tp', q)).text).to.equal('5\n');
    });

    it('sessions are bounded in number per node (--max-sessions): one more is refused, open ones keep working', async () => {
      let opened = 0;
      let refused: Raw | undefined;
      for (let i = 0; i <= MAX_SESSIONS && !refused; i++) {
        const r = await request(consistent, 'SELECT 1', { session_id: `cap-${i}`, session_timeout: '30' });
        if (r.status === 200) opened++;
        else refused = r;
      }
      expect(refused, 'the bound was never reached').to.not.equal(undefined);
      expect(refused!.headers['x-clickhouse-exception-code']).to.equal('202');
      expect(refused!.text).to.include(`Maximum: ${MAX_SESSIONS}`);
      expect(opened).to.be.at.most(MAX_SESSIONS);
      expect((await request(consistent, 'SELECT 3', { session_id: 'cap-0', session_check: '1' })).text).to.equal('3\n');
    });
  });
});
