// A peer id that comes back with another data directory (incarnation) is refused, and the refused
// node is told so in a machine-readable way (PEER_DISK_REPLACED) so it can stop.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { TransportError } from '../../../daemon/transport/errors.js';
import { MD_REFUSAL, streamMethod } from '../../../daemon/transport/service.js';
import { encodeBatch } from '../../../daemon/transport/codec.js';
import { GrpcTransport, type IncarnationBook } from '../../../daemon/transport/transport.js';
import { appMsg, freePort, makeNode, peerMetadata, until, type TestNode } from './helpers.js';

/** In-memory book, same contract as daemon/storage PeerIncarnations. */
class MemoryBook implements IncarnationBook {
  readonly records = new Map<number, string>();
  async admit(peer: number, incarnation: string): Promise<string | undefined> {
    const known = this.records.get(peer);
    if (known === undefined) {
      this.records.set(peer, incarnation);
      return undefined;
    }
    return known === incarnation ? undefined : known;
  }
}

describe('GrpcTransport: peer incarnations (disk replacement)', function () {
  this.timeout(20000);
  const open: GrpcTransport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  function node(id: number, port: number, peers: Array<[number, number]>, incarnation: string | undefined, book?: IncarnationBook): TestNode {
    const n = makeNode(id, port, peers, { ...(incarnation !== undefined ? { incarnation } : {}), ...(book ? { peerIncarnations: book } : {}) });
    open.push(n.t);
    return n;
  }


  it('records the first incarnation, refuses another one for the same id, and tells the refused node', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const book = new MemoryBook();
    const a = node(1, pa, [], 'aaaa', book);
    await a.t.start();
    const b = node(2, pb, [[1, pa]], 'b-old');
    await b.t.start();
    b.t.send(1, [{ group: 1, message: appMsg(2, 1, 0) }]);
    await until(() => a.received() === 1, 5000, 'delivery from the known disk');
    expect(book.records.get(2)).to.equal('b-old');
    await b.t.close();

    // Node 2 again, same id and address, but a new data directory.
    const b2 = node(2, pb, [[1, pa]], 'b-new');
    await b2.t.start();
    b2.t.send(1, [{ group: 1, message: appMsg(2, 1, 1) }]);
    await until(() => b2.fatal.length === 1, 5000, 'the refused node is told');
    const e = b2.fatal[0]!;
    expect(e).to.be.instanceOf(TransportError);
    expect(e.code).to.equal('PEER_DISK_REPLACED');
    expect(e.message).to.match(/^node 1 refused this node: node 2 came back with a different data directory \(incarnation b-new, known b-old\)/);
    await new Promise((r) => setTimeout(r, 300));
    b2.t.send(1, [{ group: 1, message: appMsg(2, 1, 2) }]);
    await new Promise((r) => setTimeout(r, 300));
    expect(a.received()).to.equal(1);
    expect(b2.fatal).to.have.length(1); // reported once, however often it retries
    expect(book.records.get(2)).to.equal('b-old');
  });

  it('refuses a stream opened without Hello, with the code in a trailer, before any message is handed on', async () => {
    const pa = await freePort();
    const book = new MemoryBook();
    book.records.set(2, 'b-old');
    const a = node(1, pa, [], 'aaaa', book);
    await a.t.start();
    const client = new grpc.Client(`127.0.0.1:${pa}`, grpc.credentials.createInsecure());
    try {
      const { md } = await peerMetadata(client, { from: 2, to: 1, incarnation: 'b-new' });
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
        call.on('data', () => undefined);
        call.on('error', resolve);
      });
      expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(err.metadata.get(MD_REFUSAL)).to.deep.equal(['PEER_DISK_REPLACED']);
      expect(err.details).to.match(/node 2 came back with a different data directory \(incarnation b-new, known b-old\)/);
      expect(a.received()).to.equal(0);
    } finally {
      client.close();
    }
  });

  it('refuses a peer that sends no incarnation, even with a valid proof, and records nothing', async () => {
    const pa = await freePort();
    const book = new MemoryBook();
    const a = node(1, pa, [], 'aaaa', book);
    await a.t.start();
    const client = new grpc.Client(`127.0.0.1:${pa}`, grpc.credentials.createInsecure());
    try {
      const { md } = await peerMetadata(client, { from: 2, to: 1, incarnation: '' });
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        const call = client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
        call.on('data', () => undefined);
        call.on('error', resolve);
        call.write(encodeBatch({ fromNode: 2, toNode: 1, clusterId: 'test', seq: 1, messages: [{ group: 1, message: appMsg(2, 1, 0) }] }));
      });
      expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(err.details).to.match(/raftd-incarnation is required/);
      expect(a.received()).to.equal(0);
      expect(book.records.size).to.equal(0);
    } finally {
      client.close();
    }
  });
});
