// The next step of one recorded move (issue 21), decided from what the group's leader and the nodes
// involved report, never from memory: pure, so the daemon's rebalancer (rebalancer.ts, I/O through
// the admin routes) and the simulator (test/sim/placement-sim.ts) run exactly this decision.
//   add the new node as a learner -> wait until it has caught up -> promote it ->
//   move leadership off the old node if it leads -> remove the old node -> record the move done.

import type { Move } from './placement.js';

/** The group as its leader reports it. */
export interface GroupView {
  leader: number;
  commit: number;
  voters: number[];
  learners: number[];
}

/** Where the move stands, and what to do now. `wait`: nothing this round (ask again next round). */
export type MoveAction =
  | { step: 'add-learner'; do: 'add-learner' }
  /** `stalled`: the new node did not answer (it may be gone for good: the caller counts it as a failure). */
  | { step: 'add-learner' | 'catch-up'; do: 'wait'; why: string; stalled: boolean }
  | { step: 'promote'; do: 'promote' }
  | { step: 'transfer-leadership'; do: 'transfer'; to: number }
  | { step: 'remove-old'; do: 'remove-old' }
  | { step: 'record-done'; do: 'record-done' };

export type MoveStep = MoveAction['step'];

/** Deliberately wrong decisions the placement simulator must catch; never set in raftd. */
export interface MoveStepFaults {
  /**
   * Add the new node as a learner without waiting for it to apply the meta log through the
   * leader's commit: a stale replica it still holds (from a move that took the group off it) is then
   * promoted, and dropped when the node applies that earlier move's end — a voter loses its log.
   */
  addBeforeMetaApplied?: boolean;
}

export interface MoveStepInput {
  move: Move;
  view: GroupView;
  /** The meta group's commit index on the meta leader (this node). */
  metaCommit: number;
  /** The new node's meta group as it reports it (undefined: it did not answer). */
  targetMeta?: { applied: number } | undefined;
  /** The new node's replica of the group as it reports it (undefined: none, or it did not answer). */
  targetReplica?: { applied: number } | undefined;
  /** A learner within this many entries of the leader's commit counts as caught up. */
  catchUpSlack: number;
  faults?: MoveStepFaults;
}

/** Which report the decision needs next, so that callers ask a node only what matters this round. */
export function neededReport(move: Move, view: GroupView): 'target-meta' | 'target-replica' | 'none' {
  if (move.to === null || view.voters.includes(move.to)) return 'none';
  return view.learners.includes(move.to) ? 'target-replica' : 'target-meta';
}

export function nextMoveStep(i: MoveStepInput): MoveAction {
  const { move, view } = i;
  const { to, from } = move;
  if (to !== null && !view.voters.includes(to)) {
    if (!view.learners.includes(to)) {
      // The new node must have applied the meta log through this move's start first: an earlier
      // move may have taken a replica of this group off it, and it must have dropped that one (it
      // does so when it applies that move's end) before it is given the group again, or the late
      // drop could wipe the new replica after its promotion.
      if (!i.faults?.addBeforeMetaApplied && (!i.targetMeta || i.targetMeta.applied < i.metaCommit)) {
        return { step: 'add-learner', do: 'wait', why: i.targetMeta ? `node ${to} has applied the meta log through ${i.targetMeta.applied}, not ${i.metaCommit}` : `node ${to} did not answer`, stalled: !i.targetMeta };
      }
      return { step: 'add-learner', do: 'add-learner' };
    }
    const r = i.targetReplica;
    if (!r || r.applied + i.catchUpSlack < view.commit) {
      return { step: 'catch-up', do: 'wait', why: r ? `node ${to} applied ${r.applied} of ${view.commit}` : `node ${to} reports no replica`, stalled: !r };
    }
    return { step: 'promote', do: 'promote' };
  }
  if (from !== null && (view.voters.includes(from) || view.learners.includes(from))) {
    if (view.leader === from) {
      const target = to ?? view.voters.find((v) => v !== from);
      if (target === undefined) throw new Error(`group ${move.group}: no voter to hand leadership to`);
      return { step: 'transfer-leadership', do: 'transfer', to: target };
    }
    return { step: 'remove-old', do: 'remove-old' };
  }
  return { step: 'record-done', do: 'record-done' };
}

/**
 * Past the promotion the group has the new voter: finishing is the only way back to a placement the
 * meta group describes. A move that only drops a replica (`to` null) promoted nobody: it may be given
 * up (the node it would drop may be back and needed: the removal is then refused as unsafe forever).
 */
export function pastPromotion(move: Move, step: MoveStep | 'starting'): boolean {
  return move.to !== null && (step === 'transfer-leadership' || step === 'remove-old' || step === 'record-done');
}
