// What the leader knows about one peer's log, and how it replicates to it:
//  probe     - one App per heartbeat interval until the follower's match is found;
//  replicate - optimistic pipelining: next advances as messages are sent, bounded by inflights;
//  snapshot  - a snapshot is on its way; wait for reportSnapshot or an ack past it.
import { Inflights } from './inflights.js';

export enum ProgressState {
  Probe = 0,
  Replicate = 1,
  Snapshot = 2,
}

export const PROGRESS_STATE_NAMES = ['probe', 'replicate', 'snapshot'] as const;

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = true;
  /** Probe state: an App was sent; wait for a response or the next heartbeat. */
  probeSent = false;
  /** The leader's tick at which the latest acknowledged heartbeat was sent (for leases). */
  ackedHeartbeatTick = -Infinity;
  /**
   * > 0: the peer was just removed from the configuration; the leader keeps replicating to it (it
   * counts for no quorum) until it holds the entry that removed it, for at most this many more ticks.
   */
  departingTicks = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      // Resume after the snapshot if it arrived, else from what is known to match.
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = index;
  }

  /** An ack up to n; returns true if match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /**
   * A reject of the App that had prev index `rejected`; `hint` is where the follower suggests
   * probing. Returns false if the reject is stale.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Records that an App carrying entries up to `last` (count `n`) was sent. */
  sentEntries(n: number, last: number): void {
    if (this.state === ProgressState.Replicate) {
      if (n > 0) {
        this.next = last + 1;
        this.inflights.add(last);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }
}
