// Authentication of everything that can give up an entry (docs/design-notes.md, "No poison entries").
//
// An abandon entry, and the peer check that must precede it, carry an HMAC-SHA256 keyed by the RaftHouse
// app secret (the secret raftd and the rafthouse nodes share; API clients do not have it) over
// (purpose, group, index). The state machine verifies the entry's MAC at apply, the same way on every
// replica (the secret is the same everywhere), so a raw abandon proposed through raftd's client API by
// a token holder is refused, deterministically, and gives up nothing.

import { createHmac, timingSafeEqual } from 'node:crypto';

/** What a MAC authorises: the abandon entry itself, or a peer-check request (fence / release). */
export type AbandonPurpose = 'entry' | 'check' | 'release';

const DOMAIN: Readonly<Record<AbandonPurpose, string>> = {
  entry: 'rafthouse/abandon-entry/v1',
  check: 'rafthouse/abandon-check/v1',
  release: 'rafthouse/abandon-release/v1',
};

/** Hex HMAC-SHA256(secret, domain \n group \n index). */
export function abandonMac(secret: string, purpose: AbandonPurpose, group: number, index: number): string {
  return createHmac('sha256', secret).update(`${DOMAIN[purpose]}\n${group}\n${index}`).digest('hex');
}

/** Whether `mac` is abandonMac(secret, purpose, group, index); false for anything malformed. */
export function verifyAbandonMac(secret: string, purpose: AbandonPurpose, group: number, index: number, mac: unknown): boolean {
  if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return false;
  const want = Buffer.from(abandonMac(secret, purpose, group, index), 'hex');
  return timingSafeEqual(want, Buffer.from(mac, 'hex'));
}
