// placement (issue 21): the placement routes and the rebalancer's wiring to the node.
//   GET  /v1/placement                  where every group is, per-node counts, moves, the rebalancer
//   POST /v1/rebalance                  (admin) plan and run moves until balanced (meta leader)
//   POST /v1/nodes/:id/decommission     (admin) move every replica off the node ({"cancel":true} undoes)
// The rebalancer changes membership through this node's own admin routes (app.inject), so a move
// takes exactly the path an operator's request takes: forwarded to the group's leader, with its
// safety checks (membership-safety.ts).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RaftdError } from '../errors.js';
import { access } from './auth.js';
import { META_GROUP } from '../host/meta.js';
import type { Host } from '../host/host.js';
import { Role } from '../raft/types.js';
import { effectiveReplicationFactor, groupsPerNode, preferredLeaders } from '../placement/placement.js';
import { currentPlacement, placementNodes } from '../placement/view.js';
import { Rebalancer, REBALANCER_DEFAULTS, type GroupView, type RebalancerOptions } from '../placement/rebalancer.js';
import { hostRebalancerPort, viewThroughMembers, type RemoteOps } from '../placement/host-port.js';

export interface PlacementApiOptions {
  mode?: 'auto' | 'manual';
  replicationFactor?: number;
  maxConcurrentMoves?: number;
  deadNodeTimeoutMs?: number;
  /** Bytes per node are evened once the groups hold this many bytes in all. */
  bytesFloor?: number;
  /** Milliseconds between rebalancer rounds. */
  roundMs?: number;
  tickMs?: number;
}

/** How often the rebalancer asks every node for its groups' sizes. */
const BYTES_REFRESH_MS = 10_000;

type OnLeader = (req: FastifyRequest, reply: FastifyReply, group: number, local: () => Promise<unknown>) => Promise<unknown>;

interface StatusGroup {
  group: number;
  leader: number;
  commit: number;
  applied: number;
  voters: number[];
  learners: number[];
  /** Payload bytes the replica handed to its app since it started (absent from older nodes). */
  bytesApplied?: number;
}

export function registerPlacementRoutes(
  app: FastifyInstance,
  o: PlacementApiOptions & { host: Host; onLeader: OnLeader; adminToken: string; logger: Logger },
): Rebalancer {
  const { host } = o;
  const opts: RebalancerOptions = {
    ...REBALANCER_DEFAULTS,
    mode: o.mode ?? REBALANCER_DEFAULTS.mode,
    replicationFactor: o.replicationFactor ?? REBALANCER_DEFAULTS.replicationFactor,
    maxConcurrentMoves: o.maxConcurrentMoves ?? REBALANCER_DEFAULTS.maxConcurrentMoves,
    deadNodeTimeoutMs: o.deadNodeTimeoutMs ?? REBALANCER_DEFAULTS.deadNodeTimeoutMs,
    bytesFloor: o.bytesFloor ?? REBALANCER_DEFAULTS.bytesFloor,
  };
  const tickMs = o.tickMs ?? 50;
  const startedAt = Date.now();
  const admin: Record<string, string> = o.adminToken ? { authorization: `Bearer ${o.adminToken}` } : {};

  /** One of this node's own routes, as an admin; throws the route's error. */
  async function call(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<unknown> {
    const res = await app.inject({ method, url, headers: { ...admin, ...(payload ? { 'content-type': 'application/json' } : {}) }, ...(payload ? { payload: JSON.stringify(payload) } : {}) });
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      body = res.body;
    }
    if (res.statusCode >= 400) {
      const e = (body as { error?: { code?: string; message?: string } }).error;
      throw new RaftdError((e?.code as 'INTERNAL' | undefined) ?? 'INTERNAL', e?.message ?? `${method} ${url}: ${res.statusCode}`);
    }
    return body;
  }

  /** A node's replicas as its /status reports them (empty when it does not answer). */
  async function groupsOf(node: number): Promise<StatusGroup[]> {
    if (node === host.nodeId) {
      return [...host.groups.keys()].map((group) => {
        const s = host.groupStatus(group);
        return { group, leader: s.leader, commit: s.commit, applied: s.appliedByApp, voters: s.confState.voters, learners: s.confState.learners, bytesApplied: s.bytesApplied };
      });
    }
    const addr = host.httpAddrOf(node);
    if (!addr) return [];
    try {
      const res = await fetch(`http://${addr}/status`, { headers: admin, signal: AbortSignal.timeout(3000) });
      if (!res.ok) return [];
      return ((await res.json()) as { groups?: StatusGroup[] }).groups ?? [];
    } catch {
      return [];
    }
  }

  /** A node's view of its replica of `group`, or undefined. */
  async function statusOf(node: number, group: number): Promise<StatusGroup | undefined> {
    return (await groupsOf(node)).find((g) => g.group === group);
  }

  let bytesCache: { at: number; bytes: Map<number, number> } | undefined;
  const remote: RemoteOps = {
    groupView: (group, members): Promise<GroupView | undefined> => viewThroughMembers(members, (id) => statusOf(id, group)),
    replicaView: (node, group) => statusOf(node, group),
    addMember: async (group, node, role) => {
      await call('POST', `/v1/groups/${group}/members`, { node, role });
    },
    removeMember: async (group, node) => {
      await call('DELETE', `/v1/groups/${group}/members/${node}`);
    },
    transferLeadership: async (group, to) => {
      await call('POST', `/v1/groups/${group}/transfer-leadership`, { to });
    },
    // Bytes per group (issue 21: bytes per node even too): the largest count any reachable replica
    // reports (a replica restarted or restored from a snapshot counts only what it applied since).
    // Refreshed at most every BYTES_REFRESH_MS: every node's /status is a large answer with many groups.
    groupBytes: async () => {
      if (bytesCache && Date.now() - bytesCache.at < BYTES_REFRESH_MS) return bytesCache.bytes;
      const out = new Map<number, number>();
      const ids = [...new Set([host.nodeId, ...host.meta.nodes.keys()])].filter((id) => id === host.nodeId || host.liveness.isAlive(id));
      for (const groups of await Promise.all(ids.map((id) => groupsOf(id)))) {
        for (const g of groups) {
          const bytes = peerBytesApplied(g.bytesApplied);
          if (g.group !== META_GROUP && bytes !== undefined) out.set(g.group, Math.max(out.get(g.group) ?? 0, bytes));
        }
      }
      bytesCache = { at: Date.now(), bytes: out };
      return out;
    },
    leaders: async () => {
      const out = new Map<number, number>();
      const ids = [...new Set([host.nodeId, ...host.meta.nodes.keys()])].filter((id) => id === host.nodeId || host.liveness.isAlive(id));
      await Promise.all(ids.map(async (id) => {
        for (const g of await groupsOf(id)) if (g.group !== META_GROUP && g.leader === id) out.set(g.group, id);
      }));
      return out;
    },
  };
  const port = hostRebalancerPort(host, remote, { tickMs, now: () => Date.now(), startedAt });
  const rebalancer = new Rebalancer(port, opts, o.logger);
  const timer = setInterval(() => void rebalancer.round(), o.roundMs ?? 500);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));

  app.get('/v1/placement', async () => {
    const placement = currentPlacement(host.meta);
    const voters = host.groups.get(META_GROUP)?.status().confState.voters ?? [];
    const nodes = placementNodes(host.meta, voters, new Set(), (id) => host.zoneOf(id));
    const counts = groupsPerNode(placement, nodes);
    const leaders = new Map<number, number>();
    for (const [, g] of host.groups) if (g.group !== META_GROUP && g.role === Role.Leader) leaders.set(g.group, host.nodeId);
    const preferred = preferredLeaders(placement);
    return {
      replicationFactor: opts.replicationFactor,
      effectiveReplicationFactor: effectiveReplicationFactor(opts.replicationFactor, nodes.filter((n) => n.state === 'active').length),
      nodes: nodes.map((n) => ({ ...n, groups: counts.get(n.id) ?? 0, alive: n.id === host.nodeId || host.liveness.isAlive(n.id) })),
      groups: [...placement].map(([group, members]) => ({
        group,
        members,
        preferredLeader: preferred.get(group) ?? null,
        local: host.groups.has(group),
        ...(host.meta.placement.moves.has(group) ? { move: host.meta.placement.moves.get(group) } : {}),
      })),
      rebalance: rebalancer.status(),
    };
  });

  app.post('/v1/rebalance', access('admin'), async (req, reply) =>
    o.onLeader(req, reply, META_GROUP, async () => {
      rebalancer.requestPass();
      void rebalancer.round();
      return { rebalancing: true, status: rebalancer.status() };
    }),
  );

  app.post('/v1/nodes/:id/decommission', access('admin'), async (req, reply) => {
    const raw = (req.params as { id: string }).id;
    if (!/^\d{1,10}$/.test(raw)) throw new RaftdError('BAD_REQUEST', `node "${raw}" is not a node id`);
    const id = Number(raw);
    const body = req.body as Buffer | undefined;
    let cancel = false;
    if (body && body.length > 0) {
      try {
        cancel = (JSON.parse(body.toString('utf8')) as { cancel?: unknown }).cancel === true;
      } catch {
        throw new RaftdError('BAD_REQUEST', 'body must be JSON: {"cancel": true} or empty');
      }
    }
    return o.onLeader(req, reply, META_GROUP, async () => {
      const outcome = await host.proposeMeta({ op: 'node-state', id, state: cancel ? 'active' : 'decommissioning' });
      if (!outcome.ok) throw new RaftdError(outcome.error?.code === 'NOT_FOUND' ? 'NOT_FOUND' : 'BAD_REQUEST', outcome.error?.message ?? 'refused');
      rebalancer.requestPass();
      return { node: id, state: cancel ? 'active' : 'decommissioning' };
    });
  });

  return rebalancer;
}

/**
 * A peer's reported bytes applied of a group, if it is a count at all (a safe non-negative integer):
 * a peer's /status is not trusted to steer rebalancing with NaN, Infinity or a negative number.
 */
export function peerBytesApplied(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}
