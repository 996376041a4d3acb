// raftd's client-facing error: a code of the registry in protocol/errors.ts (re-exported here so
// daemon/ code keeps one import) and the JSON body it answers with.

import { ERROR_STATUS, type ErrorBody, type ErrorCode, type LeaderHint } from '../protocol/errors.js';

export { ERROR_STATUS, type ErrorBody, type ErrorCode, type LeaderHint };

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

  toJSON(): ErrorBody {
    const body: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.leader) body.leader = this.leader;
    return { error: body };
  }
}
