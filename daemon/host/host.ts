// The multi-group host: drives every group's Raft core on one tick loop and batches their I/O.
// Each flush gathers the Ready of every group with work, persists all of them in ONE storage
// write (one fsync), and sends their messages (batched per peer by the transport): leaders'
// appends and heartbeats while the write runs, everything else after it. Committed entries go to
// each group's applier (during the write when they are already durable), then the cores advance.

import type { Logger } from 'pino';
import type { Cancel, Clock } from '../clock.js';
import { RaftNode, MemoryStorage, encodeConfChange } from '../raft/index.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  Role,
  type ConfChange,
  type Entry,
  type HardState,
  type Message,
  type SnapshotMetadata,
  type RaftFaults,
  type RaftStatus,
} from '../raft/types.js';
import { RaftdError, type LeaderHint } from '../errors.js';
import { GroupReplica, perEntry, type EntryOutcome } from './group.js';
import { Liveness } from './liveness.js';
import { META_GROUP, MetaState, type MetaCommand } from './meta.js';
import type { AppEntry, AppPort, ApplierFactory, ApplierPort, GroupMessage, LogStorePort, SnapshotHeader, TransportPort } from './ports.js';
import { HostMetrics } from './metrics.js';
import { ReadyLoop } from './ready-loop.js';
import { Snapshots, type SnapshotsHost } from './snapshots.js';
import { Reads } from './reads.js';
import { LIVENESS_GROUP, QUIESCE, Quiescence } from './quiescence.js';
import { ApplyHandOff, SNAPSHOT_REQUEST_GROUP } from './apply.js';
import { MetaGroup } from './meta-group.js';

export { LIVENESS_GROUP } from './quiescence.js';
export { SNAPSHOT_REQUEST_GROUP } from './apply.js';
const decoder = new TextDecoder();

export interface HostOptions {
  nodeId: number;
  raftAddr: string;
  httpAddr: string;
  /** Static cluster members (id -> raft address), this node included; empty for a joining node. */
  staticPeers: Map<number, string>;
  bootstrapGroups: number;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  maxPendingProposals: number;
  requestTimeoutMs: number;
  snapshotInterval: number;
  snapshotCatchupEntries: number;
  /** Snapshot also once this many bytes of entries were handed to the app since the last one. */
  snapshotBytes: number;
  /** Bytes of entries kept behind a snapshot, at most. */
  snapshotCatchupBytes: number;
  /** Test hook 'break-stale-reads' only (daemon/test-hooks.ts): reads answered as stale ones. */
  breakStaleReads?: boolean;
  /** Started with --join: the peers are known, but this node did not found the meta group. */
  joined?: boolean;
  /** placement (issue 21): replicas per data group, 0 = every node. */
  replicationFactor: number;
  /** placement (issue 21): this node's failure domain ('' = none), advertised to peers. */
  zone: string;
  /** Randomness for election timeouts (the core never draws its own). */
  random: () => number;
  logger: Logger;
  /** Deliberately wrong behaviours the simulator must catch (test/sim mutations); never set in raftd. */
  faults?: HostFaults;
}

/** Host-level mutations: each a switch used only by the simulator (test/sim/host-sim.ts). */
export interface HostFaults {
  /** Send every message of a flush before its write (votes and acks before they are durable). */
  sendBeforePersist?: boolean;
  /** A linearizable read does not wait for a snapshot restore in progress (chaos seed 803). */
  readDuringRestore?: boolean;
  /** Compact the log past a snapshot still being sent to a follower (it then needs another, forever). */
  compactPastSnapshotSend?: boolean;
  /** The Raft core's own mutations (RaftFaults). */
  raft?: RaftFaults;
}

export interface HostDeps {
  store: LogStorePort;
  transport: TransportPort;
  app: AppPort;
  makeApplier: ApplierFactory;
  /** Every timer, deadline and deferred flush of the host (virtual time in the simulator). */
  clock: Clock;
  /**
   * The host cannot go on (its log store failed: it must not acknowledge anything any more). It has
   * stopped acting; the shell ends the process (raftd: exit code 70).
   */
  fatal(err: unknown): void;
}

export type Consistency = 'linearizable' | 'lease' | 'stale';

export class Host {
  readonly groups = new Map<number, GroupReplica>();
  private readonly appliers = new Map<number, ApplierPort>();
  /** Groups whose app is being restored from a leader's snapshot (no applier in charge meanwhile). */
  private readonly restoring = new Map<number, Promise<void>>();
  readonly meta = new MetaState();
  readonly liveness: Liveness;
  readonly metrics = new HostMetrics();
  private stopTicking: Cancel | undefined;
  private stopping = false;
  private readonly knownPeers = new Map<number, string>();
  /** Gathers the Readies of the groups with work into one write, and sends around it. */
  private readonly readyLoop: ReadyLoop;
  /** Taking, sending and restoring snapshots, and compacting behind them. */
  private readonly snapshots: Snapshots;
  /** Read barriers (lease or ReadIndex) and the wait for the local app to apply a read index. */
  private readonly reads: Reads;
  /** Liveness messages, quiescing idle groups, silent leaders, handing leadership off a failing app. */
  private readonly quiescence: Quiescence;
  /** Appliers, and what reaches the application: committed entries, refetches, gap repair. */
  private readonly applyHandOff: ApplyHandOff;
  /** The meta group's commands and their effects here, the meta leader's duties, membership changes. */
  private readonly metaGroup: MetaGroup;
  /** Consecutive ticks the application has been unhealthy (0: healthy). */
  private appUnhealthyTicks = 0;
  // ---- placement (issue 21)
  /** Zones peers advertise in their liveness messages. */
  private readonly peerZones = new Map<number, string>();
  /** Groups whose local replica is being dropped (log and app data being deleted). */
  private readonly dropping = new Set<number>();

  constructor(
    private readonly opts: HostOptions,
    private readonly deps: HostDeps,
  ) {
    this.liveness = new Liveness(opts.electionTicks * 2);
    this.readyLoop = new ReadyLoop(deps, this.metrics, opts.logger, opts.faults?.sendBeforePersist === true, {
      onSoftState: (g, role, leader) => this.onSoftState(g, role, leader),
      applyCommitted: (g, entries) => this.applyCommitted(g, entries),
      sendSnapshot: (g, m) => this.sendSnapshot(g, m),
      stopping: () => this.stopping,
      stopForGood: () => {
        this.stopping = true;
      },
    });
    this.snapshots = new Snapshots(opts, deps, this.metrics, this.groups, this.appliers, this.restoring, {
      startApplier: ((group: number, wait: boolean) => (wait ? this.startApplier(group, true) : this.startApplier(group, false))) as SnapshotsHost['startApplier'],
      refetch: (group, lo, hi) => this.refetch(group, lo, hi),
      handOver: (g, applier, entries) => this.handOver(g, applier, entries),
      markDirty: (g) => this.markDirty(g),
      scheduleFlush: () => this.scheduleFlush(),
      lazyReplica: (group) => this.lazyReplica(group),
      stopping: () => this.stopping,
    });
    this.reads = new Reads(opts, deps, this.groups, this.appliers, this.restoring, {
      getGroup: (group) => this.getGroup(group),
      leaderSilent: (group) => this.leaderSilent(group),
      markDirty: (g) => this.markDirty(g),
      scheduleFlush: () => this.scheduleFlush(),
      stopping: () => this.stopping,
    });
    this.quiescence = new Quiescence(opts, deps, this.metrics, this.groups, this.liveness, this.knownPeers, {
      appUnhealthyTicks: () => this.appUnhealthyTicks,
      markDirty: (g) => this.markDirty(g),
    });
    this.applyHandOff = new ApplyHandOff(opts, deps, this.metrics, this.groups, this.appliers, this.restoring, {
      onConfChangeApplied: (g, e) => this.onConfChangeApplied(g, e),
      applyMeta: (g, entries) => this.applyMeta(g, entries),
      sendSnapshot: (g, m) => this.sendSnapshot(g, m),
      stopping: () => this.stopping,
    });
    this.metaGroup = new MetaGroup(opts, deps, this.groups, this.appliers, this.meta, this.liveness, this.knownPeers, this.peerZones, this.dropping, {
      bootstrapGroup: (group, members) => this.bootstrapGroup(group, members),
      propose: (group, datas) => this.propose(group, datas),
      getGroup: (group) => this.getGroup(group),
      httpAddrOf: (node) => this.httpAddrOf(node),
      markDirty: (g) => this.markDirty(g),
      scheduleFlush: () => this.scheduleFlush(),
    });
    for (const [id, addr] of opts.staticPeers) this.knownPeers.set(id, addr);
  }

  get nodeId(): number {
    return this.opts.nodeId;
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    for (const [id, addr] of this.knownPeers) if (id !== this.opts.nodeId) this.deps.transport.setPeer(id, addr);
    const stored = await this.deps.store.loadAll();
    for (const [g, loaded] of stored) this.restoreGroup(g, loaded);
    // A node that joined (--join) is not one of the meta group's founders: bootstrapping it here with
    // every known node as a voter would give it a log that conflicts with the real one (placement,
    // issue 21, adds it as a learner; the leader then fills it).
    if (!this.groups.has(META_GROUP) && this.opts.staticPeers.size > 0 && !this.opts.joined) {
      await this.bootstrapGroup(META_GROUP, [...this.opts.staticPeers.keys()].sort((a, b) => a - b));
    }
    this.stopTicking = this.deps.clock.every(this.opts.tickMs, () => this.tick());
    this.scheduleFlush();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopTicking?.();
    const err = new RaftdError('SHUTTING_DOWN', 'raftd is shutting down');
    for (const g of this.groups.values()) g.failAll(err);
    await this.readyLoop.done;
    await Promise.all([...this.appliers.values()].map((a) => a.stop().catch(() => undefined)));
  }

  private newReplica(group: number, storage: MemoryStorage, applied: number): GroupReplica {
    const node = new RaftNode({
      id: this.opts.nodeId,
      storage,
      electionTick: this.opts.electionTicks,
      heartbeatTick: this.opts.heartbeatTicks,
      random: this.opts.random,
      applied,
      checkQuorum: true,
      preVote: true,
      maxSizePerMsg: 1 << 20,
      maxInflightMsgs: 256,
      ...(this.opts.faults?.raft ? { faults: this.opts.faults.raft } : {}),
    });
    const g = new GroupReplica(this.opts.nodeId, group, node, storage, this.deps.clock);
    this.groups.set(group, g);
    return g;
  }

  private restoreGroup(group: number, loaded: { hardState: HardState; snapshot: SnapshotMetadata | null; entries: Entry[] }): void {
    const { hardState, snapshot, entries } = loaded;
    const storage = new MemoryStorage();
    if (snapshot) storage.applySnapshot({ metadata: snapshot, data: new Uint8Array(0) });
    if (entries.length > 0) storage.append(entries);
    storage.setHardState(hardState);
    // Committed entries are handed to the applier from the snapshot on; it asks the app for its
    // LastLogIndex and skips what the app already has. Not awaited: an app that is down must not
    // keep raftd from starting (it reports unhealthy and keeps the log meanwhile).
    const applied = snapshot ? snapshot.index : 0;
    if (group === META_GROUP) this.metaReplayThrough = hardState.commit; // placement (issue 21)
    if (group !== META_GROUP) this.startApplier(group, false);
    const g = this.newReplica(group, storage, applied);
    g.markHandedThrough(applied);
    g.lastSnapshotIndex = snapshot ? snapshot.index : 0;
    this.markDirty(g);
  }

  /** A new group: every initial member writes the same conf entries at term 1, committed. */
  private async bootstrapGroup(group: number, members: number[]): Promise<void> {
    if (this.groups.has(group)) return;
    const entries: Entry[] = members.map((id, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddVoter, node: id, context: new Uint8Array(0) }),
    }));
    const hardState = { term: 1, vote: NONE, commit: entries.length };
    // Persisted by the next flush, in the same write as (and before) anything the group sends.
    this.readyLoop.bootstrapWrites.push({ group, entries, hardState });
    const storage = new MemoryStorage();
    storage.append(entries);
    storage.setHardState(hardState);
    if (group !== META_GROUP) this.startApplier(group, false);
    const g = this.newReplica(group, storage, 0);
    // One member, chosen by group number so leadership spreads over the nodes, campaigns at
    // once instead of waiting out an election timeout.
    if (members[group % members.length] === this.opts.nodeId) g.node.campaign();
    this.markDirty(g);
    this.opts.logger.debug({ group, members }, 'group bootstrapped');
  }

  // ---------------------------------------------------------------- apply hand-off and repair (apply.ts)

  private startApplier(group: number, wait: true): Promise<ApplierPort>;
  private startApplier(group: number, wait: false): ApplierPort;
  private startApplier(group: number, wait: boolean): ApplierPort | Promise<ApplierPort> {
    return wait ? this.applyHandOff.startApplier(group, true) : this.applyHandOff.startApplier(group, false);
  }

  private repairTick(g: GroupReplica): void {
    this.applyHandOff.repairTick(g);
  }

  private onSnapshotRequest(from: number, m: Message): void {
    this.applyHandOff.onSnapshotRequest(from, m);
  }

  private applyCommitted(g: GroupReplica, entries: Entry[]): void {
    this.applyHandOff.applyCommitted(g, entries);
  }

  private handOver(g: GroupReplica, applier: ApplierPort, entries: AppEntry[]): void {
    this.applyHandOff.handOver(g, applier, entries);
  }

  private refetch(group: number, lo: number, hi: number): AppEntry[] | undefined {
    return this.applyHandOff.refetch(group, lo, hi);
  }

  // ---------------------------------------------------------------- ticking

  private tick(): void {
    this.liveness.tick();
    for (const id of this.deps.transport.unreachablePeers?.() ?? []) this.liveness.markDead(id);
    const appHealthy = this.deps.app.healthy();
    this.appUnhealthyTicks = appHealthy ? 0 : this.appUnhealthyTicks + 1;
    this.sendLiveness(appHealthy);
    for (const g of this.groups.values()) {
      if (g.repairThrough > 0) this.repairTick(g);
      // A replica whose app cannot apply (down, failing, or missing entries being repaired) would
      // make a leader that answers no write: it defers its elections and declines transfers.
      // Liveness only (see Raft.campaignReluctant); the meta group is applied by raftd itself.
      if (g.group !== META_GROUP) g.node.setCampaignReluctant(!appHealthy || g.repairThrough > 0);
      if (g.quiesced) {
        this.maybeWakeForDeadLeader(g);
        continue;
      }
      // Checked before ticking: a tick makes the leader's heartbeats, i.e. work to do.
      if (this.maybeQuiesce(g)) continue;
      g.awakeTicks++;
      this.countLeaderSilence(g);
      if (g.role === Role.Leader) this.maybeHandOff(g);
      g.node.tick();
      this.maybeSnapshot(g);
      if (g.node.hasReady()) this.markDirty(g);
    }
    this.scheduleFlush();
  }

  // ---------------------------------------------------------------- quiescence and liveness (quiescence.ts)

  private countLeaderSilence(g: GroupReplica): void {
    this.quiescence.countLeaderSilence(g);
  }

  /** Not the leader, no leader heard for an election timeout, and cut off (see quiescence.ts). */
  leaderSilent(group: number): boolean {
    return this.quiescence.leaderSilent(group);
  }

  private maybeHandOff(g: GroupReplica): void {
    this.quiescence.maybeHandOff(g);
  }

  private sendLiveness(appHealthy: boolean): void {
    this.quiescence.sendLiveness(appHealthy);
  }

  private maybeQuiesce(g: GroupReplica): boolean {
    return this.quiescence.maybeQuiesce(g);
  }

  private maybeWakeForDeadLeader(g: GroupReplica): void {
    this.quiescence.maybeWakeForDeadLeader(g);
  }

  // ---------------------------------------------------------------- flushing (ready-loop.ts)

  private markDirty(g: GroupReplica): void {
    this.readyLoop.markDirty(g);
  }

  scheduleFlush(): void {
    this.readyLoop.schedule();
  }

  private onSoftState(g: GroupReplica, role: Role, leader: number): void {
    const roleChanged = g.role !== role;
    const leaderChanged = g.leaderId !== leader;
    const deposedAlone = g.role === Role.Leader && role !== Role.Leader && leader === NONE;
    g.role = role;
    g.leaderId = leader;
    // Read indexes asked of the old leader (or, as a deposed leader, of the old quorum) are never
    // answered now: fail them at once (a read has no effect, so the refusal is definite) rather
    // than holding them until their deadline while the new leader serves others.
    if (leaderChanged && g.hasWaiters()) {
      const other = leader === NONE || leader === this.opts.nodeId ? undefined : this.leaderHint(g.group);
      g.failReads(new RaftdError(other ? 'NOT_LEADER' : 'NO_LEADER', `group ${g.group}: the leader changed while the read waited for a read index; retry`, other));
    }
    // A leader that stepped down with no successor in sight (it lost its quorum: check-quorum)
    // learns the fate of its uncommitted proposals only when it hears a leader again, which may be
    // after the partition heals; they were held that long (RaftHouse chaos: 3-4 s per partition).
    // Their entries may still commit under a new leader: answer them now, outcome unknown. The
    // committed ones stay: its app applies them and answers as usual.
    if (deposedAlone) g.failAbove(g.status().commit, new RaftdError('OUTCOME_UNKNOWN', `group ${g.group}: node ${this.opts.nodeId} lost its quorum and stepped down before the proposal committed; it may or may not take effect`));
    if (roleChanged) this.appliers.get(g.group)?.nudge();
    if (role === Role.Leader) {
      this.metrics.leaderChanges++;
      if (g.group === META_GROUP) void this.onMetaLeader();
    }
  }

  // ---------------------------------------------------------------- meta group and membership (meta-group.ts)

  /** Set by the start-up replay of the meta log (restoreGroup). */
  private set metaReplayThrough(index: number) {
    this.metaGroup.metaReplayThrough = index;
  }

  private applyMeta(g: GroupReplica, entries: Entry[]): void {
    this.metaGroup.applyMeta(g, entries);
  }

  private onConfChangeApplied(g: GroupReplica, e: Entry): void {
    this.metaGroup.onConfChangeApplied(g, e);
  }

  private onMetaLeader(): Promise<void> {
    return this.metaGroup.onMetaLeader();
  }

  /** The replicas a new data group gets: all meta voters (replication factor 0) or a ring position. */
  placeNewGroup(group: number): number[] {
    return this.metaGroup.placeNewGroup(group);
  }

  /** A node's zone: as registered, else as it advertises it. */
  zoneOf(node: number): string {
    return this.metaGroup.zoneOf(node);
  }

  /** Whether this node leads the meta group (the one that plans and runs rebalancing). */
  isMetaLeader(): boolean {
    return this.metaGroup.isMetaLeader();
  }

  proposeMeta(cmd: MetaCommand): Promise<EntryOutcome> {
    return this.metaGroup.proposeMeta(cmd);
  }

  changeMembership(group: number, cc: ConfChange): Promise<number> {
    return this.metaGroup.changeMembership(group, cc);
  }

  transferLeadership(group: number, to: number): void {
    this.metaGroup.transferLeadership(group, to);
  }

  /** Periodic re-check, for registrations learnt after leadership began. */
  reconcileMeta(): Promise<void> {
    return this.metaGroup.reconcileMeta();
  }

  // ---------------------------------------------------------------- placement (issue 21)

  // ---------------------------------------------------------------- snapshots (snapshots.ts)

  private maybeSnapshot(g: GroupReplica): void {
    this.snapshots.maybeSnapshot(g);
  }

  private sendSnapshot(g: GroupReplica, m: Message): Promise<void> {
    return this.snapshots.sendSnapshot(g, m);
  }

  /** Follower side: the transport verified the whole snapshot; recover the app, then Raft. */
  onSnapshot(header: SnapshotHeader, data: AsyncIterable<Uint8Array>): Promise<void> {
    return this.snapshots.onSnapshot(header, data);
  }

  // ---------------------------------------------------------------- inbound messages

  onMessages(from: number, msgs: GroupMessage[]): void {
    this.liveness.heard(from);
    for (const { group, message } of msgs) {
      if (group === LIVENESS_GROUP) {
        const [httpAddr, zone] = decoder.decode(message.context).split(' ', 2);
        this.liveness.heard(from, httpAddr, !message.reject);
        if (zone) this.peerZones.set(from, zone.slice(0, 64));
        continue;
      }
      if (group === SNAPSHOT_REQUEST_GROUP) {
        this.onSnapshotRequest(from, message);
        continue;
      }
      let g = this.groups.get(group);
      if (!g) {
        if (message.type !== MessageType.App && message.type !== MessageType.Heartbeat && message.type !== MessageType.Snap) continue;
        g = this.lazyReplica(group);
        if (!g) continue;
      }
      const quiesce = message.type === MessageType.Heartbeat && message.context.length === 1 && message.context[0] === QUIESCE[0];
      // Heartbeat traffic is not activity: it must not keep an idle group from quiescing,
      // but it does wake a quiesced one (a new leader is talking to it).
      const beat = message.type === MessageType.Heartbeat || message.type === MessageType.HeartbeatResp;
      if (g.quiesced ? !quiesce && message.type !== MessageType.HeartbeatResp : !beat) g.wake();
      try {
        g.node.step(message);
      } catch (err) {
        this.opts.logger.warn({ err, group, from }, 'dropping a message the core refused');
        continue;
      }
      // Only a leader sends these, and the core took it as its leader's (a stale one is refused).
      if ((message.type === MessageType.App || message.type === MessageType.Heartbeat || message.type === MessageType.Snap) && message.from === g.node.leader()) g.leaderSilentTicks = 0;
      if (quiesce) {
        const st = g.status();
        if (st.leader === message.from && st.commit === st.lastIndex && !g.hasWaiters()) g.quiesced = true;
      }
      this.markDirty(g);
    }
    this.metrics.messagesReceived += msgs.length;
    this.scheduleFlush();
  }

  /** A group this node was added to: created empty; the leader fills it by log or snapshot. */
  private lazyReplica(group: number): GroupReplica | undefined {
    if (this.meta.deletedGroups.has(group) || this.stopping) return undefined;
    // placement (issue 21): a replica moved off this node is not brought back by a stray message,
    // nor created while the old one is being dropped (the leader sends again).
    if (this.meta.placement.wasMovedOff(group, this.opts.nodeId) || this.dropping.has(group)) return undefined;
    const g = this.newReplica(group, new MemoryStorage(), 0);
    // The meta group is applied by the host itself (a node added to it later has no applier for it).
    if (group !== META_GROUP) this.startApplier(group, false);
    return g;
  }

  // ---------------------------------------------------------------- client operations

  getGroup(group: number): GroupReplica {
    const g = this.groups.get(group);
    if (!g || g.deleted) throw new RaftdError('GROUP_NOT_FOUND', `group ${group} does not exist on node ${this.opts.nodeId}`);
    return g;
  }

  leaderHint(group: number): LeaderHint | undefined {
    const g = this.groups.get(group);
    if (!g) return undefined;
    const leader = g.leader();
    if (leader === NONE) return undefined;
    // A leader we have not heard from is probably gone: better to wait for the next one.
    if (leader !== this.opts.nodeId && (!this.liveness.isAlive(leader) || this.leaderSilent(group))) return undefined;
    const httpAddr = leader === this.opts.nodeId ? this.opts.httpAddr : this.liveness.httpAddr(leader) ?? this.meta.nodes.get(leader)?.httpAddr;
    return httpAddr ? { id: leader, httpAddr } : undefined;
  }

  httpAddrOf(node: number): string | undefined {
    if (node === this.opts.nodeId) return this.opts.httpAddr;
    return this.liveness.httpAddr(node) ?? this.meta.nodes.get(node)?.httpAddr;
  }

  /** proposeAll with one promise per entry, rejected with the entry's error. */
  propose(group: number, datas: Uint8Array[]): Array<Promise<EntryOutcome>> {
    return perEntry(this.proposeAll(group, datas), datas.length);
  }

  /** Appends proposals; one promise for the whole batch: each entry's outcome or error, in order. */
  proposeAll(group: number, datas: Uint8Array[]): Promise<Array<EntryOutcome | RaftdError>> {
    if (this.stopping) return Promise.resolve(datas.map(() => new RaftdError('SHUTTING_DOWN', 'raftd is shutting down')));
    const g = this.getGroup(group);
    const out = g.proposeAll(datas, this.opts.requestTimeoutMs, this.opts.maxPendingProposals);
    this.metrics.proposals += datas.length;
    this.markDirty(g);
    this.scheduleFlush();
    return out;
  }

  // ---------------------------------------------------------------- reads (reads.ts)

  /** Waits until the local app has applied everything a read at this consistency must see. */
  readBarrier(group: number, consistency: Consistency): Promise<number> {
    return this.reads.readBarrier(group, consistency);
  }

  read(group: number, query: unknown, consistency: Consistency): Promise<unknown> {
    return this.reads.read(group, query, consistency);
  }

  // ---------------------------------------------------------------- introspection

  groupStatus(group: number): RaftStatus & { appliedByApp: number; quiesced: boolean; pending: number; bytesApplied: number } {
    const g = this.getGroup(group);
    const applier = this.appliers.get(group);
    return { ...g.status(), appliedByApp: applier ? applier.appliedIndex() : g.status().applied, quiesced: g.quiesced, pending: g.pending.size, bytesApplied: g.bytesApplied };
  }

  appHealthy(): boolean {
    return this.deps.app.healthy();
  }

  /** The group's apply pipeline as this host sees it (for /status-like views and the simulator's reports). */
  applierState(group: number): { applied: number; missing?: { lo: number; hi: number }; failing?: string; restoring: boolean } | undefined {
    const a = this.appliers.get(group);
    if (!a) return this.restoring.has(group) ? { applied: 0, restoring: true } : undefined;
    const f = a.applyFailure?.();
    const missing = a.missing();
    return { applied: a.appliedIndex(), restoring: this.restoring.has(group), ...(missing ? { missing } : {}), ...(f ? { failing: `${f.attempts}x ${f.error.code ?? ''}` } : {}) };
  }

  /**
   * The group's apply is failing (calls in a row failed, the last `error`): that group's problem only,
   * reported per group (`/raft-health?group=G`, `/status`, metrics), never for the node as a whole.
   */
  groupApplyFailure(group: number): { sinceMs: number; attempts: number; error: Error & { code?: string } } | undefined {
    return this.appliers.get(group)?.applyFailure?.();
  }

  /** Raft-healthy, and its apply is not failing (two calls in a row or more). */
  groupServing(group: number): boolean {
    const f = this.groupApplyFailure(group);
    return this.groupHealthy(group) && !(f && f.attempts >= 2);
  }

  /** Healthy: the group has a leader this node has heard from recently, and the app answers. */
  groupHealthy(group: number): boolean {
    const g = this.groups.get(group);
    if (!g) return false;
    const st = g.status();
    if (st.leader === NONE) return false;
    if (st.leader !== this.opts.nodeId && !this.liveness.isAlive(st.leader)) return false;
    return g.repairThrough === 0;
  }

  /** The data groups this node was started to create (--groups) all exist here (or were deleted). */
  bootstrapComplete(): boolean {
    if (this.opts.staticPeers.size === 0) return true;
    for (let g = 1; g <= this.opts.bootstrapGroups; g++) {
      if (!this.groups.has(g) && !this.meta.deletedGroups.has(g)) return false;
    }
    return true;
  }

  peers(): Map<number, string> {
    return new Map(this.knownPeers);
  }
}
