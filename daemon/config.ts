// Every raftd option, its default, its environment variable and its flag — in one place.
// `raftd --help` prints this table (protocol/cli.ts renders it, node:util parseArgs reads argv);
// nothing else in the daemon invents a default.
// Secrets follow protocol/secrets.ts: a `--X-file PATH` flag, or ENV / ENV_FILE; never a value on argv.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { resolveSecret, SecretError, SECRET_FILES, type SecretName } from '../protocol/secrets.js';
import { parseCommandLine, renderHelp, UsageError, type CommandLine, type CommandSpec } from '../protocol/cli.js';

export interface RaftdConfig {
  id: number;
  clusterId: string;
  raftAddr: string;
  httpAddr: string;
  /** Static cluster: node id -> raft address (host:port). Includes this node. */
  peers: Map<number, string>;
  /** HTTP address of a running node to join through (a new node). */
  join: string;
  dataDir: string;
  /** The application's state-machine API base URL; "memory:" runs the built-in in-memory test app. */
  appUrl: string;
  /** Data groups created at bootstrap by the meta group (1..groups). */
  groups: number;
  /** Replicas per data group (0: every node); issue 21, daemon/placement. */
  replicationFactor: number;
  /** This node's failure domain for placement ('' = none). */
  zone: string;
  /** 'auto': the meta leader rebalances by itself; 'manual': only when asked (POST /v1/rebalance). */
  rebalance: string;
  /** Replica moves running at once, at most. */
  maxConcurrentMoves: number;
  /** A node silent this long has its replicas re-created elsewhere (auto rebalancing only; 0: never). */
  deadNodeTimeoutMs: number;
  /** Bytes per node are evened once the groups hold this many bytes in all (one replica each). */
  rebalanceBytesFloor: number;
  /** Ask the app to PrepareSnapshot every N applied entries (then the log is compacted). */
  snapshotInterval: number;
  /** Entries kept in the log behind the snapshot, so slightly lagging followers need no snapshot. */
  snapshotCatchupEntries: number;
  /** Also PrepareSnapshot once this many bytes of entries were applied since the last snapshot. */
  snapshotBytes: number;
  /** At most this many bytes of the entries kept behind a snapshot (large entries). */
  snapshotCatchupBytes: number;
  /** RAFT_SYNC=1: call Sync before treating applied entries as durable in the app. */
  sync: boolean;
  /** On a follower, how long committed entries may wait to reach the app in one larger UpdateEntries. */
  applyLingerMs: number;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Pending proposals per group before new ones are answered OVERLOADED. */
  maxPendingProposals: number;
  /** Default deadline of a client request (propose / read). */
  requestTimeoutMs: number;
  /** Bearer token of the client API (propose, read, status, metrics). */
  apiToken: string;
  /** Bearer token of the admin routes (membership, groups, nodes, transfers, debug); valid for the client API too. */
  adminToken: string;
  /** raftd proves it to the application on every state-machine API call. */
  appSecret: string;
  /** Peers of one cluster prove it to each other on connect (challenge-response). */
  clusterSecret: string;
  /** Directory holding the secrets by their file names (api-token, admin-token, app-secret, cluster-secret). */
  secretsDir: string;
  /** Run without secrets: every surface accepts anyone. Throwaway test clusters only. */
  insecure: boolean;
  logLevel: string;
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
}

interface OptionSpec {
  key: keyof RaftdConfig;
  flag: string;
  env: string;
  /**
   * 'secret': the flag names a file; the env var holds the value, ENV_FILE a file (protocol/secrets.ts).
   * 'bool': a switch, on when the flag is given (it takes no value); the env var says 1/0, true/false.
   */
  kind: 'int' | 'string' | 'bool' | 'peers' | 'secret';
  default: string;
  help: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'id', flag: '--id', env: 'RAFTD_ID', kind: 'int', default: '1', help: 'this node id (>= 1, unique in the cluster)' },
  { key: 'clusterId', flag: '--cluster-id', env: 'RAFTD_CLUSTER_ID', kind: 'string', default: 'raftd', help: 'cluster name; a data dir or peer of another cluster is refused' },
  { key: 'raftAddr', flag: '--raft-addr', env: 'RAFTD_RAFT_ADDR', kind: 'string', default: '127.0.0.1:7001', help: 'gRPC address for peers (host:port)' },
  { key: 'httpAddr', flag: '--http-addr', env: 'RAFTD_HTTP_ADDR', kind: 'string', default: '127.0.0.1:8001', help: 'client HTTP API address (host:port)' },
  { key: 'peers', flag: '--peers', env: 'RAFTD_PEERS', kind: 'peers', default: '', help: 'static cluster "1=host:port,2=host:port,..." (raft addresses, this node included)' },
  { key: 'join', flag: '--join', env: 'RAFTD_JOIN', kind: 'string', default: '', help: 'HTTP address of a cluster member to join through (new node)' },
  { key: 'dataDir', flag: '--data-dir', env: 'RAFTD_DATA_DIR', kind: 'string', default: './raftd-data', help: 'directory of the RocksDB log store' },
  { key: 'appUrl', flag: '--app-url', env: 'RAFTD_APP_URL', kind: 'string', default: 'memory:', help: 'state-machine API base URL of the application ("memory:" = built-in test app)' },
  { key: 'groups', flag: '--groups', env: 'RAFTD_GROUPS', kind: 'int', default: '1', help: 'data groups 1..N created at bootstrap' },
  { key: 'replicationFactor', flag: '--replication-factor', env: 'RAFTD_REPLICATION_FACTOR', kind: 'int', default: '3', help: 'replicas per data group, placed on a ring over the nodes (every node when fewer; 0: every node, also those that join later)' },
  { key: 'zone', flag: '--zone', env: 'RAFTD_ZONE', kind: 'string', default: '', help: 'this node\'s failure domain: placement spreads a group\'s replicas over zones' },
  { key: 'rebalance', flag: '--rebalance', env: 'RAFTD_REBALANCE', kind: 'string', default: 'manual', help: 'auto: the meta leader moves replicas when nodes join, leave or die; manual: only on POST /v1/rebalance' },
  { key: 'maxConcurrentMoves', flag: '--max-concurrent-moves', env: 'RAFTD_MAX_CONCURRENT_MOVES', kind: 'int', default: '2', help: 'replica moves (learner, catch up, promote, remove) running at once' },
  { key: 'deadNodeTimeoutMs', flag: '--dead-node-timeout-ms', env: 'RAFTD_DEAD_NODE_TIMEOUT_MS', kind: 'int', default: '600000', help: 'auto rebalancing: re-create a node\'s replicas elsewhere once it was silent this long (0: never)' },
  { key: 'rebalanceBytesFloor', flag: '--rebalance-bytes-floor', env: 'RAFTD_REBALANCE_BYTES_FLOOR', kind: 'int', default: '67108864', help: 'rebalancing evens bytes per node (not only groups) once the groups hold this many bytes in all (payload bytes applied, one replica each)' },
  { key: 'snapshotInterval', flag: '--snapshot-interval', env: 'RAFTD_SNAPSHOT_INTERVAL', kind: 'int', default: '10000', help: 'PrepareSnapshot every N applied entries, then compact the log' },
  { key: 'snapshotCatchupEntries', flag: '--snapshot-catchup-entries', env: 'RAFTD_SNAPSHOT_CATCHUP_ENTRIES', kind: 'int', default: '1000', help: 'entries kept behind a snapshot for slow followers' },
  { key: 'snapshotBytes', flag: '--snapshot-bytes', env: 'RAFTD_SNAPSHOT_BYTES', kind: 'int', default: '67108864', help: 'also PrepareSnapshot once N bytes of entries were applied since the last one (bounds the log held in memory)' },
  { key: 'snapshotCatchupBytes', flag: '--snapshot-catchup-bytes', env: 'RAFTD_SNAPSHOT_CATCHUP_BYTES', kind: 'int', default: '16777216', help: 'at most N bytes of the entries kept behind a snapshot' },
  { key: 'sync', flag: '--sync', env: 'RAFT_SYNC', kind: 'bool', default: '0', help: 'call the app\'s Sync before treating applied entries as durable' },
  { key: 'applyLingerMs', flag: '--apply-linger-ms', env: 'RAFTD_APPLY_LINGER_MS', kind: 'int', default: '5', help: 'follower: hold committed entries up to N ms to apply them in fewer calls (0: off)' },
  { key: 'tickMs', flag: '--tick-ms', env: 'RAFTD_TICK_MS', kind: 'int', default: '100', help: 'Raft tick interval in milliseconds' },
  { key: 'electionTicks', flag: '--election-ticks', env: 'RAFTD_ELECTION_TICKS', kind: 'int', default: '10', help: 'ticks without a leader before an election' },
  { key: 'heartbeatTicks', flag: '--heartbeat-ticks', env: 'RAFTD_HEARTBEAT_TICKS', kind: 'int', default: '1', help: 'ticks between leader heartbeats (active groups)' },
  { key: 'maxPendingProposals', flag: '--max-pending-proposals', env: 'RAFTD_MAX_PENDING_PROPOSALS', kind: 'int', default: '10000', help: 'per-group queue bound; beyond it proposals get OVERLOADED' },
  { key: 'requestTimeoutMs', flag: '--request-timeout-ms', env: 'RAFTD_REQUEST_TIMEOUT_MS', kind: 'int', default: '10000', help: 'deadline of a client proposal or read' },
  { key: 'secretsDir', flag: '--secrets-dir', env: 'RAFTD_SECRETS_DIR', kind: 'string', default: '', help: 'directory with the files api-token, admin-token, app-secret, cluster-secret (raftd --generate-secrets DIR makes them); a secret given on its own wins' },
  { key: 'apiToken', flag: '--api-token-file', env: 'RAFTD_API_TOKEN', kind: 'secret', default: '', help: 'client API bearer token (file; or the value in RAFTD_API_TOKEN, or a file in RAFTD_API_TOKEN_FILE)' },
  { key: 'adminToken', flag: '--admin-token-file', env: 'RAFTD_ADMIN_TOKEN', kind: 'secret', default: '', help: 'admin routes bearer token: membership, groups, nodes, transfers, debug (file; or RAFTD_ADMIN_TOKEN / _FILE)' },
  { key: 'appSecret', flag: '--app-secret-file', env: 'RAFTD_APP_SECRET', kind: 'secret', default: '', help: 'secret raftd proves to the application on every state-machine API call (file; or RAFTD_APP_SECRET / _FILE)' },
  { key: 'clusterSecret', flag: '--cluster-secret-file', env: 'RAFTD_CLUSTER_SECRET', kind: 'secret', default: '', help: 'secret the peers prove to each other on connect, never sent (file; or RAFTD_CLUSTER_SECRET / _FILE); not needed with --tls-*' },
  { key: 'insecure', flag: '--insecure', env: 'RAFTD_INSECURE', kind: 'bool', default: '0', help: 'run with no secrets: every surface accepts anyone (throwaway test clusters only)' },
  { key: 'logLevel', flag: '--log-level', env: 'RAFTD_LOG_LEVEL', kind: 'string', default: 'info', help: 'pino log level' },
  { key: 'tlsCa', flag: '--tls-ca', env: 'RAFTD_TLS_CA', kind: 'string', default: '', help: 'peer mTLS: CA certificate file' },
  { key: 'tlsCert', flag: '--tls-cert', env: 'RAFTD_TLS_CERT', kind: 'string', default: '', help: 'peer mTLS: this node\'s certificate file' },
  { key: 'tlsKey', flag: '--tls-key', env: 'RAFTD_TLS_KEY', kind: 'string', default: '', help: 'peer mTLS: this node\'s key file' },
];

export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG';
}

export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m) throw new ConfigError(`${what}: "${value}" is not host:port`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ConfigError(`${what}: port ${port} is out of range 1-65535`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function parsePeers(value: string): Map<number, string> {
  const peers = new Map<number, string>();
  if (value.trim() === '') return peers;
  const seenAddr = new Map<string, number>();
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m) throw new ConfigError(`--peers: "${part}" is not id=host:port`);
    const id = Number(m[1]);
    if (!Number.isSafeInteger(id) || id < 1) throw new ConfigError(`--peers: node id ${m[1]} must be >= 1`);
    if (peers.has(id)) throw new ConfigError(`--peers: node id ${id} appears twice`);
    parseHostPort(m[2]!, `--peers (node ${id})`);
    const other = seenAddr.get(m[2]!);
    if (other !== undefined) throw new ConfigError(`--peers: nodes ${other} and ${id} share the address ${m[2]}`);
    seenAddr.set(m[2]!, id);
    peers.set(id, m[2]!);
  }
  return peers;
}

function parseValue(spec: OptionSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'int': {
      if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${spec.flag}: "${raw}" is not a non-negative integer`);
      return Number(raw);
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on', ''].includes(v)) return v !== '';
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${spec.flag}: "${raw}" is not a boolean (1/0, true/false)`);
    }
    case 'peers':
      return parsePeers(raw);
    case 'string':
    case 'secret':
      return raw;
  }
}

/** The OPTIONS table as the shared command-line helper sees it (parsing and --help). */
export const RAFTD_COMMAND: CommandSpec = {
  name: 'raftd',
  usage: [
    'raftd [options]',
    'raftd --generate-secrets DIR   (writes the missing secret files into DIR, mode 0600, and exits)',
  ],
  about: [
    'raftd: a multi-group Raft daemon that makes an HTTP application a replicated service.',
    'Secrets are never taken as flag values (every local user can read a command line): a <file> flag,',
    'its environment variable holding the value, or that variable with _FILE holding a path.',
  ],
  options: OPTIONS.map((o) => ({
    name: o.flag.slice(2),
    value: o.kind === 'bool' ? null : o.kind === 'secret' ? 'file' : o.kind,
    env: o.env,
    default: o.kind === 'bool' ? (o.default === '1' ? 'on' : 'off') : o.default,
    help: o.help,
    secret: o.kind === 'secret',
  })),
};

export function helpText(): string {
  return renderHelp(RAFTD_COMMAND);
}

/** Defaults, then environment, then flags. Throws ConfigError with one clear line. */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): RaftdConfig {
  let line: CommandLine;
  try {
    line = parseCommandLine(RAFTD_COMMAND, argv);
  } catch (e) {
    if (e instanceof UsageError) throw new ConfigError(e.message);
    throw e;
  }
  const values: Record<string, unknown> = {};
  // Secrets: the flag's file path, resolved after every flag is read (protocol/secrets.ts).
  const secretFiles = new Map<keyof RaftdConfig, string>();
  for (const o of OPTIONS) {
    const flag = line.flags.get(o.flag.slice(2));
    if (o.kind === 'secret') {
      if (typeof flag === 'string') secretFiles.set(o.key, flag);
      continue;
    }
    // A switch given on the command line is on; its variable may say 1/0, true/false.
    const raw = flag === true ? '1' : flag ?? env[o.env] ?? o.default;
    values[o.key] = parseValue(o, raw);
  }
  const cfg = values as unknown as RaftdConfig;
  try {
    for (const o of OPTIONS) {
      if (o.kind !== 'secret') continue;
      let value = resolveSecret(secretFiles.get(o.key), o.env, env, o.flag);
      const inDir = cfg.secretsDir === '' ? '' : join(cfg.secretsDir, SECRET_FILES[o.key as SecretName]);
      if (value === '' && inDir !== '' && existsSync(inDir)) value = resolveSecret(inDir, '', {}, `--secrets-dir ${o.flag.slice(2)}`);
      (cfg as unknown as Record<string, string>)[o.key] = value;
    }
  } catch (e) {
    if (e instanceof SecretError) throw new ConfigError(e.message);
    throw e;
  }
  validate(cfg);
  return cfg;
}

/** The secret flags a secure raftd still lacks (empty under --insecure). */
export function missingSecrets(cfg: RaftdConfig): string[] {
  if (cfg.insecure) return [];
  const missing: string[] = [];
  if (cfg.apiToken === '') missing.push('--api-token-file');
  if (cfg.adminToken === '') missing.push('--admin-token-file');
  if (cfg.appSecret === '' && cfg.appUrl !== 'memory:') missing.push('--app-secret-file');
  if (cfg.clusterSecret === '' && cfg.tlsCa === '') missing.push('--cluster-secret-file');
  return missing;
}

function validate(cfg: RaftdConfig): void {
  if (cfg.id < 1) throw new ConfigError('--id must be >= 1');
  parseHostPort(cfg.raftAddr, '--raft-addr');
  parseHostPort(cfg.httpAddr, '--http-addr');
  if (cfg.raftAddr === cfg.httpAddr) throw new ConfigError('--raft-addr and --http-addr must differ');
  if (cfg.peers.size > 0 && cfg.join !== '') throw new ConfigError('give either --peers (static cluster) or --join (new node), not both');
  if (cfg.peers.size > 0) {
    const mine = cfg.peers.get(cfg.id);
    if (mine === undefined) throw new ConfigError(`--peers does not list this node's id ${cfg.id}`);
    if (mine !== cfg.raftAddr) throw new ConfigError(`--peers gives node ${cfg.id} the address ${mine} but --raft-addr is ${cfg.raftAddr}`);
  }
  if (cfg.join !== '') parseHostPort(cfg.join, '--join');
  if (cfg.tickMs < 1) throw new ConfigError('--tick-ms must be >= 1');
  if (cfg.heartbeatTicks < 1 || cfg.electionTicks <= cfg.heartbeatTicks) {
    throw new ConfigError('--election-ticks must be greater than --heartbeat-ticks (>= 1)');
  }
  if (cfg.zone.length > 64 || /\s/.test(cfg.zone)) throw new ConfigError('--zone: at most 64 characters, no spaces');
  if (cfg.rebalance !== 'auto' && cfg.rebalance !== 'manual') throw new ConfigError(`--rebalance: "${cfg.rebalance}" is not auto or manual`);
  if (cfg.rebalanceBytesFloor < 0) throw new ConfigError('--rebalance-bytes-floor must be >= 0');
  if (cfg.maxConcurrentMoves < 1) throw new ConfigError('--max-concurrent-moves must be >= 1');
  if (cfg.snapshotInterval < 1) throw new ConfigError('--snapshot-interval must be >= 1');
  if (cfg.snapshotBytes < 1) throw new ConfigError('--snapshot-bytes must be >= 1');
  if (cfg.applyLingerMs < 0 || cfg.applyLingerMs > 60_000) throw new ConfigError('--apply-linger-ms must be between 0 and 60000');
  if (cfg.maxPendingProposals < 1) throw new ConfigError('--max-pending-proposals must be >= 1');
  const tlsSet = [cfg.tlsCa, cfg.tlsCert, cfg.tlsKey].filter((s) => s !== '').length;
  if (tlsSet !== 0 && tlsSet !== 3) throw new ConfigError('peer mTLS needs all of --tls-ca, --tls-cert and --tls-key');
  if (cfg.appUrl !== 'memory:' && !/^https?:\/\/[^/]+/.test(cfg.appUrl)) {
    throw new ConfigError(`--app-url: "${cfg.appUrl}" is not an http:// URL (or "memory:")`);
  }
  const missing = missingSecrets(cfg);
  if (missing.length > 0) {
    throw new ConfigError(
      `no ${missing.join(', ')}: every surface of raftd is authenticated; give them (or --secrets-dir DIR, made by raftd --generate-secrets DIR), or --insecure for a throwaway test cluster`,
    );
  }
  if (!cfg.insecure && cfg.apiToken === cfg.adminToken) throw new ConfigError('--api-token-file and --admin-token-file must differ (the admin token grants membership changes)');
}
