// The meta state as placement sees it: which nodes may hold replicas, in which zone and state,
// and where each group is. Shared by the host (placing new groups) and the rebalancer.

import type { MetaState } from '../host/meta.js';
import { initialPlacement, ringOrder, ringReplicas, type Placement, type PlacementNode } from './placement.js';

/**
 * The registered nodes and the meta group's voters (a static cluster's nodes before they are
 * registered), with their zones and recorded states. `dead` lists nodes silent past the
 * configured time (the caller observes that; it is never recorded).
 */
export function placementNodes(meta: MetaState, metaVoters: readonly number[], dead: ReadonlySet<number> = new Set(), zoneHint?: (id: number) => string | undefined): PlacementNode[] {
  const ids = new Set<number>([...meta.nodes.keys(), ...metaVoters]);
  return [...ids].sort((a, b) => a - b).map((id) => ({
    id,
    zone: meta.nodes.get(id)?.zone ?? zoneHint?.(id) ?? '',
    state: meta.placement.stateOf(id) === 'decommissioning' ? 'decommissioning' : dead.has(id) ? 'dead' : 'active',
  }));
}

/** The replicas of a new group: its ring position over the active nodes. */
export function placeGroup(group: number, nodes: readonly PlacementNode[], replicationFactor: number): number[] {
  return ringReplicas(group, ringOrder(nodes), replicationFactor);
}

/** Where the meta state says each group is. */
export function currentPlacement(meta: MetaState): Placement {
  return new Map([...meta.groups.values()].map((g) => [g.group, [...g.members].sort((a, b) => a - b)]));
}

export { initialPlacement };
