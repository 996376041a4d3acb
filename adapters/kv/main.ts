#!/usr/bin/env node
// raftd-kv-adapter: the reference key-value application, served on the state-machine API.
//   raftd-kv-adapter --listen 127.0.0.1:7000 --data-dir ./kv-data [--fsync always|never] [--h2c both|only|off]
// Every flag also reads an environment variable (KV_LISTEN, KV_DATA_DIR, KV_FSYNC, KV_H2C, KV_INSECURE).
// The app secret raftd signs its calls with: --app-secret-file PATH, RAFTD_APP_SECRET or RAFTD_APP_SECRET_FILE.

import { serveStateMachine } from '../sdk/server.js';
import { KvAdapter } from './adapter.js';
import { APP_SECRET_ENV } from '../../protocol/secrets.js';
import { exitUsage, optionSecret, optionSwitch, optionValue, commandLineOrExit, type CommandSpec } from '../../protocol/cli.js';

const COMMAND: CommandSpec = {
  name: 'raftd-kv-adapter',
  usage: ['raftd-kv-adapter [options]'],
  about: [
    'raftd-kv-adapter: the reference key-value application, served on the state-machine API.',
    'Point raftd at it with --app-url http://HOST:PORT. Unsigned calls are refused (401) unless --insecure.',
  ],
  options: [
    { name: 'listen', value: 'HOST:PORT', env: 'KV_LISTEN', default: '127.0.0.1:7000', help: 'where to serve the state-machine API' },
    { name: 'data-dir', value: 'DIR', env: 'KV_DATA_DIR', default: './kv-data', help: 'durable state, one directory per group' },
    { name: 'fsync', value: 'MODE', env: 'KV_FSYNC', default: 'always', help: 'always: fsync every UpdateEntries; never: only on Sync (raftd RAFT_SYNC=1)' },
    { name: 'h2c', value: 'MODE', env: 'KV_H2C', default: 'both', help: 'both: HTTP/1.1 and h2c on one port; only; off' },
    { name: 'app-secret-file', value: 'file', env: APP_SECRET_ENV, help: `the app secret raftd signs every call with (raftd's --app-secret-file; or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE)`, secret: true },
    { name: 'insecure', value: null, env: 'KV_INSECURE', help: 'serve unsigned calls: anyone reaching the port rewrites the data (tests only)' },
  ],
};

function fail(msg: string): never {
  return exitUsage(COMMAND.name, msg);
}

const line = commandLineOrExit(COMMAND, process.argv.slice(2));
const get = (name: string): string => optionValue(COMMAND, line, process.env, name);
const listen = get('listen');
const dataDir = get('data-dir');
const fsyncMode = get('fsync');
const h2cMode = get('h2c');
const insecure = optionSwitch(COMMAND, line, process.env, 'insecure');
let appSecret = '';
try {
  appSecret = optionSecret(COMMAND, line, process.env, 'app-secret-file');
} catch (e) {
  fail((e as Error).message);
}
if (appSecret === '' && !insecure) fail(`no --app-secret-file (or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE): raftd signs every call with the app secret; give the same one, or --insecure for a throwaway test`);
const lm = /^(.*):(\d+)$/.exec(listen);
if (!lm) fail(`--listen "${listen}" is not HOST:PORT`);
if (fsyncMode !== 'always' && fsyncMode !== 'never') fail(`--fsync must be always or never, not "${fsyncMode}"`);
const fsync: 'always' | 'never' = fsyncMode;
if (!['both', 'only', 'off'].includes(h2cMode)) fail(`--h2c must be both, only or off, not "${h2cMode}"`);

const adapter = new KvAdapter({ dataDir, fsync });
const log = (level: string) => (obj: object, msg?: string) => console.error(JSON.stringify({ level, msg, ...obj }));
try {
  const served = await serveStateMachine(adapter, {
    host: lm[1]!.replace(/^\[|\]$/g, ''),
    port: Number(lm[2]),
    ...(h2cMode === 'both' ? {} : { h2c: h2cMode === 'only' }),
    ...(appSecret !== '' ? { appSecret } : { insecure: true }),
    logger: { info: log('info'), warn: log('warn'), error: log('error') },
  });
  console.log(`raftd-kv-adapter listening on ${served.url} (data ${dataDir}, fsync ${fsync}, h2c ${h2cMode})`);
  const stop = async () => {
    await served.close();
    await adapter.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
} catch (e) {
  fail(`cannot listen on ${listen}: ${(e as Error).message}`);
}
