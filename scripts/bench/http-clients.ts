// node dist/scripts/bench/http-clients.js — the HTTP/1.1 client under raftd's forwarding, the SDK and
// the app client, against undici (issue 19): the caller's CPU per POST (200 bytes out, a small JSON
// answer back) over loopback to a bare node:http server in another process, one call at a time and
// 16 in flight. node:http with one keep-alive Agent is today's code (daemon/api/forward.ts,
// adapters/sdk/client.ts, the HTTP/1.1 side of daemon/statemachine/app-client.ts); undici's Pool is
// the candidate. Rounds alternate (A B A B) so a shared machine's drifting load hits both alike; the
// second round is printed.
//
// undici is not a dependency of this repository: pass its folder with --undici PATH (default: the
// package `undici`, once installed). Options: --calls N (per figure, default 3000), --undici PATH.
// Internal: `--serve PORT` runs the bare server (the bench starts it).

import http from 'node:http';
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, waitForHttp } from '../../test/integration/cluster.js';

const ANSWER = '{"lastLogIndex":0,"results":[]}';
const BODY = Buffer.alloc(200, 0x61);

/** The part of undici's Pool this bench uses. */
interface UndiciPool {
  request(o: { path: string; method: string; headers: Record<string, string>; body: Buffer }): Promise<{ statusCode: number; body: { text(): Promise<string> } }>;
  close(): Promise<void>;
}
interface UndiciModule {
  Pool: new (origin: string, o: { connections: number; pipelining: number; headersTimeout: number; bodyTimeout: number; maxResponseSize: number }) => UndiciPool;
}

type Caller = { name: string; call(): Promise<void>; close(): Promise<void> | void };

function nodeHttpCaller(port: number): Caller {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    name: 'node:http, keep-alive Agent (today)',
    call: () =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/x', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': BODY.length } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => (Buffer.concat(chunks).toString() === ANSWER ? resolve() : reject(new Error('bad answer'))));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(BODY);
      }),
    close: () => agent.destroy(),
  };
}

function undiciCaller(undici: UndiciModule, port: number): Caller {
  const pool = new undici.Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000, maxResponseSize: 64 << 20 });
  return {
    name: 'undici Pool.request',
    call: async () => {
      const res = await pool.request({ path: '/x', method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY });
      if ((await res.body.text()) !== ANSWER || res.statusCode !== 200) throw new Error('bad answer');
    },
    close: () => pool.close(),
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
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, undici: { type: 'string' }, serve: { type: 'string' } } });
  if (values.serve) {
    http.createServer((req, res) => {
      req.on('data', () => undefined);
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(ANSWER));
    }).listen(Number(values.serve), '127.0.0.1');
    return;
  }
  const calls = Number(values.calls);
  const spec = values.undici ? pathToFileURL(join(values.undici, 'index.js')).href : 'undici';
  const undici = (await import(spec)) as UndiciModule;
  const port = await freePort();
  const server = spawn(process.execPath, [process.argv[1]!, '--serve', String(port)], { stdio: 'inherit' });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/x`, 10_000);
    const callers = [nodeHttpCaller(port), undiciCaller(undici, port)];
    console.log(`http-clients — ${calls} POSTs per figure, HTTP/1.1 over loopback; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    console.log('| client | in flight | caller CPU µs/call | calls/s |\n|:---|---:|---:|---:|');
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
    console.log(`\nload average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    server.kill('SIGTERM');
  }
}

await main();
