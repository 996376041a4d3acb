// node dist/scripts/bench/http-clients.js — hand-written node:http / node:http2 clients against
// undici (issue 19): the caller's CPU per POST (200 bytes out, a small JSON answer back) over
// loopback to bare node:http and node:http2 servers in another process, one call at a time and 16 in
// flight. HTTP/1.1: node:http with one keep-alive Agent (what forward.ts, the SDK client and the
// app client's HTTP/1.1 side were) vs undici's Pool. h2c: one node:http2 session (the app client's
// default transport before undici) vs undici's H2CClient. Rounds alternate (A B A B) so a shared
// machine's drifting load hits both alike; the second round is printed.
//
// Options: --calls N (per figure, default 3000), --undici PATH (another undici's folder; default the
// installed dependency). Internal: `--serve PORT_H1 PORT_H2` runs the bare servers (the bench starts them).

import http from 'node:http';
import http2 from 'node:http2';
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, waitForHttp } from '../../test/integration/cluster.js';
import { Deadline } from '../../protocol/deadline.js';
import { FLOOR_ANSWER as ANSWER, serveFloor } from './floor-servers.js';

const BODY = Buffer.alloc(200, 0x61);

/** The part of undici's Pool / H2CClient this bench uses. */
interface UndiciDispatcher {
  request(o: { path: string; method: string; headers: Record<string, string>; body: Buffer; signal?: AbortSignal | Deadline }): Promise<{ statusCode: number; body: { text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer> } }>;
  close(): Promise<void>;
}
interface UndiciModule {
  Pool: new (origin: string, o: { connections: number; pipelining: number; headersTimeout: number; bodyTimeout: number; maxResponseSize: number }) => UndiciDispatcher;
  H2CClient: new (origin: string, o: { pipelining: number; headersTimeout: number; bodyTimeout: number; maxResponseSize: number; maxConcurrentStreams: number }) => UndiciDispatcher;
}

type Caller = { name: string; call(): Promise<void>; close(): Promise<void> | void };

function nodeHttpCaller(port: number): Caller {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    name: 'node:http, keep-alive Agent, deadline timer (before)',
    call: () =>
      new Promise((resolve, reject) => {
        // The deadline timer the hand-written clients armed per call.
        const timer = setTimeout(() => req.destroy(new Error('deadline')), 10_000);
        const req = http.request({ host: '127.0.0.1', port, path: '/x', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': BODY.length } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            if (Buffer.concat(chunks).toString() === ANSWER) resolve();
            else reject(new Error('bad answer'));
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(BODY);
      }),
    close: () => agent.destroy(),
  };
}

function undiciCaller(name: string, d: UndiciDispatcher): Caller {
  return {
    name,
    call: async () => {
      const res = await d.request({ path: '/x', method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY });
      if ((await res.body.text()) !== ANSWER || res.statusCode !== 200) throw new Error('bad answer');
    },
    close: () => d.close(),
  };
}

/** With a whole-call deadline per call: an AbortController's signal, or protocol/deadline.ts (as forward.ts and the SDK client). */
function undiciDeadlineCaller(name: string, d: UndiciDispatcher, kind: 'AbortController' | 'Deadline'): Caller {
  return {
    name,
    call: async () => {
      let signal: AbortSignal | Deadline;
      let clear: () => void;
      if (kind === 'AbortController') {
        const ctl = new AbortController();
        const timer = setTimeout(() => ctl.abort(new Error('deadline')), 10_000);
        signal = ctl.signal;
        clear = () => clearTimeout(timer);
      } else {
        const deadline = new Deadline(10_000, () => new Error('deadline'));
        signal = deadline;
        clear = () => deadline.clear();
      }
      try {
        const res = await d.request({ path: '/x', method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, signal });
        if (Buffer.from(await res.body.arrayBuffer()).toString() !== ANSWER || res.statusCode !== 200) throw new Error('bad answer');
      } finally {
        clear();
      }
    },
    close: () => d.close(),
  };
}

function nodeHttp2Caller(port: number): Caller {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  return {
    name: 'node:http2, one session (h2c)',
    call: () =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/x', 'content-type': 'application/json' });
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => (Buffer.concat(chunks).toString() === ANSWER ? resolve() : reject(new Error('bad answer'))));
        stream.on('error', reject);
        stream.end(BODY);
      }),
    close: () => void session.close(),
  };
}

/** Caller CPU µs per call and calls/s, `inFlight` calls kept going. */
async function measure(c: Caller, calls: number, inFlight: number): Promise<{ cpuUs: number; perSec: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < calls) {
      next++;
      await c.call();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  return { cpuUs: (cpu.user + cpu.system) / calls, perSec: calls / seconds };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { calls: { type: 'string', default: '3000' }, undici: { type: 'string' }, serve: { type: 'string' } } });
  if (values.serve) {
    serveFloor(Number(values.serve), Number(positionals[0]));
    return;
  }
  const calls = Number(values.calls);
  const spec = values.undici ? pathToFileURL(join(values.undici, 'index.js')).href : 'undici';
  const undici = (await import(spec)) as UndiciModule;
  const port = await freePort();
  const h2Port = await freePort();
  const server = spawn(process.execPath, [process.argv[1]!, '--serve', String(port), String(h2Port)], { stdio: 'inherit' });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/x`, 10_000);
    const limits = { headersTimeout: 10_000, bodyTimeout: 10_000, maxResponseSize: 64 << 20 };
    const pairs: Caller[][] = [
      [
        nodeHttpCaller(port),
        undiciCaller('undici Pool.request', new undici.Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1, ...limits })),
        undiciDeadlineCaller('undici Pool.request + AbortController deadline', new undici.Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1, ...limits }), 'AbortController'),
        undiciDeadlineCaller('undici Pool.request + Deadline (as forward.ts, SDK)', new undici.Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1, ...limits }), 'Deadline'),
      ],
      [nodeHttp2Caller(h2Port), undiciCaller('undici H2CClient.request (h2c)', new undici.H2CClient(`http://127.0.0.1:${h2Port}`, { pipelining: 100, maxConcurrentStreams: 100, ...limits }))],
    ];
    console.log(`http-clients — ${calls} POSTs per figure over loopback; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    console.log('| client | in flight | caller CPU µs/call | calls/s |\n|:---|---:|---:|---:|');
    for (const callers of pairs) {
      for (const inFlight of [1, 16]) {
        const rows = new Map<string, string>();
        for (let round = 0; round < 2; round++) {
          for (const c of callers) {
            const m = await measure(c, calls, inFlight);
            if (round === 1) rows.set(c.name, `| ${c.name} | ${inFlight} | ${m.cpuUs.toFixed(0)} | ${m.perSec.toFixed(0)} |`);
          }
        }
        for (const r of rows.values()) console.log(r);
      }
      for (const c of callers) await c.close();
    }
    console.log(`\nload average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    server.kill('SIGTERM');
  }
}

await main();
