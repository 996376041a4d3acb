// `npm start`: a local RaftHouse cluster in one command. Per node, one `rafthouse` process (state
// machine + ClickHouse-compatible gateway, embedded chdb by default) and one `raftd` beside it.
// Everything lives under one data directory; cluster.json there pins ids, ports and groups so a second
// start reuses the same peers and data. Ctrl-C stops raftd first (it calls the state machine), then
// rafthouse, each with SIGTERM, and exits 0.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLine, renderHelp, type CommandLine, type CommandSpec } from '../protocol/cli.js';
import { ensureSecretsDir } from '../protocol/secrets.js';

const here = dirname(fileURLToPath(import.meta.url));
/** <outDir>/scripts/start.js (outDir: dist/ or another directory in the repo); also works through tsx from scripts/. */
const compiled = fileURLToPath(import.meta.url).endsWith('.js');
const OUT_DIR = resolve(here, '..');
const ROOT = compiled ? resolve(OUT_DIR, '..') : resolve(here, '..');
function entry(tsPath: string): string[] {
  return compiled ? [join(OUT_DIR, tsPath.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', join(ROOT, tsPath)];
}

/** `npm start`'s options (protocol/cli.ts: node:util parseArgs, the shared --help layout). */
const COMMAND: CommandSpec = {
  name: 'npm start --',
  usage: ['npm start -- [options]     (or: node dist/scripts/start.js [options])'],
  about: [
    'Starts a local RaftHouse cluster: per node one rafthouse (gateway + state machine) and one raftd.',
    'Options given at the first start are saved in DIR/cluster.json; later starts use them.',
  ],
  options: [
    { name: 'nodes', value: 'int', default: '3', help: 'number of nodes (1..9)' },
    { name: 'groups', value: 'int', default: '16', help: 'Raft data groups (1..4096)' },
    { name: 'data-dir', value: 'DIR', default: './rafthouse-data', help: 'everything lives here; a second start reuses it' },
    { name: 'base-port', value: 'int', default: '18123', help: 'node i uses ports P+10*(i-1) .. +4: +0 consistent endpoint, +1 local endpoint, +2 raftd client API, +3 raftd peer (gRPC), +4 state-machine API' },
    { name: 'clickhouse-url', value: 'URL[,URL]', help: 'ClickHouse servers instead of the embedded engine, one URL per node (credentials from CLICKHOUSE_USER / CLICKHOUSE_PASSWORD / CLICKHOUSE_READONLY_USER / CLICKHOUSE_READONLY_PASSWORD)' },
  ],
};

export class StartError extends Error {
  constructor(readonly code: 'USAGE' | 'PORT_IN_USE' | 'CONFIG_MISMATCH' | 'START_FAILED', message: string) {
    super(message);
  }
}

interface NodePorts {
  id: number;
  consistent: number;
  local: number;
  raftdHttp: number;
  raftPeer: number;
  app: number;
  clickhouseUrl?: string;
}

interface ClusterFile {
  version: 1;
  clusterId: string;
  groups: number;
  engine: 'embedded' | 'server';
  nodes: NodePorts[];
}

function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new StartError('USAGE', `--${name} must be an integer in ${min}..${max}, got "${v}"`);
  return n;
}

function planCluster(argv: string[]): { dir: string; cfg: ClusterFile; reused: boolean } | 'help' {
  let line: CommandLine;
  try {
    line = parseCommandLine(COMMAND, argv);
  } catch (e) {
    throw new StartError('USAGE', (e as Error).message);
  }
  if (line.help) return 'help';
  // The defaults apply to a new cluster only: an absent flag never contradicts a saved cluster.json.
  const flag = (name: string): string | undefined => {
    const v = line.flags.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  const values = { 'data-dir': flag('data-dir'), nodes: flag('nodes'), groups: flag('groups'), 'base-port': flag('base-port'), 'clickhouse-url': flag('clickhouse-url') };
  const dir = resolve(values['data-dir'] ?? 'rafthouse-data');
  const nodes = int('nodes', values.nodes, 1, 9);
  const groups = int('groups', values.groups, 1, 4096);
  const basePort = int('base-port', values['base-port'], 1024, 65000);
  const urls = values['clickhouse-url']?.split(',').map((s) => s.trim()).filter((s) => s);
  const file = join(dir, 'cluster.json');
  if (existsSync(file)) {
    const cfg = JSON.parse(readFileSync(file, 'utf8')) as ClusterFile;
    // A restart must keep the peers and the group count the data was created with.
    const mismatch = (what: string, asked: unknown, saved: unknown) =>
      new StartError('CONFIG_MISMATCH', `${dir} holds a cluster with ${what} ${String(saved)}; you asked for ${String(asked)} (use another --data-dir, or delete this one)`);
    if (nodes !== undefined && nodes !== cfg.nodes.length) throw mismatch('--nodes', nodes, cfg.nodes.length);
    if (groups !== undefined && groups !== cfg.groups) throw mismatch('--groups', groups, cfg.groups);
    if (basePort !== undefined && basePort !== cfg.nodes[0]!.consistent) throw mismatch('--base-port', basePort, cfg.nodes[0]!.consistent);
    if (urls !== undefined && urls.join(',') !== cfg.nodes.map((n) => n.clickhouseUrl ?? '').join(',')) {
      throw mismatch('--clickhouse-url', urls.join(','), cfg.nodes.map((n) => n.clickhouseUrl ?? 'embedded').join(','));
    }
    return { dir, cfg, reused: true };
  }
  const n = nodes ?? 3;
  const base = basePort ?? 18123;
  if (urls && urls.length !== n) {
    // Each replica needs its own ClickHouse: they all use the same database names (rh_g<g>), so replicas
    // sharing one server would write every row into the same tables three times.
    throw new StartError('USAGE', `--clickhouse-url needs one URL per node (${n}), got ${urls.length}: replicas sharing one ClickHouse server would collide on the same databases`);
  }
  const cfg: ClusterFile = {
    version: 1,
    clusterId: 'rafthouse-local',
    groups: groups ?? 16,
    engine: urls ? 'server' : 'embedded',
    nodes: Array.from({ length: n }, (_, i) => ({
      id: i + 1,
      consistent: base + 10 * i, local: base + 10 * i + 1, raftdHttp: base + 10 * i + 2, raftPeer: base + 10 * i + 3, app: base + 10 * i + 4,
      ...(urls ? { clickhouseUrl: urls[i]! } : {}),
    })),
  };
  return { dir, cfg, reused: false };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

async function checkPorts(cfg: ClusterFile): Promise<void> {
  for (const n of cfg.nodes) {
    for (const [what, port] of [['consistent endpoint', n.consistent], ['local endpoint', n.local], ['raftd client API', n.raftdHttp], ['raftd peer port', n.raftPeer], ['state-machine API', n.app]] as const) {
      if (!(await portFree(port))) {
        throw new StartError('PORT_IN_USE', `port ${port} (node ${n.id} ${what}) is in use: is a cluster already running on this data dir? Otherwise pick another --base-port with a new --data-dir`);
      }
    }
  }
}

/** A child with its output in a log file; warnings and errors also go to our stderr, prefixed. */
class Child {
  proc: ChildProcess | undefined;
  exited: Promise<number | null> = Promise.resolve(null);
  expectedExit = false;
  private log: WriteStream;
  private tail: string[] = [];

  constructor(
    readonly name: string,
    private readonly argv: string[],
    logPath: string,
    private readonly pidPath: string,
    /** True while peers coming and going is expected (start-up, shutdown): their warnings are noise then. */
    private readonly quiet: () => boolean,
    /** Added to our environment (secrets travel as *_FILE paths here, never as arguments). */
    private readonly env: Record<string, string> = {},
  ) {
    this.log = createWriteStream(logPath, { flags: 'a' });
  }

  start(onUnexpectedExit: (c: Child, code: number | null, signal: string | null) => void): void {
    // Own process group: Ctrl-C reaches only us, so we decide the shutdown order.
    // UV_THREADPOOL_SIZE: rafthouse holds one libuv thread per running ClickHouse call (docs/operations.md).
    const proc = spawn(process.execPath, this.argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { UV_THREADPOOL_SIZE: '64', ...process.env, ...this.env } });
    this.proc = proc;
    writeFileSync(this.pidPath, `${proc.pid}\n`);
    const onLine = (line: string) => {
      this.tail.push(line);
      if (this.tail.length > 20) this.tail.shift();
      const f = forward(line, this.quiet());
      if (f) process.stderr.write(`[${this.name}] ${f}\n`);
    };
    for (const s of [proc.stdout!, proc.stderr!]) {
      let buf = '';
      s.on('data', (d: Buffer) => {
        this.log.write(d);
        buf += d.toString('utf8');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    this.exited = new Promise((res) => proc.on('exit', (code, signal) => {
      rmSync(this.pidPath, { force: true });
      if (!this.expectedExit) onUnexpectedExit(this, code, signal);
      res(code);
    }));
  }

  lastLines(): string {
    return this.tail.slice(-5).join('\n');
  }

  running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs: number): Promise<number | null> {
    this.expectedExit = true;
    if (!this.running()) return this.proc?.exitCode ?? null;
    this.proc!.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  closeLog(): Promise<void> {
    return new Promise((res) => this.log.end(res));
  }
}

/**
 * The line to show on our stderr, or undefined. raftd logs pino JSON: warn (40) and above, shortened to
 * level, message and a few fields; "peer unreachable" is skipped while peers start or stop. rafthouse
 * logs plain lines: its errors are shown.
 */
function forward(line: string, quiet: boolean): string | undefined {
  if (!line.trim()) return undefined;
  if (line.startsWith('{')) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return line;
    }
    const level = typeof o.level === 'number' ? o.level : 0;
    if (level < 40 || (quiet && level < 50)) return undefined;
    const extra = Object.entries(o).filter(([k]) => !['level', 'time', 'msg', 'node', 'pid', 'hostname'].includes(k)).map(([k, v]) => `${k}=${typeof v === 'string' ? v.slice(0, 120) : JSON.stringify(v)}`);
    return `${level >= 50 ? 'error' : 'warn'}: ${String(o.msg ?? '')}${extra.length ? ` (${extra.join(', ')})` : ''}`;
  }
  return /error|fail|refus|EADDRINUSE|exception/i.test(line) ? line : undefined;
}

async function waitFor(url: string, timeoutMs: number, ok: (r: Response) => boolean | Promise<boolean>, dead: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = dead();
    if (d) throw new StartError('START_FAILED', d);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (await ok(r)) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new StartError('START_FAILED', `${url} did not become ready within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const plan = planCluster(process.argv.slice(2));
  if (plan === 'help') {
    process.stdout.write(renderHelp(COMMAND));
    return;
  }
  const { dir, cfg, reused } = plan;
  await checkPorts(cfg);
  for (const sub of ['logs', 'run']) mkdirSync(join(dir, sub), { recursive: true });
  if (!reused) writeFileSync(join(dir, 'cluster.json'), JSON.stringify(cfg, null, 2) + '\n');
  const peers = cfg.nodes.map((n) => `${n.id}=127.0.0.1:${n.raftPeer}`).join(',');
  // Every surface is authenticated: the cluster's secrets are made once (0600, kept across starts)
  // and reach each process as a file path, never on its command line.
  const secretsDir = join(dir, 'secrets');
  const secrets = ensureSecretsDir(secretsDir);
  process.stdout.write(`${reused ? 'Restarting' : 'Starting'} a ${cfg.nodes.length}-node RaftHouse (${cfg.groups} groups, ${cfg.engine} engine) in ${dir}\n`);

  const rafthouses: Child[] = [];
  const raftds: Child[] = [];
  let stopping = false;
  let ready = false;
  const quiet = () => stopping || !ready;
  const onUnexpectedExit = (c: Child, code: number | null, signal: string | null) => {
    if (stopping) return;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    // After start-up a dead node is not fatal: the others keep serving (that is the point of Raft).
    process.stderr.write(`[${c.name}] exited (${how})${ready ? '; the other nodes keep serving' : ''}. Last output:\n${c.lastLines()}\n`);
  };
  for (const n of cfg.nodes) {
    const nodeDir = join(dir, `node${n.id}`);
    mkdirSync(nodeDir, { recursive: true });
    const engineArgs = n.clickhouseUrl ? ['--engine', 'server', '--clickhouse-url', n.clickhouseUrl] : ['--engine', 'embedded', '--data-dir', join(nodeDir, 'clickhouse')];
    rafthouses.push(new Child(`rafthouse ${n.id}`, [...entry('clickhouse-adapter/main.ts'),
      '--app-listen', `127.0.0.1:${n.app}`, '--consistent-listen', `127.0.0.1:${n.consistent}`, '--local-listen', `127.0.0.1:${n.local}`,
      '--raftd-url', `http://127.0.0.1:${n.raftdHttp}`, '--groups', String(cfg.groups), ...engineArgs,
    ], join(dir, 'logs', `rafthouse${n.id}.log`), join(dir, 'run', `rafthouse-${n.id}.pid`), quiet,
    { RAFTD_APP_SECRET_FILE: secrets.appSecret, RAFTHOUSE_RAFTD_TOKEN_FILE: secrets.apiToken }));
    raftds.push(new Child(`raftd ${n.id}`, [...entry('daemon/main.ts'),
      '--id', String(n.id), '--cluster-id', cfg.clusterId, '--peers', peers, '--groups', String(cfg.groups),
      '--raft-addr', `127.0.0.1:${n.raftPeer}`, '--http-addr', `127.0.0.1:${n.raftdHttp}`, '--data-dir', join(nodeDir, 'raftd'),
      '--app-url', `http://127.0.0.1:${n.app}`, '--log-level', 'warn', '--secrets-dir', secretsDir,
      // Every group on every node: these rafthouses are not wired to each other (--internal-peers), and
      // --nodes may be above raftd's default of 3 replicas.
      '--replication-factor', '0',
    ], join(dir, 'logs', `raftd${n.id}.log`), join(dir, 'run', `raftd-${n.id}.pid`), quiet));
  }

  let finishing: Promise<void> | undefined;
  const shutdown = (code: number): Promise<void> => {
    finishing ??= (async () => {
      stopping = true;
      process.stdout.write('\nStopping: raftd first, then rafthouse ...\n');
      await Promise.all(raftds.map((c) => c.stop(15_000)));
      await Promise.all(rafthouses.map((c) => c.stop(15_000)));
      await Promise.all([...raftds, ...rafthouses].map((c) => c.closeLog()));
      process.stdout.write(`Stopped. Data kept in ${dir} (start again to reuse it).\n`);
      process.exit(code);
    })();
    return finishing;
  };
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) {
      // A second Ctrl-C: do not wait any longer.
      for (const c of [...raftds, ...rafthouses]) if (c.running()) c.proc!.kill('SIGKILL');
      process.exit(130);
    }
    void shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const deadChild = (cs: Child[]) => () => {
    const d = cs.find((c) => c.proc && !c.running());
    return d ? `${d.name} exited during start-up (see ${join(dir, 'logs')}):\n${d.lastLines()}` : undefined;
  };
  try {
    // The state-machine API must answer before raftd points --app-url at it.
    for (const c of rafthouses) c.start(onUnexpectedExit);
    await Promise.all(cfg.nodes.map((n) => waitFor(`http://127.0.0.1:${n.consistent}/ping`, 120_000, (r) => r.ok, deadChild(rafthouses))));
    for (const c of raftds) c.start(onUnexpectedExit);
    const all = [...raftds, ...rafthouses];
    // Healthy = every group of the node is in a quorum with a leader and the app answers.
    await Promise.all(cfg.nodes.map((n) => waitFor(`http://127.0.0.1:${n.raftdHttp}/raft-health`, 120_000, (r) => r.ok, deadChild(all))));
    await waitFor(`http://127.0.0.1:${cfg.nodes[0]!.consistent}/?query=SELECT%201`, 60_000, (r) => r.ok, deadChild(all));
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    await shutdown(1);
    return;
  }
  ready = true;
  const lines = [
    '',
    'RaftHouse is up.',
    '',
    '  node  consistent (writes, linearizable reads)  local (this replica, read-only)  raftd API',
    ...cfg.nodes.map((n) => `  ${String(n.id).padEnd(4)}  http://127.0.0.1:${n.consistent}`.padEnd(49) + `http://127.0.0.1:${n.local}`.padEnd(33) + `http://127.0.0.1:${n.raftdHttp}`),
    '',
    'Try:',
    `  curl 'http://127.0.0.1:${cfg.nodes[0]!.consistent}/' --data-binary 'CREATE TABLE IF NOT EXISTS hello (id UInt32, msg String) ENGINE = MergeTree ORDER BY id'`,
    `  curl 'http://127.0.0.1:${cfg.nodes[0]!.consistent}/?query=INSERT%20INTO%20hello%20FORMAT%20JSONEachRow' --data-binary '{"id":1,"msg":"hi"}'`,
    `  curl 'http://127.0.0.1:${cfg.nodes[cfg.nodes.length - 1]!.consistent}/' --data-binary 'SELECT * FROM hello'`,
    '',
    `raftd's API needs a bearer token (admin routes: ${secrets.adminToken}):`,
    `  curl -H "authorization: Bearer $(cat ${secrets.apiToken})" http://127.0.0.1:${cfg.nodes[0]!.raftdHttp}/status`,
    '',
    `Logs: ${join(dir, 'logs')}   PIDs: ${join(dir, 'run')}   Secrets: ${secretsDir}   Ctrl-C stops the cluster (data is kept).`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  process.stderr.write(`error: ${err instanceof StartError ? '' : 'internal: '}${err.message}\n`);
  process.exit(err instanceof StartError && err.code === 'USAGE' ? 2 : 1);
});
