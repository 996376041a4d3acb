// bench:clickhouse — rows/s applied through the RaftHouse state machine vs rows/s of direct inserts
// into the same engine, for batches of 1k / 10k / 100k JSONEachRow rows (target: >= 70% at 10k).
//
// The machine is shared and noisy, so the two sides are measured ALTERNATELY, batch by batch (direct,
// adapter, direct, adapter, ...): a slow spell hits both. Ratios are of the medians.
//   adapter      ClickHouseStateMachine.applyBatch with one insert entry per call (the costliest case:
//                every call also records the applied index)
//   adapter x10  ten insert entries per call (one index record per ten inserts), vs ten direct inserts
//   http         the "adapter" case through the SDK's HTTP server (base64 JSON body, as raftd sends it)
// Payloads and request bodies are built before the clock starts.
//
//   node dist/scripts/bench/clickhouse.js [--rows N]   (rows per batch size, default 300000)
//   BENCH_SIZES=10000 ... to run one size

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../clickhouse-adapter/engine/index.js';
import { emitResult } from './stats.js';
import { ClickHouseStateMachine } from '../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../clickhouse-adapter/statemachine/entry.js';
import { serveStateMachine } from '../../adapters/sdk/server.js';
import { signAppRequest } from '../../protocol/app-auth.js';
import { generateSecret } from '../../protocol/secrets.js';
import { BENCH_TABLE_DDL, benchRows } from './clickhouse-direct.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(9);
const pct = (a: number, d: number): string => `${((100 * a) / d).toFixed(0)}%`.padStart(4);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--rows');
  const rowsPerSize = i >= 0 ? Number(argv[i + 1]) : 300_000;
  const sizes = process.env.BENCH_SIZES ? process.env.BENCH_SIZES.split(',').map(Number) : [1_000, 10_000, 100_000];
  const dir = mkdtempSync(join(tmpdir(), 'bench-ch-'));
  const engine = await openEmbedded({ dataDir: dir });
  const sm = new ClickHouseStateMachine({ engine });
  const appSecret = generateSecret(); // signed calls, as raftd makes them: the cost measured includes the HMAC
  const served = await serveStateMachine(sm, { host: '127.0.0.1', port: 0, h2c: false, appSecret });
  console.log(`bench:clickhouse — embedded engine (chdb), ClickHouse ${engine.capabilities.version}, ` +
    `${rowsPerSize.toLocaleString('en-US')} rows per batch size, direct and adapter measured alternately`);
  console.log('ratio: of the medians, then the median of the per-round ratios');
  console.log('batch rows | direct rows/s  adapter rows/s  ratio      | direct x10  adapter x10  ratio      | direct    http     ratio');
  let group = 100;
  let table = 0;
  try {
    for (const size of sizes) {
      const batches = Math.max(10, Math.ceil(rowsPerSize / size));
      const payloads = Array.from({ length: batches }, (_, b) => benchRows(b * size, size));
      const entries = payloads.map((p) => encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, p));
      const ddl = encodeEntry({ v: 1, kind: 'ddl', sql: `CREATE TABLE t ${BENCH_TABLE_DDL}` });
      const newDirect = async (): Promise<string> => {
        const t = `bench_direct.t${table++}`;
        await engine.exec('CREATE DATABASE IF NOT EXISTS bench_direct');
        await engine.exec(`CREATE TABLE ${t} ${BENCH_TABLE_DDL}`);
        return t;
      };
      const newGroup = async (): Promise<number> => {
        const g = group++;
        await sm.applyBatch(g, [{ index: 1, term: 1, data: ddl }]);
        return g;
      };

      // One entry per applyBatch, alternating with one direct insert.
      const d1 = await newDirect();
      const g1 = await newGroup();
      const direct: number[] = [];
      const adapter: number[] = [];
      for (let b = 0; b < batches; b++) {
        direct.push(size / await timed(() => engine.insert(`INSERT INTO ${d1} FORMAT JSONEachRow`, payloads[b]!)));
        adapter.push(size / await timed(async () => {
          const [r] = await sm.applyBatch(g1, [{ index: b + 2, term: 1, data: entries[b]! }]);
          if (!r || !r.ok) throw new Error(`bench: entry failed: ${JSON.stringify(r)}`);
        }));
      }
      const count = Number((await engine.query(`SELECT count() FROM rh_g${g1}.t`, { format: 'TabSeparated' })).toString().trim());
      if (count !== batches * size) throw new Error(`bench: rh_g${g1}.t holds ${count} rows, expected ${batches * size}`);

      // Ten entries per applyBatch vs ten direct inserts.
      const d2 = await newDirect();
      const g2 = await newGroup();
      const direct10: number[] = [];
      const adapter10: number[] = [];
      const per = 10;
      for (let r = 0; r < Math.max(2, Math.floor(batches / per)); r++) {
        const slice = Array.from({ length: per }, (_, k) => (r * per + k) % batches);
        direct10.push((per * size) / await timed(async () => {
          for (const b of slice) await engine.insert(`INSERT INTO ${d2} FORMAT JSONEachRow`, payloads[b]!);
        }));
        adapter10.push((per * size) / await timed(() => sm.applyBatch(g2, slice.map((b, k) => ({ index: 2 + r * per + k, term: 1, data: entries[b]! })))));
      }

      // Through HTTP, as raftd calls it, alternating with direct inserts.
      const d3 = await newDirect();
      const g3 = group++;
      const bodies = entries.map((d, b) => JSON.stringify({ group: g3, entries: [{ index: b + 2, term: 1, data: d.toString('base64') }] }));
      const post = async (body: string): Promise<void> => {
        const bytes = Buffer.from(body);
        const auth = signAppRequest(appSecret, 'POST', '/raft/v1/UpdateEntries', bytes);
        const res = await fetch(`${served.url}/raft/v1/UpdateEntries`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: bytes });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 160)}`);
      };
      let httpCol: string;
      try {
        await post(JSON.stringify({ group: g3, entries: [{ index: 1, term: 1, data: ddl.toString('base64') }] }));
        const directH: number[] = [];
        const http: number[] = [];
        for (let b = 0; b < batches; b++) {
          directH.push(size / await timed(() => engine.insert(`INSERT INTO ${d3} FORMAT JSONEachRow`, payloads[b]!)));
          http.push(size / await timed(() => post(bodies[b]!)));
        }
        httpCol = `${fmt(median(directH))} ${fmt(median(http))}  ${pct(median(http), median(directH))} ${pct(median(http.map((x, k) => x / directH[k]!)), 1)}`;
      } catch (e) {
        httpCol = `failed: ${(e as Error).message}`;
      }

      // The median of the per-round ratios (adapter / direct of the same round, measured back to back)
      // is the figure least moved by the machine's other load.
      const roundRatio = (a: number[], d: number[]) => pct(median(a.map((x, k) => x / d[k]!)), 1);
      emitResult('clickhouse', { batchRows: size, applyVsDirect: median(adapter) / median(direct), applyVsDirectRound: median(adapter.map((x, k) => x / direct[k]!)), apply10VsDirect: median(adapter10) / median(direct10), loadavg: loadavg()[0]! });
      console.log(`${String(size).padStart(10)} | ${fmt(median(direct))}      ${fmt(median(adapter))}   ${pct(median(adapter), median(direct))} ${roundRatio(adapter, direct)} | ` +
        `${fmt(median(direct10))}   ${fmt(median(adapter10))}   ${pct(median(adapter10), median(direct10))} ${roundRatio(adapter10, direct10)} | ${httpCol}`);
      for (const g of [g1, g2, g3]) await sm.deleteGroup(g);
      await engine.exec('DROP DATABASE IF EXISTS bench_direct SYNC');
    }
  } finally {
    await served.close();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
