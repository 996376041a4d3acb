// Test harness: replicas as child processes (replica.ts), and the RaftHouse log the tests feed them.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import type { EntryHeader } from '../../../clickhouse-adapter/statemachine/entry.js';

// Under `npm test` this runs from dist/ as .js; under tsx from the .ts source.
const here = fileURLToPath(import.meta.url);
const REPLICA = join(here, '..', here.endsWith('.ts') ? 'replica.ts' : 'replica.js');

export interface LogEntry {
  index: number;
  term: number;
  data: Buffer;
}

export class CrashedError extends Error {
  constructor(readonly exitSignal: string | null, readonly exitCode: number | null) {
    super(`replica exited (signal ${exitSignal}, code ${exitCode})`);
  }
}

export class Replica {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exitErr: CrashedError | undefined;
  private stderr = '';

  /** `appliedFile`: the per-batch index record is the applied file (as rafthouse runs the embedded engine). */
  constructor(readonly dataDir: string, readonly appliedFile = false) {}

  static fresh(appliedFile = false): Replica {
    return new Replica(mkdtempSync(join(tmpdir(), 'chsm-')), appliedFile);
  }

  async start(crashAt?: string): Promise<void> {
    this.exitErr = undefined;
    const env: Record<string, string> = { ...process.env as Record<string, string>, RH_DATA_DIR: this.dataDir };
    if (crashAt) env.RH_CRASH_AT = crashAt; else delete env.RH_CRASH_AT;
    if (this.appliedFile) env.RH_APPLIED_FILE = '1'; else delete env.RH_APPLIED_FILE;
    const args = REPLICA.endsWith('.ts') ? ['--import', 'tsx', REPLICA] : [REPLICA];
    const child = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    let ready!: () => void;
    const readyP = new Promise<void>((r) => { ready = r; });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; id?: number; result?: unknown; error?: { code: string; message: string } };
      if (msg.ready) { ready(); return; }
      const w = this.waiting.get(msg.id!);
      if (!w) return;
      this.waiting.delete(msg.id!);
      if (msg.error) w.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
      else w.resolve(msg.result);
    });
    const exited = new Promise<never>((_, reject) => {
      child.on('exit', (code, signal) => {
        this.exitErr = new CrashedError(signal, code);
        for (const w of this.waiting.values()) w.reject(this.exitErr);
        this.waiting.clear();
        reject(new Error(`replica exited before ready: ${signal ?? code}\n${this.stderr}`));
      });
    });
    exited.catch(() => undefined);
    await Promise.race([readyP, exited]);
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exitErr || !this.child) return Promise.reject(this.exitErr ?? new Error('not started'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child!.stdin!.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }

  apply(entries: LogEntry[], group = 1): Promise<Array<Record<string, unknown>>> {
    return this.call('apply', { group, entries: entries.map((e) => ({ index: e.index, term: e.term, data: e.data.toString('base64') })) });
  }

  last(group = 1): Promise<number> {
    return this.call('last', { group });
  }

  checksum(): Promise<string> {
    return this.call('checksum');
  }

  async stop(): Promise<void> {
    if (!this.child || this.exitErr) return;
    const done = new Promise<void>((r) => this.child!.once('exit', () => r()));
    await this.call('exit').catch(() => undefined);
    await done;
  }

  kill(): void {
    if (this.child && !this.exitErr) this.child.kill('SIGKILL');
  }

  remove(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function jsonRows(from: number, n: number, extra?: (i: number) => Record<string, unknown>): Buffer {
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) lines.push(JSON.stringify({ id: i, v: `row-${i}`, ...(extra ? extra(i) : {}) }));
  return Buffer.from(lines.join('\n') + '\n');
}

export function e(header: Omit<EntryHeader, 'v'>, payload?: Buffer): Buffer {
  return encodeEntry({ v: 1, ...header }, payload);
}

/**
 * A log exercising every kind of entry: inserts in several formats, multi-partition inserts, INSERT
 * SELECT, DDL (CREATE, ALTER ADD COLUMN, RENAME, TRUNCATE, a mutation, DROP), a settings change,
 * failing statements and a no-op. Deterministic.
 */
export function buildLog(): LogEntry[] {
  const datas: Buffer[] = [
    /* 1 */ e({ kind: 'ddl', sql: 'CREATE TABLE t (id UInt64, v String) ENGINE = MergeTree ORDER BY id' }),
    /* 2 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(0, 1000)),
    /* 3 */ e({ kind: 'insert', sql: 'INSERT INTO t (id, v)', format: 'CSV' }, Buffer.from('5000,"csv a"\n5001,"csv b"\n')),
    /* 4 */ e({ kind: 'ddl', sql: 'ALTER TABLE t ADD COLUMN extra UInt32 DEFAULT 7' }),
    /* 5 */ e({ kind: 'insert', sql: 'INSERT INTO userdb.t FORMAT JSONEachRow', database: 'userdb' }, jsonRows(1000, 300, (i) => ({ extra: i }))),
    /* 6 */ e({ kind: 'ddl', sql: 'CREATE TABLE u (k String, n Int64) ENGINE = MergeTree PARTITION BY n % 4 ORDER BY k' }),
    /* 7 */ e({ kind: 'insert', sql: 'INSERT INTO u FORMAT TabSeparated' }, Buffer.from(Array.from({ length: 400 }, (_, i) => `k${i}\t${i}`).join('\n') + '\n')),
    /* 8 */ e({ kind: 'insert', sql: 'INSERT INTO nosuch FORMAT JSONEachRow' }, jsonRows(0, 3)),
    /* 9 */ e({ kind: 'ddl', sql: 'CREATE TABLE broken (' }),
    /* 10 */ e({ kind: 'ddl', sql: 'RENAME TABLE u TO u2' }),
    /* 11 */ e({ kind: 'insert', sql: 'INSERT INTO u2 FORMAT TabSeparated' }, Buffer.from('z1\t1\nz2\t2\nz3\t3\n')),
    /* 12 */ e({ kind: 'ddl', sql: 'CREATE TABLE w (a UInt32, b Float64) ENGINE = MergeTree ORDER BY a' }),
    /* 13 */ e({ kind: 'insert', sql: 'INSERT INTO w VALUES (1, 1.5), (2, 2.5)' }),
    /* 14 */ e({ kind: 'ddl', sql: 'TRUNCATE TABLE w' }),
    /* 15 */ e({ kind: 'insert', sql: 'INSERT INTO w FORMAT JSONEachRow' }, Buffer.from('{"a":9,"b":0.1}\n{"a":10,"b":1e-300}\n')),
    /* 16 */ e({ kind: 'ddl', sql: "ALTER TABLE t UPDATE v = concat(v, '!') WHERE id % 2 = 0" }),
    /* 17 */ e({ kind: 'settings', settings: { insert_null_as_default: 1 } }),
    /* 18 */ e({ kind: 'insert', sql: "INSERT INTO t (id, v) SELECT number + 20000, toString(number) FROM numbers(5000)" }),
    /* 19 */ Buffer.alloc(0),
    /* 20 */ e({ kind: 'ddl', sql: 'ALTER TABLE t DELETE WHERE id < 10' }),
    /* 21 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from('{"id":"not a number","v":"x"}\n')),
    /* 22 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(30000, 2000)),
    /* 23 */ e({ kind: 'ddl', sql: 'DROP TABLE w' }),
    /* 24 */ e({ kind: 'insert', sql: 'INSERT INTO u2 FORMAT JSONEachRow' }, Buffer.from('{"k":"late","n":99}\n')),
    /* 25 */ Buffer.from('this is not an entry'),
    /* 26 */ e({ kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, jsonRows(40000, 500)),
    /* 27 */ e({ kind: 'statement', sql: "INSERT INTO u2 VALUES ('stmt', 7)" }),
    /* 28 */ e({ kind: 'ddl', sql: 'CREATE VIEW tv AS SELECT count() AS c, sum(id) AS s FROM t' }),
  ];
  return datas.map((data, i) => ({ index: i + 1, term: 1, data }));
}

/** Feeds `log` in batches of `batch`, starting after index `after`. */
export async function feed(r: Replica, log: LogEntry[], batch: number, after = 0): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  const rest = log.filter((e) => e.index > after);
  for (let i = 0; i < rest.length; i += batch) out.push(...(await r.apply(rest.slice(i, i + batch))));
  return out;
}
