// When taking a voter out of a group is refused without force (daemon/api/membership-safety.ts).

import { expect } from 'chai';
import { failuresSurvived, unsafeVoterRemoval } from '../../../daemon/api/membership-safety.js';

describe('membership safety', () => {
  const all = (): boolean => true;
  const downOnly = (...down: number[]) => (id: number): boolean => !down.includes(id);

  it('counts the failures a group survives', () => {
    expect(failuresSurvived([1, 2, 3], all)).to.equal(1);
    expect(failuresSurvived([1, 2, 3, 4, 5], all)).to.equal(2);
    expect(failuresSurvived([1, 2, 3, 4], all)).to.equal(1);
    expect(failuresSurvived([1, 2], all)).to.equal(0);
    expect(failuresSurvived([1, 2, 3], downOnly(3))).to.equal(0);
    expect(failuresSurvived([1, 2, 3], downOnly(2, 3))).to.equal(-1);
  });

  it('refuses 3 voters down to 2, and a live voter while another is down', () => {
    expect(unsafeVoterRemoval(1, [1, 2, 3], 3, all)).to.match(/survive 0 failure\(s\), down from 1/);
    expect(unsafeVoterRemoval(1, [1, 2, 3], 2, downOnly(3))).to.be.a('string');
    // 5 voters with 4 down survive one more failure; without 5, voters 1..4 (quorum 3, 3 live) survive none.
    expect(unsafeVoterRemoval(1, [1, 2, 3, 4, 5], 5, downOnly(4))).to.be.a('string');
  });

  it('allows what keeps a failure survivable, removing a dead voter, and non-voters', () => {
    expect(unsafeVoterRemoval(1, [1, 2, 3, 4, 5], 5, all)).to.equal(undefined);
    expect(unsafeVoterRemoval(1, [1, 2, 3, 4], 4, all)).to.equal(undefined);
    expect(unsafeVoterRemoval(1, [1, 2, 3], 3, downOnly(3))).to.equal(undefined);
    expect(unsafeVoterRemoval(1, [1, 2], 2, all)).to.equal(undefined); // survives none before or after
    expect(unsafeVoterRemoval(1, [1, 2, 3], 9, all)).to.equal(undefined);
  });
});
