#!/usr/bin/env node
// The `raftd` command: wires storage, transport, the application and the client API around
// the multi-group host, and shuts all of it down cleanly on SIGTERM / SIGINT.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import pino from 'pino';
import { ConfigError, helpText, loadConfig, parseHostPort, type RaftdConfig } from './config.js';
import { LogStore, PeerIncarnations } from './storage/index.js';
import { GrpcTransport } from './transport/index.js';
import { AppClient, GroupApplier, type ApplyTarget } from './statemachine/index.js';
import { realClock } from './clock.js';
import { Host } from './host/host.js';
import { MemoryApp } from './host/memory-app.js';
import type { ApplierFactory, AppPort, GroupMessage } from './host/ports.js';
import { buildApi, API_DEFAULTS } from './api/server.js';
import { FaultLayer, enabledTestHooks, TEST_HOOKS_ENV } from './test-hooks.js';
import { ensureSecretsDir } from '../protocol/secrets.js';

function fail(message: string): never {
  process.stderr.write(`raftd: ${message}\n`);
  process.exit(2);
}

async function joinCluster(cfg: RaftdConfig, fresh: boolean): Promise<Map<number, string>> {
  const res = await fetch(`http://${cfg.join}/v1/nodes`, {
    method: 'POST',
    // Registering a node is an admin action.
    headers: { 'content-type': 'application/json', ...(cfg.adminToken ? { authorization: `Bearer ${cfg.adminToken}` } : {}) },
    body: JSON.stringify({ id: cfg.id, raftAddr: cfg.raftAddr, httpAddr: cfg.httpAddr, fresh, ...(cfg.zone ? { zone: cfg.zone } : {}) }),
    signal: AbortSignal.timeout(15_000),
  }).catch((e: Error) => fail(`--join ${cfg.join}: ${e.message}`));
  const body = (await res.json().catch(() => ({}))) as { nodes?: Array<{ id: number; raftAddr: string }>; error?: { message: string } };
  if (!res.ok || !body.nodes) fail(`--join ${cfg.join} refused: ${body.error?.message ?? res.status}`);
  return new Map(body.nodes.map((n) => [n.id, n.raftAddr]));
}

/** Binds HOST:PORT and lets go at once: the address is free now (EADDRINUSE, EADDRNOTAVAIL otherwise). */
async function checkListenable(addr: string): Promise<void> {
  const { host, port } = parseHostPort(addr, '--http-addr');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'EADDRINUSE' ? 'address already in use (another process listens there)' : `cannot listen: ${e.code ?? e.message}`)));
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText());
    return;
  }
  if (argv[0] === '--generate-secrets') {
    if (argv.length !== 2) fail('usage: raftd --generate-secrets DIR');
    const paths = ensureSecretsDir(argv[1]!);
    process.stdout.write(`raftd: secrets in ${argv[1]} (existing files kept): ${Object.values(paths).join(' ')}\n`);
    return;
  }
  let cfg: RaftdConfig;
  try {
    cfg = loadConfig(argv, process.env);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message);
    throw e;
  }
  const logger = pino({ level: cfg.logLevel, base: { node: cfg.id } });
  const testHooks = (() => {
    try {
      return enabledTestHooks(process.env);
    } catch (e) {
      return fail((e as Error).message);
    }
  })();
  if (testHooks.size > 0) logger.warn({ hooks: [...testHooks] }, `TEST HOOKS ENABLED (${TEST_HOOKS_ENV}): this node drops messages or answers wrongly on purpose; tests only`);
  if (cfg.insecure) {
    logger.warn('--insecure: NO AUTHENTICATION on any surface (client API, admin routes, peers, application); anyone who reaches a port can propose, read, change membership or forge Raft messages. Throwaway test clusters only.');
  }
  // Before anything is opened: a taken --http-addr is a configuration error (one line, exit 2), not a
  // half-started node whose log store is already closing under it.
  await checkListenable(cfg.httpAddr).catch((e: Error) => fail(`--http-addr ${cfg.httpAddr}: ${e.message}`));
  mkdirSync(cfg.dataDir, { recursive: true });
  // Early builds kept the RocksDB files in --data-dir itself. Opening DIR/log beside them would start
  // an empty node (peers would then refuse it as a replaced disk): say what to do instead.
  if (existsSync(join(cfg.dataDir, 'CURRENT')) && !existsSync(join(cfg.dataDir, 'log'))) {
    fail(`data dir ${cfg.dataDir} holds a log store in the old layout (RocksDB files directly in it); stop raftd, move those files into ${join(cfg.dataDir, 'log')}/ and start again`);
  }

  // The log store owns its directory; snapshots in transit get their own beside it.
  const store = await LogStore.open({ dir: join(cfg.dataDir, 'log'), nodeId: cfg.id, clusterId: cfg.clusterId }).catch((e: Error) =>
    fail(`data dir ${cfg.dataDir}: ${e.message}`),
  );
  const snapshotDir = join(cfg.dataDir, 'snapshots');
  rmSync(snapshotDir, { recursive: true, force: true }); // partial transfers of a previous run
  mkdirSync(snapshotDir, { recursive: true });

  let app: AppPort & ApplyTarget;
  if (cfg.appUrl === 'memory:') app = new MemoryApp();
  else {
    const client = new AppClient({ appUrl: cfg.appUrl, logger, ...(cfg.appSecret !== '' ? { secret: cfg.appSecret } : {}) });
    const proto = await client.connect();
    logger.info({ appUrl: cfg.appUrl, protocol: proto.protocol }, 'application connected');
    app = client;
  }
  const target = app;
  const makeApplier: ApplierFactory = (group, onApplied, refetch, lazy, onGap) =>
    new GroupApplier(group, target, { onApplied, sync: cfg.sync, refetch, lingerMs: cfg.applyLingerMs, lazy, onGap, onError: (err) => logger.warn({ err, group }, 'apply failed; retrying') });

  let peers = cfg.peers;
  if (cfg.join !== '') {
    // Fresh = this data dir never joined: the cluster refuses a fresh disk for a known id.
    const fresh = (await store.getMeta('joined')) === undefined && (await store.listGroups()).length === 0;
    peers = await joinCluster(cfg, fresh);
    await store.putMeta('joined', new TextEncoder().encode(String(Date.now())));
  }

  let host: Host | undefined;
  // Test hook 'faults' (test-hooks.ts): a fault layer the tests drive through /debug/faults.
  let faults: FaultLayer | undefined;
  const pendingMessages: Array<[number, GroupMessage[]]> = [];
  const transport = new GrpcTransport(
    {
      nodeId: cfg.id,
      clusterId: cfg.clusterId,
      listenAddr: cfg.raftAddr,
      peers: new Map([...peers].filter(([id]) => id !== cfg.id)),
      snapshotDir,
      // Peers record this directory's incarnation and refuse this id with any other one: a node
      // restarted on a wiped or replaced disk has forgotten its votes and log (PEER_DISK_REPLACED).
      incarnation: store.incarnation,
      peerIncarnations: new PeerIncarnations(store),
      // Peers prove this secret on every call (challenge-response; it never travels). Empty with
      // --tls-* (the certificates authenticate) or --insecure.
      ...(cfg.clusterSecret ? { clusterSecret: cfg.clusterSecret } : {}),
      ...(cfg.tlsCa ? { tls: { caFile: cfg.tlsCa, certFile: cfg.tlsCert, keyFile: cfg.tlsKey } } : {}),
    },
    {
      onMessages: (from, msgs) => {
        if (faults && !faults.admits(from)) return;
        if (host) host.onMessages(from, msgs);
        else pendingMessages.push([from, msgs]);
      },
      onSnapshot: async (header, data) => {
        if (!host) throw new Error('node is starting');
        await host.onSnapshot(header, data);
      },
      // A peer knew this id with another data directory: running on would let a node that forgot
      // its votes and log vote again. Stop now, like a bad configuration, never reset silently.
      onFatal: (err) => {
        logger.fatal({ code: err.code }, err.message);
        logger.flush();
        fail(err.message);
      },
      logger,
    },
  );
  try {
    await transport.start();
  } catch (e) {
    await store.close();
    fail(`--raft-addr ${cfg.raftAddr}: ${(e as Error).message}`);
  }

  if (testHooks.has('faults')) faults = new FaultLayer(transport);
  host = new Host(
    {
      nodeId: cfg.id,
      raftAddr: cfg.raftAddr,
      httpAddr: cfg.httpAddr,
      staticPeers: peers,
      bootstrapGroups: cfg.join === '' ? cfg.groups : 0,
      joined: cfg.join !== '',
      replicationFactor: cfg.replicationFactor,
      zone: cfg.zone,
      tickMs: cfg.tickMs,
      electionTicks: cfg.electionTicks,
      heartbeatTicks: cfg.heartbeatTicks,
      maxPendingProposals: cfg.maxPendingProposals,
      requestTimeoutMs: cfg.requestTimeoutMs,
      snapshotInterval: cfg.snapshotInterval,
      snapshotCatchupEntries: cfg.snapshotCatchupEntries,
      snapshotBytes: cfg.snapshotBytes,
      snapshotCatchupBytes: cfg.snapshotCatchupBytes,
      random: Math.random,
      logger,
      breakStaleReads: testHooks.has('break-stale-reads'),
    },
    {
      store,
      transport: faults ?? transport,
      app,
      makeApplier,
      clock: realClock,
      // The log store failed: nothing may be acknowledged any more. Stop rather than lie (exit 70).
      fatal: () => {
        process.exitCode = 70;
        process.kill(process.pid, 'SIGTERM');
      },
    },
  );
  await host.start();
  for (const [from, msgs] of pendingMessages.splice(0)) host.onMessages(from, msgs);

  const api = await buildApi({
    host,
    httpAddr: cfg.httpAddr,
    apiToken: cfg.apiToken,
    adminToken: cfg.adminToken,
    bodyLimit: API_DEFAULTS.bodyLimit,
    leaderWaitMs: Math.max(API_DEFAULTS.leaderWaitMs, cfg.tickMs * cfg.electionTicks * 3),
    requestTimeoutMs: cfg.requestTimeoutMs,
    tickMs: cfg.tickMs,
    logger,
    ...(faults ? { faults } : {}),
    placement: {
      mode: cfg.rebalance === 'auto' ? 'auto' : 'manual',
      replicationFactor: cfg.replicationFactor,
      maxConcurrentMoves: cfg.maxConcurrentMoves,
      deadNodeTimeoutMs: cfg.deadNodeTimeoutMs,
      tickMs: cfg.tickMs,
    },
  });
  const { host: httpHost, port } = parseHostPort(cfg.httpAddr, '--http-addr');
  try {
    await api.listen({ host: httpHost, port });
  } catch (e) {
    // Taken since the check at start: say so and exit; closing what runs is best effort, bounded,
    // so a stop that waits on the log store cannot hang the exit.
    const message = (e as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'address already in use (another process listens there)' : (e as Error).message;
    const closing = (async () => {
      await host.stop();
      await transport.close();
      await store.close();
    })().catch(() => undefined);
    await Promise.race([closing, new Promise((r) => setTimeout(r, 3000).unref())]);
    fail(`--http-addr ${cfg.httpAddr}: ${message}`);
  }
  const reconcile = setInterval(() => void host!.reconcileMeta(), 2000);
  logger.info({ raftAddr: cfg.raftAddr, httpAddr: cfg.httpAddr, peers: Object.fromEntries(peers), groups: cfg.groups }, 'raftd started');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: refusing new work, flushing, closing the log store');
    clearInterval(reconcile);
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    await api.close().catch(() => undefined);
    await host!.stop();
    await transport.close().catch(() => undefined);
    await store.close();
    logger.info('stopped');
    logger.flush();
    process.exit(process.exitCode ?? 0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`raftd: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
