#!/usr/bin/env node
// raftd-kv-adapter: the reference key-value application, served on the state-machine API.
//   raftd-kv-adapter --listen 127.0.0.1:7000 --data-dir ./kv-data [--fsync always|never] [--h2c both|only|off]
// Every flag also reads an environment variable (KV_LISTEN, KV_DATA_DIR, KV_FSYNC, KV_H2C).
// The app secret raftd signs its calls with: --app-secret-file PATH, RAFTD_APP_SECRET or RAFTD_APP_SECRET_FILE.

import { serveStateMachine } from '../sdk/server.js';
import { KvAdapter } from './adapter.js';
import { APP_SECRET_ENV, resolveSecret } from '../../protocol/secrets.js';

const HELP = `raftd-kv-adapter: the reference key-value adapter for raftd

  --listen HOST:PORT   where to serve the state-machine API   (env KV_LISTEN, default 127.0.0.1:7000)
  --data-dir DIR       durable state, one directory per group  (env KV_DATA_DIR, default ./kv-data)
  --fsync MODE         always: fsync every UpdateEntries (default); never: only on Sync (raftd RAFT_SYNC=1)  (env KV_FSYNC)
  --h2c MODE           both (default): HTTP/1.1 and h2c on one port; only; off   (env KV_H2C)
  --app-secret-file PATH  the app secret raftd signs every call with (raftd's --app-secret-file;
                       or env ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE). Unsigned calls are refused (401).
  --insecure           serve unsigned calls: anyone reaching the port rewrites the data (tests only; env KV_INSECURE=1)

Point raftd at it with --app-url http://HOST:PORT.`;

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      console.log(HELP);
      process.exit(0);
    }
    if (a === '--insecure') {
      out.set('insecure', '1');
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) fail(`unexpected argument "${a}"`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) fail(`--${m[1]} needs a value`);
    out.set(m[1]!, value);
  }
  return out;
}

function fail(msg: string): never {
  console.error(`raftd-kv-adapter: ${msg} (see --help)`);
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const listen = args.get('listen') ?? process.env.KV_LISTEN ?? '127.0.0.1:7000';
const dataDir = args.get('data-dir') ?? process.env.KV_DATA_DIR ?? './kv-data';
const fsync = args.get('fsync') ?? process.env.KV_FSYNC ?? 'always';
const h2cMode = args.get('h2c') ?? process.env.KV_H2C ?? 'both';
for (const k of args.keys()) if (!['listen', 'data-dir', 'fsync', 'h2c', 'app-secret-file', 'insecure'].includes(k)) fail(`unknown flag --${k}`);
const insecure = args.get('insecure') === '1' || process.env.KV_INSECURE === '1';
let appSecret = '';
try {
  appSecret = resolveSecret(args.get('app-secret-file'), APP_SECRET_ENV, process.env, 'app secret');
} catch (e) {
  fail((e as Error).message);
}
if (appSecret === '' && !insecure) fail(`no --app-secret-file (or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE): raftd signs every call with the app secret; give the same one, or --insecure for a throwaway test`);
const lm = /^(.*):(\d+)$/.exec(listen);
if (!lm) fail(`--listen "${listen}" is not HOST:PORT`);
if (fsync !== 'always' && fsync !== 'never') fail(`--fsync must be always or never, not "${fsync}"`);
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
