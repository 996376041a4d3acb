// Peer authentication with a cluster secret: a challenge-response, once per call (a Stream lives
// as long as its connection; a SendSnapshot carries one snapshot), never per message.
//
//   client -> Hello                                   (unauthenticated; nothing but a challenge back)
//   server <- HelloResponse{server_nonce}             (32 random bytes, single use, short-lived)
//   client -> Stream / SendSnapshot, call metadata:
//               raftd-from, raftd-to, raftd-incarnation, raftd-nonce (client nonce, 32 random bytes),
//               raftd-server-nonce, raftd-proof = HMAC(secret, "client" | cluster | from | to |
//               from's incarnation | client nonce | server nonce)
//   server: proof checked in constant time, THEN the server nonce is consumed (a replay of the
//           same metadata finds it gone), THEN the incarnation is admitted; nothing is read from
//           the call before that. It answers in its response headers:
//               raftd-incarnation (its own), raftd-proof = HMAC(secret, "server" | cluster | to |
//               from | to's incarnation | from's incarnation | client nonce | server nonce)
//   client: checks that proof before it sends a byte of Raft or snapshot data.
//
// The secret never travels; every field is length-prefixed into the MAC, so no two different
// handshakes share a MAC input. See docs/design-notes.md "Peers prove the cluster secret".

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const NONCE_BYTES = 32;
const CONTEXT = 'raftd.v1 peer auth';

export interface HandshakeFacts {
  clusterId: string;
  clientId: number;
  serverId: number;
  clientIncarnation: string;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
}

function mac(secret: Uint8Array, role: 'client' | 'server', parts: Array<string | Uint8Array>): Buffer {
  const h = createHmac('sha256', secret);
  for (const p of [CONTEXT, role, ...parts]) {
    const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    h.update(len);
    h.update(b);
  }
  return h.digest();
}

export function clientProof(secret: Uint8Array, f: HandshakeFacts): Buffer {
  return mac(secret, 'client', [f.clusterId, String(f.clientId), String(f.serverId), f.clientIncarnation, f.clientNonce, f.serverNonce]);
}

export function serverProof(secret: Uint8Array, f: HandshakeFacts, serverIncarnation: string): Buffer {
  return mac(secret, 'server', [f.clusterId, String(f.serverId), String(f.clientId), serverIncarnation, f.clientIncarnation, f.clientNonce, f.serverNonce]);
}

export function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/**
 * Server nonces handed out by Hello and not yet used. Single use (take() removes), expire after
 * ttlMs, and bounded: a flood of Hellos evicts the oldest (a peer that lost its nonce just dials
 * again) instead of growing memory.
 */
export class NonceBook {
  private readonly issued = new Map<string, number>();

  constructor(
    private readonly ttlMs = 30_000,
    private readonly max = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  issue(): Buffer {
    const n = newNonce();
    const t = this.now();
    // Oldest first (Map keeps insertion order): drop expired ones, then any beyond the bound.
    for (const [k, exp] of this.issued) {
      if (exp > t && this.issued.size < this.max) break;
      this.issued.delete(k);
    }
    this.issued.set(n.toString('hex'), t + this.ttlMs);
    return n;
  }

  /** true if `nonce` was issued here, has not expired and was not used; it cannot be used again. */
  take(nonce: Uint8Array): boolean {
    const k = Buffer.from(nonce).toString('hex');
    const exp = this.issued.get(k);
    if (exp === undefined) return false;
    this.issued.delete(k);
    return exp > this.now();
  }
}
