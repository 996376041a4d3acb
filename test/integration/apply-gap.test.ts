// Issue 18's APPLY_GAP with real processes: a follower whose application is behind the snapshot
// its raftd compacted its log to. raftd used to exit with code 70 ("entry N enqueued after M; the
// app would miss ...") or, restarted, log "applier failed to start: the app is at M but entries
// were enqueued from N" and hang every consistent read of the group. Now it repairs the app from a
// snapshot of the leader, and answers reads meanwhile with APP_UNAVAILABLE, never stale.
//
// The state is made real: the follower's KV application is stopped, its data directory copied,
// the group moves on (the follower's raftd snapshots and compacts past the copy), then both
// processes stop, the old copy is put back (an app that is behind its raftd's snapshot), and both
// start again.

import { expect } from 'chai';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster, type RaftdNode } from './cluster.js';
import { RaftdClient } from '../../adapters/sdk/client.js';

describe('APPLY_GAP: an app behind its raftd\'s compacted log is repaired from the leader (integration, KV adapter)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;

  before(async () => {
    cluster = await LocalCluster.create({
      nodes: 3,
      groups: 1,
      kvApp: true,
      extraArgs: ['--snapshot-interval', '5', '--snapshot-catchup-entries', '0'],
    });
    await cluster.startAll();
    await cluster.waitForLeaders([1], 30_000);
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('the follower does not exit, reads never see the old state, and the app catches up by snapshot', async () => {
    const client = new RaftdClient({ token: cluster.clientToken(), url: cluster.nodes.map((n) => n.url) });
    try {
      for (let i = 0; i < 5; i++) await client.proposeJson(1, { op: 'set', key: `k${i}`, value: 'old' });
      const leaders = await cluster.waitForLeaders([1], 30_000);
      const follower: RaftdNode = cluster.nodes.find((n) => n.spec.id !== leaders.get(1))!;
      const appDir = `${follower.spec.dataDir}-kv`;
      const copy = `${appDir}-old`;
      // The follower's app state as of now, copied while its app is stopped (consistent).
      await client.barrier(1);
      await new Promise((r) => setTimeout(r, 300));
      await follower.app!.stop();
      cpSync(appDir, copy, { recursive: true });
      follower.app!.start();
      // Far enough past the copy that the follower's raftd snapshots and compacts past it.
      for (let i = 0; i < 40; i++) await client.proposeJson(1, { op: 'set', key: `k${i % 5}`, value: `new${i}` });
      const deadline = Date.now() + 20_000;
      while ((await follower.metric('raftd_snapshots_taken_total')) < 3) {
        if (Date.now() > deadline) throw new Error('the follower took no snapshots');
        await new Promise((r) => setTimeout(r, 100));
      }
      await follower.stop();
      await follower.app!.stop();
      rmSync(appDir, { recursive: true, force: true });
      cpSync(copy, appDir, { recursive: true });
      follower.app!.start();
      await new Promise((r) => setTimeout(r, 500));
      follower.start();

      // Reads through the follower: an error while it repairs, never the old value; then the latest.
      const local = new RaftdClient({ token: cluster.clientToken(), url: follower.url, retryMs: 0, timeoutMs: 5000 });
      try {
        const until = Date.now() + 30_000;
        let value: unknown;
        for (;;) {
          const got: { value: string } | Error = await local.read<{ value: string }>(1, { op: 'get', key: 'k4' }).then(
            (r) => r,
            (e: unknown) => e as Error,
          );
          if (!(got instanceof Error)) {
            value = got.value;
            expect(value, 'a linearizable read served from the app before its repair').to.equal('new39');
            break;
          }
          if (Date.now() > until) throw new Error(`the follower never served the read: ${String(got)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        expect(follower.running(), 'the follower raftd exited').to.equal(true);
        // The scenario did produce the gap (the log line of the repair), and the repair went
        // through a snapshot the leader sent.
        const log = readFileSync(join(cluster.dir, `node${follower.spec.id}.log`), 'utf8');
        expect(log).to.contain('the app misses entries the log no longer holds');
        expect(await follower.metric('raftd_snapshot_transfers_received_total')).to.be.at.least(1);
        // Writes keep flowing and reach the repaired app.
        await client.proposeJson(1, { op: 'set', key: 'after', value: 'x' });
        expect(await local.read(1, { op: 'get', key: 'after' })).to.deep.equal({ value: 'x' });
      } finally {
        local.close();
        rmSync(copy, { recursive: true, force: true });
      }
    } finally {
      client.close();
    }
  });
});
