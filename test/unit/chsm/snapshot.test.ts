// Snapshots under concurrent inserts: prepare, keep applying, save twice -> byte-identical; a fresh
// replica (and one with other state) recovers from it, applies the rest of the log and matches.

import { expect } from 'chai';
import { CrashedError, Replica, buildLog, feed } from './harness.js';

describe('chsm: snapshots', function () {
  this.timeout(90_000);
  const a = Replica.fresh();
  const b = Replica.fresh(true); // b and c restore with the applied file (as rafthouse on the embedded engine)
  const c = Replica.fresh(true);

  after(async () => {
    for (const r of [a, b, c]) { await r.stop(); r.remove(); }
  });

  it('save is byte-identical while inserts continue; a restored replica converges', async () => {
    const log = buildLog();
    await Promise.all([a.start(), b.start()]);
    await feed(a, log.slice(0, 12), 4);
    const prep = await a.call<{ prepared: string; lastLogIndex: number }>('prepare', { group: 1 });
    expect(prep).to.deep.equal({ prepared: 'rh_snap_g1_12', lastLogIndex: 12 });

    // Saves run while the rest of the log is applied.
    const applying = feed(a, log, 2, 12);
    const [s1, s2] = await Promise.all([
      a.call<string>('save', { group: 1, prepared: prep.prepared }),
      a.call<string>('save', { group: 1, prepared: prep.prepared }),
    ]);
    await applying;
    const s3 = await a.call<string>('save', { group: 1, prepared: prep.prepared });
    expect(s1.length).to.be.greaterThan(1000);
    expect(s2).to.equal(s1);
    expect(s3).to.equal(s1);

    // b has diverging state of its own first: recovery must replace it, not merge into it.
    await feed(b, [log[0]!, log[1]!], 2);
    expect(await b.call<number>('recover', { group: 1, data: s1 })).to.equal(12);
    expect(await b.last()).to.equal(12);
    const dbs = await b.call<string>('databases');
    expect(dbs.trim().split('\n')).to.deep.equal(['rh_g1']);
    // Its own snapshot at the same index carries the same rows as a's.
    const pb = await b.call<{ prepared: string }>('prepare', { group: 1 });
    expect(pb.prepared).to.equal('rh_snap_g1_12');
    const sb = await b.call<string>('save', { group: 1, prepared: pb.prepared });
    expect(sb).to.equal(s1);

    await feed(b, log, 3, 12);
    expect(await b.checksum()).to.equal(await a.checksum());

    // Preparing again drops the older snapshot database.
    const p2 = await a.call<{ prepared: string }>('prepare', { group: 1 });
    expect(p2.prepared).to.equal(`rh_snap_g1_${log.length}`);
    expect((await a.call<string>('databases')).trim().split('\n')).to.deep.equal(['rh_g1', p2.prepared]);
    let gone: unknown;
    await a.call('save', { group: 1, prepared: prep.prepared }).catch((e: unknown) => { gone = e; });
    expect((gone as { code?: string }).code).to.equal('RH_SNAPSHOT_GONE');
  });

  it('a crash in the middle of the database swap leaves the old or the new state, never neither', async () => {
    const log = buildLog();
    const snap = await a.call<string>('save', { group: 1, prepared: `rh_snap_g1_${log.length}` });
    const expected = await a.checksum();
    for (const point of ['before-swap', 'mid-swap']) {
      c.remove();
      await c.start();
      await feed(c, log.slice(0, 3), 3);
      const before = await c.checksum();
      await c.stop();
      await c.start(`${point}@${log.length}`);
      let crashed = false;
      await c.call('recover', { group: 1, data: snap }).catch((e: unknown) => { crashed = e instanceof CrashedError; });
      expect(crashed, point).to.equal(true);
      await c.start();
      const last = await c.last(); // repairs the group first
      if (point === 'before-swap') {
        expect(last).to.equal(3);
        expect(await c.checksum()).to.equal(before);
      } else {
        expect(last).to.equal(log.length);
        expect(await c.checksum()).to.equal(expected);
      }
      expect((await c.call<string>('databases')).trim().split('\n')).to.deep.equal(['rh_g1']);
      await c.stop();
    }
    // A fresh replica: the view (defined over the restored table) comes back and reads the restored rows.
    c.remove();
    await c.start();
    expect(await c.call<number>('recover', { group: 1, data: snap })).to.equal(log.length);
    const view = 'SELECT c, s FROM rh_g1.tv';
    expect(await c.call<string>('query', { sql: view })).to.equal(await a.call<string>('query', { sql: view }));
    expect(await c.checksum()).to.equal(expected);
    expect((await c.call<string>('databases')).trim().split('\n')).to.deep.equal(['rh_g1']);
    expect(await c.call<string>('query', { sql: "SELECT count() FROM system.tables WHERE database = 'rh_g1' AND name = '_rh_pending_ddl'" })).to.equal('0\n');
  });
});
