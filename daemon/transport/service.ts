// The raftd.v1.RaftTransport service as grpc-js method definitions.
//
// Stream carries raw bytes both ways: codec.ts encodes and decodes them, so the handler can
// turn a malformed batch into a clear status instead of a generic deserialization failure.
// SendSnapshot and Hello are rare and use the generated protobuf-es schemas.

import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import {
  HelloRequestSchema,
  HelloResponseSchema,
  SendSnapshotRequestSchema,
  SendSnapshotResponseSchema,
  type HelloRequest,
  type HelloResponse,
  type SendSnapshotRequest,
  type SendSnapshotResponse,
} from '../../gen/raftd/v1/raft_pb.js';

const SERVICE = '/raftd.v1.RaftTransport/';

/** grpc-js wants Buffers; our encoders already return Buffers (or views we can wrap). */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

const raw = (b: Buffer): Buffer => b;

export const streamMethod: MethodDefinition<Uint8Array, Uint8Array> = {
  path: SERVICE + 'Stream',
  requestStream: true,
  responseStream: true,
  requestSerialize: asBuffer,
  requestDeserialize: raw,
  responseSerialize: asBuffer,
  responseDeserialize: raw,
  originalName: 'stream',
};

export const snapshotMethod: MethodDefinition<SendSnapshotRequest, SendSnapshotResponse> = {
  path: SERVICE + 'SendSnapshot',
  requestStream: true,
  responseStream: false,
  requestSerialize: (m) => asBuffer(toBinary(SendSnapshotRequestSchema, m)),
  requestDeserialize: (b) => fromBinary(SendSnapshotRequestSchema, b),
  responseSerialize: (m) => asBuffer(toBinary(SendSnapshotResponseSchema, m)),
  responseDeserialize: (b) => fromBinary(SendSnapshotResponseSchema, b),
  originalName: 'sendSnapshot',
};

export const helloMethod: MethodDefinition<HelloRequest, HelloResponse> = {
  path: SERVICE + 'Hello',
  requestStream: false,
  responseStream: false,
  requestSerialize: (m) => asBuffer(toBinary(HelloRequestSchema, m)),
  requestDeserialize: (b) => fromBinary(HelloRequestSchema, b),
  responseSerialize: (m) => asBuffer(toBinary(HelloResponseSchema, m)),
  responseDeserialize: (b) => fromBinary(HelloResponseSchema, b),
  originalName: 'hello',
};

export const raftTransportService: ServiceDefinition = {
  Stream: streamMethod,
  SendSnapshot: snapshotMethod,
  Hello: helloMethod,
} as ServiceDefinition;

/** Call metadata keys: who is calling whom, checked before a stream is accepted. */
export const MD_CLUSTER = 'raftd-cluster';
export const MD_FROM = 'raftd-from';
export const MD_TO = 'raftd-to';
/**
 * The sender's data-directory incarnation (HelloRequest.incarnation): required; a known node id
 * with another one is refused. In response headers: the server's own (bound into its proof).
 */
export const MD_INCARNATION = 'raftd-incarnation';
/** Peer authentication (auth.ts), hex: the caller's nonce, the server's nonce from Hello, a proof. */
export const MD_CLIENT_NONCE = 'raftd-nonce';
export const MD_SERVER_NONCE = 'raftd-server-nonce';
/** Request: the caller's HMAC proof. Response headers: the server's. */
export const MD_PROOF = 'raftd-proof';
/** Trailer of a refusal the caller must act on: a TransportErrorCode (e.g. PEER_DISK_REPLACED). */
export const MD_REFUSAL = 'raftd-refusal';

