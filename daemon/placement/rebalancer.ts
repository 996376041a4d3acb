// The rebalancing executor (issue 21). Runs on every node, acts only on the meta group's leader:
// plans moves (placement.ts), records each as a meta entry before touching the group, and drives
// each recorded move one membership change at a time through the ordinary admin routes:
//   add the new node as a learner -> wait until it has caught up (log or snapshot) -> promote it ->
//   move leadership off the old node if it leads -> remove the old node -> record the move done.
// It keeps no state of its own that matters: the next step of a move is read from the group's
// membership (its leader's /status) each round, so a new meta leader resumes where the old left.

import type { Move, PlacementNode } from './placement.js';
import { planMoves, preferredLeaders } from './placement.js';
import { neededReport, nextMoveStep, pastPromotion, type GroupView, type MoveStep, type MoveStepFaults } from './move-step.js';

export type { GroupView, MoveStep };

/** What the rebalancer needs of the node it runs on. */
export interface RebalancerPort {
  isMetaLeader(): boolean;
  /** The meta group's commit index here (on the leader: the newest). */
  metaCommit(): number;
  nodes(deadAfterMs: number): PlacementNode[];
  placement(): Map<number, number[]>;
  moves(): Move[];
  /** Registered nodes that are not in the meta group yet (they need it to know the placement). */
  nodesOutsideMeta(): number[];
  proposeMeta(cmd: { op: 'move-start'; move: Move } | { op: 'move-done'; group: number } | { op: 'move-abort'; group: number; why: string }): Promise<void>;
  /** The group as its leader sees it, asked through any member (undefined: nobody answered). */
  groupView(group: number, members: number[]): Promise<GroupView | undefined>;
  /** The node's own view of its replica of the group (undefined: it has none, or it is down). */
  replicaView(node: number, group: number): Promise<{ applied: number; commit: number } | undefined>;
  addMember(group: number, node: number, role: 'learner' | 'voter'): Promise<void>;
  removeMember(group: number, node: number): Promise<void>;
  transferLeadership(group: number, to: number): Promise<void>;
  /** Who leads each data group, as the nodes this one reaches report it. */
  leaders(): Promise<Map<number, number>>;
  /** Alive, and its application healthy: worth handing leadership to. */
  canLead(node: number): boolean;
  /** Bytes one replica of each group stores, where known: balancing then evens bytes per node too. */
  groupBytes?(): Promise<ReadonlyMap<number, number>>;
}

export interface RebalancerOptions {
  /** 'auto': plan whenever the placement is off; 'manual': only after requestPass(). */
  mode: 'auto' | 'manual';
  replicationFactor: number;
  maxConcurrentMoves: number;
  /** Auto mode: a node silent this long counts as dead (0: never). */
  deadNodeTimeoutMs: number;
  /** A learner within this many entries of the commit index counts as caught up. */
  catchUpSlack: number;
  /** Rounds a move may fail in a row before it is given up (recorded as aborted). */
  maxFailures: number;
  /**
   * Bytes per node are evened only once the groups hold this many bytes in all (one replica each):
   * below it a move costs more than the unevenness it removes, and moves would follow every write.
   */
  bytesFloor: number;
  /** Deliberately wrong step decisions (the placement simulator's mutations); never set in raftd. */
  faults?: MoveStepFaults;
}

export const REBALANCER_DEFAULTS: RebalancerOptions = { mode: 'manual', replicationFactor: 0, maxConcurrentMoves: 2, deadNodeTimeoutMs: 600_000, catchUpSlack: 64, maxFailures: 30, bytesFloor: 64 << 20 };

export interface RebalancerStatus {
  mode: 'auto' | 'manual';
  /** This node leads the meta group and so runs the moves. */
  leading: boolean;
  /** A pass was asked for (manual) or auto mode: planning is on. */
  planning: boolean;
  running: Array<Move & { step: MoveStep | 'starting'; failures: number; lastError?: string }>;
  movesStarted: number;
  movesDone: number;
  movesAborted: number;
  /** Leadership transfers toward the preferred leaders. */
  leaderTransfers: number;
  lastError?: string;
}

export class Rebalancer {
  private passRequested = false;
  private busy = false;
  private readonly progress = new Map<number, { step: MoveStep | 'starting'; failures: number; lastError?: string }>();
  private movesStarted = 0;
  private movesDone = 0;
  private movesAborted = 0;
  private leaderTransfers = 0;
  /** Leader-balancing rounds of the current pass (bounded: leadership is only advisory). */
  private leaderRounds = 0;
  private lastError: string | undefined;

  constructor(
    private readonly port: RebalancerPort,
    private readonly opts: RebalancerOptions,
    private readonly log: { warn(o: object, m: string): void; info(o: object, m: string): void },
  ) {}

  /** Manual mode: plan and run moves until the placement is balanced. */
  requestPass(): void {
    this.passRequested = true;
  }

  status(): RebalancerStatus {
    const running = this.port.moves().map((m) => {
      const p = this.progress.get(m.group);
      return { ...m, step: p?.step ?? 'starting', failures: p?.failures ?? 0, ...(p?.lastError ? { lastError: p.lastError } : {}) };
    });
    return {
      mode: this.opts.mode,
      leading: this.port.isMetaLeader(),
      planning: this.opts.mode === 'auto' || this.passRequested,
      running,
      movesStarted: this.movesStarted,
      movesDone: this.movesDone,
      movesAborted: this.movesAborted,
      leaderTransfers: this.leaderTransfers,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** One round (called periodically); rounds never overlap. */
  async round(): Promise<void> {
    if (this.busy) return;
    if (!this.port.isMetaLeader()) {
      this.progress.clear();
      return;
    }
    this.busy = true;
    try {
      const planning = this.opts.mode === 'auto' || this.passRequested;
      if (planning) {
        // A node outside the meta group would not learn the placement: bring it in as a learner.
        for (const id of this.port.nodesOutsideMeta()) await this.port.addMember(0, id, 'learner').catch((e: Error) => (this.lastError = `meta learner ${id}: ${e.message}`));
      }
      await Promise.all(this.port.moves().map((m) => this.advance(m)));
      if (!planning) return;
      const inFlight = this.port.moves();
      const plan = planMoves({
        placement: this.port.placement(),
        nodes: this.port.nodes(this.opts.mode === 'auto' ? this.opts.deadNodeTimeoutMs : 0),
        replicationFactor: this.opts.replicationFactor,
        maxConcurrentMoves: this.opts.maxConcurrentMoves,
        inFlight,
        ...(await this.groupBytes()),
      });
      for (const move of plan) {
        try {
          await this.port.proposeMeta({ op: 'move-start', move });
          this.movesStarted++;
          this.log.info({ move }, 'rebalancing: move started');
        } catch (e) {
          this.lastError = `move-start group ${move.group}: ${(e as Error).message}`;
        }
      }
      if (plan.length > 0 || inFlight.length > 0) {
        this.leaderRounds = 0;
        return;
      }
      // Replicas in place: spread leadership (each group to its preferred leader), a few at a time.
      const moved = await this.spreadLeaders();
      if (moved === 0 || ++this.leaderRounds >= 10) {
        this.passRequested = false;
        this.leaderRounds = 0;
      }
    } catch (e) {
      this.lastError = (e as Error).message;
    } finally {
      this.busy = false;
    }
  }

  /** The groups' sizes for the planner, when known and large enough to be worth moving for. */
  private async groupBytes(): Promise<{ groupBytes?: ReadonlyMap<number, number> }> {
    if (!this.port.groupBytes) return {};
    const bytes = await this.port.groupBytes();
    let total = 0;
    for (const b of bytes.values()) total += b;
    return total >= this.opts.bytesFloor && total > 0 ? { groupBytes: bytes } : {};
  }

  /** Transfers up to maxConcurrentMoves groups to their preferred leader; returns how many. */
  private async spreadLeaders(): Promise<number> {
    const preferred = preferredLeaders(this.port.placement());
    const leaders = await this.port.leaders();
    let started = 0;
    for (const [group, want] of preferred) {
      if (started >= this.opts.maxConcurrentMoves) break;
      const now = leaders.get(group);
      if (now === undefined || now === want || !this.port.canLead(want)) continue;
      started++;
      try {
        await this.port.transferLeadership(group, want);
        this.leaderTransfers++;
      } catch (e) {
        this.lastError = `leadership of group ${group} to node ${want}: ${(e as Error).message}`;
      }
    }
    return started;
  }

  /** The next step of one recorded move, read from the group's membership (move-step.ts decides). */
  private async advance(m: Move): Promise<void> {
    const p = this.progress.get(m.group) ?? { step: 'starting' as const, failures: 0 };
    this.progress.set(m.group, p);
    try {
      const members = [...(this.port.placement().get(m.group) ?? []), ...(m.to !== null ? [m.to] : [])];
      const view = await this.port.groupView(m.group, members);
      if (!view) throw new Error(`group ${m.group}: no member answered`);
      const need = neededReport(m, view);
      const action = nextMoveStep({
        move: m,
        view,
        metaCommit: this.port.metaCommit(),
        ...(need === 'target-meta' ? { targetMeta: await this.port.replicaView(m.to!, 0) } : {}),
        ...(need === 'target-replica' ? { targetReplica: await this.port.replicaView(m.to!, m.group) } : {}),
        catchUpSlack: this.opts.catchUpSlack,
        ...(this.opts.faults ? { faults: this.opts.faults } : {}),
      });
      p.step = action.step;
      switch (action.do) {
        case 'wait':
          // A new node that does not answer may never come back: counted, so the move is given up in the end.
          if (action.stalled) throw new Error(action.why);
          return;
        case 'add-learner':
          await this.port.addMember(m.group, m.to!, 'learner');
          p.failures = 0;
          return;
        case 'promote':
          await this.port.addMember(m.group, m.to!, 'voter');
          p.failures = 0;
          return;
        case 'transfer':
          await this.port.transferLeadership(m.group, action.to);
          return;
        case 'remove-old':
          await this.port.removeMember(m.group, m.from!);
          p.failures = 0;
          return;
        case 'record-done':
          await this.port.proposeMeta({ op: 'move-done', group: m.group });
          this.progress.delete(m.group);
          this.movesDone++;
          this.log.info({ move: m }, 'rebalancing: move done');
          return;
      }
    } catch (e) {
      p.failures++;
      p.lastError = (e as Error).message.slice(0, 300);
      this.lastError = `group ${m.group}: ${p.lastError}`;
      // Past the promotion the group has the new voter: finishing is the only way back to a placement
      // the meta group describes, so those steps are retried for as long as it takes.
      if (p.failures >= this.opts.maxFailures && !pastPromotion(m, p.step)) {
        if (m.to !== null) await this.port.removeMember(m.group, m.to).catch(() => undefined); // the learner, if added
        this.log.warn({ move: m, err: p.lastError }, 'rebalancing: giving the move up');
        await this.port.proposeMeta({ op: 'move-abort', group: m.group, why: p.lastError }).catch(() => undefined);
        this.progress.delete(m.group);
        this.movesAborted++;
      }
    }
  }
}
