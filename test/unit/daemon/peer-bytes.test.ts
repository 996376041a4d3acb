// Bytes per group steer rebalancing (daemon/api/placement-routes.ts, groupBytes): a peer's reported
// bytesApplied counts only if it is a safe non-negative integer (not NaN, Infinity, negative, huge).
import { expect } from 'chai';
import { peerBytesApplied } from '../../../daemon/api/placement-routes.js';

describe('placement: a peer\'s bytesApplied', () => {
  it('accepts a count and nothing else', () => {
    expect(peerBytesApplied(0)).to.equal(0);
    expect(peerBytesApplied(123_456)).to.equal(123_456);
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, '100', null, undefined]) {
      expect(peerBytesApplied(bad), String(bad)).to.equal(undefined);
    }
  });
});
