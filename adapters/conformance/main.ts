#!/usr/bin/env node
// raftd-conformance --app-url URL [--app-secret-file PATH] [--restart-cmd "..."] [--group N] [--no-kv] [--timeout-ms MS]
// Checks an application against the state-machine API v1 and prints each check; exits 1 on any FAIL.

import { spawn } from 'node:child_process';
import { runConformance } from './kit.js';
import { APP_SECRET_ENV, resolveSecret } from '../../protocol/secrets.js';

const HELP = `raftd-conformance: check an application against raftd's state-machine API v1

  --app-url URL        the application's base URL (what raftd gets as --app-url)      [required]
  --app-secret-file PATH  the app secret raftd would sign with (or env ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE):
                       the kit signs its calls and checks unsigned, wrong, replayed ones are refused;
                       without it, calls go unsigned and the auth-required check is skipped
  --restart-cmd CMD    shell command that restarts the application (e.g. kill -9 + start);
                       enables the restart-durable check
  --group N            first of the two unused group numbers the kit may use (default: random)
  --no-kv              the app does not accept the KV command convention
                       ({"op":"set","key","value"} entries, {"op":"get","key"} reads):
                       skip effect checks, check only indexes, results and snapshots
  --timeout-ms MS      per-call deadline (default 10000)

Exit status: 0 if no check FAILed, 1 otherwise, 2 on bad usage.`;

function usage(msg: string): never {
  console.error(`raftd-conformance: ${msg}\n\n${HELP}`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const flags = new Map<string, string>();
let kv = true;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === '--help' || a === '-h') {
    console.log(HELP);
    process.exit(0);
  }
  if (a === '--no-kv') {
    kv = false;
    continue;
  }
  const m = /^--(app-url|app-secret-file|restart-cmd|group|timeout-ms)(?:=(.*))?$/.exec(a);
  if (!m) usage(`unknown argument "${a}"`);
  const v = m[2] ?? argv[++i];
  if (v === undefined) usage(`--${m[1]} needs a value`);
  flags.set(m[1]!, v);
}
const appUrl = flags.get('app-url');
if (!appUrl || !/^https?:\/\/[^/]+/.test(appUrl)) usage('--app-url http://HOST:PORT is required');
const group = flags.has('group') ? Number(flags.get('group')) : undefined;
if (group !== undefined && !(Number.isSafeInteger(group) && group >= 1 && group < 4294967294)) usage('--group must be an integer in 1..4294967293');
const timeoutMs = flags.has('timeout-ms') ? Number(flags.get('timeout-ms')) : undefined;
if (timeoutMs !== undefined && !(timeoutMs > 0)) usage('--timeout-ms must be a positive number');
const restartCmd = flags.get('restart-cmd');
let appSecret = '';
try {
  appSecret = resolveSecret(flags.get('app-secret-file'), APP_SECRET_ENV, process.env, 'app secret');
} catch (e) {
  usage((e as Error).message);
}

const restart = restartCmd
  ? () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn('sh', ['-c', restartCmd], { stdio: ['ignore', 'inherit', 'inherit'] });
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`--restart-cmd exited with status ${code}`))));
      })
  : undefined;

console.log(`raftd-conformance: checking ${appUrl}${kv ? '' : ' (--no-kv: effects not checked)'}`);
const results = await runConformance({
  appUrl,
  kv,
  ...(appSecret !== '' ? { appSecret } : {}),
  ...(group !== undefined ? { group } : {}),
  ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  ...(restart ? { restart } : {}),
  onResult: (r) => console.log(`${r.status.padEnd(4)} ${r.name}: ${r.reason}`),
});
const failed = results.filter((r) => r.status === 'FAIL');
console.log(failed.length === 0 ? `OK: ${results.filter((r) => r.status === 'PASS').length} passed, 0 failed` : `FAILED: ${failed.map((r) => r.name).join(', ')}`);
process.exit(failed.length === 0 ? 0 : 1);
