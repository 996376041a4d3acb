import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { AppClient, AppError } from '../../../daemon/statemachine/index.js';
import { json, raw, snapshotChunks, TestApp } from './test-app.js';

const enc = new TextEncoder();

async function expectAppError(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(AppError);
    expect((e as AppError).code, (e as Error).message).to.equal(code);
    return e as AppError;
  }
  expect.fail(`expected AppError ${code}, the call succeeded`);
}

describe('statemachine: AppClient', function () {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function setup(proto: 'h1' | 'h2', opts: Partial<ConstructorParameters<typeof AppClient>[0]> = {}): Promise<{ app: TestApp; client: AppClient; url: string }> {
    const app = new TestApp(proto);
    const url = await app.listen();
    const client = new AppClient({ appUrl: url, retry: { initialMs: 10, maxMs: 50 }, ...opts });
    cleanups.push(() => app.close(), () => client.close());
    return { app, client, url };
  }

  describe('protocol detection', () => {
    it('speaks h2c to an HTTP/2 app and HTTP/1.1 to an HTTP/1.1-only app', async () => {
      const h2 = await setup('h2');
      expect(await h2.client.connect()).to.deep.equal({ protocol: 'h2c', reachable: true });
      expect(await h2.client.lastLogIndex(1)).to.equal(0);
      const h1 = await setup('h1');
      expect(await h1.client.connect()).to.deep.equal({ protocol: 'http/1.1', reachable: true });
      expect(await h1.client.lastLogIndex(1)).to.equal(0);
      expect(h1.client.healthy()).to.equal(true);
    });

    it('http2: never uses HTTP/1.1 even against an h2c app', async () => {
      const { client, app } = await setup('h2', { http2: 'never' });
      // An h2c-only server cannot parse HTTP/1.1: the call fails rather than silently using h2.
      expect((await client.connect()).protocol).to.equal('http/1.1');
      await client.lastLogIndex(1).catch(() => undefined);
      expect(app.calls).to.have.length(0);
    });

    it('does not throw when the app is down, reports unhealthy, and finds the app once it starts', async () => {
      const app = new TestApp('h2');
      const url = await app.listen();
      const port = app.port;
      await app.close(); // the port is now free: connection refused
      const client = new AppClient({ appUrl: url, retry: { initialMs: 10, maxMs: 40 } });
      cleanups.push(() => client.close());
      expect(await client.connect()).to.deep.equal({ protocol: 'http/1.1', reachable: false });
      expect(client.healthy()).to.equal(false);
      expect(client.currentProtocol()).to.equal(undefined);
      await expectAppError(client.lastLogIndex(1), 'APP_UNAVAILABLE');
      const again = new TestApp('h2');
      await again.listen(port);
      cleanups.push(() => again.close());
      // The background probe marks it healthy without any traffic from us.
      for (let i = 0; i < 100 && !client.healthy(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(client.healthy()).to.equal(true);
      expect(client.currentProtocol()).to.equal('h2c');
      expect(await client.lastLogIndex(1)).to.equal(0);
    });

    it('re-detects after the app restarts speaking another protocol', async () => {
      const first = new TestApp('h2');
      const url = await first.listen();
      const client = new AppClient({ appUrl: url, retry: { initialMs: 10, maxMs: 40 } });
      cleanups.push(() => client.close());
      expect((await client.connect()).protocol).to.equal('h2c');
      await first.close();
      const second = new TestApp('h1');
      await second.listen(first.port);
      cleanups.push(() => second.close());
      // Give the client a moment to see the session close, then it must switch to HTTP/1.1.
      await new Promise((r) => setTimeout(r, 20));
      expect(await client.lastLogIndex(1)).to.equal(0);
      expect(client.currentProtocol()).to.equal('http/1.1');
    });
  });

  for (const proto of ['h1', 'h2'] as const) {
    describe(`calls over ${proto === 'h1' ? 'HTTP/1.1' : 'h2c'}`, () => {
      it('sends every call to /raft/v1/<Call> with the group and parses the answers', async () => {
        const { client, app } = await setup(proto);
        const r = await client.updateEntries(7, [
          { index: 1, term: 1, data: enc.encode('5') },
          { index: 2, term: 1, data: enc.encode('bad') },
          { index: 3, term: 2, data: new Uint8Array(0) },
        ]);
        expect(r.lastLogIndex).to.equal(3);
        expect(r.results).to.deep.equal([
          { index: 1, ok: true, result: { sum: 5 } },
          { index: 2, ok: false, error: { code: 'BAD_COMMAND', message: 'bad' } },
          { index: 3, ok: true, result: { sum: 5 } },
        ]);
        const again = await client.updateEntries(7, [{ index: 3, term: 2, data: new Uint8Array(0) }]);
        expect(again.results).to.deep.equal([{ index: 3, ok: true, skipped: true }]);
        expect(await client.lastLogIndex(7)).to.equal(3);
        expect(await client.read(7, { q: 'x' })).to.deep.equal({ sum: 5, query: { q: 'x' } });
        expect(await client.prepareSnapshot(7)).to.deep.equal({ prepared: 'snap-3', lastLogIndex: 3 });
        expect(await client.sync(7)).to.equal(3);
        await client.deleteGroup(7);
        expect(await client.lastLogIndex(7)).to.equal(0);
        const sent = app.callsNamed('UpdateEntries')[0]!.body as { group: number; entries: Array<{ data: string }> };
        expect(sent.group).to.equal(7);
        expect(sent.entries.map((e) => e.data)).to.deep.equal([Buffer.from('5').toString('base64'), Buffer.from('bad').toString('base64'), '']);
        expect(app.calls.map((c) => c.name)).to.deep.equal(['UpdateEntries', 'UpdateEntries', 'LastLogIndex', 'Read', 'PrepareSnapshot', 'Sync', 'DeleteGroup', 'LastLogIndex']);
      });

      it('accepts an app URL that already ends with /raft/v1/', async () => {
        const { url } = await setup(proto);
        const c = new AppClient({ appUrl: `${url}/raft/v1/` });
        cleanups.push(() => c.close());
        expect(await c.lastLogIndex(3)).to.equal(0);
      });

      it('streams several MiB of SaveSnapshot to the caller while the app is still sending', async () => {
        const { client, app } = await setup(proto);
        app.snapshotBytes = 12 << 20;
        const expected = createHash('sha256');
        for (const c of snapshotChunks('p1', app.snapshotBytes)) expected.update(c);
        const got = createHash('sha256');
        let total = 0;
        let sentWhenFirstArrived = -1;
        let chunks = 0;
        for await (const chunk of client.saveSnapshot(1, 'p1')) {
          if (sentWhenFirstArrived < 0) sentWhenFirstArrived = app.snapshotSent;
          got.update(chunk);
          total += chunk.byteLength;
          chunks++;
        }
        expect(total).to.equal(app.snapshotBytes);
        expect(got.digest('hex')).to.equal(expected.digest('hex'));
        expect(chunks).to.be.greaterThan(4);
        // Back-pressure held the app back: we had the first bytes long before it wrote the last.
        expect(sentWhenFirstArrived).to.be.lessThan(app.snapshotBytes / 2);
        expect((app.callsNamed('SaveSnapshot')[0]!.body as { prepared: string }).prepared).to.equal('p1');
      });

      it('streams several MiB into RecoverFromSnapshot without holding the body', async () => {
        const { client, app } = await setup(proto);
        const total = 12 << 20;
        const expected = createHash('sha256');
        let receivedMidway = -1;
        async function* body(): AsyncGenerator<Uint8Array> {
          let off = 0;
          for (const c of snapshotChunks('r1', total)) {
            expected.update(c);
            off += c.length;
            if (off > total / 2 && receivedMidway < 0) {
              // The app must already be consuming the first half while we produce the rest.
              for (let i = 0; i < 200 && app.recoverReceived === 0; i++) await new Promise((r) => setTimeout(r, 5));
              receivedMidway = app.recoverReceived;
            }
            yield c;
          }
        }
        expect(await client.recoverFromSnapshot(4, body())).to.equal(1000);
        expect(receivedMidway).to.be.greaterThan(0);
        expect(app.recoverReceived).to.equal(total);
        expect(app.recoverDigest).to.equal(expected.digest('hex'));
        expect(app.callsNamed('RecoverFromSnapshot')[0]!.body).to.deep.equal({ group: 4 });
        // A whole buffer works too.
        expect(await client.recoverFromSnapshot(4, Buffer.from('tiny'))).to.equal(1000);
        expect(app.recoverReceived).to.equal(4);
      });

      it('a failing snapshot source is the caller\'s error, not the app\'s', async () => {
        const { client } = await setup(proto);
        async function* body(): AsyncGenerator<Uint8Array> {
          yield Buffer.alloc(1000);
          throw new Error('disk read failed');
        }
        try {
          await client.recoverFromSnapshot(4, body());
          expect.fail('should have thrown');
        } catch (e) {
          expect(e).not.to.be.instanceOf(AppError);
          expect((e as Error).message).to.equal('disk read failed');
        }
        expect(await client.lastLogIndex(4)).to.equal(0);
      });

      it('malformed answers are APP_PROTOCOL, error answers keep the app\'s code', async () => {
        // No background health probe during this test: it would consume the scripted answers.
        const { client, app } = await setup(proto, { retry: { initialMs: 60_000, maxMs: 60_000 } });
        const answers: Array<(res: Parameters<typeof json>[0]) => void> = [
          (res) => raw(res, 200, 'not json at all', 'text/plain'),
          (res) => json(res, 200, { lastLogIndex: 'seven' }),
          (res) => json(res, 200, [1, 2]),
          (res) => json(res, 200, { results: [{ index: 99, ok: true, result: 1 }], lastLogIndex: 1 }),
          (res) => json(res, 200, { results: [], lastLogIndex: 1 }),
          (res) => json(res, 200, { results: [{ index: 1, ok: false }], lastLogIndex: 1 }),
          (res) => json(res, 200, { result: 1 }),
        ];
        app.hook = (_name, _body, res) => {
          answers.shift()!(res);
          return true;
        };
        const one = [{ index: 1, term: 1, data: enc.encode('1') }];
        await expectAppError(client.lastLogIndex(1), 'APP_PROTOCOL');
        await expectAppError(client.lastLogIndex(1), 'APP_PROTOCOL');
        await expectAppError(client.lastLogIndex(1), 'APP_PROTOCOL');
        expect((await expectAppError(client.updateEntries(1, one), 'APP_PROTOCOL')).message).to.match(/not sent: 99/);
        expect((await expectAppError(client.updateEntries(1, one), 'APP_PROTOCOL')).message).to.match(/no result for applied index 1/);
        await expectAppError(client.updateEntries(1, one), 'APP_PROTOCOL');
        await expectAppError(client.prepareSnapshot(1), 'APP_PROTOCOL');
        expect(client.healthy()).to.equal(false);

        app.hook = (_n, _b, res) => {
          json(res, 409, { error: { code: 'WRONG_STATE', message: 'nope' } });
          return true;
        };
        const e = await expectAppError(client.read(1, {}), 'APP_ERROR');
        expect(e.appCode).to.equal('WRONG_STATE');
        expect(e.status).to.equal(409);
        expect(e.retryable).to.equal(false);
        expect(e.toRaftdError().code).to.equal('APP_ERROR');
        // Still unhealthy: the calls that answered garbage have not succeeded since.
        expect(client.healthy()).to.equal(false);
        app.hook = undefined;
        expect(await client.lastLogIndex(1)).to.equal(0);
        expect(await client.prepareSnapshot(1)).to.deep.equal({ prepared: 'snap-0', lastLogIndex: 0 });
        // A failing UpdateEntries is one group's apply failing: its applier reports it, per group.
        expect(client.healthy(), 'UpdateEntries failures are the group\'s, not the app\'s').to.equal(true);
        await client.updateEntries(1, one);
        expect(client.healthy()).to.equal(true);

        app.hook = (_n, _b, res) => {
          raw(res, 503, '<html>busy</html>', 'text/html');
          return true;
        };
        const e5 = await expectAppError(client.read(1, {}), 'APP_ERROR');
        expect(e5.appCode).to.equal('HTTP_503');
        expect(e5.retryable).to.equal(true);
        expect(client.healthy()).to.equal(false);
      });

      it('an answer past maxResponseBytes is APP_PROTOCOL, with or without content-length; one within it is read', async () => {
        const { client, app, url } = await setup(proto, { maxResponseBytes: 32 << 10 });
        const pad = 'x'.repeat(64 << 10);
        let chunked = false;
        app.hook = (name, _b, res) => {
          if (name !== 'Read') return false;
          const text = JSON.stringify({ result: pad });
          if (chunked) {
            res.writeHead(200, { 'content-type': 'application/json' });
            for (let off = 0; off < text.length; off += 4096) (res as { write(s: string): boolean }).write(text.slice(off, off + 4096));
            res.end();
          } else raw(res, 200, text);
          return true;
        };
        const sized = await expectAppError(client.read(1, {}), 'APP_PROTOCOL');
        expect(sized.message).to.match(/exceeds 32768 bytes/);
        chunked = true;
        const streamed = await expectAppError(client.read(1, {}), 'APP_PROTOCOL');
        expect(streamed.message).to.match(/exceeds 32768 bytes/);
        const roomy = new AppClient({ appUrl: url, maxResponseBytes: 1 << 20 });
        cleanups.push(() => roomy.close());
        expect(await roomy.read(1, {})).to.equal(pad);
      });

      it('gives each call a deadline (APP_TIMEOUT) and stays usable afterwards', async () => {
        const { client, app } = await setup(proto, { callTimeoutMs: 150 });
        let stall = true;
        app.hook = async () => {
          if (!stall) return false;
          await new Promise<void>((r) => {
            const t = setTimeout(r, 1500);
            cleanups.push(() => {
              clearTimeout(t); // no stray timer into the next test
              r();
            });
          });
          return false;
        };
        const t0 = Date.now();
        await expectAppError(client.lastLogIndex(1), 'APP_TIMEOUT');
        expect(Date.now() - t0).to.be.lessThan(1000); // gave up well before the app answered
        stall = false;
        expect(await client.lastLogIndex(1)).to.equal(0);
        expect(client.healthy()).to.equal(true);
      });

      it('close() aborts calls in flight and leaves no sockets or timers behind', async () => {
        // Sockets and sessions (timers are checked by the separate-process test below).
        const handles = (): string[] => process.getActiveResourcesInfo().filter((r) => /TCP|Http2/.test(r)).sort();
        const before = handles();
        const app = new TestApp(proto);
        const url = await app.listen();
        const client = new AppClient({ appUrl: url });
        await client.connect();
        await client.lastLogIndex(1);
        app.hook = async () => {
          await new Promise((r) => setTimeout(r, 300));
          return false;
        };
        const pending = client.lastLogIndex(1).then(
          () => expect.fail('the call in flight should fail on close'),
          (e: unknown) => e,
        );
        await new Promise((r) => setTimeout(r, 30));
        await client.close();
        const err = await pending;
        expect(err).to.be.instanceOf(AppError);
        expect((err as AppError).code).to.equal('APP_UNAVAILABLE');
        await expectAppError(client.lastLogIndex(1), 'APP_UNAVAILABLE');
        await new Promise((r) => setTimeout(r, 350)); // let the app's stalled handler finish
        await app.close();
        await new Promise((r) => setTimeout(r, 30)); // handle teardown completes a tick after close
        expect(handles()).to.deep.equal(before);
      });

      it('a process using the client exits by itself after close() (no referenced handle left)', async () => {
        const here = fileURLToPath(import.meta.url);
        const script = path.join(path.dirname(here), `close-scenario${path.extname(here)}`);
        const args = here.endsWith('.ts') ? ['--import', 'tsx', script, proto] : [script, proto];
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const code = await new Promise<number | null>((resolve) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            resolve(-1);
          }, 15_000);
          child.once('exit', (c) => {
            clearTimeout(t);
            resolve(c);
          });
        });
        expect(code, `did not exit on its own: ${out}`).to.equal(0);
        expect(out).to.contain('done true APP_UNAVAILABLE');
      });
    });
  }
});
