import { expect } from 'chai';
import { EntryType, MessageType, Role, type Message } from '../../../daemon/raft/index.js';
import { Network, enc, msg, seeded } from './network.js';

describe('raft: bad input from the network', () => {
  it('ignores malformed messages: wrong recipient, unknown sender, bad numbers, non-consecutive entries', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.node(1).raft.propose(enc('x'));
    net.stabilize();
    const r = net.node(2).raft;
    const before = JSON.stringify(r.status());
    const e = (index: number, term: number) => ({ index, term, type: EntryType.Normal, data: enc('bad') });
    const bad: Message[] = [
      msg({ type: MessageType.App, from: 1, to: 3, term: 1, index: 2, logTerm: 1, entries: [e(3, 1)] }), // not for us
      msg({ type: MessageType.App, from: 0, to: 2, term: 1, index: 2, logTerm: 1 }),
      msg({ type: MessageType.App, from: 2, to: 2, term: 1, index: 2, logTerm: 1 }),
      msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: -1, logTerm: 1 }),
      msg({ type: MessageType.App, from: 1, to: 2, term: NaN, index: 2, logTerm: 1 }),
      msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: 2.5, logTerm: 1 }),
      msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: 2, logTerm: 1, entries: [e(4, 1)] }), // gap
      msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: 2, logTerm: 1, entries: [e(3, 1), e(5, 1)] }),
      msg({ type: MessageType.App, from: 1, to: 2, term: 1, index: 2, logTerm: 1, entries: [e(3, 9)] }), // entry term above message term
      msg({ type: 99 as MessageType, from: 1, to: 2, term: 1 }),
      msg({ type: MessageType.Snap, from: 1, to: 2, term: 1 }), // no snapshot
      msg({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1, context: 'x' as unknown as Uint8Array }),
      null as unknown as Message,
    ];
    for (const m of bad) expect(() => r.step(m)).to.not.throw();
    expect(JSON.stringify(r.status())).to.equal(before);
    const rd = r.ready();
    expect([...rd.earlyMessages, ...rd.messages]).to.have.length(0);
  });

  it('a leader ignores responses from unknown peers and acks beyond its log', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    const r = net.node(1).raft;
    r.step(msg({ type: MessageType.AppResp, from: 9, to: 1, term: 1, index: 1 }));
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 500 }));
    r.step(msg({ type: MessageType.HeartbeatResp, from: 9, to: 1, term: 1, context: enc('?') }));
    r.step(msg({ type: MessageType.HeartbeatResp, from: 2, to: 1, term: 1, context: enc('unknown read'), index: 1e9 }));
    r.step(msg({ type: MessageType.ReadIndex, from: 9, to: 1, term: 1, context: enc('r') }));
    r.step(msg({ type: MessageType.AppResp, from: 3, to: 1, term: 1, reject: true, index: 1000, rejectHint: 5000, logTerm: 7 }));
    expect(r.status().progress![2]!.match).to.equal(1);
    expect(r.status().commit).to.equal(1);
    expect(r.status().role).to.equal(Role.Leader);
    net.stabilize();
    r.propose(enc('still works'));
    net.stabilize();
    expect(net.appliedData(3)).to.deep.equal(['still works']);
  });

  it('a follower never commits beyond its log on a heartbeat from a confused leader', () => {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    const r = net.node(2).raft;
    r.step(msg({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1, commit: 100 }));
    expect(r.status().commit).to.be.at.most(r.status().lastIndex);
  });

  it('random garbage never throws and never breaks local invariants', () => {
    const rnd = seeded(12345);
    const int = (n: number) => Math.floor(rnd() * n);
    for (let round = 0; round < 10; round++) {
      const net = new Network([1, 2, 3], { preVote: round % 2 === 0, checkQuorum: round % 3 === 0 });
      net.campaign(1 + (round % 3));
      for (let i = 0; i < 300; i++) {
        const to = 1 + int(3);
        const from = int(5);
        const index = int(12);
        const term = int(4);
        const nEnts = int(3);
        const entries = Array.from({ length: nEnts }, (_, k) => ({
          index: rnd() < 0.9 ? index + 1 + k : int(20),
          term: Math.max(int(term + 1), 0),
          type: rnd() < 0.2 ? EntryType.ConfChange : EntryType.Normal,
          data: rnd() < 0.5 ? enc('g') : new Uint8Array([1, int(3), 0, 0, 0, 0, 0, 0, 0, int(6)]),
        }));
        const m = msg({
          type: int(13) as MessageType,
          from,
          to,
          term,
          index,
          logTerm: int(term + 1),
          commit: int(15),
          reject: rnd() < 0.3,
          rejectHint: int(15),
          entries,
          context: rnd() < 0.3 ? enc('transfer') : enc(`c${int(3)}`),
        });
        if (m.type === MessageType.Snap && rnd() < 0.7) {
          m.snapshot = { metadata: { index: 1 + int(15), term: int(term + 1), confState: { voters: [1, 2, 3], learners: [] } }, data: enc('s') };
        }
        const r = net.node(to).raft;
        expect(() => r.step(m)).to.not.throw();
        if (rnd() < 0.2) expect(() => r.tick()).to.not.throw();
        if (rnd() < 0.1) {
          try {
            r.propose(enc('p'));
          } catch {
            // NOT_LEADER etc. are fine
          }
        }
        expect(() => net.stabilize()).to.not.throw();
        const st = r.status();
        expect(st.commit).to.be.at.most(st.lastIndex);
        expect(st.applied).to.be.at.most(st.commit);
      }
    }
  });
});
