// One rafthouse node in one process (chdb allows one data directory per process): the state machine
// served to raftd, the gateway's consistent and local endpoints, and the raftd client they share.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStateMachine } from '../../adapters/sdk/server.js';
import { RaftdClient } from '../../adapters/sdk/client.js';
import { MODE_REQUIREMENTS, openEmbedded, openServer, requireCapabilities } from '../engine/index.js';
import type { ClickHouseEngine } from '../engine/index.js';
import { ClickHouseStateMachine } from '../statemachine/statemachine.js';
import { APPLIED_DIR } from '../statemachine/applied-file.js';
import { checkMembers, watchStuckEntries } from '../statemachine/abandon.js';
import { HashRing } from '../router/ring.js';
import { Gateway, loadNondeterministic } from './gateway.js';
import { GatewayHttp } from './http.js';
import { CutReader } from './cut.js';
import { SqlParser } from './parse.js';
import type { ReadLimits } from './limits.js';
import { HoldTable } from '../placed/holds.js';
import { InternalServer } from '../placed/server.js';
import { PlacedGroups } from '../placed/groups.js';

export interface RafthouseConfig {
  appListen: string;
  consistentListen: string;
  localListen: string;
  consistentHosts: string[];
  localHosts: string[];
  raftdUrls: string[];
  raftdToken?: string;
  /** The secret raftd proves on every state-machine API call (absent: --insecure, calls are not checked). */
  appSecret?: string;
  engine: 'embedded' | 'server';
  dataDir: string;
  clickhouseUrl?: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  /** Server engine: a user whose profile is read-only, for the local endpoint and all reads. */
  clickhouseReadonlyUser?: string;
  clickhouseReadonlyPassword?: string;
  groups: number;
  vnodes: number;
  database: string;
  users: Map<string, string>;
  /** Read limits for everyone (flags), and per user from --users-file (only the limits it names). */
  readLimits: ReadLimits;
  userLimits: Map<string, Partial<ReadLimits>>;
  maxConcurrentQueries: number;
  /** Client sessions (session_id) open at once on this node. */
  maxSessions: number;
  /** The largest session_timeout a client may ask for, seconds. */
  maxSessionTimeout: number;
  maxBodyBytes: number;
  dedupWindow: number;
  viewSyncMs: number;
  /** Table functions reads may call besides the pure ones (lower case); never writes (rules/reads.ts). */
  allowTableFunctions?: string[];
  /** Multi-group consistent reads as one cut (gateway/cut.ts); false only to show what it prevents. */
  consistentCut: boolean;
  /** Placed groups (issue 21): where this node serves other nodes' holds and leg reads (HOST:PORT). */
  internalListen?: string;
  /** Placed groups: node id -> base URL of that node's internal endpoint (every node, this one included). */
  internalPeers?: Map<number, string>;
  /** The secret the internal endpoints prove to each other (default: the app secret). */
  internalSecret?: string;
}

export interface RunningNode {
  appUrl: string;
  consistentAddr: string;
  localAddr: string;
  version: string;
  /** The internal endpoint (placed groups), when served. */
  internalAddr?: string;
  close(): Promise<void>;
}

function hostPort(s: string, flag: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) throw Object.assign(new Error(`${flag} must be HOST:PORT, got ${s}`), { code: 'USAGE' });
  return { host: m[1]!, port: Number(m[2]) };
}

export async function startRafthouse(cfg: RafthouseConfig, log: (m: string) => void = () => {}): Promise<RunningNode> {
  const closers: Array<[string, () => Promise<void> | void]> = [];
  const add = (name: string, f: () => Promise<void> | void) => closers.push([name, f]);
  // Each part gets a bounded time to close, so one stuck part (a peer holding a connection) cannot
  // keep the process alive after SIGTERM.
  const closeAll = async () => {
    for (const [name, c] of closers.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), 3000); });
      try {
        if ((await Promise.race([Promise.resolve().then(c), late])) === 'late') log(`closing ${name} took more than 3 s; going on`);
      } catch (e) {
        log(`closing ${name}: ${(e as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
  };
  try {
    let engine: ClickHouseEngine;
    let readEngine: ClickHouseEngine;
    let parserEngine: ClickHouseEngine;
    if (cfg.engine === 'embedded') {
      engine = await openEmbedded({ dataDir: cfg.dataDir });
      add('engine', () => engine.close());
      // readonly=2: per-query settings allowed, writes and `readonly` changes refused by ClickHouse.
      readEngine = await openEmbedded({ dataDir: cfg.dataDir, readonly: true, allowSettings: true });
      add('read engine', () => readEngine.close());
      parserEngine = readEngine;
    } else {
      if (!cfg.clickhouseUrl) throw Object.assign(new Error('--engine server needs --clickhouse-url'), { code: 'USAGE' });
      engine = await openServer({ url: cfg.clickhouseUrl, ...(cfg.clickhouseUser ? { username: cfg.clickhouseUser } : {}), ...(cfg.clickhousePassword ? { password: cfg.clickhousePassword } : {}) });
      add('engine', () => engine.close());
      if (!cfg.clickhouseReadonlyUser) throw Object.assign(new Error('--engine server needs --clickhouse-readonly-user (a user whose profile has readonly=2) for reads and the local endpoint'), { code: 'USAGE' });
      readEngine = await openServer({ url: cfg.clickhouseUrl, username: cfg.clickhouseReadonlyUser, ...(cfg.clickhouseReadonlyPassword ? { password: cfg.clickhouseReadonlyPassword } : {}) });
      add('read engine', () => readEngine.close());
      if (!readEngine.readonly) throw Object.assign(new Error(`ClickHouse user ${cfg.clickhouseReadonlyUser} is not read-only: the local endpoint must be read-only by ClickHouse itself`), { code: 'USAGE' });
      // The parser is always ClickHouse's own: a small parser-only chdb session on a scratch directory.
      const dir = mkdtempSync(join(tmpdir(), 'rafthouse-parser-'));
      parserEngine = await openEmbedded({ dataDir: dir, readonly: true, allowSettings: true });
      add('parser engine', async () => { await parserEngine.close(); rmSync(dir, { recursive: true, force: true }); });
    }
    requireCapabilities(engine, MODE_REQUIREMENTS['RaftHouse exactly-once apply'], 'RaftHouse exactly-once apply');
    requireCapabilities(engine, MODE_REQUIREMENTS['RaftHouse snapshots'], 'RaftHouse snapshots');

    // The embedded engine lives in this process: its per-batch index record can be a file (applied-file.ts).
    const sm = new ClickHouseStateMachine({
      engine, dedupWindow: cfg.dedupWindow, log, parserEngine, ...(cfg.engine === 'embedded' ? { appliedDir: join(cfg.dataDir, APPLIED_DIR) } : {}),
      ...(cfg.appSecret ? { abandonSecret: cfg.appSecret } : {}),
    });
    delayAppliesForTests(sm, process.env.RAFTHOUSE_TEST_APPLY_DELAY, log);
    const app = hostPort(cfg.appListen, '--app-listen');
    // Refuses every call not signed with the app secret (adapters/sdk/server.ts); without one, main.ts
    // only got here with --insecure.
    const served = await serveStateMachine(sm, { host: app.host, port: app.port, ...(cfg.appSecret ? { appSecret: cfg.appSecret } : { insecure: true }) });
    add('state machine server', () => served.close());

    // routeToLeader: the gateway runs beside raftd, so every node's --http-addr is reachable from here;
    // a single-group insert then goes straight to its group's leader instead of through this node's raftd.
    const raftd = new RaftdClient({ url: cfg.raftdUrls, ...(cfg.raftdToken ? { token: cfg.raftdToken } : {}), timeoutMs: 15_000, routeToLeader: true });
    add('raftd client', () => raftd.close());
    // Entries that keep failing for a reason outside them on every member are given up through the log,
    // decided by the group leader's node: its own raftd only (the first --raftd-url), so that isLeader is
    // about this node. Abandon entries need the app secret's MAC: without a secret (--insecure) there is
    // no watch, and a stuck entry stays stuck (docs/design-notes.md, "No poison entries").
    if (cfg.appSecret) {
      const secret = cfg.appSecret;
      const localRaftd = new RaftdClient({ url: cfg.raftdUrls.slice(0, 1), ...(cfg.raftdToken ? { token: cfg.raftdToken } : {}), timeoutMs: 15_000 });
      add('raftd client (abandon)', () => localRaftd.close());
      const peerClients = new Map<string, RaftdClient>();
      const peerClient = (httpAddr: string): RaftdClient => {
        let c = peerClients.get(httpAddr);
        if (!c) {
          c = new RaftdClient({ url: `http://${httpAddr}`, ...(cfg.raftdToken ? { token: cfg.raftdToken } : {}), timeoutMs: 2000 });
          peerClients.set(httpAddr, c);
        }
        return c;
      };
      add('raftd peer clients', () => { for (const c of peerClients.values()) c.close(); });
      add('abandon watch', watchStuckEntries({
        stuck: () => sm.stuckEntries(), raftd: localRaftd, secret, log, checkMembers: checkMembers(localRaftd, peerClient, secret),
      }));
    } else {
      log('no app secret (--insecure): entries that keep failing are never abandoned; a stuck group stays stuck until its cause is fixed');
    }
    const ring = await HashRing.create({ groups: cfg.groups, vnodes: cfg.vnodes });
    const parser = new SqlParser(parserEngine);
    const nondeterministic = await loadNondeterministic(parserEngine);
    // The state machine runs in this process: its applied indexes let consistent reads overlap their barrier.
    // The cut holds apply in this process's state machine and confirms with a ReadIndex of its own per
    // group and round (not the gateway's shared barrier, which may queue behind one in flight: every ms
    // the ReadIndex takes to reach the leader widens the window in which a commit fails the round).
    // Placed groups (issue 21): the groups this node holds come from its own raftd's placement; a
    // cut's hold of a group held elsewhere is taken on a member's internal endpoint.
    const internalSecret = cfg.internalSecret ?? cfg.appSecret;
    // Not wired (no --internal-peers): the placement is still watched, so that a raftd placing groups on
    // other nodes only is said in the log and consistent reads needing those groups are refused rather
    // than answered from the groups here alone (gateway.refuseUnwiredPartialRead). Not awaited: raftd
    // usually starts after its application, and a later join can change the placement anyway.
    const wired = cfg.internalPeers !== undefined && cfg.internalPeers.size > 0;
    if (wired && !internalSecret) throw Object.assign(new Error('--internal-peers needs the cluster\'s internal secret (--internal-secret-file, or the app secret)'), { code: 'USAGE' });
    const ownRaftd = new RaftdClient({ url: cfg.raftdUrls.slice(0, 1), ...(cfg.raftdToken ? { token: cfg.raftdToken } : {}), timeoutMs: 5_000 });
    add('raftd client (placement)', () => ownRaftd.close());
    const placed = new PlacedGroups({ raftd: ownRaftd, peers: wired ? cfg.internalPeers! : new Map(), secret: internalSecret ?? '', groups: cfg.groups, local: sm, log });
    if (wired) await placed.start();
    else void placed.start();
    add('placement watch', () => placed.stop());
    const cut = cfg.consistentCut || wired
      ? new CutReader({ hold: (groups) => (wired ? placed.hold(groups) : sm.holdApply(groups)), readIndex: (g) => raftd.barrier(g, 'linearizable'), skipCheck: !cfg.consistentCut })
      : undefined;
    const gateway = new Gateway({ engine, readEngine, parser, raftd, ring, userDb: cfg.database, nondeterministic, localApplied: (g) => sm.appliedIndexNow(g),
      schemaGeneration: () => sm.schemaGeneration(), maxConcurrentQueries: cfg.maxConcurrentQueries,
      sessions: { maxSessions: cfg.maxSessions, maxTimeoutSeconds: cfg.maxSessionTimeout, defaultTimeoutSeconds: Math.min(60, cfg.maxSessionTimeout) },
      limits: (user) => ({ ...cfg.readLimits, ...(cfg.userLimits.get(user) ?? {}) }),
      ...(cfg.allowTableFunctions?.length ? { allowTableFunctions: new Set(cfg.allowTableFunctions) } : {}), ...(cut ? { cut } : {}),
      placed });
    add('gateway sessions', () => gateway.sessions.close());
    add('query log', async () => { await gateway.queryLog?.close(); });
    await gateway.views.sync();
    await gateway.queryLog?.flush(); // creates its table now, not under the first queries
    const timer = setInterval(() => void gateway.views.sync().catch((e: Error) => log(`view sync: ${e.message}`)), cfg.viewSyncMs);
    timer.unref();
    add('view timer', () => clearInterval(timer));

    const timezone = (await readEngine.query('SELECT timezone()', { format: 'TSVRaw' })).toString('utf8').trim() || 'UTC';
    const httpServer = new GatewayHttp({
      gateway, users: cfg.users, version: engine.capabilities.version, maxBodyBytes: cfg.maxBodyBytes, consistentHosts: cfg.consistentHosts, localHosts: cfg.localHosts, log, timezone,
    });
    add('gateway http', () => httpServer.close());
    const c = hostPort(cfg.consistentListen, '--consistent-listen');
    const l = hostPort(cfg.localListen, '--local-listen');
    const consistentAddr = await httpServer.listen('consistent', c.host, c.port);
    const localAddr = await httpServer.listen('local', l.host, l.port);
    let internalAddr: string | undefined;
    if (cfg.internalListen) {
      if (!internalSecret) throw Object.assign(new Error('--internal-listen needs the cluster\'s internal secret (--internal-secret-file, or the app secret): the endpoint refuses every call without it'), { code: 'USAGE' });
      const internal = new InternalServer({ secret: internalSecret, holds: new HoldTable(sm), readEngine, parser, groups: cfg.groups, log });
      add('internal endpoint', () => internal.close());
      const i = hostPort(cfg.internalListen, '--internal-listen');
      internalAddr = await internal.listen(i.host, i.port);
    }
    return { appUrl: served.url, consistentAddr, localAddr, ...(internalAddr ? { internalAddr } : {}), version: engine.capabilities.version, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/**
 * Tests only (test/integration/rafthouse/cut.test.ts): RAFTHOUSE_TEST_APPLY_DELAY="G:MS,..." makes this
 * replica wait MS before each batch of group G (outside the group lock), so its groups trail their
 * leaders by different lags — the skew a slow or paused replica has, on demand. Never set in production.
 */
function delayAppliesForTests(sm: ClickHouseStateMachine, spec: string | undefined, log: (m: string) => void): void {
  if (!spec) return;
  const delays = new Map<number, number>();
  for (const item of spec.split(',')) {
    const m = /^\s*(\d+):(\d+)\s*$/.exec(item);
    if (!m || Number(m[2]) > 10_000) throw Object.assign(new Error(`RAFTHOUSE_TEST_APPLY_DELAY: "${item}" is not GROUP:MS (MS <= 10000)`), { code: 'USAGE' });
    delays.set(Number(m[1]), Number(m[2]));
  }
  log(`TEST ONLY: applies delayed (${spec})`);
  const apply = sm.applyBatch.bind(sm);
  sm.applyBatch = async (group, entries) => {
    const ms = delays.get(group);
    if (ms) await new Promise((r) => setTimeout(r, ms));
    return apply(group, entries);
  };
}
