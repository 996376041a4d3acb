// The meta group and membership, as one host takes part in them: applying the meta group's
// commands (the node registry, the group catalog, placement) with their local effects (peers known,
// groups created here, deferred during the start-up replay, or dropped), the meta leader's duties
// (register nodes, create the bootstrap groups where placement puts them), and a group's membership
// changes and leadership transfers. Moved out of host.ts as it was; the Host's maps (groups,
// appliers, known peers, zones, groups being dropped) and its MetaState are shared with it.

import { sleep } from '../clock.js';
import { decodeConfChange } from '../raft/index.js';
import { ConfChangeType, EntryType, type ConfChange, type Entry } from '../raft/types.js';
import { RaftdError } from '../errors.js';
import { toRaftdError, type EntryOutcome, type GroupReplica } from './group.js';
import type { Liveness } from './liveness.js';
import { META_GROUP, decodeMetaCommand, encodeMetaCommand, type MetaCommand, type MetaState, type NodeInfo } from './meta.js';
import type { ApplierPort } from './ports.js';
import type { HostDeps, HostOptions } from './host.js';
import { placeGroup, placementNodes } from '../placement/view.js';

const decoder = new TextDecoder();

/** What the meta group and membership need of the rest of the Host. */
export interface MetaGroupHost {
  bootstrapGroup(group: number, members: number[]): Promise<void>;
  propose(group: number, datas: Uint8Array[]): Array<Promise<EntryOutcome>>;
  getGroup(group: number): GroupReplica;
  httpAddrOf(node: number): string | undefined;
  markDirty(g: GroupReplica): void;
  scheduleFlush(): void;
}

export class MetaGroup {
  private metaDutiesRunning = false;
  /** Meta entries through this index were committed before this start: replayed, not new. */
  metaReplayThrough = 0;
  /** Index of the meta entry being applied (for the effects). */
  private metaApplying = 0;
  /** Groups created (placed here) by replayed meta entries: bootstrapped once the replay is done. */
  private readonly deferredCreates = new Map<number, number[]>();
  /** Groups a replayed move-done took off this node: dropped once the replay is done, unless placed here again. */
  private readonly deferredDrops = new Set<number>();

  constructor(
    private readonly opts: HostOptions,
    private readonly deps: HostDeps,
    private readonly groups: Map<number, GroupReplica>,
    private readonly appliers: Map<number, ApplierPort>,
    private readonly meta: MetaState,
    private readonly liveness: Liveness,
    private readonly knownPeers: Map<number, string>,
    /** Zones peers advertise in their liveness messages. */
    private readonly peerZones: Map<number, string>,
    /** Groups whose local replica is being dropped (log and app data being deleted). */
    private readonly dropping: Set<number>,
    private readonly host: MetaGroupHost,
  ) {}

  private bootstrapGroup(group: number, members: number[]): Promise<void> {
    return this.host.bootstrapGroup(group, members);
  }

  private propose(group: number, datas: Uint8Array[]): Array<Promise<EntryOutcome>> {
    return this.host.propose(group, datas);
  }

  private getGroup(group: number): GroupReplica {
    return this.host.getGroup(group);
  }

  private httpAddrOf(node: number): string | undefined {
    return this.host.httpAddrOf(node);
  }

  private markDirty(g: GroupReplica): void {
    this.host.markDirty(g);
  }

  private scheduleFlush(): void {
    this.host.scheduleFlush();
  }

  /** The meta group's committed entries, applied by the host itself in log order. */
  applyMeta(g: GroupReplica, entries: Entry[]): void {
    for (const e of entries) {
      const cmd = e.type === EntryType.Normal ? decodeMetaCommand(e.data) : undefined;
      this.metaApplying = e.index;
      const outcome = cmd ? this.meta.apply(cmd, this.metaEffects) : { ok: true as const };
      g.settle(e, outcome.ok ? { index: e.index, ok: true, result: {} } : { index: e.index, ok: false, error: { code: outcome.code, message: outcome.message } });
    }
    g.markHandedThrough(entries[entries.length - 1]!.index);
    if (g.handedToApp >= this.metaReplayThrough) this.createDeferredGroups();
  }

  private readonly metaEffects = {
    onRegister: (node: NodeInfo): void => {
      this.knownPeers.set(node.id, node.raftAddr);
      if (node.id !== this.opts.nodeId) this.deps.transport.setPeer(node.id, node.raftAddr);
    },
    onDeregister: (id: number): void => {
      this.knownPeers.delete(id);
      this.liveness.forget(id);
      if (id !== this.opts.nodeId) this.deps.transport.removePeer(id);
    },
    onCreateGroup: (info: { group: number; members: number[] }): void => {
      // placement (issue 21): during the replay of the meta log at start-up, a later entry may have
      // moved this replica away: decide once the replay is done (createDeferredGroups).
      if (this.metaApplying <= this.metaReplayThrough && !this.groups.has(info.group)) {
        this.deferredCreates.set(info.group, info.members);
        return;
      }
      if (info.members.includes(this.opts.nodeId)) {
        void this.bootstrapGroup(info.group, info.members).then(() => this.scheduleFlush(), (err) => this.opts.logger.error({ err, group: info.group }, 'creating group failed'));
      }
    },
    onDeleteGroup: (group: number): void => {
      void this.dropGroup(group);
    },
    // placement (issue 21): a rebalancing move took this node's replica away.
    onMoveDone: (group: number, from: number | null): void => {
      // During the start-up replay a later entry may have given the group back (and this replica may
      // be that new one, a voter): decide once the replay is done (createDeferredGroups).
      if (from === this.opts.nodeId && this.metaApplying <= this.metaReplayThrough) {
        this.deferredDrops.add(group);
        return;
      }
      const placedHere = this.meta.groups.get(group)?.members.includes(this.opts.nodeId) || this.meta.placement.moves.get(group)?.to === this.opts.nodeId;
      if (from === this.opts.nodeId && !placedHere) {
        this.opts.logger.info({ group }, 'replica moved to another node; dropping it here');
        void this.dropGroup(group).catch((err) => this.opts.logger.warn({ err, group }, 'dropping a moved replica failed'));
      }
    },
  };

  /** After the start-up replay of the meta log: bootstrap the groups still placed on this node. */
  private createDeferredGroups(): void {
    for (const group of this.deferredDrops) this.metaEffects.onMoveDone(group, this.opts.nodeId);
    this.deferredDrops.clear();
    if (this.deferredCreates.size === 0) return;
    for (const [group, members] of this.deferredCreates) {
      const info = this.meta.groups.get(group);
      if (!info || this.meta.placement.wasMovedOff(group, this.opts.nodeId) || !info.members.includes(this.opts.nodeId)) continue;
      void this.bootstrapGroup(group, members).then(() => this.scheduleFlush(), (err) => this.opts.logger.error({ err, group }, 'creating group failed'));
    }
    this.deferredCreates.clear();
  }

  /** The replicas a new data group gets: all meta voters (replication factor 0) or a ring position. */
  placeNewGroup(group: number): number[] {
    const voters = (this.groups.get(META_GROUP)?.status().confState.voters ?? []).slice().sort((a, b) => a - b);
    if (this.opts.replicationFactor <= 0) return voters;
    return placeGroup(group, placementNodes(this.meta, voters, new Set(), (id) => this.zoneOf(id)), this.opts.replicationFactor);
  }

  /** A node's zone: as registered, else as it advertises it. */
  zoneOf(node: number): string {
    if (node === this.opts.nodeId) return this.opts.zone;
    return this.meta.nodes.get(node)?.zone ?? this.peerZones.get(node) ?? '';
  }

  /** Whether this node leads the meta group (the one that plans and runs rebalancing). */
  isMetaLeader(): boolean {
    return this.groups.get(META_GROUP)?.isLeader() === true;
  }

  onConfChangeApplied(g: GroupReplica, e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      return;
    }
    if (cc.type === ConfChangeType.RemoveNode && cc.node === this.opts.nodeId) {
      // This node left the group. Entries up to the removal are committed and are applied as
      // usual (the removal itself included). Later proposals may still commit under the new
      // membership, but nobody will tell this node: their outcome is unknown.
      g.failAbove(e.index, new RaftdError('OUTCOME_UNKNOWN', `node ${this.opts.nodeId} was removed from group ${g.group}; proposals made through it may or may not take effect`));
      return;
    }
    if (cc.context.length > 0 && cc.type !== ConfChangeType.RemoveNode) {
      try {
        const info = JSON.parse(decoder.decode(cc.context)) as { raftAddr?: string };
        if (info.raftAddr && cc.node !== this.opts.nodeId && !this.knownPeers.has(cc.node)) {
          this.knownPeers.set(cc.node, info.raftAddr);
          this.deps.transport.setPeer(cc.node, info.raftAddr);
        }
      } catch {
        /* context is optional */
      }
    }
  }

  private async dropGroup(group: number): Promise<void> {
    const g = this.groups.get(group);
    if (!g) return;
    g.deleted = true;
    g.failAll(new RaftdError('GROUP_NOT_FOUND', `group ${group} was deleted`));
    this.groups.delete(group);
    const applier = this.appliers.get(group);
    this.appliers.delete(group);
    // placement (issue 21): a replica moved back here while the drop runs must not be created
    // before the drop has deleted the old one's log and app data (it would delete the new one's).
    this.dropping.add(group);
    try {
      await applier?.stop();
      await this.deps.store.deleteGroup(group);
      await this.deps.app.deleteGroup(group).catch((err) => this.opts.logger.warn({ err, group }, 'app DeleteGroup failed'));
    } finally {
      this.dropping.delete(group);
    }
  }

  async proposeMeta(cmd: MetaCommand): Promise<EntryOutcome> {
    const [p] = this.propose(META_GROUP, [encodeMetaCommand(cmd)]);
    return p!;
  }

  async changeMembership(group: number, cc: ConfChange): Promise<number> {
    const g = this.getGroup(group);
    g.wake();
    let ticket;
    try {
      ticket = g.node.proposeConfChange(cc);
    } catch (e) {
      throw toRaftdError(e, group);
    }
    this.markDirty(g);
    this.scheduleFlush();
    const [waiting] = g.track(ticket.index, 1, ticket.term, this.opts.requestTimeoutMs);
    const outcome = await waiting;
    if (!outcome.ok) throw new RaftdError('PROPOSAL_DROPPED', `group ${group}: membership change was replaced after a leader change`);
    return ticket.index;
  }

  transferLeadership(group: number, to: number): void {
    const g = this.getGroup(group);
    g.wake();
    g.node.transferLeadership(to);
    this.markDirty(g);
    this.scheduleFlush();
  }

  /** Meta leader duties: register nodes and create the bootstrap groups. */
  async onMetaLeader(): Promise<void> {
    // One round at a time: a round still in flight has not applied its creations yet, and a
    // second one would propose them all again.
    if (this.metaDutiesRunning) return;
    this.metaDutiesRunning = true;
    try {
      await this.metaDuties();
    } finally {
      this.metaDutiesRunning = false;
    }
  }

  private async metaDuties(): Promise<void> {
    // Give the new leader's empty entry a moment to commit before proposing.
    await sleep(this.deps.clock, this.opts.tickMs * 2);
    const meta = this.groups.get(META_GROUP);
    if (!meta?.isLeader()) return;
    try {
      for (const [id, raftAddr] of this.knownPeers) {
        const httpAddr = this.httpAddrOf(id);
        const known = this.meta.nodes.get(id);
        const zone = this.zoneOf(id); // placement (issue 21)
        if (httpAddr && (!known || known.raftAddr !== raftAddr || known.httpAddr !== httpAddr || (known.zone ?? '') !== zone)) {
          await this.proposeMeta({ op: 'register', node: { id, raftAddr, httpAddr, ...(zone ? { zone } : {}) } });
        }
      }
      const missing: Uint8Array[] = [];
      for (let group = 1; group <= this.opts.bootstrapGroups; group++) {
        if (this.meta.groups.has(group) || this.meta.deletedGroups.has(group)) continue;
        missing.push(encodeMetaCommand({ op: 'create-group', group, members: this.placeNewGroup(group) }));
      }
      // In slices, so a large bootstrap neither overflows the pending-proposal bound nor one message.
      for (let i = 0; i < missing.length; i += 1000) {
        await Promise.all(this.propose(META_GROUP, missing.slice(i, i + 1000)));
      }
    } catch (err) {
      this.opts.logger.warn({ err }, 'meta leader duties interrupted; will retry on next leadership');
    }
  }

  /** Periodic re-check, for registrations learnt after leadership began. */
  async reconcileMeta(): Promise<void> {
    const meta = this.groups.get(META_GROUP);
    if (meta?.isLeader()) await this.onMetaLeader();
  }
}
