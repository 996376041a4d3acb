import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LogStore } from '../../../daemon/storage/index.js';
import { TempDirs } from './helpers.js';

// Run the child from the same tree as this file: .ts under tsx, compiled .js under `npm test`.
const here = fileURLToPath(import.meta.url);
const ext = here.endsWith('.ts') ? '.ts' : '.js';
const childFile = join(dirname(here), `crash-child${ext}`);
const childArgs = ext === '.ts' ? ['--import', 'tsx', childFile] : [childFile];

const GROUPS = 8;

interface Run {
  acked: number;
  started: number;
}

/** Starts the child, lets it acknowledge writes for a random while, then SIGKILLs it. */
function runAndKill(dir: string, killAfterMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...childArgs, dir, String(GROUPS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let acked = 0;
    let started = -1;
    let buf = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [what, n] = line.split(' ');
        if (what === 'ack') acked = Number(n);
        if (what === 'start') {
          started = Number(n);
          timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited with code ${code} before the kill: ${stderr}`));
      else resolve({ acked, started });
    });
  });
}

describe('storage: crash safety (kill -9)', function () {
  this.timeout(60_000);
  const tmp = new TempDirs();
  after(() => tmp.cleanup());

  it('every acknowledged index survives kill -9 of the writer, over several crashes', async () => {
    const dir = await tmp.make();
    let prevAcked = 0;
    let sawSnapshot = false;
    for (let round = 0; round < 3; round++) {
      const run = await runAndKill(dir, 100 + Math.floor(Math.random() * 300));
      // The child resumed from at least everything acknowledged before the previous crash.
      expect(run.started).to.be.at.least(prevAcked);
      expect(run.acked, 'the child acknowledged writes before being killed').to.be.greaterThan(run.started);
      const store = await LogStore.open({ dir, nodeId: 1, clusterId: 'crash' });
      try {
        expect(await store.listGroups()).to.deep.equal(Array.from({ length: GROUPS }, (_, g) => g));
        for (let g = 0; g < GROUPS; g++) {
          const { entries, hardState, snapshot } = await store.loadGroup(g);
          // Contiguous after the snapshot (if any) and at least up to the last acknowledged index.
          const base = snapshot ? snapshot.index : 0;
          if (snapshot) sawSnapshot = true;
          expect(base).to.be.below(run.acked);
          expect(base + entries.length).to.be.at.least(run.acked);
          entries.forEach((e, i) => expect(e.index).to.equal(base + i + 1));
          expect(hardState.commit).to.be.at.least(run.acked);
          const e = entries[run.acked - base - 1]!;
          expect(e.data[0]).to.equal((g * 131 + e.index * 17) & 0xff);
          expect(e.data).to.have.length(64);
        }
      } finally {
        await store.close();
      }
      prevAcked = run.acked;
      if (round === 2) expect(sawSnapshot, 'the writer took snapshots before being killed').to.equal(true);
      if (process.env.STORAGE_CRASH_VERBOSE) console.log(`round ${round}: resumed at ${run.started}, acked up to ${run.acked}`);
    }
  });
});
