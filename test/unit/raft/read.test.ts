import { expect } from 'chai';
import { MemoryStorage, MessageType, ProposeError, Role } from '../../../daemon/raft/index.js';
import { Network, dec, enc, storageWithLog } from './network.js';

const conf3 = { voters: [1, 2, 3], learners: [] };
const ctxs = (net: Network, id: number) => net.node(id).readStates.map((r) => `${dec(r.context)}@${r.index}`);

describe('raft: ReadIndex', () => {
  it('leader: answers after a quorum acknowledged the heartbeat carrying the context', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.node(1).raft.propose(enc('x'));
    net.stabilize();
    net.holdIf = (m) => m.type === MessageType.HeartbeatResp;
    net.node(1).raft.readIndex(enc('r1'));
    net.stabilize();
    expect(ctxs(net, 1)).to.deep.equal([]);
    const hb = net.node(1).sent.filter((m) => m.type === MessageType.Heartbeat && dec(m.context) === 'r1');
    expect(hb.map((m) => m.to).sort()).to.deep.equal([2, 3]);
    net.holdIf = undefined;
    net.releaseHeld();
    net.stabilize();
    expect(ctxs(net, 1)).to.deep.equal(['r1@2']);
  });

  it('a quorum for a later request confirms earlier ones too', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.dropIf = (m) => m.type === MessageType.HeartbeatResp && dec(m.context) === 'a';
    net.node(1).raft.readIndex(enc('a'));
    net.stabilize();
    expect(ctxs(net, 1)).to.deep.equal([]);
    net.dropIf = undefined;
    net.node(1).raft.readIndex(enc('b'));
    net.stabilize();
    expect(ctxs(net, 1)).to.deep.equal(['a@1', 'b@1']);
  });

  it('without a quorum (leader partitioned) no read is answered', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    net.node(1).raft.readIndex(enc('r'));
    net.tick(5, [1]);
    expect(ctxs(net, 1)).to.deep.equal([]);
  });

  it('fault readIndexWithoutQuorum answers at once even when partitioned', () => {
    const net = new Network([1, 2, 3], { faults: { readIndexWithoutQuorum: true } });
    net.campaign(1);
    net.isolate(1);
    net.node(1).raft.readIndex(enc('r'));
    net.stabilize();
    expect(ctxs(net, 1)).to.deep.equal(['r@1']);
  });

  it('a single-voter leader answers at once', () => {
    const net = new Network([1]);
    net.campaign(1);
    net.node(1).raft.readIndex(enc('solo'));
    net.stabilize();
    expect(ctxs(net, 1)).to.deep.equal(['solo@1']);
  });

  it('a new leader holds reads until it committed an entry of its term', () => {
    // Leader 1 of term 2 holds entries of term 1 that are committed nowhere it knows of.
    const storages = new Map<number, MemoryStorage>([
      [1, storageWithLog([1, 1], conf3, 1)],
      [2, storageWithLog([1, 1], conf3, 1)],
      [3, storageWithLog([1, 1], conf3, 1)],
    ]);
    const net = new Network([1, 2, 3], {}, conf3, storages);
    net.dropIf = (m) => m.type === MessageType.AppResp;
    net.campaign(1);
    expect(net.node(1).raft.status().role).to.equal(Role.Leader);
    net.node(1).raft.readIndex(enc('early'));
    net.stabilize();
    expect(net.node(1).sent.filter((m) => m.type === MessageType.Heartbeat && dec(m.context) === 'early')).to.have.length(0);
    expect(ctxs(net, 1)).to.deep.equal([]);
    net.dropIf = undefined;
    net.tick(2);
    // Answered with the index of the new term's entry (3), never the stale commit 0.
    expect(ctxs(net, 1)).to.deep.equal(['early@3']);
  });

  it('follower: forwards to the leader and emits the ReadState it gets back', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.node(1).raft.propose(enc('x'));
    net.stabilize();
    net.node(2).raft.readIndex(enc('f1'));
    net.stabilize();
    expect(net.node(2).sent.filter((m) => m.type === MessageType.ReadIndex)).to.have.length(1);
    expect(net.node(1).sent.filter((m) => m.type === MessageType.ReadIndexResp)).to.have.length(1);
    expect(ctxs(net, 2)).to.deep.equal(['f1@2']);
  });

  it('a follower that knows no leader throws NOT_LEADER', () => {
    const net = new Network([1, 2, 3]);
    try {
      net.node(2).raft.readIndex(enc('x'));
      expect.fail('expected NOT_LEADER');
    } catch (e) {
      expect((e as ProposeError).code).to.equal('NOT_LEADER');
    }
  });

  it('a read lost with a leader change is re-issued to the next leader', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.dropIf = (m) => m.type === MessageType.ReadIndex;
    net.node(2).raft.readIndex(enc('lost'));
    net.stabilize();
    net.dropIf = undefined;
    net.campaign(3);
    expect(net.node(3).raft.status().role).to.equal(Role.Leader);
    net.tick(1);
    expect(ctxs(net, 2)).to.deep.equal(['lost@2']);
    // A duplicate answer does not produce a second ReadState.
    const resp = net.node(3).sent.find((m) => m.type === MessageType.ReadIndexResp)!;
    net.deliver(resp);
    net.stabilize();
    expect(ctxs(net, 2)).to.have.length(1);
  });

  it('a forwarded read whose message was lost is retried after an election timeout', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    let dropped = 0;
    net.dropIf = (m) => m.type === MessageType.ReadIndex && dropped++ === 0;
    net.node(2).raft.readIndex(enc('retry'));
    net.stabilize();
    expect(ctxs(net, 2)).to.deep.equal([]);
    net.tick(10);
    expect(ctxs(net, 2)).to.deep.equal(['retry@1']);
    expect(net.node(2).sent.filter((m) => m.type === MessageType.ReadIndex)).to.have.length(2);
  });

  describe('lease reads', () => {
    it('answer without a heartbeat round while the lease holds (checkQuorum on)', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      net.tick(1); // a heartbeat round acknowledged by all
      net.clearSent();
      net.node(1).raft.readIndex(enc('L'), { lease: true });
      net.stabilize();
      expect(ctxs(net, 1)).to.deep.equal(['L@1']);
      expect(net.node(1).sent.filter((m) => m.type === MessageType.Heartbeat)).to.have.length(0);
    });

    it('fall back to the quorum check when the lease expired', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      net.tick(1);
      net.isolate(1);
      net.tick(9, [1]); // heartbeats unanswered for most of an election timeout
      net.node(1).raft.readIndex(enc('L'), { lease: true });
      net.stabilize();
      expect(ctxs(net, 1)).to.deep.equal([]);
      net.heal();
      net.tick(1, [1]);
      expect(ctxs(net, 1)).to.deep.equal(['L@1']);
    });

    it('are never used without checkQuorum', () => {
      const net = new Network([1, 2, 3], { checkQuorum: false });
      net.campaign(1);
      net.tick(1);
      net.clearSent();
      net.node(1).raft.readIndex(enc('L'), { lease: true });
      net.stabilize();
      expect(net.node(1).sent.filter((m) => m.type === MessageType.Heartbeat && dec(m.context) === 'L')).to.have.length(2);
    });

    it('are void while a leadership transfer is under way', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      net.tick(1);
      net.dropIf = (m) => m.type === MessageType.TimeoutNow;
      net.node(1).raft.transferLeadership(2);
      net.stabilize();
      net.clearSent();
      net.node(1).raft.readIndex(enc('T'), { lease: true });
      net.stabilize();
      expect(net.node(1).sent.filter((m) => m.type === MessageType.Heartbeat && dec(m.context) === 'T')).to.have.length(2);
    });

    it('a restarted node honours a lease it may have promised: it ignores votes for an election timeout', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      const n2 = net.restart(2);
      const vote = { type: MessageType.Vote, from: 3, to: 2, term: 5, logTerm: 5, index: 9, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array() };
      n2.raft.step(vote);
      expect(n2.raft.status().term).to.equal(1);
      for (let i = 0; i < 10; i++) n2.raft.tick();
      n2.raft.step(vote);
      expect(n2.raft.status().term).to.equal(5);
    });

    it('a follower can ask for a lease read', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      net.tick(1);
      net.clearSent();
      net.node(2).raft.readIndex(enc('FL'), { lease: true });
      net.stabilize();
      expect(ctxs(net, 2)).to.deep.equal(['FL@1']);
      expect(net.node(1).sent.filter((m) => m.type === MessageType.Heartbeat)).to.have.length(0);
    });
  });
});
