// How rafthouse nodes prove the cluster's internal secret to each other (placed groups, issue 21).
//
// Hold and release are ordinary calls from one rafthouse's gateway to another's internal endpoint:
// signed exactly as raftd signs a state-machine call (protocol/app-auth.ts: HMAC-SHA256 over method,
// path, date, nonce and body digest; replays refused). A select leg is fetched by ClickHouse itself
// (the `url()` table function), which sends a HEAD and a GET, and may retry: it cannot sign a fresh
// nonce per request. So a leg carries a signature over its own path and query (which names the hold,
// the group and the pushed-down SELECT): it is valid only while that hold lives (a lease of seconds),
// for that one query on that one group — a replay can only repeat the same read under the same hold.

import { createHmac, timingSafeEqual } from 'node:crypto';

export const LEG_SIGNATURE_HEADER = 'x-rafthouse-leg-signature';
const LEG_SCHEME = 'RAFTHOUSE-LEG-HMAC-SHA256';

/** The signature of one select leg: over its path and query, under the internal secret. */
export function legSignature(secret: string, pathAndQuery: string): string {
  return createHmac('sha256', secret).update(`${LEG_SCHEME}\n${pathAndQuery}`).digest('hex');
}

export function legSignatureValid(secret: string, pathAndQuery: string, given: string | undefined): boolean {
  // An empty secret is no secret: anyone could compute the signature.
  if (secret.length === 0) return false;
  if (given === undefined || !/^[0-9a-f]{64}$/.test(given)) return false;
  return timingSafeEqual(Buffer.from(legSignature(secret, pathAndQuery), 'hex'), Buffer.from(given, 'hex'));
}
