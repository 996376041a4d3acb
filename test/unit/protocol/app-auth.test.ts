// The state-machine API's signature (protocol/app-auth.ts): the documented test vector, the
// verifier's refusals, and raftd's AppClient against a real SDK server on a socket (HTTP/1.1 and
// h2c, JSON and binary bodies, snapshots streamed both ways) with the right and a wrong secret.

import { expect } from 'chai';
import { AppClient, AppError } from '../../../daemon/statemachine/index.js';
import { serveStateMachine, appVerifier } from '../../../adapters/sdk/server.js';
import { KvAdapter } from '../../../adapters/kv/adapter.js';
import { AppAuthError, AppRequestVerifier, canonicalRequest, sha256Hex, signAppRequest } from '../../../protocol/app-auth.js';
import { SecretError } from '../../../protocol/secrets.js';
import { TEST_APP_SECRET } from '../../support/app-secret.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';

const entry = (index: number, value: string) => ({ index, term: 1, data: Buffer.from(JSON.stringify({ op: 'set', key: `k${index}`, value })) });

describe('state-machine API authentication', () => {
  it('matches the test vector of docs/state-machine-api.md', () => {
    const body = Buffer.from('{"group":1}');
    const content = sha256Hex(body);
    expect(content).to.equal('246b1eba5d86e22e490894b9b51b44e76a65da27734ff6ad0ae867fdcabe6e7f');
    const canonical = canonicalRequest('POST', '/raft/v1/LastLogIndex', '1765000000000', 'q1w2e3r4t5y6u7i8o9p0aa', content);
    expect(createHmac('sha256', 'example-app-secret-0123456789').update(canonical).digest('hex')).to.equal('e0bd388977ad54a8664088de2291bfe621ad32dd1e43f77ae51710e7a9217470');
    const v = new AppRequestVerifier({ secret: 'example-app-secret-0123456789', now: () => 1765000000000 + 59_000 });
    const headers = {
      authorization: 'RAFTD-HMAC-SHA256 e0bd388977ad54a8664088de2291bfe621ad32dd1e43f77ae51710e7a9217470',
      'x-raftd-date': '1765000000000', 'x-raftd-nonce': 'q1w2e3r4t5y6u7i8o9p0aa', 'x-raftd-content-sha256': content,
    };
    v.verifyBody(v.verifyHeaders('POST', '/raft/v1/LastLogIndex', headers), body);
  });

  it('refuses missing, wrong, stale, replayed, misdirected and altered calls with stable codes', () => {
    let now = 1_800_000_000_000;
    const v = new AppRequestVerifier({ secret: TEST_APP_SECRET, now: () => now });
    const body = Buffer.from('{"group":2}');
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        expect(e).to.be.instanceOf(AppAuthError);
        return `${(e as AppAuthError).status} ${(e as AppAuthError).code}`;
      }
      return 'accepted';
    };
    const path = '/raft/v1/UpdateEntries';
    expect(code(() => v.verifyHeaders('POST', path, {}))).to.equal('401 UNAUTHENTICATED');
    expect(code(() => v.verifyHeaders('POST', path, { authorization: `Bearer ${TEST_APP_SECRET}` }))).to.equal('401 UNAUTHENTICATED');
    expect(code(() => v.verifyHeaders('POST', path, signAppRequest('wrong-secret-wrong-secret', 'POST', path, body, now)))).to.equal('401 UNAUTHENTICATED');
    expect(code(() => v.verifyHeaders('POST', '/raft/v1/DeleteGroup', signAppRequest(TEST_APP_SECRET, 'POST', path, body, now)))).to.equal('401 UNAUTHENTICATED');
    expect(code(() => v.verifyHeaders('POST', path, signAppRequest(TEST_APP_SECRET, 'POST', path, body, now - 61_000)))).to.equal('401 UNAUTHENTICATED');
    expect(code(() => v.verifyHeaders('POST', path, signAppRequest(TEST_APP_SECRET, 'POST', path, body, now + 61_000)))).to.equal('401 UNAUTHENTICATED');
    expect(code(() => v.verifyHeaders('POST', path, signAppRequest(TEST_APP_SECRET, 'POST', path, undefined, now)))).to.equal('401 UNAUTHENTICATED'); // UNSIGNED-PAYLOAD off RecoverFromSnapshot
    const ok = signAppRequest(TEST_APP_SECRET, 'POST', path, body, now);
    const call = v.verifyHeaders('POST', path, ok);
    expect(code(() => v.verifyBody(call, Buffer.from('{"group":3}')))).to.equal('401 UNAUTHENTICATED');
    v.verifyBody(call, body);
    expect(code(() => v.verifyHeaders('POST', path, ok))).to.equal('401 REPLAYED');
    // Nonces are forgotten once their date left the window, when the date alone refuses them.
    now += 61_000;
    expect(code(() => v.verifyHeaders('POST', path, ok))).to.equal('401 UNAUTHENTICATED');
    v.verifyHeaders('POST', path, signAppRequest(TEST_APP_SECRET, 'POST', path, body, now));
    expect(v.nonceCount()).to.equal(1);
    const streamed = '/raft/v1/RecoverFromSnapshot?group=4';
    expect(v.verifyHeaders('POST', streamed, signAppRequest(TEST_APP_SECRET, 'POST', streamed, undefined, now)).contentSha256).to.equal(undefined);
    const full = new AppRequestVerifier({ secret: TEST_APP_SECRET, maxNonces: 1, now: () => now });
    full.verifyHeaders('POST', path, signAppRequest(TEST_APP_SECRET, 'POST', path, body, now));
    expect(code(() => full.verifyHeaders('POST', path, signAppRequest(TEST_APP_SECRET, 'POST', path, body, now)))).to.equal('503 AUTH_BUSY');
  });

  it('the SDK server will not start without a secret unless insecure', () => {
    expect(() => appVerifier({}, {})).to.throw(SecretError, /no app secret/);
    expect(() => appVerifier({ appSecret: 'short' }, {})).to.throw(SecretError);
    expect(appVerifier({ insecure: true }, {})).to.equal(undefined);
    expect(appVerifier({}, { RAFTD_APP_SECRET: TEST_APP_SECRET })).to.be.instanceOf(AppRequestVerifier);
  });

  for (const http2 of ['always', 'never'] as const) {
    it(`AppClient signs every call (${http2 === 'always' ? 'h2c' : 'HTTP/1.1'}: JSON and binary updates, reads, snapshots both ways); a wrong secret gets 401, retryable, nothing applied`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'app-auth-'));
      const kv = new KvAdapter({ dataDir: dir, fsync: 'never' });
      const served = await serveStateMachine(kv, { port: 0, appSecret: TEST_APP_SECRET });
      const good = new AppClient({ appUrl: served.url, http2, secret: TEST_APP_SECRET, retry: { initialMs: 10, maxMs: 50 } });
      const bad = new AppClient({ appUrl: served.url, http2, secret: 'not-the-app-secret-at-all', retry: { initialMs: 10, maxMs: 50 } });
      const json = new AppClient({ appUrl: served.url, http2, secret: TEST_APP_SECRET, entries: 'json' });
      try {
        expect(await good.lastLogIndex(1)).to.equal(0);
        expect(good.entriesEncoding()).to.equal('binary');
        expect((await good.updateEntries(1, [entry(1, 'a'), entry(2, 'b')])).lastLogIndex).to.equal(2);
        expect((await json.updateEntries(1, [entry(3, 'c')])).lastLogIndex).to.equal(3);
        expect(await good.read(1, { op: 'get', key: 'k3' })).to.deep.equal({ value: 'c' });
        const { prepared } = await good.prepareSnapshot(1);
        for (const g of [2, 3]) expect(await good.lastLogIndex(g)).to.equal(0); // (the KV adapter recovers only into a group it has seen)
        expect(await good.recoverFromSnapshot(2, good.saveSnapshot(1, prepared))).to.equal(3); // streamed: UNSIGNED-PAYLOAD
        const bytes: Uint8Array[] = [];
        for await (const c of good.saveSnapshot(1, prepared)) bytes.push(c);
        expect(await good.recoverFromSnapshot(3, Buffer.concat(bytes))).to.equal(3); // whole: digest checked at the end

        // A whole snapshot body whose bytes differ from the signed digest: the recovery fails, the group stays empty.
        const path = '/raft/v1/RecoverFromSnapshot?group=4';
        expect(await good.lastLogIndex(4)).to.equal(0);
        const swapped = await fetch(served.url + path, { method: 'POST', headers: signAppRequest(TEST_APP_SECRET, 'POST', path, Buffer.from('other bytes')), body: Buffer.concat(bytes) });
        expect(swapped.status).to.equal(401);
        expect(await good.lastLogIndex(4)).to.equal(0);

        const err = await bad.updateEntries(1, [entry(4, 'forged')]).catch((e: unknown) => e);
        expect(err).to.be.instanceOf(AppError);
        expect([(err as AppError).status, (err as AppError).appCode, (err as AppError).retryable]).to.deep.equal([401, 'UNAUTHENTICATED', true]);
        expect(bad.healthy()).to.equal(false);
        expect(await good.lastLogIndex(1)).to.equal(3);
        expect(await good.read(1, { op: 'get', key: 'k4' })).to.deep.equal({ value: null });
      } finally {
        await Promise.all([good.close(), bad.close(), json.close()]);
        await served.close();
        await kv.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
