// Consistent reads of a sharded table are one cut across groups (issue 20), on real processes:
// 3 raftd + 3 rafthouse, a table sharded over several groups, sequential writers (one single-row
// insert at a time, each row landing in whatever group its key hashes to, through random nodes)
// and readers on every node's consistent endpoint, checked for real-time order across groups.
//
// RAFTHOUSE_TEST_CUT=off starts the cluster with --consistent-cut off and expects the checker to
// find violations instead (what the cut prevents; run by hand, not in npm test).

import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import { RafthouseCluster } from './harness.js';
import { realTimeViolations } from './cut-check.js';
import type { ReadOp, WriteOp } from './cut-check.js';

const GROUPS = 6;
const CUT = process.env.RAFTHOUSE_TEST_CUT !== 'off';
// Node 3 applies groups 1 and 2 late (800 and 200 ms before each batch) (RAFTHOUSE_TEST_APPLY_DELAY, a test-only knob of rafthouse): its
// groups trail their leaders by different lags, the skew a slow or paused replica has — the one that,
// without a cut, lets a read there see a client's later insert in a fast group and miss its earlier one
// in a slow group.
const APPLY_DELAY = process.env.RAFTHOUSE_TEST_CUT_DELAY ?? '1:800,2:200';
const RUN_MS = Number(process.env.RAFTHOUSE_TEST_CUT_MS ?? 12_000);

async function post(base: string, sql: string, body?: string): Promise<{ status: number; text: string; summary: string | null }> {
  const qs = new URLSearchParams(body === undefined ? {} : { query: sql });
  const res = await fetch(`${base}/?${qs}`, { method: 'POST', body: body ?? sql, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, text: await res.text(), summary: res.headers.get('x-clickhouse-summary') };
}

describe('checker: real-time order across groups', () => {
  const w = (id: string, sent: number, acked?: number): WriteOp => ({ id, sent, ...(acked !== undefined ? { acked } : {}) });
  const r = (start: number, end: number, ids: string[], node = 1): ReadOp => ({ node, start, end, seen: new Set(ids) });
  it('accepts a history of one-instant reads', () => {
    const writes = [w('a', 0, 10), w('b', 11, 20), w('c', 15, 30)];
    expect(realTimeViolations(writes, [r(5, 12, []), r(12, 25, ['a']), r(21, 40, ['a', 'b']), r(21, 40, ['a', 'b', 'c'])])).to.deep.equal([]);
  });
  it('flags the issue\'s anomalies: a later write without an earlier one, stale, older than an earlier read, phantom', () => {
    const writes = [w('a', 0, 10), w('b', 11, 20), w('x', 50)];
    expect(realTimeViolations(writes, [r(5, 30, ['b'])])).to.have.length(1);
    expect(realTimeViolations(writes, [r(25, 30, ['a'])])).to.have.length(1);
    expect(realTimeViolations(writes, [r(12, 14, ['a', 'b']), r(15, 19, ['a'])])).to.have.length(1);
    expect(realTimeViolations(writes, [r(21, 30, ['a', 'b', 'x'])])).to.have.length(1);
  });
});

describe(`RaftHouse: consistent reads of a sharded table are one cut (3 nodes, ${GROUPS} groups, cut ${CUT ? 'on' : 'OFF'})`, function () {
  this.timeout(240_000);
  let cluster: RafthouseCluster;

  before(async () => {
    cluster = await RafthouseCluster.start({ groups: GROUPS, args: ['--consistent-cut', CUT ? 'on' : 'off'], nodeEnv: (id): Record<string, string> => (id === 3 ? { RAFTHOUSE_TEST_APPLY_DELAY: APPLY_DELAY } : {}) });
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('sequential writers and readers on every node: no read breaks real-time order across groups', async () => {
    const nodes = cluster.nodes.map((n) => n.consistentUrl);
    const create = await post(nodes[0]!, "CREATE TABLE rt (k String, w UInt32, n UInt32) ENGINE = MergeTree ORDER BY (w, n) SETTINGS rafthouse_shard_key = 'k'");
    expect(create.status, create.text).to.equal(200);
    for (const u of nodes) expect((await post(u, 'SELECT count() FROM rt')).text).to.equal('0\n'); // the table exists everywhere

    const writes: WriteOp[] = [];
    const reads: ReadOp[] = [];
    const attempts: number[] = [];
    let readErrors = 0;
    const until = performance.now() + RUN_MS;
    const writer = async (wid: number) => {
      for (let n = 1; performance.now() < until; n++) {
        const id = `${wid}:${n}`;
        const op: WriteOp = { id, sent: performance.now() };
        writes.push(op);
        try {
          const res = await post(nodes[(wid + n) % nodes.length]!, 'INSERT INTO rt FORMAT JSONEachRow', JSON.stringify({ k: id, w: wid, n }));
          if (res.status === 200) op.acked = performance.now();
        } catch {
          // unknown outcome: it may or may not be seen, and nothing is required of it
        }
      }
    };
    const reader = async (node: number) => {
      while (performance.now() < until) {
        const start = performance.now();
        const res = await post(nodes[node]!, 'SELECT w, n FROM rt FORMAT TSV');
        const end = performance.now();
        if (res.status !== 200) {
          readErrors++;
          expect(res.text, 'only the retryable RH_CUT_UNAVAILABLE may fail a read').to.match(/RH_CUT_UNAVAILABLE/);
          continue;
        }
        const seen = new Set(res.text.split('\n').filter((l) => l).map((l) => l.replace('\t', ':')));
        reads.push({ node: node + 1, start, end, seen });
        if (CUT) {
          const a = (JSON.parse(res.summary ?? '{}') as { rafthouse_cut_attempts?: string }).rafthouse_cut_attempts;
          expect(a, 'a read of a sharded table goes through the cut').to.be.a('string');
          attempts.push(Number(a));
        }
      }
    };
    await Promise.all([...[0, 1, 2, 3].map(writer), ...[2, 2, 2, 1, 0].map(reader)]);

    const violations = realTimeViolations(writes, reads);
    const acked = writes.filter((w) => w.acked !== undefined).length;
    const rounds = attempts.reduce((s, a) => s + a, 0);
    console.log(`      ${acked} inserts acknowledged, ${reads.length} reads (${readErrors} RH_CUT_UNAVAILABLE), ` +
      (CUT ? `cut rounds per read ${(rounds / Math.max(1, attempts.length)).toFixed(2)} (max ${Math.max(0, ...attempts)}), ` : '') +
      `${violations.length} violations${violations.length ? ':\n        ' + violations.slice(0, 5).join('\n        ') : ''}`);
    expect(acked).to.be.greaterThan(20);
    expect(reads.length).to.be.greaterThan(10);
    if (CUT) {
      expect(violations).to.deep.equal([]);
      expect(readErrors, 'reads failing the cut must be rare').to.be.lessThan(reads.length / 5);
    } else {
      expect(violations.length, 'without the cut the checker finds reads that break real-time order').to.be.greaterThan(0);
    }
  });
});
