// The chaos runner: a real cluster (raftd + KV adapter per node, fault layer on), concurrent KV
// clients, a nemesis on a schedule; then heal, converge, read every key everywhere, and check:
// the history is linearizable, and every replica holds the same state.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../integration/cluster.js';
import { checkKvHistoryByKey, type KeyCheck, type KvOp, type Verdict } from '../sim/linearizability.js';
import { Rng } from '../sim/rng.js';
import { call, sleep } from './http.js';
import { KvWorkload, toCheckerHistory, type RecordedOp } from './kv-workload.js';
import { ClusterView, GROUP, Nemesis, type FaultKind, type FaultRecord } from './nemesis.js';
import { ExitWatch } from './exits.js';
import { formatOutages, measureOutages, OUTAGE_SETTLE_MS, type OutageReport } from './outage.js';
import { writeHistoryFile } from './history-file.js';

export interface ChaosOptions {
  nodes: 3 | 5;
  durationMs: number;
  nemesis: readonly FaultKind[];
  seed: number;
  clients?: number;
  keys?: number;
  /** Where history.json, report.json and the node logs go (default: a new temp dir). */
  runDir?: string;
  /** Extra environment for raftd (e.g. a test-only break switch). */
  raftdEnv?: Record<string, string>;
  staleReadsAsLinearizable?: boolean;
  readConsistency?: 'linearizable' | 'lease';
  /** See KvWorkloadOptions.trustNoLeader (default true: the documented contract). */
  trustNoLeader?: boolean;
  /** Nemesis timing: quiet gap and fault hold ranges in ms. */
  quietMs?: [number, number];
  holdMs?: [number, number];
  /** Checker search budget per key. */
  maxStepsPerKey?: number;
  log?: (line: string) => void;
}

/** What every chaos run reports, whatever the workload. */
export interface RunReport {
  runDir: string;
  historyFile: string;
  seed: number;
  nodes: number;
  durationMs: number;
  faults: Partial<Record<FaultKind, number>>;
  faultLog: FaultRecord[];
  /** Snapshots installed from a leader, a lower bound (see runUnderFaults). */
  snapshotsReceived: number;
  /** Per fault, the longest stretch without a successful operation (outage.ts). */
  outages: OutageReport;
  /** Everything that is wrong; empty on a good run. */
  anomalies: string[];
}

/** Injected (not skipped) faults per kind. */
export function countFaults(log: readonly FaultRecord[]): Partial<Record<FaultKind, number>> {
  const faults: Partial<Record<FaultKind, number>> = {};
  for (const f of log) if (!f.skipped) faults[f.kind] = (faults[f.kind] ?? 0) + 1;
  return faults;
}

/** The first lines of a report for humans: what ran, and the faults injected. */
export function formatRunHeader(title: string, r: RunReport): string[] {
  const faults = Object.entries(r.faults).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  return [
    `${title}: ${r.nodes} nodes, ${Math.round(r.durationMs / 1000)} s, seed ${r.seed}`,
    `faults injected: ${faults} (${r.faultLog.filter((f) => !f.skipped).length} total); snapshots installed from a leader: at least ${r.snapshotsReceived}`,
  ];
}

/** The last lines of a report for humans: outages per fault kind, anomalies, and where the history is. */
export function formatRunFooter(r: RunReport, success = 'a successful operation'): string[] {
  return [
    ...formatOutages(r.outages, success),
    `anomalies: ${r.anomalies.length}${r.anomalies.map((a) => '\n  - ' + a.replace(/\n/g, '\n    ')).join('')}`,
    `history: ${r.historyFile}`,
  ];
}

export interface ChaosReport extends RunReport {
  ops: { ok: number; fail: number; info: number; reads: number; writes: number; cas: number; casSwapped: number };
  /** 'unknown' = undecided: a key's search reached its step or memo bound (explanation says which); not an anomaly. */
  linearizability: { verdict: Verdict; explanation: string; checkMs: number; keys: KeyCheck[] };
  convergence: { converged: boolean; detail: string; appliedIndex?: number; keys?: number };
}

/**
 * An app that came back below an index it had confirmed broke the state-machine contract. raftd
 * repairs that from its log (refetch) and logs APP_REGRESSED; the run counts it as an anomaly.
 */
export function appRegressions(runDir: string, nodeIds: readonly number[]): string[] {
  const out: string[] = [];
  for (const id of nodeIds) {
    const file = join(runDir, `node${id}.log`);
    if (!existsSync(file)) continue;
    const hits = readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"APP_REGRESSED"'));
    if (hits.length) out.push(`node ${id}: the app reported an index below one it had confirmed (${hits.length} log lines, first: ${hits[0]!.slice(0, 300)})`);
  }
  return out;
}

/**
 * Runs a workload phase against the cluster; whatever happens, resumes paused processes and tears the
 * cluster down. A thrown error and every APP_REGRESSED line in the nodes' logs become anomalies.
 * Resolves with the snapshots the nodes had installed from a leader
 * (raftd_snapshot_transfers_received_total, counted since each node's last start, so a lower bound):
 * how much of the run exercised the install path.
 */
export async function runUnderFaults(cluster: LocalCluster, runDir: string, anomalies: string[], t0: number, phase: () => Promise<void>): Promise<number> {
  let snapshotsReceived = 0;
  // A raftd or app that ends by itself (not the nemesis's SIGKILL) is an anomaly.
  const exits = new ExitWatch(cluster, t0);
  try {
    await phase();
  } catch (e) {
    anomalies.push(`run aborted: ${(e as Error).message}`);
  } finally {
    anomalies.push(...exits.stop());
    for (const n of cluster.nodes) {
      n.resume();
      n.app?.resume();
    }
    for (const n of cluster.nodes.filter((x) => x.running())) {
      snapshotsReceived += await n.metric('raftd_snapshot_transfers_received_total').catch(() => 0);
    }
    await cluster.destroy();
  }
  anomalies.push(...appRegressions(runDir, cluster.nodes.map((n) => n.spec.id)));
  return snapshotsReceived;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => undefined);
  const runDir = o.runDir ?? mkdtempSync(join(tmpdir(), 'raftd-chaos-'));
  mkdirSync(runDir, { recursive: true });
  const rng = new Rng(o.seed);
  const anomalies: string[] = [];
  const cluster = await LocalCluster.create({
    nodes: o.nodes,
    groups: 1,
    kvApp: true,
    logDir: runDir,
    env: { RAFTD_TEST_HOOKS: 'faults', ...(o.raftdEnv ?? {}) },
    // Short request timeout: unknown outcomes resolve fast. Frequent snapshots and a short log
    // behind them: a node down for a second or more catches up by snapshot, so the install path
    // (where seed 803 found a stale read) runs in most runs, not only after long outages.
    // Every node a member (--nodes 5 too): the nemeses and the convergence check assume it.
    extraArgs: ['--request-timeout-ms', '3000', '--snapshot-interval', '300', '--snapshot-catchup-entries', '100', '--replication-factor', '0'],
  });
  const view = new ClusterView(cluster);
  const t0 = performance.now();
  const workload = new KvWorkload(view, rng.fork(), t0, {
    clients: o.clients ?? o.nodes * 2,
    keys: o.keys ?? 4,
    timeoutMs: 6000,
    staleReadsAsLinearizable: o.staleReadsAsLinearizable ?? false,
    readConsistency: o.readConsistency ?? 'linearizable',
    trustNoLeader: o.trustNoLeader ?? true,
  });
  const nemesis = new Nemesis(view, o.nemesis, rng.fork(), t0, { quietMs: o.quietMs ?? [500, 2000], holdMs: o.holdMs ?? [1000, 4000] }, log);
  let convergence: ChaosReport['convergence'] = { converged: false, detail: 'not reached' };
  let workloadEnd = 0;
  const snapshotsReceived = await runUnderFaults(cluster, runDir, anomalies, t0, async () => {
    await cluster.startAll();
    await cluster.waitForApi(60_000);
    await cluster.waitForLeaders([GROUP], 60_000);
    log(`cluster of ${o.nodes} up; logs in ${runDir}`);
    const stopAt = performance.now() + o.durationMs;
    // The clients run on until the last fault has been healed and settled: a fault injected just
    // before the end would otherwise be charged the time its held requests took to drain, with no
    // client left to succeed (seed 1821: a "4 s" window that was the end of the run).
    const clientsStop = { at: Infinity }; // set once the nemesis is done
    await Promise.all([workload.run(clientsStop), nemesis.run(stopAt).then(() => void (clientsStop.at = Math.max(stopAt, performance.now() + OUTAGE_SETTLE_MS)))]);
    workloadEnd = performance.now() - t0;
    log('workload done; healing');
    await view.healAll();
    await cluster.waitForLeaders([GROUP], 60_000);
    convergence = await converge(view, workload.opts.keys);
    if (!convergence.converged) anomalies.push(`replicas did not converge: ${convergence.detail}`);
    // Final linearizable reads of every key on every node: acknowledged writes must all be there.
    // A read may fail while a just-healed cluster settles; it is retried (failed reads have no effect).
    for (const n of cluster.nodes) {
      for (let k = 0; k < workload.opts.keys; k++) {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const op = await workload.invoke(0, n.spec.id, { type: 'read', key: workload.keyName(k) });
          if (op.result === 'ok') break;
          if (Date.now() > deadline) {
            anomalies.push(`final read of ${workload.keyName(k)} on node ${n.spec.id} still failing after 20 s: ${op.error}`);
            break;
          }
          await sleep(200);
        }
      }
    }
  });

  const history = workload.history;
  const historyFile = join(runDir, 'history.json');
  writeHistoryFile(historyFile, { seed: o.seed, nodes: o.nodes, startedAtEpochMs: Math.round(Date.now() - (performance.now() - t0)), faults: nemesis.faults }, history);

  const tc = performance.now();
  const checked = checkKvHistoryByKey(perKeyHistories(history), { maxStepsPerPartition: o.maxStepsPerKey ?? 5_000_000 });
  const checkMs = Math.round(performance.now() - tc);
  if (checked.verdict === 'illegal') anomalies.push(`history is not linearizable: ${checked.explanation}`);
  log(`linearizability: ${checked.verdict} in ${checkMs} ms (${checked.keys.map((k) => `${k.key}: ${k.ops} ops ${k.verdict} ${k.ms} ms`).join('; ')})`);

  const count = (f: (x: RecordedOp) => boolean) => history.filter(f).length;
  const faults = countFaults(nemesis.faults);
  const report: ChaosReport = {
    runDir,
    historyFile,
    seed: o.seed,
    nodes: o.nodes,
    durationMs: o.durationMs,
    faults,
    faultLog: nemesis.faults,
    snapshotsReceived,
    // The final reads (client 0) come after healing: not the workload's.
    outages: measureOutages(nemesis.faults, history.filter((x) => x.result === 'ok' && x.client !== 0).map((x) => x.ret!), workloadEnd),
    ops: {
      ok: count((x) => x.result === 'ok'),
      fail: count((x) => x.result === 'fail'),
      info: count((x) => x.result === 'info'),
      reads: count((x) => x.input.type === 'read'),
      writes: count((x) => x.input.type === 'write'),
      cas: count((x) => x.input.type === 'cas'),
      casSwapped: count((x) => x.input.type === 'cas' && x.result === 'ok' && (x.output as { ok?: boolean }).ok === true),
    },
    linearizability: { verdict: checked.verdict, explanation: checked.explanation, checkMs, keys: checked.keys },
    convergence,
    anomalies,
  };
  writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 2));
  return report;
}

/** The checker's history one key at a time, each built when the checker asks for it. */
export function* perKeyHistories(history: readonly RecordedOp[]): Generator<KvOp[]> {
  const keys = [...new Set(history.map((x) => x.input.key))].sort();
  for (const key of keys) yield toCheckerHistory(history.filter((x) => x.input.key === key));
}

/** Waits until every node's app has applied up to the leader's linearizable read index. */
export async function convergeApplied(view: ClusterView, timeoutMs = 60_000, group = GROUP): Promise<{ ok: boolean; target: number; detail: string }> {
  const deadline = Date.now() + timeoutMs;
  let target = 0;
  let last = '';
  while (Date.now() < deadline) {
    const leader = await view.leader(group);
    if (leader) {
      const r = await call(view.node(leader).url, 'POST', `/v1/groups/${group}/barrier?consistency=linearizable`, undefined, 5000);
      if (r.kind === 'answer' && r.status === 200) {
        target = (r.body as { appliedIndex: number }).appliedIndex;
        break;
      }
      last = JSON.stringify(r).slice(0, 200);
    }
    await sleep(200);
  }
  if (!target) return { ok: false, target, detail: `no linearizable barrier on the leader: ${last}` };
  for (const n of view.cluster.nodes) {
    for (;;) {
      const b = await call(n.url, 'POST', `/v1/groups/${group}/barrier?consistency=stale`, undefined, 5000);
      const applied = b.kind === 'answer' && b.status === 200 ? (b.body as { appliedIndex: number }).appliedIndex : -1;
      if (applied >= target) break;
      if (Date.now() > deadline) return { ok: false, target, detail: `node ${n.spec.id} applied ${applied} < ${target} after ${timeoutMs} ms` };
      await sleep(200);
    }
  }
  return { ok: true, target, detail: `every node applied index ${target}` };
}

/** Once every app has caught up, compares a full scan (stale read: the local state as is) across nodes. */
async function converge(view: ClusterView, keys: number): Promise<ChaosReport['convergence']> {
  const applied = await convergeApplied(view);
  if (!applied.ok) return { converged: false, detail: applied.detail };
  const scans = new Map<number, string>();
  for (const n of view.cluster.nodes) {
    const s = await call(n.url, 'POST', `/v1/groups/${GROUP}/read?consistency=stale`, { op: 'scan' }, 5000);
    if (s.kind !== 'answer' || s.status !== 200) return { converged: false, detail: `scan on node ${n.spec.id} failed: ${JSON.stringify(s).slice(0, 200)}` };
    scans.set(n.spec.id, JSON.stringify((s.body as { result: unknown }).result));
  }
  const distinct = new Set(scans.values());
  const first = [...scans.values()][0]!;
  const keyCount = (JSON.parse(first) as { items: unknown[] }).items.length;
  if (keyCount > keys) return { converged: false, detail: `more keys than the workload writes: ${first.slice(0, 200)}` };
  if (distinct.size !== 1) return { converged: false, detail: [...scans].map(([id, s]) => `node ${id}: ${s.slice(0, 300)}`).join('; ') };
  return { converged: true, detail: `all ${scans.size} replicas equal at index >= ${applied.target}`, appliedIndex: applied.target, keys: keyCount };
}

/** A few lines for humans. */
export function formatReport(r: ChaosReport): string {
  return [
    ...formatRunHeader('chaos', r),
    `ops: ${r.ops.ok} ok, ${r.ops.fail} failed, ${r.ops.info} unknown (reads ${r.ops.reads}, writes ${r.ops.writes}, cas ${r.ops.cas} of which ${r.ops.casSwapped} swapped)`,
    `linearizability: ${r.linearizability.verdict === 'unknown' ? 'undecided' : r.linearizability.verdict} (checked in ${r.linearizability.checkMs} ms)${r.linearizability.verdict === 'ok' ? '' : ': ' + r.linearizability.explanation}`,
    `convergence: ${r.convergence.converged ? 'ok' : 'FAILED'} — ${r.convergence.detail}`,
    ...formatRunFooter(r, 'an acknowledged operation'),
  ].join('\n');
}
