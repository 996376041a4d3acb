// The apply hand-off of one host's groups: what reaches the application and when. Each data group
// has an applier (started empty, or after a snapshot restore); committed entries are handed to it
// contiguously past handedToApp (never during a restore), refetched from the log for an app that lost
// what it had confirmed, and settled with the app's outcomes. An app that misses entries the log no
// longer holds is repaired from a snapshot of the leader (gap repair, both sides). Moved out of
// host.ts as it was; the Host's maps (groups, appliers, restores in progress) are shared with it.

import { EntryType, MessageType, NONE, Role, type Entry, type Message } from '../raft/types.js';
import { toAppEntry, type EntryOutcome, type GroupReplica } from './group.js';
import { META_GROUP } from './meta.js';
import type { HostMetrics } from './metrics.js';
import type { AppEntry, ApplierPort } from './ports.js';
import type { HostDeps, HostOptions } from './host.js';

/**
 * Reserved group id of a follower's request for a snapshot of one group (its number in the
 * context, the index the snapshot must reach in `index`): the repair of an app that misses
 * entries the follower's log no longer holds. Not a Raft message: the leader's host answers it
 * by streaming a snapshot, as it would for a follower behind its log.
 */
export const SNAPSHOT_REQUEST_GROUP = 0xfffffffe;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What the apply hand-off needs of the rest of the Host. */
export interface ApplyHost {
  onConfChangeApplied(g: GroupReplica, e: Entry): void;
  /** The meta group's committed entries: applied by the host itself, never handed to an app. */
  applyMeta(g: GroupReplica, entries: Entry[]): void;
  sendSnapshot(g: GroupReplica, m: Message): Promise<void>;
  stopping(): boolean;
}

export class ApplyHandOff {
  constructor(
    private readonly opts: HostOptions,
    private readonly deps: HostDeps,
    private readonly metrics: HostMetrics,
    private readonly groups: Map<number, GroupReplica>,
    private readonly appliers: Map<number, ApplierPort>,
    /** Groups whose app is being restored from a leader's snapshot (no applier in charge meanwhile). */
    private readonly restoring: Map<number, Promise<void>>,
    private readonly host: ApplyHost,
  ) {}

  private get stopping(): boolean {
    return this.host.stopping();
  }

  private onConfChangeApplied(g: GroupReplica, e: Entry): void {
    this.host.onConfChangeApplied(g, e);
  }

  private sendSnapshot(g: GroupReplica, m: Message): Promise<void> {
    return this.host.sendSnapshot(g, m);
  }

  startApplier(group: number, wait: true): Promise<ApplierPort>;
  startApplier(group: number, wait: false): ApplierPort;
  startApplier(group: number, wait: boolean): ApplierPort | Promise<ApplierPort> {
    const applier = this.deps.makeApplier(
      group,
      (last, results) => this.onApplied(group, last, results),
      (lo, hi) => this.refetch(group, lo, hi),
      () => this.applyMayLinger(group),
      (lo, hi) => this.onApplyGap(group, applier, lo, hi),
    );
    this.appliers.set(group, applier);
    const started = applier.start();
    if (wait) return started.then(() => applier);
    started.catch((err) => {
      if (this.appliers.get(group) === applier && !this.stopping) this.opts.logger.error({ err, group }, 'applier failed to start');
    });
    return applier;
  }

  /**
   * A follower's applies answer no client (its proposals went to the leader), so they may wait to
   * leave in fewer, larger UpdateEntries calls; a leader's, or any replica's with a proposal of its
   * own still waiting (a leader that just stepped down), may not. Reads wait through waitApplied,
   * which cuts any wait short.
   */
  private applyMayLinger(group: number): boolean {
    const g = this.groups.get(group);
    return g !== undefined && g.role !== Role.Leader && g.pending.size === 0;
  }

  /**
   * The group's app misses committed entries lo..hi and the log here no longer holds them (the
   * applier already tried). This used to stop raftd (exit 70, APPLY_GAP) and, after a restart,
   * leave the group's reads hanging. Now the node repairs it: the applier stops at the gap (reads
   * past it fail with APP_UNAVAILABLE at once, never stale), and the group asks its leader for a
   * snapshot through `hi` (repairTick); restoring it replaces the applier (onSnapshot).
   */
  private onApplyGap(group: number, applier: ApplierPort, lo: number, hi: number): void {
    const g = this.groups.get(group);
    if (!g || this.appliers.get(group) !== applier || this.stopping) return;
    this.opts.logger.error({ group, missingFrom: lo, missingTo: hi }, 'the app misses entries the log no longer holds; repairing from a snapshot of the leader');
    g.needsRepairThrough(hi);
    g.wake();
  }

  /**
   * Once per election timeout while a repair is pending: ask the leader for a snapshot. On the
   * leader itself (whose app cannot serve its group now) maybeHandOff first hands leadership to a
   * live voter: an ordinary Raft transfer, which changes who leads, never what is committed.
   */
  repairTick(g: GroupReplica): void {
    if (!g.repairRequestDue(this.opts.electionTicks)) return;
    const leader = g.leader();
    // On the leader itself, maybeHandOff hands leadership over first; then it asks the new one.
    if (leader === NONE || leader === this.opts.nodeId) return;
    const message: Message = {
      type: MessageType.Heartbeat, to: leader, from: this.opts.nodeId, term: 0, logTerm: 0, index: g.repairThrough,
      entries: [], commit: 0, reject: false, rejectHint: 0, context: encoder.encode(String(g.group)),
    };
    this.deps.transport.send(leader, [{ group: SNAPSHOT_REQUEST_GROUP, message }]);
  }

  /** Leader side of a repair: a member asks for a snapshot of a group this node leads. */
  onSnapshotRequest(from: number, m: Message): void {
    const group = Number(decoder.decode(m.context));
    if (!Number.isInteger(group) || group <= 0 || group >= SNAPSHOT_REQUEST_GROUP) return;
    const g = this.groups.get(group);
    if (!g || g.deleted || !g.isLeader() || group === META_GROUP) return;
    const st = g.status();
    if (!st.confState.voters.includes(from) && !st.confState.learners.includes(from)) return;
    this.opts.logger.info({ group, to: from, through: m.index }, 'sending a snapshot a follower asked for to repair its app');
    g.wake();
    void this.sendSnapshot(g, { ...m, to: from, from: this.opts.nodeId, term: st.term, context: new Uint8Array(0) });
  }

  applyCommitted(g: GroupReplica, entries: Entry[]): void {
    this.metrics.entriesCommitted += entries.length;
    for (const e of entries) {
      if (e.type === EntryType.ConfChange) this.onConfChangeApplied(g, e);
      // A pending proposal whose index now holds another term's entry is definitely lost.
      const p = g.pending.get(e.index);
      if (p && p.term !== e.term) g.settle(e, { index: e.index, ok: false });
    }
    if (g.group === META_GROUP) {
      this.host.applyMeta(g, entries);
      return;
    }
    // While a snapshot is restored (the new applier starting included) nothing is handed over:
    // onSnapshot hands over what was committed past the snapshot once the app is on it.
    const applier = this.appliers.get(g.group);
    if (!applier || this.restoring.has(g.group)) return;
    const fresh = entries.filter((e) => e.index > g.handedToApp);
    if (fresh.length > 0) this.handOver(g, applier, fresh.map(toAppEntry));
  }

  /** Gives the applier the next committed entries (contiguous, past handedToApp); they count toward the byte snapshot trigger. */
  handOver(g: GroupReplica, applier: ApplierPort, entries: AppEntry[]): void {
    applier.enqueue(entries);
    g.handedOver(entries);
  }

  /** Committed entries lo..hi again, for an app that lost what it had confirmed. */
  refetch(group: number, lo: number, hi: number): AppEntry[] | undefined {
    const g = this.groups.get(group);
    if (!g || lo < g.storage.firstIndex() || hi > g.storage.lastIndex()) return undefined;
    try {
      return g.storage.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER).map(toAppEntry);
    } catch {
      return undefined;
    }
  }

  private onApplied(group: number, lastIndex: number, results: Map<number, EntryOutcome>): void {
    const g = this.groups.get(group);
    if (!g) return;
    this.metrics.entriesApplied += results.size;
    // Entries of another term were settled as dropped when they were handed over (applyCommitted).
    for (const [index, outcome] of results) g.settleApplied(index, outcome);
    void lastIndex;
  }
}
