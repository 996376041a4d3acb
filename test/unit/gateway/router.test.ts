import { expect } from 'chai';
import { HashRing, RouterError, shardText, splitJsonEachRow } from '../../../clickhouse-adapter/router/index.js';

describe('router: consistent-hash ring', () => {
  it('spreads keys evenly over 16 groups (every group within 2x of its fair share)', async () => {
    const ring = await HashRing.create({ groups: 16 });
    const counts = new Array<number>(17).fill(0);
    for (let i = 0; i < 100_000; i++) counts[ring.groupOf(String(i))]!++;
    expect(counts[0]).to.equal(0); // group 0 is raftd's meta group
    for (let g = 1; g <= 16; g++) expect(counts[g]!, `group ${g}`).to.be.within(100_000 / 16 / 2, 2 * 100_000 / 16);
  });

  it('is the same ring on every build and moves few keys when a group is added', async () => {
    const a = await HashRing.create({ groups: 8 });
    const b = await HashRing.create({ groups: 8 });
    const c = await HashRing.create({ groups: 9 });
    let moved = 0;
    for (let i = 0; i < 20_000; i++) {
      const k = `user-${i}`;
      expect(a.groupOf(k)).to.equal(b.groupOf(k));
      const from = a.groupOf(k);
      const to = c.groupOf(k);
      if (from !== to) {
        moved++;
        expect(to, 'a key only moves to the new group').to.equal(9);
      }
    }
    // About 1/9 of the keys move to the new group; nowhere near a full reshuffle.
    expect(moved).to.be.within(20_000 / 9 / 2, 20_000 / 9 * 2);
  });

  it('places tables by "<database>.<table>" and rejects bad configurations', async () => {
    const ring = await HashRing.create({ groups: 4, vnodes: 16 });
    expect(ring.homeGroup('default', 't')).to.equal(ring.groupOf('default.t'));
    let err: unknown;
    try { await HashRing.create({ groups: 0 }); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(RouterError);
    expect((err as RouterError).code).to.equal('ROUTER_BAD_CONFIG');
  });
});

describe('router: splitting JSONEachRow by shard key', () => {
  it('sends every row to the group of its key, byte for byte, in input order', async () => {
    const ring = await HashRing.create({ groups: 4 });
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ user_id: i % 50, x: i }));
    const { parts, rows } = splitJsonEachRow(ring, Buffer.from(lines.join('\n') + '\n\n'), 'user_id');
    expect(rows).to.equal(200);
    const seen: string[] = [];
    for (const [g, buf] of parts) {
      for (const l of buf.toString().split('\n').filter((x) => x)) {
        const row = JSON.parse(l) as { user_id: number };
        expect(ring.groupOf(String(row.user_id))).to.equal(g);
        seen.push(l);
      }
    }
    expect(seen.sort()).to.deep.equal([...lines].sort());
    expect(parts.size).to.equal(4);
  });

  it('hashes one canonical text per value (1 and 1.0 agree), and refuses rows without the key', async () => {
    const ring = await HashRing.create({ groups: 16 });
    expect(shardText(1)).to.equal(shardText(JSON.parse('1.0')));
    expect(shardText(null)).to.equal('\\N');
    expect(shardText('abc')).to.equal('abc');
    const a = splitJsonEachRow(ring, Buffer.from('{"k":1}\n'), 'k');
    const b = splitJsonEachRow(ring, Buffer.from('{"k":1.0}\n'), 'k');
    expect([...a.parts.keys()]).to.deep.equal([...b.parts.keys()]);
    expect(() => splitJsonEachRow(ring, Buffer.from('{"k":1}\n{"j":2}\n'), 'k')).to.throw(RouterError).with.property('code', 'ROUTER_NO_SHARD_KEY');
    expect(() => splitJsonEachRow(ring, Buffer.from('{"k":1\n'), 'k')).to.throw(RouterError).with.property('code', 'ROUTER_BAD_ROW');
  });
});
