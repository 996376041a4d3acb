// bench:clickhouse — rows/s applied through the RaftHouse state machine vs rows/s of direct inserts
// into the same engine, for batches of 1k / 10k / 100k JSONEachRow rows (target: >= 70% at 10k).
//
// "adapter" = ClickHouseStateMachine.applyBatch with one insert entry per call (the costliest case:
// every batch also records the applied index); "adapter x10" = ten insert entries per call (one index
// record per ten inserts); "adapter http" = the same as "adapter" but through the SDK's HTTP server
// (base64 JSON body, as raftd sends it). Payloads are built before the clock starts.
//
//   node dist/scripts/bench/clickhouse.js [--rows N]   (rows per batch size, default 300000)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../clickhouse-adapter/statemachine/statemachine.js';
import { encodeEntry } from '../../clickhouse-adapter/statemachine/entry.js';
import { serveStateMachine } from '../../adapters/sdk/server.js';
import { BENCH_TABLE_DDL, benchDirectInserts, benchRows } from './clickhouse-direct.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(11);

async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--rows');
  const rowsPerSize = i >= 0 ? Number(argv[i + 1]) : 300_000;
  const sizes = process.env.BENCH_SIZES ? process.env.BENCH_SIZES.split(",").map(Number) : [1_000, 10_000, 100_000];
  const dir = mkdtempSync(join(tmpdir(), 'bench-ch-'));
  const engine = await openEmbedded({ dataDir: dir });
  const sm = new ClickHouseStateMachine({ engine });
  const served = await serveStateMachine(sm, { host: '127.0.0.1', port: 0, h2c: false });
  console.log(`bench:clickhouse — embedded engine, ClickHouse ${engine.capabilities.version}, ${rowsPerSize.toLocaleString('en-US')} rows per batch size`);
  console.log('batch rows |  direct rows/s | adapter rows/s (ratio) | adapter x10 rows/s (ratio) | adapter http rows/s (ratio)');
  let group = 100;
  try {
    for (const size of sizes) {
      const batches = Math.max(3, Math.ceil(rowsPerSize / size));
      // Direct inserts run before and after the adapter runs; the faster of the two is the baseline
      // (the machine is shared and noisy; this errs against the adapter).
      const directBefore = (await benchDirectInserts(engine, { batchSizes: [size], rowsPerSize, minBatches: 3 }))[0]!;
      const payloads = Array.from({ length: batches }, (_, b) => benchRows(b * size, size));
      const entries = payloads.map((p) => encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, p));
      const ddl = encodeEntry({ v: 1, kind: 'ddl', sql: `CREATE TABLE t ${BENCH_TABLE_DDL}` });

      // One insert entry per applyBatch.
      const g1 = group++;
      await sm.applyBatch(g1, [{ index: 1, term: 1, data: ddl }]);
      const rates: number[] = [];
      for (let b = 0; b < batches; b++) {
        const t0 = performance.now();
        const [r] = await sm.applyBatch(g1, [{ index: b + 2, term: 1, data: entries[b]! }]);
        rates.push(size / ((performance.now() - t0) / 1000));
        if (!r || !r.ok) throw new Error(`bench: entry failed: ${JSON.stringify(r)}`);
      }
      const one = median(rates);

      // Ten insert entries per applyBatch.
      const g2 = group++;
      await sm.applyBatch(g2, [{ index: 1, term: 1, data: ddl }]);
      const per = 10;
      const rounds = Math.max(1, Math.floor(batches / per));
      const rates10: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const batch = Array.from({ length: per }, (_, k) => ({ index: 2 + r * per + k, term: 1, data: entries[(r * per + k) % batches]! }));
        const t0 = performance.now();
        await sm.applyBatch(g2, batch);
        rates10.push((per * size) / ((performance.now() - t0) / 1000));
      }
      const ten = median(rates10);

      // Through HTTP, as raftd calls it.
      const g3 = group++;
      const post = (body: unknown): Promise<Response> => fetch(`${served.url}/raft/v1/UpdateEntries`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      await post({ group: g3, entries: [{ index: 1, term: 1, data: ddl.toString('base64') }] });
      const bodies = entries.map((d, b) => JSON.stringify({ group: g3, entries: [{ index: b + 2, term: 1, data: d.toString('base64') }] }));
      const ratesHttp: number[] = [];
      let httpError: string | undefined;
      for (let b = 0; b < batches && !httpError; b++) {
        const t0 = performance.now();
        const res = await fetch(`${served.url}/raft/v1/UpdateEntries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[b]! });
        const text = await res.text();
        ratesHttp.push(size / ((performance.now() - t0) / 1000));
        // Reported, not fatal: the HTTP column is extra information.
        if (res.status !== 200) httpError = `HTTP ${res.status}: ${text.slice(0, 200)}`;
      }
      const http = httpError ? NaN : median(ratesHttp);

      const count = Number((await engine.query(`SELECT count() FROM rh_g${g1}.t`, { format: 'TabSeparated' })).toString().trim());
      if (count !== batches * size) throw new Error(`bench: rh_g${g1}.t holds ${count} rows, expected ${batches * size}`);
      const directAfter = (await benchDirectInserts(engine, { batchSizes: [size], rowsPerSize, minBatches: 3 }))[0]!;
      const d = Math.max(directBefore.medianRowsPerSec, directAfter.medianRowsPerSec);
      const pct = (x: number): string => `(${((100 * x) / d).toFixed(0)}%)`.padStart(6);
      const httpCol = httpError ? `failed (${httpError})` : `${fmt(http)} ${pct(http)}`;
      console.log(`${String(size).padStart(10)} | ${fmt(d)}    | ${fmt(one)} ${pct(one)}   | ${fmt(ten)} ${pct(ten)}       | ${httpCol}`);
      for (const g of [g1, g2, g3]) await sm.deleteGroup(g);
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
