// The rebalancer's port over a Host (issue 21): what the meta leader reads of its own node (meta
// state, liveness, who is dead) is the same wherever it runs; how it reaches the other nodes (their
// status, the admin membership routes) is given by the caller — HTTP in raftd
// (api/placement-routes.ts), the simulated network in test/sim/placement-sim.ts.

import type { Host } from '../host/host.js';
import { META_GROUP } from '../host/meta.js';
import { RaftdError } from '../errors.js';
import { unsafeVoterRemoval } from '../api/membership-safety.js';
import { ConfChangeType } from '../raft/types.js';
import type { RebalancerPort } from './rebalancer.js';
import { currentPlacement, placementNodes } from './view.js';

/** How the rebalancer reaches the other nodes. */
export type RemoteOps = Pick<RebalancerPort, 'groupView' | 'replicaView' | 'addMember' | 'removeMember' | 'transferLeadership' | 'leaders' | 'groupBytes'>;

export interface HostPortOptions {
  tickMs: number;
  /** The clock the dead-node timeout is measured on (wall time in raftd, virtual in the simulator). */
  now: () => number;
  /** When this process started (now()'s scale): a node not heard from since is not known to be dead before deadAfterMs. */
  startedAt: number;
}

export function hostRebalancerPort(host: Host, remote: RemoteOps, o: HostPortOptions): RebalancerPort {
  return {
    ...remote,
    isMetaLeader: () => host.isMetaLeader(),
    metaCommit: () => host.groupStatus(META_GROUP).commit,
    nodes: (deadAfterMs) => {
      const dead = new Set<number>();
      // Not before this process has been up that long itself: a node never heard from since a
      // restart is not known to be dead.
      if (deadAfterMs > 0 && o.now() - o.startedAt >= deadAfterMs) {
        for (const id of host.meta.nodes.keys()) {
          if (id !== host.nodeId && host.liveness.silentFor(id) * o.tickMs >= deadAfterMs) dead.add(id);
        }
      }
      return placementNodes(host.meta, host.groupStatus(META_GROUP).confState.voters, dead, (id) => host.zoneOf(id));
    },
    placement: () => currentPlacement(host.meta),
    moves: () => [...host.meta.placement.moves.values()],
    nodesOutsideMeta: () => {
      const c = host.groupStatus(META_GROUP).confState;
      return [...host.meta.nodes.keys()].filter((id) => !c.voters.includes(id) && !c.learners.includes(id)).sort((a, b) => a - b);
    },
    proposeMeta: async (cmd) => {
      const outcome = await host.proposeMeta(cmd);
      if (!outcome.ok) throw new RaftdError('CONFLICT', outcome.error?.message ?? `${cmd.op} refused`);
    },
    canLead: (node) => (node === host.nodeId ? host.appHealthy() : host.liveness.isAlive(node) && host.liveness.appHealthy(node)),
  };
}

/** One node's report of its replica of a group (its /status entry). */
export interface ReplicaReport {
  leader: number;
  commit: number;
  voters: number[];
  learners: number[];
}

/**
 * The group as its leader sees it, asked through its members in turn: the first member that knows a
 * leader names it, and the leader's own report (confirming it leads) is the view.
 */
export async function viewThroughMembers(members: readonly number[], statusOf: (node: number) => Promise<ReplicaReport | undefined>): Promise<{ leader: number; commit: number; voters: number[]; learners: number[] } | undefined> {
  for (const id of [...new Set(members)]) {
    const s = await statusOf(id);
    if (!s || !s.leader) continue;
    const l = s.leader === id ? s : await statusOf(s.leader);
    if (l && l.leader === s.leader) return { leader: l.leader, commit: l.commit, voters: l.voters, learners: l.learners };
  }
  return undefined;
}

/**
 * A membership change on the group's leader (this host), as the admin routes make it: taking a voter
 * out (removal, or demotion to learner) is refused when the group could then survive fewer failures,
 * unless forced; a node added must be known (its address goes in the change's context).
 */
export async function changeMemberOnLeader(host: Host, group: number, node: number, change: 'voter' | 'learner' | 'remove', force = false): Promise<number> {
  if (change !== 'voter' && !force) {
    const voters = host.groupStatus(group).confState.voters;
    const why = unsafeVoterRemoval(group, voters, node, (id) => id === host.nodeId || host.liveness.isAlive(id));
    if (why) throw new RaftdError('UNSAFE_MEMBERSHIP_CHANGE', why);
  }
  if (change === 'remove') return host.changeMembership(group, { type: ConfChangeType.RemoveNode, node, context: new Uint8Array(0) });
  const raftAddr = host.peers().get(node) ?? host.meta.nodes.get(node)?.raftAddr;
  if (!raftAddr) throw new RaftdError('BAD_REQUEST', `node ${node} is not registered; start it with --join first`);
  const context = new TextEncoder().encode(JSON.stringify({ raftAddr, httpAddr: host.httpAddrOf(node) ?? '' }));
  return host.changeMembership(group, { type: change === 'voter' ? ConfChangeType.AddVoter : ConfChangeType.AddLearner, node, context });
}
