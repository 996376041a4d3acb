import { expect } from 'chai';
import { nextMoveStep, neededReport, pastPromotion, type GroupView } from '../../../daemon/placement/move-step.js';
import type { Move } from '../../../daemon/placement/placement.js';

// The next step of a move, decided from what the group's leader and the new node report: the same
// decision in raftd's rebalancer and in the placement simulator.
describe('placement: the next step of a move (move-step.ts)', () => {
  const move: Move = { group: 7, from: 1, to: 4, reason: 'balance' };
  const view = (v: Partial<GroupView>): GroupView => ({ leader: 2, commit: 100, voters: [1, 2, 3], learners: [], ...v });
  const base = { move, metaCommit: 50, catchUpSlack: 4 };

  it('adds the new node as a learner only once it applied the meta log through the leader commit', () => {
    expect(neededReport(move, view({}))).to.equal('target-meta');
    expect(nextMoveStep({ ...base, view: view({}), targetMeta: { applied: 49 } })).to.deep.include({ step: 'add-learner', do: 'wait', stalled: false });
    expect(nextMoveStep({ ...base, view: view({}), targetMeta: { applied: 50 } })).to.deep.equal({ step: 'add-learner', do: 'add-learner' });
    // A node that does not answer is a stalled round (counted toward giving the move up).
    expect(nextMoveStep({ ...base, view: view({}) })).to.deep.include({ do: 'wait', stalled: true });
    // The mutation the simulator must catch skips the wait.
    expect(nextMoveStep({ ...base, view: view({}), targetMeta: { applied: 3 }, faults: { addBeforeMetaApplied: true } }).do).to.equal('add-learner');
  });

  it('promotes a learner only once caught up', () => {
    const v = view({ learners: [4] });
    expect(neededReport(move, v)).to.equal('target-replica');
    expect(nextMoveStep({ ...base, view: v, targetReplica: { applied: 95 } })).to.deep.include({ step: 'catch-up', do: 'wait', stalled: false });
    expect(nextMoveStep({ ...base, view: v, targetReplica: { applied: 96 } })).to.deep.equal({ step: 'promote', do: 'promote' });
    expect(nextMoveStep({ ...base, view: v })).to.deep.include({ step: 'catch-up', stalled: true });
  });

  it('moves leadership off the old node, then removes it, then records the move done', () => {
    expect(nextMoveStep({ ...base, view: view({ leader: 1, voters: [1, 2, 3, 4] }) })).to.deep.equal({ step: 'transfer-leadership', do: 'transfer', to: 4 });
    expect(nextMoveStep({ ...base, view: view({ voters: [1, 2, 3, 4] }) })).to.deep.equal({ step: 'remove-old', do: 'remove-old' });
    expect(nextMoveStep({ ...base, view: view({ voters: [2, 3, 4] }) })).to.deep.equal({ step: 'record-done', do: 'record-done' });
    // A drop-only move: leadership to another voter, and it may be given up (it promoted nobody).
    const drop: Move = { group: 7, from: 1, to: null, reason: 'over-replicated' };
    expect(nextMoveStep({ ...base, move: drop, view: view({ leader: 1 }) })).to.deep.equal({ step: 'transfer-leadership', do: 'transfer', to: 2 });
    expect(pastPromotion(drop, 'remove-old')).to.equal(false);
    expect(pastPromotion(move, 'remove-old')).to.equal(true);
    expect(pastPromotion(move, 'catch-up')).to.equal(false);
  });
});
