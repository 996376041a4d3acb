import { expect } from 'chai';
import { MessageType, ProposeError, Role } from '../../../daemon/raft/index.js';
import { Network, enc } from './network.js';

describe('raft: leadership transfer', () => {
  it('an up-to-date transferee gets TimeoutNow and wins at once, even with pre-vote and leases', () => {
    const net = new Network([1, 2, 3], { preVote: true, checkQuorum: true });
    net.campaign(1);
    net.clearSent();
    net.node(1).raft.transferLeadership(2);
    net.stabilize();
    expect(net.node(1).sent.filter((m) => m.type === MessageType.TimeoutNow).map((m) => m.to)).to.deep.equal([2]);
    expect(net.node(2).raft.status().role).to.equal(Role.Leader);
    expect(net.node(2).raft.status().term).to.equal(2);
    expect(net.node(1).raft.status().role).to.equal(Role.Follower);
    // The transferee skipped the pre-vote.
    expect(net.countSent(MessageType.PreVote, 2)).to.equal(0);
  });

  it('a lagging transferee is brought up to date first; proposals meanwhile are refused', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.node(1).raft.propose(enc(`x${i}`));
    net.stabilize();
    net.holdIf = (m) => m.type === MessageType.App && m.to === 3;
    net.heal();
    net.node(1).raft.transferLeadership(3);
    net.stabilize();
    expect(net.node(1).raft.status().leadTransferee).to.equal(3);
    try {
      net.node(1).raft.propose(enc('no'));
      expect.fail('expected TRANSFER_IN_PROGRESS');
    } catch (e) {
      expect((e as ProposeError).code).to.equal('TRANSFER_IN_PROGRESS');
    }
    expect(net.node(1).sent.filter((m) => m.type === MessageType.TimeoutNow)).to.have.length(0);
    net.holdIf = undefined;
    net.releaseHeld();
    net.stabilize();
    net.tick(2);
    expect(net.node(3).raft.status().role).to.equal(Role.Leader);
    expect(net.appliedData(3)).to.deep.equal(['x0', 'x1', 'x2', 'x3', 'x4']);
  });

  it('is abandoned after an election timeout if the transferee does not catch up', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.node(1).raft.propose(enc('x'));
    net.stabilize();
    net.node(1).raft.transferLeadership(3);
    net.tick(10, [1, 2]);
    expect(net.node(1).raft.status().leadTransferee).to.equal(0);
    expect(net.node(1).raft.status().role).to.equal(Role.Leader);
    net.node(1).raft.propose(enc('accepted again'));
  });

  it('ignores transfers to itself, to learners and to unknown nodes, and on followers', () => {
    const net = new Network([1, 2, 3], {}, { voters: [1, 2], learners: [3] });
    net.campaign(1);
    for (const to of [1, 3, 9]) {
      net.node(1).raft.transferLeadership(to);
      expect(net.node(1).raft.status().leadTransferee).to.equal(0);
    }
    net.node(2).raft.transferLeadership(1);
    expect(net.node(2).raft.status().leadTransferee).to.equal(0);
  });

  it('TimeoutNow is ignored by a learner', () => {
    const net = new Network([1, 2, 3], {}, { voters: [1, 2], learners: [3] });
    net.campaign(1);
    net.node(3).raft.step({
      type: MessageType.TimeoutNow, from: 1, to: 3, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(),
    });
    expect(net.node(3).raft.status().role).to.equal(Role.Follower);
    expect(net.node(3).raft.status().term).to.equal(1);
  });

  describe('campaign-reluctant nodes (the host: this node\'s application is unhealthy)', () => {
    it('a reluctant transferee declines TimeoutNow; the leader keeps leading and abandons the transfer', () => {
      const net = new Network([1, 2, 3], { preVote: true, checkQuorum: true });
      net.campaign(1);
      net.node(2).raft.setCampaignReluctant(true);
      net.node(1).raft.transferLeadership(2);
      net.stabilize();
      expect(net.node(1).sent.filter((m) => m.type === MessageType.TimeoutNow).map((m) => m.to)).to.deep.equal([2]);
      expect(net.node(2).raft.status().role).to.equal(Role.Follower);
      expect(net.node(1).raft.status().role).to.equal(Role.Leader);
      net.tick(10);
      expect(net.node(1).raft.status().leadTransferee).to.equal(0);
      expect(net.node(1).raft.status().role).to.equal(Role.Leader);
    });

    it('when the leader dies, the healthy node wins; the reluctant one does not even pre-vote', () => {
      for (const reluctant of [2, 3]) {
        const net = new Network([1, 2, 3], { preVote: true, checkQuorum: true });
        net.campaign(1);
        net.node(reluctant).raft.setCampaignReluctant(true);
        net.isolate(1);
        net.tick(25, [2, 3]);
        const winner = [2, 3].find((id) => net.node(id).raft.status().role === Role.Leader);
        expect(winner, `with ${reluctant} reluctant`).to.equal(reluctant === 2 ? 3 : 2);
        expect(net.countSent(MessageType.PreVote, reluctant)).to.equal(0);
      }
    });

    it('liveness: with every node reluctant (every application down) a leader is still elected, later', () => {
      const net = new Network([1, 2, 3], { preVote: true, checkQuorum: true });
      net.campaign(1);
      for (const id of [2, 3]) net.node(id).raft.setCampaignReluctant(true);
      net.isolate(1);
      net.tick(20, [2, 3]);
      expect([2, 3].some((id) => net.node(id).raft.status().role === Role.Leader), 'elected within two election timeouts').to.equal(false);
      net.tick(40, [2, 3]);
      expect([2, 3].some((id) => net.node(id).raft.status().role === Role.Leader), 'no leader after six election timeouts').to.equal(true);
    });
  });
});
