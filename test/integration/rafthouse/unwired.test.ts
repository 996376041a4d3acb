// The operator's mistake under placed groups (issue 21), on real processes: 4 raftd with the default
// replication factor 3, so every node lacks a group, and 4 rafthouses NOT given --internal-peers. A
// consistent read that needs a group placed elsewhere must not answer from the groups here alone: it
// is refused with ClickHouse's NO_REMOTE_SHARD_AVAILABLE naming the flag, and the log says why. A read
// whose groups are all here still answers.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RafthouseCluster } from './harness.js';
import { HashRing } from '../../../clickhouse-adapter/router/ring.js';
import { until } from '../../support/until.js';

const NODES = 4;
const GROUPS = 4;

async function post(base: string, sql: string, body?: string): Promise<{ status: number; text: string }> {
  const qs = new URLSearchParams(body === undefined ? {} : { query: sql });
  const res = await fetch(`${base}/?${qs}`, { method: 'POST', body: body ?? sql, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, text: await res.text() };
}

describe(`RaftHouse without --internal-peers over placed groups (${NODES} nodes, default replication factor)`, function () {
  this.timeout(120_000);
  let cluster: RafthouseCluster;
  let placement: Map<number, number[]>;

  before(async () => {
    // No --replication-factor: the default (3) places each group on 3 of the 4 nodes.
    cluster = await RafthouseCluster.start({ nodes: NODES, groups: GROUPS, placedUnwired: true });
    const view = (await cluster.raft.node(1).get('/v1/placement')).body as { groups: Array<{ group: number; members: number[] }> };
    placement = new Map(view.groups.filter((g) => g.group !== 0).map((g) => [g.group, g.members]));
  });
  after(async () => {
    await cluster?.destroy();
  });

  it('the default replication factor places every group on 3 of the 4 nodes', () => {
    expect([...placement.keys()].sort()).to.deep.equal([1, 2, 3, 4]);
    for (const members of placement.values()) expect(members).to.have.length(3);
  });

  it('a consistent read needing a group held elsewhere is refused naming --internal-peers, through every node', async () => {
    const create = await post(cluster.nodes[0]!.consistentUrl, "CREATE TABLE st (k String, x UInt64) ENGINE = MergeTree ORDER BY k SETTINGS rafthouse_shard_key = 'k'");
    expect(create.status, create.text).to.equal(200);
    const rows = Array.from({ length: 200 }, (_, i) => JSON.stringify({ k: `r${i}`, x: i })).join('\n');
    const ins = await post(cluster.nodes[0]!.consistentUrl, 'INSERT INTO st FORMAT JSONEachRow', rows);
    expect(ins.status, ins.text).to.equal(200);
    for (const node of cluster.nodes) {
      const r = await post(node.consistentUrl, 'SELECT count(), sum(x) FROM st');
      expect(r.status, `node ${node.id}: ${r.text}`).to.equal(500);
      expect(r.text).to.match(/^Code: 519\. DB::Exception: .*--internal-peers.*\(NO_REMOTE_SHARD_AVAILABLE\)/);
      const away = [...placement].filter(([, m]) => !m.includes(node.id)).map(([g]) => g);
      expect(r.text, `node ${node.id}`).to.include(`groups ${away.join(',')}`);
      // And the log says it once, without a read having to fail first.
      await until(`warning in rafthouse ${node.id}'s log`, 10_000, async () =>
        readFileSync(join(cluster.raft.dir, `rafthouse${node.id}.log`), 'utf8').includes('WARNING: raftd places groups') || undefined);
    }
  });

  it('a read whose groups are all placed here still answers', async () => {
    const ring = await HashRing.create({ groups: GROUPS, vnodes: 128 });
    // An unsharded table lives in its home group: read it through a member of that group.
    const name = 'one';
    const home = ring.homeGroup('default', name);
    const member = cluster.nodes.find((n) => placement.get(home)!.includes(n.id))!;
    const outsider = cluster.nodes.find((n) => !placement.get(home)!.includes(n.id))!;
    expect((await post(member.consistentUrl, `CREATE TABLE ${name} (id UInt32) ENGINE = MergeTree ORDER BY id`)).status).to.equal(200);
    expect((await post(member.consistentUrl, `INSERT INTO ${name} VALUES (1), (2), (3)`)).status).to.equal(200);
    const ok = await post(member.consistentUrl, `SELECT count() FROM ${name}`);
    expect(ok.status, ok.text).to.equal(200);
    expect(ok.text.trim()).to.equal('3');
    const refused = await post(outsider.consistentUrl, `SELECT count() FROM ${name}`);
    expect(refused.text, `node ${outsider.id}`).to.match(new RegExp(`^Code: 519\\..*groups ${home}, .*--internal-peers`));
  });
});
