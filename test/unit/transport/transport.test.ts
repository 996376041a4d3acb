import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { MessageType } from '../../../daemon/raft/types.js';
import { encodeBatch } from '../../../daemon/transport/codec.js';
import { TransportError } from '../../../daemon/transport/errors.js';
import { streamMethod } from '../../../daemon/transport/service.js';
import { GrpcTransport } from '../../../daemon/transport/transport.js';
import { appMsg, freePort, makeNode, peerMetadata, until, type TestNode } from './helpers.js';

describe('GrpcTransport messaging (real gRPC on loopback)', function () {
  this.timeout(20000);
  const open: TestNode[] = [];
  const track = (n: TestNode): TestNode => (open.push(n), n);
  afterEach(async () => {
    await Promise.all(open.splice(0).map((n) => n.t.close()));
  });

  async function pair(optsA = {}, optsB = {}): Promise<[TestNode, TestNode]> {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = track(makeNode(1, pa, [[2, pb]], optsA));
    const b = track(makeNode(2, pb, [[1, pa]], optsB));
    await Promise.all([a.t.start(), b.t.start()]);
    return [a, b];
  }

  it('batches everything sent to one peer within one tick into ONE MessageBatch', async () => {
    const [a, b] = await pair();
    // Warm up: wait until the stream is up so the batch is not split by connection timing.
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    await until(() => b.received() === 1, 5000, 'first message');
    const before = a.t.stats().sentBatches;
    for (let g = 0; g < 500; g++) a.t.send(2, [{ group: g, message: appMsg(1, 2, g) }, { group: g, message: appMsg(1, 2, g + 1000) }]);
    await until(() => b.received() === 1001, 5000, 'all messages');
    expect(a.t.stats().sentBatches - before).to.equal(1);
    expect(b.batches).to.have.length(2);
    const last = b.batches[1]!;
    expect(last.from).to.equal(1);
    expect(last.msgs[0]!.group).to.equal(0);
    expect(last.msgs[999]!.group).to.equal(499);
    expect(last.msgs[999]!.message.index).to.equal(1499);
    expect(b.t.stats().receivedMessages).to.equal(1001);
  });

  it('queues messages sent while the stream is still connecting', async () => {
    const [a, b] = await pair();
    a.t.send(2, [{ group: 7, message: appMsg(1, 2, 3) }]);
    await until(() => b.received() === 1, 5000);
    expect(b.batches[0]!.msgs[0]!.message.entries[0]!.index).to.equal(4);
    expect(a.t.stats().droppedMessages).to.equal(0);
  });

  it('reconnects after the peer restarts, and reports it unreachable meanwhile', async () => {
    const [a, b] = await pair();
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    await until(() => b.received() === 1);
    await b.t.close();
    await until(() => a.t.unreachablePeers().includes(2), 5000, 'peer 2 reported down');
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 1) }]);
    expect(a.t.stats().droppedMessages).to.be.greaterThan(0);

    const b2 = track(makeNode(2, b.port, [[1, a.port]]));
    await b2.t.start();
    await until(() => a.t.unreachablePeers().length === 0, 5000, 'peer 2 back up');
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 2) }]);
    await until(() => b2.received() === 1, 5000, 'delivery after restart');
    expect(b2.batches[0]!.msgs[0]!.message.index).to.equal(2);
    expect(a.t.stats().reconnects).to.be.greaterThan(0);
  });

  it('a peer that comes back and opens a stream to us ends our back-off at once (not seconds later)', async () => {
    // Back-off as raftd's default (100 ms doubling to 5 s); random 0.999: each delay its full base.
    const slow = { backoff: { initialMs: 100, maxMs: 5000 }, random: () => 0.999 };
    const [a, b] = await pair(slow, slow);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    await until(() => b.received() === 1);
    await b.t.close();
    // Down for 3.2 s: a's re-dials at +0.1, +0.3, +0.7, +1.5, +3.1 s; the next one waits 3.2 s more.
    await new Promise((r) => setTimeout(r, 3200));
    const b2 = track(makeNode(2, b.port, [[1, a.port]], slow));
    await b2.t.start();
    const t0 = Date.now();
    b2.t.send(1, [{ group: 1, message: appMsg(2, 1, 0) }]); // b2 dials a: a hears from it
    await until(() => a.received() === 1, 5000, 'a hears from the restarted b');
    // a's own stream to b2 is back well before its back-off timer (~3 s away) would have fired.
    await until(() => !a.t.unreachablePeers().includes(2), 2000, "a's stream to b back up");
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 1) }]);
    await until(() => b2.received() === 1, 2000, 'delivery to the restarted b');
    expect(Date.now() - t0).to.be.lessThan(1000);
  });

  it('backs off exponentially (capped) against a dead address', async () => {
    const dead = await freePort();
    const pa = await freePort();
    const a = track(makeNode(1, pa, [[2, dead]], { backoff: { initialMs: 25, maxMs: 200 }, random: () => 0.999 }));
    await a.t.start();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 2500));
    const attempts = a.t.stats().reconnects;
    // Capped at 200 ms: delays 25, 50, 100, 200, 200, ... => ~14 re-dials in 2.5 s.
    // A tight loop would do hundreds; without the cap (25, 50, ... 1600) it would be ~6.
    expect(Date.now() - t0).to.be.greaterThan(2400);
    expect(attempts).to.be.within(9, 20);
    expect(a.t.unreachablePeers()).to.deep.equal([2]);
  });

  it('splits batches under the size limit and drops (and counts) a message that can never fit', async () => {
    const limit = 64 * 1024;
    const [a, b] = await pair({ maxMessageBytes: limit }, { maxMessageBytes: limit });
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    await until(() => b.received() === 1);
    const sentBefore = a.t.stats().sentBatches;
    // 40 messages of 4 KiB each: 160 KiB in all, must go as 3+ batches of < 64 KiB.
    const many = Array.from({ length: 40 }, (_, i) => ({ group: 2, message: appMsg(1, 2, 100 + i, 1, 4096) }));
    const huge = { group: 3, message: appMsg(1, 2, 500, 1, limit + 1) };
    a.t.send(2, [...many.slice(0, 20), huge, ...many.slice(20)]);
    await until(() => b.received() === 41, 5000, '40 messages');
    expect(a.t.stats().sentBatches - sentBefore).to.be.within(3, 4);
    expect(a.t.stats().droppedMessages).to.equal(1);
    expect(b.batches.slice(1).flatMap((x) => x.msgs).map((m) => m.message.index)).to.deep.equal(many.map((m) => m.message.index));
    // The stream survived: later messages still arrive.
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 9) }]);
    await until(() => b.received() === 42);
    expect(a.t.unreachablePeers()).to.deep.equal([]);
  });

  it('the server enforces its receive limit too (a sender with a bigger limit is cut off)', async () => {
    const [a, b] = await pair({ maxMessageBytes: 1024 * 1024 }, { maxMessageBytes: 16 * 1024 });
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0, 1, 100 * 1024) }]);
    await until(() => a.t.unreachablePeers().includes(2), 5000, 'stream refused');
    expect(b.received()).to.equal(0);
  });

  it('refuses streams and batches with a wrong cluster id or node id', async () => {
    const [, b] = await pair();
    const client = new grpc.Client(b.addr, grpc.credentials.createInsecure());
    try {
      const attempt = async (cluster: string, to: string, batchCluster: string): Promise<grpc.ServiceError | null> => {
        const { md } = await peerMetadata(client, { from: 9, to: Number(to), cluster });
        return new Promise((resolve) => {
          const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
          call.on('data', () => undefined);
          call.on('error', (e: grpc.ServiceError) => resolve(e));
          call.on('end', () => resolve(null));
          call.write(encodeBatch({ fromNode: 9, toNode: 2, clusterId: batchCluster, seq: 1, messages: [{ group: 1, message: appMsg(9, 2, 0) }] }));
          setTimeout(() => call.end(), 200);
        });
      };
      const wrongStreamCluster = await attempt('other', '2', 'test');
      expect(wrongStreamCluster?.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(wrongStreamCluster?.details).to.match(/wrong cluster 'other'/);
      const wrongNode = await attempt('test', '3', 'test');
      expect(wrongNode?.code).to.equal(grpc.status.FAILED_PRECONDITION);
      const wrongBatchCluster = await attempt('test', '2', 'other');
      expect(wrongBatchCluster?.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(b.received()).to.equal(0);
      const ok = await attempt('test', '2', 'test');
      expect(ok).to.equal(null);
      expect(b.received()).to.equal(1);
      expect(b.t.stats().rejectedBatches).to.equal(3);
    } finally {
      client.close();
    }
  });

  it('never connects to a peer that answers Hello as another cluster', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = track(makeNode(1, pa, [[2, pb]]));
    const b = track(makeNode(2, pb, [[1, pa]], { clusterId: 'elsewhere' }));
    await Promise.all([a.t.start(), b.t.start()]);
    a.t.send(2, [{ group: 1, message: { ...appMsg(1, 2, 0), type: MessageType.Heartbeat } }]);
    await until(() => a.t.unreachablePeers().includes(2), 5000, 'peer refused');
    expect(b.received()).to.equal(0);
  });

  it('never connects to a peer that answers Hello as another node', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    // Node 1 believes node 2 lives at pb, but node 3 listens there.
    const a = track(makeNode(1, pa, [[2, pb]]));
    const c = track(makeNode(3, pb, [[1, pa]]));
    await Promise.all([a.t.start(), c.t.start()]);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    await until(() => a.t.unreachablePeers().includes(2), 5000, 'peer refused');
    await new Promise((r) => setTimeout(r, 100));
    expect(c.received()).to.equal(0);
    // Fixing the address heals it.
    const b = track(makeNode(2, await freePort(), [[1, pa]]));
    await b.t.start();
    a.t.setPeer(2, b.addr);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 1) }]);
    await until(() => b.received() === 1, 5000, 'delivery to the right node');
  });

  it('fails start() with ADDRESS_IN_USE when the port is taken', async () => {
    const [a] = await pair();
    const clash = new GrpcTransport({ nodeId: 3, clusterId: 'test', listenAddr: a.addr, peers: new Map() }, { onMessages: () => undefined, onSnapshot: async () => undefined });
    let err: unknown;
    try {
      await clash.start();
    } catch (e) {
      err = e;
    } finally {
      await clash.close();
    }
    expect(err).to.be.instanceOf(TransportError);
    expect((err as TransportError).code).to.equal('ADDRESS_IN_USE');
    expect((err as TransportError).message).to.equal(`cannot listen on ${a.addr}: the address is already in use`);
  });

  it('setPeer/removePeer change where messages go', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = track(makeNode(1, pa, []));
    const b = track(makeNode(2, pb, []));
    await Promise.all([a.t.start(), b.t.start()]);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    expect(a.t.stats().droppedMessages).to.equal(1);
    a.t.setPeer(2, b.addr);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 1) }]);
    await until(() => b.received() === 1);
    a.t.removePeer(2);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 2) }]);
    expect(a.t.stats().droppedMessages).to.equal(2);
    expect(a.t.unreachablePeers()).to.deep.equal([]);
  });
});
