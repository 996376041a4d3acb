// npm run bench:app-calls — what one state-machine API call costs, next to what any HTTP exchange
// costs on this machine. raftd's AppClient sends UpdateEntries, one call at a time, to the reference
// KV adapter (its own process, --fsync never so no disk time is counted) with 1, 8 and 64 entries
// per call, over h2c and over HTTP/1.1. Beside it, the floor: bare node:http and node:http2 servers
// (another process) answering a 200-byte POST with a small JSON body, driven by bare node clients.
// Prints CPU microseconds per call on each side (the app's from /proc, the caller's from
// process.cpuUsage) and per entry, and each call's cost as a multiple of the floor of its protocol.
// The rounds alternate (floor, then calls, twice over) so a shared machine's drifting load hits
// both alike; the second round is the one printed (the first warms the JIT).
//
// Options: --calls N (per measurement, default 2000), --sizes 1,8,64.
// Internal: `--floor PORT_H1 PORT_H2` runs the bare servers (the bench starts them).

import http from 'node:http';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AppClient } from '../../daemon/statemachine/app-client.js';
import { APP_SECRET_ENV, generateSecret } from '../../protocol/secrets.js';
import type { AppEntry } from '../../daemon/statemachine/types.js';
import { ManagedProcess, freePort, waitForHttp } from '../../test/integration/cluster.js';
import { cpuSeconds } from './stats.js';
import { serveFloor } from './floor-servers.js';

type Protocol = 'h2c' | 'http/1.1';
const PROTOCOLS: Protocol[] = ['h2c', 'http/1.1'];

function serveFloorUntilTerm(h1Port: number, h2Port: number): void {
  serveFloor(h1Port, h2Port);
  process.once('SIGTERM', () => process.exit(0));
}

/** One bare POST per call, the next sent when the answer is read: the same shape as the applier's calls. */
function floorCaller(protocol: Protocol, port: number): { call(): Promise<void>; close(): void } {
  const body = Buffer.alloc(200, 0x61);
  if (protocol === 'h2c') {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    return {
      call: () =>
        new Promise((resolve, reject) => {
          const s = session.request({ ':method': 'POST', ':path': '/x', 'content-type': 'application/json' });
          s.on('data', () => undefined);
          s.on('end', resolve);
          s.on('error', reject);
          s.end(body);
        }),
      close: () => session.close(),
    };
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    call: () =>
      new Promise((resolve, reject) => {
        const req = http.request({ agent, host: '127.0.0.1', port, method: 'POST', path: '/x', headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
          res.on('data', () => undefined);
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

interface Cost {
  /** CPU µs per call: the serving process, the calling one. */
  server: number;
  caller: number;
}

async function measure(serverPid: number | undefined, calls: number, one: (i: number) => Promise<unknown>): Promise<Cost> {
  const s0 = cpuSeconds(serverPid);
  const c0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) await one(i);
  const c = process.cpuUsage(c0);
  return { server: ((cpuSeconds(serverPid) - s0) * 1e6) / calls, caller: (c.user + c.system) / calls };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { calls: { type: 'string' }, sizes: { type: 'string' } } });
  const calls = Number(values.calls ?? 2000);
  const sizes = (values.sizes ?? '1,8,64').split(',').map(Number);
  if (!(calls > 0) || sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--calls takes a positive number, --sizes positive integers');

  const dir = mkdtempSync(join(tmpdir(), 'bench-app-calls-'));
  const [h1Port, h2Port, appPort] = [await freePort(), await freePort(), await freePort()];
  const floor = new ManagedProcess('floor servers', 'scripts/bench/app-calls.ts', ['--floor', String(h1Port), '--floor', String(h2Port)], {}, join(dir, 'floor.log'));
  // Signed calls, as raftd makes them: the figures include the HMAC and body digest on both sides.
  const appSecret = generateSecret();
  const app = new ManagedProcess('kv app', 'adapters/kv/main.ts', ['--listen', `127.0.0.1:${appPort}`, '--data-dir', join(dir, 'kv'), '--fsync', 'never'], { [APP_SECRET_ENV]: appSecret }, join(dir, 'kv.log'));
  const clients: AppClient[] = [];
  try {
    floor.start();
    app.start();
    await Promise.all([waitForHttp(`http://127.0.0.1:${h1Port}/`, 30_000), waitForHttp(`http://127.0.0.1:${appPort}/`, 30_000)]);
    console.log(`bench:app-calls — ${calls} sequential calls per figure; KV adapter with --fsync never; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

    const value = 'v'.repeat(52);
    let index = 0;
    const batch = (n: number): AppEntry[] =>
      Array.from({ length: n }, () => {
        index++;
        return { index, term: 1, data: Buffer.from(JSON.stringify({ op: 'set', key: `key${index % 10_000}`, value: value + String(index).padStart(12, '0') })) };
      });
    const rows: string[][] = [];
    for (const protocol of PROTOCOLS) {
      const client = new AppClient({ appUrl: `http://127.0.0.1:${appPort}`, http2: protocol === 'h2c' ? 'always' : 'never', secret: appSecret });
      clients.push(client);
      index = await client.lastLogIndex(1); // also learns that the app takes binary UpdateEntries
      const bare = floorCaller(protocol, protocol === 'h2c' ? h2Port : h1Port);
      let base: Cost | undefined;
      const costs = new Map<number, Cost>();
      for (let round = 0; round < 2; round++) {
        base = await measure(floor.proc?.pid, calls, () => bare.call());
        for (const n of sizes) costs.set(n, await measure(app.proc?.pid, Math.max(50, Math.round(calls / Math.sqrt(n))), () => client.updateEntries(1, batch(n))));
      }
      bare.close();
      rows.push([protocol, 'bare node server and client', '-', base!.server.toFixed(0), base!.caller.toFixed(0), '-', '1.0x']);
      for (const [n, c] of costs) {
        const ratio = (c.server + c.caller) / (base!.server + base!.caller);
        rows.push([protocol, 'raftd AppClient -> KV adapter, UpdateEntries', String(n), c.server.toFixed(0), c.caller.toFixed(0), ((c.server + c.caller) / n).toFixed(1), `${ratio.toFixed(1)}x`]);
      }
    }
    const head = ['protocol', 'call', 'entries', 'server CPU µs/call', 'caller CPU µs/call', 'both µs/entry', 'both vs bare'];
    console.log(`\n| ${head.join(' | ')} |\n|${head.map((_, i) => (i < 2 ? ':---' : '---:')).join('|')}|`);
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  } finally {
    for (const c of clients) await c.close();
    await Promise.all([floor.kill(), app.kill()]);
    floor.closeLog();
    app.closeLog();
    rmSync(dir, { recursive: true, force: true });
  }
}

const floorPorts = process.argv.includes('--floor') ? process.argv.filter((_, i, a) => a[i - 1] === '--floor').map(Number) : [];
if (floorPorts.length === 2) serveFloorUntilTerm(floorPorts[0]!, floorPorts[1]!);
else
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
