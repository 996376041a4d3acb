// Counters and latency summaries the host keeps; daemon/api renders them for Prometheus.

/** A fixed-bucket latency histogram (milliseconds), cheap enough for the hot path. */
export class Histogram {
  static readonly BOUNDS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];
  readonly counts = new Array<number>(Histogram.BOUNDS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    let i = 0;
    while (i < Histogram.BOUNDS.length && ms > Histogram.BOUNDS[i]!) i++;
    this.counts[i]!++;
    this.sum += ms;
    this.count++;
  }
}

export class HostMetrics {
  proposals = 0;
  entriesCommitted = 0;
  entriesApplied = 0;
  messagesSent = 0;
  messagesReceived = 0;
  leaderChanges = 0;
  snapshotsTaken = 0;
  snapshotsSent = 0;
  snapshotsReceived = 0;
  snapshotFailures = 0;
  quiesced = 0;
  storageWrites = 0;
  storageGroupsWritten = 0;
  /** Client requests this node passed on to a group's leader. */
  forwarded = 0;
  /** Leadership transfers started because this node's application could not apply. */
  appHandOffs = 0;
  /** Snapshots restored into the app to repair entries it missed (APPLY_GAP). */
  appRepairs = 0;
  errors = new Map<string, number>();
  readonly fsyncMs = new Histogram();
  readonly proposeMs = new Histogram();
  readonly readMs = new Histogram();

  observeFsync(ms: number, groups: number): void {
    this.fsyncMs.observe(ms);
    this.storageWrites++;
    this.storageGroupsWritten += groups;
  }

  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}
