// The one registry of raftd's client-facing error codes: code -> HTTP status, and the shape every
// error answer has. raftd answers with them (daemon/errors.ts RaftdError), the SDK's client reads
// them (adapters/sdk/client.ts); both import this file, which imports nothing.

export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  /** No bearer token, or not one of this cluster's. */
  UNAUTHORIZED: 401,
  /** The client API token on an admin route (membership, groups, nodes, transfers, debug). */
  FORBIDDEN: 403,
  GROUP_NOT_FOUND: 404,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  // Not 421 Misdirected Request: fetch (undici) silently re-sends a request answered 421 on a new
  // connection, which turns "not applied here" into a second proposal of the same entry.
  NOT_LEADER: 503,
  CONFLICT: 409,
  /**
   * A membership change that would leave the group unable to survive one more failure (e.g. 3 voters
   * down to 2): refused unless the request says force.
   */
  UNSAFE_MEMBERSHIP_CHANGE: 409,
  OVERLOADED: 429,
  APP_ERROR: 422,
  INTERNAL: 500,
  APP_UNAVAILABLE: 502,
  NO_LEADER: 503,
  SHUTTING_DOWN: 503,
  TIMEOUT: 504,
  /** The proposal was appended but this node can no longer learn its fate: it may or may not apply. */
  OUTCOME_UNKNOWN: 503,
  PROPOSAL_DROPPED: 503,
  /** The leader is handing over leadership and takes no proposals meanwhile (not appended: retry). */
  LEADERSHIP_TRANSFER: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface LeaderHint {
  id: number;
  httpAddr: string;
}

/** Every error a client sees: `{error: {code, message, leader?}}` (a type, so it fits a JSON record). */
export type ErrorBody = {
  error: { code: ErrorCode; message: string; leader?: LeaderHint };
};
