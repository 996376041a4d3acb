import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { HelloResponseSchema, SendSnapshotRequestSchema, type HelloResponse, type SendSnapshotRequest } from '../../../gen/raftd/v1/raft_pb.js';
import { serverProof } from '../../../daemon/transport/auth.js';
import { TransportError } from '../../../daemon/transport/errors.js';
import { MD_CLIENT_NONCE, MD_INCARNATION, MD_PROOF, helloMethod, snapshotMethod } from '../../../daemon/transport/service.js';
import type { SnapshotHeader } from '../../../daemon/transport/transport.js';
import { TEST_CLUSTER_SECRET, freePort, makeNode, peerMetadata, type TestNode } from './helpers.js';

const header: SnapshotHeader = { group: 7, from: 1, to: 2, term: 3, metadata: { index: 1000, term: 3, confState: { voters: [1, 2, 3], learners: [4] } } };

async function* pieces(data: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  let off = 0;
  let i = 0;
  while (off < data.length) {
    const n = sizes[i++ % sizes.length]!;
    yield data.subarray(off, off + n);
    off += n;
  }
}

describe('GrpcTransport snapshots (real gRPC on loopback)', function () {
  this.timeout(30000);
  let a: TestNode;
  let b: TestNode;
  let dir: string;
  let calls: number;
  let refuse: Error | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftd-snap-test-'));
    const [pa, pb] = [await freePort(), await freePort()];
    calls = 0;
    a = makeNode(1, pa, [[2, pb]], { snapshotChunkBytes: 1024 * 1024 });
    refuse = undefined;
    b = makeNode(2, pb, [[1, pa]], { snapshotDir: dir, snapshotChunkBytes: 1024 * 1024 }, async (h, d) => {
      calls++;
      // The spooled file exists while the handler runs; it is removed after.
      expect(readdirSync(dir)).to.have.length(1);
      if (refuse) throw refuse;
      const parts: Buffer[] = [];
      for await (const c of d) parts.push(Buffer.from(c));
      b.snapshots.push({ header: h, bytes: Buffer.concat(parts) });
    });
    await Promise.all([a.t.start(), b.t.start()]);
  });
  afterEach(async () => {
    await Promise.all([a.t.close(), b.t.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('transfers several MiB in chunks; the receiver gets verified bytes, size and SHA-256', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 123);
    // Odd piece sizes, one larger than the chunk size (split by the sender).
    await a.t.sendSnapshot(2, header, pieces(data, [300_000, 2_500_000, 7]));
    expect(b.snapshots).to.have.length(1);
    const got = b.snapshots[0]!;
    expect(got.bytes.equals(data)).to.equal(true);
    expect(got.header.totalSize).to.equal(data.length);
    expect(Buffer.from(got.header.sha256!).toString('hex')).to.equal(createHash('sha256').update(data).digest('hex'));
    expect(got.header.metadata).to.deep.equal(header.metadata);
    expect([got.header.group, got.header.from, got.header.to, got.header.term]).to.deep.equal([7, 1, 2, 3]);
    expect(a.t.stats().snapshotsSent).to.equal(1);
    expect(b.t.stats().snapshotsReceived).to.equal(1);
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('an empty snapshot is a valid snapshot', async () => {
    await a.t.sendSnapshot(2, header, pieces(Buffer.alloc(0), [1]));
    expect(b.snapshots[0]!.bytes.length).to.equal(0);
  });

  describe('a bad transfer is refused before the handler sees it', () => {
    function raw(chunks: SendSnapshotRequest[], opts: { end?: boolean; cancelAfterMs?: number } = {}): Promise<grpc.ServiceError | null> {
      const client = new grpc.Client(b.addr, grpc.credentials.createInsecure());
      return peerMetadata(client, { from: 1, to: 2 }).then(({ md }) => new Promise<grpc.ServiceError | null>((resolve) => {
        const call = client.makeClientStreamRequest(snapshotMethod.path, snapshotMethod.requestSerialize, snapshotMethod.responseDeserialize, md, {}, (err) => resolve(err));
        for (const c of chunks) call.write(c);
        if (opts.cancelAfterMs !== undefined) setTimeout(() => call.cancel(), opts.cancelAfterMs);
        else call.end();
      })).finally(() => client.close());
    }
    const pbHeader = (over: Partial<{ clusterId: string; totalSize: bigint }> = {}): SendSnapshotRequest =>
      create(SendSnapshotRequestSchema, { chunk: { kind: { case: 'header', value: { clusterId: 'test', group: 7, from: 1n, to: 2n, term: 3n, metadata: { index: 10n, term: 3n }, ...over } } } });
    const dataChunk = (b: Uint8Array): SendSnapshotRequest => create(SendSnapshotRequestSchema, { chunk: { kind: { case: 'data', value: b } } });
    const trailer = (size: number, sha: Uint8Array): SendSnapshotRequest =>
      create(SendSnapshotRequestSchema, { chunk: { kind: { case: 'trailer', value: { totalSize: BigInt(size), sha256: sha } } } });
    const payload = randomBytes(200_000);
    const sha = new Uint8Array(createHash('sha256').update(payload).digest());

    it('accepts the well-formed raw transfer (control)', async () => {
      expect(await raw([pbHeader(), dataChunk(payload), trailer(payload.length, sha)])).to.equal(null);
      expect(calls).to.equal(1);
    });

    it('refuses a corrupted byte (checksum mismatch) with DATA_LOSS', async () => {
      const bad = Buffer.from(payload);
      bad[100_000] ^= 1;
      const err = await raw([pbHeader(), dataChunk(bad), trailer(payload.length, sha)]);
      expect(err?.code).to.equal(grpc.status.DATA_LOSS);
      expect(err?.details).to.match(/SHA-256 mismatch/);
      expect(calls).to.equal(0);
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('refuses a short transfer: bytes missing, or no trailer at all', async () => {
      const missing = await raw([pbHeader(), dataChunk(payload.subarray(0, 150_000)), trailer(payload.length, sha)]);
      expect(missing?.code).to.equal(grpc.status.DATA_LOSS);
      expect(missing?.details).to.match(/received 150000 bytes, sender declared 200000/);
      const cut = await raw([pbHeader(), dataChunk(payload.subarray(0, 150_000))]);
      expect(cut?.code).to.equal(grpc.status.DATA_LOSS);
      expect(cut?.details).to.match(/without a trailer/);
      const overDeclared = await raw([pbHeader({ totalSize: 1000n }), dataChunk(payload), trailer(payload.length, sha)]);
      expect(overDeclared?.code).to.equal(grpc.status.DATA_LOSS);
      expect(calls).to.equal(0);
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('refuses a sender that cancels mid-transfer, and cleans up the spool file', async () => {
      const err = await raw([pbHeader(), dataChunk(payload)], { cancelAfterMs: 100 });
      expect(err?.code).to.equal(grpc.status.CANCELLED);
      await new Promise((r) => setTimeout(r, 100));
      expect(calls).to.equal(0);
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('refuses a snapshot for another cluster', async () => {
      const err = await raw([pbHeader({ clusterId: 'other' }), dataChunk(payload), trailer(payload.length, sha)]);
      expect(err?.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(calls).to.equal(0);
    });
  });

  it('respects flow control: a receiver that does not read stops the sender pulling its source', async () => {
    // A bare gRPC server that accepts SendSnapshot and never reads it.
    const server = new grpc.Server();
    let stalled: grpc.ServerReadableStream<unknown, unknown> | undefined;
    // It plays a peer that holds the secret: a challenge on Hello, its proof in the headers.
    const serverNonce = Buffer.alloc(32, 7);
    server.addService({ SendSnapshot: snapshotMethod, Hello: helloMethod } as grpc.ServiceDefinition, {
      Hello: (_call: unknown, cb: grpc.sendUnaryData<HelloResponse>) => cb(null, create(HelloResponseSchema, { serverNonce })),
      SendSnapshot: (call: grpc.ServerReadableStream<unknown, unknown>) => {
        stalled = call;
        const facts = { clusterId: 'test', clientId: 1, serverId: 9, clientIncarnation: 'inc-1', clientNonce: Buffer.from(String(call.metadata.get(MD_CLIENT_NONCE)[0]), 'hex'), serverNonce };
        const headers = new grpc.Metadata();
        headers.set(MD_PROOF, serverProof(Buffer.from(TEST_CLUSTER_SECRET), facts, 'inc-9').toString('hex'));
        headers.set(MD_INCARNATION, 'inc-9');
        call.sendMetadata(headers);
        call.pause();
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    try {
      a.t.setPeer(9, `127.0.0.1:${port}`);
      let produced = 0;
      async function* endless(): AsyncGenerator<Uint8Array> {
        const mib = randomBytes(1024 * 1024);
        for (;;) {
          produced += mib.length;
          yield mib;
        }
      }
      const sending = a.t.sendSnapshot(9, { ...header, to: 9 }, endless()).then(() => null, (e: unknown) => e);
      await new Promise((r) => setTimeout(r, 1000));
      expect(stalled, 'server got the call').to.not.equal(undefined);
      // Without back-pressure the loop would have pulled hundreds of MiB by now.
      expect(produced).to.be.greaterThan(0);
      expect(produced).to.be.lessThan(32 * 1024 * 1024);
      server.forceShutdown();
      const err = await sending;
      expect(err).to.be.instanceOf(TransportError).with.property('code', 'SNAPSHOT_FAILED');
    } finally {
      server.forceShutdown();
    }
  });

  it('rejects sendSnapshot when the source fails, the receiver refuses, or the peer is unknown', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield randomBytes(1000);
      throw new Error('app went away');
    }
    const e1 = await a.t.sendSnapshot(2, header, failing()).then(() => null, (e: unknown) => e);
    expect(e1).to.be.instanceOf(TransportError).with.property('code', 'SNAPSHOT_FAILED');
    expect((e1 as Error).message).to.match(/app went away/);

    refuse = new Error('disk full');
    const e2 = await a.t.sendSnapshot(2, header, pieces(randomBytes(10), [10])).then(() => null, (e: unknown) => e);
    expect(e2).to.be.instanceOf(TransportError).with.property('code', 'SNAPSHOT_FAILED');
    expect((e2 as Error).message).to.match(/disk full/);

    const e3 = await a.t.sendSnapshot(9, header, pieces(randomBytes(10), [10])).then(() => null, (e: unknown) => e);
    expect(e3).to.be.instanceOf(TransportError).with.property('code', 'PEER_UNKNOWN');
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(dir)).to.deep.equal([]);
  });
});
