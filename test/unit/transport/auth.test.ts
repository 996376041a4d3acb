// Peer authentication with a cluster secret (daemon/transport/auth.ts), attacked the way a process
// on the same network would: no proof, a proof made with the wrong secret, a replayed handshake, a
// peer speaking for another node, and a server that does not hold the secret. Real gRPC on loopback.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { MessageType } from '../../../daemon/raft/types.js';
import { encodeBatch } from '../../../daemon/transport/codec.js';
import { MD_PROOF, streamMethod } from '../../../daemon/transport/service.js';
import { GrpcTransport } from '../../../daemon/transport/transport.js';
import { NonceBook } from '../../../daemon/transport/auth.js';
import { appMsg, freePort, hello, makeNode, peerMetadata, until, type TestNode } from './helpers.js';

/** Opens a Stream with `md`, writes one batch, and reports how the server ended it. */
function attempt(client: grpc.Client, md: grpc.Metadata, from: number, to: number, claimedSender = from): Promise<{ err: grpc.ServiceError | null; welcomed: boolean }> {
  return new Promise((resolve) => {
    let welcomed = false;
    const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
    call.on('data', () => {
      welcomed = true;
    });
    call.on('error', (e: grpc.ServiceError) => resolve({ err: e, welcomed }));
    call.on('end', () => resolve({ err: null, welcomed }));
    const heartbeat = { ...appMsg(claimedSender, to, 0), type: MessageType.Heartbeat, term: 778, entries: [] };
    call.write(encodeBatch({ fromNode: from, toNode: to, clusterId: 'test', seq: 1, messages: [{ group: 16, message: heartbeat }] }));
    setTimeout(() => call.end(), 300);
  });
}

describe('GrpcTransport: peers prove the cluster secret', function () {
  this.timeout(20000);
  const open: GrpcTransport[] = [];
  let b: TestNode;
  let client: grpc.Client;
  beforeEach(async () => {
    b = makeNode(2, await freePort(), []);
    open.push(b.t);
    await b.t.start();
    client = new grpc.Client(b.addr, grpc.credentials.createInsecure());
  });
  afterEach(async () => {
    client.close();
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  it('Hello tells an unauthenticated caller nothing but a fresh one-time challenge', async () => {
    const r1 = await hello(client, { nodeId: 1, clusterId: 'test', incarnation: 'x' });
    const r2 = await hello(client);
    expect(r1.nodeId).to.equal(0n);
    expect(r1.clusterId).to.equal('');
    expect(r1.version).to.equal('');
    expect(r1.serverNonce).to.have.length(32);
    expect(Buffer.from(r1.serverNonce).equals(Buffer.from(r2.serverNonce))).to.equal(false);
  });

  it('refuses a stream without a proof, with a wrong secret, and a replayed handshake; nothing reaches a group', async () => {
    const none = await attempt(client, (await peerMetadata(client, { from: 1, to: 2, secret: '' })).md, 1, 2);
    expect(none.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    const wrong = await attempt(client, (await peerMetadata(client, { from: 1, to: 2, secret: 'not-the-secret' })).md, 1, 2);
    expect(wrong.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    // A proof over a nonce this server never issued (e.g. a captured handshake with another node).
    const forgedNonce = await attempt(client, (await peerMetadata(client, { from: 1, to: 2, serverNonce: Buffer.alloc(32, 1) })).md, 1, 2);
    expect(forgedNonce.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(b.received()).to.equal(0);

    // A genuine handshake works once...
    const { md } = await peerMetadata(client, { from: 1, to: 2 });
    const first = await attempt(client, md, 1, 2);
    expect(first.err).to.equal(null);
    expect(first.welcomed).to.equal(true);
    expect(b.received()).to.equal(1);
    // ...and the very same metadata, captured and replayed, is refused: its server nonce is spent.
    const replay = await attempt(client, md, 1, 2);
    expect(replay.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(replay.welcomed).to.equal(false);
    expect(b.received()).to.equal(1);
  });

  it('binds the proof to the claimed id and incarnation: changing either after proving is refused', async () => {
    const { md } = await peerMetadata(client, { from: 1, to: 2 });
    md.set('raftd-from', '3'); // proven as node 1, claims node 3
    expect((await attempt(client, md, 3, 2)).err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    const { md: md2 } = await peerMetadata(client, { from: 1, to: 2, incarnation: 'inc-1' });
    md2.set('raftd-incarnation', 'other');
    expect((await attempt(client, md2, 1, 2)).err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(b.received()).to.equal(0);
  });

  it('an authenticated node cannot speak for another: a message "from node 3" on node 1\'s stream is refused', async () => {
    const { md } = await peerMetadata(client, { from: 1, to: 2 });
    const spoof = await attempt(client, md, 1, 2, 3);
    expect(spoof.err?.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(b.received()).to.equal(0);
  });

  it('a client never sends to a server that cannot prove the secret', async () => {
    const [pa, pc] = [await freePort(), await freePort()];
    const impostor = makeNode(3, pc, [], { clusterSecret: 'impostor-secret' });
    const a = makeNode(1, pa, [[3, pc]]);
    open.push(impostor.t, a.t);
    await Promise.all([impostor.t.start(), a.t.start()]);
    a.t.send(3, [{ group: 1, message: appMsg(1, 3, 0) }]);
    await until(() => a.t.unreachablePeers().includes(3), 5000, 'impostor refused');
    await new Promise((r) => setTimeout(r, 200));
    expect(impostor.received()).to.equal(0);
    // And the proof in the impostor's answer was there but wrong (not merely missing).
    const { md } = await peerMetadata(client, { from: 1, to: 2 });
    const headers = await new Promise<grpc.Metadata>((resolve) => {
      const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
      call.on('metadata', (h: grpc.Metadata) => {
        resolve(h);
        call.cancel();
      });
      call.on('error', () => undefined);
    });
    expect(String(headers.get(MD_PROOF)[0])).to.match(/^[0-9a-f]{64}$/);
  });

  it('a node with the secret refuses a peer that runs without one: no message, no snapshot byte', async () => {
    const pc = await freePort();
    const open3 = makeNode(3, pc, [], { clusterSecret: '' });
    const a = makeNode(1, await freePort(), [[3, pc]]);
    open.push(open3.t, a.t);
    await Promise.all([open3.t.start(), a.t.start()]);
    a.t.send(3, [{ group: 1, message: appMsg(1, 3, 0) }]);
    await until(() => a.t.unreachablePeers().includes(3), 5000, 'secretless peer refused');
    const header = { group: 1, from: 1, to: 3, term: 1, metadata: { index: 5, term: 1, confState: { voters: [1, 3], learners: [] } } };
    async function* one(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(10);
    }
    const err = await a.t.sendSnapshot(3, header, one()).then(() => null, (e: Error) => e);
    expect(err?.message).to.match(/runs without a cluster secret/);
    expect(open3.received()).to.equal(0);
    expect(open3.snapshots).to.have.length(0);
  });
});

describe('NonceBook: server challenges are single-use, short-lived and bounded', () => {
  it('takes a nonce once, never after it expired, never one it did not issue; evicts the oldest when full', () => {
    let now = 1000;
    const book = new NonceBook(30_000, 3, () => now);
    const a = book.issue();
    expect(book.take(a)).to.equal(true);
    expect(book.take(a)).to.equal(false); // spent
    expect(book.take(Buffer.alloc(32, 9))).to.equal(false); // never issued
    const b = book.issue();
    now += 30_001;
    expect(book.take(b)).to.equal(false); // expired
    const [c, d, e, f] = [book.issue(), book.issue(), book.issue(), book.issue()];
    expect(book.take(c)).to.equal(false); // evicted: at most 3 outstanding
    expect([book.take(d), book.take(e), book.take(f)]).to.deep.equal([true, true, true]);
  });
});
