import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RAFTD_NODE_FLAGS } from '../../../daemon/node-flags.js';

const run = promisify(execFile);
const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '../../../daemon/main.js');

describe("raftd's node flags", () => {
  it("the raftd command's shebang passes exactly RAFTD_NODE_FLAGS to node", () => {
    const shebang = readFileSync(MAIN_JS, 'utf8').split('\n', 1)[0];
    expect(shebang).to.equal(`#!/usr/bin/env -S node ${RAFTD_NODE_FLAGS.join(' ')}`);
  });

  it('node started with them has a larger young generation than without (the flag takes effect)', async () => {
    // V8 derives the heap's size limit from both generations: a larger semi-space raises it.
    const limit = async (flags: readonly string[]): Promise<number> => {
      const { stdout } = await run(process.execPath, [...flags, '-e', "console.log(require('node:v8').getHeapStatistics().heap_size_limit)"]);
      return Number(stdout.trim());
    };
    const [plain, flagged] = [await limit([]), await limit(RAFTD_NODE_FLAGS)];
    expect(flagged).to.be.greaterThan(plain);
  });

  it('the shebang line runs on this system (env -S splits the flags): raftd --help exits 0', async () => {
    const shebang = readFileSync(MAIN_JS, 'utf8').split('\n', 1)[0]!.slice(2).split(' ');
    const { stdout } = await run(shebang[0]!, [...shebang.slice(1), MAIN_JS, '--help']);
    expect(stdout).to.match(/--data-dir/);
  });
});
