// Every input format ClickHouse accepts over HTTP for INSERT (issue 23, deliverable 4), end to end on
// 3 raftd + 3 rafthouse processes with embedded chdb: the stock @clickhouse/client for the formats it
// sends, raw HTTP bodies (what curl --data-binary sends) for the binary ones, whose bytes chdb itself
// produces here (SELECT ... FORMAT Native). Each into an unsharded table (the body passes through to
// the state machine unchanged) and a sharded one (the gateway reads it once with chdb and splits it),
// then the rows are read back on every replica, and every replica's checksums agree.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { RafthouseCluster } from './harness.js';
import { checksumsConverge } from './checksums.js';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';

const GROUPS = 2;
const TABLES = ['plain', 'sharded'] as const;
/** Rows each format inserts: ids base .. base + ROWS - 1. */
const ROWS = 4;

interface Row { id: number; s: string; n: number }

function rowsFrom(base: number): Row[] {
  return Array.from({ length: ROWS }, (_, i) => ({ id: base + i, s: `v${base + i}`, n: (base + i) / 4 }));
}

async function post(base: string, query: Record<string, string>, body: string | Buffer): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}/?${new URLSearchParams(query)}`, { method: 'POST', body, signal: AbortSignal.timeout(60_000) });
  return { status: res.status, text: await res.text() };
}

describe('RaftHouse insert formats (3 nodes, 2 groups, real processes)', function () {
  this.timeout(300_000);
  let cluster: RafthouseCluster;
  let client: ClickHouseClient;
  let chdb: ClickHouseEngine;
  let chdbDir: string;
  /** id base -> format, for the messages. */
  const inserted = new Map<number, string>();
  let nextBase = 0;

  before(async () => {
    cluster = await RafthouseCluster.start({ groups: GROUPS });
    client = createClient({ url: cluster.nodes[0]!.consistentUrl, request_timeout: 60_000 });
    chdbDir = mkdtempSync(join(tmpdir(), 'rh-formats-'));
    chdb = await openEmbedded({ dataDir: chdbDir });
    await client.command({ query: 'CREATE TABLE plain (id UInt32, s String, n Float64) ENGINE = MergeTree ORDER BY id' });
    await client.command({ query: "CREATE TABLE sharded (id UInt32, s String, n Float64) ENGINE = MergeTree ORDER BY id SETTINGS rafthouse_shard_key = 'id'" });
  });

  after(async () => {
    await client?.close();
    await chdb?.close();
    if (chdbDir) rmSync(chdbDir, { recursive: true, force: true });
    await cluster?.destroy();
  });

  function take(format: string): { base: number; rows: Row[] } {
    const base = (nextBase += 100);
    inserted.set(base, format);
    return { base, rows: rowsFrom(base) };
  }

  /** The rows of `base` in `format`, written by chdb (its own output of the same rows). */
  async function bytesOf(base: number, format: string): Promise<Buffer> {
    return chdb.query(`SELECT toUInt32(number + ${base}) AS id, concat('v', toString(number + ${base})) AS s, (number + ${base}) / 4 AS n FROM numbers(${ROWS})`, { format });
  }

  const text = (rows: Row[], sep: string, header = '') => header + rows.map((r) => [r.id, r.s, r.n].join(sep)).join('\n') + '\n';
  const meta = [{ name: 'id', type: 'UInt32' }, { name: 's', type: 'String' }, { name: 'n', type: 'Float64' }];

  it('@clickhouse/client: every JSON format it sends', async () => {
    for (const table of TABLES) {
      const put = async (format: string, values: (rows: Row[]) => unknown) => {
        const { rows } = take(format);
        await client.insert({ table, values: values(rows) as never, format: format as never });
      };
      await put('JSONEachRow', (rows) => rows);
      await put('JSONStringsEachRow', (rows) => rows.map((r) => ({ id: String(r.id), s: r.s, n: String(r.n) })));
      await put('JSONCompactEachRow', (rows) => rows.map((r) => [r.id, r.s, r.n]));
      await put('JSONCompactStringsEachRow', (rows) => rows.map((r) => [String(r.id), r.s, String(r.n)]));
      await put('JSONCompactEachRowWithNames', (rows) => [['id', 's', 'n'], ...rows.map((r) => [r.id, r.s, r.n])]);
      await put('JSONCompactEachRowWithNamesAndTypes', (rows) => [['id', 's', 'n'], ['UInt32', 'String', 'Float64'], ...rows.map((r) => [r.id, r.s, r.n])]);
      await put('JSONCompactStringsEachRowWithNames', (rows) => [['id', 's', 'n'], ...rows.map((r) => [String(r.id), r.s, String(r.n)])]);
      await put('JSONCompactStringsEachRowWithNamesAndTypes', (rows) => [['id', 's', 'n'], ['UInt32', 'String', 'Float64'], ...rows.map((r) => [String(r.id), r.s, String(r.n)])]);
      await put('JSON', (rows) => ({ meta, data: rows }));
      await put('JSONCompact', (rows) => ({ meta, data: rows.map((r) => [r.id, r.s, r.n]) }));
      await put('JSONColumnsWithMetadata', (rows) => ({ meta, data: { id: rows.map((r) => r.id), s: rows.map((r) => r.s), n: rows.map((r) => r.n) } }));
      await put('JSONObjectEachRow', (rows) => Object.fromEntries(rows.map((r) => [`row_${r.id}`, r])));
    }
  });

  it('@clickhouse/client: CSV*, TSV*, CustomSeparated* and Parquet as streams', async () => {
    for (const table of TABLES) {
      const put = async (format: string, body: (rows: Row[], base: number) => Promise<string | Buffer> | string) => {
        const { rows, base } = take(format);
        await client.insert({ table, values: Readable.from([await body(rows, base)], { objectMode: false }), format: format as never });
      };
      await put('CSV', (rows) => text(rows, ','));
      await put('CSVWithNames', (rows) => text(rows, ',', 'id,s,n\n'));
      await put('CSVWithNamesAndTypes', (rows) => text(rows, ',', 'id,s,n\nUInt32,String,Float64\n'));
      await put('TabSeparated', (rows) => text(rows, '\t'));
      await put('TabSeparatedRaw', (rows) => text(rows, '\t'));
      await put('TabSeparatedWithNames', (rows) => text(rows, '\t', 'id\ts\tn\n'));
      await put('TabSeparatedWithNamesAndTypes', (rows) => text(rows, '\t', 'id\ts\tn\nUInt32\tString\tFloat64\n'));
      await put('CustomSeparated', (rows) => text(rows, '\t'));
      await put('CustomSeparatedWithNames', (rows) => text(rows, '\t', 'id\ts\tn\n'));
      await put('CustomSeparatedWithNamesAndTypes', (rows) => text(rows, '\t', 'id\ts\tn\nUInt32\tString\tFloat64\n'));
      await put('Parquet', (_rows, base) => bytesOf(base, 'Parquet'));
    }
  });

  it('raw bodies (curl --data-binary): binary formats produced by chdb, the query in the URL', async () => {
    const formats = ['RowBinary', 'RowBinaryWithNames', 'RowBinaryWithNamesAndTypes', 'Native', 'Parquet', 'Arrow', 'ArrowStream', 'ORC', 'Avro',
      'MsgPack', 'BSONEachRow', 'TSKV', 'JSONStringsEachRow', 'JSONCompactStringsEachRowWithNamesAndTypes', 'TSVRaw', 'TSVWithNamesAndTypes'];
    for (const table of TABLES) {
      for (const format of formats) {
        const { base } = take(format);
        const r = await post(cluster.nodes[1]!.consistentUrl, { query: `INSERT INTO ${table} FORMAT ${format}` }, await bytesOf(base, format));
        expect(r.status, `${format} into ${table}: ${r.text}`).to.equal(200);
      }
    }
  });

  it('format settings travel with the data (CustomSeparated with its delimiters, CSV with another delimiter)', async () => {
    for (const table of TABLES) {
      const { rows } = take('CustomSeparated |');
      const custom = 'BEGIN\n' + rows.map((r) => `<${r.id}|${JSON.stringify(r.s)}|${r.n}>`).join(',\n') + '\nEND';
      const r1 = await post(cluster.nodes[0]!.consistentUrl, {
        query: `INSERT INTO ${table} FORMAT CustomSeparated`, format_custom_escaping_rule: 'JSON', format_custom_field_delimiter: '|',
        format_custom_row_before_delimiter: '<', format_custom_row_after_delimiter: '>', format_custom_row_between_delimiter: ',\n',
        format_custom_result_before_delimiter: 'BEGIN\n', format_custom_result_after_delimiter: '\nEND',
      }, custom);
      expect(r1.status, `CustomSeparated into ${table}: ${r1.text}`).to.equal(200);
      const { rows: rows2 } = take('CSV ;');
      const r2 = await post(cluster.nodes[0]!.consistentUrl, { query: `INSERT INTO ${table} FORMAT CSV`, format_csv_delimiter: ';' }, text(rows2, ';'));
      expect(r2.status, `CSV ; into ${table}: ${r2.text}`).to.equal(200);
    }
  });

  it('raw bodies: the statement and binary data together in the body (INSERT ... FORMAT Native\\n<bytes>)', async () => {
    for (const table of TABLES) {
      for (const format of ['Native', 'RowBinaryWithNamesAndTypes', 'Parquet']) {
        const { base } = take(`${format} inline`);
        const body = Buffer.concat([Buffer.from(`INSERT INTO ${table} FORMAT ${format}\n`), await bytesOf(base, format)]);
        const r = await post(cluster.nodes[2]!.consistentUrl, {}, body);
        expect(r.status, `${format} inline into ${table}: ${r.text}`).to.equal(200);
      }
    }
  });

  it('refuses formats that would reach outside the entry (a schema file, a registry), on the gateway', async () => {
    for (const format of ['Protobuf', 'CapnProto', 'Template', 'AvroConfluent']) {
      const r = await post(cluster.nodes[0]!.consistentUrl, { query: `INSERT INTO plain FORMAT ${format}` }, Buffer.from([1, 2, 3]));
      expect(r.status, `${format}: ${r.text}`).to.not.equal(200);
      expect(r.text, format).to.match(/not accepted for writes/);
    }
  });

  it('every replica holds every row exactly once, and the replicas agree', async () => {
    const want = [...inserted.keys()].flatMap((b) => rowsFrom(b)).sort((a, b) => a.id - b.id);
    for (const table of TABLES) {
      const perTable = want.length / 2;
      for (const node of cluster.nodes) {
        // A consistent read on a node reads its own replica (after a barrier).
        const reader = createClient({ url: node.consistentUrl });
        const rows = await (await reader.query({ query: `SELECT id, s, n FROM ${table} ORDER BY id`, format: 'JSONEachRow' })).json<Row>();
        await reader.close();
        const ids = new Set(rows.map((r) => r.id));
        expect(rows.length, `${table} on node ${node.id}`).to.equal(ids.size);
        expect(rows.length, `${table} on node ${node.id}`).to.equal(perTable);
        for (const r of rows) {
          const base = Math.floor(r.id / 100) * 100;
          expect(r, `${table} node ${node.id}, format ${inserted.get(base)}`).to.deep.equal({ id: r.id, s: `v${r.id}`, n: r.id / 4 });
        }
      }
    }
    // The sharded table's rows are in both groups.
    const spread = await (await client.query({ query: 'SELECT uniqExact(_database) AS g FROM sharded', format: 'JSONEachRow' })).json<{ g: string }>();
    expect(Number(spread[0]!.g)).to.equal(GROUPS);
    // Same data on every replica, group by group.
    await checksumsConverge(cluster, GROUPS);
  });

  it('system.tables on the consistent endpoint of any node shows a table created through another one at once', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await post(cluster.nodes[2]!.consistentUrl, {}, `CREATE TABLE late_${i} (a UInt8) ENGINE = MergeTree ORDER BY a`)).status).to.equal(200);
      for (const n of cluster.nodes.slice(0, 2)) {
        const r = await post(n.consistentUrl, {}, `SELECT database, engine FROM system.tables WHERE name = 'late_${i}' FORMAT JSONEachRow`);
        expect(r.text, `node ${n.id}, table ${i}`).to.equal('{"database":"default","engine":"MergeTree"}\n');
      }
    }
  });

  it('a retried binary insert lands once (block dedup hashes the bytes, whatever the format)', async () => {
    for (const table of TABLES) {
      const { base } = take('Native retried');
      const body = await bytesOf(base, 'Native');
      for (let i = 0; i < 3; i++) {
        const r = await post(cluster.nodes[i]!.consistentUrl, { query: `INSERT INTO ${table} FORMAT Native` }, body);
        expect(r.status, r.text).to.equal(200);
      }
      // The same rows again in another format (other bytes), with the token of the first attempt.
      const { base: b2 } = take('Parquet retried with a token');
      for (const format of ['Parquet', 'Native']) {
        const r = await post(cluster.nodes[0]!.consistentUrl, { query: `INSERT INTO ${table} FORMAT ${format}`, insert_deduplication_token: `tok-${table}` }, await bytesOf(b2, format));
        expect(r.status, r.text).to.equal(200);
      }
      const n = await (await client.query({ query: `SELECT count() AS c FROM ${table} WHERE id >= ${base}`, format: 'JSONEachRow' })).json<{ c: string }>();
      expect(Number(n[0]!.c), table).to.equal(2 * ROWS);
    }
  });
});
