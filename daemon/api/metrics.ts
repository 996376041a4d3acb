// raftd's /metrics through prom-client: one registry per host (several hosts may share a process in
// tests), the library's default process metrics (CPU, memory, event-loop lag: the tick loop is
// single-threaded, so lag is the first thing to watch), and the host's own series. The host counts on
// its hot path with plain numbers (HostMetrics); the registry reads them when scraped (`collect`).

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Host } from '../host/host.js';
import type { HostMetrics } from '../host/metrics.js';
import type { Rebalancer } from '../placement/rebalancer.js';
import { Role } from '../raft/types.js';

type NumericField = { [K in keyof HostMetrics]: HostMetrics[K] extends number ? K : never }[keyof HostMetrics];

/** The host's counters: series name, help, and the HostMetrics field it reads. */
const COUNTERS: ReadonlyArray<[string, string, NumericField]> = [
  ['raftd_proposals_total', 'Entries proposed through this node.', 'proposals'],
  ['raftd_entries_committed_total', 'Committed entries handed to apply.', 'entriesCommitted'],
  ['raftd_entries_applied_total', 'Entries the application confirmed applied.', 'entriesApplied'],
  ['raftd_messages_sent_total', 'Raft messages sent to peers.', 'messagesSent'],
  ['raftd_messages_received_total', 'Raft messages received from peers.', 'messagesReceived'],
  ['raftd_leader_elections_won_total', 'Times this node became leader of a group.', 'leaderChanges'],
  ['raftd_snapshots_taken_total', 'Application snapshots prepared and log compactions.', 'snapshotsTaken'],
  ['raftd_snapshot_transfers_sent_total', 'Snapshots streamed to followers.', 'snapshotsSent'],
  ['raftd_snapshot_transfers_received_total', 'Snapshots installed from a leader.', 'snapshotsReceived'],
  ['raftd_snapshot_transfer_failures_total', 'Snapshot transfers that failed.', 'snapshotFailures'],
  ['raftd_forwarded_requests_total', 'Client requests (and propose-batch entries) forwarded to a leader on another node.', 'forwarded'],
  ['raftd_app_leadership_handoffs_total', 'Leadership transfers started because the application could not apply.', 'appHandOffs'],
  ['raftd_app_repairs_total', 'Snapshots restored into the application to repair entries it missed (APPLY_GAP).', 'appRepairs'],
  ['raftd_storage_writes_total', 'Group-commit writes (one fsync each).', 'storageWrites'],
];

/** Sampling period of the event-loop delay histogram (prom-client's default is 10 ms). */
const EVENT_LOOP_SAMPLE_MS = 50;

/** At most this many per-group series (a cluster with thousands of failing groups must not blow up a scrape). */
const MAX_GROUP_SERIES = 100;

export class RaftdMetrics {
  readonly registry = new Registry();

  constructor(host: Host, rebalancer?: Rebalancer) {
    const registers = [this.registry];
    const m = host.metrics;
    // The event-loop delay histogram (the *_lag_p50/p90/p99 series) samples with a timer. At
    // prom-client's default 10 ms that timer alone woke an idle process 100 times a second: +0.17% of
    // a core per process measured alone, a tenth of a raftd's idle CPU with 2,000 groups. At 50 ms
    // every stall of half a default tick or more is still caught.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // Three of prom-client's defaults are gauges named *_total, which Prometheus's linter (promtool
    // check metrics) refuses; the handle and request counts they give are not worth a failing lint.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    for (const [name, help, field] of COUNTERS) {
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(m[field]); } });
    }
    for (const h of [m.fsyncMs, m.proposeMs, m.readMs]) this.registry.registerMetric(h.metric);
    // The per-group state is read once per scrape, by the first gauge that needs it.
    let scan: { leaders: number; quiesced: number; failing: number[] } | undefined;
    const groups = () => {
      if (scan) return scan;
      scan = { leaders: 0, quiesced: 0, failing: [] };
      for (const [id, g] of host.groups) {
        if (g.status().role === Role.Leader) scan.leaders++;
        if (g.quiesced) scan.quiesced++;
        if ((host.groupApplyFailure(id)?.attempts ?? 0) >= 2) scan.failing.push(id);
      }
      queueMicrotask(() => (scan = undefined));
      return scan;
    };
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({ name, help, registers, collect() { this.set(value()); } });
    gauge('raftd_groups', 'Groups hosted on this node.', () => host.groups.size);
    gauge('raftd_groups_leading', 'Groups this node leads.', () => groups().leaders);
    gauge('raftd_groups_quiesced', 'Idle groups not being ticked.', () => groups().quiesced);
    gauge('raftd_app_healthy', '1 when the application answers.', () => (host.appHealthy() ? 1 : 0));
    gauge('raftd_groups_apply_failing', 'Groups whose apply calls keep failing (two or more in a row).', () => groups().failing.length);
    new Gauge({
      name: 'raftd_group_apply_failing_seconds', help: `How long the apply of a group has been failing (only failing groups, at most ${MAX_GROUP_SERIES}).`,
      labelNames: ['group'], registers,
      collect() {
        this.reset();
        for (const g of groups().failing.slice(0, MAX_GROUP_SERIES)) this.set({ group: String(g) }, (host.groupApplyFailure(g)?.sinceMs ?? 0) / 1000);
      },
    });
    gauge('raftd_memory_resident_bytes', 'Resident set size of the process.', () => process.memoryUsage.rss());
    gauge('raftd_memory_heap_used_bytes', 'V8 heap in use (JavaScript objects).', () => process.memoryUsage().heapUsed);
    gauge('raftd_memory_array_buffers_bytes', 'Buffers outside the V8 heap (entry data among them).', () => process.memoryUsage().arrayBuffers);
    if (rebalancer) {
      // placement (issue 21): the rebalancer's progress (moves run only on the meta leader).
      gauge('raftd_placement_moves_running', 'Replica moves recorded in the meta group and not finished.', () => host.meta.placement.moves.size);
      new Counter({ name: 'raftd_placement_moves_started_total', help: 'Replica moves this node started as meta leader.', registers, collect() { this.reset(); this.inc(rebalancer.status().movesStarted); } });
      new Counter({ name: 'raftd_placement_moves_done_total', help: 'Replica moves this node finished as meta leader.', registers, collect() { this.reset(); this.inc(rebalancer.status().movesDone); } });
      new Counter({ name: 'raftd_placement_moves_aborted_total', help: 'Replica moves this node gave up as meta leader.', registers, collect() { this.reset(); this.inc(rebalancer.status().movesAborted); } });
    }
    new Counter({
      name: 'raftd_errors_total', help: 'Client errors by code.', labelNames: ['code'], registers,
      collect() {
        this.reset();
        for (const [code, n] of m.errors) this.inc({ code }, n);
      },
    });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
