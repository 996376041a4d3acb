// Real raftd processes on loopback for integration tests, benchmarks and chaos runs.
// Each node gets free ports and its own data directory; kill() is kill -9, stop() is SIGTERM.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/ports.js';
import { ensureSecretsDir, readSecretFile, type SecretName } from '../../protocol/secrets.js';

export { freePort };

const here = dirname(fileURLToPath(import.meta.url));
/** Compiled (<outDir>/test/integration, outDir being dist/ or another directory in the repo) or run through tsx. */
const compiled = fileURLToPath(import.meta.url).endsWith('.js');
/** Where the compiled tree is (its entry points are siblings of this file's tree). */
const OUT_DIR = resolve(here, '../..');
export const REPO_ROOT = compiled ? resolve(OUT_DIR, '..') : resolve(here, '../..');

/** The node command for one of the project's entry points, compiled or via tsx. */
export function entryCommand(tsPath: string): string[] {
  if (compiled) return [join(OUT_DIR, tsPath.replace(/\.ts$/, '.js'))];
  return ['--import', 'tsx', join(REPO_ROOT, tsPath)];
}

/** Waits until something answers HTTP at the URL (any status). */
export async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`nothing answered at ${url} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}


export interface NodeSpec {
  id: number;
  raftAddr: string;
  httpAddr: string;
  dataDir: string;
}

export interface ClusterOptions {
  nodes: number;
  groups?: number;
  appUrls?: (id: number) => string;
  extraArgs?: string[];
  /** Arguments for one node only, after extraArgs. */
  nodeExtraArgs?: (id: number) => string[];
  env?: Record<string, string>;
  tickMs?: number;
  electionTicks?: number;
  /** Keep each node's stdout/stderr in this directory (default: the cluster's temp dir). */
  logDir?: string;
  /** Run the reference KV adapter beside each node (its own process and data dir). */
  kvApp?: boolean;
  /** Extra arguments for node itself before the entry point, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** Run raftd with --insecure and no secrets (default: a generated secrets dir, as in production). */
  insecure?: boolean;
}

/** A cluster's secrets: the directory raftd reads with --secrets-dir, and each secret's value. */
export class ClusterSecrets {
  readonly paths: Record<SecretName, string>;
  constructor(readonly dir: string) {
    this.paths = ensureSecretsDir(dir);
  }
  value(name: SecretName): string {
    return readSecretFile(this.paths[name], name);
  }
  /** Environment for an application beside raftd (the SDK reads RAFTD_APP_SECRET_FILE). */
  appEnv(): Record<string, string> {
    return { RAFTD_APP_SECRET_FILE: this.paths.appSecret };
  }
  /** Environment for a client of raftd's API (the SDK client reads RAFTD_API_TOKEN_FILE). */
  clientEnv(): Record<string, string> {
    return { RAFTD_API_TOKEN_FILE: this.paths.apiToken };
  }
}

/** A child process of ours, with its output appended to a log file. */
export class ManagedProcess {
  proc: ChildProcess | undefined;
  private log: WriteStream | undefined;
  exited: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly name: string,
    private readonly entry: string,
    protected readonly args: string[],
    private readonly env: Record<string, string>,
    private readonly logPath: string,
    private readonly nodeArgs: string[] = [],
  ) {}

  start(): void {
    if (this.running()) throw new Error(`${this.name} is running`);
    this.log = createWriteStream(this.logPath, { flags: 'a' });
    const proc = spawn(process.execPath, [...this.nodeArgs, ...entryCommand(this.entry), ...this.args], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.pipe(this.log, { end: false });
    proc.stderr!.pipe(this.log, { end: false });
    this.proc = proc;
    this.exited = new Promise((res) => proc.on('exit', (code) => res(code)));
  }

  running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** kill -9: loses whatever was not fsynced. */
  async kill(): Promise<void> {
    if (!this.running()) return;
    this.proc!.kill('SIGCONT');
    this.proc!.kill('SIGKILL');
    await this.exited;
  }

  /** Graceful SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (!this.running()) return this.proc?.exitCode ?? null;
    this.proc!.kill('SIGTERM');
    return this.exited;
  }

  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  closeLog(): void {
    this.log?.end();
  }
}

export class RaftdNode extends ManagedProcess {
  /** The application process beside this node, when the cluster runs one. */
  app: ManagedProcess | undefined;
  /**
   * Bearer token get() and post() send: the admin token by default (it is valid on every route), so
   * tests reach admin routes; set to the client token (or '') to test what a client may do.
   */
  token = '';

  constructor(
    readonly spec: NodeSpec,
    args: string[],
    env: Record<string, string>,
    logPath: string,
    nodeArgs: string[] = [],
  ) {
    super(`raftd node ${spec.id}`, 'daemon/main.ts', args, env, logPath, nodeArgs);
  }

  get url(): string {
    return `http://${this.spec.httpAddr}`;
  }

  appUrl(): string | undefined {
    const i = this.args.indexOf('--app-url');
    return i >= 0 ? this.args[i + 1] : undefined;
  }

  async get(path: string): Promise<{ status: number; body: unknown }> {
    const res = await fetch(this.url + path, { headers: this.authHeaders(), signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* plain text (metrics) */
    }
    return { status: res.status, body };
  }

  /**
   * One series of the node's /metrics, e.g. `raftd_snapshots_taken_total` or
   * `raftd_errors_total{code="NO_LEADER"}`; 0 when the node has not reported it (a counter not hit yet).
   */
  async metric(series: string): Promise<number> {
    const text = String((await this.get('/metrics')).body);
    const line = text.split('\n').find((l) => l.startsWith(series + ' '));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  }

  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  async post(path: string, body: string | Uint8Array | object, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    return this.request('POST', path, body, headers);
  }

  /** Any method: an object body goes as JSON, bytes or a string as they are; the answer parsed when it is JSON. */
  async request(method: string, path: string, body?: string | Uint8Array | object, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const json = typeof body === 'object' && !(body instanceof Uint8Array);
    const res = await fetch(this.url + path, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': json ? 'application/json' : 'application/octet-stream' }), ...this.authHeaders(), ...headers },
      ...(body === undefined ? {} : { body: json ? JSON.stringify(body) : body }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: text };
    }
  }

}

export class LocalCluster {
  readonly nodes: RaftdNode[] = [];
  readonly dir: string;
  /** Undefined for an --insecure cluster. */
  readonly secrets: ClusterSecrets | undefined;

  private constructor(dir: string, insecure: boolean) {
    this.dir = dir;
    this.secrets = insecure ? undefined : new ClusterSecrets(join(dir, 'secrets'));
  }

  /** The client API token ('' for an --insecure cluster), e.g. for RaftdClient's `token`. */
  clientToken(): string {
    return this.secrets ? this.secrets.value('apiToken') : '';
  }

  /** Headers of a raftd client (the client API token, not the admin one). */
  clientHeaders(): Record<string, string> {
    return this.secrets ? { authorization: `Bearer ${this.secrets.value('apiToken')}` } : {};
  }

  static async create(opts: ClusterOptions): Promise<LocalCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'raftd-cluster-'));
    const c = new LocalCluster(dir, opts.insecure === true);
    const specs: NodeSpec[] = [];
    for (let id = 1; id <= opts.nodes; id++) {
      specs.push({ id, raftAddr: `127.0.0.1:${await freePort()}`, httpAddr: `127.0.0.1:${await freePort()}`, dataDir: join(dir, `node${id}`) });
    }
    const peers = specs.map((s) => `${s.id}=${s.raftAddr}`).join(',');
    for (const s of specs) c.nodes.push(await c.makeNode(s, ['--peers', peers, '--groups', String(opts.groups ?? 1)], opts));
    return c;
  }

  async makeNode(s: NodeSpec, roleArgs: string[], opts: ClusterOptions): Promise<RaftdNode> {
    let app: ManagedProcess | undefined;
    let appUrl: string | undefined;
    if (opts.kvApp) {
      const listen = `127.0.0.1:${await freePort()}`;
      app = new ManagedProcess(`kv app ${s.id}`, 'adapters/kv/main.ts', ['--listen', listen, '--data-dir', `${s.dataDir}-kv`], this.secrets?.appEnv() ?? {}, join(opts.logDir ?? this.dir, `kv${s.id}.log`));
      appUrl = `http://${listen}`;
    } else if (opts.appUrls) appUrl = opts.appUrls(s.id);
    const args = [
      '--id', String(s.id), '--raft-addr', s.raftAddr, '--http-addr', s.httpAddr, '--data-dir', s.dataDir,
      '--tick-ms', String(opts.tickMs ?? 50), '--election-ticks', String(opts.electionTicks ?? 10),
      '--log-level', 'warn',
      ...(this.secrets ? ['--secrets-dir', this.secrets.dir] : ['--insecure']),
      ...(appUrl ? ['--app-url', appUrl] : []),
      ...roleArgs,
      ...(opts.extraArgs ?? []),
      ...(opts.nodeExtraArgs?.(s.id) ?? []),
    ];
    const node = new RaftdNode(s, args, opts.env ?? {}, join(opts.logDir ?? this.dir, `node${s.id}.log`), opts.nodeArgs ?? []);
    node.app = app;
    if (this.secrets) node.token = this.secrets.value('adminToken');
    return node;
  }

  /** A new node that joins through an existing member's HTTP address. */
  async addJoiner(id: number, via: RaftdNode, opts: ClusterOptions): Promise<RaftdNode> {
    const s: NodeSpec = { id, raftAddr: `127.0.0.1:${await freePort()}`, httpAddr: `127.0.0.1:${await freePort()}`, dataDir: join(this.dir, `node${id}`) };
    const n = await this.makeNode(s, ['--join', via.spec.httpAddr], opts);
    this.nodes.push(n);
    return n;
  }

  /** Starts every application, waits until each answers, then starts every raftd. */
  async startAll(): Promise<void> {
    for (const n of this.nodes) n.app?.start();
    await Promise.all(this.nodes.map((n) => (n.app ? waitForHttp(n.appUrl()!, 20_000) : undefined)));
    for (const n of this.nodes) n.start();
  }

  node(id: number): RaftdNode {
    const n = this.nodes.find((x) => x.spec.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Waits until every running node answers its client API. */
  async waitForApi(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const n of this.nodes.filter((x) => x.running())) {
      for (;;) {
        try {
          if ((await n.get('/status')).status === 200) break;
        } catch {
          /* not listening yet */
        }
        if (Date.now() > deadline) throw new Error(`node ${n.spec.id} did not answer within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Waits until every listed group has a leader that all running nodes agree on. */
  async waitForLeaders(groups: number[], timeoutMs: number): Promise<Map<number, number>> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const leaders = new Map<number, number>();
      let ok = true;
      for (const n of this.nodes.filter((x) => x.running())) {
        let st: { groups: Array<{ group: number; leader: number }> };
        try {
          st = (await n.get('/status')).body as typeof st;
        } catch {
          ok = false;
          break;
        }
        const byGroup = new Map(st.groups.map((g) => [g.group, g.leader]));
        for (const g of groups) {
          const l = byGroup.get(g);
          if (!l) {
            ok = false;
            last = `node ${n.spec.id} sees no leader for group ${g}`;
            break;
          }
          if (leaders.has(g) && leaders.get(g) !== l) {
            ok = false;
            last = `nodes disagree on group ${g}`;
            break;
          }
          leaders.set(g, l);
        }
        if (!ok) break;
      }
      if (ok && leaders.size === groups.length) return leaders;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no stable leaders within ${timeoutMs} ms: ${last}`);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    await Promise.all(this.nodes.map((n) => n.app?.kill()));
    for (const n of this.nodes) {
      n.closeLog();
      n.app?.closeLog();
    }
    if (!process.env.RAFTD_KEEP_TEST_DIRS) rmSync(this.dir, { recursive: true, force: true });
  }
}
