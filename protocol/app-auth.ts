// Authentication of the state-machine API (raftd -> application), shared by raftd's AppClient and
// the adapter SDK's server the way the entries codec is. docs/state-machine-api.md "Authentication"
// is the normative text; docs/design-notes.md says why an HMAC per request and not a bearer secret.
//
// raftd signs every call with HMAC-SHA256 under the app secret over
//   "RAFTD-HMAC-SHA256\n" METHOD "\n" PATH-AND-QUERY "\n" DATE "\n" NONCE "\n" CONTENT-SHA256
// and sends DATE, NONCE and CONTENT-SHA256 as headers with the signature in Authorization. The secret
// never travels; a captured request is refused when sent again (its nonce was seen, or its date is
// out of the window); a changed body no longer matches CONTENT-SHA256.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const AUTH_SCHEME = 'RAFTD-HMAC-SHA256';
export const DATE_HEADER = 'x-raftd-date';
export const NONCE_HEADER = 'x-raftd-nonce';
export const CONTENT_SHA256_HEADER = 'x-raftd-content-sha256';
/** CONTENT-SHA256 of a streamed body (RecoverFromSnapshot only): its bytes are not covered. */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** The only call whose body may be UNSIGNED-PAYLOAD: raftd streams it and cannot hash it first. */
export const STREAMED_CALL_PATH_SUFFIX = '/RecoverFromSnapshot';

/** How far a request's DATE may be from the app's clock, either way (default 60 s). */
export const DEFAULT_AUTH_WINDOW_MS = 60_000;
/** Nonces remembered at most; beyond it calls are refused (503, retryable) until old ones expire. */
export const DEFAULT_MAX_NONCES = 1_000_000;

const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;
const DATE_RE = /^\d{1,15}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

export function sha256Hex(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

export function canonicalRequest(method: string, pathAndQuery: string, date: string, nonce: string, contentSha256: string): string {
  return `${AUTH_SCHEME}\n${method}\n${pathAndQuery}\n${date}\n${nonce}\n${contentSha256}`;
}

function signature(secret: string, canonical: string): string {
  return createHmac('sha256', secret).update(canonical).digest('hex');
}

/**
 * The headers of one signed call. `body` is the whole body, or undefined for a streamed one
 * (CONTENT-SHA256 is then UNSIGNED-PAYLOAD). A new nonce every time: a retry is a new request.
 */
export function signAppRequest(
  secret: string,
  method: string,
  pathAndQuery: string,
  body: Uint8Array | undefined,
  now: number = Date.now(),
): Record<string, string> {
  const date = String(now);
  const nonce = randomBytes(16).toString('base64url');
  const content = body === undefined ? UNSIGNED_PAYLOAD : sha256Hex(body);
  return {
    authorization: `${AUTH_SCHEME} ${signature(secret, canonicalRequest(method, pathAndQuery, date, nonce, content))}`,
    [DATE_HEADER]: date,
    [NONCE_HEADER]: nonce,
    [CONTENT_SHA256_HEADER]: content,
  };
}

/** Why a call was refused; `status` is what the app answers (401, or 503 while the nonce table is full). */
export class AppAuthError extends Error {
  constructor(
    readonly code: 'UNAUTHENTICATED' | 'REPLAYED' | 'AUTH_BUSY',
    message: string,
    readonly status: number = code === 'AUTH_BUSY' ? 503 : 401,
  ) {
    super(message);
  }
}

export interface VerifyOptions {
  /** The app secret (what raftd was given as --app-secret-file / RAFTD_APP_SECRET). */
  secret: string;
  windowMs?: number;
  maxNonces?: number;
  /** The clock (tests). */
  now?: () => number;
}

type HeaderValue = string | string[] | undefined;

/** What verifyHeaders accepted: the body digest the caller must check once the body is read. */
export interface VerifiedCall {
  /** Lower-case hex SHA-256 the body must have, or undefined for an UNSIGNED-PAYLOAD stream. */
  contentSha256: string | undefined;
}

/**
 * The application's side: checks a call's headers (before its body is read), then its body. One
 * instance per served state machine: it owns the table of nonces seen within the window.
 */
export class AppRequestVerifier {
  private readonly secret: string;
  private readonly windowMs: number;
  private readonly maxNonces: number;
  private readonly now: () => number;
  /** nonce -> time after which its DATE is out of the window anyway (insertion order ~ time order). */
  private readonly seen = new Map<string, number>();

  constructor(opts: VerifyOptions) {
    this.secret = opts.secret;
    this.windowMs = opts.windowMs ?? DEFAULT_AUTH_WINDOW_MS;
    this.maxNonces = opts.maxNonces ?? DEFAULT_MAX_NONCES;
    this.now = opts.now ?? Date.now;
  }

  /** Throws AppAuthError unless the headers carry a valid, fresh signature for this method and path. */
  verifyHeaders(method: string, pathAndQuery: string, headers: Readonly<Record<string, HeaderValue>>): VerifiedCall {
    const auth = one(headers['authorization']);
    if (auth === undefined) throw new AppAuthError('UNAUTHENTICATED', `missing Authorization header: raftd signs every state-machine API call (${AUTH_SCHEME}); is it given the same app secret?`);
    const m = /^RAFTD-HMAC-SHA256 ([0-9a-f]{64})$/.exec(auth);
    if (!m) throw new AppAuthError('UNAUTHENTICATED', `Authorization is not "${AUTH_SCHEME} <64 hex digits>"`);
    const date = one(headers[DATE_HEADER]);
    const nonce = one(headers[NONCE_HEADER]);
    const content = one(headers[CONTENT_SHA256_HEADER]);
    if (date === undefined || !DATE_RE.test(date)) throw new AppAuthError('UNAUTHENTICATED', `${DATE_HEADER} must be the call's time in Unix milliseconds`);
    if (nonce === undefined || !NONCE_RE.test(nonce)) throw new AppAuthError('UNAUTHENTICATED', `${NONCE_HEADER} must be 16 to 64 characters of [A-Za-z0-9_-]`);
    if (content === undefined || !(HEX64_RE.test(content) || content === UNSIGNED_PAYLOAD)) {
      throw new AppAuthError('UNAUTHENTICATED', `${CONTENT_SHA256_HEADER} must be the body's SHA-256 in lower-case hex`);
    }
    const expected = Buffer.from(signature(this.secret, canonicalRequest(method, pathAndQuery, date, nonce, content)), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(m[1]!, 'hex'))) {
      throw new AppAuthError('UNAUTHENTICATED', 'bad signature: wrong app secret, or the request was altered');
    }
    // Only a correctly signed call gets this far: what follows tells raftd (not an attacker) what is wrong.
    const now = this.now();
    const at = Number(date);
    if (Math.abs(now - at) > this.windowMs) {
      throw new AppAuthError('UNAUTHENTICATED', `${DATE_HEADER} is ${Math.round((now - at) / 1000)} s from this host's clock (allowed ±${this.windowMs / 1000} s): replayed, or the clocks disagree`);
    }
    if (content === UNSIGNED_PAYLOAD && !pathOnly(pathAndQuery).endsWith(STREAMED_CALL_PATH_SUFFIX)) {
      throw new AppAuthError('UNAUTHENTICATED', `${UNSIGNED_PAYLOAD} is accepted on RecoverFromSnapshot only`);
    }
    this.prune(now);
    if (this.seen.has(nonce)) throw new AppAuthError('REPLAYED', `nonce ${nonce} was already used: a replayed call`);
    if (this.seen.size >= this.maxNonces) throw new AppAuthError('AUTH_BUSY', `more than ${this.maxNonces} calls within ${this.windowMs / 1000} s: retry later`);
    this.seen.set(nonce, at + this.windowMs);
    return { contentSha256: content === UNSIGNED_PAYLOAD ? undefined : content };
  }

  /** Throws AppAuthError unless the body read is the one the signature covers. */
  verifyBody(call: VerifiedCall, body: Uint8Array): void {
    if (call.contentSha256 === undefined) return;
    if (sha256Hex(body) !== call.contentSha256) throw new AppAuthError('UNAUTHENTICATED', `the body does not match ${CONTENT_SHA256_HEADER}: altered in transit`);
  }

  /** Nonces remembered now (tests, metrics). */
  nonceCount(): number {
    return this.seen.size;
  }

  private prune(now: number): void {
    // Insertion order follows arrival, which follows DATE up to clock skew: dropping from the front
    // until one is still live is enough to keep the table near one window's worth of calls.
    for (const [nonce, expires] of this.seen) {
      if (expires >= now) break;
      this.seen.delete(nonce);
    }
  }
}

function one(v: HeaderValue): string | undefined {
  if (Array.isArray(v)) return v.length === 1 ? v[0] : undefined;
  return v;
}

function pathOnly(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf('?');
  return q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
}
