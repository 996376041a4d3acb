// One call's deadline as the abort signal undici takes (an EventEmitter with `aborted`, `reason` and
// an 'abort' event; undici's request() accepts one in place of an AbortSignal). An AbortController
// per call cost 11-16 µs of caller CPU on top of undici's 25-40 µs per POST (scripts/bench/
// http-clients.ts), about what undici saves over node:http; an EventEmitter costs next to nothing.

import { EventEmitter } from 'node:events';

export class Deadline extends EventEmitter {
  aborted = false;
  reason: Error | undefined;
  private readonly timer: NodeJS.Timeout;

  /** Aborts with `reason()` after `ms` unless cleared first. */
  constructor(ms: number, reason: () => Error) {
    super();
    this.timer = setTimeout(() => this.abort(reason()), ms);
  }

  /** Ends the call now (the caller gave up on it, e.g. its own AbortSignal fired). */
  abort(reason: Error): void {
    if (this.aborted) return;
    clearTimeout(this.timer);
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }

  /** The call ended: the deadline can no longer fire. */
  clear(): void {
    clearTimeout(this.timer);
  }
}
