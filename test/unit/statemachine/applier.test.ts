import { expect } from 'chai';
import { AppClient, AppError, ApplyOrderError, GroupApplier, type AppEntry, type EntryResult } from '../../../daemon/statemachine/index.js';
import { json, TestApp } from './test-app.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
/** A full garbage collection, on demand (the flag above makes `gc` exist in new contexts). */
const collectGarbage = runInNewContext('gc') as () => void;

const enc = new TextEncoder();

function entries(from: number, to: number, term = 1): AppEntry[] {
  const out: AppEntry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, data: enc.encode(String(i)) });
  return out;
}

function sumTo(n: number): number {
  return (n * (n + 1)) / 2;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Harness {
  app: TestApp;
  client: AppClient;
  applier: GroupApplier;
  /** Every onApplied call, in order. */
  reports: Array<{ last: number; results: Map<number, EntryResult> }>;
  errors: AppError[];
  /** All reported results by index; fails the test on a second report of one index. */
  results: Map<number, EntryResult>;
}

for (const proto of ['h1', 'h2'] as const) {
  describe(`statemachine: GroupApplier over ${proto === 'h1' ? 'HTTP/1.1' : 'h2c'}`, function () {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function setup(
      opts: { sync?: boolean; maxBatchEntries?: number; callTimeoutMs?: number; group?: number; refetch?: (lo: number, hi: number) => AppEntry[] | undefined; lingerMs?: number; lazy?: () => boolean; onGap?: (lo: number, hi: number) => void } = {},
    ): Promise<Harness> {
      const app = new TestApp(proto);
      const url = await app.listen();
      const client = new AppClient({ appUrl: url, retry: { initialMs: 10, maxMs: 80 }, callTimeoutMs: opts.callTimeoutMs ?? 5000 });
      const h: Harness = { app, client, applier: undefined as unknown as GroupApplier, reports: [], errors: [], results: new Map() };
      h.applier = new GroupApplier(opts.group ?? 1, client, {
        sync: opts.sync ?? false,
        maxBatchEntries: opts.maxBatchEntries ?? 10_000,
        onApplied: (last, results) => {
          h.reports.push({ last, results });
          for (const [i, r] of results) {
            // Never twice, not even entries an app lost and got again (refetch): their proposals
            // were settled the first time, and raftd_entries_applied_total counts each once.
            expect(h.results.has(i), `index ${i} reported twice`).to.equal(false);
            h.results.set(i, r);
          }
        },
        onError: (err) => h.errors.push(err),
        ...(opts.refetch ? { refetch: opts.refetch } : {}),
        ...(opts.lingerMs !== undefined ? { lingerMs: opts.lingerMs } : {}),
        ...(opts.lazy ? { lazy: opts.lazy } : {}),
        ...(opts.onGap ? { onGap: opts.onGap } : {}),
      });
      cleanups.push(() => app.close(), () => client.close(), () => h.applier.stop());
      return h;
    }

    function expectAppliedInOrder(h: Harness, group: number, n: number): void {
      const s = h.app.state(group);
      expect(s.appliedOrder).to.deep.equal(Array.from({ length: n }, (_, i) => i + 1));
      expect(s.sum).to.equal(sumTo(n));
      expect(h.applier.appliedIndex()).to.equal(n);
      expect(h.applier.queuedEntries()).to.equal(0);
    }

    it('batches many small enqueues into few UpdateEntries calls, in order, without gaps', async () => {
      const h = await setup();
      await h.applier.start();
      h.app.applyDelayMs = 30; // while one call is in flight, the rest pile up
      for (let i = 1; i <= 2000; i++) h.applier.enqueue(entries(i, i));
      await h.applier.waitApplied(2000, 5000);
      expectAppliedInOrder(h, 1, 2000);
      const calls = h.app.callsNamed('UpdateEntries');
      expect(calls.length).to.be.at.most(3);
      // Each call's entries continue exactly where the previous call ended.
      let next = 1;
      for (const c of calls) {
        for (const e of (c.body as { entries: Array<{ index: number }> }).entries) expect(e.index).to.equal(next++);
      }
      expect(h.results.size).to.equal(2000);
      expect(h.results.get(2000)).to.deep.equal({ index: 2000, ok: true, result: { sum: sumTo(2000) } });
      expect(h.reports.at(-1)!.last).to.equal(2000);
      expect(h.errors).to.deep.equal([]);
    });

    describe('lingering (a follower batching its applies)', () => {
      const sizes = (h: Harness): number[] => h.app.callsNamed('UpdateEntries').map((c) => (c.body as { entries: unknown[] }).entries.length);
      const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

      it('while lazy, entries committed within lingerMs reach the app in one call, after the linger', async () => {
        const h = await setup({ lingerMs: 300, lazy: () => true });
        await h.applier.start();
        const t0 = performance.now();
        h.applier.enqueue(entries(1, 1));
        await sleep(30);
        h.applier.enqueue(entries(2, 2));
        await sleep(30);
        h.applier.enqueue(entries(3, 4));
        await sleep(60);
        expect(sizes(h), 'nothing sent while lingering').to.deep.equal([]);
        await until(() => h.applier.appliedIndex() === 4);
        expect(performance.now() - t0).to.be.at.least(250);
        expect(sizes(h)).to.deep.equal([4]);
        expectAppliedInOrder(h, 1, 4);
        expect([...h.results.keys()]).to.deep.equal([1, 2, 3, 4]);
      });

      it('a waitApplied caller (a read) ends the linger at once', async () => {
        const h = await setup({ lingerMs: 10_000, lazy: () => true });
        await h.applier.start();
        h.applier.enqueue(entries(1, 3));
        await sleep(30);
        expect(sizes(h)).to.deep.equal([]);
        const t0 = performance.now();
        await h.applier.waitApplied(3, 5000);
        expect(performance.now() - t0).to.be.below(2000);
        expect(sizes(h)).to.deep.equal([3]);
      });

      it('nudge() sends at once when lazy() turned false (the replica became leader)', async () => {
        let lazy = true;
        const h = await setup({ lingerMs: 10_000, lazy: () => lazy });
        await h.applier.start();
        h.applier.enqueue(entries(1, 2));
        await sleep(50);
        expect(sizes(h)).to.deep.equal([]);
        lazy = false;
        h.applier.nudge();
        await until(() => h.applier.appliedIndex() === 2, 2000);
        expect(sizes(h)).to.deep.equal([2]);
      });

      it('does not linger when lazy() is false, nor hold back a full batch', async () => {
        const eager = await setup({ lingerMs: 10_000, lazy: () => false });
        await eager.applier.start();
        eager.applier.enqueue(entries(1, 2));
        await until(() => eager.applier.appliedIndex() === 2, 2000);

        const full = await setup({ lingerMs: 10_000, lazy: () => true, maxBatchEntries: 10, group: 2 });
        await full.applier.start();
        full.applier.enqueue(entries(1, 25));
        await until(() => full.applier.appliedIndex() === 20, 2000);
        expect(sizes(full).slice(0, 2)).to.deep.equal([10, 10]);
        await sleep(50);
        expect(full.applier.appliedIndex(), 'the last 5 linger').to.equal(20);
      });

      it('stop() ends a linger without sending', async () => {
        const h = await setup({ lingerMs: 10_000, lazy: () => true });
        await h.applier.start();
        h.applier.enqueue(entries(1, 2));
        await sleep(30);
        const t0 = performance.now();
        await h.applier.stop();
        expect(performance.now() - t0).to.be.below(2000);
        expect(sizes(h)).to.deep.equal([]);
      });
    });

    it('keeps no confirmed entry alive (their data is garbage once the app has it)', async () => {
      const h = await setup();
      await h.applier.start();
      // Refs only: nothing of the test holds the entries once they are enqueued.
      const refs = ((): Array<WeakRef<Uint8Array>> => {
        const es = entries(1, 20);
        h.applier.enqueue(es);
        return es.map((e) => new WeakRef(e.data));
      })();
      await h.applier.waitApplied(20, 5000);
      await new Promise((r) => setImmediate(r));
      collectGarbage();
      const alive = refs.filter((r) => r.deref() !== undefined).length;
      expect(alive, 'confirmed entries still referenced').to.equal(0);
    });

    it('respects maxBatchEntries', async () => {
      const h = await setup({ maxBatchEntries: 100 });
      await h.applier.start();
      h.applier.enqueue(entries(1, 350));
      await h.applier.waitApplied(350, 5000);
      expectAppliedInOrder(h, 1, 350);
      expect(h.app.callsNamed('UpdateEntries').map((c) => (c.body as { entries: unknown[] }).entries.length)).to.deep.equal([100, 100, 100, 50]);
    });

    it('start() takes the app\'s last index; entries at or below it are reported skipped, never sent', async () => {
      const h = await setup({ group: 3 });
      Object.assign(h.app.state(3), { lastIndex: 5, durable: 5 });
      await h.applier.start();
      expect(h.applier.appliedIndex()).to.equal(5);
      h.applier.enqueue(entries(4, 8));
      await h.applier.waitApplied(8, 5000);
      const sent = (h.app.callsNamed('UpdateEntries')[0]!.body as { entries: Array<{ index: number }> }).entries.map((e) => e.index);
      expect(sent).to.deep.equal([6, 7, 8]);
      expect(h.results.get(4)).to.deep.equal({ index: 4, ok: true, skipped: true });
      expect(h.results.get(5)).to.deep.equal({ index: 5, ok: true, skipped: true });
      expect(h.results.get(6)).to.include({ ok: true });
    });

    it('entries enqueued before start() are matched against the app\'s index', async () => {
      const h = await setup({ group: 2 });
      Object.assign(h.app.state(2), { lastIndex: 3, durable: 3 });
      h.applier.enqueue(entries(2, 6));
      await h.applier.start();
      await h.applier.waitApplied(6, 5000);
      expect(h.results.get(2)).to.deep.equal({ index: 2, ok: true, skipped: true });
      expect(h.results.get(3)).to.deep.equal({ index: 3, ok: true, skipped: true });
      expect(h.results.get(4)).to.include({ ok: true });
      expect(h.app.state(2).appliedOrder).to.deep.equal([4, 5, 6]);
    });

    it('an entry handed over twice (same term) is queued once; with another term it is refused', async () => {
      const h = await setup();
      h.app.applyDelayMs = 50;
      await h.applier.start();
      h.applier.enqueue(entries(1, 3));
      h.applier.enqueue(entries(3, 4));
      expect(() => h.applier.enqueue(entries(4, 4, 2))).to.throw(ApplyOrderError).with.property('code', 'APPLY_DUPLICATE');
      await h.applier.waitApplied(4, 5000);
      expectAppliedInOrder(h, 1, 4);
    });

    // Issue 18: raftd exited with code 70 on "group 13: entry 130 enqueued after 123; the app would
    // miss 124..129 (APPLY_GAP)" and, restarted, logged "applier failed to start: the app is at 123
    // but entries were enqueued from 130" while reads of the group hung. Both are the same state:
    // the host hands over from 130 while the app is at 123. The applier now bridges the gap from
    // raftd's log, or stops at it (reads past it fail at once, never stale) and asks for a repair.
    describe('a gap between the app and the entries handed over (APPLY_GAP, issue 18)', () => {
      function gapSetup(log: AppEntry[] | undefined) {
        const gaps: Array<[number, number]> = [];
        return {
          gaps,
          opts: {
            group: 13,
            refetch: (lo: number, hi: number) => log?.filter((e) => e.index >= lo && e.index <= hi),
            onGap: (lo: number, hi: number) => gaps.push([lo, hi]),
          },
        };
      }

      it('after start: entries past a gap are bridged from the log when it still holds them', async () => {
        const { gaps, opts } = gapSetup(entries(1, 200));
        const h = await setup(opts);
        Object.assign(h.app.state(13), { lastIndex: 123, durable: 123 });
        await h.applier.start();
        h.applier.enqueue(entries(130, 131));
        await h.applier.waitApplied(131, 5000);
        expect(h.app.state(13).appliedOrder).to.deep.equal(Array.from({ length: 8 }, (_, i) => 124 + i));
        expect(gaps).to.deep.equal([]);
      });

      it('after start: a gap the log no longer holds stops the applier there, without throwing; reads past it fail at once', async () => {
        const { gaps, opts } = gapSetup(undefined);
        const h = await setup(opts);
        Object.assign(h.app.state(13), { lastIndex: 123, durable: 123 });
        await h.applier.start();
        expect(() => h.applier.enqueue(entries(130, 131))).not.to.throw();
        expect(gaps).to.deep.equal([[124, 129]]);
        expect(h.applier.missing()).to.deep.equal({ lo: 124, hi: 129 });
        const t0 = Date.now();
        const err = await h.applier.waitApplied(130, 5000).then(() => undefined, (e: unknown) => e);
        expect(err).to.be.instanceOf(AppError).with.property('code', 'APPLY_GAP');
        expect(Date.now() - t0).to.be.below(1000);
        expect((err as AppError).toRaftdError().code).to.equal('APP_UNAVAILABLE');
        // Nothing past the gap reaches the app, and later entries are not taken either.
        h.applier.enqueue(entries(132, 132));
        await new Promise((r) => setTimeout(r, 100));
        expect(h.app.state(13).appliedOrder).to.deep.equal([]);
        expect(h.applier.appliedIndex()).to.equal(123);
      });

      it('at start (the restart case): entries enqueued from 130 while the app is at 123 are bridged from the log', async () => {
        const { gaps, opts } = gapSetup(entries(100, 200));
        const h = await setup(opts);
        Object.assign(h.app.state(13), { lastIndex: 123, durable: 123 });
        h.applier.enqueue(entries(130, 133));
        await h.applier.start();
        await h.applier.waitApplied(133, 5000);
        expect(h.app.state(13).appliedOrder).to.deep.equal(Array.from({ length: 10 }, (_, i) => 124 + i));
        expect(gaps).to.deep.equal([]);
      });

      it('at start, the log compacted past the gap: start() succeeds (it used to reject), the gap is reported, entries before it still apply', async () => {
        const { gaps, opts } = gapSetup(undefined);
        const h = await setup(opts);
        Object.assign(h.app.state(13), { lastIndex: 123, durable: 123 });
        h.applier.enqueue(entries(130, 133));
        await h.applier.start();
        expect(gaps).to.deep.equal([[124, 129]]);
        const err = await h.applier.waitApplied(124, 5000).then(() => undefined, (e: unknown) => e);
        expect(err).to.be.instanceOf(AppError).with.property('code', 'APPLY_GAP');
        await h.applier.waitApplied(123, 100);
      });
    });

    it('retries the same batch after 500s, without skipping, and reports unhealthy meanwhile', async () => {
      const h = await setup();
      await h.applier.start();
      let failures = 4;
      h.app.hook = (name, _b, res) => {
        if (name !== 'UpdateEntries' || failures === 0) return false;
        failures--;
        json(res, 500, { error: { code: 'DISK_FULL', message: 'try later' } });
        return true;
      };
      h.applier.enqueue(entries(1, 10));
      await until(() => h.errors.length >= 2);
      // One group's apply failing is that group's problem: reported by its applier, not app-wide.
      expect(h.client.healthy()).to.equal(true);
      expect(h.applier.applyFailure()?.attempts).to.be.at.least(2);
      expect(h.applier.applyFailure()?.error.appCode).to.equal('DISK_FULL');
      h.applier.enqueue(entries(11, 20));
      await h.applier.waitApplied(20, 5000);
      expectAppliedInOrder(h, 1, 20);
      expect(h.errors.length).to.equal(4);
      expect(h.errors[0]!.code).to.equal('APP_ERROR');
      expect(h.errors[0]!.appCode).to.equal('DISK_FULL');
      // Every failed attempt carried the same first batch.
      const sent = h.app.callsNamed('UpdateEntries').map((c) => (c.body as { entries: Array<{ index: number }> }).entries.map((e) => e.index)[0]);
      expect(sent.slice(0, 4)).to.deep.equal([1, 1, 1, 1]);
      expect(h.client.healthy()).to.equal(true);
      expect(h.applier.applyFailure()).to.equal(undefined);
    });

    it('sends growing batches after failed calls, so an entry that resolves the failing one is reached', async () => {
      const h = await setup({ maxBatchEntries: 2 });
      await h.applier.start();
      let failures = 3;
      h.app.hook = (name, _b, res) => {
        if (name !== 'UpdateEntries' || failures === 0) return false;
        failures--;
        json(res, 503, { error: { code: 'UNAVAILABLE', message: 'entry 1 will not apply yet' } });
        return true;
      };
      h.applier.enqueue(entries(1, 40));
      await h.applier.waitApplied(40, 5000);
      expectAppliedInOrder(h, 1, 40);
      const sizes = h.app.callsNamed('UpdateEntries').map((c) => (c.body as { entries: unknown[] }).entries.length);
      // 2, then doubled after each failure (4, 8), then 16 for the call that succeeds; back to 2 after it.
      expect(sizes.slice(0, 4)).to.deep.equal([2, 4, 8, 16]);
      expect(sizes.slice(4).every((n) => n <= 2)).to.equal(true);
      expect(h.applier.applyFailure()).to.equal(undefined);
    });

    it('keeps everything queued while the app is down and delivers it once the app is back', async () => {
      const h = await setup();
      await h.applier.start();
      h.applier.enqueue(entries(1, 5));
      await h.applier.waitApplied(5, 5000);
      const port = h.app.port;
      const state = h.app.state(1);
      await h.app.close();
      h.applier.enqueue(entries(6, 50));
      await until(() => h.errors.length >= 3);
      expect(h.errors.every((e) => e.code === 'APP_UNAVAILABLE')).to.equal(true);
      expect(h.client.healthy()).to.equal(false);
      expect(h.applier.appliedIndex()).to.equal(5);
      expect(h.applier.queuedEntries()).to.equal(45);
      await expectReject(h.applier.waitApplied(50, 50), 'APP_UNAVAILABLE');
      // The app restarts with its durable state (same port).
      const back = new TestApp(proto);
      back.groups.set(1, state);
      await back.listen(port);
      cleanups.push(() => back.close());
      h.app = back;
      await h.applier.waitApplied(50, 5000);
      expectAppliedInOrder(h, 1, 50);
    });

    it('after a timeout resends the same batch; the app skips what it had applied', async () => {
      const h = await setup({ callTimeoutMs: 150 });
      await h.applier.start();
      h.app.answerDelayOnceMs = 300; // applies, but answers too late
      h.applier.enqueue(entries(1, 10));
      await h.applier.waitApplied(10, 5000);
      expectAppliedInOrder(h, 1, 10);
      expect(h.errors[0]!.code).to.equal('APP_TIMEOUT');
      const calls = h.app.callsNamed('UpdateEntries');
      expect(calls.length).to.equal(2);
      // Before resending it asked the app where it stands.
      // (the client's health probe may add LastLogIndex calls of its own)
      const names = h.app.calls.map((c) => c.name);
      expect(names.slice(names.indexOf('UpdateEntries') + 1, names.lastIndexOf('UpdateEntries'))).to.include('LastLogIndex');
      expect(calls[0]!.body).to.deep.equal(calls[1]!.body);
      // The redelivered entries were skipped by the app: applied once, results say so.
      expect(h.results.get(1)).to.deep.equal({ index: 1, ok: true, skipped: true });
    });

    it('a lower lastLogIndex than sent makes it resend from there', async () => {
      const h = await setup();
      await h.applier.start();
      h.app.applyLimit = 7; // the app applies only 7 entries per call
      h.applier.enqueue(entries(1, 30));
      await h.applier.waitApplied(30, 5000);
      expectAppliedInOrder(h, 1, 30);
      const firsts = h.app.callsNamed('UpdateEntries').map((c) => (c.body as { entries: Array<{ index: number }> }).entries[0]!.index);
      expect(firsts).to.deep.equal([1, 8, 15, 22, 29]);
      expect(h.results.size).to.equal(30);
      expect(h.errors).to.deep.equal([]);
    });

    it('an app whose index goes below what it confirmed is not fed further entries', async () => {
      const h = await setup();
      await h.applier.start();
      h.applier.enqueue(entries(1, 10));
      await h.applier.waitApplied(10, 5000);
      Object.assign(h.app.state(1), { lastIndex: 4, appliedOrder: [1, 2, 3, 4] }); // it lost 5..10
      h.applier.enqueue(entries(11, 12));
      await until(() => h.errors.some((e) => e.code === 'APP_REGRESSED'));
      const before = h.app.callsNamed('UpdateEntries').length;
      await new Promise((r) => setTimeout(r, 100));
      expect(h.app.callsNamed('UpdateEntries').length).to.equal(before);
      expect(h.app.state(1).appliedOrder).to.deep.equal([1, 2, 3, 4]);
      expect(h.applier.appliedIndex()).to.equal(10);
    });

    it('with raftd\'s log at hand (refetch), an app that lost confirmed entries gets them again, in order', async () => {
      const asked: Array<[number, number]> = [];
      const h = await setup({ refetch: (lo, hi) => (asked.push([lo, hi]), entries(lo, hi)) });
      await h.applier.start();
      h.applier.enqueue(entries(1, 10));
      await h.applier.waitApplied(10, 5000);
      Object.assign(h.app.state(1), { lastIndex: 4, appliedOrder: [1, 2, 3, 4] }); // it lost 5..10
      h.applier.enqueue(entries(11, 12));
      await until(() => h.app.state(1).lastIndex === 12);
      expect(asked).to.deep.equal([[5, 10]]);
      expect(h.app.state(1).appliedOrder).to.deep.equal(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(h.errors.some((e) => e.code === 'APP_REGRESSED'), 'the regression is still reported').to.equal(true);
      await until(() => h.applier.appliedIndex() === 12);
      // 5..10 were applied twice but reported once (an assertion inside onApplied would only make
      // the applier retry, so count the reports here).
      const reported = h.reports.flatMap((r) => [...r.results.keys()]).sort((a, b) => a - b);
      expect(reported).to.deep.equal(Array.from({ length: 12 }, (_, i) => i + 1));
    });

    it('when raftd no longer holds the lost entries (compacted), it stalls as without refetch', async () => {
      const h = await setup({ refetch: () => undefined });
      await h.applier.start();
      h.applier.enqueue(entries(1, 10));
      await h.applier.waitApplied(10, 5000);
      Object.assign(h.app.state(1), { lastIndex: 4, appliedOrder: [1, 2, 3, 4] });
      h.applier.enqueue(entries(11, 12));
      await until(() => h.errors.some((e) => e.code === 'APP_REGRESSED'));
      await new Promise((r) => setTimeout(r, 100));
      expect(h.app.state(1).appliedOrder).to.deep.equal([1, 2, 3, 4]);
    });

    it('with sync, calls Sync after each batch and reports entries only once durable', async () => {
      const h = await setup({ sync: true });
      await h.applier.start();
      const log: string[] = [];
      h.app.hook = (name) => {
        log.push(name);
        return false;
      };
      const onApplied = h.reports.length;
      h.applier.enqueue(entries(1, 5));
      await h.applier.waitApplied(5, 5000);
      expect(log).to.deep.equal(['UpdateEntries', 'Sync']);
      expect(h.app.state(1).durable).to.equal(5);
      expect(h.reports.length).to.equal(onApplied + 1);
      expect([...h.reports.at(-1)!.results.keys()]).to.deep.equal([1, 2, 3, 4, 5]);
      expect(h.results.get(5)).to.deep.equal({ index: 5, ok: true, result: { sum: 15 } });
    });

    it('with sync, resends entries the app lost before they were durable', async () => {
      const h = await setup({ sync: true });
      await h.applier.start();
      h.applier.enqueue(entries(1, 5));
      await h.applier.waitApplied(5, 5000);
      let crashed = false;
      h.app.hook = (name, _b, _res, app) => {
        if (name === 'Sync' && !crashed) {
          crashed = true;
          app.crash(1); // applied 6..9 but crashed before making them durable
        }
        return false;
      };
      h.applier.enqueue(entries(6, 9));
      await h.applier.waitApplied(9, 5000);
      expect(crashed).to.equal(true);
      expect(h.app.state(1).appliedOrder).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(h.app.state(1).durable).to.equal(9);
      const ue = h.app.callsNamed('UpdateEntries').map((c) => (c.body as { entries: Array<{ index: number }> }).entries.map((e) => e.index));
      expect(ue.slice(-2)).to.deep.equal([
        [6, 7, 8, 9],
        [6, 7, 8, 9],
      ]);
      expect(h.results.size).to.equal(9);
    });

    it('many groups share one client concurrently, each in its own order', async () => {
      const h = await setup();
      h.app.applyDelayMs = 2;
      const appliers = Array.from({ length: 40 }, (_, g) => new GroupApplier(g + 1, h.client, { onApplied: () => undefined }));
      cleanups.push(async () => void (await Promise.all(appliers.map((a) => a.stop()))));
      await Promise.all(appliers.map((a) => a.start()));
      for (let i = 1; i <= 200; i += 10) for (const a of appliers) a.enqueue(entries(i, i + 9));
      await Promise.all(appliers.map((a) => a.waitApplied(200, 10_000)));
      for (let g = 1; g <= 40; g++) {
        expect(h.app.state(g).appliedOrder).to.deep.equal(Array.from({ length: 200 }, (_, i) => i + 1));
      }
    });

    it('stop() ends the loop, rejects waiters and keeps no handles', async () => {
      const h = await setup();
      await h.applier.start();
      await h.app.close(); // nothing can be applied: the loop sits in back-off
      h.applier.enqueue(entries(1, 3));
      const waiting = h.applier.waitApplied(3, 10_000).then(
        () => 'resolved',
        (e: AppError) => e.code,
      );
      await until(() => h.errors.length > 0);
      const t0 = Date.now();
      await h.applier.stop();
      expect(Date.now() - t0).to.be.lessThan(1000); // not a full 10 s wait nor a stuck back-off
      expect(await waiting).to.equal('APPLIER_STOPPED');
      expect(h.applier.appliedIndex()).to.equal(0);
    });
  });
}

async function expectReject(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect((e as AppError).code).to.equal(code);
    return;
  }
  expect.fail(`expected a rejection with ${code}`);
}
