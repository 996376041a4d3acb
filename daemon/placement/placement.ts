// Placement decisions: which nodes hold a replica of which group, which replica should lead, and
// which replicas to move when nodes join, leave or die. Pure and deterministic (no clock, no
// randomness, no I/O): the meta group's leader runs it and records its decisions as meta-group
// entries, so every node ends up with the same placement whichever node computed it.

/** A node as placement sees it. Only `active` nodes receive replicas. */
export interface PlacementNode {
  id: number;
  /** Failure domain (rack, zone); '' when not given. Replicas of a group spread over zones first. */
  zone: string;
  state: NodeState;
}

/**
 * active: takes replicas. decommissioning: an operator asked for it to be emptied. dead: silent for
 * longer than the configured time (its replicas are re-created elsewhere).
 */
export type NodeState = 'active' | 'decommissioning' | 'dead';

/** Group -> the nodes holding its replicas (voters), ascending. */
export type Placement = Map<number, number[]>;

/**
 * One replica move. `from` null: add a replica (the group has fewer than the replication factor);
 * `to` null: drop a surplus replica. Otherwise: add `to` as a learner, let it catch up, promote it,
 * then remove `from`.
 */
export interface Move {
  group: number;
  from: number | null;
  to: number | null;
  reason: MoveReason;
}

export type MoveReason = 'decommission' | 'dead' | 'unknown-node' | 'under-replicated' | 'over-replicated' | 'balance';

/** The replication factor actually used: `rf` (0: every node), at most the number of nodes. */
export function effectiveReplicationFactor(rf: number, nodeCount: number): number {
  if (nodeCount <= 0) return 0;
  return rf <= 0 ? nodeCount : Math.min(rf, nodeCount);
}

/**
 * The ring: active nodes ordered so that consecutive positions are in different zones wherever the
 * zones allow it (round-robin over the zones, each zone's nodes by id). With one zone: by id.
 */
export function ringOrder(nodes: readonly PlacementNode[]): number[] {
  const byZone = new Map<string, number[]>();
  for (const n of [...nodes].filter((x) => x.state === 'active').sort((a, b) => a.id - b.id)) {
    const list = byZone.get(n.zone) ?? [];
    list.push(n.id);
    byZone.set(n.zone, list);
  }
  // Largest zones first so that the interleaving does not bunch a large zone's nodes at the end.
  const zones = [...byZone.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const ring: number[] = [];
  for (let k = 0; ring.length < nodes.length; k++) {
    let any = false;
    for (const [, ids] of zones) {
      if (k < ids.length) {
        ring.push(ids[k]!);
        any = true;
      }
    }
    if (!any) break;
  }
  return ring;
}

/**
 * A new group's replicas: `rf` consecutive nodes of the ring starting at the group's position
 * (group g starts at (g - 1) mod n), so N nodes and G groups give each node G*rf/N groups, and
 * consecutive ring positions being in different zones spreads a group's replicas over zones.
 */
export function ringReplicas(group: number, ring: readonly number[], rf: number): number[] {
  const n = ring.length;
  const r = effectiveReplicationFactor(rf, n);
  const start = (((group - 1) % n) + n) % n;
  const out: number[] = [];
  for (let j = 0; j < r; j++) out.push(ring[(start + j) % n]!);
  return out.sort((a, b) => a - b);
}

/** The initial placement of `groups` over `nodes`. */
export function initialPlacement(groups: readonly number[], nodes: readonly PlacementNode[], rf: number): Placement {
  const ring = ringOrder(nodes);
  const out: Placement = new Map();
  for (const g of [...groups].sort((a, b) => a - b)) out.set(g, ringReplicas(g, ring, rf));
  return out;
}

/**
 * A preferred leader per group, spreading leadership: groups in order, each takes the replica
 * leading the fewest groups so far (ties: the replica at the group's own ring offset, then lowest
 * id). Leadership is advisory (Raft elects whoever it elects); the executor moves it back.
 */
export function preferredLeaders(placement: Placement): Map<number, number> {
  const leads = new Map<number, number>();
  const out = new Map<number, number>();
  for (const g of [...placement.keys()].sort((a, b) => a - b)) {
    const replicas = placement.get(g)!;
    if (replicas.length === 0) continue;
    const offset = (g - 1) % replicas.length;
    let best = replicas[offset]!;
    let bestKey = [leads.get(best) ?? 0, 0, best];
    replicas.forEach((r, i) => {
      const key = [leads.get(r) ?? 0, i === offset ? 0 : 1, r];
      if (lexLess(key, bestKey)) {
        best = r;
        bestKey = key;
      }
    });
    out.set(g, best);
    leads.set(best, (leads.get(best) ?? 0) + 1);
  }
  return out;
}

export interface PlanInput {
  placement: Placement;
  nodes: readonly PlacementNode[];
  /** 0: every active node. */
  replicationFactor: number;
  /** Moves allowed to run at once, the ones already running included. */
  maxConcurrentMoves: number;
  /** Moves already running: their groups get no other move, and the plan counts them as done. */
  inFlight?: readonly Move[];
  /** Bytes stored per group (one replica's worth), when known: balancing then evens bytes too. */
  groupBytes?: ReadonlyMap<number, number>;
}

/** The placement once `moves` are done. */
export function applyMoves(placement: Placement, moves: readonly Move[]): Placement {
  const out: Placement = new Map([...placement].map(([g, r]) => [g, [...r]]));
  for (const m of moves) {
    let r = out.get(m.group) ?? [];
    if (m.from !== null) r = r.filter((x) => x !== m.from);
    if (m.to !== null && !r.includes(m.to)) r.push(m.to);
    out.set(m.group, r.sort((a, b) => a - b));
  }
  return out;
}

/** Groups per node (active nodes listed even with 0). */
export function groupsPerNode(placement: Placement, nodes: readonly PlacementNode[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const n of nodes) if (n.state === 'active') out.set(n.id, 0);
  for (const r of placement.values()) for (const id of r) out.set(id, (out.get(id) ?? 0) + 1);
  return out;
}

/**
 * The next moves toward a placement where every group has the replication factor's replicas on
 * distinct active nodes, spread over zones, and every active node holds as many groups (and, given
 * groupBytes, bytes) as the others within one group. In priority order: replicas on nodes that are
 * leaving, dead or unknown; groups short of replicas; surplus replicas; then balance. At most
 * maxConcurrentMoves - inFlight moves, at most one per group (a group changes one replica at a time).
 * Planning again after these moves are done gives the next ones; an empty plan means done.
 */
export function planMoves(input: PlanInput): Move[] {
  const inFlight = input.inFlight ?? [];
  const budget = Math.max(0, input.maxConcurrentMoves - inFlight.length);
  if (budget === 0) return [];
  const nodeById = new Map(input.nodes.map((n) => [n.id, n]));
  const active = input.nodes.filter((n) => n.state === 'active').sort((a, b) => a.id - b.id);
  if (active.length === 0) return [];
  const rf = effectiveReplicationFactor(input.replicationFactor, active.length);
  const bytes = input.groupBytes ?? new Map<number, number>();
  const work = applyMoves(input.placement, inFlight);
  const busy = new Set(inFlight.map((m) => m.group));
  const plan: Move[] = [];
  const zoneOf = (id: number): string => nodeById.get(id)?.zone ?? '';
  const load = (): { count: Map<number, number>; size: Map<number, number> } => {
    const count = new Map<number, number>(active.map((n) => [n.id, 0]));
    const size = new Map<number, number>(active.map((n) => [n.id, 0]));
    for (const [g, r] of work) {
      for (const id of r) {
        if (!count.has(id)) continue;
        count.set(id, count.get(id)! + 1);
        size.set(id, size.get(id)! + (bytes.get(g) ?? 0));
      }
    }
    return { count, size };
  };
  const take = (m: Move): boolean => {
    plan.push(m);
    busy.add(m.group);
    const next = applyMoves(work, [m]);
    work.set(m.group, next.get(m.group)!);
    return plan.length >= budget;
  };
  /** Best new home for a replica of `group`: a zone the group lacks, then fewest groups, fewest bytes, lowest id. */
  const target = (group: number, leaving: number | null): number | null => {
    const replicas = (work.get(group) ?? []).filter((x) => x !== leaving);
    const zones = new Set(replicas.map(zoneOf));
    const { count, size } = load();
    let best: number | null = null;
    let bestKey: number[] = [];
    for (const n of active) {
      if (replicas.includes(n.id) || n.id === leaving) continue;
      const key = [zones.has(n.zone) ? 1 : 0, count.get(n.id)!, size.get(n.id)!, n.id];
      if (best === null || lexLess(key, bestKey)) {
        best = n.id;
        bestKey = key;
      }
    }
    return best;
  };
  const groups = [...work.keys()].sort((a, b) => a - b);

  // 1. Replicas on nodes that are leaving, dead or unknown.
  for (const g of groups) {
    if (busy.has(g)) continue;
    for (const id of work.get(g)!) {
      const st = nodeById.get(id)?.state;
      if (st === 'active') continue;
      const reason: MoveReason = st === 'decommissioning' ? 'decommission' : st === 'dead' ? 'dead' : 'unknown-node';
      const to = target(g, id);
      // Nowhere to go (every active node holds it already): drop it only if enough replicas remain.
      const activeLeft = work.get(g)!.filter((x) => nodeById.get(x)?.state === 'active').length;
      if (to === null && activeLeft < rf) continue;
      if (take({ group: g, from: id, to, reason })) return plan;
      break;
    }
  }
  // 2. Short of replicas; 3. surplus replicas (the node count shrank or the factor was lowered).
  for (const g of groups) {
    if (busy.has(g)) continue;
    const r = work.get(g)!;
    if (r.length < rf) {
      const to = target(g, null);
      if (to !== null && take({ group: g, from: null, to, reason: 'under-replicated' })) return plan;
    } else if (r.length > rf) {
      const { count } = load();
      // The most loaded replica goes (ties: highest id), keeping the zones the group spans.
      const zonesBefore = new Set(r.map(zoneOf)).size;
      const cands = [...r].sort((a, b) => (count.get(b) ?? 0) - (count.get(a) ?? 0) || b - a);
      const from = cands.find((x) => new Set(r.filter((y) => y !== x).map(zoneOf)).size >= Math.min(zonesBefore, rf)) ?? cands[0]!;
      if (take({ group: g, from, to: null, reason: 'over-replicated' })) return plan;
    }
  }
  // 4. Balance: from the node with most groups (then most bytes) to the one with fewest, while they
  // differ by more than one group; the group chosen evens bytes best and never loses a zone.
  for (;;) {
    if (plan.length >= budget) return plan;
    const { count, size } = load();
    const order = [...active].map((n) => n.id).sort((a, b) => count.get(a)! - count.get(b)! || size.get(a)! - size.get(b)! || a - b);
    const heavy = [...order].reverse();
    let moved = false;
    outer: for (const from of heavy) {
      for (const to of order) {
        if (count.get(from)! - count.get(to)! <= 1) break;
        const gap = size.get(from)! - size.get(to)!;
        let best: number | undefined;
        let bestKey: number[] = [];
        for (const g of groups) {
          const r = work.get(g)!;
          if (busy.has(g) || !r.includes(from) || r.includes(to)) continue;
          const zonesBefore = new Set(r.map(zoneOf)).size;
          const zonesAfter = new Set(r.filter((x) => x !== from).concat(to).map(zoneOf)).size;
          if (zonesAfter < zonesBefore) continue;
          const b = bytes.get(g) ?? 0;
          const key = [Math.abs(gap - 2 * b), g];
          if (best === undefined || lexLess(key, bestKey)) {
            best = g;
            bestKey = key;
          }
        }
        if (best !== undefined) {
          moved = true;
          if (take({ group: best, from, to, reason: 'balance' })) return plan;
          break outer;
        }
      }
    }
    if (!moved) break;
  }
  // 5. Bytes, once the group counts are even: move a group from the node with most bytes to the
  // one with fewest where the counts allow it, else swap a large group for a small one. Only moves
  // that strictly narrow the gap (no oscillation), and only while the gap exceeds 5% of the larger.
  if (bytes.size === 0) return plan;
  for (let guard = 0; guard < groups.length * 4; guard++) {
    const { count, size } = load();
    const ids = [...active].map((n) => n.id).sort((a, b) => size.get(a)! - size.get(b)! || a - b);
    const light = ids[0]!;
    const heavy = ids[ids.length - 1]!;
    const gap = size.get(heavy)! - size.get(light)!;
    if (gap <= size.get(heavy)! * 0.05) return plan;
    const keepsZones = (g: number, out: number, inn: number): boolean => {
      const r = work.get(g)!;
      return new Set(r.filter((x) => x !== out).concat(inn).map(zoneOf)).size >= new Set(r.map(zoneOf)).size;
    };
    const movable = (g: number, out: number, inn: number): boolean => {
      const r = work.get(g)!;
      return !busy.has(g) && r.includes(out) && !r.includes(inn) && keepsZones(g, out, inn);
    };
    let best: { a: number; b: number | null; key: number } | undefined;
    const canSingle = count.get(heavy)! - count.get(light)! === 1;
    for (const a of groups) {
      if (!movable(a, heavy, light)) continue;
      const ba = bytes.get(a) ?? 0;
      if (canSingle && ba > 0 && ba < gap) {
        const key = Math.abs(gap - 2 * ba);
        if (!best || key < best.key) best = { a, b: null, key };
      }
      if (budget - plan.length < 2) continue;
      for (const b of groups) {
        if (b === a || !movable(b, light, heavy)) continue;
        const d = ba - (bytes.get(b) ?? 0);
        if (d <= 0 || d >= gap) continue;
        const key = Math.abs(gap - 2 * d);
        if (!best || key < best.key) best = { a, b, key };
      }
    }
    if (!best) return plan;
    if (take({ group: best.a, from: heavy, to: light, reason: 'balance' })) return plan;
    if (best.b !== null && take({ group: best.b, from: light, to: heavy, reason: 'balance' })) return plan;
  }
  return plan;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
