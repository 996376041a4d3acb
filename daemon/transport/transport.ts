// gRPC transport between raftd nodes.
//
// Outbound: one long-lived Stream call per peer (this node -> peer). Everything send() gets for a
// peer within one event-loop turn goes out as ONE MessageBatch (split only to stay under the
// message size limit). When a peer is unreachable its messages are dropped and counted: Raft
// retransmits, and a queue that grew without bound would only deliver stale messages late.
// Inbound: the server checks identity (cluster id, to-node) per stream and per batch, and per
// stream the sender's data-directory incarnation (a known id on a new disk is refused:
// PEER_DISK_REPLACED), and hands messages to onMessages. Snapshots go over SendSnapshot on a separate connection, so a large
// transfer never delays heartbeats; the receiver spools to disk and verifies size and SHA-256
// before the handler sees a single byte.

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { pino, type Logger } from 'pino';
import type { SnapshotMetadata } from '../raft/types.js';
import {
  HelloRequestSchema,
  HelloResponseSchema,
  SendSnapshotRequestSchema,
  SendSnapshotResponseSchema,
  type HelloRequest,
  type HelloResponse,
  type SendSnapshotRequest,
  type SendSnapshotResponse,
  type SnapshotHeader as PbSnapshotHeader,
  SnapshotMetadataSchema,
  type SnapshotMetadata as PbSnapshotMetadata,
} from '../../gen/raftd/v1/raft_pb.js';
import { decodeAck, decodeBatch, encodeAck, encodeBatch, encodedMessageSize, type GroupMessage } from './codec.js';
import { TransportError, type TransportErrorCode } from './errors.js';
import { widenReceiveWindows } from './window.js';
import { JITTER, backoffDelay } from '../../protocol/backoff.js';
import { MD_CLIENT_NONCE, MD_CLUSTER, MD_FROM, MD_INCARNATION, MD_PROOF, MD_REFUSAL, MD_SERVER_NONCE, MD_TO, helloMethod, raftTransportService, snapshotMethod, streamMethod } from './service.js';
import { NONCE_BYTES, NonceBook, clientProof, newNonce, proofMatches, serverProof, type HandshakeFacts } from './auth.js';

export const PROTOCOL_VERSION = 'raftd.v1';

export interface TransportOptions {
  nodeId: number;
  clusterId: string;
  /** host:port ([v6]:port) to listen on; port 0 picks a free port (see boundPort()). */
  listenAddr: string;
  /** Peer id -> host:port. Copied; change it later with setPeer / removePeer. */
  peers: Map<number, string>;
  /** Mutual TLS: the server requires client certificates signed by the CA, the client verifies the server. */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /** Largest gRPC message either way, set on channels and server. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Reconnect back-off per peer: doubles from initialMs up to maxMs, with jitter. Default 100 ms .. 5 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number;
  /** Per-peer bound on messages waiting to be written (connecting, or the socket is full). Default 10000 / 64 MiB. */
  queueLimit?: { messages: number; bytes: number };
  /** Snapshot chunk size. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Where received snapshots are spooled while they are verified. Default the OS temp dir. */
  snapshotDir?: string;
  /** Timeout of the Hello identity check on connect. Default 5 s. */
  helloTimeoutMs?: number;
  /**
   * This node's data-directory incarnation, sent in Hello and call metadata and bound into the
   * peer proof. A peer that sends none is refused. Default: a random one per transport (a node
   * without a durable store is a new incarnation every time it starts).
   */
  incarnation?: string;
  /**
   * The cluster secret peers prove to each other on every call (daemon/transport/auth.ts): a
   * call without a valid proof is refused before anything reaches a group, and Hello tells an
   * unauthenticated caller nothing. Without it (mutual TLS, or an --insecure test cluster) peers
   * are not asked for a proof.
   */
  clusterSecret?: string | Uint8Array;
  /** Where peers' incarnations are recorded; without it any incarnation is admitted. */
  peerIncarnations?: IncarnationBook;
}

/** Per peer id, the first data-directory incarnation seen (daemon/storage PeerIncarnations). */
export interface IncarnationBook {
  /** undefined = admit (matches, or first sighting now durably recorded); else the recorded one. */
  admit(peer: number, incarnation: string): Promise<string | undefined>;
}

export interface SnapshotHeader {
  group: number;
  from: number;
  to: number;
  term: number;
  metadata: SnapshotMetadata;
  /** Size and SHA-256 of the data: optional when sending (computed on the fly), always set on receipt. */
  totalSize?: number;
  sha256?: Uint8Array;
}

export interface TransportHandlers {
  onMessages(from: number, msgs: GroupMessage[]): void;
  /** Called only once the whole snapshot arrived and matched its size and checksum; resolve = stored. */
  onSnapshot(header: SnapshotHeader, data: AsyncIterable<Uint8Array>): Promise<void>;
  /**
   * A peer refused this node in a way that retrying cannot fix (PEER_DISK_REPLACED): the node must
   * stop rather than keep running and voting. Called once. Without it the refusal is only logged.
   */
  onFatal?(err: TransportError): void;
  logger?: Logger;
}

export interface TransportStats {
  sentBatches: number;
  sentMessages: number;
  droppedMessages: number;
  receivedBatches: number;
  receivedMessages: number;
  rejectedBatches: number;
  reconnects: number;
  snapshotsSent: number;
  snapshotsReceived: number;
  snapshotsRejected: number;
}

type PeerState = 'connecting' | 'up' | 'backoff' | 'closed';

const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
/** Room for the batch header and length prefixes when splitting by message sizes. */
const BATCH_OVERHEAD = 256;

// ------------------------------------------------------------------------------------------

/** This node's outbound side towards one peer. */
class Peer {
  state: PeerState = 'connecting';
  /** Set after a failure, cleared once a stream is accepted: what unreachablePeers() reports. */
  down = false;
  private client: grpc.Client;
  private call: grpc.ClientDuplexStream<Uint8Array, Uint8Array> | undefined;
  private queue: GroupMessage[] = [];
  /** encodedMessageSize of each queued message, computed once at enqueue. */
  private queueSizes: number[] = [];
  private queueBytes = 0;
  private flushScheduled = false;
  private writable = true;
  private seq = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastError = '';

  constructor(
    readonly id: number,
    readonly addr: string,
    private readonly t: GrpcTransport,
  ) {
    this.client = new grpc.Client(addr, t.channelCredentials(), t.channelOptions(false));
  }

  connect(): void {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    const hello: HelloRequest = create(HelloRequestSchema, { nodeId: BigInt(this.t.nodeId), clusterId: this.t.clusterId, version: PROTOCOL_VERSION, incarnation: this.t.incarnation });
    this.client.makeUnaryRequest(
      helloMethod.path,
      helloMethod.requestSerialize,
      helloMethod.responseDeserialize,
      hello,
      new grpc.Metadata(),
      { deadline: Date.now() + this.t.helloTimeoutMs },
      (err, res) => {
        if (this.state !== 'connecting') return;
        if (err && this.t.fatalRefusal(this.id, err)) return this.broken(err.details, true);
        if (err || !res) return this.broken(err?.message ?? 'empty Hello response');
        if (!this.t.secret) {
          const mismatch = identityMismatch(res, this.id, this.t.clusterId);
          if (mismatch) return this.broken(`${this.addr} is ${mismatch}`, true);
        } else if (res.serverNonce.length !== NONCE_BYTES || res.clusterId !== '') {
          return this.broken(`${this.addr} runs without a cluster secret (or is not raftd): it cannot prove who it is`, true);
        }
        this.openStream(res.serverNonce);
      },
    );
  }

  private openStream(serverNonce: Uint8Array): void {
    const { metadata: md, facts } = this.t.callMetadata(this.id, serverNonce);
    const call = this.client.makeBidiStreamRequest(streamMethod.path, streamMethod.requestSerialize, streamMethod.responseDeserialize, md, {});
    // With a secret the server must prove it too (response headers) before we send a byte.
    let proven = !this.t.secret;
    call.on('metadata', (rmd: grpc.Metadata) => {
      // Headers without a proof (e.g. of a refusal) prove nothing; the 'data' check below stops a
      // welcome that arrives without one, and a refusal is handled by 'error'.
      if (this.call !== call || proven || rmd.get(MD_PROOF).length === 0) return;
      const why = this.t.checkServerProof(rmd, facts);
      if (why) this.broken(`${this.addr} ${why}`, true);
      else proven = true;
    });
    this.call = call;
    this.seq = 0;
    this.writable = true;
    // A server that accepts the call but never welcomes it would leave us queueing forever.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.call === call && this.state === 'connecting') this.broken('stream not accepted in time');
    }, this.t.helloTimeoutMs);
    call.on('data', (b: Uint8Array) => {
      if (this.call !== call) return;
      let seq: number;
      try {
        seq = decodeAck(b);
      } catch (e) {
        return this.broken((e as Error).message);
      }
      if (!proven) return this.broken(`${this.addr} did not prove the cluster secret`, true);
      // seq 0 is the server's welcome: it accepted our identity, the stream is up.
      if (seq === 0 && this.state === 'connecting') {
        if (this.timer) clearTimeout(this.timer);
        this.timer = undefined;
        this.state = 'up';
        this.down = false;
        this.failures = 0;
        this.lastError = '';
        this.t.log.debug({ peer: this.id, addr: this.addr }, 'peer stream up');
        this.flush();
      }
    });
    call.on('drain', () => {
      if (this.call !== call) return;
      this.writable = true;
      this.flush();
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (this.call === call) this.broken(e.details || e.message, this.t.fatalRefusal(this.id, e) || e.code === grpc.status.FAILED_PRECONDITION);
    });
    call.on('end', () => {
      if (this.call === call) this.broken('stream ended by peer');
    });
  }

  private broken(reason: string, loud = false): void {
    if (this.state === 'closed') return;
    if (this.timer) clearTimeout(this.timer);
    const call = this.call;
    this.call = undefined;
    if (call) call.cancel();
    this.state = 'backoff';
    this.down = true;
    this.failures++;
    this.dropQueue();
    // "Equal jitter": never less than half the base, so a crowd of peers does not hammer in step.
    const delay = backoffDelay({ ...this.t.backoff, jitter: JITTER.equal }, this.failures, this.t.random);
    if (reason !== this.lastError) {
      const log = { peer: this.id, addr: this.addr, reason, retryInMs: delay };
      if (loud) this.t.log.error(log, 'peer refused us');
      else this.t.log.warn(log, 'peer unreachable');
      this.lastError = reason;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.t.counters.reconnects++;
      this.connect();
    }, delay);
  }

  /**
   * The peer just opened a stream to us, so it is up: a back-off waiting out its downtime ends now.
   * Without this a leader whose peer was down for a few seconds (kill -9, restart) waited out
   * a back-off grown to 1.6-3.2 s before it reached the restarted node again, and a group that needed
   * that node's vote (its removal, a partition) stayed without a quorum meanwhile (chaos seed 1811).
   * A new client: its channel would still be in gRPC's own reconnect back-off.
   */
  heardFrom(): void {
    if (this.state !== 'backoff') return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.failures = 0;
    this.client.close();
    this.client = new grpc.Client(this.addr, this.t.channelCredentials(), this.t.channelOptions(false));
    this.t.counters.reconnects++;
    this.connect();
  }

  enqueue(msgs: GroupMessage[]): void {
    if (this.state === 'backoff' || this.state === 'closed') {
      this.t.counters.droppedMessages += msgs.length;
      return;
    }
    const limit = this.t.queueLimit;
    for (const gm of msgs) {
      const size = encodedMessageSize(gm);
      if (this.queue.length >= limit.messages || this.queueBytes + size > limit.bytes) {
        this.t.counters.droppedMessages++;
        continue;
      }
      this.queue.push(gm);
      this.queueSizes.push(size);
      this.queueBytes += size;
    }
    if (!this.flushScheduled && this.queue.length) {
      this.flushScheduled = true;
      // setImmediate, not a microtask: the host may send per group across several awaits of
      // one tick; all of them land in the same batch.
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    const call = this.call;
    if (this.state !== 'up' || !call || !this.writable || this.queue.length === 0) return;
    const max = this.t.maxMessageBytes - BATCH_OVERHEAD;
    let i = 0;
    while (i < this.queue.length && this.writable) {
      const batch: GroupMessage[] = [];
      let bytes = 0;
      for (; i < this.queue.length; i++) {
        const gm = this.queue[i]!;
        const size = this.queueSizes[i]!;
        if (size > max) {
          // Can never be sent whole; the core must be configured with smaller App messages.
          this.t.counters.droppedMessages++;
          this.t.log.warn({ peer: this.id, group: gm.group, type: gm.message.type, bytes: size, max }, 'message larger than the transport limit dropped');
          continue;
        }
        if (bytes + size > max && batch.length) break;
        batch.push(gm);
        bytes += size;
      }
      if (!batch.length) break;
      const buf = encodeBatch({ fromNode: this.t.nodeId, toNode: this.id, clusterId: this.t.clusterId, seq: ++this.seq, messages: batch });
      this.t.counters.sentBatches++;
      this.t.counters.sentMessages += batch.length;
      // write() returning false is gRPC's backpressure: keep the rest queued until 'drain'.
      if (!call.write(buf)) this.writable = false;
    }
    this.queue.splice(0, i);
    this.queueSizes.splice(0, i);
    this.queueBytes = 0;
    for (const size of this.queueSizes) this.queueBytes += size;
  }

  private dropQueue(): void {
    this.t.counters.droppedMessages += this.queue.length;
    this.queue = [];
    this.queueSizes = [];
    this.queueBytes = 0;
  }

  /** Graceful: half-close the stream so the peer sees a clean end, then drop the channel. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dropQueue();
    const call = this.call;
    this.call = undefined;
    if (call) call.end();
    this.client.close();
  }
}

function identityMismatch(res: HelloResponse, wantId: number, wantCluster: string): string | undefined {
  if (res.clusterId !== wantCluster) return `in cluster '${res.clusterId}', not '${wantCluster}'`;
  if (Number(res.nodeId) !== wantId) return `node ${res.nodeId}, not node ${wantId}`;
  return undefined;
}

function status(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details, metadata: new grpc.Metadata() };
}

/** A refusal the caller must act on: the code travels in a trailer, machine-readable. */
function refusalStatus(code: TransportErrorCode, details: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set(MD_REFUSAL, code);
  return { code: grpc.status.FAILED_PRECONDITION, details, metadata };
}

export function diskReplacedMessage(node: number, incarnation: string, known: string): string {
  return (
    `node ${node} came back with a different data directory (incarnation ${incarnation}, known ${known}): ` +
    `it may have forgotten votes and log entries; remove it from every group (DELETE /v1/groups/G/members/${node}) ` +
    `and add it back as a new node with a new id and --join, or restore its disk`
  );
}

function metadataFromPb(m: PbSnapshotMetadata | undefined): SnapshotMetadata {
  return {
    index: Number(m?.index ?? 0n),
    term: Number(m?.term ?? 0n),
    confState: { voters: (m?.confState?.voters ?? []).map(Number), learners: (m?.confState?.learners ?? []).map(Number) },
  };
}

function metadataToPb(m: SnapshotMetadata): PbSnapshotMetadata {
  return create(SnapshotMetadataSchema, {
    index: BigInt(m.index),
    term: BigInt(m.term),
    confState: { voters: m.confState.voters.map(BigInt), learners: m.confState.learners.map(BigInt) },
  });
}

/**
 * The verified spool file, read lazily: opened only when the handler starts iterating (a
 * handler that refuses without reading must not leave an open that fails after unlink).
 */
async function* readSpooled(path: string, chunkBytes: number): AsyncGenerator<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(chunkBytes);
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** Metadata value as exactly `bytes` bytes of lower-case hex, or undefined. */
function hexBytes(v: grpc.MetadataValue | undefined, bytes: number): Buffer | undefined {
  const s = typeof v === 'string' ? v : '';
  return s.length === bytes * 2 && /^[0-9a-f]+$/.test(s) ? Buffer.from(s, 'hex') : undefined;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

// ------------------------------------------------------------------------------------------

export class GrpcTransport {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly maxMessageBytes: number;
  readonly backoff: { initialMs: number; maxMs: number };
  readonly random: () => number;
  readonly queueLimit: { messages: number; bytes: number };
  readonly helloTimeoutMs: number;
  readonly incarnation: string;
  /** The cluster secret, or undefined when peers are not asked to prove one (TLS, --insecure). */
  readonly secret: Buffer | undefined;
  readonly log: Logger;
  readonly counters: TransportStats = {
    sentBatches: 0, sentMessages: 0, droppedMessages: 0, receivedBatches: 0, receivedMessages: 0,
    rejectedBatches: 0, reconnects: 0, snapshotsSent: 0, snapshotsReceived: 0, snapshotsRejected: 0,
  };

  private readonly peerAddrs: Map<number, string>;
  private readonly peers = new Map<number, Peer>();
  private readonly snapshotClients = new Map<number, { addr: string; client: grpc.Client }>();
  private readonly inbound = new Set<grpc.ServerDuplexStream<Buffer, Uint8Array>>();
  private readonly outboundSnapshots = new Set<grpc.ClientWritableStream<SendSnapshotRequest>>();
  private server: grpc.Server | undefined;
  private port = 0;
  private started = false;
  private closed = false;
  private fatalReported = false;
  /** peer/incarnation pairs already logged as refused: one error line each, not one per retry. */
  private readonly refusedLogged = new Set<string>();
  private tlsMaterial: { ca: Buffer; cert: Buffer; key: Buffer } | undefined;
  /** Server nonces handed out by Hello, each good for one proof. */
  private readonly nonces = new NonceBook();

  constructor(
    private readonly opts: TransportOptions,
    private readonly handlers: TransportHandlers,
  ) {
    this.nodeId = opts.nodeId;
    this.clusterId = opts.clusterId;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE;
    this.backoff = opts.backoff ?? { initialMs: 100, maxMs: 5000 };
    this.random = opts.random ?? Math.random;
    this.queueLimit = opts.queueLimit ?? { messages: 10_000, bytes: 64 * 1024 * 1024 };
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 5000;
    this.incarnation = opts.incarnation ?? randomBytes(8).toString('hex');
    this.secret = opts.clusterSecret === undefined || opts.clusterSecret.length === 0 ? undefined : Buffer.from(opts.clusterSecret);
    this.log = handlers.logger ?? pino({ enabled: false });
    // grpc-js writes its own errors straight to stderr (e.g. "No address added" next to our
    // ADDRESS_IN_USE); route them into our logger so the process prints one clear line.
    // Process-wide, like grpc-js's logger itself.
    const log = this.log;
    grpc.setLogger({ error: (...args: unknown[]) => log.debug({ grpc: args.map(String).join(' ') }, 'grpc-js') });
    this.peerAddrs = new Map(opts.peers);
    this.peerAddrs.delete(opts.nodeId);
    if (opts.tls) {
      try {
        this.tlsMaterial = { ca: readFileSync(opts.tls.caFile), cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) };
      } catch (e) {
        throw new TransportError('TLS_CONFIG', `cannot read TLS material: ${(e as Error).message}`, { cause: e });
      }
    }
  }

  /** @internal used by Peer: true if `err` is a refusal that means this node must stop. */
  fatalRefusal(peer: number, err: grpc.ServiceError): boolean {
    if (String(err.metadata?.get(MD_REFUSAL)[0] ?? '') !== 'PEER_DISK_REPLACED') return false;
    if (!this.fatalReported) {
      this.fatalReported = true;
      const e = new TransportError('PEER_DISK_REPLACED', `node ${peer} refused this node: ${err.details}`);
      if (this.handlers.onFatal) this.handlers.onFatal(e);
      else this.log.error({ peer, code: e.code }, e.message);
    }
    return true;
  }

  /** @internal used by Peer and sendSnapshot: who we are, whom we call, and (with a secret) our proof. */
  callMetadata(to: number, serverNonce: Uint8Array): { metadata: grpc.Metadata; facts: HandshakeFacts } {
    const facts: HandshakeFacts = { clusterId: this.clusterId, clientId: this.nodeId, serverId: to, clientIncarnation: this.incarnation, clientNonce: newNonce(), serverNonce };
    const md = new grpc.Metadata();
    md.set(MD_CLUSTER, this.clusterId);
    md.set(MD_FROM, String(this.nodeId));
    md.set(MD_TO, String(to));
    md.set(MD_INCARNATION, this.incarnation);
    if (this.secret) {
      md.set(MD_CLIENT_NONCE, Buffer.from(facts.clientNonce).toString('hex'));
      md.set(MD_SERVER_NONCE, Buffer.from(serverNonce).toString('hex'));
      md.set(MD_PROOF, clientProof(this.secret, facts).toString('hex'));
    }
    return { metadata: md, facts };
  }

  /** @internal the server's answer to our proof; undefined = proven. */
  checkServerProof(md: grpc.Metadata, facts: HandshakeFacts): string | undefined {
    if (!this.secret) return undefined;
    const inc = String(md.get(MD_INCARNATION)[0] ?? '');
    const proof = hexBytes(md.get(MD_PROOF)[0], 32);
    if (!proof || !proofMatches(serverProof(this.secret, facts, inc), proof)) {
      return `failed to prove it is node ${facts.serverId} of cluster '${this.clusterId}' (another cluster secret, or another node at this address)`;
    }
    return undefined;
  }

  /** @internal a Hello on `client` for a fresh server nonce (snapshots; Peer does its own). */
  private challenge(client: grpc.Client): Promise<Uint8Array> {
    const hello: HelloRequest = create(HelloRequestSchema, { nodeId: BigInt(this.nodeId), clusterId: this.clusterId, version: PROTOCOL_VERSION, incarnation: this.incarnation });
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(helloMethod.path, helloMethod.requestSerialize, helloMethod.responseDeserialize, hello, new grpc.Metadata(), { deadline: Date.now() + this.helloTimeoutMs }, (err, res) =>
        err || !res
          ? reject(err ?? new Error('empty Hello response'))
          : this.secret && (res.serverNonce.length !== NONCE_BYTES || res.clusterId !== '')
            ? reject(new TransportError('UNAUTHENTICATED', 'the peer runs without a cluster secret (or is not raftd): it cannot prove who it is'))
            : resolve(res.serverNonce),
      ),
    );
  }

  /** @internal used by Peer */
  channelCredentials(): grpc.ChannelCredentials {
    const t = this.tlsMaterial;
    return t ? grpc.credentials.createSsl(t.ca, t.key, t.cert) : grpc.credentials.createInsecure();
  }

  /** @internal used by Peer */
  channelOptions(snapshot: boolean): grpc.ChannelOptions {
    return {
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': this.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': this.backoff.maxMs,
      'grpc.enable_retries': 0,
      // A private connection per client: snapshots get their own, so they never queue
      // behind (or in front of) heartbeats on one HTTP/2 connection.
      'grpc.use_local_subchannel_pool': 1,
      ...(snapshot ? { 'grpc.primary_user_agent': 'raftd-snapshot' } : {}),
    };
  }

  async start(): Promise<void> {
    if (this.closed) throw new TransportError('CLOSED', 'transport is closed');
    if (this.started) return;
    const server = new grpc.Server({
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    server.addService(raftTransportService, {
      Stream: (call: grpc.ServerDuplexStream<Buffer, Uint8Array>) => this.serveStream(call),
      SendSnapshot: (call: grpc.ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>, cb: grpc.sendUnaryData<SendSnapshotResponse>) =>
        void this.serveSnapshot(call, cb),
      Hello: (call: grpc.ServerUnaryCall<HelloRequest, HelloResponse>, cb: grpc.sendUnaryData<HelloResponse>) => this.serveHello(call, cb),
    });
    const t = this.tlsMaterial;
    const creds = t ? grpc.ServerCredentials.createSsl(t.ca, [{ private_key: t.key, cert_chain: t.cert }], true) : grpc.ServerCredentials.createInsecure();
    try {
      this.port = await new Promise<number>((resolve, reject) => server.bindAsync(this.opts.listenAddr, creds, (err, port) => (err ? reject(err) : resolve(port))));
    } catch (e) {
      server.forceShutdown();
      const msg = (e as Error).message;
      if (/EADDRINUSE/.test(msg)) throw new TransportError('ADDRESS_IN_USE', `cannot listen on ${this.opts.listenAddr}: the address is already in use`, { cause: e });
      throw new TransportError('BIND_FAILED', `cannot listen on ${this.opts.listenAddr}: ${msg}`, { cause: e });
    }
    if (widenReceiveWindows(server) === 0) {
      this.log.warn('could not widen the peer server\'s HTTP/2 receive windows (grpc-js internals changed?): large messages will be slower');
    }
    this.server = server;
    this.started = true;
    for (const [id, addr] of this.peerAddrs) this.connectPeer(id, addr);
  }

  /** The port actually bound (useful with port 0). */
  boundPort(): number {
    return this.port;
  }

  private connectPeer(id: number, addr: string): void {
    const p = new Peer(id, addr, this);
    this.peers.set(id, p);
    p.connect();
  }

  setPeer(id: number, addr: string): void {
    if (id === this.nodeId || this.closed) return;
    if (this.peerAddrs.get(id) === addr && (this.peers.has(id) || !this.started)) return;
    this.removePeer(id);
    this.peerAddrs.set(id, addr);
    if (this.started) this.connectPeer(id, addr);
  }

  removePeer(id: number): void {
    this.peerAddrs.delete(id);
    this.peers.get(id)?.close();
    this.peers.delete(id);
    const sc = this.snapshotClients.get(id);
    if (sc) {
      sc.client.close();
      this.snapshotClients.delete(id);
    }
  }

  send(to: number, msgs: GroupMessage[]): void {
    const p = this.peers.get(to);
    if (!p) {
      this.counters.droppedMessages += msgs.length;
      return;
    }
    p.enqueue(msgs);
  }

  /** Peers whose stream failed and is not back yet. */
  unreachablePeers(): number[] {
    const out: number[] = [];
    for (const [id, p] of this.peers) if (p.down) out.push(id);
    return out;
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  // -------------------------------------------------------------- snapshots, sending side

  async sendSnapshot(to: number, header: SnapshotHeader, data: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.closed || !this.started) throw new TransportError('CLOSED', 'transport is not running');
    const addr = this.peerAddrs.get(to);
    if (addr === undefined) throw new TransportError('PEER_UNKNOWN', `no address known for node ${to}`);
    let sc = this.snapshotClients.get(to);
    if (!sc || sc.addr !== addr) {
      sc?.client.close();
      sc = { addr, client: new grpc.Client(addr, this.channelCredentials(), this.channelOptions(true)) };
      this.snapshotClients.set(to, sc);
    }
    const chunkBytes = this.opts.snapshotChunkBytes ?? 1024 * 1024;
    const client = sc.client;
    let serverNonce: Uint8Array;
    try {
      serverNonce = await this.challenge(client);
    } catch (e) {
      const why = e instanceof Error ? ((e as grpc.ServiceError).details ?? e.message) : String(e);
      throw new TransportError('SNAPSHOT_FAILED', `snapshot of group ${header.group} to node ${to} failed: Hello: ${why}`, { cause: e });
    }
    const { metadata: md, facts } = this.callMetadata(to, serverNonce);
    let failure: Error | undefined;
    let result!: Promise<SendSnapshotResponse>;
    const call = (() => {
      let c!: grpc.ClientWritableStream<SendSnapshotRequest>;
      result = new Promise<SendSnapshotResponse>((resolve, reject) => {
        c = client.makeClientStreamRequest(snapshotMethod.path, snapshotMethod.requestSerialize, snapshotMethod.responseDeserialize, md, {}, (err, res) => {
          if (err || !res) {
            failure = err ?? new Error('empty response');
            reject(failure);
          } else resolve(res);
        });
      });
      return c;
    })();
    result.catch(() => undefined); // observed below; avoid an unhandled rejection meanwhile
    this.outboundSnapshots.add(call);
    // Resolves when the call can take more, or fails; never waits on a dead call.
    const writable = (): Promise<void> =>
      new Promise((resolve) => {
        const done = (): void => {
          call.off('drain', done);
          call.off('close', done);
          call.off('error', done);
          resolve();
        };
        call.on('drain', done);
        call.on('close', done);
        call.on('error', done);
        result.then(done, done);
      });
    const write = async (req: SendSnapshotRequest): Promise<void> => {
      if (failure) throw failure;
      if (!call.write(req)) await writable();
      if (failure) throw failure;
    };
    // The receiver proves the secret in its response headers: no snapshot byte goes out before.
    const proven = this.secret
      ? new Promise<void>((resolve, reject) => {
          call.once('metadata', (rmd: grpc.Metadata) => {
            if (rmd.get(MD_PROOF).length === 0) return; // a refusal's headers: `result` rejects with it
            const why = this.checkServerProof(rmd, facts);
            if (why) reject(new TransportError('UNAUTHENTICATED', `node ${to} at ${addr} ${why}`));
            else resolve();
          });
          result.then(() => reject(new Error('call ended before the receiver proved the secret')), reject);
        })
      : Promise.resolve();
    const hash = createHash('sha256');
    let size = 0;
    try {
      await proven;
      const pbHeader: PbSnapshotHeader = {
        $typeName: 'raftd.v1.SnapshotHeader',
        clusterId: this.clusterId,
        group: header.group,
        from: BigInt(header.from),
        to: BigInt(header.to),
        term: BigInt(header.term),
        metadata: metadataToPb(header.metadata),
        totalSize: BigInt(header.totalSize ?? 0),
        sha256: header.sha256 ?? new Uint8Array(0),
      };
      await write(create(SendSnapshotRequestSchema, { chunk: { kind: { case: 'header', value: pbHeader } } }));
      for await (const piece of data) {
        for (let off = 0; off < piece.length; off += chunkBytes) {
          const part = piece.subarray(off, Math.min(piece.length, off + chunkBytes));
          hash.update(part);
          size += part.length;
          await write(create(SendSnapshotRequestSchema, { chunk: { kind: { case: 'data', value: part } } }));
        }
      }
      const digest = new Uint8Array(hash.digest());
      await write(create(SendSnapshotRequestSchema, { chunk: { kind: { case: 'trailer', value: { totalSize: BigInt(size), sha256: digest } } } }));
      call.end();
      await result;
      this.counters.snapshotsSent++;
      this.log.info({ peer: to, group: header.group, index: header.metadata.index, bytes: size }, 'snapshot sent');
    } catch (e) {
      call.cancel();
      const why = e instanceof Error ? ((e as grpc.ServiceError).details ?? e.message) : String(e);
      throw new TransportError('SNAPSHOT_FAILED', `snapshot of group ${header.group} to node ${to} failed after ${size} bytes: ${why}`, { cause: e });
    } finally {
      this.outboundSnapshots.delete(call);
    }
  }

  // -------------------------------------------------------------- server side

  /**
   * Every Stream and SendSnapshot call, before anything is read from it: identity, then (with a
   * secret) the proof over the one-time server nonce, then the incarnation. Returns the caller's
   * authenticated node id and the response headers (our proof), or the status to refuse with.
   */
  private async authenticate(md: grpc.Metadata): Promise<{ from: number; headers: grpc.Metadata } | { refused: Partial<grpc.StatusObject> }> {
    const refusal = this.checkIdentity(md);
    if (refusal) return { refused: status(grpc.status.FAILED_PRECONDITION, refusal) };
    const fromText = String(md.get(MD_FROM)[0] ?? '');
    const from = /^[1-9][0-9]{0,15}$/.test(fromText) ? Number(fromText) : NaN;
    if (!Number.isSafeInteger(from) || from === this.nodeId) return { refused: status(grpc.status.FAILED_PRECONDITION, 'missing or bad raftd-from') };
    const incarnation = String(md.get(MD_INCARNATION)[0] ?? '');
    if (incarnation === '' || incarnation.length > 64) return { refused: status(grpc.status.FAILED_PRECONDITION, 'raftd-incarnation is required (1 to 64 characters)') };
    const headers = new grpc.Metadata();
    if (this.secret) {
      const clientNonce = hexBytes(md.get(MD_CLIENT_NONCE)[0], NONCE_BYTES);
      const serverNonce = hexBytes(md.get(MD_SERVER_NONCE)[0], NONCE_BYTES);
      const proof = hexBytes(md.get(MD_PROOF)[0], 32);
      const facts: HandshakeFacts | undefined =
        clientNonce && serverNonce ? { clusterId: this.clusterId, clientId: from, serverId: this.nodeId, clientIncarnation: incarnation, clientNonce, serverNonce } : undefined;
      // Proof first, then the nonce is spent: a replayed call finds it gone, a wrong proof cannot
      // burn a nonce it did not earn. Nothing distinguishes the reasons to the caller.
      if (!facts || !proof || !proofMatches(clientProof(this.secret, facts), proof) || !this.nonces.take(serverNonce!)) {
        this.log.warn({ claimedFrom: from, code: 'UNAUTHENTICATED' }, 'peer call refused: no valid proof of the cluster secret over a fresh challenge');
        return { refused: status(grpc.status.UNAUTHENTICATED, 'peer authentication failed') };
      }
      headers.set(MD_INCARNATION, this.incarnation);
      headers.set(MD_PROOF, serverProof(this.secret, facts, this.incarnation).toString('hex'));
    }
    const refused = await this.admitIncarnation(from, incarnation);
    return refused ? { refused } : { from, headers };
  }

  private checkIdentity(md: grpc.Metadata): string | undefined {
    const cluster = String(md.get(MD_CLUSTER)[0] ?? '');
    const to = Number(md.get(MD_TO)[0] ?? NaN);
    if (cluster !== this.clusterId) return `wrong cluster '${cluster}': this is node ${this.nodeId} of cluster '${this.clusterId}'`;
    if (to !== this.nodeId) return `addressed to node ${String(md.get(MD_TO)[0])}, but this is node ${this.nodeId}`;
    return undefined;
  }

  /**
   * Before anything from `from` is accepted: is it the data directory we knew under that id? A
   * first sighting is recorded durably before it is admitted (the book's job). undefined = admit.
   */
  private async admitIncarnation(from: number, incarnation: string): Promise<Partial<grpc.StatusObject> | undefined> {
    const book = this.opts.peerIncarnations;
    if (!book) return undefined;
    let known: string | undefined;
    try {
      known = await book.admit(from, incarnation);
    } catch (e) {
      // Not durably recorded = not admitted; the peer retries.
      return status(grpc.status.UNAVAILABLE, `node ${this.nodeId} cannot record node ${from}'s incarnation: ${(e as Error).message}`);
    }
    if (known === undefined) return undefined;
    const msg = diskReplacedMessage(from, incarnation, known);
    if (!this.refusedLogged.has(`${from}/${incarnation}`)) {
      this.refusedLogged.add(`${from}/${incarnation}`);
      this.log.error({ peer: from, incarnation, known, code: 'PEER_DISK_REPLACED' }, msg);
    }
    return refusalStatus('PEER_DISK_REPLACED', msg);
  }

  /**
   * Unauthenticated: hands out a one-time challenge and touches nothing (no incarnation is
   * recorded here: only an authenticated call may do that). With a secret the answer holds the
   * challenge alone; without one (TLS already authenticated the caller, or --insecure) it also
   * names this node and cluster so the caller can report a misdirected address clearly.
   */
  private serveHello(call: grpc.ServerUnaryCall<HelloRequest, HelloResponse>, cb: grpc.sendUnaryData<HelloResponse>): void {
    const serverNonce = this.nonces.issue();
    if (this.secret) return cb(null, create(HelloResponseSchema, { serverNonce }));
    if (call.request.clusterId !== this.clusterId) this.log.warn({ from: Number(call.request.nodeId), cluster: call.request.clusterId }, 'hello from a node of another cluster');
    cb(null, create(HelloResponseSchema, { nodeId: BigInt(this.nodeId), clusterId: this.clusterId, version: PROTOCOL_VERSION, serverNonce }));
  }

  /** A peer opened its message stream: authenticated (identity, proof, incarnation), then served. */
  private serveStream(call: grpc.ServerDuplexStream<Buffer, Uint8Array>): void {
    if (this.closed) {
      call.emit('error', status(grpc.status.UNAVAILABLE, 'node is shutting down'));
      return;
    }
    // No 'data' listener yet, so nothing from this peer reaches Raft before the check (the client
    // also sends nothing before our welcome).
    void this.authenticate(call.metadata).then((auth) => {
      if ('refused' in auth) {
        this.counters.rejectedBatches++;
        call.emit('error', auth.refused);
      } else if (this.closed) {
        call.emit('error', status(grpc.status.UNAVAILABLE, 'node is shutting down'));
      } else if (!call.cancelled) {
        call.sendMetadata(auth.headers);
        this.serveAdmitted(call, auth.from);
      }
    });
  }

  /** Feeds an admitted peer's batches to Raft and acknowledges them, one cumulative ack per turn. */
  private serveAdmitted(call: grpc.ServerDuplexStream<Buffer, Uint8Array>, from: number): void {
    this.inbound.add(call);
    this.peers.get(from)?.heardFrom();
    let lastSeq = 0;
    let ackScheduled = false;
    let failed = false;
    call.write(encodeAck(0));
    call.on('data', (buf: Buffer) => {
      if (failed) return;
      let batch;
      try {
        batch = decodeBatch(buf);
      } catch (e) {
        failed = true;
        this.counters.rejectedBatches++;
        call.emit('error', status(grpc.status.INVALID_ARGUMENT, (e as Error).message));
        return;
      }
      // A node speaks only for itself: every message's sender is the authenticated peer.
      if (batch.clusterId !== this.clusterId || batch.toNode !== this.nodeId || batch.fromNode !== from || batch.messages.some((gm) => gm.message.from !== from)) {
        failed = true;
        this.counters.rejectedBatches++;
        const why = `batch for node ${batch.toNode} of cluster '${batch.clusterId}' from node ${batch.fromNode} (messages from ${[...new Set(batch.messages.map((gm) => gm.message.from))].join(', ')}) on a stream from node ${from}: this is node ${this.nodeId} of '${this.clusterId}'`;
        this.log.warn({ from }, why);
        call.emit('error', status(grpc.status.FAILED_PRECONDITION, why));
        return;
      }
      this.counters.receivedBatches++;
      this.counters.receivedMessages += batch.messages.length;
      lastSeq = batch.seq;
      try {
        this.handlers.onMessages(from, batch.messages);
      } catch (e) {
        this.log.error({ err: e, from }, 'onMessages threw; batch dropped');
      }
      if (!ackScheduled) {
        ackScheduled = true;
        // One cumulative ack per event-loop turn, not one per batch.
        setImmediate(() => {
          ackScheduled = false;
          if (!failed && this.inbound.has(call)) call.write(encodeAck(lastSeq));
        });
      }
    });
    const done = (): void => {
      this.inbound.delete(call);
    };
    call.on('end', () => {
      done();
      if (!failed) call.end();
    });
    call.on('cancelled', done);
    call.on('error', done);
    call.on('close', done);
  }

  private async serveSnapshot(
    call: grpc.ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>,
    cb: grpc.sendUnaryData<SendSnapshotResponse>,
  ): Promise<void> {
    const auth = await this.authenticate(call.metadata);
    if ('refused' in auth) {
      this.counters.snapshotsRejected++;
      cb(auth.refused);
      return;
    }
    const sender = auth.from;
    call.sendMetadata(auth.headers);
    const dir = this.opts.snapshotDir ?? tmpdir();
    const path = join(dir, `raftd-snap-${this.nodeId}-${randomBytes(6).toString('hex')}.part`);
    let file: Awaited<ReturnType<typeof open>> | undefined;
    let cancelled = false;
    let reply: SendSnapshotResponse | undefined;
    let refused: Partial<grpc.StatusObject> | undefined;
    call.on('cancelled', () => {
      cancelled = true;
    });
    try {
      let header: SnapshotHeader | undefined;
      let trailer: { size: number; sha256: Uint8Array } | undefined;
      const hash = createHash('sha256');
      let size = 0;
      for await (const req of call as AsyncIterable<SendSnapshotRequest>) {
        const kind = req.chunk?.kind;
        if (!kind || kind.case === undefined) throw new TransportError('SNAPSHOT_CORRUPT', 'empty snapshot chunk');
        if (trailer) throw new TransportError('SNAPSHOT_CORRUPT', 'data after the trailer');
        if (kind.case === 'header') {
          if (header) throw new TransportError('SNAPSHOT_CORRUPT', 'second header');
          const h = kind.value;
          if (h.clusterId !== this.clusterId || Number(h.to) !== this.nodeId || Number(h.from) !== sender) {
            throw new TransportError('IDENTITY_MISMATCH', `snapshot for node ${h.to} of cluster '${h.clusterId}' from node ${h.from} on a call from node ${sender}: this is node ${this.nodeId} of '${this.clusterId}'`);
          }
          header = { group: h.group, from: Number(h.from), to: Number(h.to), term: Number(h.term), metadata: metadataFromPb(h.metadata) };
          if (h.totalSize > 0n) header.totalSize = Number(h.totalSize);
          if (h.sha256.length) header.sha256 = h.sha256;
          file = await open(path, 'w');
        } else if (!header || !file) {
          throw new TransportError('SNAPSHOT_CORRUPT', 'snapshot chunk before the header');
        } else if (kind.case === 'data') {
          hash.update(kind.value);
          size += kind.value.length;
          if (header.totalSize !== undefined && size > header.totalSize) throw new TransportError('SNAPSHOT_CORRUPT', `more than the declared ${header.totalSize} bytes`);
          // Awaiting the write before pulling the next chunk is the flow control: gRPC stops
          // reading from the socket, and HTTP/2 windows push back on the sender.
          await file.write(kind.value);
        } else {
          trailer = { size: Number(kind.value.totalSize), sha256: kind.value.sha256 };
        }
      }
      if (cancelled) throw new TransportError('SNAPSHOT_CORRUPT', 'sender cancelled the transfer');
      if (!header || !file) throw new TransportError('SNAPSHOT_CORRUPT', 'no snapshot header');
      if (!trailer) throw new TransportError('SNAPSHOT_CORRUPT', `transfer ended after ${size} bytes without a trailer (short transfer)`);
      const digest = new Uint8Array(hash.digest());
      const want = [trailer.sha256, ...(header.sha256 ? [header.sha256] : [])];
      const sizes = [trailer.size, ...(header.totalSize !== undefined ? [header.totalSize] : [])];
      if (sizes.some((s) => s !== size)) throw new TransportError('SNAPSHOT_CORRUPT', `received ${size} bytes, sender declared ${sizes.join(' / ')}`);
      if (want.some((w) => hex(w) !== hex(digest))) throw new TransportError('SNAPSHOT_CORRUPT', `SHA-256 mismatch: received ${hex(digest)}, sender declared ${hex(trailer.sha256)}`);
      await file.sync();
      await file.close();
      file = undefined;
      header.totalSize = size;
      header.sha256 = digest;
      await this.handlers.onSnapshot(header, readSpooled(path, this.opts.snapshotChunkBytes ?? 1024 * 1024));
      this.counters.snapshotsReceived++;
      this.log.info({ from: header.from, group: header.group, index: header.metadata.index, bytes: size }, 'snapshot received');
      reply = create(SendSnapshotResponseSchema, { ack: { receivedBytes: BigInt(size) } });
    } catch (e) {
      this.counters.snapshotsRejected++;
      const err = e as Error & { code?: unknown };
      const code =
        err instanceof TransportError
          ? err.code === 'SNAPSHOT_CORRUPT'
            ? grpc.status.DATA_LOSS
            : grpc.status.FAILED_PRECONDITION
          : grpc.status.UNAVAILABLE;
      this.log.warn({ err: err.message }, 'snapshot refused');
      refused = status(code, err.message);
    } finally {
      if (file) await file.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
    }
    // Answer only after the spool file is gone: the sender may retry at once.
    if (cancelled) return;
    if (reply) cb(null, reply);
    else cb(refused ?? status(grpc.status.INTERNAL, 'snapshot receive failed'));
  }

  // -------------------------------------------------------------- shutdown

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    for (const c of this.outboundSnapshots) c.cancel();
    for (const sc of this.snapshotClients.values()) sc.client.close();
    this.snapshotClients.clear();
    for (const call of this.inbound) call.end();
    this.inbound.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      // Give in-flight calls a moment to finish, then cut whatever is left.
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 2000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
