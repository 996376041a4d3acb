// The one registry of raftd's client-facing error codes: code -> HTTP status.
// Every error a client sees is {error: {code, message, leader?}} with one of these codes.

export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  GROUP_NOT_FOUND: 404,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  NOT_LEADER: 421,
  CONFLICT: 409,
  OVERLOADED: 429,
  APP_ERROR: 422,
  INTERNAL: 500,
  APP_UNAVAILABLE: 502,
  NO_LEADER: 503,
  SHUTTING_DOWN: 503,
  TIMEOUT: 504,
  PROPOSAL_DROPPED: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface LeaderHint {
  id: number;
  httpAddr: string;
}

export class RaftdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly leader?: LeaderHint,
  ) {
    super(message);
    this.name = 'RaftdError';
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toJSON(): { error: { code: ErrorCode; message: string; leader?: LeaderHint } } {
    const body: { code: ErrorCode; message: string; leader?: LeaderHint } = { code: this.code, message: this.message };
    if (this.leader) body.leader = this.leader;
    return { error: body };
  }
}
