// The short chaos pass that runs in `npm test`: real raftd + KV adapter processes under every
// nemesis for a short while, then the same checks as the long runs. And proof that the checks
// bite: a deliberately broken client (stale reads recorded as linearizable) is caught.

import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../integration/cluster.js';
import { checkKvHistory } from '../sim/linearizability.js';
import { Rng } from '../sim/rng.js';
import { call } from './http.js';
import { KvWorkload, toCheckerHistory, type RecordedOp } from './kv-workload.js';
import { ClusterView, GROUP, parseNemesis, FAULT_KINDS } from './nemesis.js';
import { formatRafthouseReport, runRafthouseChaos } from './rafthouse.js';
import { formatReport, runChaos } from './runner.js';

describe('chaos: real processes under faults', function () {
  this.timeout(180_000);

  it('parses nemesis sets and rejects unknown names', () => {
    expect(parseNemesis('all')).to.deep.equal([...FAULT_KINDS]);
    expect(parseNemesis('pause,partition')).to.deep.equal(['pause', 'partition-symmetric', 'partition-oneway', 'partition-leader']);
    expect(parseNemesis('kill-app')).to.deep.equal(['kill-app']);
    expect(() => parseNemesis('kill,meteor')).to.throw(/unknown nemesis "meteor"/);
  });

  it('hands the checker known results, unknown writes as open-ended, and leaves out what had no effect', () => {
    const ops: RecordedOp[] = [
      { client: 1, node: 1, input: { type: 'write', key: 'k0', value: 'a' }, call: 1, ret: 2, result: 'ok', output: {} },
      { client: 2, node: 2, input: { type: 'write', key: 'k0', value: 'b' }, call: 3, ret: null, result: 'info', error: 'TIMEOUT' },
      { client: 3, node: 3, input: { type: 'write', key: 'k0', value: 'c' }, call: 3, ret: 4, result: 'fail', error: 'NOT_LEADER' },
      { client: 1, node: 1, input: { type: 'read', key: 'k0' }, call: 5, ret: 6, result: 'ok', output: { value: 'b' } },
    ];
    const h = toCheckerHistory(ops);
    expect(h.map((x) => [x.client, x.ret])).to.deep.equal([[1, 2], [2, Infinity], [1, 6]]);
    // The unknown write may have happened: reading its value is fine; reading the failed one is not.
    expect(checkKvHistory(h).verdict).to.equal('ok');
    const bad = toCheckerHistory([...ops.slice(0, 3), { ...ops[3]!, output: { value: 'c' } }]);
    expect(checkKvHistory(bad).verdict).to.equal('illegal');
  });

  it('3 nodes under every nemesis: linearizable history, replicas converge, no anomalies', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'raftd-chaos-test-'));
    const report = await runChaos({
      nodes: 3,
      durationMs: 25_000,
      nemesis: parseNemesis('all'),
      seed: 20261123,
      runDir,
      quietMs: [300, 1000],
      holdMs: [800, 2000],
    });
    const text = formatReport(report);
    expect(report.anomalies, text).to.deep.equal([]);
    expect(report.linearizability.verdict, text).to.equal('ok');
    expect(report.convergence.converged, text).to.equal(true);
    // The run did something: faults of several kinds, and a real workload with known results.
    expect(Object.keys(report.faults).length, text).to.be.at.least(3);
    // (modest floors: the machine may be loaded; the point is that the checks saw real traffic)
    expect(report.ops.ok, text).to.be.at.least(100);
    expect(report.ops.writes + report.ops.cas, text).to.be.at.least(30);
    expect(existsSync(report.historyFile)).to.equal(true);
    const saved = JSON.parse(readFileSync(report.historyFile, 'utf8')) as { ops: unknown[] };
    expect(saved.ops.length).to.equal(report.ops.ok + report.ops.fail + report.ops.info);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('catches stale reads served as linearizable (a follower cut off from the leader)', async () => {
    // The broken behaviour, made deterministic: a follower is partitioned away, a write is
    // acknowledged by the majority, then the follower answers a read from its own state. A
    // correct linearizable read there would block or fail; the broken one returns the old value.
    const cluster = await LocalCluster.create({ nodes: 3, groups: 1, kvApp: true, env: { RAFTD_TEST_HOOKS: 'faults' }, extraArgs: ['--request-timeout-ms', '3000'] });
    const view = new ClusterView(cluster);
    try {
      await cluster.startAll();
      await cluster.waitForApi(30_000);
      const leader = (await cluster.waitForLeaders([GROUP], 30_000)).get(GROUP)!;
      const follower = view.ids.find((x) => x !== leader)!;
      const others = view.ids.filter((x) => x !== follower);
      const broken = new KvWorkload(view, new Rng(7), performance.now(), { clients: 1, keys: 1, timeoutMs: 6000, staleReadsAsLinearizable: true });
      const w1 = await broken.invoke(1, leader, { type: 'write', key: 'k0', value: 'before' });
      expect(w1.result).to.equal('ok');
      // Wait until the follower has it (outside the checked history), so the stale read below
      // returns "before", not absent.
      for (let i = 0; ; i++) {
        const r = await call(view.node(follower).url, 'POST', `/v1/groups/${GROUP}/read?consistency=stale`, { op: 'get', key: 'k0' }, 3000);
        if (r.kind === 'answer' && (r.body as { result?: { value?: unknown } }).result?.value === 'before') break;
        expect(i, 'the follower never applied the first write').to.be.below(100);
        await new Promise((res) => setTimeout(res, 50));
      }
      await view.setFaults(follower, { dropTo: others, dropFrom: others });
      for (const id of others) await view.setFaults(id, { dropTo: [follower], dropFrom: [follower] });
      const w2 = await broken.invoke(1, leader, { type: 'write', key: 'k0', value: 'after' });
      expect(w2.result).to.equal('ok');
      const stale = await broken.invoke(2, follower, { type: 'read', key: 'k0' });
      expect(stale.output).to.deep.equal({ value: 'before' });
      const verdict = checkKvHistory(toCheckerHistory(broken.history));
      expect(verdict.verdict, verdict.explanation).to.equal('illegal');
      expect(verdict.explanation).to.match(/key k0: illegal/);

      // The correct client on the same partitioned follower does not return the stale value.
      const correct = new KvWorkload(view, new Rng(8), performance.now(), { clients: 1, keys: 1, timeoutMs: 6000 });
      const r = await correct.invoke(3, follower, { type: 'read', key: 'k0' });
      expect(r.result).to.equal('fail');
    } finally {
      await cluster.destroy();
    }
  });

  it('the runner reports an anomaly when reads are stale (broken client under partitions)', async () => {
    // Whether a stale read happens in a short run depends on timing (a client must read on the cut-off
    // follower after the majority wrote): up to three runs, the first that caught one is checked.
    const texts: string[] = [];
    for (const seed of [99, 100, 101]) {
      const runDir = mkdtempSync(join(tmpdir(), 'raftd-chaos-broken-'));
      const report = await runChaos({
        nodes: 3,
        durationMs: 7_000,
        nemesis: parseNemesis('partition'),
        seed,
        runDir,
        staleReadsAsLinearizable: true,
        quietMs: [300, 600],
        holdMs: [2000, 3000],
      });
      texts.push(formatReport(report));
      rmSync(runDir, { recursive: true, force: true });
      if (report.linearizability.verdict !== 'illegal') continue;
      expect(report.anomalies.some((a) => a.startsWith('history is not linearizable')), texts.at(-1)).to.equal(true);
      return;
    }
    expect.fail(`no run flagged the stale reads:\n${texts.join('\n')}`);
  });

  it('RaftHouse append under raftd and app kills and partitions: acknowledged rows exactly once everywhere, equal checksums', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'rafthouse-chaos-test-'));
    // kill-app included: an app that came back below an index it had confirmed is an anomaly too.
    const report = await runRafthouseChaos({ nodes: 3, durationMs: 15_000, nemesis: parseNemesis('kill-raftd,kill-app,partition'), seed: 4242, runDir, clients: 4, quietMs: [500, 1500], holdMs: [1000, 2500] });
    const text = formatRafthouseReport(report);
    expect(report.anomalies, text).to.deep.equal([]);
    expect(report.checksumsEqual, text).to.equal(true);
    expect(report.replicas.length, text).to.equal(3);
    expect(report.inserts.acked, text).to.be.at.least(1);
    for (const r of report.replicas) expect(r.rows, text).to.be.at.least(report.inserts.rowsAcked);
    rmSync(runDir, { recursive: true, force: true });
  });
});
