// No poison entries (issue 22): entries that used to wedge a group on every replica end, on every replica,
// in the same failure within 10 s, later entries of the group apply, and `/raft-health` (no group) stays
// 200 on every node meanwhile. An abandon is decided by the leader's rafthouse only (a raw one without the
// app secret's MAC is refused on every replica) and only when every member reports failing at the entry
// (one member's rafthouse down: the group stays stuck until it is back). 3 raftd + 3 rafthouse processes,
// embedded chdb.

import { expect } from 'chai';
import { RafthouseCluster } from './harness.js';
import { readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForHttp } from '../cluster.js';
import { RaftdClient, RaftdError } from '../../../adapters/sdk/client.js';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import type { EntryHeader } from '../../../clickhouse-adapter/statemachine/entry.js';
import { HashRing } from '../../../clickhouse-adapter/router/index.js';

const GROUPS = 2;

interface Raw { status: number; text: string; code: string | null }

async function post(base: string, sql: string): Promise<Raw> {
  const res = await fetch(`${base}/`, { method: 'POST', body: sql, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, text: await res.text(), code: res.headers.get('x-clickhouse-exception-code') };
}

async function ok(r: Promise<Raw>): Promise<string> {
  const x = await r;
  expect(x.status, x.text).to.equal(200);
  return x.text;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe('RaftHouse: no poison entries (3 nodes, real processes)', function () {
  this.timeout(240_000);
  let cluster: RafthouseCluster;
  let raftd: RaftdClient;
  let ring: HashRing;
  /** The group of table `t` in the user database. */
  const groupOf = (t: string): number => ring.homeGroup('default', t);

  /** Proposes a raw entry through raftd's API (no gateway); resolves with the entry's error code, or 'ok', and the time it took. */
  async function proposeRaw(group: number, header: EntryHeader): Promise<{ outcome: string; ms: number }> {
    const t0 = Date.now();
    try {
      await raftd.propose(group, encodeEntry(header));
      return { outcome: 'ok', ms: Date.now() - t0 };
    } catch (e) {
      if (!(e instanceof RaftdError)) throw e;
      return { outcome: e.code, ms: Date.now() - t0 };
    }
  }

  /** Every replica has applied the same index in `group` and holds the same checksums. */
  async function replicasAgree(group: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    let last = '';
    while (Date.now() < deadline) {
      const sums = await Promise.all(cluster.raft.nodes.map(async (n) => {
        const r = await n.post(`/v1/groups/${group}/read?consistency=stale`, { op: 'checksum' });
        return JSON.stringify(r.body?.result ?? r.body);
      }));
      if (sums.every((s) => s === sums[0])) return;
      last = sums.join('\n');
      await sleep(200);
    }
    expect.fail(`replicas of group ${group} disagree:\n${last}`);
  }

  /**
   * Sets `max_parts_in_total` of `table` on every replica behind RaftHouse's back (its rules refuse the
   * setting: parts differ between replicas): each rafthouse stopped, the table's metadata file edited,
   * started again. A failure outside the entries, the same on every replica.
   */
  async function partLimitBehindTheBack(table: string, limit: number): Promise<void> {
    for (const n of cluster.nodes) {
      const dataDir = join(cluster.raft.dir, `ch${n.id}`);
      await n.proc.stop();
      try {
        // metadata/<db>/ may be a link into store/: one file, however it is reached; the group's table,
        // not the user database's read view of the same name.
        const files = new Set((readdirSync(dataDir, { recursive: true }) as string[])
          .filter((f) => f.endsWith(`/${table}.sql`)).map((f) => realpathSync(join(dataDir, f)))
          .filter((f) => /ENGINE = MergeTree/.test(readFileSync(f, 'utf8'))));
        expect(files.size, `node ${n.id}: metadata of ${table}`).to.equal(1);
        for (const f of files) {
          const sql = readFileSync(f, 'utf8').replace(/,?\s*max_parts_in_total = \d+/, '');
          writeFileSync(f, /\bSETTINGS\b/.test(sql) ? sql.replace(/\bSETTINGS\b/, `SETTINGS max_parts_in_total = ${limit},`) : `${sql.trimEnd()} SETTINGS max_parts_in_total = ${limit}\n`);
        }
      } finally {
        n.proc.start();
        await waitForHttp(`${n.consistentUrl}/ping`, 60_000);
      }
    }
  }

  /** Samples every node's /raft-health (no group) until `until` resolves; returns the statuses seen. */
  async function healthDuring<T>(until: Promise<T>): Promise<{ value: T; statuses: number[] }> {
    const statuses: number[] = [];
    let done = false;
    const sampler = (async () => {
      while (!done) {
        for (const n of cluster.raft.nodes) statuses.push((await n.get('/raft-health')).status);
        await sleep(100);
      }
    })();
    try {
      return { value: await until, statuses };
    } finally {
      done = true;
      await sampler;
    }
  }

  before(async () => {
    cluster = await RafthouseCluster.start({ groups: GROUPS });
    raftd = new RaftdClient({ url: cluster.raft.nodes.map((n) => n.url), token: cluster.raft.clientToken(), timeoutMs: 30_000 });
    ring = await HashRing.create({ groups: GROUPS, vnodes: 128 });
  });

  after(async () => {
    raftd?.close();
    await cluster?.destroy();
  });

  it('refuses limit settings up front (452) and at apply on every replica, a heavy INSERT ... SELECT fails the same way everywhere', async () => {
    const base = cluster.nodes[0]!.consistentUrl;
    await ok(post(base, 'CREATE TABLE poison (x UInt64) ENGINE = MergeTree ORDER BY x'));
    const g = groupOf('poison');

    // Through the gateway: refused before anything is proposed, as a server with constraints would.
    const viaGateway = await post(base, 'INSERT INTO poison SELECT number FROM numbers(1e10) SETTINGS max_execution_time=1');
    expect(viaGateway.code, viaGateway.text).to.equal('452');
    expect(viaGateway.text).to.match(/SETTING_CONSTRAINT_VIOLATION/);
    const set = await post(base, 'SET max_memory_usage = 1');
    expect(set.code, set.text).to.equal('452');

    // Raw entries, past the gateway: the state machine refuses them itself, deterministically.
    const raw: Array<[EntryHeader, string]> = [
      [{ v: 1, kind: 'insert', sql: 'INSERT INTO poison SELECT number FROM numbers(1e10) SETTINGS max_execution_time=1', database: 'default' }, 'CLICKHOUSE_452'],
      [{ v: 1, kind: 'insert', sql: 'INSERT INTO poison SELECT number FROM numbers(1e10)', database: 'default', settings: { max_execution_time: 1 } }, 'CLICKHOUSE_452'],
      [{ v: 1, kind: 'insert', sql: 'INSERT INTO poison SELECT number FROM (SELECT number FROM numbers(1e10) SETTINGS max_block_size = 1)', database: 'default' }, 'CLICKHOUSE_452'],
      // No setting at all: bounded on apply, the same bound on every replica (158 TOO_MANY_ROWS).
      [{ v: 1, kind: 'insert', sql: 'INSERT INTO poison SELECT number FROM numbers(1e10)', database: 'default' }, 'CLICKHOUSE_158'],
      [{ v: 1, kind: 'settings', settings: { max_memory_usage: 1 } }, 'CLICKHOUSE_452'],
      [{ v: 1, kind: 'settings', settings: { readonly: 1 } }, 'CLICKHOUSE_452'],
      [{ v: 1, kind: 'settings', settings: { max_block_size: 1 } }, 'CLICKHOUSE_452'],
      [{ v: 1, kind: 'ddl', sql: 'EXCHANGE TABLES poison AND _rh_applied', database: 'default' }, 'CLICKHOUSE_497'],
      [{ v: 1, kind: 'statement', sql: 'RENAME TABLE `_rh_applied` TO x', database: 'default' }, 'CLICKHOUSE_497'],
    ];
    for (const [header, want] of raw) {
      const r = await proposeRaw(g, header);
      expect(r.outcome, JSON.stringify(header)).to.equal(want);
      expect(r.ms, JSON.stringify(header)).to.be.lessThan(10_000);
    }

    // Later entries of the group apply, as plain batch inserts (no max_memory_usage=1 default).
    await ok(post(base, 'INSERT INTO poison FORMAT JSONEachRow\n{"x":1}\n{"x":2}\n'));
    await ok(post(cluster.nodes[1]!.consistentUrl, 'INSERT INTO poison SELECT number FROM numbers(3, 3)'));
    expect(await ok(post(cluster.nodes[2]!.consistentUrl, 'SELECT groupArray(x) FROM (SELECT x FROM poison ORDER BY x)'))).to.equal('[1,2,3,4,5]\n');
    await replicasAgree(g);
  });

  it('an entry failing everywhere for a reason outside it is abandoned through the log within 10 s; the group goes on; /raft-health stays 200', async () => {
    const base = cluster.nodes[1]!.consistentUrl;
    // max_parts_in_total = 1: the second insert fails with TOO_MANY_PARTS (252), a "transient" code
    // (it usually means merges are behind), on every replica and forever.
    await ok(post(base, 'CREATE TABLE wedge (x UInt64) ENGINE = MergeTree ORDER BY x PARTITION BY x'));
    await ok(post(base, 'INSERT INTO wedge VALUES (1)'));
    const g = groupOf('wedge');
    await replicasAgree(g);
    await partLimitBehindTheBack('wedge', 1);
    const leaderNode = async (): Promise<number> => {
      for (const [i, n] of cluster.raft.nodes.entries()) if ((await n.get(`/leader-check?group=${g}`)).status === 200) return i;
      return -1;
    };

    const perGroup: number[] = [];
    const status: unknown[] = [];
    const failingGauge: number[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const i = Math.max(0, await leaderNode());
        const n = cluster.raft.nodes[i]!;
        perGroup.push((await n.get(`/raft-health?group=${g}`)).status);
        const s = (await n.get('/status')).body as { groups: Array<{ group: number; applyFailing?: unknown }> };
        const mine = s.groups.find((x) => x.group === g);
        if (mine?.applyFailing) status.push(mine.applyFailing);
        failingGauge.push(await n.metric('raftd_groups_apply_failing'));
        await sleep(150);
      }
    })();

    const t0 = Date.now();
    const { value: wedged, statuses } = await healthDuring(post(base, 'INSERT INTO wedge VALUES (2)'));
    const took = Date.now() - t0;
    watching = false;
    await watcher;

    expect(wedged.status, wedged.text).to.not.equal(200);
    expect(wedged.text).to.match(/RH_ABANDONED|abandoned/);
    expect(took).to.be.lessThan(10_000);
    expect(statuses.length).to.be.greaterThan(0);
    expect(statuses.every((s) => s === 200), `/raft-health without a group: ${statuses.join(',')}`).to.equal(true);
    // Meanwhile the group itself was reported: its own probe, /status, the metric.
    expect(perGroup, 'raft-health?group').to.include(500);
    expect(status.length, '/status applyFailing').to.be.greaterThan(0);
    expect(JSON.stringify(status[0])).to.match(/252|TOO_MANY_PARTS|Too many parts/);
    expect(Math.max(...failingGauge)).to.be.at.least(1);

    // Every replica ended the same way (the row is nowhere), and the group goes on.
    await replicasAgree(g);
    for (const n of cluster.nodes) {
      const deadline = Date.now() + 10_000;
      let seen = '';
      while (Date.now() < deadline) {
        const r = await post(n.localUrl, 'SELECT count() FROM wedge');
        seen = r.text;
        if (r.status === 200 && seen === '1\n') break;
        await sleep(100);
      }
      expect(seen, `node ${n.id}`).to.equal('1\n');
    }
    // Room for one part again: the group's later entries apply.
    await ok(post(base, 'TRUNCATE TABLE wedge'));
    await ok(post(cluster.nodes[0]!.consistentUrl, 'INSERT INTO wedge VALUES (3)'));
    expect(await ok(post(cluster.nodes[2]!.consistentUrl, 'SELECT groupArray(x) FROM (SELECT x FROM wedge ORDER BY x)'))).to.equal('[3]\n');
    for (const n of cluster.raft.nodes) {
      expect((await n.get(`/raft-health?group=${g}`)).status).to.equal(200);
      expect((await n.get('/raft-health')).status).to.equal(200);
    }
    await replicasAgree(g);
  });

  it('a raw abandon without the MAC is refused on every replica; with one member\'s rafthouse down (kill -9) the entry is not abandoned until it is back', async () => {
    const base0 = cluster.nodes[0]!.consistentUrl;
    await ok(post(base0, 'CREATE TABLE wedge2 (x UInt64) ENGINE = MergeTree ORDER BY x PARTITION BY x'));
    await ok(post(base0, 'INSERT INTO wedge2 VALUES (1)'));
    const g = groupOf('wedge2');
    await replicasAgree(g);
    await partLimitBehindTheBack('wedge2', 1);
    type GroupStatus = { group: number; applied: number; commit: number; applyFailing?: unknown };
    const groupStatus = async (i: number): Promise<GroupStatus> =>
      ((await cluster.raft.nodes[i]!.get('/status')).body as { groups: GroupStatus[] }).groups.find((x) => x.group === g)!;
    let leader = -1;
    for (const [i, n] of cluster.raft.nodes.entries()) if ((await n.get(`/leader-check?group=${g}`)).status === 200) leader = i;
    expect(leader).to.be.at.least(0);
    const down = (leader + 1) % 3; // a follower's rafthouse: raftd there stays up, its state machine does not answer
    const gateway = cluster.nodes[(leader + 2) % 3]!.consistentUrl;
    const stuckAt = (await groupStatus(leader)).applied + 1;

    await cluster.nodes[down]!.proc.kill();
    try {
      const wedged = post(gateway, 'INSERT INTO wedge2 VALUES (2)').catch((e: Error) => ({ status: 0, text: e.message, code: null }));
      await sleep(500);
      // Raw abandons of the stuck entry through raftd's client API: none, one with a made-up MAC.
      const forged = [
        proposeRaw(g, { v: 1, kind: 'abandon', index: stuckAt }),
        proposeRaw(g, { v: 1, kind: 'abandon', index: stuckAt, mac: 'ab'.repeat(32) }),
      ];
      // 6 s: three times the 2 s after which the leader decides when every member is failing.
      const t0 = Date.now();
      while (Date.now() - t0 < 6000) {
        for (const i of [leader, (leader + 2) % 3]) {
          const s = await groupStatus(i);
          expect(s.applied, `node ${i + 1} applied`).to.equal(stuckAt - 1);
          if (Date.now() - t0 > 3000) expect(s.applyFailing, `node ${i + 1} applyFailing`).to.not.equal(undefined);
        }
        await sleep(300);
      }
      // The raw abandons are committed behind the stuck entry, and skipped nothing.
      expect((await groupStatus(leader)).commit).to.be.at.least(stuckAt + 2);

      const back = Date.now();
      cluster.nodes[down]!.proc.start();
      await waitForHttp(`${cluster.nodes[down]!.consistentUrl}/ping`, 60_000);
      // Back: it fails at the entry too, every member reports failing, the leader abandons it.
      const deadline = Date.now() + 30_000;
      let applied: number[] = [];
      while (Date.now() < deadline) {
        applied = await Promise.all([0, 1, 2].map(async (i) => (await groupStatus(i)).applied));
        if (applied.every((a) => a >= stuckAt + 3)) break;
        await sleep(200);
      }
      expect(applied.every((a) => a >= stuckAt + 3), `applied ${applied.join(',')} (stuck at ${stuckAt})`).to.equal(true);
      const resolvedMs = Date.now() - back;
      expect(resolvedMs).to.be.lessThan(30_000);
      const w = await wedged;
      expect(w.status, w.text).to.not.equal(200);
      // The forged abandons, as entries: refused (or their proposals timed out while the group was stuck).
      for (const f of await Promise.all(forged)) expect(['RH_ABANDON_REFUSED', 'TIMEOUT']).to.include(f.outcome);
      expect((await proposeRaw(g, { v: 1, kind: 'abandon', index: stuckAt, mac: 'cd'.repeat(32) })).outcome).to.equal('RH_ABANDON_REFUSED');
      await replicasAgree(g);
      for (const n of cluster.nodes) {
        const r = await post(n.localUrl, 'SELECT count() FROM wedge2');
        expect(r.text, `node ${n.id}`).to.equal('1\n');
      }
    } finally {
      if (!cluster.nodes[down]!.proc.running()) cluster.nodes[down]!.proc.start();
    }
  });
});
