// raftd's client side against the project's real adapters: the TypeScript KV adapter on the SDK
// (HTTP/1.1 + h2c on one port, or HTTP/1.1 only) and the Python standard-library adapter.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { KvAdapter } from '../../../adapters/kv/adapter.js';
import { serveStateMachine } from '../../../adapters/sdk/index.js';
import { TEST_APP_SECRET } from '../../support/app-secret.js';
import { signAppRequest } from '../../../protocol/app-auth.js';
import { AppClient, GroupApplier, type AppEntry, type EntryResult } from '../../../daemon/statemachine/index.js';
import { freePort } from '../../support/ports.js';

const enc = new TextEncoder();

function setCommands(from: number, to: number): AppEntry[] {
  const out: AppEntry[] = [];
  for (let i = from; i <= to; i++) {
    // Every 50th entry is a no-op, every 97th a command the adapter rejects deterministically.
    const data = i % 50 === 0 ? new Uint8Array(0) : i % 97 === 0 ? enc.encode('{"op":"nope"}') : enc.encode(JSON.stringify({ op: 'set', key: `k${i % 20}`, value: `v${i}` }));
    out.push({ index: i, term: 1, data });
  }
  return out;
}

async function digest(it: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256');
  for await (const c of it) h.update(c);
  return h.digest('hex');
}

/** Applies entries through a GroupApplier and checks the results and the app's state. */
async function applyAndCheck(client: AppClient, group: number, n: number): Promise<Map<number, EntryResult>> {
  const results = new Map<number, EntryResult>();
  const applier = new GroupApplier(group, client, { onApplied: (_l, r) => r.forEach((v, k) => results.set(k, v)) });
  try {
    await applier.start();
    for (let i = 1; i <= n; i += 25) applier.enqueue(setCommands(i, Math.min(n, i + 24)));
    await applier.waitApplied(n, 20_000);
  } finally {
    await applier.stop();
  }
  expect(await client.lastLogIndex(group)).to.equal(n);
  expect(results.size).to.equal(n);
  expect(results.get(50)).to.deep.include({ ok: true, result: null });
  expect(results.get(97)).to.deep.include({ ok: false });
  // The last writer of k19 among 1..n (skipping no-ops and rejected commands).
  let last = -1;
  for (let i = 1; i <= n; i++) if (i % 20 === 19 && i % 50 !== 0 && i % 97 !== 0) last = i;
  const read = (await client.read(group, { op: 'get', key: 'k19' })) as { value?: unknown };
  expect(JSON.stringify(read)).to.contain(`v${last}`);
  return results;
}

describe('statemachine: interop with the real adapters', function () {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const h2c of [undefined, false] as const) {
    it(`TS KV adapter on the SDK (${h2c === false ? 'HTTP/1.1 only' : 'HTTP/1.1 + h2c'}): apply, read, snapshot round trip, restart`, async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'sm-interop-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      let kv = new KvAdapter({ dataDir: dir });
      let served = await serveStateMachine(kv, { port: 0, appSecret: TEST_APP_SECRET, ...(h2c === false ? { h2c } : {}) });
      cleanups.push(async () => {
        await served.close();
        await kv.close();
      });
      const client = new AppClient({ appUrl: served.url, retry: { initialMs: 10, maxMs: 100 }, secret: TEST_APP_SECRET });
      cleanups.push(() => client.close());
      expect((await client.connect()).protocol).to.equal(h2c === false ? 'http/1.1' : 'h2c');

      await applyAndCheck(client, 1, 300);

      // Snapshot of group 1 streamed out, then into group 2: same bytes come back out.
      const { prepared, lastLogIndex } = await client.prepareSnapshot(1);
      expect(lastLogIndex).to.equal(300);
      const d1 = await digest(client.saveSnapshot(1, prepared));
      expect(await digest(client.saveSnapshot(1, prepared))).to.equal(d1);
      // raftd has always asked a group's LastLogIndex (applier start) before recovering it. (Recovering
      // a group the KV adapter never loaded hits an adapter bug: load() completes the ".new" swap
      // that recoverFromSnapshot is in the middle of; reported, adapters/kv is not ours.)
      expect(await client.lastLogIndex(2)).to.equal(0);
      expect(await client.recoverFromSnapshot(2, client.saveSnapshot(1, prepared))).to.equal(300);
      const p2 = await client.prepareSnapshot(2);
      expect(await digest(client.saveSnapshot(2, p2.prepared))).to.equal(d1);

      // The adapter restarts on the same port; the client reconnects and the state is durable.
      const port = served.port;
      await served.close();
      await kv.close();
      kv = new KvAdapter({ dataDir: dir });
      served = await serveStateMachine(kv, { port, appSecret: TEST_APP_SECRET, ...(h2c === false ? { h2c } : {}) });
      expect(await client.lastLogIndex(1)).to.equal(300);
      expect(await client.lastLogIndex(2)).to.equal(300);
      await client.deleteGroup(2);
      expect(await client.lastLogIndex(2)).to.equal(0);
    });
  }

  it('Python adapter (standard library, HTTP/1.1): detected, applies, reads, snapshots', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sm-py-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const script = path.resolve('adapters/examples/python-kv/adapter.py');
    const proc: ChildProcess = spawn('python3', [script, '--listen', `127.0.0.1:${port}`, '--data-dir', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, RAFTD_APP_SECRET: TEST_APP_SECRET },
    });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          if (proc.exitCode !== null) return resolve();
          proc.once('exit', () => resolve());
          proc.kill('SIGTERM');
        }),
    );
    const client = new AppClient({ appUrl: `http://127.0.0.1:${port}`, retry: { initialMs: 20, maxMs: 100 }, secret: TEST_APP_SECRET });
    cleanups.push(() => client.close());
    // The process needs a moment to listen: connect() does not throw meanwhile, it reports.
    let conn = await client.connect();
    for (let i = 0; i < 100 && !conn.reachable; i++) {
      await new Promise((r) => setTimeout(r, 50));
      conn = await client.connect();
    }
    expect(conn, stderr).to.deep.equal({ protocol: 'http/1.1', reachable: true });
    await applyAndCheck(client, 5, 120);
    const { prepared } = await client.prepareSnapshot(5);
    const d = await digest(client.saveSnapshot(5, prepared));
    expect(await digest(client.saveSnapshot(5, prepared))).to.equal(d);
    expect(await client.recoverFromSnapshot(6, client.saveSnapshot(5, prepared))).to.equal(120);

    // The Python adapter checks raftd's signature as the SDK does: unsigned, wrongly signed,
    // replayed and altered calls are refused and change nothing.
    const url = `http://127.0.0.1:${port}/raft/v1/UpdateEntries`;
    const callPath = '/raft/v1/UpdateEntries';
    const forged = Buffer.from(JSON.stringify({ group: 5, entries: [{ index: 121, term: 1, data: Buffer.from('{"op":"set","key":"k1","value":"forged"}').toString('base64') }] }));
    const post = async (headers: Record<string, string>, body: Buffer = forged): Promise<{ status: number; code: unknown }> => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      const answer = (await res.json()) as { error?: { code?: unknown } };
      return { status: res.status, code: answer.error?.code };
    };
    expect(await post({})).to.deep.equal({ status: 401, code: 'UNAUTHENTICATED' });
    expect(await post(signAppRequest('a-wrong-secret-of-some-length', 'POST', callPath, forged))).to.deep.equal({ status: 401, code: 'UNAUTHENTICATED' });
    const signedNoop = Buffer.from(JSON.stringify({ group: 5, entries: [{ index: 1, term: 1, data: '' }] }));
    const captured = signAppRequest(TEST_APP_SECRET, 'POST', callPath, signedNoop);
    expect((await post(captured, signedNoop)).status).to.equal(200); // a redelivery: skipped
    expect(await post(captured, signedNoop)).to.deep.equal({ status: 401, code: 'REPLAYED' });
    expect(await post(signAppRequest(TEST_APP_SECRET, 'POST', callPath, signedNoop), forged)).to.deep.equal({ status: 401, code: 'UNAUTHENTICATED' });
    expect(await client.lastLogIndex(5)).to.equal(120);
  });
});
