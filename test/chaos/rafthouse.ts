// The RaftHouse append workload under the same nemeses: per node a raftd and a `rafthouse` process
// (state machine + gateway, embedded chdb). Concurrent clients INSERT uniquely numbered rows through
// the consistent endpoints of all nodes. After healing: every acknowledged row is present exactly
// once on every replica, no row appears twice anywhere, and the replicas' checksums are identical.
// With `shardedGroups` (cli --workload rafthouse-sharded) the table is sharded over that many groups (a
// 2-3 row insert usually spans groups), readers read the whole table through the consistent endpoints
// of random nodes meanwhile, and the history is checked for real-time order across groups (issue 20:
// every read one instant; test/integration/rafthouse/cut-check.ts); the replica checks run per group.

import { RAFTHOUSE_ENV } from '../integration/rafthouse/harness.js';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, ManagedProcess, freePort } from '../integration/cluster.js';
import { Rng } from '../sim/rng.js';
import { call, sleep } from './http.js';
import { ClusterView, GROUP, Nemesis, type FaultKind } from './nemesis.js';
import { realTimeViolations, type ReadOp, type WriteOp } from '../integration/rafthouse/cut-check.js';
import { convergeApplied, countFaults, formatRunFooter, formatRunHeader, runUnderFaults, type RunReport } from './runner.js';
import { measureOutages, OUTAGE_SETTLE_MS } from './outage.js';
import { writeHistoryFile } from './history-file.js';

export const TABLE = 'chaos_rows';

export interface RafthouseChaosOptions {
  nodes: 3 | 5;
  durationMs: number;
  nemesis: readonly FaultKind[];
  seed: number;
  clients?: number;
  runDir?: string;
  quietMs?: [number, number];
  holdMs?: [number, number];
  log?: (line: string) => void;
  /** Shard the table over this many groups and check reads for real-time order across them. */
  shardedGroups?: number;
  /** Readers of the whole table (sharded workload only; default: one per node). */
  readers?: number;
}

export interface InsertOp {
  client: number;
  node: number;
  ids: number[];
  call: number;
  ret: number;
  acked: boolean;
  error?: string;
}

export interface RafthouseReport extends RunReport {
  inserts: { acked: number; notAcked: number; rowsAcked: number; rowsNotAcked: number };
  replicas: Array<{ node: number; rows: number; duplicates: number; missingAcked: number; unackedPresent: number; checksum: string }>;
  checksumsEqual: boolean;
  /** Sharded workload: reads answered, reads failed, real-time violations found. */
  reads?: { ok: number; failed: number; violations: number };
}

export async function runRafthouseChaos(o: RafthouseChaosOptions): Promise<RafthouseReport> {
  const log = o.log ?? (() => undefined);
  const runDir = o.runDir ?? mkdtempSync(join(tmpdir(), 'rafthouse-chaos-'));
  mkdirSync(runDir, { recursive: true });
  const rng = new Rng(o.seed);
  const anomalies: string[] = [];
  const appPorts = new Map<number, number>();
  for (let id = 1; id <= o.nodes; id++) appPorts.set(id, await freePort());
  const groupCount = o.shardedGroups ?? 1;
  const groupList = Array.from({ length: groupCount }, (_, i) => i + 1);
  const readOps: ReadOp[] = [];
  let readsFailed = 0;
  const cluster = await LocalCluster.create({
    nodes: o.nodes,
    groups: groupCount,
    logDir: runDir,
    appUrls: (id) => `http://127.0.0.1:${appPorts.get(id)!}`,
    env: { RAFTD_TEST_HOOKS: 'faults' },
    // As in the KV runner: a node down for a few seconds catches up by snapshot.
    // Every group on every node (--nodes 5 too): these rafthouses are not wired (--internal-peers).
    extraArgs: ['--request-timeout-ms', '5000', '--snapshot-interval', '200', '--snapshot-catchup-entries', '100', '--replication-factor', '0'],
  });
  const gateways = new Map<number, string>();
  for (const n of cluster.nodes) {
    const id = n.spec.id;
    const cport = await freePort();
    const lport = await freePort();
    gateways.set(id, `http://127.0.0.1:${cport}`);
    // The rafthouse process takes the app's place: the kill-app nemesis kills it (gateway included).
    n.app = new ManagedProcess(`rafthouse ${id}`, 'clickhouse-adapter/main.ts', [
      '--app-listen', `127.0.0.1:${appPorts.get(id)!}`, '--consistent-listen', `127.0.0.1:${cport}`, '--local-listen', `127.0.0.1:${lport}`,
      '--raftd-url', n.url, '--groups', String(groupCount), '--data-dir', join(cluster.dir, `ch${id}`),
    ], { ...cluster.secrets!.appEnv(), RAFTHOUSE_RAFTD_TOKEN_FILE: cluster.secrets!.paths.apiToken, ...RAFTHOUSE_ENV }, join(runDir, `rafthouse${id}.log`));
  }
  const view = new ClusterView(cluster);
  const t0 = performance.now();
  const ops: InsertOp[] = [];
  const nemesis = new Nemesis(view, o.nemesis, rng.fork(), t0, { quietMs: o.quietMs ?? [500, 2000], holdMs: o.holdMs ?? [1000, 4000] }, log);
  const replicas: RafthouseReport['replicas'] = [];
  let readViolations = 0;
  let checksumsEqual = false;
  let workloadEnd = 0;
  const snapshotsReceived = await runUnderFaults(cluster, runDir, anomalies, t0, async () => {
    await cluster.startAll();
    await cluster.waitForApi(60_000);
    await cluster.waitForLeaders([0, ...groupList], 60_000);
    await createTable(gateways.get(1)!, o.shardedGroups !== undefined);
    log(`rafthouse cluster of ${o.nodes} up; logs in ${runDir}`);
    const stopAt = performance.now() + o.durationMs;
    const clientsStop = { at: Infinity }; // set once the nemesis is done
    let nextId = 1;
    /** A node whose raftd is reachable and whose rafthouse is up, or undefined while there is none. */
    const liveNode = (crng: Rng): number | undefined => {
      const pool = view.reachable().filter((n) => !view.appDown.has(n.spec.id));
      return pool.length === 0 ? undefined : crng.pick(pool).spec.id;
    };
    const client = async (c: number, crng: Rng) => {
      while (performance.now() < clientsStop.at) {
        const node = liveNode(crng);
        if (node === undefined) {
          await sleep(50);
          continue;
        }
        const ids = Array.from({ length: crng.int(1, 3) }, () => nextId++);
        const sql = `INSERT INTO ${TABLE} (id, client) VALUES ${ids.map((i) => `(${i}, ${c})`).join(', ')}`;
        const start = performance.now() - t0;
        const res = await postSql(gateways.get(node)!, sql, 8000);
        ops.push({ client: c, node, ids, call: start, ret: performance.now() - t0, acked: res.ok, ...(res.ok ? {} : { error: res.error }) });
        if (!res.ok) await sleep(20 + crng.int(0, 80));
      }
    };
    const reader = async (crng: Rng) => {
      while (performance.now() < clientsStop.at) {
        const node = liveNode(crng);
        if (node === undefined) {
          await sleep(50);
          continue;
        }
        const start = performance.now() - t0;
        const res = await readIds(gateways.get(node)!, 8000);
        if (res.ok) readOps.push({ node, start, end: performance.now() - t0, seen: res.ids });
        else {
          readsFailed++;
          await sleep(20 + crng.int(0, 80));
        }
      }
    };
    const readers = o.shardedGroups !== undefined ? Array.from({ length: o.readers ?? o.nodes }, () => reader(rng.fork())) : [];
    await Promise.all([
      ...Array.from({ length: o.clients ?? o.nodes * 2 }, (_, c) => client(c + 1, rng.fork())),
      ...readers,
      // Clients run on until the last fault is healed and settled (see runner.ts).
      nemesis.run(stopAt).then(() => void (clientsStop.at = Math.max(stopAt, performance.now() + OUTAGE_SETTLE_MS))),
    ]);
    workloadEnd = performance.now() - t0;
    log('workload done; healing');
    await view.healAll();
    await cluster.waitForLeaders([0, ...groupList], 30_000);
    for (const g of groupList) {
      const conv = await convergeApplied(view, 60_000, g);
      if (!conv.ok) anomalies.push(`group ${g}: replicas did not catch up: ${conv.detail}`);
    }
    if (o.shardedGroups !== undefined) {
      const writes: WriteOp[] = ops.flatMap((x) => x.ids.map((id) => ({ id: String(id), sent: x.call, ...(x.acked ? { acked: x.ret } : {}) })));
      const violations = realTimeViolations(writes, readOps, 1_000_000);
      anomalies.push(...violations.slice(0, 50).map((v) => `real-time order across groups: ${v}`));
      if (violations.length > 50) anomalies.push(`... ${violations.length - 50} more real-time violations`);
      readViolations = violations.length;
    }

    const acked = new Set(ops.filter((x) => x.acked).flatMap((x) => x.ids));
    const sums = new Map<number, string>();
    for (const n of cluster.nodes) {
      const id = n.spec.id;
      const seen = new Map<number, number>();
      const checksums: unknown[] = [];
      let failed = '';
      for (const g of groupList) {
        const rows = await staleRead(n.url, { sql: `SELECT id FROM ${TABLE} ORDER BY id`, format: 'JSONEachRow' }, g);
        const cs = await staleRead(n.url, { op: 'checksum' }, g);
        if (!rows.ok || !cs.ok) {
          failed = `group ${g}: ${rows.ok ? '' : rows.error} ${cs.ok ? '' : cs.error}`;
          break;
        }
        for (const r of (rows.result as { rows: Array<{ id: string | number }> }).rows) seen.set(Number(r.id), (seen.get(Number(r.id)) ?? 0) + 1);
        checksums.push((cs.result as { tables: unknown }).tables);
      }
      if (failed) {
        anomalies.push(`node ${id}: could not read its replica: ${failed}`);
        continue;
      }
      const duplicates = [...seen.values()].filter((c) => c > 1).length;
      const missing = [...acked].filter((x) => !seen.has(x));
      const unackedPresent = [...seen.keys()].filter((x) => !acked.has(x)).length;
      const checksum = JSON.stringify(groupCount === 1 ? checksums[0] : checksums);
      sums.set(id, checksum);
      replicas.push({ node: id, rows: [...seen.values()].reduce((a, b) => a + b, 0), duplicates, missingAcked: missing.length, unackedPresent, checksum });
      if (duplicates) anomalies.push(`node ${id}: ${duplicates} ids appear more than once`);
      if (missing.length) anomalies.push(`node ${id}: ${missing.length} acknowledged ids missing (e.g. ${missing.slice(0, 5).join(', ')})`);
    }
    checksumsEqual = sums.size === cluster.nodes.length && new Set(sums.values()).size === 1;
    if (!checksumsEqual) anomalies.push(`replica checksums differ: ${[...sums].map(([id, s]) => `node ${id}: ${s.slice(0, 200)}`).join('; ')}`);
  });
  const historyFile = join(runDir, 'history.json');
  writeHistoryFile(historyFile, { seed: o.seed, nodes: o.nodes, startedAtEpochMs: Math.round(Date.now() - (performance.now() - t0)), faults: nemesis.faults }, ops);
  const faults = countFaults(nemesis.faults);
  const ackedOps = ops.filter((x) => x.acked);
  const report: RafthouseReport = {
    runDir, historyFile, seed: o.seed, nodes: o.nodes, durationMs: o.durationMs, faults, faultLog: nemesis.faults, snapshotsReceived,
    outages: measureOutages(nemesis.faults, ackedOps.map((x) => x.ret), workloadEnd),
    inserts: {
      acked: ackedOps.length,
      notAcked: ops.length - ackedOps.length,
      rowsAcked: ackedOps.reduce((a, x) => a + x.ids.length, 0),
      rowsNotAcked: ops.filter((x) => !x.acked).reduce((a, x) => a + x.ids.length, 0),
    },
    replicas, checksumsEqual, anomalies,
    ...(o.shardedGroups !== undefined ? { reads: { ok: readOps.length, failed: readsFailed, violations: readViolations } } : {}),
  };
  writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 2));
  return report;
}

async function postSql(base: string, sql: string, timeoutMs: number): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    const res = await fetch(base + '/', { method: 'POST', body: sql, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return res.status === 200 ? { ok: true } : { ok: false, error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
  } catch (e) {
    return { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

async function createTable(gateway: string, sharded: boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await postSql(gateway, `CREATE TABLE IF NOT EXISTS ${TABLE} (id UInt64, client UInt32) ENGINE = MergeTree ORDER BY id${sharded ? " SETTINGS rafthouse_shard_key = 'id'" : ''}`, 15_000);
    if (r.ok) return;
    if (Date.now() > deadline) throw new Error(`CREATE TABLE failed: ${r.error}`);
    await sleep(500);
  }
}

/** The ids a consistent read of the whole table returns (the sharded workload's reads). */
async function readIds(base: string, timeoutMs: number): Promise<{ ok: true; ids: Set<string> } | { ok: false }> {
  try {
    const res = await fetch(base + '/', { method: 'POST', body: `SELECT id FROM ${TABLE} FORMAT TSV`, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (res.status !== 200) return { ok: false };
    return { ok: true, ids: new Set(text.split('\n').filter((l) => l !== '')) };
  } catch {
    return { ok: false };
  }
}

async function staleRead(url: string, query: unknown, group = GROUP): Promise<{ ok: true; result: unknown } | { ok: false; error: string }> {
  const r = await call(url, 'POST', `/v1/groups/${group}/read?consistency=stale`, query, 30_000);
  if (r.kind === 'answer' && r.status === 200) return { ok: true, result: (r.body as { result: unknown }).result };
  return { ok: false, error: JSON.stringify(r).slice(0, 300) };
}

export function formatRafthouseReport(r: RafthouseReport): string {
  return [
    ...formatRunHeader(r.reads ? 'chaos (rafthouse sharded append + one-cut reads)' : 'chaos (rafthouse append)', r),
    `inserts: ${r.inserts.acked} acknowledged (${r.inserts.rowsAcked} rows), ${r.inserts.notAcked} failed or unknown (${r.inserts.rowsNotAcked} rows)`,
    ...r.replicas.map((x) => `replica ${x.node}: ${x.rows} rows, ${x.duplicates} duplicated ids, ${x.missingAcked} acknowledged missing, ${x.unackedPresent} unacknowledged present`),
    `checksums: ${r.checksumsEqual ? 'identical' : 'DIFFERENT'}`,
    ...(r.reads ? [`sharded reads: ${r.reads.ok} answered, ${r.reads.failed} failed, ${r.reads.violations} real-time violations across groups`] : []),
    ...formatRunFooter(r, 'an acknowledged insert'),
  ].join('\n');
}
