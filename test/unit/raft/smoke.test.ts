import { expect } from 'chai';
import { Role } from '../../../daemon/raft/index.js';
import { Network, enc } from './network.js';

describe('raft smoke', () => {
  it('elects a leader and replicates a proposal to all', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    expect(net.node(1).raft.status().role).to.equal(Role.Leader);
    net.node(1).raft.propose(enc('x'));
    net.stabilize();
    for (const id of [1, 2, 3]) expect(net.appliedData(id)).to.deep.equal(['x']);
  });
});
