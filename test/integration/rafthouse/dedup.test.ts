// Retry-safe inserts end to end (docs/clickhouse.md, "Retry-safe inserts"): 3 raftd + 3 rafthouse
// processes, embedded chdb. A client whose INSERT answer is lost retries it; the rows land once, on
// every replica; a sharded insert that landed in some groups only is completed by its retry.

import { expect } from 'chai';
import { RafthouseCluster } from './harness.js';
import { HashRing } from '../../../clickhouse-adapter/router/index.js';
import { checksumsConverge } from './checksums.js';

const GROUPS = 4;
/** The table whose home group applies slowly on every replica: its INSERT answers come late. */
const SLOW_TABLE = 'slow';
const APPLY_DELAY_MS = 1500;

interface Raw { status: number; text: string }

async function post(base: string, sql: string, query: Record<string, string> = {}, timeoutMs = 30_000): Promise<Raw> {
  const res = await fetch(`${base}/?${new URLSearchParams(query)}`, { method: 'POST', body: sql, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}

async function ok(base: string, sql: string, query: Record<string, string> = {}): Promise<string> {
  const r = await post(base, sql, query);
  expect(r.status, `${sql.slice(0, 80)}: ${r.text}`).to.equal(200);
  return r.text;
}

const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => `{"k":${from + i},"v":"r${from + i}"}`).join('\n') + '\n';

describe('RaftHouse retry-safe inserts (3 nodes, real processes)', function () {
  this.timeout(240_000);
  let cluster: RafthouseCluster;
  let ring: HashRing;
  let c0: string;

  before(async () => {
    ring = await HashRing.create({ groups: GROUPS });
    const slowGroup = ring.homeGroup('default', SLOW_TABLE);
    cluster = await RafthouseCluster.start({ groups: GROUPS, env: { RAFTHOUSE_TEST_APPLY_DELAY: `${slowGroup}:${APPLY_DELAY_MS}` } });
    c0 = cluster.nodes[0]!.consistentUrl;
  });

  after(async () => {
    await cluster?.destroy();
  });

  /** count() and a hash of the rows on each node's local endpoint (its own replica), once equal. */
  async function everyReplica(table: string): Promise<string> {
    const sql = `SELECT count(), sum(cityHash64(k, v)) FROM ${table}`;
    const want = await ok(c0, sql);
    for (const n of cluster.nodes) {
      let got = '';
      for (let i = 0; i < 100 && got !== want; i++) {
        got = await ok(n.localUrl, sql);
        if (got !== want) await new Promise((r) => setTimeout(r, 100));
      }
      expect(got, `node ${n.id}`).to.equal(want);
    }
    return want;
  }

  it('an INSERT whose answer is lost (client timeout after the entry committed), retried with the same rows: the rows are there once, on every replica', async () => {
    await ok(c0, `CREATE TABLE ${SLOW_TABLE} (k UInt32, v String) ENGINE = MergeTree ORDER BY k`);
    const sql = `INSERT INTO ${SLOW_TABLE} FORMAT JSONEachRow\n${rows(1, 50)}`;
    // The group applies each batch 1.5 s late: the client gives up after 300 ms, the entry commits anyway.
    let lost: unknown;
    try {
      await post(c0, sql, {}, 300);
    } catch (e) {
      lost = e;
    }
    expect((lost as Error | undefined)?.name, 'the first answer must be lost').to.equal('TimeoutError');
    // The retry: sent at once, typically before the first entry even applied.
    await ok(c0, sql);
    expect(await everyReplica(SLOW_TABLE)).to.match(/^50\t/);
    // And once more through another node, with the stock client's habit of a query_id: still once.
    await ok(cluster.nodes[2]!.consistentUrl, sql, { query_id: 'retry-3' });
    expect(await everyReplica(SLOW_TABLE)).to.match(/^50\t/);
    await checksumsConverge(cluster, GROUPS);
  });

  it('insert_deduplication_token: the token decides (the same token with other rows is a duplicate, another token with the same rows is not)', async () => {
    await ok(c0, 'CREATE TABLE tok (k UInt32, v String) ENGINE = MergeTree ORDER BY k');
    await ok(c0, `INSERT INTO tok FORMAT JSONEachRow\n${rows(1, 10)}`, { insert_deduplication_token: 'batch-1' });
    await ok(c0, `INSERT INTO tok FORMAT JSONEachRow\n${rows(1, 10)}`, { insert_deduplication_token: 'batch-1' });
    await ok(c0, `INSERT INTO tok FORMAT JSONEachRow\n${rows(100, 10)}`, { insert_deduplication_token: 'batch-1' });
    expect(await ok(c0, 'SELECT count(), min(k), max(k) FROM tok')).to.equal('10\t1\t10\n');
    await ok(c0, `INSERT INTO tok FORMAT JSONEachRow\n${rows(1, 10)}`, { insert_deduplication_token: 'batch-2' });
    // The token in the statement's SETTINGS clause works the same.
    await ok(c0, `INSERT INTO tok SETTINGS insert_deduplication_token = 'batch-2' FORMAT JSONEachRow\n${rows(1, 10)}`);
    expect(await everyReplica('tok')).to.match(/^20\t/);
  });

  it('a sharded INSERT whose part landed in one group only, retried whole: completed, nothing duplicated (data and token)', async () => {
    await ok(c0, "CREATE TABLE sh (k UInt32, v String) ENGINE = MergeTree ORDER BY k SETTINGS rafthouse_shard_key = 'k'");
    const all = Array.from({ length: 200 }, (_, i) => `{"k":${i},"v":"r${i}"}`);
    const groupOf = (line: string) => ring.groupOf(String((JSON.parse(line) as { k: number }).k));
    const landed = groupOf(all[0]!);
    // What a partly failed insert leaves: exactly the rows of one group, as that group's entry held them.
    const part = all.filter((l) => groupOf(l) === landed);
    expect(part.length).to.be.within(1, 199);
    for (const [name, query] of [['data', {}], ['token', { insert_deduplication_token: 'sharded-1' }]] as const) {
      await ok(c0, 'TRUNCATE TABLE sh');
      await ok(c0, `INSERT INTO sh FORMAT JSONEachRow\n${part.join('\n')}\n`, query);
      expect(await ok(c0, 'SELECT count() FROM sh'), name).to.equal(`${part.length}\n`);
      await ok(cluster.nodes[1]!.consistentUrl, `INSERT INTO sh FORMAT JSONEachRow\n${all.join('\n')}\n`, query);
      expect(await ok(c0, 'SELECT count(), uniqExact(k) FROM sh'), name).to.equal('200\t200\n');
      // Retried whole again: every group's part is a duplicate now.
      await ok(c0, `INSERT INTO sh FORMAT JSONEachRow\n${all.join('\n')}\n`, query);
      expect(await everyReplica('sh'), name).to.match(/^200\t/);
    }
    await checksumsConverge(cluster, GROUPS);
  });

  it('TRUNCATE and DROP forget the blocks (the same insert lands again); RENAME carries them; insert_deduplicate=0 inserts twice', async () => {
    const ins = `INSERT INTO fg FORMAT JSONEachRow\n${rows(1, 5)}`;
    await ok(c0, 'CREATE TABLE fg (k UInt32, v String) ENGINE = MergeTree ORDER BY k');
    await ok(c0, ins);
    await ok(c0, ins);
    expect(await ok(c0, 'SELECT count() FROM fg')).to.equal('5\n');
    await ok(c0, 'TRUNCATE TABLE fg');
    await ok(c0, ins);
    expect(await ok(c0, 'SELECT count() FROM fg'), 'after TRUNCATE').to.equal('5\n');
    await ok(c0, 'DROP TABLE fg');
    await ok(c0, 'CREATE TABLE fg (k UInt32, v String) ENGINE = MergeTree ORDER BY k');
    await ok(c0, ins);
    expect(await ok(c0, 'SELECT count() FROM fg'), 'after DROP + CREATE').to.equal('5\n');
    await ok(c0, ins, { insert_deduplicate: '0' });
    expect(await ok(c0, 'SELECT count() FROM fg'), 'insert_deduplicate=0').to.equal('10\n');
    await ok(c0, ins, { insert_deduplicate: '0' });
    expect(await everyReplica('fg'), 'insert_deduplicate=0, again').to.match(/^15\t/);
    // The blocks a table remembers go with it on RENAME (ClickHouse keeps the log with the table).
    // Tables are placed by name: the new name must live in the same group.
    const home = ring.homeGroup('default', 'rn');
    const to = Array.from({ length: 200 }, (_, i) => `rn_${i}`).find((n) => ring.homeGroup('default', n) === home)!;
    await ok(c0, 'CREATE TABLE rn (k UInt32, v String) ENGINE = MergeTree ORDER BY k');
    await ok(c0, `INSERT INTO rn FORMAT JSONEachRow\n${rows(1, 5)}`);
    await ok(c0, `RENAME TABLE rn TO ${to}`);
    await ok(c0, `INSERT INTO ${to} FORMAT JSONEachRow\n${rows(1, 5)}`);
    expect(await ok(c0, `SELECT count() FROM ${to}`), 'after RENAME').to.equal('5\n');
    await ok(c0, 'CREATE TABLE rn (k UInt32, v String) ENGINE = MergeTree ORDER BY k');
    await ok(c0, `INSERT INTO rn FORMAT JSONEachRow\n${rows(1, 5)}`);
    expect(await everyReplica('rn'), 'a new table under the old name').to.match(/^5\t/);
    await checksumsConverge(cluster, GROUPS);
  });

  it('async_insert=1 is accepted and served synchronously: the rows are readable when the answer comes', async () => {
    await ok(c0, 'CREATE TABLE asy (k UInt32, v String) ENGINE = MergeTree ORDER BY k');
    await ok(c0, `INSERT INTO asy FORMAT JSONEachRow\n${rows(1, 3)}`, { async_insert: '1', wait_for_async_insert: '0' });
    expect(await ok(c0, 'SELECT count() FROM asy')).to.equal('3\n');
    await ok(c0, `INSERT INTO asy SETTINGS async_insert = 1 FORMAT JSONEachRow\n${rows(10, 3)}`);
    expect(await ok(c0, 'SELECT count() FROM asy')).to.equal('6\n');
  });
});
