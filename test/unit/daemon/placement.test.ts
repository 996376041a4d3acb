// Placement decisions (daemon/placement/placement.ts): properties over layouts and over the whole
// rebalancing run a planner drives (plan, do the moves, plan again until the plan is empty).

import { expect } from 'chai';
import {
  applyMoves,
  groupsPerNode,
  initialPlacement,
  planMoves,
  preferredLeaders,
  ringOrder,
  type Move,
  type Placement,
  type PlacementNode,
} from '../../../daemon/placement/placement.js';

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const nodes = (ids: number[], zone = (_id: number) => ''): PlacementNode[] => ids.map((id) => ({ id, zone: zone(id), state: 'active' }));

/** Every group has `rf` replicas, on distinct nodes, all of them active. */
function expectValid(p: Placement, ns: PlacementNode[], rf: number): void {
  const active = new Set(ns.filter((n) => n.state === 'active').map((n) => n.id));
  for (const [g, r] of p) {
    expect(r, `group ${g}`).to.have.length(rf);
    expect(new Set(r).size, `group ${g} distinct`).to.equal(rf);
    for (const id of r) expect(active.has(id), `group ${g} on inactive node ${id}`).to.equal(true);
  }
}

/** Runs the planner to the end, K moves at a time; returns the final placement and every move. */
function converge(p: Placement, ns: PlacementNode[], rf: number, k = 2, bytes?: Map<number, number>): { placement: Placement; moves: Move[]; rounds: number } {
  const all: Move[] = [];
  let rounds = 0;
  for (;;) {
    const plan = planMoves({ placement: p, nodes: ns, replicationFactor: rf, maxConcurrentMoves: k, ...(bytes ? { groupBytes: bytes } : {}) });
    if (plan.length === 0) return { placement: p, moves: all, rounds };
    expect(plan.length).to.be.at.most(k);
    expect(new Set(plan.map((m) => m.group)).size, 'one move per group at a time').to.equal(plan.length);
    all.push(...plan);
    p = applyMoves(p, plan);
    if (++rounds > 500) throw new Error('the planner does not converge');
  }
}

describe('placement', () => {
  it('6 nodes, 24 groups, RF 3: every group on 3 distinct nodes, 12 groups per node, leaders spread', () => {
    const ns = nodes(range(1, 6));
    const p = initialPlacement(range(1, 24), ns, 3);
    expectValid(p, ns, 3);
    for (const [, c] of groupsPerNode(p, ns)) expect(c).to.be.within(10, 14);
    const leaders = new Map<number, number>();
    for (const [g, l] of preferredLeaders(p)) {
      expect(p.get(g)).to.include(l);
      leaders.set(l, (leaders.get(l) ?? 0) + 1);
    }
    expect([...leaders.values()].sort()).to.deep.equal([4, 4, 4, 4, 4, 4]);
    // Already balanced: nothing to move.
    expect(planMoves({ placement: p, nodes: ns, replicationFactor: 3, maxConcurrentMoves: 4 })).to.deep.equal([]);
  });

  it('fewer nodes than the factor: every node; factor 0: every node', () => {
    const two = nodes([1, 2]);
    expectValid(initialPlacement([1, 2, 3], two, 3), two, 2);
    const five = nodes(range(1, 5));
    expectValid(initialPlacement([1, 2, 3], five, 0), five, 5);
  });

  it('is deterministic: the same input gives the same placement and the same plan', () => {
    const ns = nodes(range(1, 6), (id) => `z${id % 3}`);
    const a = initialPlacement(range(1, 24), ns, 3);
    const b = initialPlacement(range(1, 24).reverse(), [...ns].reverse(), 3);
    expect([...a]).to.deep.equal([...b]);
    const grown = [...ns, { id: 7, zone: 'z1', state: 'active' as const }];
    const p1 = planMoves({ placement: a, nodes: grown, replicationFactor: 3, maxConcurrentMoves: 3 });
    const p2 = planMoves({ placement: b, nodes: [...grown].reverse(), replicationFactor: 3, maxConcurrentMoves: 3 });
    expect(p1).to.deep.equal(p2);
    expect(p1).to.have.length(3);
  });

  it('zone-aware: with 3 zones and RF 3 every group spans 3 zones, also after a node joins', () => {
    const zone = (id: number): string => `z${id % 3}`;
    const ns = nodes(range(1, 6), zone);
    const p = initialPlacement(range(1, 24), ns, 3);
    const spans = (pl: Placement, all: PlacementNode[]) => [...pl.values()].map((r) => new Set(r.map((id) => all.find((n) => n.id === id)!.zone)).size);
    expect(spans(p, ns).every((s) => s === 3)).to.equal(true);
    expect(ringOrder(ns).map(zone).slice(0, 3)).to.have.members(['z0', 'z1', 'z2']);
    const grown = [...ns, { id: 7, zone: zone(7), state: 'active' as const }];
    const { placement } = converge(p, grown, 3);
    expectValid(placement, grown, 3);
    expect(spans(placement, grown).every((s) => s === 3)).to.equal(true);
  });

  it('adding a 7th node evens out (groups within one of each other), at most K moves at a time', () => {
    const ns = nodes(range(1, 6));
    const p = initialPlacement(range(1, 24), ns, 3);
    const grown = nodes(range(1, 7));
    const { placement, moves } = converge(p, grown, 3, 2);
    expectValid(placement, grown, 3);
    const counts = [...groupsPerNode(placement, grown).values()];
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1);
    expect(groupsPerNode(placement, grown).get(7)).to.be.within(10, 11);
    // Only replicas that had to move: node 7 receives, nobody else does.
    expect(moves.every((m) => m.to === 7 && m.reason === 'balance')).to.equal(true);
    expect(moves).to.have.length(groupsPerNode(placement, grown).get(7)!);
  });

  it('evens bytes too when the groups differ in size', () => {
    const ns = nodes(range(1, 6));
    const p = initialPlacement(range(1, 24), ns, 3);
    const bytes = new Map(range(1, 24).map((g) => [g, 1000 + ((g * 37) % 11) * 150]));
    const grown = nodes(range(1, 7));
    const { placement } = converge(p, grown, 3, 3, bytes);
    const size = new Map<number, number>();
    for (const [g, r] of placement) for (const id of r) size.set(id, (size.get(id) ?? 0) + bytes.get(g)!);
    const sizes = [...size.values()];
    expect(Math.max(...sizes) / Math.min(...sizes)).to.be.below(1.15);
    expect(size.get(7)).to.be.above(0);
  });

  it('decommissioning a node moves every replica off it, and the rest stay even', () => {
    const ns = nodes(range(1, 6));
    const p = initialPlacement(range(1, 24), ns, 3);
    const leaving = ns.map((n) => (n.id === 3 ? { ...n, state: 'decommissioning' as const } : n));
    const { placement, moves } = converge(p, leaving, 3, 2);
    expectValid(placement, leaving, 3);
    for (const r of placement.values()) expect(r).to.not.include(3);
    expect(moves.filter((m) => m.from === 3)).to.have.length(12);
    const counts = [...groupsPerNode(placement, leaving).values()];
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1);
  });

  it('a dead node\'s replicas are re-created elsewhere; an unknown node counts as gone', () => {
    const ns = nodes(range(1, 5));
    const p = initialPlacement(range(1, 10), ns, 3);
    const dead = ns.map((n) => (n.id === 2 ? { ...n, state: 'dead' as const } : n));
    const first = planMoves({ placement: p, nodes: dead, replicationFactor: 3, maxConcurrentMoves: 100 });
    expect(first.length).to.be.greaterThan(0);
    expect(first.every((m) => m.from === 2 && m.reason === 'dead')).to.equal(true);
    const { placement } = converge(p, ns.filter((n) => n.id !== 2), 3, 3);
    expectValid(placement, ns.filter((n) => n.id !== 2), 3);
  });

  it('respects the moves in flight: no second move for their group, and they count toward K', () => {
    const ns = nodes(range(1, 6));
    const p = initialPlacement(range(1, 24), ns, 3);
    const grown = nodes(range(1, 7));
    const [first] = planMoves({ placement: p, nodes: grown, replicationFactor: 3, maxConcurrentMoves: 1 });
    const next = planMoves({ placement: p, nodes: grown, replicationFactor: 3, maxConcurrentMoves: 3, inFlight: [first!] });
    expect(next).to.have.length(2);
    expect(next.map((m) => m.group)).to.not.include(first!.group);
    expect(planMoves({ placement: p, nodes: grown, replicationFactor: 3, maxConcurrentMoves: 1, inFlight: [first!] })).to.deep.equal([]);
  });

  it('grows and shrinks groups to the factor', () => {
    const ns = nodes(range(1, 5));
    const p: Placement = new Map([[1, [1, 2]], [2, [1, 2, 3, 4, 5]]]);
    const { placement } = converge(p, ns, 3, 4);
    expectValid(placement, ns, 3);
  });
});
