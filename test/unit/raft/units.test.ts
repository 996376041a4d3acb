// The small building blocks, one by one.
import { expect } from 'chai';
import { Inflights } from '../../../daemon/raft/inflights.js';
import { Progress, ProgressState } from '../../../daemon/raft/progress.js';
import { VoteResult, majorityIndex, voteResult } from '../../../daemon/raft/quorum.js';
import { ReadOnly } from '../../../daemon/raft/read-only.js';
import { RaftLog } from '../../../daemon/raft/log.js';
import { ConfHistory, encodeConfChange } from '../../../daemon/raft/membership.js';
import { ConfChangeType, EntryType, MemoryStorage } from '../../../daemon/raft/index.js';
import { enc } from './network.js';

const ent = (index: number, term: number, data = 'x') => ({ index, term, type: EntryType.Normal, data: enc(data) });

describe('raft units', () => {
  it('Inflights: bounded ring, frees up to an index, wraps around', () => {
    const f = new Inflights(3);
    f.add(5);
    f.add(7);
    f.add(9);
    expect(f.full()).to.equal(true);
    f.freeLE(7);
    expect(f.count).to.equal(1);
    f.add(11);
    f.add(13);
    expect(f.full()).to.equal(true);
    f.freeLE(6);
    expect(f.count).to.equal(3);
    f.freeFirstOne();
    expect(f.count).to.equal(2);
    f.freeLE(100);
    expect(f.count).to.equal(0);
  });

  it('Progress: probe pauses after one send; replicate pipelines; stale rejects are ignored', () => {
    const p = new Progress(10, 2, false);
    expect(p.state).to.equal(ProgressState.Probe);
    p.sentEntries(3, 12);
    expect(p.isPaused()).to.equal(true);
    expect(p.maybeDecrTo(5, 3)).to.equal(false); // not the probe we sent (next-1 = 9)
    expect(p.maybeDecrTo(9, 3)).to.equal(true);
    expect(p.next).to.equal(4);
    expect(p.isPaused()).to.equal(false);
    expect(p.maybeUpdate(6)).to.equal(true);
    p.becomeReplicate();
    expect(p.next).to.equal(7);
    p.sentEntries(2, 8);
    p.sentEntries(2, 10);
    expect(p.next).to.equal(11);
    expect(p.isPaused()).to.equal(true);
    expect(p.maybeDecrTo(6, 0)).to.equal(false); // at or below match: stale
    expect(p.maybeDecrTo(8, 0)).to.equal(true);
    expect(p.next).to.equal(7);
    p.becomeSnapshot(50);
    expect(p.isPaused()).to.equal(true);
    p.becomeProbe();
    expect(p.next).to.equal(51);
  });

  it('quorum: majority index and vote tallies', () => {
    expect(majorityIndex([5, 1, 3], 3)).to.equal(3);
    expect(majorityIndex([5, 1, 3, 4], 4)).to.equal(3);
    expect(majorityIndex([2, 9, 9, 1, 7], 5)).to.equal(7);
    expect(majorityIndex([4], 1)).to.equal(4);
    const v = new Map<number, boolean>([[1, true]]);
    expect(voteResult([1, 2, 3], v)).to.equal(VoteResult.Pending);
    v.set(2, false);
    expect(voteResult([1, 2, 3], v)).to.equal(VoteResult.Pending);
    v.set(3, false);
    expect(voteResult([1, 2, 3], v)).to.equal(VoteResult.Lost);
    v.set(3, true);
    expect(voteResult([1, 2, 3], v)).to.equal(VoteResult.Won);
    // Votes from non-voters do not count.
    expect(voteResult([1, 2, 3], new Map([[1, true], [9, true]]))).to.equal(VoteResult.Pending);
  });

  it('ReadOnly: acks, quorum, and releasing earlier requests with a later one', () => {
    const ro = new ReadOnly();
    expect(ro.add(1, enc('a'), 5, 1)).to.equal(true);
    expect(ro.add(1, enc('a'), 6, 1)).to.equal(false);
    ro.add(2, enc('b'), 6, 1);
    expect(ro.lastContext()).to.deep.equal(enc('b'));
    expect([...ro.recvAck(3, enc('b'))!]).to.have.members([1, 3]);
    expect(ro.recvAck(3, enc('zz'))).to.equal(undefined);
    const out = ro.advance(enc('b'));
    expect(out.map((r) => [r.from, r.index])).to.deep.equal([
      [1, 5],
      [2, 6],
    ]);
    expect(ro.size).to.equal(0);
  });

  it('RaftLog: terms, conflicts, slices across storage and the unstable tail, stable marks', () => {
    const s = new MemoryStorage();
    s.append([ent(1, 1), ent(2, 1), ent(3, 2)]);
    const log = new RaftLog(s);
    log.append([ent(4, 2), ent(5, 3)]);
    expect(log.lastIndex()).to.equal(5);
    expect([log.term(0), log.term(3), log.term(5), log.term(6)]).to.deep.equal([0, 2, 3, 0]);
    expect(log.findConflict([ent(3, 2), ent(4, 2)])).to.equal(0);
    expect(log.findConflict([ent(4, 2), ent(5, 4)])).to.equal(5);
    expect(log.findConflict([ent(6, 3)])).to.equal(6);
    expect(log.findConflictByTerm(5, 2)).to.deep.equal({ index: 4, term: 2 });
    expect(log.findConflictByTerm(5, 1)).to.deep.equal({ index: 2, term: 1 });
    expect(log.findConflictByTerm(5, 0)).to.deep.equal({ index: 0, term: 0 });
    expect(log.slice(2, 6, Infinity).map((e) => e.index)).to.deep.equal([2, 3, 4, 5]);
    expect(log.slice(2, 6, 2).map((e) => e.index)).to.deep.equal([2, 3]);
    expect(log.slice(3, 6, 2).map((e) => e.index)).to.deep.equal([3, 4]);
    expect(log.isUpToDate(5, 3)).to.equal(true);
    expect(log.isUpToDate(4, 3)).to.equal(false);
    expect(log.isUpToDate(1, 4)).to.equal(true);
    // Truncating into the unstable tail, then persisting.
    log.append([ent(5, 4), ent(6, 4)]);
    expect(log.stableTo(5, 3)).to.equal(false); // that entry is gone
    s.append(log.unstable.entries.slice());
    expect(log.stableTo(6, 4)).to.equal(true);
    expect(log.unstable.entries).to.have.length(0);
    expect(log.persistedIndex()).to.equal(6);
    log.commitTo(4);
    expect(log.nextCommitted(Infinity).map((e) => e.index)).to.deep.equal([1, 2, 3, 4]);
  });

  it('ConfHistory: push, membership at an index, truncation reverts, compaction keeps answers', () => {
    const h = new ConfHistory(0, { voters: [1, 2, 3], learners: [] });
    h.push(3, encodeConfChange({ type: ConfChangeType.AddLearner, node: 4, context: enc('') }));
    h.push(7, encodeConfChange({ type: ConfChangeType.AddVoter, node: 4, context: enc('') }));
    h.push(9, new Uint8Array([0xff])); // garbage: a no-op change
    expect(h.at(2)).to.deep.equal({ voters: [1, 2, 3], learners: [] });
    expect(h.at(5)).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    expect(h.at(8)).to.deep.equal({ voters: [1, 2, 3, 4], learners: [] });
    expect(h.current()).to.deep.equal({ voters: [1, 2, 3, 4], learners: [] });
    expect(h.truncateFrom(7)).to.equal(true);
    expect(h.current()).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    expect(h.currentIndex()).to.equal(3);
    h.compact(5);
    expect(h.baseIndex()).to.equal(3);
    expect(h.at(5)).to.deep.equal({ voters: [1, 2, 3], learners: [4] });
    expect(h.at(2)).to.equal(undefined);
  });
});
