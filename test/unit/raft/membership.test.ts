import { expect } from 'chai';
import {
  ConfChangeDecodeError,
  ConfChangeType,
  EntryType,
  MemoryStorage,
  MessageType,
  ProposeError,
  Role,
  decodeConfChange,
  decodeConfEntry,
  encodeConfChange,
  encodeConfEntry,
  type ConfChange,
} from '../../../daemon/raft/index.js';
import { Network, dec, enc } from './network.js';

const cc = (type: ConfChangeType, node: number, context = ''): ConfChange => ({ type, node, context: enc(context) });

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(ProposeError);
    expect((e as ProposeError).code).to.equal(code);
    return;
  }
  expect.fail(`expected ProposeError ${code}`);
}

function cluster(ids: number[], conf?: { voters: number[]; learners: number[] }): Network {
  const net = new Network(ids, {}, conf);
  net.campaign(1);
  expect(net.node(1).raft.status().role).to.equal(Role.Leader);
  return net;
}

/**
 * Adds a new node. Conf entries are deltas, so a joiner starts from the group's bootstrap
 * membership (or receives a snapshot carrying the full membership).
 */
function addEmptyNode(net: Network, id: number, bootstrap = { voters: [1, 2, 3], learners: [] as number[] }): void {
  net.add(id, new MemoryStorage({ confState: bootstrap }));
}

describe('raft: membership', () => {
  describe('ConfChange encoding', () => {
    it('round-trips every type, large node ids and the context', () => {
      for (const c of [cc(ConfChangeType.AddVoter, 1, 'addr:1'), cc(ConfChangeType.AddLearner, 2 ** 53 - 1), cc(ConfChangeType.RemoveNode, 77, 'x'.repeat(300))]) {
        const back = decodeConfChange(encodeConfChange(c));
        expect(back.type).to.equal(c.type);
        expect(back.node).to.equal(c.node);
        expect(dec(back.context)).to.equal(dec(c.context));
      }
    });

    it('the leader form carries the resulting configuration', () => {
      const c = cc(ConfChangeType.AddVoter, 2 ** 40, 'ctx');
      const d = decodeConfEntry(encodeConfEntry(c, { voters: [1, 2 ** 40], learners: [7] }));
      expect(d.result).to.deep.equal({ voters: [1, 2 ** 40], learners: [7] });
      expect(dec(d.cc.context)).to.equal('ctx');
      expect(decodeConfChange(encodeConfEntry(c, { voters: [], learners: [] })).node).to.equal(2 ** 40);
      const full = encodeConfEntry(c, { voters: [1], learners: [] });
      expect(() => decodeConfEntry(full.slice(0, full.length - 1))).to.throw(ConfChangeDecodeError);
    });

    it('rejects garbage with a typed error', () => {
      expect(() => decodeConfChange(new Uint8Array([1, 0]))).to.throw(ConfChangeDecodeError);
      const bad = encodeConfChange(cc(ConfChangeType.AddVoter, 3));
      bad[0] = 9;
      expect(() => decodeConfChange(bad)).to.throw(ConfChangeDecodeError);
      const badType = encodeConfChange(cc(ConfChangeType.AddVoter, 3));
      badType[1] = 7;
      expect(() => decodeConfChange(badType)).to.throw(ConfChangeDecodeError);
    });
  });

  it('a learner receives replication but never counts for the quorum', () => {
    const net = cluster([1, 2, 3], { voters: [1, 2], learners: [3] });
    net.node(1).raft.propose(enc('a'));
    net.stabilize();
    expect(net.appliedData(3)).to.deep.equal(['a']);
    net.isolate(2);
    net.node(1).raft.propose(enc('b'));
    net.tick(3, [1, 3]);
    expect(net.node(3).raft.status().lastIndex).to.equal(3);
    expect(net.node(1).raft.status().commit).to.equal(2);
  });

  it('adds a learner, then promotes it with AddVoter; the change is in force on append', () => {
    const net = cluster([1, 2, 3]);
    addEmptyNode(net, 4);
    const t = net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4, 'host4:7000'));
    expect(net.node(1).raft.status().confState).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    net.stabilize();
    expect(net.node(4).raft.status().confState).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    // The conf entry is delivered to the application too, with its context.
    const ccEntry = net.node(2).applied.find((e) => e.type === EntryType.ConfChange)!;
    expect(ccEntry.index).to.equal(t.index);
    expect(dec(decodeConfChange(ccEntry.data).context)).to.equal('host4:7000');
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddVoter, 4));
    net.stabilize();
    for (const id of [1, 2, 3, 4]) expect(net.node(id).raft.status().confState).to.deep.equal({ voters: [1, 2, 3, 4], learners: [] });
    // Four voters: a quorum is three.
    net.isolate(3);
    net.isolate(4);
    net.node(1).raft.propose(enc('needs 3'));
    net.tick(3, [1, 2]);
    expect(net.appliedData(1)).to.deep.equal([]);
    net.heal();
    net.tick(2);
    expect(net.appliedData(4)).to.deep.equal(['needs 3']);
  });

  it('a node that joins with no membership at all learns the full one from the first conf entry', () => {
    const net = cluster([1, 2, 3]);
    addEmptyNode(net, 4, { voters: [], learners: [] });
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4));
    net.stabilize();
    expect(net.node(4).raft.status().confState).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddVoter, 4));
    net.stabilize();
    expect(net.node(4).raft.status().confState).to.deep.equal({ voters: [1, 2, 3, 4], learners: [] });
    // With the right membership it is an ordinary voter: no solo election.
    net.tick(5);
    expect(net.leader()!.id).to.equal(1);
  });

  it('one change at a time: refuses while a change is uncommitted, and before committing in its term', () => {
    const net = cluster([1, 2, 3]);
    net.isolate(2);
    net.isolate(3);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4));
    expectCode(() => net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 5)), 'CONF_CHANGE_IN_PROGRESS');
    net.heal();
    net.tick(2);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 5));
    // A fresh leader whose empty entry is not committed yet refuses too.
    const net2 = new Network([1, 2, 3]);
    net2.dropIf = (m) => m.type === MessageType.AppResp;
    net2.campaign(1);
    expectCode(() => net2.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4)), 'CONF_CHANGE_IN_PROGRESS');
    expectCode(() => net2.node(2).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4)), 'NOT_LEADER');
  });

  it('refuses invalid changes with INVALID_CONF_CHANGE', () => {
    const net = cluster([1, 2, 3], { voters: [1, 2], learners: [3] });
    expectCode(() => net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddVoter, 2)), 'INVALID_CONF_CHANGE');
    expectCode(() => net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 3)), 'INVALID_CONF_CHANGE');
    expectCode(() => net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 2)), 'INVALID_CONF_CHANGE');
    expectCode(() => net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 9)), 'INVALID_CONF_CHANGE');
    expectCode(() => net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddVoter, 0)), 'INVALID_CONF_CHANGE');
    const solo = cluster([1]);
    expectCode(() => solo.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 1)), 'INVALID_CONF_CHANGE');
  });

  it('removes a voter: the quorum shrinks as soon as the entry is appended', () => {
    const net = cluster([1, 2, 3]);
    net.isolate(3);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 3));
    net.stabilize();
    // Committed by 1 and 2 alone (the new configuration {1,2}).
    expect(net.node(1).raft.status().commit).to.equal(2);
    net.node(1).raft.propose(enc('after'));
    net.stabilize();
    expect(net.appliedData(2)).to.deep.equal(['after']);
    // 3 never answered: the leader stops trying to tell it after two election timeouts.
    expect(net.node(1).raft.status().progress![3]).to.not.equal(undefined);
    net.tick(20);
    expect(net.node(1).raft.status().progress![3]).to.equal(undefined);
  });

  it('a removed voter learns its removal: the leader replicates to it until it holds the entry (mutation: forgetRemovedPeer)', () => {
    const run = (faults: { forgetRemovedPeer?: boolean }) => {
      const net = new Network([1, 2, 3], { faults });
      net.campaign(1);
      net.stabilize();
      net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 3));
      net.stabilize();
      return net;
    };
    const net = run({});
    const removed = net.node(3).raft.status();
    // It has the entry, so it knows it is out (no campaigns), and still knows the leader (a hint
    // for its clients); the leader dropped it once it acknowledged.
    expect(removed.confState.voters).to.deep.equal([1, 2]);
    expect(removed.leader).to.equal(1);
    expect(net.node(1).raft.status().progress![3]).to.equal(undefined);
    net.clearSent();
    net.tick(40);
    expect(net.countSent(MessageType.Vote, 3) + net.countSent(MessageType.PreVote, 3)).to.equal(0);
    // Without it, the removed node still believes it is a voter, and campaigns in vain.
    const bad = run({ forgetRemovedPeer: true });
    expect(bad.node(3).raft.status().confState.voters).to.deep.equal([1, 2, 3]);
    bad.clearSent();
    bad.tick(40);
    expect(bad.countSent(MessageType.PreVote, 3) + bad.countSent(MessageType.Vote, 3)).to.be.greaterThan(0);
  });

  it('a leader that removes itself keeps replicating without counting itself, then steps down', () => {
    const net = cluster([1, 2, 3]);
    net.isolate(3);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 1));
    net.stabilize();
    // {2,3} must both have it: 1's own copy does not count.
    expect(net.node(1).raft.status().role).to.equal(Role.Leader);
    expect(net.node(1).raft.status().commit).to.equal(1);
    net.heal();
    net.tick(1);
    expect(net.node(1).raft.status().commit).to.equal(2);
    expect(net.node(1).raft.status().role).to.equal(Role.Follower);
    // It never campaigns again; 2 or 3 takes over.
    net.clearSent();
    net.tick(40);
    expect(net.node(1).raft.status().role).to.equal(Role.Follower);
    expect([2, 3]).to.include(net.leader()!.id);
    expect(net.countSent(MessageType.Vote, 1) + net.countSent(MessageType.PreVote, 1)).to.equal(0);
  });

  it('a leader that removes itself tells the most caught-up remaining voter to campaign at once (TimeoutNow)', () => {
    const net = cluster([1, 2, 3]);
    net.clearSent();
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 1));
    // No ticks: only messages. Without the TimeoutNow nobody campaigns before an election timeout.
    net.stabilize();
    expect(net.node(1).raft.status().role).to.equal(Role.Follower);
    expect(net.countSent(MessageType.TimeoutNow, 1)).to.equal(1);
    const leader = net.leader();
    expect(leader, 'no leader without an election timeout').to.not.equal(undefined);
    expect([2, 3]).to.include(leader!.id);
    // The new leader's group works: a proposal commits under {2,3}.
    leader!.raft.propose(enc('after-removal'));
    net.stabilize();
    expect(net.appliedData(2)).to.include('after-removal');
    expect(net.appliedData(3)).to.include('after-removal');
  });

  it('reverts to the previous configuration when the conf entry is truncated', () => {
    const net = cluster([1, 2, 3, 4, 5]);
    // Only node 3 receives the change.
    net.dropIf = (m) => m.type === MessageType.App && m.from === 1 && m.to !== 3;
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 6));
    net.stabilize();
    expect(net.node(3).raft.status().confState.learners).to.deep.equal([6]);
    net.dropIf = undefined;
    net.isolate(1);
    net.cutLink(3, 2);
    net.cutLink(3, 4);
    net.cutLink(3, 5);
    net.campaign(2);
    expect(net.node(2).raft.status().role).to.equal(Role.Leader);
    net.node(2).raft.propose(enc('new'));
    net.stabilize();
    net.heal();
    net.isolate(1);
    net.tick(2, [2, 3, 4, 5]);
    expect(net.node(3).raft.status().confState).to.deep.equal({ voters: [1, 2, 3, 4, 5], learners: [] });
    expect(net.appliedData(3)).to.deep.equal(['new']);
  });

  it('confStateAt gives the membership in force at each log index', () => {
    const net = cluster([1, 2, 3]);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4)); // index 2
    net.stabilize();
    net.node(1).raft.propose(enc('x')); // 3
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 3)); // 4 (after 3 commits)
    net.stabilize();
    const r = net.node(1).raft;
    expect(r.confStateAt(1)).to.deep.equal({ voters: [1, 2, 3], learners: [] });
    expect(r.confStateAt(2)).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    expect(r.confStateAt(3)).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    expect(r.confStateAt(4)).to.deep.equal({ voters: [1, 2], learners: [4] });
  });

  it('after a restart, conf changes in the log above the snapshot are in force again', () => {
    const net = cluster([1, 2, 3]);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.AddLearner, 4));
    net.stabilize();
    const n = net.restart(2);
    expect(n.raft.status().confState).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    // Above a snapshot that already includes it, too.
    const st = net.node(1).storage;
    st.createSnapshot(2, net.node(1).raft.confStateAt(2), enc('s'));
    st.compact(2);
    const n1 = net.restart(1);
    expect(n1.raft.status().confState).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
  });

  it('a removed node stops receiving replication', () => {
    const net = cluster([1, 2, 3]);
    net.node(1).raft.proposeConfChange(cc(ConfChangeType.RemoveNode, 3));
    net.stabilize();
    net.clearSent();
    net.node(1).raft.propose(enc('x'));
    net.tick(2);
    expect(net.node(1).sent.filter((m) => m.to === 3)).to.have.length(0);
  });
});
