// raftd's AppClient negotiates the binary UpdateEntries body (docs/state-machine-api.md, "Binary
// UpdateEntries"): binary to an SDK app (which advertises it on LastLogIndex), JSON to any app
// that does not, including one that restarts without it on the same port. Real HTTP throughout;
// the SDK apps sit behind a server that records each UpdateEntries request's content type.

import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'chai';
import { stateMachineHandler } from '../../../adapters/sdk/server.js';
import { TEST_APP_SECRET } from '../../support/app-secret.js';
import type { StateMachine } from '../../../adapters/sdk/types.js';
import { RecordingStateMachine } from '../../support/recording-sm.js';
import { AppClient, GroupApplier, type AppEntry, type EntryResult } from '../../../daemon/statemachine/index.js';
import { TestApp } from './test-app.js';

const BINARY = 'application/vnd.raftd.entries';

/** Remembers every entry it applied, bytes included; refuses three-byte entries. */
function newStore(): RecordingStateMachine {
  return new RecordingStateMachine((e) => (e.data.length === 3 ? { ok: false, error: { code: 'THREE', message: 'three bytes' } } : { ok: true, result: { len: e.data.length, term: e.term } }));
}

/** The SDK's handler on a plain HTTP/1.1 or h2c server that records UpdateEntries content types. */
async function recordingSdkApp(proto: 'h1' | 'h2', sm: StateMachine, binaryEntries: boolean, port = 0): Promise<{ url: string; types: string[]; close(): Promise<void> }> {
  const handler = stateMachineHandler(sm, { binaryEntries, appSecret: TEST_APP_SECRET });
  const types: string[] = [];
  const onRequest = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    if (req.url?.endsWith('/UpdateEntries')) types.push(String(req.headers['content-type']));
    handler(req, res);
  };
  const server = proto === 'h1' ? http.createServer(onRequest) : http2.createServer(onRequest);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    types,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Entries from..to: a 600 KB one, a no-op, a three-byte one (which the store rejects), small ones. */
function entries(from: number, to: number): AppEntry[] {
  const out: AppEntry[] = [];
  for (let i = from; i <= to; i++) {
    const len = i % 10 === 0 ? 600_000 : i % 7 === 0 ? 0 : i % 11 === 0 ? 3 : 1 + (i % 50);
    const data = new Uint8Array(len).map((_, k) => (i + k) % 256);
    // Data as a view into a larger buffer, as raftd's log hands them over.
    const backing = new Uint8Array(len + 5);
    backing.set(data, 5);
    out.push({ index: i, term: 2 + Math.floor(i / 30), data: backing.subarray(5) });
  }
  return out;
}

async function applyAll(client: AppClient, group: number, n: number): Promise<Map<number, EntryResult>> {
  const results = new Map<number, EntryResult>();
  const applier = new GroupApplier(group, client, { onApplied: (_l, r) => r.forEach((v, k) => results.set(k, v)) });
  try {
    await applier.start();
    for (let i = 1; i <= n; i += 9) applier.enqueue(entries(i, Math.min(n, i + 8)));
    await applier.waitApplied(n, 20_000);
  } finally {
    await applier.stop();
  }
  return results;
}

describe('statemachine: binary UpdateEntries negotiation', function () {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const proto of ['h1', 'h2'] as const) {
    it(`sends binary to the SDK (${proto === 'h1' ? 'HTTP/1.1' : 'h2c'}), which advertises it; entries arrive byte for byte`, async () => {
      const sm = newStore();
      const app = await recordingSdkApp(proto, sm, true);
      const client = new AppClient({ appUrl: app.url, retry: { initialMs: 10, maxMs: 50 }, secret: TEST_APP_SECRET });
      cleanups.push(() => app.close(), () => client.close());
      expect(client.entriesEncoding()).to.equal('json'); // nothing learned yet
      const results = await applyAll(client, 4, 95);
      expect(client.entriesEncoding()).to.equal('binary');
      expect(app.types.length).to.be.greaterThan(0);
      expect(new Set(app.types)).to.deep.equal(new Set([BINARY]));
      const sent = entries(1, 95);
      for (const e of sent) expect(Buffer.from(sm.dataAt(e.index)!).equals(Buffer.from(e.data)), `entry ${e.index}`).to.equal(true);
      expect(results.get(10)).to.deep.equal({ index: 10, ok: true, result: { len: 600_000, term: 2 } });
      expect(results.get(14)).to.deep.equal({ index: 14, ok: true, result: { len: 0, term: 2 } });
      expect(results.get(33)).to.deep.include({ ok: false, error: { code: 'THREE', message: 'three bytes' } });
      expect(results.size).to.equal(95);
    });
  }

  it('sends JSON to an SDK app that does not advertise binary, and when told entries: json', async () => {
    const quiet = await recordingSdkApp('h1', newStore(), false);
    const loud = await recordingSdkApp('h2', newStore(), true);
    const c1 = new AppClient({ appUrl: quiet.url, retry: { initialMs: 10, maxMs: 50 }, secret: TEST_APP_SECRET });
    const c2 = new AppClient({ appUrl: loud.url, retry: { initialMs: 10, maxMs: 50 }, secret: TEST_APP_SECRET, entries: 'json' });
    cleanups.push(() => quiet.close(), () => loud.close(), () => c1.close(), () => c2.close());
    expect((await applyAll(c1, 1, 40)).size).to.equal(40);
    expect((await applyAll(c2, 1, 40)).size).to.equal(40);
    for (const [c, app] of [
      [c1, quiet],
      [c2, loud],
    ] as const) {
      expect(c.entriesEncoding()).to.equal('json');
      expect(app.types.length).to.be.greaterThan(0);
      expect(new Set(app.types)).to.deep.equal(new Set(['application/json']));
    }
  });

  // TestApp parses every body as JSON (a binary one is a 500 there, retried forever): this times
  // out if raftd sent binary to an app that never advertised it.
  for (const proto of ['h1', 'h2'] as const) {
    it(`a JSON-only app (${proto}) gets JSON`, async () => {
      const app = new TestApp(proto);
      const client = new AppClient({ appUrl: await app.listen(), retry: { initialMs: 10, maxMs: 50 }, secret: TEST_APP_SECRET });
      cleanups.push(() => app.close(), () => client.close());
      const n = 60;
      const results = new Map<number, EntryResult>();
      const applier = new GroupApplier(1, client, { onApplied: (_l, r) => r.forEach((v, k) => results.set(k, v)) });
      cleanups.push(() => applier.stop());
      await applier.start();
      const enc = new TextEncoder();
      applier.enqueue(Array.from({ length: n }, (_, k) => ({ index: k + 1, term: 1, data: enc.encode(String(k + 1)) })));
      await applier.waitApplied(n, 5_000);
      expect(client.entriesEncoding()).to.equal('json');
      expect(app.state(1).sum).to.equal((n * (n + 1)) / 2);
      expect(client.healthy()).to.equal(true);
    });
  }

  it('an app that restarts without the advert on the same port gets JSON again', async () => {
    const sm = newStore();
    const first = await recordingSdkApp('h1', sm, true);
    const port = Number(new URL(first.url).port);
    const client = new AppClient({ appUrl: first.url, retry: { initialMs: 10, maxMs: 50 }, secret: TEST_APP_SECRET });
    cleanups.push(() => client.close());
    const results = new Map<number, EntryResult>();
    const applier = new GroupApplier(1, client, { onApplied: (_l, r) => r.forEach((v, k) => results.set(k, v)) });
    cleanups.push(() => applier.stop());
    await applier.start();
    const enc = new TextEncoder();
    const cmd = (from: number, to: number): AppEntry[] => Array.from({ length: to - from + 1 }, (_, k) => ({ index: from + k, term: 1, data: enc.encode(String(from + k)) }));
    applier.enqueue(cmd(1, 20));
    await applier.waitApplied(20, 5_000);
    expect(client.entriesEncoding()).to.equal('binary');

    // Replaced by a JSON-only app that starts from the same state (index 20, sum 1..20).
    await first.close();
    const second = new TestApp('h1');
    Object.assign(second.state(1), { lastIndex: 20, durable: 20, sum: 210 });
    await second.listen(port);
    cleanups.push(() => second.close());
    applier.enqueue(cmd(21, 40));
    await applier.waitApplied(40, 10_000);
    expect(client.entriesEncoding()).to.equal('json');
    expect(second.state(1).sum).to.equal((40 * 41) / 2);
    expect(second.state(1).appliedOrder).to.deep.equal(Array.from({ length: 20 }, (_, k) => 21 + k));
  });
});
