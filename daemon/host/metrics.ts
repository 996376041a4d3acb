// Counters and latency histograms the host keeps; daemon/api/metrics.ts exposes them through
// prom-client. Counters stay plain numbers (a property increment on the hot path; the registry reads
// them at scrape time); histograms are prom-client's own, in seconds, registered by the API.

import { Histogram as PromHistogram } from 'prom-client';

/** Latency histogram fed in milliseconds (what the host measures), exposed in seconds. */
export class Histogram {
  /** Bucket bounds in milliseconds. */
  static readonly BOUNDS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];
  readonly metric: PromHistogram;

  constructor(name: string, help: string) {
    // registers: [] — each host's API registers it in its own registry (tests run several hosts in one process).
    this.metric = new PromHistogram({ name, help, buckets: Histogram.BOUNDS.map((b) => b / 1000), registers: [] });
  }

  observe(ms: number): void {
    this.metric.observe(ms / 1000);
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
  readonly fsyncMs = new Histogram('raftd_storage_write_seconds', 'Latency of one group-commit write with fsync.');
  readonly proposeMs = new Histogram('raftd_propose_seconds', 'Client proposal latency until applied.');
  readonly readMs = new Histogram('raftd_read_seconds', 'Client read latency.');

  observeFsync(ms: number, groups: number): void {
    this.fsyncMs.observe(ms);
    this.storageWrites++;
    this.storageGroupsWritten += groups;
  }

  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}
