// Peer gRPC attacked the way a process on the same machine would: a spoofed heartbeat "from node 2"
// at term 778 (which once moved group 16 to term 778 on every node), sent without credentials,
// with a wrong secret, and as a replay of a captured handshake. Each is refused, Hello tells the
// attacker nothing, and nothing changes on any node: terms, commit, log, membership. Real raftd
// processes with the secrets dir production uses.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { MessageType } from '../../daemon/raft/types.js';
import { encodeBatch } from '../../daemon/transport/codec.js';
import { streamMethod } from '../../daemon/transport/service.js';
import { LocalCluster, type RaftdNode } from './cluster.js';
import { appMsg, hello, peerMetadata } from '../unit/transport/helpers.js';

interface GroupStatus {
  group: number;
  term: number;
  commit: number;
  lastIndex: number;
  voters: number[];
  learners: number[];
  leader: number;
}

/** What must not move: per node, per group. (leader too: a spoof must not depose anyone.) */
async function snapshotState(nodes: RaftdNode[]): Promise<string> {
  const out: Record<string, unknown> = {};
  for (const n of nodes) {
    const st = (await n.get('/status')).body as { groups: GroupStatus[] };
    out[n.spec.id] = st.groups.map((g) => ({ group: g.group, term: g.term, commit: g.commit, lastIndex: g.lastIndex, voters: g.voters, learners: g.learners, leader: g.leader }));
  }
  return JSON.stringify(out);
}

/** A Stream to `node` with `md`, one batch carrying a term-778 heartbeat "from node 2" per group. */
function spoof(node: RaftdNode, md: grpc.Metadata, to: number, groups: number[], clusterId = 'raftd'): Promise<{ err: grpc.ServiceError | null; welcomed: boolean }> {
  const client = new grpc.Client(node.spec.raftAddr, grpc.credentials.createInsecure());
  return new Promise<{ err: grpc.ServiceError | null; welcomed: boolean }>((resolve) => {
    let welcomed = false;
    const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
    call.on('data', () => {
      welcomed = true;
    });
    call.on('error', (e: grpc.ServiceError) => resolve({ err: e, welcomed }));
    call.on('end', () => resolve({ err: null, welcomed }));
    const messages = groups.map((group) => ({ group, message: { ...appMsg(2, to, 0), type: MessageType.Heartbeat, term: 778, entries: [], commit: 0 } }));
    call.write(encodeBatch({ fromNode: 2, toNode: to, clusterId, seq: 1, messages }));
    setTimeout(() => call.end(), 500);
  }).finally(() => client.close());
}

describe('raftd processes: peer gRPC refuses anyone who cannot prove the cluster secret (integration)', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  afterEach(async () => {
    await cluster?.destroy();
  });

  it('a spoofed heartbeat "from node 2" (no credentials, wrong secret, replayed handshake) changes nothing on any node', async () => {
    cluster = await LocalCluster.create({ nodes: 3, groups: 2 });
    await cluster.startAll();
    await cluster.waitForApi(20_000);
    await cluster.waitForLeaders([0, 1, 2], 20_000);
    const [n1] = cluster.nodes as [RaftdNode, RaftdNode, RaftdNode];
    for (const g of [1, 2]) {
      const r = await n1.post(`/v1/groups/${g}/propose`, { op: 'set', key: 'k', value: 'v' });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
    }
    await new Promise((r) => setTimeout(r, 500)); // let followers apply and quiesce
    const clusterId = 'raftd'; // the default --cluster-id (not a secret: the proof is what counts)
    const before = await snapshotState(cluster.nodes);
    const secret = cluster.secrets!.value('clusterSecret');

    for (const target of cluster.nodes.filter((n) => n.spec.id !== 2)) {
      const client = new grpc.Client(target.spec.raftAddr, grpc.credentials.createInsecure());
      try {
        // Hello answers an unauthenticated caller with a challenge and nothing else.
        const h = await hello(client, { nodeId: 2, clusterId, incarnation: 'x' });
        expect([h.nodeId, h.clusterId, h.version]).to.deep.equal([0n, '', '']);
        expect(h.serverNonce).to.have.length(32);

        const noCreds = await spoof(target, (await peerMetadata(client, { from: 2, to: target.spec.id, cluster: clusterId, secret: '' })).md, target.spec.id, [0, 1, 2]);
        expect(noCreds.err?.code, 'no credentials').to.equal(grpc.status.UNAUTHENTICATED);
        expect(noCreds.welcomed).to.equal(false);
        const wrong = await spoof(target, (await peerMetadata(client, { from: 2, to: target.spec.id, cluster: clusterId, secret: 'guessed-secret' })).md, target.spec.id, [0, 1, 2]);
        expect(wrong.err?.code, 'wrong secret').to.equal(grpc.status.UNAUTHENTICATED);

        // A handshake captured from a secret holder (here: one made with the secret for an id
        // outside the cluster, used once without sending anything), replayed later: refused.
        const captured = (await peerMetadata(client, { from: 9, to: target.spec.id, cluster: clusterId, secret, incarnation: 'captured' })).md;
        const genuine = await new Promise<boolean>((resolve) => {
          const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, captured, {});
          call.on('data', () => {
            resolve(true);
            call.end();
          });
          call.on('error', () => resolve(false));
        });
        expect(genuine, 'the captured handshake was valid once').to.equal(true);
        const replay = await spoof(target, captured, target.spec.id, [0, 1, 2]);
        expect(replay.err?.code, 'replayed handshake').to.equal(grpc.status.UNAUTHENTICATED);
        expect(replay.welcomed).to.equal(false);
      } finally {
        client.close();
      }
    }
    expect(await snapshotState(cluster.nodes)).to.equal(before);
    // And the cluster still works.
    expect((await n1.post('/v1/groups/1/propose', { op: 'set', key: 'k', value: 'after' })).status).to.equal(200);
  });
});
