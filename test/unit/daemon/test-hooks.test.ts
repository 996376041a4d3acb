import { expect } from 'chai';
import { enabledTestHooks, TEST_HOOKS_ENV } from '../../../daemon/test-hooks.js';

describe('test hooks (RAFTD_TEST_HOOKS)', () => {
  it('are all off unless the variable names them', () => {
    expect([...enabledTestHooks({})]).to.deep.equal([]);
    expect([...enabledTestHooks({ [TEST_HOOKS_ENV]: '' })]).to.deep.equal([]);
    expect([...enabledTestHooks({ [TEST_HOOKS_ENV]: ' faults , break-stale-reads,' })]).to.deep.equal(['faults', 'break-stale-reads']);
  });

  it('refuse a name they do not know, rather than run without it', () => {
    expect(() => enabledTestHooks({ [TEST_HOOKS_ENV]: 'faults,stale-reads' })).to.throw(/unknown test hook "stale-reads" \(known: faults, break-stale-reads\)/);
    // The variables of earlier builds are not hooks: setting them does nothing.
    expect([...enabledTestHooks({ RAFTD_ENABLE_FAULTS: '1', RAFTD_TEST_BREAK: 'stale-reads' })]).to.deep.equal([]);
  });
});
