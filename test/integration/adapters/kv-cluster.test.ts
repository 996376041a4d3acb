// End to end with real processes: 3 raftd nodes, each beside its own KV adapter; the SDK client
// and the KV front talk to raftd's client API. An adapter is kill -9'd mid-stream and restarted:
// every replica must end with the same state, holding every acknowledged write. Everything runs
// secured as in production: raftd with --secrets-dir, the adapters with its app secret.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import * as path from 'node:path';
import { RaftdClient, RaftdError } from '../../../adapters/sdk/client.js';
import { startKvFront } from '../../../adapters/kv/front.js';
import { AppProcess, freePort, nodeArgs, root, tmpDir } from './procs.js';
import { until } from '../../support/until.js';
import { ensureSecretsDir, generateSecret, readSecretFile } from '../../../protocol/secrets.js';
import { signAppRequest } from '../../../protocol/app-auth.js';

interface Node {
  id: number;
  http: string;
  app: AppProcess;
  proc?: ChildProcess;
  client: RaftdClient;
}

describe('KV adapter + SDK client + front with real raftd (3 nodes)', function () {
  this.timeout(120_000);
  const dir = tmpDir('kvcluster-');
  const nodes: Node[] = [];
  const secrets = ensureSecretsDir(path.join(dir, 'secrets'));
  const token = readSecretFile(secrets.apiToken, 'api token');
  const appSecret = readSecretFile(secrets.appSecret, 'app secret');

  before(async () => {
    const raft = await Promise.all([1, 2, 3].map(() => freePort()));
    const http = await Promise.all([1, 2, 3].map(() => freePort()));
    const apps = await Promise.all([1, 2, 3].map(() => freePort()));
    const peers = raft.map((p, i) => `${i + 1}=127.0.0.1:${p}`).join(',');
    for (let i = 0; i < 3; i++) {
      const d = path.join(dir, `n${i + 1}`);
      const app = new AppProcess(dir, apps[i]!, [process.execPath, ...nodeArgs('adapters/kv/main.ts'), '--listen', `127.0.0.1:${apps[i]}`, '--data-dir', path.join(d, 'kv')], `kv${i + 1}`, {
        RAFTD_APP_SECRET_FILE: secrets.appSecret,
      });
      nodes.push({ id: i + 1, http: `http://127.0.0.1:${http[i]}`, app, client: new RaftdClient({ url: `http://127.0.0.1:${http[i]}`, token, timeoutMs: 15_000 }) });
    }
    await Promise.all(nodes.map((n) => n.app.start()));
    for (const [i, n] of nodes.entries()) {
      const log = createWriteStream(path.join(dir, `raftd${n.id}.log`));
      n.proc = spawn(process.execPath, [...nodeArgs('daemon/main.ts'), '--id', String(n.id), '--raft-addr', `127.0.0.1:${raft[i]}`, '--http-addr', `127.0.0.1:${http[i]}`, '--peers', peers, '--data-dir', path.join(dir, `n${n.id}`, 'raftd'), '--app-url', n.app.url, '--groups', '1', '--secrets-dir', path.join(dir, 'secrets')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      n.proc.stdout!.pipe(log);
      n.proc.stderr!.pipe(log);
    }
    await until('a leader for group 1 on every node', 60_000, async () => {
      const all = await Promise.all(nodes.map((n) => n.client.status()));
      const leaders = all.map((s) => (s.groups as Array<{ group: number; leader: number }>).find((g) => g.group === 1)?.leader ?? 0);
      return leaders.every((l) => l > 0 && l === leaders[0]) ? leaders[0] : undefined;
    }, 100);
  });

  after(() => {
    for (const n of nodes) {
      n.proc?.kill('SIGKILL');
      n.app.stop();
      n.client.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function leaderId(): Promise<number> {
    const s = await nodes[0]!.client.status();
    return (s.groups as Array<{ group: number; leader: number }>).find((g) => g.group === 1)!.leader;
  }

  it('client: propose, linearizable read on another node, app errors with their code and index, unknown group', async () => {
    const p = await nodes[0]!.client.proposeJson(1, { op: 'set', key: 'hello', value: 'world' });
    expect(p.index).to.be.a('number');
    expect(p.result).to.deep.equal({ ok: true });
    expect(await nodes[1]!.client.read(1, { op: 'get', key: 'hello' }, 'linearizable')).to.deep.equal({ value: 'world' });
    const err = await nodes[2]!.client.proposeJson(1, { op: 'nope', key: 'x' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(RaftdError);
    expect((err as RaftdError).code).to.equal('BAD_COMMAND');
    expect((err as RaftdError).index).to.be.greaterThan(p.index);
    const missing = await nodes[0]!.client.read(77, { op: 'get', key: 'x' }).catch((e: unknown) => e);
    expect((missing as RaftdError).code).to.equal('GROUP_NOT_FOUND');
    expect(await nodes[2]!.client.barrier(1)).to.be.at.least((err as RaftdError).index!);
  });

  it('client with noForward follows the NOT_LEADER hint from a follower; it fails over past a dead URL', async () => {
    const leader = await leaderId();
    const follower = nodes.find((n) => n.id !== leader)!;
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = new RaftdClient({ url: [dead, follower.http], token, noForward: true });
    try {
      const r = await c.proposeJson(1, { op: 'set', key: 'nf', value: 'yes' });
      expect(r.result).to.deep.equal({ ok: true });
      expect(await c.read(1, { op: 'get', key: 'nf' })).to.deep.equal({ value: 'yes' });
    } finally {
      c.close();
    }
  });

  it('front: set, get at each level, cas (200 then 409), delete', async () => {
    const front = await startKvFront({ port: 0, raftd: nodes.map((n) => n.http), token });
    const j = async (p: string, init?: RequestInit): Promise<[number, unknown]> => {
      const r = await fetch(front.url + p, init);
      return [r.status, await r.json()];
    };
    try {
      expect(await j('/key', { method: 'POST', body: JSON.stringify({ a: '1', b: '2' }) })).to.deep.equal([200, {}]);
      expect(await j('/key/a?level=linearizable')).to.deep.equal([200, { a: '1' }]);
      expect(await j('/key/b?level=lease')).to.deep.equal([200, { b: '2' }]);
      expect((await j('/key/b?level=stale'))[0]).to.equal(200);
      expect(await j('/cas/a', { method: 'POST', body: JSON.stringify({ expect: '1', value: '3' }) })).to.deep.equal([200, { swapped: true, value: '3' }]);
      expect(await j('/cas/a', { method: 'POST', body: JSON.stringify({ expect: '1', value: '4' }) })).to.deep.equal([409, { swapped: false, value: '3' }]);
      expect(await j('/key/a', { method: 'DELETE' })).to.deep.equal([200, { deleted: true }]);
      expect(await j('/key/a')).to.deep.equal([200, { a: null }]);
      expect((await j('/key/a?level=sometimes'))[0]).to.equal(400);
    } finally {
      await front.close();
    }
  });

  it('a forged UpdateEntries at LastLogIndex + 1 sent straight to an adapter is refused (no, wrong, bearer, replayed credentials); the real entry lands on every replica', async () => {
    const writer = nodes[0]!.client;
    const settle = async (): Promise<void> => {
      const target = await writer.barrier(1);
      for (const n of nodes) await until(`node ${n.id} applied ${target}`, 30_000, async () => ((await n.client.barrier(1)) >= target ? true : undefined), 100);
    };
    await writer.proposeJson(1, { op: 'set', key: 'forged', value: 'real-1' });
    await settle();
    const victim = nodes[2]!;
    const post = async (call: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; answer: Record<string, unknown> }> => {
      const res = await fetch(`${victim.app.url}/raft/v1/${call}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      return { status: res.status, answer: (await res.json()) as Record<string, unknown> };
    };
    const signed = (call: string, body: Buffer, secret = appSecret): Record<string, string> => signAppRequest(secret, 'POST', `/raft/v1/${call}`, body);
    const lliBody = Buffer.from('{"group":1}');
    const lastIndex = async (): Promise<number> => (await post('LastLogIndex', lliBody, signed('LastLogIndex', lliBody))).answer['lastLogIndex'] as number;
    const last = await lastIndex();
    expect(last).to.be.greaterThan(0);

    const data = Buffer.from(JSON.stringify({ op: 'set', key: 'forged', value: '666' })).toString('base64');
    const forged = Buffer.from(JSON.stringify({ group: 1, entries: [{ index: last + 1, term: 1, data }] }));
    const refusals: Array<[string, Record<string, string>]> = [
      ['no credentials', {}],
      ['a wrong secret', signed('UpdateEntries', forged, generateSecret())],
      ['the secret itself as a bearer token', { authorization: `Bearer ${appSecret}` }],
      ['a signature for another call', signed('LastLogIndex', forged)],
    ];
    for (const [what, headers] of refusals) {
      const r = await post('UpdateEntries', forged, headers);
      expect(r.status, what).to.equal(401);
      expect((r.answer['error'] as { code: string }).code, what).to.equal('UNAUTHENTICATED');
    }
    // A signed call as raftd sent it (a redelivery of the last applied entry, answered "skipped"),
    // captured: sent again it is a replay; its headers on the forged body are an alteration.
    const redelivery = Buffer.from(JSON.stringify({ group: 1, entries: [{ index: last, term: 1, data: '' }] }));
    const captured = signed('UpdateEntries', redelivery);
    expect((await post('UpdateEntries', redelivery, captured)).answer['results']).to.deep.equal([{ index: last, skipped: true }]);
    const replay = await post('UpdateEntries', redelivery, captured);
    expect([replay.status, (replay.answer['error'] as { code: string }).code]).to.deep.equal([401, 'REPLAYED']);
    const altered = await post('UpdateEntries', forged, signed('UpdateEntries', redelivery));
    expect([altered.status, (altered.answer['error'] as { code: string }).code]).to.deep.equal([401, 'UNAUTHENTICATED']);
    expect(await lastIndex()).to.equal(last); // nothing was applied

    // raftd's real entry at that index is applied, not "skipped", on every replica.
    const real = await writer.proposeJson(1, { op: 'set', key: 'forged', value: 'real-2' });
    expect(real.index).to.be.greaterThan(last);
    await settle();
    const values = await Promise.all(nodes.map((n) => n.client.read(1, { op: 'get', key: 'forged' }, 'stale')));
    expect(values).to.deep.equal(nodes.map(() => ({ value: 'real-2' })));
  });

  it('a follower adapter killed -9 mid-stream and restarted ends identical to the others, every acked write present', async () => {
    const leader = await leaderId();
    const victim = nodes.find((n) => n.id !== leader)!;
    const writer = nodes.find((n) => n.id === leader)!.client;
    const acked = new Map<string, string>();
    const write = async (i: number): Promise<void> => {
      const key = `w${i % 40}`;
      await writer.proposeJson(1, { op: 'set', key, value: String(i) });
      acked.set(key, String(i));
    };
    let i = 0;
    for (; i < 60; i++) await write(i);
    victim.app.stop(); // kill -9
    for (; i < 120; i++) await write(i);
    await victim.app.start();
    for (; i < 150; i++) await write(i);
    const scans = await Promise.all(
      nodes.map(async (n) => {
        const target = await writer.barrier(1);
        await until(`node ${n.id} applied ${target}`, 30_000, async () => ((await n.client.barrier(1)) >= target ? true : undefined), 100);
        return n.client.read<{ items: Array<{ key: string; value: string }> }>(1, { op: 'scan', prefix: 'w' }, 'stale');
      }),
    );
    const expected = [...acked].map(([key, value]) => ({ key, value })).sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const s of scans) expect(s.items).to.deep.equal(expected);
  });
});
