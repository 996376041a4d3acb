// Errors raised when raftd talks to the application over the state-machine API.
// Every failure carries a stable machine-readable code so the host can decide between
// "retry later" (the app is down or slow) and "report to the client" (the app said no).

import { RaftdError } from '../errors.js';

export type AppErrorCode =
  /** The app could not be reached (connection refused / reset, session lost). Retryable. */
  | 'APP_UNAVAILABLE'
  /** The call's deadline passed before a complete answer. Retryable (calls are idempotent). */
  | 'APP_TIMEOUT'
  /**
   * The app answered non-2xx; its own code is in `appCode`. 5xx is retryable, 4xx is not, except 401:
   * the app refused raftd's signature (another app secret, clocks apart), which an operator mends.
   */
  | 'APP_ERROR'
  /** The app answered 2xx with a body that breaks the contract (bad JSON, missing fields). */
  | 'APP_PROTOCOL'
  /** The app's last index went below entries raftd no longer holds (the app lost state). */
  | 'APP_REGRESSED'
  /**
   * The app misses committed entries raftd no longer holds in its log (a gap between the app's
   * last index and the next entry to hand over): the group waits for a snapshot to repair it.
   */
  | 'APPLY_GAP'
  /** The applier was stopped while the caller waited. */
  | 'APPLIER_STOPPED';

export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly code: AppErrorCode,
    message: string,
    readonly details: {
      /** For APP_ERROR: the code the app returned ({error: {code}}), or HTTP_<status> if it sent none. */
      appCode?: string;
      /** HTTP status of the app's answer, when there was one. */
      status?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }

  get appCode(): string | undefined {
    return this.details.appCode;
  }

  get status(): number | undefined {
    return this.details.status;
  }

  /** Worth retrying the same call later: the app was unreachable, slow or failing on its side. */
  get retryable(): boolean {
    if (this.code === 'APP_UNAVAILABLE' || this.code === 'APP_TIMEOUT') return true;
    if (this.code === 'APP_ERROR') return (this.details.status ?? 500) >= 500 || this.details.status === 401;
    return false;
  }

  /** The client-facing error for this failure (daemon/errors.ts registry). */
  toRaftdError(): RaftdError {
    switch (this.code) {
      case 'APP_UNAVAILABLE':
      case 'APP_PROTOCOL':
      case 'APP_REGRESSED':
      case 'APPLY_GAP':
        return new RaftdError('APP_UNAVAILABLE', this.message);
      case 'APP_TIMEOUT':
        return new RaftdError('TIMEOUT', this.message);
      case 'APP_ERROR':
        return (this.details.status ?? 500) >= 500
          ? new RaftdError('APP_UNAVAILABLE', this.message)
          : new RaftdError('APP_ERROR', this.message);
      case 'APPLIER_STOPPED':
        return new RaftdError('SHUTTING_DOWN', this.message);
    }
  }
}
