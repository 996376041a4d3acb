// Snapshots and compaction of one host's groups: taking a snapshot of the app and compacting the
// log behind it (by count and by bytes, never past a snapshot still being sent), streaming a fresh
// snapshot to a follower that needs one, and restoring one from a leader into the app. Moved out of
// host.ts as it was; the Host's maps (groups, appliers, restores in progress) are shared with it.

import { MessageType, Role, type Message } from '../raft/types.js';
import { RaftdError } from '../errors.js';
import type { GroupReplica } from './group.js';
import { META_GROUP } from './meta.js';
import type { HostMetrics } from './metrics.js';
import type { AppEntry, ApplierPort, SnapshotHeader } from './ports.js';
import type { HostDeps, HostOptions } from './host.js';

const encoder = new TextEncoder();

/** What snapshots need of the rest of the Host. */
export interface SnapshotsHost {
  startApplier(group: number, wait: true): Promise<ApplierPort>;
  startApplier(group: number, wait: false): ApplierPort;
  refetch(group: number, lo: number, hi: number): AppEntry[] | undefined;
  handOver(g: GroupReplica, applier: ApplierPort, entries: AppEntry[]): void;
  markDirty(g: GroupReplica): void;
  scheduleFlush(): void;
  lazyReplica(group: number): GroupReplica | undefined;
  stopping(): boolean;
}

export class Snapshots {
  constructor(
    private readonly opts: HostOptions,
    private readonly deps: HostDeps,
    private readonly metrics: HostMetrics,
    private readonly groups: Map<number, GroupReplica>,
    private readonly appliers: Map<number, ApplierPort>,
    /** Groups whose app is being restored from a leader's snapshot (no applier in charge meanwhile). */
    private readonly restoring: Map<number, Promise<void>>,
    private readonly host: SnapshotsHost,
  ) {}

  private get stopping(): boolean {
    return this.host.stopping();
  }

  private startApplier(group: number, wait: true): Promise<ApplierPort>;
  private startApplier(group: number, wait: false): ApplierPort;
  private startApplier(group: number, wait: boolean): ApplierPort | Promise<ApplierPort> {
    return wait ? this.host.startApplier(group, true) : this.host.startApplier(group, false);
  }

  private refetch(group: number, lo: number, hi: number): AppEntry[] | undefined {
    return this.host.refetch(group, lo, hi);
  }

  private handOver(g: GroupReplica, applier: ApplierPort, entries: AppEntry[]): void {
    this.host.handOver(g, applier, entries);
  }

  private markDirty(g: GroupReplica): void {
    this.host.markDirty(g);
  }

  private scheduleFlush(): void {
    this.host.scheduleFlush();
  }

  private lazyReplica(group: number): GroupReplica | undefined {
    return this.host.lazyReplica(group);
  }

  /**
   * Every snapshotInterval applied entries, or snapshotBytes of them (the log is held in memory,
   * so large entries must not wait for the count), the app freezes a snapshot and raftd compacts.
   */
  maybeSnapshot(g: GroupReplica): void {
    if (g.group === META_GROUP || g.snapshotInFlight) return;
    const applier = this.appliers.get(g.group);
    if (!applier) return;
    const sinceLast = applier.appliedIndex() - g.lastSnapshotIndex;
    if (sinceLast < this.opts.snapshotInterval && !(sinceLast > 0 && g.bytesSinceSnapshot >= this.opts.snapshotBytes)) return;
    g.snapshotInFlight = true;
    void this.takeSnapshot(g)
      .catch((err) => this.opts.logger.warn({ err, group: g.group }, 'snapshot failed; will retry'))
      .finally(() => {
        g.snapshotInFlight = false;
      });
  }

  private async takeSnapshot(g: GroupReplica): Promise<{ prepared: string; index: number }> {
    const applier = this.appliers.get(g.group);
    const { prepared, lastLogIndex } = await this.deps.app.prepareSnapshot(g.group);
    if (g.deleted) throw new RaftdError('GROUP_NOT_FOUND', `group ${g.group} was deleted`);
    // A snapshot from the leader restored meanwhile (a new applier, or one being started) may have
    // put the app on another state, even an older one than the view just prepared: compacting the
    // log up to the prepared index would then drop entries the app now misses (the APPLY_GAP of
    // issue 18: "entry 130 enqueued after 123"). Skip this round; the next tick decides again.
    if (!applier || this.appliers.get(g.group) !== applier || this.restoring.has(g.group)) return { prepared, index: 0 };
    const st = g.status();
    // Never past what the app confirmed (with RAFT_SYNC: made durable): the prepared view may hold
    // applied but unsynced entries, which the app loses in a crash while raftd's log, compacted
    // to the snapshot, no longer holds them.
    const index = Math.min(lastLogIndex, st.commit, applier.appliedIndex());
    if (index <= g.storage.snapshot().metadata.index) {
      // Nothing past the log's snapshot (one restored from a leader, say): count from there, or the
      // byte trigger would ask the app again on every tick until it moves.
      g.lastSnapshotIndex = Math.max(g.lastSnapshotIndex, g.storage.snapshot().metadata.index);
      return { prepared, index };
    }
    const term = g.storage.term(index);
    const confState = g.node.confStateAt(index);
    g.storage.createSnapshot(index, confState, encoder.encode(prepared));
    const metadata = { index, term, confState };
    await this.deps.store.write([{ group: g.group, snapshot: metadata }]);
    const compactTo = this.compactionPoint(g, index);
    if (compactTo > g.storage.firstIndex()) g.storage.compact(compactTo);
    g.lastSnapshotIndex = index;
    g.snapshotTaken();
    this.metrics.snapshotsTaken++;
    return { prepared, index };
  }

  /**
   * Where to compact after a snapshot at `index`: keep at most snapshotCatchupEntries entries
   * behind it, and at most snapshotCatchupBytes of them; but never past a snapshot sent to a
   * follower that has not caught up from it yet (its next appends start right after it; without
   * them it would be sent another snapshot, and under steady large writes, another, and so on).
   * A follower that went quiet (not recently active) no longer holds it back: it gets a new
   * snapshot when back, and a dead follower must not keep the log growing.
   */
  private compactionPoint(g: GroupReplica, index: number): number {
    let to = index - this.opts.snapshotCatchupEntries;
    const lo = Math.max(to + 1, g.storage.firstIndex());
    const behind = lo <= index ? g.storage.entries(lo, index + 1, Number.MAX_SAFE_INTEGER) : [];
    for (let k = behind.length - 1, kept = 0; k >= 0; k--) {
      kept += behind[k]!.data.length;
      if (kept > this.opts.snapshotCatchupBytes) {
        to = behind[k]!.index;
        break;
      }
    }
    const progress = g.role === Role.Leader ? g.status().progress : undefined;
    for (const [peer, sent] of g.snapshotSentAt) {
      if (this.opts.faults?.compactPastSnapshotSend) break;
      const pr = progress?.[peer];
      if (g.snapshotsSending.has(peer) || (pr && pr.match < sent && pr.recentActive)) to = Math.min(to, sent);
      else g.snapshotSentAt.delete(peer);
    }
    return to;
  }

  /** The core wants a follower brought up by snapshot: stream a fresh one from the app. */
  async sendSnapshot(g: GroupReplica, m: Message): Promise<void> {
    if (g.snapshotsSending.has(m.to)) return;
    g.snapshotsSending.add(m.to);
    try {
      const { prepared, lastLogIndex } = await this.deps.app.prepareSnapshot(g.group);
      const index = Math.min(lastLogIndex, g.status().commit);
      const metadata = { index, term: g.storage.term(index), confState: g.node.confStateAt(index) };
      g.snapshotSentAt.set(m.to, index);
      const header: SnapshotHeader = { group: g.group, from: this.opts.nodeId, to: m.to, term: m.term, metadata };
      await this.deps.transport.sendSnapshot(m.to, header, this.deps.app.saveSnapshot(g.group, prepared));
      this.metrics.snapshotsSent++;
      g.node.reportSnapshot(m.to, true);
    } catch (err) {
      this.metrics.snapshotFailures++;
      g.snapshotSentAt.delete(m.to);
      this.opts.logger.warn({ err, group: g.group, to: m.to }, 'snapshot transfer failed');
      g.node.reportSnapshot(m.to, false);
    } finally {
      g.snapshotsSending.delete(m.to);
      this.markDirty(g);
      this.scheduleFlush();
    }
  }

  /** Follower side: the transport verified the whole snapshot; recover the app, then Raft. */
  async onSnapshot(header: SnapshotHeader, data: AsyncIterable<Uint8Array>): Promise<void> {
    let g = this.groups.get(header.group);
    if (!g) g = this.lazyReplica(header.group);
    if (!g) throw new RaftdError('GROUP_NOT_FOUND', `group ${header.group} is not known here`);
    g.wake();
    // A snapshot at or below the commit index brings nothing, unless it repairs an app that misses
    // entries the log no longer holds (repairThrough): then one reaching past them is restored into
    // the app only (Raft's log and commit are fine and stay as they are).
    const repair = g.repairThrough > 0 && header.metadata.index >= g.repairThrough;
    if (header.metadata.index <= g.status().commit && !repair) return;
    // One restore at a time: two overlapping ones (an old leader's and a new one's) could finish in
    // either order and leave the app on the older snapshot while the host counts from the newer.
    // The sender sees its transfer end, and the core sends another snapshot if still needed.
    if (this.restoring.has(g.group)) return;
    const old = this.appliers.get(g.group);
    this.appliers.delete(g.group);
    // While the app is being restored no applier is in charge: reads wait for this (waitApplied).
    let restored!: () => void;
    this.restoring.set(g.group, new Promise<void>((resolve) => (restored = resolve)));
    let recovered = false;
    try {
      await old?.stop();
      await this.deps.app.recoverFromSnapshot(g.group, data);
      recovered = true;
      await this.startApplier(g.group, true);
    } finally {
      this.restoring.delete(g.group);
      restored();
      if (!recovered) this.afterFailedRestore(g);
    }
    g.restoredFromSnapshot(header.metadata.index);
    // The app is now at or past the snapshot's index: what it missed is in it. Cleared before the
    // hand-over below, which reports a new gap should the log lack entries after the snapshot too.
    if (g.repairedBy(header.metadata.index)) {
      this.metrics.appRepairs++;
      this.opts.logger.warn({ group: g.group, index: header.metadata.index }, 'the app was repaired from a snapshot');
    }
    // During the restore (and the new applier's start) the core kept stepping messages: a new leader
    // that still had the entries may have appended and committed past the snapshot here, and
    // applyCommitted handed them to nobody. The core will not go back for them (its commit is past
    // the snapshot, which it then ignores): hand them to the app from the log now. Only what is in
    // the log: committed entries not stored yet have not been handed out either, and their Ready
    // hands them over as usual.
    const upTo = Math.min(g.status().commit, g.storage.lastIndex());
    const applier = this.appliers.get(g.group);
    if (applier && upTo > g.handedToApp) {
      const missed = this.refetch(g.group, g.handedToApp + 1, upTo);
      if (missed) this.handOver(g, applier, missed);
    }
    this.metrics.snapshotsReceived++;
    // A repair's snapshot is usually not past the commit index, and Raft needs none then: it is
    // for the app only. (Any other is stepped as before; the core ignores one it no longer needs.)
    if (repair && header.metadata.index <= g.status().commit) {
      this.markDirty(g);
      this.scheduleFlush();
      return;
    }
    g.node.step({
      type: MessageType.Snap, to: this.opts.nodeId, from: header.from, term: header.term, logTerm: 0, index: 0,
      entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0),
      snapshot: { metadata: header.metadata, data: new Uint8Array(0) },
    });
    this.markDirty(g);
    this.scheduleFlush();
  }

  /**
   * The app's restore failed (it went down during it, say). Raft may not need that snapshot any
   * more (it caught up by appends meanwhile) and then nobody sends another: the group would be left
   * with no applier and its app behind for good (the host simulator's seed 1931). So an applier is
   * put back in charge of whatever the app holds and handed everything committed the log still has;
   * it skips what the app has, and what the app misses beyond the log it reports as a gap, repaired
   * by a snapshot from the leader (onApplyGap). With nothing committed left in the log, the repair
   * is asked for at once.
   */
  private afterFailedRestore(g: GroupReplica): void {
    if (this.stopping || g.deleted || this.appliers.has(g.group) || this.groups.get(g.group) !== g) return;
    const applier = this.startApplier(g.group, false);
    const from = g.storage.firstIndex();
    const upTo = Math.min(g.status().commit, g.storage.lastIndex());
    const entries = upTo >= from ? this.refetch(g.group, from, upTo) : undefined;
    if (entries && entries.length > 0) {
      this.handOver(g, applier, entries);
      return;
    }
    g.needsRepairThrough(g.status().commit);
    g.wake();
  }
}
