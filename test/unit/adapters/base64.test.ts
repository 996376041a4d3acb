import { expect } from 'chai';
import { isBase64 } from '../../../adapters/sdk/server.js';

describe('SDK base64 validation', () => {
  it('accepts padded base64 of any size, linearly (an 8 MiB entry used to overflow the stack)', () => {
    expect(isBase64('')).to.equal(true);
    expect(isBase64(Buffer.from('a').toString('base64'))).to.equal(true);
    expect(isBase64(Buffer.from('ab').toString('base64'))).to.equal(true);
    expect(isBase64(Buffer.from('abc').toString('base64'))).to.equal(true);
    expect(isBase64(Buffer.alloc(8 << 20, 7).toString('base64'))).to.equal(true);
  });

  it('refuses what is not standard padded base64', () => {
    for (const bad of ['a', 'abc', 'ab=c', 'a===', '****', 'YWJj\n', 'YW-j', 'YQ']) expect(isBase64(bad), bad).to.equal(false);
  });
});
