// A real RaftHouse cluster on loopback for tests and benchmarks: N raftd processes (LocalCluster) and,
// beside each, one `rafthouse` process (state machine + gateway, embedded chdb on its own directory).

import { join } from 'node:path';
import { LocalCluster, ManagedProcess, freePort, waitForHttp, type ClusterOptions } from '../cluster.js';

/** What docs/operations.md tells operators to run rafthouse with (one libuv thread per running ClickHouse call). */
export const RAFTHOUSE_ENV: Record<string, string> = { UV_THREADPOOL_SIZE: '64' };

export interface RafthouseNode {
  id: number;
  proc: ManagedProcess;
  appPort: number;
  consistentUrl: string;
  localUrl: string;
  /** The internal endpoint (placed groups), when the cluster was started with `placed`. */
  internalUrl?: string;
}

export interface RafthouseClusterOptions {
  nodes?: number;
  groups: number;
  /** Extra rafthouse flags. */
  args?: string[];
  tickMs?: number;
  /** Arguments for node itself before each rafthouse entry point (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** The same for each raftd. */
  raftNodeArgs?: string[];
  /** Extra raftd flags (after the harness's own). */
  raftArgs?: string[];
  /** Extra environment of each raftd (e.g. RAFTD_TEST_HOOKS=faults). */
  raftEnv?: Record<string, string>;
  /** Extra environment of each rafthouse (e.g. RAFTHOUSE_USERS: secrets are not flags). */
  env?: Record<string, string>;
  /** Extra environment of one rafthouse (after env). */
  nodeEnv?: (id: number) => Record<string, string>;
  /** Placed groups (issue 21): every rafthouse serves --internal-listen and knows every node's (--internal-peers). */
  placed?: boolean;
  /** raftd places groups (raftArgs --replication-factor) but the rafthouses get no internal flags: the operator's mistake. */
  placedUnwired?: boolean;
  /** Node ids beyond `nodes` that may join later (addNode): their ports are known to every node from the start. */
  spare?: number;
}

/** Placed groups: every group (and the meta group) has a leader its own members see; other nodes hold no replica. */
async function waitForPlacedLeaders(raft: LocalCluster, groups: number, timeoutMs: number): Promise<void> {
  await raft.waitForLeaders([0], timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const led = new Set<number>();
    for (const n of raft.nodes.filter((x) => x.running())) {
      const st = (await n.get('/status').catch(() => undefined))?.body as { groups?: Array<{ group: number; leader: number }> } | undefined;
      for (const g of st?.groups ?? []) if (g.leader) led.add(g.group);
    }
    if (Array.from({ length: groups }, (_, i) => i + 1).every((g) => led.has(g))) return;
    if (Date.now() > deadline) throw new Error(`groups without a leader after ${timeoutMs} ms: ${Array.from({ length: groups }, (_, i) => i + 1).filter((g) => !led.has(g)).join(',')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class RafthouseCluster {
  private constructor(readonly raft: LocalCluster, readonly nodes: RafthouseNode[], private readonly make?: (id: number) => Promise<RafthouseNode>,
    private readonly raftOpts?: ClusterOptions) {}

  /**
   * A spare node (RafthouseClusterOptions.spare) joins: its rafthouse starts, then its raftd with
   * --join through node 1 (the rebalancer then adds it to the meta group and moves replicas to it).
   */
  async addNode(id: number): Promise<RafthouseNode> {
    if (!this.make || !this.raftOpts) throw new Error('addNode: the cluster was started without spare nodes');
    const joiner = await this.raft.addJoiner(id, this.raft.node(1), this.raftOpts);
    const x = await this.make(id);
    this.nodes.push(x);
    x.proc.start();
    await waitForHttp(`${x.consistentUrl}/ping`, 60_000);
    joiner.start();
    return x;
  }

  static async start(opts: RafthouseClusterOptions): Promise<RafthouseCluster> {
    const n = opts.nodes ?? 3;
    const all = n + (opts.spare ?? 0);
    const appPorts = new Map<number, number>();
    for (let id = 1; id <= all; id++) appPorts.set(id, await freePort());
    const raftOpts: ClusterOptions = {
      nodes: n, groups: opts.groups, tickMs: opts.tickMs ?? 50, appUrls: (id) => `http://127.0.0.1:${appPorts.get(id)!}`,
      extraArgs: ['--snapshot-interval', '1000000', ...(opts.raftArgs ?? [])], nodeArgs: opts.raftNodeArgs ?? [],
      ...(opts.raftEnv ? { env: opts.raftEnv } : {}),
    };
    const raft = await LocalCluster.create(raftOpts);
    const nodes: RafthouseNode[] = [];
    const internal = new Map<number, string>();
    if (opts.placed) for (let id = 1; id <= all; id++) internal.set(id, `http://127.0.0.1:${await freePort()}`);
    const peers = [...internal].map(([id, u]) => `${id}=${u}`).join(',');
    const make = async (id: number): Promise<RafthouseNode> => {
      const cport = await freePort();
      const lport = await freePort();
      const args = [
        '--app-listen', `127.0.0.1:${appPorts.get(id)!}`,
        '--consistent-listen', `127.0.0.1:${cport}`, '--local-listen', `127.0.0.1:${lport}`,
        '--raftd-url', raft.node(id).url, '--groups', String(opts.groups), '--data-dir', join(raft.dir, `ch${id}`),
        ...(opts.placed ? ['--internal-listen', internal.get(id)!.replace('http://', ''), '--internal-peers', peers] : []),
        ...(opts.args ?? []),
      ];
      const env: Record<string, string> = raft.secrets
        ? { ...raft.secrets.appEnv(), RAFTHOUSE_RAFTD_TOKEN_FILE: raft.secrets.paths.apiToken }
        : { RAFTHOUSE_INSECURE: '1' };
      Object.assign(env, RAFTHOUSE_ENV);
      Object.assign(env, opts.env ?? {}, opts.nodeEnv?.(id) ?? {});
      const proc = new ManagedProcess(`rafthouse ${id}`, 'clickhouse-adapter/main.ts', args, env, join(raft.dir, `rafthouse${id}.log`), opts.nodeArgs ?? []);
      return { id, proc, appPort: appPorts.get(id)!, consistentUrl: `http://127.0.0.1:${cport}`, localUrl: `http://127.0.0.1:${lport}`, ...(opts.placed ? { internalUrl: internal.get(id)! } : {}) };
    };
    try {
      for (let id = 1; id <= n; id++) nodes.push(await make(id));
      const c = new RafthouseCluster(raft, nodes, make, raftOpts);
      for (const x of nodes) x.proc.start();
      await Promise.all(nodes.map((x) => waitForHttp(`${x.consistentUrl}/ping`, 60_000)));
      await raft.startAll();
      await raft.waitForApi(60_000);
      if (opts.placed || opts.placedUnwired) await waitForPlacedLeaders(raft, opts.groups, 60_000);
      else await raft.waitForLeaders(Array.from({ length: opts.groups + 1 }, (_, i) => i), 60_000);
      return c;
    } catch (e) {
      await Promise.all(nodes.map((x) => x.proc.kill()));
      for (const x of nodes) x.proc.closeLog();
      await raft.destroy();
      throw e;
    }
  }

  /** With `graceful`, raftd gets SIGTERM too (it then writes what --cpu-prof collected). */
  async destroy(graceful = false): Promise<void> {
    // raftd first (it calls the state machine), then each rafthouse with SIGTERM, kill -9 if it lingers.
    await Promise.all(this.raft.nodes.map(async (n) => {
      if (!graceful) return n.kill();
      const t = setTimeout(() => void n.kill(), 10_000);
      await n.stop();
      clearTimeout(t);
    }));
    await Promise.all(this.nodes.map(async (x) => {
      const t = setTimeout(() => void x.proc.kill(), 10_000);
      await x.proc.stop();
      clearTimeout(t);
    }));
    for (const x of this.nodes) x.proc.closeLog();
    await this.raft.destroy();
  }
}
