// Smoke test of `npm start` (scripts/start.ts): the README tour against the real script and processes —
// a sharded table, inserts, consistent and local reads, a node killed, Ctrl-C, and a restart that sees
// the data.

import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entryCommand } from './cluster.js';

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/** A base port with the 25 ports a 3-node cluster uses (base .. base+24) all free. */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 30_000 + Math.floor(Math.random() * 2_500) * 10;
    let ok = true;
    for (let p = base; p < base + 25 && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free port range');
}

interface Run {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function startScript(args: string[]): Run {
  const proc = spawn(process.execPath, [...entryCommand('scripts/start.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return { proc, out: () => out, exited };
}

async function waitUp(run: Run, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!run.out().includes('RaftHouse is up.')) {
    if (run.proc.exitCode !== null) throw new Error(`start exited ${run.proc.exitCode}:\n${run.out()}`);
    if (Date.now() > deadline) throw new Error(`not up within ${timeoutMs} ms:\n${run.out()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Waits until the node whose raftd API is on `apiPort` sees a leader other than `dead` in every group.
 * As the README does: `curl -s -H "authorization: Bearer $(cat DIR/secrets/api-token)" .../status`.
 */
async function waitNoLeader(apiPort: number, apiToken: string, dead: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = (await (await fetch(`http://127.0.0.1:${apiPort}/status`, { headers: { authorization: `Bearer ${apiToken}` } })).json()) as { groups: Array<{ leader: number }> };
    if (st.groups.every((g) => g.leader !== 0 && g.leader !== dead)) return;
    if (Date.now() > deadline) throw new Error(`node ${dead} still leads a group after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `ps -o pid=,ppid=,args=` of `root` and every process below it. */
function processTree(root: number): Array<{ pid: number; args: string }> {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,args='], { encoding: 'utf8' }).split('\n').flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s(.*)$/.exec(line);
    return m ? [{ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }] : [];
  });
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) if (tree.has(r.ppid) && !tree.has(r.pid)) grew = tree.add(r.pid).size > 0;
  }
  return rows.filter((r) => tree.has(r.pid));
}

/** What `curl URL --data-binary BODY` does. */
async function curl(url: string, body: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url, { method: 'POST', body, signal: AbortSignal.timeout(30_000) });
  return { status: r.status, text: await r.text() };
}

async function ok(url: string, body: string): Promise<string> {
  const r = await curl(url, body);
  expect(r.status, r.text).to.equal(200);
  return r.text;
}

describe('npm start (scripts/start.ts): the README tour on a real 3-node RaftHouse', function () {
  this.timeout(300_000);
  let dir: string;
  let base: number;
  let run: Run | undefined;
  const consistent = (node: number) => `http://127.0.0.1:${base + 10 * (node - 1)}/`;
  const local = (node: number) => `http://127.0.0.1:${base + 10 * (node - 1) + 1}/`;
  const pid = (name: string) => Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8'));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rafthouse-start-'));
    base = await freeBase();
  });

  after(async () => {
    if (run && run.proc.exitCode === null) {
      run.proc.kill('SIGINT');
      await run.exited;
    }
    // Anything still running from the pid files (a failed test) is ours: stop it.
    if (existsSync(join(dir, 'run'))) {
      for (const f of readdirSync(join(dir, 'run'))) {
        try {
          process.kill(Number(readFileSync(join(dir, 'run', f), 'utf8')), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the tour, survives a killed node, stops cleanly on SIGINT and restarts on the same data', async () => {
    run = startScript(['--data-dir', dir, '--base-port', String(base), '--groups', '4']);
    await waitUp(run, 180_000);
    expect(run.out()).to.include(consistent(1).slice(0, -1)).and.include(local(3).slice(0, -1));

    // A second start on the same data while it runs: one clear line, exit 1.
    const twice = startScript(['--data-dir', dir]);
    expect(await twice.exited).to.equal(1);
    expect(twice.out()).to.match(/^error: port \d+ \(node 1 consistent endpoint\) is in use/);

    // No secret on any command line: every process npm start runs (and theirs) shows paths, never values.
    const secretsDir = join(dir, 'secrets');
    const secrets = readdirSync(secretsDir).map((f) => readFileSync(join(secretsDir, f), 'utf8').trim());
    expect(secrets.length, 'api, admin, app and cluster secrets').to.be.at.least(4);
    const procs = processTree(run.proc.pid!);
    expect(procs.filter((p) => /daemon\/main|clickhouse-adapter\/main/.test(p.args)).length, procs.map((p) => p.args).join('\n')).to.be.at.least(6);
    for (const p of procs) for (const secret of secrets) expect(p.args, `ps -o args of pid ${p.pid}`).to.not.include(secret);
    const apiToken = readFileSync(join(secretsDir, 'api-token'), 'utf8').trim();
    // raftd's API needs the token, as the README's curl sends it; the load-balancer probe does not.
    expect((await fetch(`http://127.0.0.1:${base + 2}/status`)).status).to.equal(401);
    expect((await fetch(`http://127.0.0.1:${base + 2}/status`, { headers: { authorization: `Bearer ${apiToken}` } })).status).to.equal(200);

    await ok(consistent(1), "CREATE TABLE visits (user_id UInt64, amount UInt32, day Date) ENGINE = MergeTree ORDER BY (user_id, day) SETTINGS rafthouse_shard_key = 'user_id'");
    await ok(`${consistent(1)}?query=${encodeURIComponent('INSERT INTO visits FORMAT JSONEachRow')}`,
      '{"user_id":1,"amount":10,"day":"2026-11-01"}\n{"user_id":2,"amount":20,"day":"2026-11-01"}\n{"user_id":3,"amount":30,"day":"2026-11-02"}\n');
    await ok(consistent(2), "INSERT INTO visits VALUES (4, 40, '2026-11-02'), (5, 50, '2026-11-03')");
    // Consistent reads on any node see every acknowledged write.
    expect(await ok(consistent(3), 'SELECT count(), sum(amount) FROM visits')).to.equal('5\t150\n');
    // The local endpoint reads this replica (it may lag briefly) and refuses writes.
    let localText = '';
    for (let i = 0; i < 50 && localText !== '5\t150\n'; i++) {
      localText = (await curl(local(2), 'SELECT count(), sum(amount) FROM visits')).text;
      if (localText !== '5\t150\n') await new Promise((r) => setTimeout(r, 100));
    }
    expect(localText).to.equal('5\t150\n');
    const ro = await curl(local(2), "INSERT INTO visits VALUES (6, 60, '2026-11-03')");
    expect(ro.status).to.equal(500);
    expect(ro.text).to.match(/^Code: 164\./);

    // Kill node 3 (both processes, kill -9): the other two keep taking writes and consistent reads.
    process.kill(pid('raftd-3'), 'SIGKILL');
    process.kill(pid('rafthouse-3'), 'SIGKILL');
    // Groups node 3 led elect new leaders first (about a second). A write sent in that window may fail
    // (Code 999) and, for a sharded insert, may have landed in some groups already: wait, do not retry.
    await waitNoLeader(base + 2, apiToken, 3, 30_000);
    await ok(`${consistent(1)}?query=${encodeURIComponent('INSERT INTO visits FORMAT JSONEachRow')}`,
      '{"user_id":7,"amount":70,"day":"2026-11-04"}\n{"user_id":8,"amount":80,"day":"2026-11-04"}\n');
    expect(await ok(consistent(2), 'SELECT count(), sum(amount) FROM visits')).to.equal('7\t300\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(run.out()).to.include('[raftd 3] exited (signal SIGKILL); the other nodes keep serving');

    // Ctrl-C: everything stops, exit 0, no pid left, the ports are free again.
    run.proc.kill('SIGINT');
    expect(await run.exited).to.equal(0);
    expect(run.out()).to.include('Stopped.');
    expect(readdirSync(join(dir, 'run'))).to.deep.equal([]);
    expect(await portFree(base)).to.equal(true);

    // Second start: same data, same peers (from cluster.json); node 3 catches up and serves it too.
    run = startScript(['--data-dir', dir]);
    await waitUp(run, 180_000);
    expect(run.out()).to.include('Restarting a 3-node RaftHouse (4 groups, embedded engine)');
    expect(await ok(consistent(3), 'SELECT count(), sum(amount) FROM visits')).to.equal('7\t300\n');
    run.proc.kill('SIGTERM');
    expect(await run.exited).to.equal(0);
  });

  it('refuses bad options with one clear line', async () => {
    const r = startScript(['--data-dir', dir, '--nodes', 'zero']);
    expect(await r.exited).to.equal(2);
    expect(r.out()).to.match(/^error: --nodes must be an integer in 1\.\.9, got "zero"/);
    const m = startScript(['--data-dir', join(dir, 'other'), '--clickhouse-url', 'http://127.0.0.1:8123']);
    expect(await m.exited).to.equal(2);
    expect(m.out()).to.match(/needs one URL per node \(3\), got 1/);
  });
});
