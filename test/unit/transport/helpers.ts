// Shared by the transport tests: real transports on loopback ports.
import { EntryType, MessageType, type Message } from '../../../daemon/raft/types.js';
import type { GroupMessage } from '../../../daemon/transport/codec.js';
import { GrpcTransport, type SnapshotHeader, type TransportOptions } from '../../../daemon/transport/transport.js';
import type { TransportError } from '../../../daemon/transport/errors.js';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { HelloRequestSchema } from '../../../gen/raftd/v1/raft_pb.js';
import { clientProof, newNonce, type HandshakeFacts } from '../../../daemon/transport/auth.js';
import { MD_CLIENT_NONCE, MD_CLUSTER, MD_FROM, MD_INCARNATION, MD_PROOF, MD_SERVER_NONCE, MD_TO, helloMethod } from '../../../daemon/transport/service.js';
export { freePort } from '../../support/ports.js';

/** A port nobody listens on right now (listen on 0, note the port, close). */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function appMsg(from: number, to: number, index: number, entries = 1, size = 64): Message {
  const es = [];
  for (let i = 0; i < entries; i++) es.push({ term: 1, index: index + i + 1, type: EntryType.Normal, data: new Uint8Array(size).fill((index + i) & 0xff) });
  return { type: MessageType.App, to, from, term: 1, logTerm: 1, index, entries: es, commit: index, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

export const TEST_CLUSTER_SECRET = 'transport-test-cluster-secret';

export interface TestNode {
  t: GrpcTransport;
  id: number;
  port: number;
  addr: string;
  batches: Array<{ from: number; msgs: GroupMessage[] }>;
  snapshots: Array<{ header: SnapshotHeader; bytes: Buffer }>;
  /** Refusals reported as fatal (onFatal), e.g. PEER_DISK_REPLACED. */
  fatal: TransportError[];
  received(): number;
}

export function makeNode(id: number, port: number, peers: Array<[number, number]>, opts: Partial<TransportOptions> = {}, onSnapshot?: (h: SnapshotHeader, data: AsyncIterable<Uint8Array>) => Promise<void>): TestNode {
  const node: TestNode = {
    id,
    port,
    addr: `127.0.0.1:${port}`,
    batches: [],
    snapshots: [],
    fatal: [],
    received: () => node.batches.reduce((n, b) => n + b.msgs.length, 0),
    t: undefined as unknown as GrpcTransport,
  };
  node.t = new GrpcTransport(
    {
      nodeId: id,
      clusterId: 'test',
      listenAddr: `127.0.0.1:${port}`,
      peers: new Map(peers.map(([pid, pport]) => [pid, `127.0.0.1:${pport}`])),
      backoff: { initialMs: 20, maxMs: 200 },
      // Secure by default, as raftd is: peers prove this secret on every call.
      ...(opts.tls ? {} : { clusterSecret: TEST_CLUSTER_SECRET }),
      incarnation: `inc-${id}`,
      ...opts,
    },
    {
      onMessages: (from, msgs) => node.batches.push({ from, msgs }),
      onFatal: (e) => node.fatal.push(e),
      onSnapshot:
        onSnapshot ??
        (async (header, data) => {
          const parts: Buffer[] = [];
          for await (const c of data) parts.push(Buffer.from(c));
          node.snapshots.push({ header, bytes: Buffer.concat(parts) });
        }),
    },
  );
  return node;
}

/** A Hello on `client`: the server's one-time nonce (and, without a secret, its identity). */
export function hello(client: grpc.Client, req: { nodeId?: number; clusterId?: string; incarnation?: string } = {}): Promise<import('../../../gen/raftd/v1/raft_pb.js').HelloResponse> {
  const msg = create(HelloRequestSchema, { nodeId: BigInt(req.nodeId ?? 0), clusterId: req.clusterId ?? '', incarnation: req.incarnation ?? '' });
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(helloMethod.path, helloMethod.requestSerialize, helloMethod.responseDeserialize, msg, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

/**
 * What a real peer sends on a Stream / SendSnapshot call: identity, incarnation and (with a
 * secret) an HMAC proof over a fresh server nonce from Hello. Tests use it to forge, replay or
 * vary one part at a time.
 */
export async function peerMetadata(
  client: grpc.Client,
  p: { from: number; to: number; cluster?: string; incarnation?: string; secret?: string; serverNonce?: Uint8Array },
): Promise<{ md: grpc.Metadata; facts: HandshakeFacts }> {
  const cluster = p.cluster ?? 'test';
  const incarnation = p.incarnation ?? `inc-${p.from}`;
  const serverNonce = p.serverNonce ?? (await hello(client, { nodeId: p.from, clusterId: cluster, incarnation })).serverNonce;
  const facts: HandshakeFacts = { clusterId: cluster, clientId: p.from, serverId: p.to, clientIncarnation: incarnation, clientNonce: newNonce(), serverNonce };
  const md = new grpc.Metadata();
  md.set(MD_CLUSTER, cluster);
  md.set(MD_FROM, String(p.from));
  md.set(MD_TO, String(p.to));
  if (incarnation !== '') md.set(MD_INCARNATION, incarnation);
  const secret = p.secret ?? TEST_CLUSTER_SECRET;
  if (secret !== '') {
    md.set(MD_CLIENT_NONCE, Buffer.from(facts.clientNonce).toString('hex'));
    md.set(MD_SERVER_NONCE, Buffer.from(serverNonce).toString('hex'));
    md.set(MD_PROOF, clientProof(Buffer.from(secret), facts).toString('hex'));
  }
  return { md, facts };
}
