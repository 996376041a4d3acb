// The one load generator shared by every system a KV benchmark compares (raftd + KV adapter, etcd).
// The code that drives load, times requests and counts errors is the same for all of them; only the
// request builder (path + body per operation) and the success check differ per system.
//
// It runs in child processes of its own (fork), so the load it generates never shares an event loop
// with the benchmark's parent or with anything measured. Closed loop: each of `concurrency` virtual
// clients sends one HTTP/1.1 request per operation and sends the next as soon as the answer is read.
// Requests are spread round-robin over the system's nodes, through keep-alive agents (one per node,
// maxSockets >= concurrency, so no request waits for a socket).

import { fork } from 'node:child_process';
import { Agent, request, type IncomingMessage } from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { percentile } from './stats.js';

export type SystemKind = 'raftd' | 'etcd';
/** `fill` writes every key of the key space once, in order, then stops (it ignores the duration). */
export type Op = 'write' | 'read' | 'fill';

export interface PointConfig {
  system: SystemKind;
  /** Base URLs of the system's client endpoints, e.g. http://127.0.0.1:2379. */
  urls: string[];
  op: Op;
  concurrency: number;
  /** Measured window, after the warm-up. */
  durationMs: number;
  warmupMs: number;
  /** Keys are `${keyPrefix}${n}` for n in [0, keys). */
  keys: number;
  keyPrefix: string;
  valueBytes: number;
  /** Per-request deadline; a request past it counts as an error. */
  timeoutMs: number;
  /** raftd group the KV adapter serves; ignored for etcd. */
  group: number;
  /** etcd's JSON gateway prefix: '/v3' (3.4+) or '/v3beta' (3.3). */
  etcdApiPrefix: string;
  /** Sent with every request, e.g. raftd's `authorization: Bearer <api token>` (passed over IPC, never on argv). */
  headers?: Record<string, string>;
}

export interface PointResult {
  system: SystemKind;
  op: Op;
  concurrency: number;
  /** Successful operations completed inside the measured window. */
  ops: number;
  /** Failed operations (non-2xx, socket error, timeout) completed inside the window. */
  errors: number;
  /** Up to a few distinct error descriptions, to say why. */
  errorSamples: string[];
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU the load generator itself used, in cores (1.0 = one core busy), over the window. */
  loadgenCores: number;
}

// ---- request builders: the only per-system code

export interface RequestSpec {
  path: string;
  body: Buffer;
}

export interface RequestBuilder {
  write(key: string, value: string): RequestSpec;
  /** A linearizable read of one key. */
  read(key: string): RequestSpec;
  /** undefined when the answer means success, else why not (for the error samples). */
  check(status: number, body: string): string | undefined;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

export function requestBuilder(cfg: Pick<PointConfig, 'system' | 'group' | 'etcdApiPrefix'>): RequestBuilder {
  const ok200 = (status: number, body: string): string | undefined =>
    status === 200 ? undefined : `HTTP ${status}: ${body.slice(0, 160)}`;
  if (cfg.system === 'raftd') {
    const g = cfg.group;
    return {
      write: (key, value) => ({ path: `/v1/groups/${g}/propose`, body: Buffer.from(JSON.stringify({ op: 'set', key, value })) }),
      read: (key) => ({ path: `/v1/groups/${g}/read?consistency=linearizable`, body: Buffer.from(JSON.stringify({ op: 'get', key })) }),
      check: ok200,
    };
  }
  const p = cfg.etcdApiPrefix;
  return {
    write: (key, value) => ({ path: `${p}/kv/put`, body: Buffer.from(JSON.stringify({ key: b64(key), value: b64(value) })) }),
    // Range without "serializable": true is linearizable in etcd v3.
    read: (key) => ({ path: `${p}/kv/range`, body: Buffer.from(JSON.stringify({ key: b64(key) })) }),
    check: ok200,
  };
}

// ---- the child: drives load and measures

/** Microsecond latencies of successful ops, growing as needed (cheap to send to the parent). */
class LatencyLog {
  private buf = new Uint32Array(1 << 16);
  length = 0;
  push(us: number): void {
    if (this.length === this.buf.length) {
      const next = new Uint32Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = Math.min(0xffffffff, Math.max(0, Math.round(us)));
  }
  view(): Uint32Array {
    return this.buf.subarray(0, this.length);
  }
}

/** xorshift32: a deterministic key sequence per worker, so runs are repeatable. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

interface WorkerAssignment {
  cfg: PointConfig;
  worker: number;
  workers: number;
}

interface WorkerResult {
  ops: number;
  errors: number;
  errorSamples: string[];
  /** Microseconds, unsorted. */
  latencies: Uint32Array;
  windowMs: number;
  cpuUs: number;
}

interface HttpAnswer {
  status: number;
  body: string;
}

function send(agent: Agent, url: URL, spec: RequestSpec, timeoutMs: number, extraHeaders: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: spec.path,
        headers: { ...extraHeaders, 'content-type': 'application/json', 'content-length': spec.body.length },
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setNoDelay(true);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(spec.body);
  });
}

async function runWorker(a: WorkerAssignment, waitForStart: () => Promise<void>): Promise<WorkerResult> {
  const { cfg, worker, workers } = a;
  const builder = requestBuilder(cfg);
  const urls = cfg.urls.map((u) => new URL(u));
  // This worker's share of the virtual clients (the first workers take the remainder).
  const clients = Math.floor(cfg.concurrency / workers) + (worker < cfg.concurrency % workers ? 1 : 0);
  const agents = urls.map(() => new Agent({ keepAlive: true, maxSockets: Math.max(1, clients), maxFreeSockets: Math.max(1, clients) }));
  const value = 'v'.repeat(Math.max(0, cfg.valueBytes - 12)) + String(worker).padStart(12, '0').slice(-Math.min(12, cfg.valueBytes));
  const next = rng(0x1234567 + worker * 7919);
  const latencies = new LatencyLog();
  const samples = new Set<string>();
  let ops = 0;
  let errors = 0;
  let rr = worker; // round-robin over nodes, offset per worker
  // fill: this worker writes keys worker, worker+workers, ... in order.
  let fillNext = worker;

  await waitForStart();
  const t0 = performance.now();
  const measureFrom = cfg.op === 'fill' ? t0 : t0 + cfg.warmupMs;
  const measureTo = cfg.op === 'fill' ? Infinity : measureFrom + cfg.durationMs;
  let cpuAtStart = cfg.op === 'fill' ? process.cpuUsage() : undefined;
  let lastDone = t0;

  const client = async (): Promise<void> => {
    for (;;) {
      const now = performance.now();
      if (cfg.op !== 'fill' && now >= measureTo) return;
      if (!cpuAtStart && now >= measureFrom) cpuAtStart = process.cpuUsage();
      let spec: RequestSpec;
      if (cfg.op === 'fill') {
        if (fillNext >= cfg.keys) return;
        spec = builder.write(cfg.keyPrefix + fillNext, value);
        fillNext += workers;
      } else {
        const key = cfg.keyPrefix + (next() % cfg.keys);
        spec = cfg.op === 'write' ? builder.write(key, value) : builder.read(key);
      }
      const i = rr++ % urls.length;
      const start = performance.now();
      let failure: string | undefined;
      try {
        const ans = await send(agents[i]!, urls[i]!, spec, cfg.timeoutMs, cfg.headers);
        failure = builder.check(ans.status, ans.body);
      } catch (e) {
        failure = `${(e as NodeJS.ErrnoException).code ?? 'ERROR'}: ${(e as Error).message}`;
      }
      const end = performance.now();
      lastDone = end;
      // Count only operations that started and finished inside the window.
      if (start >= measureFrom && end <= measureTo) {
        if (failure === undefined) {
          ops++;
          latencies.push((end - start) * 1000);
        } else {
          errors++;
          if (samples.size < 5) samples.add(failure);
        }
      } else if (failure !== undefined && cfg.op === 'fill') {
        errors++;
        if (samples.size < 5) samples.add(failure);
      }
      // A refused or reset connection fails at once: back off a little instead of spinning.
      if (failure !== undefined && !failure.startsWith('HTTP')) await new Promise((r) => setTimeout(r, 10));
    }
  };
  await Promise.all(Array.from({ length: clients }, () => client()));
  const cpu = process.cpuUsage(cpuAtStart);
  for (const ag of agents) ag.destroy();
  const windowMs = cfg.op === 'fill' ? lastDone - t0 : cfg.durationMs;
  return { ops, errors, errorSamples: [...samples], latencies: latencies.view(), windowMs, cpuUs: cpu.user + cpu.system };
}

type ParentMessage = { type: 'run'; assignment: WorkerAssignment } | { type: 'start' };
type ChildMessage = { type: 'ready' } | { type: 'result'; result: WorkerResult } | { type: 'failed'; message: string };

function childMain(): void {
  let startResolve: (() => void) | undefined;
  const started = new Promise<void>((r) => (startResolve = r));
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'start') {
      startResolve!();
      return;
    }
    runWorker(m.assignment, async () => {
      process.send!({ type: 'ready' } satisfies ChildMessage);
      await started;
    }).then(
      (result) => process.send!({ type: 'result', result } satisfies ChildMessage, () => process.exit(0)),
      (e: unknown) => process.send!({ type: 'failed', message: (e as Error).stack ?? String(e) } satisfies ChildMessage, () => process.exit(1)),
    );
  });
  // The parent going away must not leave a load generator running.
  process.on('disconnect', () => process.exit(0));
}

// ---- the parent side

const thisFile = fileURLToPath(import.meta.url);

/**
 * Runs one point (system, op, concurrency) with `workers` load-generator processes started for it
 * and stopped after it. Resolves once every worker has reported; rejects if one fails.
 */
export async function runPoint(cfg: PointConfig, workers = 1): Promise<PointResult> {
  const n = Math.max(1, Math.min(workers, cfg.concurrency));
  const execArgv = thisFile.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const children = Array.from({ length: n }, () =>
    fork(thisFile, ['--loadgen-child'], { execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  try {
    let ready = 0;
    const results = await new Promise<WorkerResult[]>((resolve, reject) => {
      const out: WorkerResult[] = [];
      children.forEach((child, worker) => {
        child.on('message', (m: ChildMessage) => {
          if (m.type === 'ready') {
            // Start every worker together so their windows line up.
            if (++ready === n) for (const c of children) c.send({ type: 'start' } satisfies ParentMessage);
          } else if (m.type === 'result') {
            out.push(m.result);
            if (out.length === n) resolve(out);
          } else reject(new Error(`load generator ${worker} failed: ${m.message}`));
        });
        child.on('exit', (code) => {
          if (code !== 0 && out.length < n) reject(new Error(`load generator ${worker} exited with code ${code}`));
        });
        child.send({ type: 'run', assignment: { cfg, worker, workers: n } } satisfies ParentMessage);
      });
    });
    const total = results.reduce((s, r) => s + r.latencies.length, 0);
    const all = new Uint32Array(total);
    let at = 0;
    for (const r of results) {
      all.set(r.latencies, at);
      at += r.latencies.length;
    }
    all.sort();
    const ops = results.reduce((s, r) => s + r.ops, 0);
    const errors = results.reduce((s, r) => s + r.errors, 0);
    const seconds = Math.max(...results.map((r) => r.windowMs)) / 1000;
    return {
      system: cfg.system,
      op: cfg.op,
      concurrency: cfg.concurrency,
      ops,
      errors,
      errorSamples: [...new Set(results.flatMap((r) => r.errorSamples))].slice(0, 5),
      seconds,
      opsPerSec: seconds > 0 ? ops / seconds : 0,
      p50Ms: percentile(all, 50) / 1000,
      p99Ms: percentile(all, 99) / 1000,
      maxMs: all.length ? all[all.length - 1]! / 1000 : NaN,
      loadgenCores: seconds > 0 ? results.reduce((s, r) => s + r.cpuUs, 0) / 1e6 / seconds : 0,
    };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

if (process.argv.includes('--loadgen-child') && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) childMain();
