// A linearizable read on a follower that is being restored from the leader's snapshot: 3 raftd
// processes, each with a KV adapter served from this test process (so the test can hold one
// adapter's RecoverFromSnapshot open). The read must wait for the restore and see every write the
// leader acknowledged before it, never the state the follower's app had before the snapshot.
// (Chaos run seed 803 found reads answered in that window from the old state.)
// Also: entries a new leader appends and commits on that follower during the restore, past the
// snapshot's index, must reach its app once the restore is over. And the leader must not compact
// its log past the snapshot it is sending meanwhile, or the restored follower needs another one.

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvAdapter } from '../../adapters/kv/adapter.js';
import { serveStateMachine, type ServedStateMachine } from '../../adapters/sdk/server.js';
import type { Entry, EntryResult, StateMachine } from '../../adapters/sdk/types.js';
import { LocalCluster, freePort, type RaftdNode } from './cluster.js';
import { TEST_APP_SECRET } from '../support/app-secret.js';

/** Holds the next call that passes through it, once closed, until it is opened. */
class Gate {
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;
  private arrive: (() => void) | undefined;
  /** Resolves when a call reaches the closed gate. */
  reached: Promise<void> = Promise.resolve();

  close(): void {
    this.held = new Promise((r) => (this.release = r));
    this.reached = new Promise((r) => (this.arrive = r));
  }

  open(): void {
    this.release?.();
  }

  async pass(): Promise<void> {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    this.arrive?.();
    await held;
  }
}

/** The KV adapter, whose RecoverFromSnapshot and LastLogIndex (the new applier's start) the test can hold. */
class HeldRestore implements StateMachine {
  readonly restore = new Gate();
  readonly lastIndex = new Gate();

  constructor(private readonly kv: KvAdapter) {}
  async lastLogIndex(group: number): Promise<number> {
    await this.lastIndex.pass();
    return this.kv.lastLogIndex(group);
  }
  applyBatch(group: number, entries: Entry[]): Promise<EntryResult[]> {
    return this.kv.applyBatch(group, entries);
  }
  read(group: number, query: unknown): Promise<unknown> {
    return this.kv.read(group, query);
  }
  prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    return this.kv.prepareSnapshot(group);
  }
  saveSnapshot(group: number, prepared: string): AsyncIterable<Uint8Array> {
    return this.kv.saveSnapshot(group, prepared);
  }
  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number> {
    await this.restore.pass();
    return this.kv.recoverFromSnapshot(group, data);
  }
}

describe('a linearizable read on a follower restoring a snapshot (integration)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster | undefined;
  const served: ServedStateMachine[] = [];
  const adapters: KvAdapter[] = [];
  let dir = '';

  /** A KV adapter per node, served from this process, whose restores the test can hold. */
  async function serveApps(): Promise<{ apps: Map<number, HeldRestore>; urls: Map<number, string> }> {
    const apps = new Map<number, HeldRestore>();
    const urls = new Map<number, string>();
    for (const id of [1, 2, 3]) {
      const kv = new KvAdapter({ dataDir: join(dir, `kv${id}`) });
      adapters.push(kv);
      const app = new HeldRestore(kv);
      apps.set(id, app);
      const port = await freePort();
      served.push(await serveStateMachine(app, { port, appSecret: TEST_APP_SECRET }));
      urls.set(id, `http://127.0.0.1:${port}`);
    }
    return { apps, urls };
  }

  afterEach(async () => {
    await cluster?.destroy();
    for (const s of served.splice(0)) await s.close();
    for (const a of adapters.splice(0)) await a.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the restore instead of reading the app\'s old state', async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftd-snapshot-read-'));
    const { apps, urls } = await serveApps();
    cluster = await LocalCluster.create({ env: { RAFTD_APP_SECRET: TEST_APP_SECRET }, nodes: 3, groups: 1, appUrls: (id) => urls.get(id)!, extraArgs: ['--snapshot-interval', '50', '--snapshot-catchup-entries', '5'] });
    await cluster.startAll();
    const leaders = await cluster.waitForLeaders([0, 1], 20_000);
    const leader = cluster.node(leaders.get(1)!);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const set = async (value: string): Promise<void> => {
      const r = await leader.post('/v1/groups/1/propose', JSON.stringify({ op: 'set', key: 'x', value }), { 'content-type': 'application/json' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    };
    const read = async (n: RaftdNode, consistency: string): Promise<string | null> => {
      const r = await n.post(`/v1/groups/1/read?consistency=${consistency}`, { op: 'get', key: 'x' }, { 'x-raftd-no-forward': '1' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      return (r.body.result as { value: string | null }).value;
    };

    await set('old');
    expect(await read(follower, 'linearizable')).to.equal('old');
    await follower.kill();
    for (let i = 1; i <= 200; i++) await set(String(i)); // compacts the leader's log past the follower
    const app = apps.get(follower.spec.id)!;
    app.restore.close();
    follower.start();
    await app.restore.reached; // the follower's app is being restored from the leader's snapshot
    expect(await read(follower, 'stale'), 'the app still has its old state').to.equal('old');

    const t0 = Date.now();
    const linearizable = read(follower, 'linearizable');
    setTimeout(() => app.restore.open(), 1500);
    expect(await linearizable, 'a linearizable read sees the last acknowledged write').to.equal('200');
    expect(Date.now() - t0, 'it waited for the restore').to.be.at.least(1000);
  });

  it('hands the app what a new leader committed on the follower during the restore', async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftd-snapshot-commit-'));
    const { apps, urls } = await serveApps();
    // Nodes 1 and 2 compact their logs right behind each snapshot; node 3 keeps its whole log, so as a
    // leader it sends a lagging follower entries, not a snapshot.
    cluster = await LocalCluster.create({ env: { RAFTD_APP_SECRET: TEST_APP_SECRET },
      nodes: 3, groups: 1, appUrls: (id) => urls.get(id)!, extraArgs: ['--snapshot-interval', '50'],
      nodeExtraArgs: (id) => ['--snapshot-catchup-entries', id === 3 ? '1000000' : '5'],
    });
    await cluster.startAll();
    let leaderId = (await cluster.waitForLeaders([0, 1], 20_000)).get(1)!;
    const transfer = async (from: number, to: number): Promise<void> => {
      const r = await cluster!.node(from).post('/v1/groups/1/transfer-leadership', JSON.stringify({ to }), { 'content-type': 'application/json' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    };
    if (leaderId === 3) { await transfer(3, 1); leaderId = 1; }
    const followerId = leaderId === 1 ? 2 : 1;
    const set = async (via: number, value: string): Promise<void> => {
      const r = await cluster!.node(via).post('/v1/groups/1/propose', JSON.stringify({ op: 'set', key: 'x', value }), { 'content-type': 'application/json' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    };
    const follower = cluster.node(followerId);

    await set(leaderId, '0');
    await follower.kill();
    for (let i = 1; i <= 200; i++) await set(leaderId, String(i)); // compacts the leader's log past the follower
    const app = apps.get(followerId)!;
    app.restore.close();
    follower.start();
    await app.restore.reached; // the follower's app is being restored from the leader's snapshot

    // Meanwhile node 3 takes over and, having the whole log, appends and commits past the snapshot there.
    await transfer(leaderId, 3);
    for (let i = 201; i <= 220; i++) await set(3, String(i));
    await new Promise((r) => setTimeout(r, 500));
    // The restore ends; the new applier's start (its LastLogIndex call) is held while more commits land.
    app.lastIndex.close();
    app.restore.open();
    await app.lastIndex.reached;
    for (let i = 221; i <= 225; i++) await set(3, String(i));
    await new Promise((r) => setTimeout(r, 300));
    app.lastIndex.open();
    for (let i = 226; i <= 230; i++) await set(3, String(i));

    // The follower's app must reach the last write (stale reads: its own state), and its raftd must live.
    const deadline = Date.now() + 10_000;
    let value: string | null = null;
    while (Date.now() < deadline) {
      const r = await follower.post('/v1/groups/1/read?consistency=stale', { op: 'get', key: 'x' }, { 'x-raftd-no-forward': '1' }).catch(() => undefined);
      value = r?.status === 200 ? (r.body.result as { value: string | null }).value : value;
      if (value === '230') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(value, 'the follower\'s app caught up').to.equal('230');
    expect(follower.running(), 'the follower\'s raftd is still running').to.equal(true);
  });

  it('keeps the log after a snapshot it sent until the follower caught up from it (one snapshot, not a loop)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftd-snapshot-floor-'));
    const { apps, urls } = await serveApps();
    cluster = await LocalCluster.create({ env: { RAFTD_APP_SECRET: TEST_APP_SECRET }, nodes: 3, groups: 1, appUrls: (id) => urls.get(id)!, extraArgs: ['--snapshot-interval', '50', '--snapshot-catchup-entries', '5'] });
    await cluster.startAll();
    const leader = cluster.node((await cluster.waitForLeaders([0, 1], 20_000)).get(1)!);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const set = async (value: string): Promise<void> => {
      const r = await leader.post('/v1/groups/1/propose', JSON.stringify({ op: 'set', key: 'x', value }), { 'content-type': 'application/json' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    };

    await set('0');
    await follower.kill();
    for (let i = 1; i <= 200; i++) await set(String(i)); // compacts the leader's log past the follower
    const app = apps.get(follower.spec.id)!;
    app.restore.close();
    follower.start();
    await app.restore.reached;
    // While the follower restores, the leader takes four more snapshots, each of which would have
    // compacted to 5 entries behind it.
    for (let i = 201; i <= 400; i++) await set(String(i));
    app.restore.open();
    const deadline = Date.now() + 15_000;
    let value: string | null = null;
    while (Date.now() < deadline && value !== '400') {
      const r = await follower.post('/v1/groups/1/read?consistency=stale', { op: 'get', key: 'x' }, { 'x-raftd-no-forward': '1' }).catch(() => undefined);
      value = r?.status === 200 ? (r.body.result as { value: string | null }).value : value;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(value, 'the follower caught up').to.equal('400');
    expect(await follower.metric('raftd_snapshot_transfers_received_total'), 'snapshots the follower installed').to.equal(1);
    expect(await leader.metric('raftd_snapshot_transfers_sent_total'), 'snapshots the leader sent').to.equal(1);
    expect(await leader.metric('raftd_snapshots_taken_total'), 'the leader kept taking its own snapshots').to.be.at.least(6);
  });
});
