import { expect } from 'chai';
import { EntryType, MemoryStorage, MessageType, ProposeError, RaftNode, Role, type Message } from '../../../daemon/raft/index.js';
import { Network, enc, msg, seeded, storageWithLog, termsOf } from './network.js';

const conf3 = { voters: [1, 2, 3], learners: [] };

function leaderWith(opts: ConstructorParameters<typeof Network>[1] = {}, ids = [1, 2, 3]): Network {
  const net = new Network(ids, opts);
  net.campaign(1);
  expect(net.node(1).raft.status().role).to.equal(Role.Leader);
  net.clearSent();
  return net;
}

function expectThrowsCode(fn: () => unknown, code: string): ProposeError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(ProposeError);
    expect((e as ProposeError).code).to.equal(code);
    return e as ProposeError;
  }
  expect.fail(`expected ProposeError ${code}`);
}

describe('raft: log replication', () => {
  it('replicates proposals in order to every node and commits them', () => {
    const net = leaderWith();
    for (let i = 0; i < 10; i++) net.node(1).raft.propose(enc(`p${i}`));
    net.stabilize();
    const want = Array.from({ length: 10 }, (_, i) => `p${i}`);
    for (const id of [1, 2, 3]) {
      expect(net.appliedData(id)).to.deep.equal(want);
      expect(net.node(id).raft.status().commit).to.equal(11);
    }
  });

  it('proposeBatch returns the first ticket; the others are consecutive', () => {
    const net = leaderWith();
    const t = net.node(1).raft.proposeBatch([enc('a'), enc('b'), enc('c')]);
    expect(t).to.deep.equal({ index: 2, term: 1 });
    net.stabilize();
    const applied = net.node(2).applied.filter((e) => e.data.length > 0);
    expect(applied.map((e) => [e.index, e.term])).to.deep.equal([
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
    expectThrowsCode(() => net.node(1).raft.proposeBatch([]), 'EMPTY_PROPOSAL');
  });

  it('followers refuse proposals with NOT_LEADER and a leader hint', () => {
    const net = leaderWith();
    const e = expectThrowsCode(() => net.node(2).raft.propose(enc('x')), 'NOT_LEADER');
    expect(e.leader).to.equal(1);
  });

  it('the leader counts its own entry only once persisted (after advance)', () => {
    const net = leaderWith({}, [1]);
    const r = net.node(1).raft;
    r.propose(enc('x'));
    const rd = r.ready();
    expect(rd.entries).to.have.length(1);
    expect(rd.committedEntries).to.have.length(0);
    expect(r.status().commit).to.equal(1);
    net.node(1).storage.append(rd.entries);
    r.advance(rd);
    expect(r.status().commit).to.equal(2);
    expect(r.ready().committedEntries.map((e) => e.index)).to.deep.equal([2]);
  });

  it('messages of a Ready come with the state that must be persisted before sending them', () => {
    const net = leaderWith();
    net.node(1).raft.propose(enc('x'));
    const rd = net.node(1).raft.ready();
    expect(rd.entries.map((e) => e.index)).to.deep.equal([2]);
    expect(rd.mustSync).to.equal(true);
    // Same term and vote: the core lets these appends leave before the leader's own write.
    expect(rd.messages.filter((m) => m.type === MessageType.App)).to.have.length(0);
    const apps = rd.earlyMessages.filter((m) => m.type === MessageType.App);
    expect(apps.map((m) => m.to).sort()).to.deep.equal([2, 3]);
    expect(apps[0]!.entries.map((e) => e.index)).to.deep.equal([2]);
  });

  it('Figure 7: a new leader brings every follower log to its own', () => {
    // Logs (terms per index) of the Raft paper's Figure 7; the leader has term 8 after election.
    const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: number[][] = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one
      [1, 1, 1, 4], // (b) missing many
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra uncommitted
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra from term 7
      [1, 1, 1, 4, 4, 4, 4], // (e) conflicting term 4 suffix
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) terms 2 and 3 nobody else has
    ];
    for (const f of followers) {
      const ids = [1, 2, 3];
      const storages = new Map<number, MemoryStorage>([
        [1, storageWithLog(leaderLog, conf3, 7)],
        [2, storageWithLog(f, conf3, 7)],
        [3, storageWithLog(leaderLog, conf3, 7)],
      ]);
      const net = new Network(ids, {}, conf3, storages);
      net.campaign(1);
      expect(net.node(1).raft.status().role).to.equal(Role.Leader);
      net.node(1).raft.propose(enc('new'));
      net.stabilize();
      const want = [...leaderLog, 8, 8];
      expect(termsOf(net.node(2).storage), `follower ${JSON.stringify(f)}`).to.deep.equal(want);
      expect(net.node(2).raft.status().commit).to.equal(12);
    }
  });

  it('fast backtracking: a follower far behind is found in few round trips', () => {
    const leaderLog = [1, ...Array(50).fill(3)];
    const follower = [1, ...Array(60).fill(2)];
    const storages = new Map([
      [1, storageWithLog(leaderLog, conf3, 3)],
      [2, storageWithLog(follower, conf3, 3)],
      [3, storageWithLog(leaderLog, conf3, 3)],
    ]);
    const net = new Network([1, 2, 3], {}, conf3, storages);
    net.campaign(1);
    net.stabilize();
    const rejects = net.node(2).sent.filter((m) => m.type === MessageType.AppResp && m.reject);
    expect(rejects.length).to.be.at.most(2);
    expect(termsOf(net.node(2).storage)).to.deep.equal(termsOf(net.node(1).storage));
  });

  it('Figure 8: an entry of an old term is not committed by counting replicas', () => {
    // Leader 1 holds an old-term entry (index 2, term 2) the others lack; it wins term 3.
    const build = (faults: { commitOldTermByCount?: boolean }) => {
      const storages = new Map([
        [1, storageWithLog([1, 2], conf3, 2)],
        [2, storageWithLog([1], conf3, 2)],
        [3, storageWithLog([1], conf3, 2)],
      ]);
      // The new term's entry (index 3) never reaches the followers: it is cut out of every App.
      const net = new Network([1, 2, 3], { faults }, conf3, storages);
      net.holdIf = (m) => {
        if (m.type === MessageType.App) m.entries = m.entries.filter((e) => e.index !== 3);
        return false;
      };
      net.campaign(1);
      expect(net.node(1).raft.status().role).to.equal(Role.Leader);
      net.stabilize();
      return net;
    };
    const ok = build({});
    expect(ok.node(1).raft.status().progress![2]!.match).to.equal(2);
    expect(ok.node(1).raft.status().commit).to.equal(0);
    const bad = build({ commitOldTermByCount: true });
    expect(bad.node(1).raft.status().commit).to.equal(2);
    // Once the current-term entry replicates, both commit through it.
    ok.holdIf = undefined;
    ok.tick(3);
    expect(ok.node(1).raft.status().commit).to.equal(3);
  });

  it('a follower rejects an App whose previous entry does not match and hints where to go', () => {
    const s = storageWithLog([1, 1, 2, 2, 2], conf3, 2);
    const r = new RaftNode({ id: 2, storage: s, electionTick: 10, heartbeatTick: 1, random: seeded(2) });
    r.step(msg({ type: MessageType.App, from: 1, to: 2, term: 4, index: 7, logTerm: 4 }));
    const resp = r.ready().messages[0]!;
    expect(resp).to.include({ type: MessageType.AppResp, reject: true, index: 7, rejectHint: 5, logTerm: 2 });
    r.step(msg({ type: MessageType.App, from: 1, to: 2, term: 4, index: 4, logTerm: 3 }));
    expect(r.ready().messages[0]).to.include({ reject: true, index: 4, rejectHint: 4, logTerm: 2 });
    r.step(msg({ type: MessageType.App, from: 1, to: 2, term: 4, index: 4, logTerm: 1 }));
    expect(r.ready().messages[0]).to.include({ reject: true, index: 4, rejectHint: 2, logTerm: 1 });
  });

  it('a follower truncates a conflicting suffix and never commits beyond what it matched', () => {
    const s = storageWithLog([1, 1, 2, 2, 2], conf3, 2);
    const r = new RaftNode({ id: 2, storage: s, electionTick: 10, heartbeatTick: 1, random: seeded(2) });
    const e = (index: number, term: number) => ({ index, term, type: EntryType.Normal, data: enc('n') });
    r.step(msg({ type: MessageType.App, from: 1, to: 2, term: 3, index: 2, logTerm: 1, entries: [e(3, 3)], commit: 10 }));
    const rd = r.ready();
    expect(rd.entries.map((x) => [x.index, x.term])).to.deep.equal([[3, 3]]);
    expect(rd.hardState!.commit).to.equal(3);
    expect(rd.messages[0]).to.include({ type: MessageType.AppResp, reject: false, index: 3 });
    s.append(rd.entries);
    r.advance(rd);
    expect(termsOf(s)).to.deep.equal([1, 1, 3]);
  });

  describe('progress: probe, replicate, inflight window', () => {
    it('probes one App at a time until a match, then pipelines', () => {
      const net = leaderWith();
      const p = net.node(1).raft.status().progress!;
      expect(p[2]!.state).to.equal('replicate');
      expect(p[2]!.match).to.equal(1);
      // A follower that lost contact is probed again.
      net.node(1).raft.reportUnreachable(2);
      expect(net.node(1).raft.status().progress![2]!.state).to.equal('probe');
      net.isolate(2);
      for (let i = 0; i < 5; i++) net.node(1).raft.propose(enc(`x${i}`));
      net.stabilize();
      // In probe state, a single App went out to 2 for five proposals.
      expect(net.node(1).sent.filter((m) => m.type === MessageType.App && m.to === 2)).to.have.length(1);
      net.heal();
      net.tick(1);
      expect(net.node(1).raft.status().progress![2]!.state).to.equal('replicate');
      expect(net.node(2).raft.status().commit).to.equal(6);
    });

    it('in replicate state at most maxInflightMsgs Apps are unacknowledged', () => {
      const net = leaderWith({ maxInflightMsgs: 3, maxSizePerMsg: 1 });
      net.holdIf = (m) => m.type === MessageType.App && m.to === 2;
      const r = net.node(1).raft;
      for (let i = 0; i < 10; i++) r.propose(enc(`${i}`));
      net.stabilize();
      expect(net.held.filter((m) => m.entries.length > 0)).to.have.length(3);
      // Acks free the window and the rest flows.
      net.holdIf = undefined;
      net.releaseHeld();
      net.stabilize();
      expect(net.node(2).raft.status().commit).to.equal(11);
    });

    it('a lost App in the pipeline is recovered by a reject and re-probe', () => {
      const net = leaderWith();
      let dropped = 0;
      net.dropIf = (m) => m.type === MessageType.App && m.to === 2 && m.entries.length > 0 && dropped++ === 0;
      net.node(1).raft.propose(enc('a'));
      net.stabilize();
      net.node(1).raft.propose(enc('b'));
      net.stabilize();
      expect(dropped).to.be.greaterThan(0);
      net.tick(2);
      expect(net.appliedData(2)).to.deep.equal(['a', 'b']);
    });

    it('batches entries by bytes: one App carries what fits in maxSizePerMsg', () => {
      const net = leaderWith({ maxSizePerMsg: 100 });
      const r = net.node(1).raft;
      for (let i = 0; i < 10; i++) r.propose(new Uint8Array(30));
      const rd = r.ready();
      const apps = rd.earlyMessages.filter((m) => m.type === MessageType.App && m.to === 2);
      expect(apps.map((m) => m.entries.length)).to.deep.equal([3, 3, 3, 1]);
      // An entry larger than the budget still goes, alone.
      const net2 = leaderWith({ maxSizePerMsg: 10 });
      net2.node(1).raft.propose(new Uint8Array(50));
      const apps2 = net2.node(1).raft.ready().earlyMessages.filter((m) => m.type === MessageType.App && m.to === 2);
      expect(apps2.map((m) => m.entries.length)).to.deep.equal([1]);
    });

    it('committed entries per Ready are bounded by maxSizePerMsg (at least one)', () => {
      const net = leaderWith({ maxSizePerMsg: 100 }, [1]);
      const r = net.node(1).raft;
      for (let i = 0; i < 10; i++) r.propose(new Uint8Array(40));
      const rd = r.ready();
      net.node(1).storage.append(rd.entries);
      r.advance(rd);
      const sizes: number[] = [];
      while (r.hasReady()) {
        const x = r.ready();
        sizes.push(x.committedEntries.length);
        r.advance(x);
      }
      expect(sizes).to.deep.equal([2, 2, 2, 2, 2]);
    });
  });

  describe('heartbeats', () => {
    it('carry commit = min(match, commit) so a lagging follower never commits what it lacks', () => {
      const net = leaderWith();
      net.isolate(3);
      net.node(1).raft.propose(enc('x'));
      net.stabilize();
      net.clearSent();
      net.node(1).raft.tick();
      const hbs = net.node(1).raft.ready().earlyMessages.filter((m) => m.type === MessageType.Heartbeat);
      const byTo = Object.fromEntries(hbs.map((m) => [m.to, m.commit]));
      expect(byTo).to.deep.equal({ 2: 2, 3: 1 });
    });

    it('a heartbeat response from a lagging follower triggers an App', () => {
      const net = leaderWith();
      net.dropIf = (m) => m.type === MessageType.App && m.to === 3;
      net.node(1).raft.propose(enc('x'));
      net.stabilize();
      expect(net.node(3).raft.status().lastIndex).to.equal(1);
      net.dropIf = undefined;
      net.tick(1);
      expect(net.node(3).raft.status().lastIndex).to.equal(2);
      expect(net.appliedData(3)).to.deep.equal(['x']);
    });
  });

  describe('proposal limits', () => {
    it('maxUncommittedEntriesSize refuses proposals beyond the budget with OVERLOADED', () => {
      const net = leaderWith({ maxUncommittedEntriesSize: 100 });
      net.isolate(2);
      net.isolate(3);
      const r = net.node(1).raft;
      r.propose(new Uint8Array(60));
      expectThrowsCode(() => r.propose(new Uint8Array(60)), 'OVERLOADED');
      net.heal();
      net.stabilize();
      net.tick(1);
      // Committed: the budget is free again.
      r.propose(new Uint8Array(60));
    });

    it('a single proposal larger than maxEntrySize is PROPOSAL_TOO_LARGE', () => {
      const net = leaderWith({ maxEntrySize: 10 });
      expectThrowsCode(() => net.node(1).raft.propose(new Uint8Array(11)), 'PROPOSAL_TOO_LARGE');
      net.node(1).raft.propose(new Uint8Array(10));
    });
  });

  it('delivering duplicate and reordered messages changes nothing', () => {
    const net = leaderWith();
    const seen: Message[] = [];
    for (let i = 0; i < 5; i++) net.node(1).raft.propose(enc(`d${i}`));
    net.holdIf = (m) => {
      seen.push(m);
      return false;
    };
    net.stabilize();
    net.holdIf = undefined;
    // Redeliver everything, newest first.
    for (const m of [...seen].reverse()) net.deliver(m);
    net.stabilize();
    for (const id of [1, 2, 3]) expect(net.appliedData(id)).to.deep.equal(['d0', 'd1', 'd2', 'd3', 'd4']);
  });
});
