// One HTTP call to a raftd node, classified the way a chaos client must see it: an answer
// (status + JSON body), or a network failure that either certainly never reached the server
// (connection refused) or may have (timeout, reset after sending): the latter is "unknown".

export type CallResult =
  | { kind: 'answer'; status: number; body: unknown }
  | { kind: 'refused'; message: string }
  | { kind: 'lost'; message: string };

/**
 * The bearer token every call sends. The chaos harness is the cluster's operator as well as its
 * clients (the nemesis changes membership and faults), so it holds the admin token, which raftd
 * accepts on every route. One cluster per process at a time: ClusterView sets it.
 */
let bearer = '';

export function useToken(token: string): void {
  bearer = token;
}

export async function call(baseUrl: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body: unknown, timeoutMs: number): Promise<CallResult> {
  let res: Response;
  const auth: Record<string, string> = bearer === '' ? {} : { authorization: `Bearer ${bearer}` };
  try {
    res = await fetch(baseUrl + path, {
      method,
      headers: body === undefined ? auth : { 'content-type': 'application/json', ...auth },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const code = (e as { cause?: { code?: string } }).cause?.code;
    const message = `${(e as Error).name}: ${(e as Error).message}${code ? ` (${code})` : ''}`;
    return code === 'ECONNREFUSED' ? { kind: 'refused', message } : { kind: 'lost', message };
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    // Headers arrived but the body did not: the server did act on the request.
    return { kind: 'lost', message: `body lost: ${(e as Error).message}` };
  }
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { kind: 'answer', status: res.status, body: parsed };
}

/** The error code of a raftd error body ({error: {code}}), if it is one. */
export function errorCode(body: unknown): string | undefined {
  const e = (body as { error?: { code?: unknown } } | null)?.error;
  return typeof e?.code === 'string' ? e.code : undefined;
}

/**
 * raftd error codes after which a proposal certainly did not take effect (see daemon/errors.ts and
 * the host): refused before being appended, or its log slot was taken by another leader's entry.
 * Everything else (TIMEOUT, SHUTTING_DOWN, INTERNAL, APP_UNAVAILABLE, a lost connection) is unknown.
 */
export const DEFINITELY_NOT_APPLIED: ReadonlySet<string> = new Set([
  'NO_LEADER', 'NOT_LEADER', 'OVERLOADED', 'PROPOSAL_DROPPED', 'LEADERSHIP_TRANSFER', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE', 'GROUP_NOT_FOUND', 'CONFLICT', 'UNAUTHORIZED',
]);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
