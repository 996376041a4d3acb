#!/usr/bin/env node
// raftd-conformance --app-url URL [--app-secret-file PATH] [--restart-cmd "..."] [--group N] [--no-kv] [--timeout-ms MS]
// (every flag also reads its CONFORMANCE_* environment variable; see --help)
// Checks an application against the state-machine API v1 and prints each check; exits 1 on any FAIL.

import { spawn } from 'node:child_process';
import { runConformance } from './kit.js';
import { APP_SECRET_ENV } from '../../protocol/secrets.js';
import { exitUsage, optionSecret, optionSwitch, optionValue, commandLineOrExit, type CommandSpec } from '../../protocol/cli.js';

const COMMAND: CommandSpec = {
  name: 'raftd-conformance',
  usage: ['raftd-conformance --app-url URL [options]'],
  about: ['raftd-conformance: check an application against raftd\'s state-machine API v1 and print each check.'],
  options: [
    { name: 'app-url', value: 'URL', env: 'CONFORMANCE_APP_URL', help: 'the application\'s base URL (what raftd gets as --app-url); required' },
    { name: 'app-secret-file', value: 'file', env: APP_SECRET_ENV, secret: true, help: `the app secret raftd would sign with (or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE): the kit signs its calls and checks unsigned, wrong, replayed ones are refused; without it, calls go unsigned and the auth-required check is skipped` },
    { name: 'restart-cmd', value: 'CMD', env: 'CONFORMANCE_RESTART_CMD', help: 'shell command that restarts the application (e.g. kill -9 + start); enables the restart-durable check' },
    { name: 'group', value: 'int', env: 'CONFORMANCE_GROUP', default: 'random', help: 'first of the two unused group numbers the kit may use' },
    { name: 'no-kv', value: null, env: 'CONFORMANCE_NO_KV', help: 'the app does not accept the KV command convention ({"op":"set","key","value"} entries, {"op":"get","key"} reads): skip effect checks, check only indexes, results and snapshots' },
    { name: 'timeout-ms', value: 'int', env: 'CONFORMANCE_TIMEOUT_MS', default: '10000', help: 'per-call deadline' },
  ],
  footer: ['Exit status: 0 if no check FAILed, 1 otherwise, 2 on bad usage.'],
};

function usage(msg: string): never {
  return exitUsage(COMMAND.name, msg);
}

const line = commandLineOrExit(COMMAND, process.argv.slice(2));
const get = (name: string): string => optionValue(COMMAND, line, process.env, name);
const kv = !optionSwitch(COMMAND, line, process.env, 'no-kv');
const appUrl = get('app-url');
if (!/^https?:\/\/[^/]+/.test(appUrl)) usage('--app-url http://HOST:PORT is required');
const group = get('group') !== 'random' ? Number(get('group')) : undefined;
if (group !== undefined && !(Number.isSafeInteger(group) && group >= 1 && group < 4294967294)) usage('--group must be an integer in 1..4294967293');
const timeoutMs = Number(get('timeout-ms'));
if (!(timeoutMs > 0)) usage('--timeout-ms must be a positive number');
const restartCmd = get('restart-cmd');
let appSecret = '';
try {
  appSecret = optionSecret(COMMAND, line, process.env, 'app-secret-file');
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
  timeoutMs,
  ...(restart ? { restart } : {}),
  onResult: (r) => console.log(`${r.status.padEnd(4)} ${r.name}: ${r.reason}`),
});
const failed = results.filter((r) => r.status === 'FAIL');
console.log(failed.length === 0 ? `OK: ${results.filter((r) => r.status === 'PASS').length} passed, 0 failed` : `FAILED: ${failed.map((r) => r.name).join(', ')}`);
process.exit(failed.length === 0 ? 0 : 1);
