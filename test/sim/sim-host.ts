// What a simulated machine is, and how its Host is configured, the same in the host simulator
// (host-sim.ts) and the host scenarios (test/scenario/host-env.ts).
import type { Logger } from 'pino';
import type { Host, HostFaults, HostOptions } from '../../daemon/host/host.js';
import type { SimApp, SimClock, SimLogStore } from './host-ports.js';

/** One machine: its Host over the simulated clock, log store and app. */
export interface SimHostNode {
  id: number;
  up: boolean;
  clock: SimClock;
  host: Host;
  store: SimLogStore;
  app: SimApp;
}

export interface SimHostSettings {
  /** Every node of the cluster (static peers at `sim:<id>`). */
  ids: number[];
  /** Data groups bootstrapped (the meta group comes on top). */
  groups: number;
  tickMs: number;
  electionTicks: number;
  requestTimeoutMs: number;
  snapshotInterval: number;
  catchupEntries: number;
  random: () => number;
  logger: Logger;
  faults?: HostFaults;
}

/** The Host options of node `id`; snapshots are never cut by size, only by entry count. */
export function simHostOptions(id: number, s: SimHostSettings): HostOptions {
  return {
    nodeId: id,
    raftAddr: `sim:${id}`,
    httpAddr: `http://sim:${id}`,
    // Every group on every node (placement's replication factor 0), no zones; placement-sim.ts overrides it.
    replicationFactor: 0,
    zone: '',
    staticPeers: new Map(s.ids.map((p) => [p, `sim:${p}`] as const)),
    bootstrapGroups: s.groups,
    tickMs: s.tickMs,
    electionTicks: s.electionTicks,
    heartbeatTicks: 2,
    maxPendingProposals: 1000,
    requestTimeoutMs: s.requestTimeoutMs,
    snapshotInterval: s.snapshotInterval,
    snapshotCatchupEntries: s.catchupEntries,
    snapshotBytes: 1 << 30,
    snapshotCatchupBytes: 1 << 30,
    random: s.random,
    logger: s.logger,
    ...(s.faults ? { faults: s.faults } : {}),
  };
}
