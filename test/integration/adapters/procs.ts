// Helpers to run adapters and the conformance CLI as real processes, from the TypeScript sources
// (mocha --import=tsx) or from dist/ (npm test), whichever this file was loaded from.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
export { freePort } from '../../support/ports.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const fromTs = import.meta.url.endsWith('.ts');

/** The repository root (where package.json is). */
export const root = (() => {
  let d = here;
  while (!existsSync(path.join(d, 'package.json'))) d = path.dirname(d);
  return d;
})();

/** argv to run one of our TypeScript programs (e.g. 'adapters/kv/main.ts') with node. */
export function nodeArgs(tsPath: string): string[] {
  return fromTs ? ['--import', 'tsx', path.join(root, tsPath)] : [path.join(here, '..', '..', '..', tsPath.replace(/\.ts$/, '.js'))];
}

export function tmpDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A restartable app process: `script` kill -9s the previous instance (pid file) and starts a
 * new one in the background. The same script is the conformance kit's --restart-cmd.
 */
export class AppProcess {
  readonly script: string;
  readonly pidFile: string;
  constructor(
    dir: string,
    readonly port: number,
    command: string[],
    name = 'app',
    /** Environment of the app (e.g. RAFTD_APP_SECRET_FILE: a path, never a secret, goes in the script). */
    env: Record<string, string> = {},
  ) {
    this.pidFile = path.join(dir, `${name}.pid`);
    this.script = path.join(dir, `${name}-restart.sh`);
    const quoted = command.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    writeFileSync(
      this.script,
      `#!/bin/sh\ncd '${root}'\n${Object.entries(env).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`).join('')}[ -f '${this.pidFile}' ] && kill -9 "$(cat '${this.pidFile}')" 2>/dev/null\n` +
        `${quoted} >>'${path.join(dir, `${name}.log`)}' 2>&1 &\necho $! > '${this.pidFile}'\n`,
    );
    chmodSync(this.script, 0o755);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    await run('sh', [this.script]);
    await waitForPort(this.port, 15_000);
  }

  stop(): void {
    if (!existsSync(this.pidFile)) return;
    try {
      process.kill(Number(readFileSync(this.pidFile, 'utf8').trim()), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

export async function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
