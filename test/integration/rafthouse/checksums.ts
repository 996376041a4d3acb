// Every replica's state-machine checksums of every data group, read through each node's own raftd:
// the tests' one way of saying "the replicas hold the same data".
import { expect } from 'chai';
import { RaftdClient, type Consistency } from '../../../adapters/sdk/client.js';
import type { RafthouseCluster } from './harness.js';

/** One JSON string a node: that node's checksums of groups 1..groups, read at `consistency`. */
export async function replicaChecksums(cluster: RafthouseCluster, groups: number, consistency: Consistency): Promise<string[]> {
  const out: string[] = [];
  for (const n of cluster.nodes) {
    const c = new RaftdClient({ token: cluster.raft.clientToken(), url: cluster.raft.node(n.id).url });
    try {
      const per: unknown[] = [];
      for (let g = 1; g <= groups; g++) per.push(await c.read(g, { op: 'checksum' }, consistency));
      out.push(JSON.stringify(per));
    } finally {
      await c.close();
    }
  }
  return out;
}

/** Waits until every replica's (stale) checksums are the same; fails with the first difference after timeoutMs. */
export async function checksumsConverge(cluster: RafthouseCluster, groups: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const per = await replicaChecksums(cluster, groups, 'stale');
    if (per.every((p) => p === per[0])) return;
    if (Date.now() > deadline) expect(per[1], 'replica 2 vs 1').to.equal(per[0]);
    await new Promise((r) => setTimeout(r, 300));
  }
}
