// Placement records in the meta group (daemon/placement/records.ts through MetaState): every member
// applies the same commands to the same state, refuses what the state does not allow the same way,
// and ends with the same placement.

import { expect } from 'chai';
import { MetaState, decodeMetaCommand, encodeMetaCommand, type MetaCommand } from '../../../daemon/host/meta.js';

function cluster(): MetaState {
  const m = new MetaState();
  for (const id of [1, 2, 3, 4]) m.apply({ op: 'register', node: { id, raftAddr: `h:${id}`, httpAddr: `h:${8000 + id}` } });
  m.apply({ op: 'create-group', group: 1, members: [1, 2, 3] });
  m.apply({ op: 'create-group', group: 2, members: [2, 3, 4] });
  return m;
}

describe('placement records (meta group)', () => {
  it('a move: started, done; the group\'s members follow, and the moved-off node is remembered', () => {
    const m = cluster();
    const done: Array<[number, number | null, number | null]> = [];
    const effects = { onRegister: () => {}, onDeregister: () => {}, onCreateGroup: () => {}, onDeleteGroup: () => {}, onMoveDone: (g: number, f: number | null, t: number | null) => done.push([g, f, t]) };
    expect(m.apply({ op: 'move-start', move: { group: 1, from: 3, to: 4, reason: 'balance' } }, effects)).to.deep.equal({ ok: true });
    expect(m.placement.moves.get(1)).to.deep.equal({ group: 1, from: 3, to: 4, reason: 'balance' });
    expect(m.placement.wasMovedOff(1, 3)).to.equal(false);
    expect(m.apply({ op: 'move-done', group: 1 }, effects)).to.deep.equal({ ok: true });
    expect(m.groups.get(1)!.members).to.deep.equal([1, 2, 4]);
    expect(m.placement.moves.size).to.equal(0);
    expect(m.placement.wasMovedOff(1, 3)).to.equal(true);
    expect(done).to.deep.equal([[1, 3, 4]]);
    // Moving it back clears the mark as soon as the move starts (the replica may be created again).
    m.apply({ op: 'move-start', move: { group: 1, from: 4, to: 3, reason: 'balance' } });
    expect(m.placement.wasMovedOff(1, 3)).to.equal(false);
  });

  it('refuses what the state does not allow, the same way everywhere', () => {
    const m = cluster();
    const refused = (cmd: MetaCommand, code: string) => {
      const r = m.apply(cmd);
      expect(r.ok, JSON.stringify(cmd)).to.equal(false);
      expect((r as { code: string }).code).to.equal(code);
    };
    refused({ op: 'move-start', move: { group: 9, from: 1, to: 4, reason: 'balance' } }, 'GROUP_NOT_FOUND');
    refused({ op: 'move-start', move: { group: 1, from: 4, to: 2, reason: 'balance' } }, 'BAD_REQUEST'); // 4 holds no replica
    refused({ op: 'move-start', move: { group: 1, from: 1, to: 2, reason: 'balance' } }, 'BAD_REQUEST'); // 2 holds one already
    refused({ op: 'move-start', move: { group: 1, from: 1, to: 7, reason: 'balance' } }, 'NOT_FOUND'); // unregistered
    refused({ op: 'move-start', move: { group: 1, from: null, to: null, reason: 'balance' } }, 'BAD_REQUEST');
    refused({ op: 'move-start', move: { group: 1, from: 1, to: 4, reason: 'because' as 'balance' } }, 'BAD_REQUEST');
    refused({ op: 'move-start', move: { group: 1, from: 1.5, to: 4, reason: 'balance' } as never }, 'BAD_REQUEST');
    expect(m.apply({ op: 'move-start', move: { group: 1, from: 1, to: 4, reason: 'balance' } }).ok).to.equal(true);
    refused({ op: 'move-start', move: { group: 1, from: 2, to: 4, reason: 'balance' } }, 'CONFLICT'); // one per group
    refused({ op: 'move-done', group: 2 }, 'NOT_FOUND');
    refused({ op: 'node-state', id: 9, state: 'decommissioning' }, 'NOT_FOUND');
    refused({ op: 'node-state', id: 1, state: 'dead' as 'active' }, 'BAD_REQUEST');
    refused({ op: 'register', node: { id: 5, raftAddr: 'a:1', httpAddr: 'a:2', zone: 'x'.repeat(65) } }, 'BAD_REQUEST');
    refused({ op: 'no-such-op' } as unknown as MetaCommand, 'BAD_REQUEST');
    // Refusals changed nothing.
    expect(m.groups.get(1)!.members).to.deep.equal([1, 2, 3]);
    expect([...m.placement.moves.keys()]).to.deep.equal([1]);
  });

  it('decommissioning is recorded and cancelled; a deleted group forgets its move', () => {
    const m = cluster();
    expect(m.apply({ op: 'node-state', id: 2, state: 'decommissioning' }).ok).to.equal(true);
    expect(m.placement.stateOf(2)).to.equal('decommissioning');
    expect(m.apply({ op: 'node-state', id: 2, state: 'active' }).ok).to.equal(true);
    expect(m.placement.stateOf(2)).to.equal('active');
    m.apply({ op: 'move-start', move: { group: 2, from: 4, to: 1, reason: 'balance' } });
    m.apply({ op: 'delete-group', group: 2 });
    expect(m.placement.moves.has(2)).to.equal(false);
    expect(m.apply({ op: 'move-abort', group: 2, why: 'gone' }).ok).to.equal(false);
  });

  it('is deterministic through the wire encoding: two replicas applying the same entries agree', () => {
    const cmds: MetaCommand[] = [
      { op: 'move-start', move: { group: 1, from: 3, to: 4, reason: 'balance' } },
      { op: 'move-start', move: { group: 1, from: 2, to: 4, reason: 'balance' } }, // refused: one per group
      { op: 'move-done', group: 1 },
      { op: 'node-state', id: 4, state: 'decommissioning' },
      { op: 'move-start', move: { group: 2, from: 4, to: 1, reason: 'decommission' } },
      { op: 'move-abort', group: 2, why: 'test' },
    ];
    const a = cluster();
    const b = cluster();
    for (const c of cmds) {
      const entry = encodeMetaCommand(c);
      expect(a.apply(decodeMetaCommand(entry)!)).to.deep.equal(b.apply(decodeMetaCommand(entry)!));
    }
    expect([...a.groups.values()]).to.deep.equal([...b.groups.values()]);
    expect([...a.placement.moves]).to.deep.equal([...b.placement.moves]);
    expect(a.groups.get(1)!.members).to.deep.equal([1, 2, 4]);
    expect(a.placement.stateOf(4)).to.equal('decommissioning');
  });
});
