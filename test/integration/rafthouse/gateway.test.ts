// RaftHouse end to end: 3 raftd processes + 3 rafthouse processes (embedded chdb), 16 groups, driven
// through the stock @clickhouse/client and plain HTTP (fetch, what curl does).

import { expect } from 'chai';
import * as nodeHttp from 'node:http';
import { Readable } from 'node:stream';
import { gzipSync, gunzipSync } from 'node:zlib';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { RafthouseCluster } from './harness.js';
import { HashRing } from '../../../clickhouse-adapter/router/index.js';
import { RaftdClient } from '../../../adapters/sdk/client.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { signAppRequest } from '../../../protocol/app-auth.js';
import { generateSecret } from '../../../protocol/secrets.js';

const GROUPS = 16;

interface Raw { status: number; text: string; headers: Headers }

async function http(base: string, opts: { sql?: string; query?: Record<string, string>; body?: string | Buffer; method?: string; headers?: Record<string, string> }): Promise<Raw> {
  const qs = new URLSearchParams(opts.query ?? {});
  if (opts.sql !== undefined) qs.set('query', opts.sql);
  const res = await fetch(`${base}/?${qs}`, {
    method: opts.method ?? 'POST', headers: opts.headers ?? {}, ...(opts.body !== undefined ? { body: opts.body } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** fetch cannot set Host: node:http can (the Host header selects an endpoint). */
function postWithHost(base: string, host: string, sql: string, query: Record<string, string> = {}): Promise<Raw> {
  const u = new URL(`${base}/?${new URLSearchParams(query)}`);
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers });
      });
    });
    req.on('error', reject);
    req.end(sql);
  });
}

/** POST the statement as the body, the way curl --data-binary does. */
async function post(base: string, sql: string, query: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<Raw> {
  return http(base, { body: sql, query, headers });
}

async function ok(r: Promise<Raw>): Promise<string> {
  const x = await r;
  expect(x.status, x.text).to.equal(200);
  return x.text;
}

describe('RaftHouse gateway (3 nodes, 16 groups, real processes)', function () {
  this.timeout(240_000);
  let cluster: RafthouseCluster;
  const clients: ClickHouseClient[] = [];
  const client = (i: number, local = false, extra: Record<string, unknown> = {}) => {
    const c = createClient({ url: local ? cluster.nodes[i]!.localUrl : cluster.nodes[i]!.consistentUrl, request_timeout: 60_000, ...extra });
    clients.push(c);
    return c;
  };

  before(async () => {
    cluster = await RafthouseCluster.start({ groups: GROUPS, env: { RAFTHOUSE_USERS: 'default:,alice:s3cret' }, args: ['--local-host', 'rh-local.test', '--consistent-host', 'rh.test'] });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.destroy();
  });

  it('serves the stock client: ping, DDL, inserts (arrays and streams), queries in four formats, parameters, settings', async () => {
    const c = client(0);
    expect((await c.ping()).success).to.equal(true);
    await c.command({ query: 'CREATE TABLE events (id UInt32, name String, score Float64) ENGINE = MergeTree ORDER BY id' });
    await c.insert({ table: 'events', values: [{ id: 1, name: 'a', score: 1.5 }, { id: 2, name: 'b', score: 2.5 }], format: 'JSONEachRow' });
    const stream = Readable.from([{ id: 3, name: 'c', score: 3.5 }, { id: 4, name: 'd', score: 4.5 }], { objectMode: true });
    await c.insert({ table: 'events', values: stream, format: 'JSONEachRow' });

    const json = await (await c.query({ query: 'SELECT id, name FROM events ORDER BY id', format: 'JSON' })).json<{ id: number; name: string }>();
    expect(json.data.map((r) => r.name)).to.deep.equal(['a', 'b', 'c', 'd']);
    const each = await (await c.query({ query: 'SELECT id FROM events ORDER BY id', format: 'JSONEachRow' })).json<{ id: number }>();
    expect(each.map((r) => r.id)).to.deep.equal([1, 2, 3, 4]);
    expect(await (await c.query({ query: 'SELECT id, name FROM events WHERE id <= 2 ORDER BY id', format: 'CSV' })).text()).to.equal('1,"a"\n2,"b"\n');
    expect(await (await c.query({ query: 'SELECT id, name FROM events WHERE id <= 2 ORDER BY id', format: 'TabSeparated' })).text()).to.equal('1\ta\n2\tb\n');
    const p = await (await c.query({ query: 'SELECT name FROM events WHERE id = {id:UInt32} AND name = {n:String}', query_params: { id: 3, n: 'c' }, format: 'JSONEachRow' })).json<{ name: string }>();
    expect(p).to.deep.equal([{ name: 'c' }]);
    // A per-query setting really reaches ClickHouse: max_result_rows=1 with the throw mode fails a 4-row read.
    let err: (Error & { code?: string; type?: string }) | undefined;
    try {
      await (await c.query({ query: 'SELECT id FROM events', format: 'JSONEachRow', clickhouse_settings: { max_result_rows: '1', result_overflow_mode: 'throw' } })).json();
    } catch (e) {
      err = e as Error & { code?: string; type?: string };
    }
    expect(err?.code, String(err)).to.equal('396');
    expect(err?.type).to.equal('TOO_MANY_ROWS_OR_BYTES');
    // The local endpoint of another node reads its own replica (eventually has the rows).
    const local = client(2, true);
    let n = 0;
    for (let i = 0; i < 100 && n !== 4; i++) {
      n = Number((await (await local.query({ query: 'SELECT count() AS n FROM events', format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n);
      if (n !== 4) await new Promise((r) => setTimeout(r, 100));
    }
    expect(n).to.equal(4);
    // Errors arrive as ClickHouse's: code and type parsed by the client.
    try {
      await c.query({ query: 'SELECT * FROM nope', format: 'JSONEachRow' });
      expect.fail('unknown table accepted');
    } catch (e) {
      expect((e as { code?: string }).code).to.equal('60');
    }
  });

  it('speaks the HTTP interface to curl-level clients: URL/body queries, auth, params, gzip, headers, error form', async () => {
    const base = cluster.nodes[1]!.consistentUrl;
    const ping = await fetch(`${base}/ping`);
    expect(ping.status).to.equal(200);
    expect(await ping.text()).to.equal('Ok.\n');
    await ok(post(base, 'CREATE TABLE kv (k String, v UInt64) ENGINE = MergeTree ORDER BY k'));
    await ok(http(base, { sql: 'INSERT INTO kv FORMAT JSONEachRow', body: '{"k":"x","v":1}\n{"k":"y","v":2}\n' }));
    await ok(post(base, 'INSERT INTO kv FORMAT TabSeparated\nz\t3\n'));
    await ok(http(base, { sql: 'INSERT INTO kv FORMAT CSV', body: gzipSync('"w",4\n'), headers: { 'content-encoding': 'gzip' } }));
    const r = await http(base, { sql: 'SELECT k, v FROM kv ORDER BY k', method: 'GET', query: { default_format: 'JSONCompactEachRow', query_id: 'q-1' } });
    expect(r.status, r.text).to.equal(200);
    expect(r.text.trim().split('\n').map((l) => JSON.parse(l) as unknown)).to.deep.equal([['w', 4], ['x', 1], ['y', 2], ['z', 3]]);
    expect(r.headers.get('x-clickhouse-query-id')).to.equal('q-1');
    expect(r.headers.get('x-clickhouse-format')).to.equal('JSONCompactEachRow');
    expect(JSON.parse(r.headers.get('x-clickhouse-summary')!)).to.have.property('result_rows');
    expect(await ok(post(base, 'SELECT sum(v) FROM kv WHERE k != {skip:String}', { param_skip: 'w' }))).to.equal('6\n');
    // Settings as URL parameters reach ClickHouse.
    expect(await ok(post(base, "SELECT getSetting('max_block_size')", { max_block_size: '1234' }))).to.equal('1234\n');
    // gzip response when asked.
    const gz = await fetch(`${base}/?enable_http_compression=1`, { method: 'POST', body: 'SELECT count() FROM kv', headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers.get('content-encoding')).to.equal('gzip');
    // fetch decodes gzip itself; what matters is that it was gzip and decodes to the answer.
    expect(await gz.text()).to.equal('4\n');
    void gunzipSync;
    // Users: headers, parameters, Basic auth; a wrong password is AUTHENTICATION_FAILED (516, 403).
    expect(await ok(post(base, 'SELECT 1', {}, { 'x-clickhouse-user': 'alice', 'x-clickhouse-key': 's3cret' }))).to.equal('1\n');
    expect(await ok(post(base, 'SELECT 1', { user: 'alice', password: 's3cret' }))).to.equal('1\n');
    expect(await ok(post(base, 'SELECT 1', {}, { authorization: 'Basic ' + Buffer.from('alice:s3cret').toString('base64') }))).to.equal('1\n');
    const bad = await post(base, 'SELECT 1', {}, { authorization: 'Basic ' + Buffer.from('alice:nope').toString('base64') });
    expect(bad.status).to.equal(403);
    expect(bad.headers.get('x-clickhouse-exception-code')).to.equal('516');
    expect(bad.text).to.match(/^Code: 516\. DB::Exception: alice: Authentication failed.*\(AUTHENTICATION_FAILED\) \(version [0-9.]+\)\n$/);
    // ClickHouse's statuses: unknown table 404, syntax error 400, multi-statements refused by the parser.
    const unknown = await post(base, 'SELECT * FROM missing_table');
    expect(unknown.status).to.equal(404);
    expect(unknown.headers.get('x-clickhouse-exception-code')).to.equal('60');
    const syntax = await post(base, 'SELEC 1');
    expect(syntax.status).to.equal(400);
    expect(syntax.headers.get('x-clickhouse-exception-code')).to.equal('62');
    const multi = await post(base, 'SELECT 1; DROP TABLE kv');
    expect(multi.headers.get('x-clickhouse-exception-code')).to.equal('62');
    expect(multi.text).to.contain('Multi-statements');
    // Rows of VALUES never run as SQL: a statement hidden after them is refused, and nothing else runs.
    const hidden = await post(base, "INSERT INTO kv VALUES ('i', 9); DROP TABLE kv");
    expect(hidden.headers.get('x-clickhouse-exception-code'), hidden.text).to.equal('62');
    const hidden2 = await http(base, { sql: 'INSERT INTO kv VALUES', body: "('i', 9); DROP TABLE kv" });
    expect(hidden2.headers.get('x-clickhouse-exception-code'), hidden2.text).to.equal('62');
    // Formats that could read server-side files are not accepted for writes.
    const tmpl = await http(base, { sql: 'INSERT INTO kv FORMAT Template', body: 'x' });
    expect(tmpl.headers.get('x-clickhouse-exception-code'), tmpl.text).to.equal('48');
    expect(await ok(post(base, 'SELECT count() FROM kv'))).to.equal('4\n');
    // GET implies read-only, as in ClickHouse.
    const get = await http(base, { sql: "INSERT INTO kv VALUES ('g', 1)", method: 'GET' });
    expect(get.headers.get('x-clickhouse-exception-code')).to.equal('164');
  });

  it('read-your-writes: a row inserted through any node is seen by the next consistent read on every node', async () => {
    await ok(post(cluster.nodes[0]!.consistentUrl, 'CREATE TABLE ryw (node UInt8, seq UInt32) ENGINE = MergeTree ORDER BY (node, seq)'));
    for (let seq = 1; seq <= 3; seq++) {
      for (const w of cluster.nodes) {
        await ok(post(w.consistentUrl, `INSERT INTO ryw VALUES (${w.id}, ${seq})`));
        for (const r of cluster.nodes) {
          const seen = await ok(post(r.consistentUrl, `SELECT count() FROM ryw WHERE node = ${w.id} AND seq = ${seq}`));
          expect(seen, `row (${w.id}, ${seq}) written via node ${w.id}, read via node ${r.id}`).to.equal('1\n');
        }
      }
    }
  });

  it('a forged UpdateEntries at LastLogIndex + 1 straight to a state-machine port is refused (no, wrong, bearer, replayed secret); every replica holds [1, 2, 3]', async () => {
    await ok(post(cluster.nodes[0]!.consistentUrl, 'CREATE TABLE forged (id UInt32) ENGINE = MergeTree ORDER BY id'));
    await ok(post(cluster.nodes[0]!.consistentUrl, 'INSERT INTO forged VALUES (1), (2)'));
    const group = (await HashRing.create({ groups: GROUPS })).homeGroup('default', 'forged');
    const secret = cluster.raft.secrets!.value('appSecret');
    const victim = cluster.nodes[2]!;
    const call = async (name: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; json: Record<string, unknown> }> => {
      const r = await fetch(`http://127.0.0.1:${victim.appPort}/raft/v1/${name}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(30_000) });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const sign = (name: string, body: Buffer, key = secret): Record<string, string> => signAppRequest(key, 'POST', `/raft/v1/${name}`, body);
    const lliBody = Buffer.from(JSON.stringify({ group }));
    const lastIndex = async (): Promise<number> => (await call('LastLogIndex', lliBody, sign('LastLogIndex', lliBody))).json['lastLogIndex'] as number;
    // Wait until the victim applied the two rows, so LastLogIndex + 1 is the next real entry.
    for (let i = 0; ; i++) {
      if ((await ok(post(victim.consistentUrl, 'SELECT count() FROM forged'))) === '2\n') break;
      if (i > 100) throw new Error('replica 3 never saw the two rows');
    }
    const last = await lastIndex();
    const data = encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO forged FORMAT JSONEachRow', database: 'default' }, Buffer.from('{"id":666}\n'));
    const forged = Buffer.from(JSON.stringify({ group, entries: [{ index: last + 1, term: 1, data: data.toString('base64') }] }));
    const redelivery = Buffer.from(JSON.stringify({ group, entries: [{ index: last, term: 1, data: '' }] }));
    const captured = sign('UpdateEntries', redelivery);
    expect((await call('UpdateEntries', redelivery, captured)).json['results']).to.deep.equal([{ index: last, skipped: true }]);
    const attempts: Array<[string, Buffer, Record<string, string>, string]> = [
      ['no credentials', forged, {}, 'UNAUTHENTICATED'],
      ['a wrong secret', forged, sign('UpdateEntries', forged, generateSecret()), 'UNAUTHENTICATED'],
      ['the secret as a bearer token', forged, { authorization: `Bearer ${secret}` }, 'UNAUTHENTICATED'],
      ['a replayed signed call', redelivery, captured, 'REPLAYED'],
      ['a signature for another body', forged, sign('UpdateEntries', redelivery), 'UNAUTHENTICATED'],
    ];
    for (const [what, body, headers, code] of attempts) {
      const r = await call('UpdateEntries', body, headers);
      expect([r.status, (r.json['error'] as { code: string }).code], what).to.deep.equal([401, code]);
    }
    expect(await lastIndex()).to.equal(last);
    // The real entry at that index: applied on every replica, not answered "skipped" on the victim.
    await ok(post(cluster.nodes[0]!.consistentUrl, 'INSERT INTO forged VALUES (3)'));
    for (const n of cluster.nodes) {
      expect(await ok(post(n.consistentUrl, 'SELECT groupArray(id) FROM (SELECT id FROM forged ORDER BY id)')), `replica ${n.id}`).to.equal('[1,2,3]\n');
    }
  });

  it('a consistent read on a replica that fell behind waits for it (the read that overlaps the barrier is not kept)', async () => {
    await ok(post(cluster.nodes[0]!.consistentUrl, 'CREATE TABLE behind (id UInt64) ENGINE = MergeTree ORDER BY id'));
    const home = (await HashRing.create({ groups: GROUPS })).homeGroup('default', 'behind');
    // A replica that does not lead the table's group: with its raftd paused the others still commit.
    const leads = await Promise.all(cluster.nodes.map((n) => new RaftdClient({ token: cluster.raft.clientToken(), url: cluster.raft.node(n.id).url }).isLeader(home)));
    const lagging = cluster.nodes.find((_, i) => !leads[i])!;
    const writer = cluster.nodes.find((n) => n !== lagging)!;
    expect(await ok(post(lagging.consistentUrl, 'SELECT count() FROM behind'))).to.equal('0\n');
    let total = 0;
    cluster.raft.node(lagging.id).pause();
    try {
      for (let b = 0; b < 4; b++) {
        const rows = Array.from({ length: 20_000 }, (_, i) => `{"id":${b * 20_000 + i}}`).join('\n');
        await ok(http(writer.consistentUrl, { sql: 'INSERT INTO behind FORMAT JSONEachRow', body: rows }));
        total += 20_000;
      }
    } finally {
      cluster.raft.node(lagging.id).resume();
    }
    // Its state machine still holds 0 rows here: a read that ran beside the barrier saw that and must
    // be dropped for one after the replica applied the read index.
    expect(await ok(post(lagging.consistentUrl, 'SELECT count() FROM behind'))).to.equal(`${total}\n`);
  });

  it('concurrent consistent reads share barriers yet each sees every write acknowledged before it started', async () => {
    await ok(post(cluster.nodes[0]!.consistentUrl, 'CREATE TABLE busy (id UInt32) ENGINE = MergeTree ORDER BY id'));
    const home = (await HashRing.create({ groups: GROUPS })).homeGroup('default', 'busy');
    const leads = await Promise.all(cluster.nodes.map((n) => new RaftdClient({ token: cluster.raft.clientToken(), url: cluster.raft.node(n.id).url }).isLeader(home)));
    const reader = cluster.nodes.find((_, i) => !leads[i])!; // a follower: it applies after the writer's ack
    const writer = cluster.nodes.find((_, i) => leads[i]) ?? cluster.nodes.find((n) => n !== reader)!;
    // Background readers keep a barrier of the group in flight on the reader node nearly all the time.
    let stop = false;
    const background = Promise.all(Array.from({ length: 6 }, async () => {
      while (!stop) await ok(post(reader.consistentUrl, 'SELECT max(id) FROM busy'));
    }));
    try {
      for (let i = 1; i <= 15; i++) {
        await ok(post(writer.consistentUrl, `INSERT INTO busy VALUES (${i})`));
        const seen = await Promise.all(Array.from({ length: 4 }, () => ok(post(reader.consistentUrl, 'SELECT count() FROM busy'))));
        expect(seen, `after insert ${i}`).to.deep.equal(Array.from({ length: 4 }, () => `${i}\n`));
      }
    } finally {
      stop = true;
      await background;
    }
  });

  it('shards a table by user_id over 16 groups: 100,000 rows spread evenly, totals right through every node', async () => {
    const c = client(0);
    await c.command({ query: "CREATE TABLE visits (user_id UInt64, amount UInt32, day Date) ENGINE = MergeTree ORDER BY (user_id, day) SETTINGS rafthouse_shard_key = 'user_id'" });
    const total = 100_000;
    let sum = 0;
    const chunkRows = 25_000;
    for (let chunk = 0; chunk < total / chunkRows; chunk++) {
      const rows = [];
      for (let i = chunk * chunkRows; i < (chunk + 1) * chunkRows; i++) {
        const amount = (i * 7919) % 1000;
        sum += amount;
        rows.push({ user_id: i, amount, day: '2026-01-01' });
      }
      await client(chunk % 3).insert({ table: 'visits', values: rows, format: 'JSONEachRow' });
    }
    const per = await (await c.query({ query: 'SELECT _database AS db, count() AS n FROM visits GROUP BY db ORDER BY db', format: 'JSONEachRow' })).json<{ db: string; n: string }>();
    expect(per.length, JSON.stringify(per)).to.equal(GROUPS);
    const fair = total / GROUPS;
    for (const g of per) expect(Number(g.n), `${g.db} holds ${g.n} rows`).to.be.within(1, 2 * fair);
    for (let i = 0; i < 3; i++) {
      const t = await ok(post(cluster.nodes[i]!.consistentUrl, 'SELECT count(), sum(amount) FROM visits'));
      expect(t, `via node ${i + 1}`).to.equal(`${total}\t${sum}\n`);
    }
    // Other formats are evaluated on the gateway first, then split the same way.
    await ok(http(cluster.nodes[2]!.consistentUrl, { sql: 'INSERT INTO visits FORMAT CSV', body: '100000,1,2026-01-02\n100001,2,2026-01-02\n' }));
    await ok(post(cluster.nodes[2]!.consistentUrl, "INSERT INTO visits VALUES (100002, 3, '2026-01-02')"));
    expect(await ok(post(cluster.nodes[0]!.consistentUrl, 'SELECT count(), sum(amount) FROM visits WHERE day = \'2026-01-02\''))).to.equal('3\t6\n');
    const shardOf = await ok(post(cluster.nodes[0]!.consistentUrl, "SELECT user_id, _database FROM visits WHERE day = '2026-01-02' ORDER BY user_id FORMAT JSONEachRow"));
    const ring = await HashRing.create({ groups: GROUPS });
    for (const l of shardOf.trim().split('\n')) {
      const r = JSON.parse(l) as { user_id: string | number; _database: string };
      expect(r._database, `user ${r.user_id}`).to.equal(`rh_g${ring.groupOf(String(r.user_id))}`);
    }
    // A user's rows are all in one group (the split is by key).
    const spread = await ok(post(cluster.nodes[1]!.consistentUrl, 'SELECT max(c) FROM (SELECT user_id, uniqExact(_database) AS c FROM visits GROUP BY user_id)'));
    expect(spread).to.equal('1\n');
  });

  it('reads a table recreated with another placement consistently (unsharded -> sharded)', async () => {
    const [a, b, c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    await ok(post(a!.consistentUrl, 'CREATE TABLE re (user_id UInt32) ENGINE = MergeTree ORDER BY user_id'));
    await ok(post(a!.consistentUrl, 'INSERT INTO re VALUES (1)'));
    expect(await ok(post(b!.consistentUrl, 'SELECT count() FROM re'))).to.equal('1\n'); // node 2 learns "unsharded"
    await ok(post(a!.consistentUrl, 'DROP TABLE re'));
    await ok(post(a!.consistentUrl, "CREATE TABLE re (user_id UInt32) ENGINE = MergeTree ORDER BY user_id SETTINGS rafthouse_shard_key = 'user_id'"));
    await ok(post(c!.consistentUrl, 'INSERT INTO re FORMAT JSONEachRow\n' + Array.from({ length: 200 }, (_, i) => `{"user_id":${i}}`).join('\n')));
    expect(await ok(post(b!.consistentUrl, 'SELECT count(), uniqExact(_database) > 8 FROM re'))).to.equal('200\t1\n');
    // Node 1 inserted into the unsharded table before: its cached definition must not survive the DDL.
    await ok(post(a!.consistentUrl, 'INSERT INTO re FORMAT JSONEachRow\n' + Array.from({ length: 200 }, (_, i) => `{"user_id":${1000 + i}}`).join('\n')));
    expect(await ok(post(b!.consistentUrl, "SELECT count(), uniqExact(_database) > 8 FROM re WHERE user_id >= 1000"))).to.equal('200\t1\n');
  });

  it('pins or refuses non-deterministic writes; identical values on every replica', async () => {
    const base = cluster.nodes[0]!.consistentUrl;
    await ok(post(base, 'CREATE TABLE nd (k UInt32, t DateTime, u UUID DEFAULT generateUUIDv4(), r UInt32 MATERIALIZED rand(), d Date DEFAULT today()) ENGINE = MergeTree ORDER BY k'));
    await ok(post(base, 'INSERT INTO nd (k, t) VALUES (1, now())'));                        // VALUES: evaluated on the gateway
    await ok(post(base, "INSERT INTO nd (k, t, u) VALUES (2, now(), generateUUIDv4())"));
    await ok(post(base, 'INSERT INTO nd (k, t) FORMAT JSONEachRow\n{"k":3,"t":"2026-01-01 00:00:00"}\n')); // defaults materialized
    await ok(post(base, 'ALTER TABLE nd UPDATE t = now() WHERE k = 3'));                    // pinned in a mutation
    await ok(post(base, 'CREATE TABLE nd2 (k UInt32, t DateTime, t64 DateTime64(3), d Date) ENGINE = MergeTree ORDER BY k'));
    await ok(post(base, 'INSERT INTO nd2 SELECT number, now(), now64(), today() FROM numbers(3)')); // pinned literals
    const refusals: Array<[string, string]> = [
      ['INSERT INTO nd (k, t) SELECT rand(), now()', 'rand'],
      ["INSERT INTO nd (k, t, u) SELECT 5, now(), generateUUIDv4()", 'generateUUIDv4'],
      ['INSERT INTO nd (k, t) SELECT 6, now()', 'u'], // non-deterministic DEFAULT cannot be pinned in INSERT ... SELECT
      ['ALTER TABLE nd UPDATE k = rand() WHERE 1', 'rand'],
    ];
    for (const [sql, name] of refusals) {
      const r = await post(base, sql);
      expect(r.headers.get('x-clickhouse-exception-code'), `${sql}: ${r.text}`).to.equal('36');
      expect(r.text).to.contain(name);
    }
    // async_insert and insert_deduplication_token are accepted now: test/integration/rafthouse/dedup.test.ts.
    // Every replica has exactly the same rows, materialized columns included.
    const snapshot = 'SELECT k, t, u, r, d FROM nd ORDER BY k FORMAT JSONEachRow';
    const want = await ok(post(base, snapshot));
    expect(want.split('\n').filter((l) => l)).to.have.length(3);
    const snapshot2 = 'SELECT k, t, t64, d FROM nd2 ORDER BY k FORMAT JSONEachRow';
    const want2 = await ok(post(base, snapshot2));
    expect(want2.split('\n').filter((l) => l)).to.have.length(3);
    for (const n of cluster.nodes) {
      expect(await ok(post(n.consistentUrl, snapshot)), `node ${n.id}`).to.equal(want);
      expect(await ok(post(n.consistentUrl, snapshot2)), `node ${n.id}`).to.equal(want2);
    }
    // The three rows of one INSERT ... SELECT got the one pinned instant.
    expect(await ok(post(base, 'SELECT uniqExact(t), uniqExact(t64) FROM nd2'))).to.equal('1\t1\n');
    expect(await ok(post(base, "SELECT count() FROM nd WHERE u = toUUID('00000000-0000-0000-0000-000000000000') OR t = toDateTime(0)"))).to.equal('0\n');
  });

  it('replicates SET as group settings: later writes in every group use them', async () => {
    const base = cluster.nodes[2]!.consistentUrl;
    await ok(post(base, 'CREATE TABLE st (k UInt32) ENGINE = MergeTree ORDER BY k'));
    // ClickHouse 26.x skips unknown JSON fields by default; a replicated SET turns that off everywhere.
    await ok(post(base, 'INSERT INTO st FORMAT JSONEachRow\n{"k":1,"extra":2}\n'));
    await ok(post(cluster.nodes[0]!.consistentUrl, 'SET input_format_skip_unknown_fields = 0'));
    const after = await post(base, 'INSERT INTO st FORMAT JSONEachRow\n{"k":2,"extra":2}\n');
    expect(after.headers.get('x-clickhouse-exception-code'), after.text).to.equal('117'); // INCORRECT_DATA: unknown field
    await ok(post(base, 'INSERT INTO st FORMAT JSONEachRow\n{"k":3}\n'));
    expect(await ok(post(cluster.nodes[1]!.consistentUrl, 'SELECT groupArray(k) FROM (SELECT k FROM st ORDER BY k)'))).to.equal('[1,3]\n');
    const owned = await post(base, 'SET max_insert_block_size = 10');
    expect(owned.headers.get('x-clickhouse-exception-code')).to.equal('452'); // fixed on the apply path
  });

  it('refuses writes on the local endpoint with READONLY whatever the settings, and nothing changes', async () => {
    const c0 = cluster.nodes[0]!;
    await ok(post(c0.consistentUrl, 'CREATE TABLE ro (k UInt32) ENGINE = MergeTree ORDER BY k'));
    await ok(post(c0.consistentUrl, 'INSERT INTO ro VALUES (1)'));
    for (const n of cluster.nodes) await ok(post(n.consistentUrl, 'SELECT count() FROM ro')); // every replica has it
    const attempts: Array<{ url: string; sql: string; query?: Record<string, string>; headers?: Record<string, string>; body?: string }> = [];
    for (const n of cluster.nodes) {
      attempts.push({ url: n.localUrl, sql: 'INSERT INTO ro VALUES (2)' });
      attempts.push({ url: n.localUrl, sql: 'INSERT INTO ro VALUES (2)', query: { readonly: '0' } });
      attempts.push({ url: n.localUrl, sql: 'INSERT INTO ro SETTINGS readonly = 0 VALUES (2)' });
      attempts.push({ url: n.localUrl, sql: 'INSERT INTO ro FORMAT JSONEachRow', body: '{"k":2}\n', query: { readonly: '0', allow_ddl: '1' } });
      attempts.push({ url: n.localUrl, sql: 'DROP TABLE ro', query: { readonly: '0' } });
      attempts.push({ url: n.localUrl, sql: 'TRUNCATE TABLE ro' });
      attempts.push({ url: n.localUrl, sql: 'SELECT 1', query: { readonly: '0' } });
      attempts.push({ url: n.localUrl, sql: 'SELECT 1 SETTINGS readonly = 0' });
    }
    // The Host header picks the local endpoint on the consistent port too.
    for (const n of cluster.nodes) {
      const r = await postWithHost(n.consistentUrl, 'rh-local.test:80', 'INSERT INTO ro VALUES (2)', { readonly: '0' });
      expect(r.headers.get('x-clickhouse-exception-code'), r.text).to.equal('164');
    }
    for (const a of attempts) {
      const r = a.body !== undefined
        ? await http(a.url, { sql: a.sql, body: a.body, query: a.query ?? {}, headers: a.headers ?? {} })
        : await post(a.url, a.sql, a.query ?? {}, a.headers ?? {});
      expect(r.headers.get('x-clickhouse-exception-code'), `${a.sql} ${JSON.stringify(a.query)}: ${r.text}`).to.equal('164');
      expect(r.text).to.match(/^Code: 164\. DB::Exception: .*\(READONLY\)/);
    }
    // The Host header for the consistent endpoint works on the local port.
    const viaHost = await postWithHost(cluster.nodes[1]!.localUrl, 'rh.test', 'INSERT INTO ro VALUES (3)');
    expect(viaHost.status, viaHost.text).to.equal(200);
    for (const n of cluster.nodes) {
      expect(await ok(post(n.consistentUrl, 'SELECT groupArray(k) FROM (SELECT k FROM ro ORDER BY k)')), `node ${n.id}`).to.equal('[1,3]\n');
    }
    // Reads on the local endpoint still work, settings included.
    expect(await ok(post(cluster.nodes[2]!.localUrl, "SELECT getSetting('max_block_size')", { max_block_size: '777' }))).to.equal('777\n');
  });
});
