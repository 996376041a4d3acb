// Baseline for `bench:clickhouse`: rows/s of direct JSONEachRow inserts into an engine, without Raft or
// the adapter, for a few batch sizes. Payloads are serialised before the clock starts, so this measures
// ClickHouse's insert path only (the adapter's rows/s are compared against these).
//
//   node dist/scripts/bench/clickhouse-direct.js [--engine embedded|server] [--url URL] [--tokens] [--rows N]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openEmbedded, openServer } from '../../clickhouse-adapter/engine/index.js';
import type { ClickHouseEngine } from '../../clickhouse-adapter/engine/index.js';

export interface DirectInsertOptions {
  /** Batch sizes in rows; default 1,000 / 10,000 / 100,000. */
  batchSizes?: number[];
  /** Rows to insert per batch size (at least `minBatches` batches); default 300,000. */
  rowsPerSize?: number;
  minBatches?: number;
  /** Database to create and use; default bench_direct. Dropped afterwards. */
  database?: string;
  /** Give every batch its own insert_deduplication_token (table gets a dedup window), as exactly-once apply does. */
  dedupTokens?: boolean;
}

export interface DirectInsertResult {
  batchRows: number;
  batches: number;
  /** Median over batches of batchRows / batch time. */
  medianRowsPerSec: number;
  /** All rows / all time. */
  overallRowsPerSec: number;
  /** Median single-batch latency in ms. */
  medianBatchMs: number;
}

/** A JSONEachRow payload of `n` rows starting at id `from`, the row shape every ClickHouse bench here uses. */
export function benchRows(from: number, n: number): Buffer {
  const parts: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const id = from + i;
    parts[i] = `{"id":${id},"k":"key-${id % 1000}","v":${(id % 9973) / 7},"ts":${1_700_000_000 + (id % 86_400)}}`;
  }
  return Buffer.from(parts.join('\n') + '\n');
}

export const BENCH_TABLE_DDL = '(id UInt64, k String, v Float64, ts DateTime) ENGINE = MergeTree ORDER BY id';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function benchDirectInserts(engine: ClickHouseEngine, opts: DirectInsertOptions = {}): Promise<DirectInsertResult[]> {
  const sizes = opts.batchSizes ?? [1_000, 10_000, 100_000];
  const rowsPerSize = opts.rowsPerSize ?? 300_000;
  const minBatches = opts.minBatches ?? 3;
  const db = opts.database ?? 'bench_direct';
  const results: DirectInsertResult[] = [];
  await engine.exec(`DROP DATABASE IF EXISTS ${db}`);
  await engine.exec(`CREATE DATABASE ${db}`);
  try {
    for (const size of sizes) {
      const table = `${db}.t_${size}`;
      const window = opts.dedupTokens ? ' SETTINGS non_replicated_deduplication_window = 1000' : '';
      await engine.exec(`CREATE TABLE ${table} ${BENCH_TABLE_DDL}${window}`);
      const batches = Math.max(minBatches, Math.ceil(rowsPerSize / size));
      const payloads = Array.from({ length: batches }, (_, b) => benchRows(b * size, size));
      const times: number[] = [];
      for (let b = 0; b < batches; b++) {
        const sql = opts.dedupTokens
          ? `INSERT INTO ${table} SETTINGS insert_deduplication_token = 'bench:${size}:${b}' FORMAT JSONEachRow`
          : `INSERT INTO ${table} FORMAT JSONEachRow`;
        const t0 = performance.now();
        await engine.insert(sql, payloads[b]!);
        times.push(performance.now() - t0);
      }
      const total = times.reduce((a, b) => a + b, 0);
      const got = Number((await engine.query(`SELECT count() FROM ${table}`, { format: 'TabSeparated' })).toString('utf8').trim());
      if (got !== batches * size) throw new Error(`bench: ${table} holds ${got} rows, expected ${batches * size}`);
      results.push({
        batchRows: size,
        batches,
        medianRowsPerSec: Math.round(median(times.map((ms) => size / (ms / 1000)))),
        overallRowsPerSec: Math.round((batches * size) / (total / 1000)),
        medianBatchMs: Math.round(median(times) * 100) / 100,
      });
    }
  } finally {
    await engine.exec(`DROP DATABASE IF EXISTS ${db}`);
  }
  return results;
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const kind = arg('--engine') ?? 'embedded';
  const rows = arg('--rows');
  let dir: string | undefined;
  let engine: ClickHouseEngine;
  if (kind === 'server') {
    engine = await openServer({ url: arg('--url') ?? process.env['CLICKHOUSE_URL'] ?? 'http://127.0.0.1:18423' });
  } else {
    dir = mkdtempSync(join(tmpdir(), 'bench-direct-'));
    engine = await openEmbedded({ dataDir: dir });
  }
  try {
    const res = await benchDirectInserts(engine, {
      dedupTokens: argv.includes('--tokens'),
      ...(rows ? { rowsPerSize: Number(rows) } : {}),
    });
    console.log(`direct JSONEachRow inserts, ${engine.kind} engine, ClickHouse ${engine.capabilities.version}${argv.includes('--tokens') ? ', with dedup tokens' : ''}`);
    for (const r of res) {
      console.log(`  batch ${String(r.batchRows).padStart(7)} rows: median ${r.medianRowsPerSec.toLocaleString('en-US')} rows/s ` +
        `(overall ${r.overallRowsPerSec.toLocaleString('en-US')}, ${r.batches} batches, median batch ${r.medianBatchMs} ms)`);
    }
  } finally {
    await engine.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
