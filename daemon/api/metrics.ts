// Prometheus text exposition of the host's counters and histograms.

import type { Host } from '../host/host.js';
import { Histogram } from '../host/metrics.js';
import { Role } from '../raft/types.js';

function histogram(name: string, help: string, h: Histogram): string[] {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
  let cumulative = 0;
  Histogram.BOUNDS.forEach((b, i) => {
    cumulative += h.counts[i]!;
    lines.push(`${name}_bucket{le="${b / 1000}"} ${cumulative}`);
  });
  cumulative += h.counts[Histogram.BOUNDS.length]!;
  lines.push(`${name}_bucket{le="+Inf"} ${cumulative}`, `${name}_sum ${h.sum / 1000}`, `${name}_count ${h.count}`);
  return lines;
}

function counter(name: string, help: string, value: number): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`];
}

function gauge(name: string, help: string, value: number): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`];
}

export function renderMetrics(host: Host): string {
  const m = host.metrics;
  let leaders = 0;
  let quiesced = 0;
  const applyFailing: number[] = [];
  for (const [id, g] of host.groups) {
    if (g.status().role === Role.Leader) leaders++;
    if (g.quiesced) quiesced++;
    if ((host.groupApplyFailure(id)?.attempts ?? 0) >= 2) applyFailing.push(id);
  }
  const mem = process.memoryUsage();
  const lines = [
    ...counter('raftd_proposals_total', 'Entries proposed through this node.', m.proposals),
    ...counter('raftd_entries_committed_total', 'Committed entries handed to apply.', m.entriesCommitted),
    ...counter('raftd_entries_applied_total', 'Entries the application confirmed applied.', m.entriesApplied),
    ...counter('raftd_messages_sent_total', 'Raft messages sent to peers.', m.messagesSent),
    ...counter('raftd_messages_received_total', 'Raft messages received from peers.', m.messagesReceived),
    ...counter('raftd_leader_elections_won_total', 'Times this node became leader of a group.', m.leaderChanges),
    ...counter('raftd_snapshots_taken_total', 'Application snapshots prepared and log compactions.', m.snapshotsTaken),
    ...counter('raftd_snapshot_transfers_sent_total', 'Snapshots streamed to followers.', m.snapshotsSent),
    ...counter('raftd_snapshot_transfers_received_total', 'Snapshots installed from a leader.', m.snapshotsReceived),
    ...counter('raftd_snapshot_transfer_failures_total', 'Snapshot transfers that failed.', m.snapshotFailures),
    ...counter('raftd_forwarded_requests_total', 'Client requests (and propose-batch entries) forwarded to a leader on another node.', m.forwarded),
    ...counter('raftd_app_leadership_handoffs_total', 'Leadership transfers started because the application could not apply.', m.appHandOffs),
    ...counter('raftd_app_repairs_total', 'Snapshots restored into the application to repair entries it missed (APPLY_GAP).', m.appRepairs),
    ...counter('raftd_storage_writes_total', 'Group-commit writes (one fsync each).', m.storageWrites),
    ...histogram('raftd_storage_write_seconds', 'Latency of one group-commit write with fsync.', m.fsyncMs),
    ...histogram('raftd_propose_seconds', 'Client proposal latency until applied.', m.proposeMs),
    ...histogram('raftd_read_seconds', 'Client read latency.', m.readMs),
    ...gauge('raftd_groups', 'Groups hosted on this node.', host.groups.size),
    ...gauge('raftd_groups_leading', 'Groups this node leads.', leaders),
    ...gauge('raftd_groups_quiesced', 'Idle groups not being ticked.', quiesced),
    ...gauge('raftd_app_healthy', '1 when the application answers.', host.appHealthy() ? 1 : 0),
    ...gauge('raftd_groups_apply_failing', 'Groups whose apply calls keep failing (two or more in a row).', applyFailing.length),
    '# HELP raftd_group_apply_failing_seconds How long the apply of a group has been failing (only failing groups, at most 100).',
    '# TYPE raftd_group_apply_failing_seconds gauge',
    ...applyFailing.slice(0, 100).map((g) => `raftd_group_apply_failing_seconds{group="${g}"} ${((host.groupApplyFailure(g)?.sinceMs ?? 0) / 1000).toFixed(3)}`),
    ...gauge('raftd_memory_resident_bytes', 'Resident set size of the process.', mem.rss),
    ...gauge('raftd_memory_heap_used_bytes', 'V8 heap in use (JavaScript objects).', mem.heapUsed),
    ...gauge('raftd_memory_array_buffers_bytes', 'Buffers outside the V8 heap (entry data among them).', mem.arrayBuffers),
    '# HELP raftd_errors_total Client errors by code.', '# TYPE raftd_errors_total counter',
    ...[...m.errors].map(([code, n]) => `raftd_errors_total{code="${code}"} ${n}`),
  ];
  return lines.join('\n') + '\n';
}
