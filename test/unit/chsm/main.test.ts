// The adapter process (main.ts) for real: served over HTTP by the SDK, driven with the state-machine
// API; and its refusal to run on a ClickHouse that cannot do exactly-once apply.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeEntry } from '../../../clickhouse-adapter/statemachine/entry.js';
import { signAppRequest } from '../../../protocol/app-auth.js';
import { TEST_APP_SECRET } from '../../support/app-secret.js';

const here = fileURLToPath(import.meta.url);
const ts = here.endsWith('.ts');
const root = join(here, '..', '..', '..', '..');
const MAIN = join(root, 'clickhouse-adapter', 'statemachine', ts ? 'main.ts' : 'main.js');
const args = (file: string, rest: string[]): string[] => (ts ? ['--import', 'tsx', file, ...rest] : [file, ...rest]);

/** The adapter process, given the app secret in RAFTD_APP_SECRET as raftd's application is (unless `env` says otherwise). */
function run(rest: string[], env: Record<string, string | undefined> = { RAFTD_APP_SECRET: TEST_APP_SECRET }): { child: ChildProcess; out: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const childEnv = { ...process.env, RAFTD_APP_SECRET: undefined, RAFTD_APP_SECRET_FILE: undefined, ...env };
  const child = spawn(process.execPath, args(MAIN, rest), { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const out = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, out };
}

/** A call as raftd makes it: signed with the app secret (`headers` replaces the signature). */
async function post(url: string, call: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; json: unknown }> {
  const bytes = Buffer.from(JSON.stringify(body));
  const auth = headers ?? signAppRequest(TEST_APP_SECRET, 'POST', `/raft/v1/${call}`, bytes);
  const r = await fetch(`${url}/raft/v1/${call}`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: bytes });
  return { status: r.status, json: await r.json() };
}

describe('chsm: the adapter process', function () {
  this.timeout(30_000);

  it('refuses to start without the app secret (exit 2, names the flag) unless --insecure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chsm-main-'));
    try {
      const r = await run(['--listen', '127.0.0.1:0', '--data-dir', dir], {}).out;
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/no --app-secret-file \(or RAFTD_APP_SECRET/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves the state-machine API on the embedded engine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chsm-main-'));
    const port = 20000 + Math.floor(Math.random() * 20000);
    const { child, out } = run(['--listen', `127.0.0.1:${port}`, '--data-dir', dir]);
    try {
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; ; i++) {
        try { await post(url, 'LastLogIndex', { group: 3 }); break; } catch (e) { if (i > 100) throw e; await new Promise((r) => setTimeout(r, 100)); }
      }
      expect((await post(url, 'LastLogIndex', { group: 3 })).json).to.deep.equal({ lastLogIndex: 0 });
      const entries = [
        encodeEntry({ v: 1, kind: 'ddl', sql: 'CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id' }),
        encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from('{"id":1}\n{"id":2}\n')),
        encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from('{"id":"x"}\n')),
      ].map((d, i) => ({ index: i + 1, term: 1, data: d.toString('base64') }));
      const r1 = await post(url, 'UpdateEntries', { group: 3, entries });
      expect(r1.status).to.equal(200);
      const body = r1.json as { results: Array<Record<string, unknown>>; lastLogIndex: number };
      expect(body.lastLogIndex).to.equal(3);
      expect(body.results[1]).to.deep.include({ index: 2, ok: true });
      expect(body.results[2]).to.deep.include({ index: 3, ok: false });
      // Redelivery: skipped by the SDK, effects not doubled.
      const r2 = await post(url, 'UpdateEntries', { group: 3, entries });
      expect((r2.json as { results: Array<Record<string, unknown>> }).results.every((x) => x.skipped === true)).to.equal(true);
      const read = await post(url, 'Read', { group: 3, query: { sql: 'SELECT count() AS c FROM t' } });
      expect(read.json).to.deep.equal({ result: { rows: [{ c: 2 }] } });
      const sum = await post(url, 'Read', { group: 3, query: { op: 'checksum' } });
      expect((sum.json as { result: { lastLogIndex: number; tables: Array<{ table: string; rows: string }> } }).result)
        .to.deep.include({ lastLogIndex: 3 });
      const prep = await post(url, 'PrepareSnapshot', { group: 3 });
      expect(prep.json).to.deep.equal({ prepared: 'rh_snap_g3_3', lastLogIndex: 3 });

      // The forged UpdateEntries at LastLogIndex + 1 of issue 17, straight to this port: refused
      // without the secret, with a wrong one, replayed or altered; the group does not move.
      const forged = { group: 3, entries: [{ index: 4, term: 1, data: encodeEntry({ v: 1, kind: 'insert', sql: 'INSERT INTO t FORMAT JSONEachRow' }, Buffer.from('{"id":666}\n')).toString('base64') }] };
      const forgedBytes = Buffer.from(JSON.stringify(forged));
      const redelivery = { group: 3, entries: [entries[2]!] };
      const captured = signAppRequest(TEST_APP_SECRET, 'POST', '/raft/v1/UpdateEntries', Buffer.from(JSON.stringify(redelivery)));
      expect((await post(url, 'UpdateEntries', redelivery, captured)).status).to.equal(200);
      const refused: Array<[string, unknown, Record<string, string>, string]> = [
        ['unsigned', forged, {}, 'UNAUTHENTICATED'],
        ['wrong secret', forged, signAppRequest('another-secret-0123456789', 'POST', '/raft/v1/UpdateEntries', forgedBytes), 'UNAUTHENTICATED'],
        ['replayed', redelivery, captured, 'REPLAYED'],
        ['altered body', forged, signAppRequest(TEST_APP_SECRET, 'POST', '/raft/v1/UpdateEntries', Buffer.from(JSON.stringify(redelivery))), 'UNAUTHENTICATED'],
      ];
      for (const [what, body, headers, code] of refused) {
        const r = await post(url, 'UpdateEntries', body, headers);
        expect([r.status, (r.json as { error: { code: string } }).error.code], what).to.deep.equal([401, code]);
      }
      expect((await post(url, 'LastLogIndex', { group: 3 })).json).to.deep.equal({ lastLogIndex: 3 });
      expect((await post(url, 'Read', { group: 3, query: { sql: 'SELECT count() AS c FROM t' } })).json).to.deep.equal({ result: { rows: [{ c: 2 }] } });
    } finally {
      child.kill('SIGTERM');
      await out;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a ClickHouse server that cannot apply exactly once, naming what it lacks', async function () {
    const url = process.env.CLICKHOUSE_URL ?? 'http://127.0.0.1:18423';
    const ping = await fetch(`${url}/ping`).then((r) => r.ok, () => false);
    if (!ping) { console.log(`      (skipped: no ClickHouse server at ${url}; start one with scripts/clickhouse-server.sh start)`); this.skip(); return; }
    const version = await (await fetch(`${url}/?query=SELECT+version()`)).text();
    if (!version.startsWith('18.')) { console.log(`      (skipped: server ${version.trim()} is modern enough to be accepted)`); this.skip(); return; }
    const { out } = run(['--engine', 'server', '--clickhouse-url', url, '--listen', '127.0.0.1:0']);
    const r = await out;
    expect(r.code).to.equal(3);
    expect(r.stderr).to.include('ENGINE_UNSUPPORTED');
    expect(r.stderr).to.include('insert_deduplication_token');
  });
});
