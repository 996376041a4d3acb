import { expect } from 'chai';
import { CompactedError, EntryType, MemoryStorage, MessageType, RaftNode, Role, StorageError, UnavailableError } from '../../../daemon/raft/index.js';
import { Network, enc, msg, seeded, termsOf } from './network.js';

const conf3 = { voters: [1, 2, 3], learners: [] };

describe('raft: MemoryStorage', () => {
  const e = (index: number, term: number) => ({ index, term, type: EntryType.Normal, data: enc(`${index}`) });

  it('appends, overwrites a conflicting suffix, and answers term/entries', () => {
    const s = new MemoryStorage({ confState: conf3 });
    expect([s.firstIndex(), s.lastIndex()]).to.deep.equal([1, 0]);
    s.append([e(1, 1), e(2, 1), e(3, 2)]);
    s.append([e(3, 3), e(4, 3)]);
    expect(termsOf(s)).to.deep.equal([1, 1, 3, 3]);
    expect(s.term(0)).to.equal(0);
    expect(() => s.term(5)).to.throw(UnavailableError);
    expect(s.entries(2, 5, 1).map((x) => x.index)).to.deep.equal([2]);
    expect(s.entries(2, 5, 2).map((x) => x.index)).to.deep.equal([2, 3]);
    expect(s.entries(1, 5, Infinity)).to.have.length(4);
    expect(() => s.append([e(7, 3)])).to.throw(StorageError);
  });

  it('creates snapshots, compacts, and applies a snapshot replacing the log', () => {
    const s = new MemoryStorage({ confState: conf3 });
    s.append([e(1, 1), e(2, 1), e(3, 2), e(4, 2)]);
    const snap = s.createSnapshot(3, conf3, enc('state'));
    expect(snap.metadata).to.deep.include({ index: 3, term: 2 });
    expect(() => s.compact(4)).to.throw(StorageError);
    s.compact(3);
    expect([s.firstIndex(), s.lastIndex()]).to.deep.equal([4, 4]);
    expect(s.term(3)).to.equal(2);
    expect(() => s.term(2)).to.throw(CompactedError);
    expect(() => s.entries(3, 5, Infinity)).to.throw(CompactedError);
    expect(() => s.createSnapshot(2, conf3, enc(''))).to.throw(StorageError);
    s.applySnapshot({ metadata: { index: 10, term: 5, confState: conf3 }, data: enc('x') });
    expect([s.firstIndex(), s.lastIndex(), s.term(10)]).to.deep.equal([11, 10, 5]);
    expect(() => s.applySnapshot({ metadata: { index: 9, term: 5, confState: conf3 }, data: enc('x') })).to.throw(StorageError);
    // Appending entries that overlap the snapshot skips the covered part.
    s.append([e(10, 5), e(11, 5)]);
    expect([s.firstIndex(), s.lastIndex()]).to.deep.equal([11, 11]);
  });
});

describe('raft: snapshots', () => {
  /** Leader 1 with entries up to 11 compacted to 10; node 3 isolated all along. */
  function laggingCluster(): Network {
    const net = new Network([1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 10; i++) net.node(1).raft.propose(enc(`v${i}`));
    net.stabilize();
    const st = net.node(1).storage;
    st.createSnapshot(10, net.node(1).raft.confStateAt(10), enc('snapshot@10'));
    st.compact(10);
    net.heal();
    return net;
  }

  it('a follower that needs compacted entries gets a snapshot and restores from it', () => {
    const net = laggingCluster();
    net.tick(1);
    const snaps = net.node(1).sent.filter((m) => m.type === MessageType.Snap);
    expect(snaps).to.have.length(1);
    expect(snaps[0]!.snapshot!.metadata.index).to.equal(10);
    const s3 = net.node(3).storage;
    expect(s3.snapshot().metadata.index).to.equal(10);
    expect(new TextDecoder().decode(s3.snapshot().data)).to.equal('snapshot@10');
    net.node(1).raft.reportSnapshot(3, true);
    net.tick(2);
    expect(net.node(3).raft.status().commit).to.equal(11);
    expect(termsOf(s3)).to.deep.equal([1]);
    expect(net.node(3).raft.status().applied).to.equal(11);
    // After the snapshot, replication resumes normally.
    net.node(1).raft.propose(enc('after'));
    net.stabilize();
    expect(net.appliedData(3)).to.deep.equal(['v9', 'after']);
    expect(net.node(1).raft.status().progress![3]!.state).to.equal('replicate');
  });

  it('the Ready carrying a restored snapshot sets it, resets the log and the membership', () => {
    const s = new MemoryStorage({ confState: conf3 });
    const r = new RaftNode({ id: 3, storage: s, electionTick: 10, heartbeatTick: 1, random: seeded(3) });
    const cs = { voters: [1, 2, 3, 4], learners: [5] };
    r.step(msg({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: { metadata: { index: 20, term: 2, confState: cs }, data: enc('s') } }));
    const rd = r.ready();
    expect(rd.snapshot!.metadata.index).to.equal(20);
    expect(rd.hardState!.commit).to.equal(20);
    expect(rd.messages[0]).to.include({ type: MessageType.AppResp, index: 20, reject: false });
    expect(r.status().confState).to.deep.equal(cs);
    expect(r.status().lastIndex).to.equal(20);
    s.applySnapshot(rd.snapshot!);
    r.advance(rd);
    expect(r.status().applied).to.equal(20);
    expect(r.hasReady()).to.equal(false);
    // An older snapshot is ignored (answered with the commit index).
    r.step(msg({ type: MessageType.Snap, from: 1, to: 3, term: 2, snapshot: { metadata: { index: 15, term: 2, confState: cs }, data: enc('s') } }));
    const rd2 = r.ready();
    expect(rd2.snapshot).to.equal(undefined);
    expect(rd2.messages[0]).to.include({ type: MessageType.AppResp, index: 20 });
  });

  it('a failed snapshot goes back to probing, and is retried', () => {
    const net = laggingCluster();
    net.dropIf = (m) => m.type === MessageType.Snap;
    net.tick(1);
    expect(net.node(1).raft.status().progress![3]!.state).to.equal('snapshot');
    net.node(1).raft.reportSnapshot(3, false);
    expect(net.node(1).raft.status().progress![3]!.state).to.equal('probe');
    net.dropIf = undefined;
    net.tick(3);
    expect(net.node(3).storage.snapshot().metadata.index).to.equal(10);
  });

  it('restart from MemoryStorage: snapshot, log, hard state and membership come back', () => {
    const net = laggingCluster();
    net.tick(1);
    net.node(1).raft.reportSnapshot(3, true);
    net.tick(2);
    for (const id of [1, 2, 3]) {
      const before = net.node(id).raft.status();
      const n = net.restart(id);
      const after = n.raft.status();
      expect(after.term).to.equal(before.term);
      expect(after.commit).to.equal(before.commit);
      expect(after.lastIndex).to.equal(before.lastIndex);
      expect(after.confState).to.deep.equal(before.confState);
      expect(after.role).to.equal(Role.Follower);
    }
    // The cluster works again after everybody restarted; nothing is re-applied.
    const appliedBefore = net.node(2).applied.length;
    for (let i = 0; i < 50 && !net.leader(); i++) net.tick();
    net.leader()!.raft.propose(enc('again'));
    net.stabilize();
    expect(net.appliedData(2).slice(-1)).to.deep.equal(['again']);
    expect(net.node(2).applied.length).to.equal(appliedBefore + 2); // new leader's empty entry + 'again'
  });

  it('restart re-delivers committed entries above config.applied', () => {
    const net = new Network([1]);
    net.campaign(1);
    for (let i = 0; i < 3; i++) net.node(1).raft.propose(enc(`a${i}`));
    net.stabilize();
    const n = net.add(1, net.node(1).storage, { applied: 2 });
    const rd = n.raft.ready();
    expect(rd.committedEntries.map((e) => e.index)).to.deep.equal([3, 4]);
  });
});
