import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

describe('GrpcTransport close()', function () {
  this.timeout(30000);

  it('leaves no handles behind: a process that used two transports exits on its own', async () => {
    // Works both from sources (tsx) and from the build (dist/): run the sibling fixture alike.
    const self = fileURLToPath(import.meta.url);
    const ts = self.endsWith('.ts');
    const fixture = self.replace(/lifecycle\.test\.(ts|js)$/, `fixtures/lifecycle.${ts ? 'ts' : 'js'}`);
    const args = ts ? ['--import', 'tsx', fixture] : [fixture];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running 15 s after start: close() left a handle open');
      }, 15000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c ?? -1);
      });
    });
    expect(code, out).to.equal(0);
    const m = /closed in (\d+) ms/.exec(out);
    expect(m, out).to.not.equal(null);
    expect(Number(m![1])).to.be.lessThan(2500);
  });
});
