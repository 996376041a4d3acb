#!/usr/bin/env node
// The `rafthouse` command: beside one raftd node, in one process, the RaftHouse state machine (raftd
// calls it on --app-listen) and the ClickHouse-compatible gateway (consistent and local endpoints).
// Every option: a flag, an environment variable, a default — in OPTIONS below, nowhere else.

import { readFileSync } from 'node:fs';
import { APP_SECRET_ENV } from '../protocol/secrets.js';
import { renderHelp, parseCommandLine, optionSecret, optionSwitch, UsageError, type CommandSpec } from '../protocol/cli.js';
import { startRafthouse } from './gateway/node.js';
import type { RafthouseConfig } from './gateway/node.js';
import type { ReadLimits } from './gateway/limits.js';

/** value: what the flag takes, shown in --help (null: a switch); secret: the flag names a file (protocol/secrets.ts). */
interface Opt { flag: string; value: string | null; env: string; def: string; help: string; secret?: boolean }

const OPTIONS: Record<string, Opt> = {
  'app-listen': { flag: 'app-listen', value: 'HOST:PORT', env: 'RAFTHOUSE_APP_LISTEN', def: '127.0.0.1:7100', help: 'state-machine API for raftd (raftd --app-url http://THIS)' },
  'consistent-listen': { flag: 'consistent-listen', value: 'HOST:PORT', env: 'RAFTHOUSE_CONSISTENT_LISTEN', def: '127.0.0.1:8123', help: 'consistent endpoint (writes, linearizable reads)' },
  'local-listen': { flag: 'local-listen', value: 'HOST:PORT', env: 'RAFTHOUSE_LOCAL_LISTEN', def: '127.0.0.1:8124', help: 'local endpoint (reads of this replica, read-only)' },
  'consistent-host': { flag: 'consistent-host', value: 'NAMES', env: 'RAFTHOUSE_CONSISTENT_HOST', def: '', help: 'Host header names (comma-separated) that select the consistent endpoint on either port' },
  'local-host': { flag: 'local-host', value: 'NAMES', env: 'RAFTHOUSE_LOCAL_HOST', def: '', help: 'Host header names (comma-separated) that select the local endpoint on either port' },
  'raftd-url': { flag: 'raftd-url', value: 'URL[,URL]', env: 'RAFTHOUSE_RAFTD_URL', def: 'http://127.0.0.1:8001', help: 'raftd client API (comma-separated list: tried in turn)' },
  'raftd-token-file': { flag: 'raftd-token-file', value: 'file', secret: true, env: 'RAFTHOUSE_RAFTD_TOKEN', def: '', help: 'file with the bearer token of raftd\'s client API (or the value in RAFTHOUSE_RAFTD_TOKEN, a file in RAFTHOUSE_RAFTD_TOKEN_FILE)' },
  'app-secret-file': { flag: 'app-secret-file', value: 'file', secret: true, env: APP_SECRET_ENV, def: '', help: `file with the secret raftd proves on every state-machine API call (raftd --app-secret-file; or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE)` },
  insecure: { flag: 'insecure', value: null, env: 'RAFTHOUSE_INSECURE', def: '', help: 'accept state-machine API calls without the app secret (throwaway test clusters only)' },
  engine: { flag: 'engine', value: 'embedded|server', env: 'RAFTHOUSE_ENGINE', def: 'embedded', help: 'embedded (chdb in-process) or server' },
  'data-dir': { flag: 'data-dir', value: 'DIR', env: 'RAFTHOUSE_DATA_DIR', def: './rafthouse-data', help: 'embedded: the chdb data directory' },
  'clickhouse-url': { flag: 'clickhouse-url', value: 'URL', env: 'CLICKHOUSE_URL', def: '', help: 'server: e.g. http://127.0.0.1:8123' },
  user: { flag: 'user', value: 'NAME', env: 'CLICKHOUSE_USER', def: '', help: 'server: ClickHouse user the state machine writes as' },
  'password-file': { flag: 'password-file', value: 'file', secret: true, env: 'CLICKHOUSE_PASSWORD', def: '', help: 'server: file with its password (or CLICKHOUSE_PASSWORD / _FILE)' },
  'readonly-user': { flag: 'readonly-user', value: 'NAME', env: 'CLICKHOUSE_READONLY_USER', def: '', help: 'server: a ClickHouse user with a readonly=2 profile (reads, local endpoint)' },
  'readonly-password-file': { flag: 'readonly-password-file', value: 'file', secret: true, env: 'CLICKHOUSE_READONLY_PASSWORD', def: '', help: 'server: file with its password (or CLICKHOUSE_READONLY_PASSWORD / _FILE)' },
  groups: { flag: 'groups', value: 'int', env: 'RAFTHOUSE_GROUPS', def: '1', help: 'data groups 1..N (must equal raftd --groups)' },
  vnodes: { flag: 'vnodes', value: 'int', env: 'RAFTHOUSE_VNODES', def: '128', help: 'ring points per group (same on every node)' },
  database: { flag: 'database', value: 'NAME', env: 'RAFTHOUSE_DATABASE', def: 'default', help: 'the user database served' },
  'users-file': { flag: 'users-file', value: 'file', secret: true, env: 'RAFTHOUSE_USERS', def: '', help: 'file with the gateway users "name:password,..." (or RAFTHOUSE_USERS / _FILE; default: user default, empty password)' },
  'user-limits-file': { flag: 'user-limits-file', value: 'file', env: 'RAFTHOUSE_USER_LIMITS_FILE', def: '', help: 'JSON file {"user": {"max_execution_time": s, "max_memory_usage": B, "max_result_rows": n, "max_result_bytes": B}}: read limits per gateway user' },
  'max-execution-time': { flag: 'max-execution-time', value: 'int', env: 'RAFTHOUSE_MAX_EXECUTION_TIME', def: '60', help: 'reads: seconds a query may run (0: no limit); a user cannot raise it' },
  'max-memory-usage': { flag: 'max-memory-usage', value: 'int', env: 'RAFTHOUSE_MAX_MEMORY_USAGE', def: String(4 * 1024 ** 3), help: 'reads: bytes of memory one query may use (0: no limit)' },
  'max-result-rows': { flag: 'max-result-rows', value: 'int', env: 'RAFTHOUSE_MAX_RESULT_ROWS', def: '0', help: 'reads: rows in one result (0: no limit)' },
  'max-result-bytes': { flag: 'max-result-bytes', value: 'int', env: 'RAFTHOUSE_MAX_RESULT_BYTES', def: String(1024 ** 3), help: 'reads: bytes of one result and response body (0: no limit)' },
  'max-concurrent-queries': { flag: 'max-concurrent-queries', value: 'int', env: 'RAFTHOUSE_MAX_CONCURRENT_QUERIES', def: '32', help: 'reads running at once on this node; more get TOO_MANY_SIMULTANEOUS_QUERIES' },
  'max-sessions': { flag: 'max-sessions', value: 'int', env: 'RAFTHOUSE_MAX_SESSIONS', def: '1000', help: 'client sessions (session_id) open at once on this node; one more gets TOO_MANY_SIMULTANEOUS_QUERIES' },
  'max-session-timeout': { flag: 'max-session-timeout', value: 'int', env: 'RAFTHOUSE_MAX_SESSION_TIMEOUT', def: '3600', help: 'the largest session_timeout (seconds) a client may ask for; the default is 60' },
  'max-body-bytes': { flag: 'max-body-bytes', value: 'int', env: 'RAFTHOUSE_MAX_BODY_BYTES', def: String(32 * 1024 * 1024), help: 'request body cap in bytes, on the wire and after gzip/deflate/br decoding' },
  'dedup-window': { flag: 'dedup-window', value: 'int', env: 'RAFTHOUSE_DEDUP_WINDOW', def: '10000', help: 'non_replicated_deduplication_window on group tables' },
  'allow-table-functions': { flag: 'allow-table-functions', value: 'NAMES', env: 'RAFTHOUSE_ALLOW_TABLE_FUNCTIONS', def: '', help: 'table functions reads may call besides the pure ones (comma-separated, e.g. url,s3); never writes' },
  'consistent-cut': { flag: 'consistent-cut', value: 'on|off', env: 'RAFTHOUSE_CONSISTENT_CUT', def: 'on', help: 'on: a consistent read of several groups sees them at one instant (docs/design-notes.md); off: each group fresh, not one cut (tests only)' },
  'internal-listen': { flag: 'internal-listen', value: 'HOST:PORT', env: 'RAFTHOUSE_INTERNAL_LISTEN', def: '', help: 'placed groups (raftd --replication-factor): internal endpoint other rafthouse nodes hold apply and read groups on (off when empty)' },
  'internal-peers': { flag: 'internal-peers', value: 'ID=URL[,...]', env: 'RAFTHOUSE_INTERNAL_PEERS', def: '', help: 'placed groups: every node\'s internal endpoint by raftd node id (1=http://10.0.0.1:8125,...); consistent reads then pull groups this node does not hold' },
  'internal-secret-file': { flag: 'internal-secret-file', value: 'file', secret: true, env: 'RAFTHOUSE_INTERNAL_SECRET', def: '', help: 'file with the secret the internal endpoints prove to each other, the same on every node (default: the app secret)' },
  'view-sync-ms': { flag: 'view-sync-ms', value: 'int', env: 'RAFTHOUSE_VIEW_SYNC_MS', def: '1000', help: 'period of the read-view refresh' },
};

/** The command-line side of OPTIONS (protocol/cli.ts: node:util parseArgs, the shared --help layout). */
const COMMAND: CommandSpec = {
  name: 'rafthouse',
  usage: ['rafthouse [options]'],
  about: [
    'rafthouse: RaftHouse node (state machine + ClickHouse-compatible gateway) beside a raftd node.',
    'Secrets are never flag values (every local user can read a command line): a *-file flag, or the',
    'environment variable holding the value, or that variable with _FILE holding a path.',
  ],
  options: Object.values(OPTIONS).map((o) => ({
    name: o.flag,
    value: o.value,
    env: o.env,
    default: o.def,
    help: o.help,
    secret: o.secret === true,
  })),
};

const HELP = renderHelp(COMMAND);

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

function onOff(name: string, v: string): boolean {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new UsageError(`--${name} must be on or off, got ${v}`);
}

function parseUsers(spec: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const item of spec.split(',').filter((s) => s.trim() !== '')) {
    const i = item.indexOf(':');
    const name = (i < 0 ? item : item.slice(0, i)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) throw new UsageError(`bad user name in --users-file: ${JSON.stringify(name)}`);
    users.set(name, i < 0 ? '' : item.slice(i + 1));
  }
  if (users.size === 0) throw new UsageError('--users-file lists no user');
  return users;
}

const LIMIT_KEYS: ReadonlyArray<[string, keyof ReadLimits]> = [
  ['max_execution_time', 'maxExecutionTime'], ['max_memory_usage', 'maxMemoryUsage'],
  ['max_result_rows', 'maxResultRows'], ['max_result_bytes', 'maxResultBytes'],
];

/** The user limits file: gateway user -> any of the four read limits (no secrets in it). */
function readUserLimitsFile(path: string, users: ReadonlyMap<string, string>): Map<string, Partial<ReadLimits>> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`--user-limits-file ${path}: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`--user-limits-file ${path}: expected a JSON object of users`);
  const limits = new Map<string, Partial<ReadLimits>>();
  for (const [name, v] of Object.entries(doc as Record<string, unknown>)) {
    if (!users.has(name)) throw new UsageError(`--user-limits-file: ${name} is not a gateway user`);
    if (typeof v !== 'object' || v === null) throw new UsageError(`--user-limits-file: user ${name} must be an object`);
    const u = v as Record<string, unknown>;
    for (const k of Object.keys(u)) {
      if (!LIMIT_KEYS.some(([n]) => n === k)) throw new UsageError(`--user-limits-file: user ${name}: unknown key ${k}`);
    }
    const l: Partial<ReadLimits> = {};
    for (const [n, key] of LIMIT_KEYS) {
      if (u[n] === undefined) continue;
      if (typeof u[n] !== 'number' || !(u[n] as number >= 0)) throw new UsageError(`--user-limits-file: user ${name}: ${n} must be a number >= 0`);
      l[key] = u[n] as number;
    }
    limits.set(name, l);
  }
  return limits;
}

function configFrom(argv: string[], env: NodeJS.ProcessEnv): RafthouseConfig | 'help' {
  const line = parseCommandLine(COMMAND, argv);
  if (line.help) return 'help';
  const vals = Object.fromEntries(line.flags) as Record<string, string | true | undefined>;
  const get = (k: string): string => (vals[k] as string | undefined) ?? env[OPTIONS[k]!.env] ?? OPTIONS[k]!.def;
  const list = (k: string) => get(k).split(',').map((s) => s.trim()).filter((s) => s);
  // Secrets: the flag names a file; the env var holds the value, ENV_FILE a file (protocol/secrets.ts).
  // Secrets (protocol/secrets.ts): the project's own need MIN_SECRET_LENGTH; passwords are the operator's.
  const secret = (k: string, generated = true): string => optionSecret(COMMAND, line, env, k, generated ? undefined : 1);
  const engine = get('engine');
  if (engine !== 'embedded' && engine !== 'server') throw new UsageError(`--engine must be embedded or server, got ${engine}`);
  const cfg: RafthouseConfig = {
    appListen: get('app-listen'), consistentListen: get('consistent-listen'), localListen: get('local-listen'),
    consistentHosts: list('consistent-host'), localHosts: list('local-host'),
    raftdUrls: list('raftd-url'), engine, dataDir: get('data-dir'),
    groups: int('groups', get('groups'), 1), vnodes: int('vnodes', get('vnodes'), 1), database: get('database'),
    users: parseUsers(secret('users-file', false) || 'default:'), userLimits: new Map(),
    readLimits: {
      maxExecutionTime: int('max-execution-time', get('max-execution-time'), 0), maxMemoryUsage: int('max-memory-usage', get('max-memory-usage'), 0),
      maxResultRows: int('max-result-rows', get('max-result-rows'), 0), maxResultBytes: int('max-result-bytes', get('max-result-bytes'), 0),
    },
    maxSessions: int('max-sessions', get('max-sessions'), 1), maxSessionTimeout: int('max-session-timeout', get('max-session-timeout'), 1),
    maxConcurrentQueries: int('max-concurrent-queries', get('max-concurrent-queries'), 1), maxBodyBytes: int('max-body-bytes', get('max-body-bytes'), 1024),
    dedupWindow: int('dedup-window', get('dedup-window'), 100), viewSyncMs: int('view-sync-ms', get('view-sync-ms'), 50),
    consistentCut: onOff('consistent-cut', get('consistent-cut')),
  };
  const raftdToken = secret('raftd-token-file');
  if (raftdToken) cfg.raftdToken = raftdToken;
  const appSecret = secret('app-secret-file');
  const insecure = optionSwitch(COMMAND, line, env, 'insecure');
  if (appSecret) cfg.appSecret = appSecret;
  else if (!insecure) throw new UsageError(`no --app-secret-file (or ${APP_SECRET_ENV}): the state-machine API refuses calls without raftd's secret; give it, or --insecure for a throwaway test cluster`);
  if (get('internal-listen')) cfg.internalListen = get('internal-listen');
  const peers = list('internal-peers');
  if (peers.length) {
    cfg.internalPeers = new Map();
    for (const p of peers) {
      const m = /^(\d+)=(https?:\/\/[^/\s]+)\/?$/.exec(p);
      if (!m) throw new UsageError(`--internal-peers: ${JSON.stringify(p)} is not ID=http://HOST:PORT`);
      cfg.internalPeers.set(Number(m[1]), m[2]!);
    }
  }
  const internalSecret = secret('internal-secret-file');
  if (internalSecret) cfg.internalSecret = internalSecret;
  const allow = list('allow-table-functions');
  for (const f of allow) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(f)) throw new UsageError(`bad function name in --allow-table-functions: ${JSON.stringify(f)}`);
  if (allow.length) cfg.allowTableFunctions = allow.map((f) => f.toLowerCase());
  if (get('user-limits-file')) cfg.userLimits = readUserLimitsFile(get('user-limits-file'), cfg.users);
  if (get('clickhouse-url')) cfg.clickhouseUrl = get('clickhouse-url');
  if (get('user')) cfg.clickhouseUser = get('user');
  const password = secret('password-file', false);
  if (password) cfg.clickhousePassword = password;
  if (get('readonly-user')) cfg.clickhouseReadonlyUser = get('readonly-user');
  const readonlyPassword = secret('readonly-password-file', false);
  if (readonlyPassword) cfg.clickhouseReadonlyPassword = readonlyPassword;
  if (cfg.raftdUrls.length === 0) throw new UsageError('--raftd-url is empty');
  if (engine === 'server' && !cfg.clickhouseUrl) throw new UsageError('--engine server needs --clickhouse-url');
  return cfg;
}

async function main(): Promise<void> {
  const cfg = configFrom(process.argv.slice(2), process.env);
  if (cfg === 'help') {
    process.stdout.write(HELP);
    return;
  }
  const log = (m: string) => process.stderr.write(`rafthouse: ${m}\n`);
  // Every running chdb call holds one libuv worker thread (zlib and fs share the pool), and the pool's
  // size is fixed before any of our code runs: only the environment can set it. With too few threads,
  // slow reads would hold them all and stall every other call, so reads are held to what fits.
  const pool = Number(process.env['UV_THREADPOOL_SIZE']) || 4;
  const fits = Math.max(2, pool - 8);
  if (cfg.maxConcurrentQueries > fits) {
    log(`UV_THREADPOOL_SIZE is ${pool}: at most ${fits} reads run at once (set UV_THREADPOOL_SIZE=64 in rafthouse's environment for --max-concurrent-queries ${cfg.maxConcurrentQueries})`);
    cfg.maxConcurrentQueries = fits;
  }
  const node = await startRafthouse(cfg, log);
  process.stdout.write(`rafthouse: ClickHouse ${node.version} (${cfg.engine}); state machine ${node.appUrl}; consistent http://${node.consistentAddr}; local http://${node.localAddr}; groups ${cfg.groups}\n`);
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await node.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  // A bad command line is one line (protocol/cli.ts); other failures name their code.
  process.stderr.write(e instanceof UsageError ? `rafthouse: ${err.message}\n` : `rafthouse: ${err.code ?? 'ERROR'}: ${err.message}\n`);
  process.exit(err.code === 'USAGE' ? 2 : err.code === 'ENGINE_UNSUPPORTED' ? 3 : 1);
});
