import { expect } from 'chai';
import { MemoryStorage, MessageType, NONE, RaftNode, Role } from '../../../daemon/raft/index.js';
import { Network, msg, seeded, storageWithLog } from './network.js';

const role = (net: Network, id: number) => net.node(id).raft.status().role;
const term = (net: Network, id: number) => net.node(id).raft.status().term;

describe('raft: leader election', () => {
  it('a campaigning node wins with a quorum and everyone follows it', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    expect(role(net, 1)).to.equal(Role.Leader);
    expect(term(net, 1)).to.equal(1);
    for (const id of [2, 3]) {
      expect(role(net, id)).to.equal(Role.Follower);
      expect(net.node(id).raft.status().leader).to.equal(1);
      expect(net.node(id).storage.initialState().hardState.vote).to.equal(1);
    }
  });

  it('a single-voter cluster elects itself at once and commits its empty entry', () => {
    const net = new Network([1]);
    net.campaign(1);
    expect(role(net, 1)).to.equal(Role.Leader);
    expect(net.node(1).raft.status().commit).to.equal(1);
  });

  it('elections happen on their own after the randomized timeout, in [electionTick, 2*electionTick)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const s = new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } });
      const r = new RaftNode({ id: 1, storage: s, electionTick: 10, heartbeatTick: 1, random: seeded(seed) });
      let ticks = 0;
      while (r.status().role === Role.Follower && ticks < 100) {
        r.tick();
        ticks++;
      }
      expect(ticks).to.be.within(10, 19);
      expect(r.status().role).to.equal(Role.Candidate);
    }
  });

  it('a candidate without a quorum stays candidate; losing the vote makes it follower', () => {
    const net = new Network([1, 2, 3]);
    net.isolate(1);
    net.campaign(1);
    expect(role(net, 1)).to.equal(Role.Candidate);
    net.heal();
    // 2 and 3 reject 1 if their logs are more up to date: give them an entry 1 does not have.
    const net2 = new Network([1, 2, 3]);
    net2.campaign(2);
    net2.isolate(1);
    net2.node(2).raft.propose(new Uint8Array([1]));
    net2.stabilize();
    net2.heal();
    net2.tick(0);
    // 1 (behind) campaigns at a higher term: both refuse; 1 ends as follower.
    net2.node(1).raft.campaign();
    net2.stabilize();
    expect(role(net2, 1)).to.not.equal(Role.Leader);
    expect(role(net2, 1)).to.not.equal(Role.Candidate);
  });

  it('split votes: simultaneous candidates resolve to exactly one leader', () => {
    const net = new Network([1, 2, 3, 4]);
    // 1 and 2 campaign at the same moment; messages cross.
    net.node(1).raft.campaign();
    net.node(2).raft.campaign();
    net.stabilize();
    const leaders = [1, 2, 3, 4].filter((id) => role(net, id) === Role.Leader);
    expect(leaders.length).to.be.at.most(1);
    // Time resolves it.
    for (let i = 0; i < 60 && !net.leader(); i++) net.tick();
    expect(net.leader()).to.not.equal(undefined);
    const t = term(net, net.leader()!.id);
    expect([1, 2, 3, 4].filter((id) => role(net, id) === Role.Leader && term(net, id) === t)).to.have.length(1);
  });

  it('a node votes at most once per term', () => {
    const net = new Network([1, 2, 3]);
    const r = net.node(3).raft;
    r.step(msg({ type: MessageType.Vote, from: 1, to: 3, term: 5, index: 0, logTerm: 0 }));
    r.step(msg({ type: MessageType.Vote, from: 2, to: 3, term: 5, index: 0, logTerm: 0 }));
    const rd = r.ready();
    const resps = rd.messages.filter((m) => m.type === MessageType.VoteResp);
    expect(resps.map((m) => [m.to, m.reject])).to.deep.equal([
      [1, false],
      [2, true],
    ]);
    expect(rd.hardState!.vote).to.equal(1);
    expect(rd.mustSync).to.equal(true);
    // A vote answers for durable state: it never leaves before the write.
    expect(rd.earlyMessages).to.have.length(0);
    r.advance(rd);
    // Re-asked by the same candidate (a duplicate): granted again.
    r.step(msg({ type: MessageType.Vote, from: 1, to: 3, term: 5 }));
    expect(r.ready().messages[0]!.reject).to.equal(false);
  });

  it('votes only for candidates whose log is at least as up to date', () => {
    const conf = { voters: [1, 2], learners: [] };
    const cases: [number, number, boolean][] = [
      // [candidate lastIndex, lastTerm, granted] against a voter log with terms [1, 2, 2]
      [3, 2, true],
      [4, 2, true],
      [2, 2, false],
      [1, 3, true],
      [5, 1, false],
    ];
    for (const [idx, lt, granted] of cases) {
      const s = storageWithLog([1, 2, 2], conf);
      const r = new RaftNode({ id: 2, storage: s, electionTick: 10, heartbeatTick: 1, random: seeded(1) });
      r.step(msg({ type: MessageType.Vote, from: 1, to: 2, term: 3, index: idx, logTerm: lt }));
      const resp = r.ready().messages.find((m) => m.type === MessageType.VoteResp)!;
      expect(resp.reject, `candidate (${idx}, ${lt})`).to.equal(!granted);
    }
  });

  it('fault voteWithoutLogCheck grants a vote to a stale candidate', () => {
    const conf = { voters: [1, 2], learners: [] };
    const s = storageWithLog([1, 2, 2], conf);
    const r = new RaftNode({ id: 2, storage: s, electionTick: 10, heartbeatTick: 1, random: seeded(1), faults: { voteWithoutLogCheck: true } });
    r.step(msg({ type: MessageType.Vote, from: 1, to: 2, term: 3, index: 1, logTerm: 1 }));
    expect(r.ready().messages.find((m) => m.type === MessageType.VoteResp)!.reject).to.equal(false);
  });

  it('a higher term makes a leader step down; a lower term is ignored', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    const r = net.node(1).raft;
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 0, index: 99 }));
    expect(r.status().role).to.equal(Role.Leader);
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 7 }));
    expect(r.status().role).to.equal(Role.Follower);
    expect(r.status().term).to.equal(7);
    expect(r.status().leader).to.equal(NONE);
  });

  describe('pre-vote', () => {
    it('a partitioned node does not inflate its term and does not disrupt the leader when it returns', () => {
      const net = new Network([1, 2, 3], { preVote: true });
      net.campaign(1);
      net.isolate(3);
      net.tick(50);
      expect(role(net, 3)).to.equal(Role.PreCandidate);
      expect(term(net, 3)).to.equal(1);
      net.heal();
      net.tick(5);
      expect(role(net, 1)).to.equal(Role.Leader);
      expect(term(net, 1)).to.equal(1);
      expect(role(net, 3)).to.equal(Role.Follower);
    });

    it('without pre-vote the same partition deposes the leader (the test can fail)', () => {
      const net = new Network([1, 2, 3], { preVote: false });
      net.campaign(1);
      net.isolate(3);
      net.tick(50);
      expect(term(net, 3)).to.be.greaterThan(1);
      net.heal();
      net.tick(30);
      expect(term(net, 1)).to.be.greaterThan(1);
    });

    it('pre-votes are refused while a leader was heard from recently, granted after the timeout', () => {
      const net = new Network([1, 2, 3], { preVote: true });
      net.campaign(1);
      const r = net.node(2).raft;
      r.step(msg({ type: MessageType.PreVote, from: 3, to: 2, term: 2, index: 10, logTerm: 1 }));
      expect(r.ready().messages.find((m) => m.type === MessageType.PreVoteResp)!.reject).to.equal(true);
      for (let i = 0; i < 10; i++) r.tick();
      r.ready();
      r.step(msg({ type: MessageType.PreVote, from: 3, to: 2, term: 2, index: 10, logTerm: 1 }));
      const resp = r.ready().messages.find((m) => m.type === MessageType.PreVoteResp)!;
      expect(resp.reject).to.equal(false);
      expect(resp.term).to.equal(2);
      // Granting a pre-vote changes neither term nor vote.
      expect(r.status().term).to.equal(1);
      expect(r.status().vote).to.equal(1);
    });

    it('a pre-candidate becomes candidate only after a quorum of pre-votes', () => {
      const net = new Network([1, 2, 3], { preVote: true });
      net.campaign(1);
      expect(role(net, 1)).to.equal(Role.Leader);
      expect(term(net, 1)).to.equal(1);
      expect(net.countSent(MessageType.PreVote)).to.equal(2);
      expect(net.countSent(MessageType.Vote)).to.equal(2);
    });
  });

  describe('check quorum', () => {
    it('a leader that hears from no quorum within an election timeout steps down', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      net.isolate(1);
      net.tick(25, [1]);
      expect(role(net, 1)).to.equal(Role.Follower);
    });

    it('without checkQuorum the isolated leader stays leader (the test can fail)', () => {
      const net = new Network([1, 2, 3], { checkQuorum: false });
      net.campaign(1);
      net.isolate(1);
      net.tick(25, [1]);
      expect(role(net, 1)).to.equal(Role.Leader);
    });

    it('followers in a lease ignore vote requests of a higher term', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      const r = net.node(2).raft;
      r.step(msg({ type: MessageType.Vote, from: 3, to: 2, term: 5, index: 10, logTerm: 5 }));
      expect(r.status().term).to.equal(1);
      expect(r.ready().messages).to.have.length(0);
      // A TimeoutNow election is exempt.
      r.step(msg({ type: MessageType.Vote, from: 3, to: 2, term: 5, index: 10, logTerm: 5, context: new TextEncoder().encode('transfer') }));
      expect(r.status().term).to.equal(5);
      expect(r.ready().messages.find((m) => m.type === MessageType.VoteResp)!.reject).to.equal(false);
    });

    it('a stale leader learns the new term from a follower answering its App', () => {
      const net = new Network([1, 2, 3], { checkQuorum: true });
      net.campaign(1);
      const r = net.node(2).raft;
      r.step(msg({ type: MessageType.App, from: 3, to: 2, term: 0 }));
      const out = r.ready().messages;
      expect(out).to.have.length(1);
      expect(out[0]!.type).to.equal(MessageType.AppResp);
      expect(out[0]!.term).to.equal(1);
    });
  });

  it('learners and non-members never campaign', () => {
    const net = new Network([1, 2, 3], {}, { voters: [1, 2], learners: [3] });
    net.tick(100, [3]);
    expect(role(net, 3)).to.equal(Role.Follower);
    expect(net.countSent(MessageType.Vote, 3) + net.countSent(MessageType.PreVote, 3)).to.equal(0);
    net.node(3).raft.campaign();
    expect(net.node(3).raft.hasReady()).to.equal(false);
    const outsider = new Network([4], {}, { voters: [1, 2], learners: [] });
    outsider.tick(100);
    expect(role(outsider, 4)).to.equal(Role.Follower);
    expect(outsider.countSent(MessageType.Vote)).to.equal(0);
  });

  it('restarts with its term and vote from storage and keeps them', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    const n2 = net.restart(2);
    expect(n2.raft.status().term).to.equal(1);
    expect(n2.raft.status().vote).to.equal(1);
    // Another candidate in term 1 is refused: the vote was persisted.
    n2.raft.step(msg({ type: MessageType.Vote, from: 3, to: 2, term: 1, index: 5, logTerm: 1 }));
    expect(n2.raft.ready().messages.find((m) => m.type === MessageType.VoteResp)!.reject).to.equal(true);
  });
});
