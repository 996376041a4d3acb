// Reads of one host's groups: the read barrier (stale, lease, or ReadIndex, and the definite
// refusals of a node that cannot serve one: NO_LEADER, APP_UNAVAILABLE) and the wait until the
// local app has applied the read index, across appliers replaced by a snapshot restore. Moved out
// of host.ts as it was; the Host's maps (groups, appliers, restores in progress) are shared with it.

import type { Cancel } from '../clock.js';
import { RaftdError } from '../errors.js';
import type { GroupReplica } from './group.js';
import { META_GROUP } from './meta.js';
import type { ApplierPort } from './ports.js';
import type { Consistency, HostDeps, HostOptions } from './host.js';
import { AppError } from '../statemachine/errors.js';

/** What reads need of the rest of the Host. */
export interface ReadsHost {
  getGroup(group: number): GroupReplica;
  leaderSilent(group: number): boolean;
  markDirty(g: GroupReplica): void;
  scheduleFlush(): void;
  stopping(): boolean;
}

export class Reads {
  constructor(
    private readonly opts: HostOptions,
    private readonly deps: HostDeps,
    private readonly groups: Map<number, GroupReplica>,
    private readonly appliers: Map<number, ApplierPort>,
    /** Groups whose app is being restored from a leader's snapshot (no applier in charge meanwhile). */
    private readonly restoring: Map<number, Promise<void>>,
    private readonly host: ReadsHost,
  ) {}

  private get stopping(): boolean {
    return this.host.stopping();
  }

  private getGroup(group: number): GroupReplica {
    return this.host.getGroup(group);
  }

  private leaderSilent(group: number): boolean {
    return this.host.leaderSilent(group);
  }

  private markDirty(g: GroupReplica): void {
    this.host.markDirty(g);
  }

  private scheduleFlush(): void {
    this.host.scheduleFlush();
  }

  /** Waits until the local app has applied everything a read at this consistency must see. */
  async readBarrier(group: number, consistency: Consistency): Promise<number> {
    // Chaos tests only: a deliberately broken build that serves every read stale.
    if (this.opts.breakStaleReads) consistency = 'stale';
    const g = this.getGroup(group);
    if (consistency === 'stale') return this.appliers.get(group)?.appliedIndex() ?? g.status().applied;
    // Cut off from the leader for an election timeout: say so now (the read would only wait for
    // its deadline and end in TIMEOUT). Definite: a read has no effect.
    if (this.leaderSilent(group)) throw new RaftdError('NO_LEADER', `group ${group}: node ${this.opts.nodeId} has not heard a leader for an election timeout; retry (on another node)`);
    // The local app is down or failing: it would apply nothing while the read waits for it, so the
    // read would only hold its client until the deadline. Definite: a read has no effect.
    if (group !== META_GROUP && !this.deps.app.healthy()) throw new RaftdError('APP_UNAVAILABLE', `group ${group}: node ${this.opts.nodeId}'s application is unavailable; retry on another node`);
    // Lease reads need the leader awake for a whole election timeout (a quiesced leader's lease
    // is not evidence of anything); otherwise they take the ReadIndex path.
    const lease = consistency === 'lease' && g.awakeTicks > this.opts.electionTicks && !g.quiesced;
    const p = g.readIndex(lease, this.opts.requestTimeoutMs, 2 * this.opts.electionTicks * this.opts.tickMs);
    this.markDirty(g);
    this.scheduleFlush();
    const index = await p;
    await this.waitApplied(group, index, this.deps.clock.now() + this.opts.requestTimeoutMs);
    return index;
  }

  /**
   * Resolves once the group's app has applied `index`. The applier in charge can change while we
   * wait: a snapshot from the leader stops it, restores the app and starts a new one. The wait then
   * moves to the new one, and while there is none (the app is being restored) it waits for the
   * restore: returning then would let a linearizable read reach an app that still holds its old
   * state (chaos run seed 803 caught exactly that).
   */
  private async waitApplied(group: number, index: number, deadline: number): Promise<void> {
    for (;;) {
      if (!this.groups.has(group)) throw new RaftdError('GROUP_NOT_FOUND', `group ${group} was deleted`);
      const applier = this.appliers.get(group);
      const restoring = this.restoring.get(group);
      if (!applier && !restoring) {
        if (group === META_GROUP) return; // the host applies it itself, at commit
        // A restore failed (the leader sends the snapshot again): the app's state is not to be read.
        throw new RaftdError('APP_UNAVAILABLE', `group ${group}: the app's restore from a snapshot failed; retry`);
      }
      const left = deadline - this.deps.clock.now();
      if (left <= 0) throw new RaftdError('TIMEOUT', `group ${group}: index ${index} not applied in time (the app is being restored from a snapshot)`);
      if (!applier) {
        if (this.opts.faults?.readDuringRestore) return;
        let cancel: Cancel | undefined;
        await Promise.race([restoring, new Promise<void>((r) => (cancel = this.deps.clock.after(left, r)))]);
        cancel?.();
        continue;
      }
      try {
        await applier.waitApplied(index, left);
        return;
      } catch (e) {
        // Stopped because a snapshot replaced it (not because raftd stops): wait on its successor.
        const stopped = (e as { code?: unknown } | undefined)?.code === 'APPLIER_STOPPED';
        if (stopped && this.appliers.get(group) !== applier && !this.stopping) continue;
        // The app's failures as the client's codes (APPLY_GAP: APP_UNAVAILABLE while repairing).
        if (e instanceof AppError) throw e.toRaftdError();
        throw e;
      }
    }
  }

  async read(group: number, query: unknown, consistency: Consistency): Promise<unknown> {
    await this.readBarrier(group, consistency);
    return this.deps.app.read(group, query);
  }
}
