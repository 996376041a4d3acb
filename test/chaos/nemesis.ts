// Nemeses: faults injected into a running LocalCluster of real processes, one at a time, each
// healed before the next. Named sets (kill, pause, partition, transfer, member) combine; `all` is
// every one. The runner tracks which nodes are down or paused so clients avoid them on purpose
// (requests still race with the faults, which is the point).

import { waitForHttp, type LocalCluster, type RaftdNode } from '../integration/cluster.js';
import type { Rng } from '../sim/rng.js';
import { call, sleep, useToken } from './http.js';

export const GROUP = 1;

/** Every fault kind; each set name expands to some of them. */
export const FAULT_KINDS = [
  'kill-raftd', 'kill-app', 'pause', 'partition-symmetric', 'partition-oneway', 'partition-leader', 'transfer', 'member-readd', 'member-learner',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const NEMESIS_SETS: Record<string, readonly FaultKind[]> = {
  kill: ['kill-raftd', 'kill-app'],
  pause: ['pause'],
  partition: ['partition-symmetric', 'partition-oneway', 'partition-leader'],
  transfer: ['transfer'],
  member: ['member-readd', 'member-learner'],
  none: [],
};

export class NemesisError extends Error {
  constructor(
    readonly code: 'UNKNOWN_NEMESIS' | 'HEAL_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'NemesisError';
  }
}

/** "kill,pause" / "all" / "partition-leader" -> the fault kinds, in a stable order. */
export function parseNemesis(spec: string): FaultKind[] {
  const out = new Set<FaultKind>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (raw === 'all') for (const k of FAULT_KINDS) out.add(k);
    else if (NEMESIS_SETS[raw]) for (const k of NEMESIS_SETS[raw]!) out.add(k);
    else if ((FAULT_KINDS as readonly string[]).includes(raw)) out.add(raw as FaultKind);
    else throw new NemesisError('UNKNOWN_NEMESIS', `unknown nemesis "${raw}" (sets: all, ${Object.keys(NEMESIS_SETS).join(', ')}; kinds: ${FAULT_KINDS.join(', ')})`);
  }
  return FAULT_KINDS.filter((k) => out.has(k));
}

export interface FaultRecord {
  kind: FaultKind;
  detail: string;
  /** ms since the run started */
  at: number;
  healedAt?: number;
  /** Set when the fault could not be injected as planned (e.g. no leader to isolate). */
  skipped?: string;
}

/** What the runner and the clients know about the cluster's processes. */
export class ClusterView {
  readonly down = new Set<number>();
  readonly paused = new Set<number>();
  readonly appDown = new Set<number>();
  /** Nodes currently removed from the group (or learners) by a membership nemesis. */
  readonly notVoter = new Set<number>();

  constructor(readonly cluster: LocalCluster) {
    useToken(cluster.secrets?.value('adminToken') ?? '');
  }

  get ids(): number[] {
    return this.cluster.nodes.map((n) => n.spec.id);
  }

  node(id: number): RaftdNode {
    return this.cluster.node(id);
  }

  /** Nodes whose raftd answers (not killed, not stopped). */
  reachable(): RaftdNode[] {
    return this.cluster.nodes.filter((n) => !this.down.has(n.spec.id) && !this.paused.has(n.spec.id));
  }

  /** Nodes that can serve a read locally: reachable, with their app up and a voter in the group. */
  readable(): RaftdNode[] {
    return this.reachable().filter((n) => !this.appDown.has(n.spec.id) && !this.notVoter.has(n.spec.id));
  }

  /**
   * The group leader (0 if none known): the node that itself claims leadership with the highest
   * term. A node removed from the group keeps a stale view, so what others say is not trusted.
   */
  async leader(group = GROUP): Promise<number> {
    let best = { id: 0, term: -1 };
    await Promise.all(
      this.reachable().map(async (n) => {
        const r = await call(n.url, 'GET', '/status', undefined, 2000);
        if (r.kind !== 'answer' || r.status !== 200) return;
        const g = (r.body as { groups?: Array<{ group: number; role: string; term: number }> }).groups?.find((x) => x.group === group);
        if (g && g.role === 'leader' && g.term > best.term) best = { id: n.spec.id, term: g.term };
      }),
    );
    return best.id;
  }

  /** A node to send a membership change to: the leader if known, else any reachable voter. */
  async entryPoint(): Promise<RaftdNode | undefined> {
    const l = await this.leader();
    if (l) return this.node(l);
    return this.reachable().find((n) => !this.notVoter.has(n.spec.id)) ?? this.reachable()[0];
  }

  /** Voters and learners of the group according to the leader (undefined if no leader answers). */
  async membership(): Promise<{ voters: number[]; learners: number[] } | undefined> {
    const l = await this.leader();
    if (!l || this.down.has(l) || this.paused.has(l)) return undefined;
    const r = await call(this.node(l).url, 'GET', '/status', undefined, 2000);
    if (r.kind !== 'answer' || r.status !== 200) return undefined;
    const g = (r.body as { groups?: Array<{ group: number; leader: number; voters: number[]; learners: number[] }> }).groups?.find((x) => x.group === GROUP);
    if (!g || g.leader !== l) return undefined;
    return { voters: g.voters, learners: g.learners };
  }

  async setFaults(id: number, rules: { dropTo?: number[]; dropFrom?: number[] }): Promise<boolean> {
    const r = await call(this.node(id).url, 'PUT', '/debug/faults', rules, 3000);
    return r.kind === 'answer' && r.status === 200;
  }

  async restartRaftd(id: number): Promise<void> {
    const n = this.node(id);
    if (!n.running()) n.start();
    await waitForHttp(n.url + '/status', 60_000);
    this.down.delete(id);
  }

  async restartApp(id: number): Promise<void> {
    const n = this.node(id);
    if (n.app && !n.app.running()) n.app.start();
    if (n.app) await waitForHttp(n.appUrl()!, 60_000);
    this.appDown.delete(id);
  }

  /** Undoes every fault: processes running and resumed, fault rules cleared, every node a voter. */
  async healAll(deadlineMs = 60_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    for (const n of this.cluster.nodes) {
      n.resume();
      n.app?.resume();
      this.paused.delete(n.spec.id);
    }
    for (const id of this.ids) {
      await this.restartApp(id);
      await this.restartRaftd(id);
    }
    for (const id of this.ids) {
      while (!(await this.setFaults(id, {}))) {
        if (Date.now() > deadline) throw new NemesisError('HEAL_FAILED', `could not clear the fault rules of node ${id}`);
        await sleep(200);
      }
    }
    await this.ensureVoters(deadline);
  }

  /** Re-adds (or promotes) every node that is not a voter, until the leader reports all of them. */
  async ensureVoters(deadline: number): Promise<void> {
    for (;;) {
      const m = await this.membership();
      if (m) {
        const missing = this.ids.filter((id) => !m.voters.includes(id));
        if (missing.length === 0) {
          this.notVoter.clear();
          return;
        }
        const via = await this.entryPoint();
        if (via) await call(via.url, 'POST', `/v1/groups/${GROUP}/members`, { node: missing[0], role: 'voter' }, 8000);
      }
      if (Date.now() > deadline) throw new NemesisError('HEAL_FAILED', `not every node is a voter again: ${JSON.stringify(m)}`);
      await sleep(300);
    }
  }
}

/** Chooses, injects, holds and heals faults until `stopAt`. */
export class Nemesis {
  readonly faults: FaultRecord[] = [];

  constructor(
    private readonly view: ClusterView,
    private readonly kinds: readonly FaultKind[],
    private readonly rng: Rng,
    private readonly t0: number,
    private readonly timing: { quietMs: [number, number]; holdMs: [number, number] } = { quietMs: [500, 2000], holdMs: [1000, 4000] },
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  private now(): number {
    return Math.round(performance.now() - this.t0);
  }

  async run(stopAt: number): Promise<void> {
    if (this.kinds.length === 0) return;
    for (;;) {
      await sleep(this.rng.int(...this.timing.quietMs));
      if (performance.now() >= stopAt) return;
      const kind = this.rng.pick(this.kinds);
      const rec: FaultRecord = { kind, detail: '', at: this.now() };
      this.faults.push(rec);
      await this.one(kind, rec);
      rec.healedAt = this.now();
      this.log(`[${rec.at} ms] ${kind}: ${rec.skipped ? `skipped (${rec.skipped})` : rec.detail} (healed at ${rec.healedAt} ms)`);
    }
  }

  private hold(): Promise<void> {
    return sleep(this.rng.int(...this.timing.holdMs));
  }

  /** Up to a minority of the nodes, the leader among them half of the time. */
  private async victims(leader: number): Promise<number[]> {
    const ids = this.view.ids;
    const max = Math.floor((ids.length - 1) / 2);
    const count = this.rng.int(1, max);
    const pool = ids.slice();
    const out: number[] = [];
    if (leader && this.rng.chance(0.5)) {
      out.push(leader);
      pool.splice(pool.indexOf(leader), 1);
    }
    while (out.length < count) out.push(pool.splice(this.rng.int(0, pool.length - 1), 1)[0]!);
    return out;
  }

  private async one(kind: FaultKind, rec: FaultRecord): Promise<void> {
    const v = this.view;
    const leader = await v.leader();
    switch (kind) {
      case 'kill-raftd': {
        const ids = await this.victims(leader);
        rec.detail = `kill -9 raftd ${ids.join(',')}${ids.includes(leader) ? ` (leader ${leader})` : ''}`;
        for (const id of ids) v.down.add(id);
        await Promise.all(ids.map((id) => v.node(id).kill()));
        await this.hold();
        for (const id of ids) await v.restartRaftd(id);
        return;
      }
      case 'kill-app': {
        const ids = await this.victims(leader);
        rec.detail = `kill -9 app of ${ids.join(',')}`;
        for (const id of ids) v.appDown.add(id);
        await Promise.all(ids.map((id) => v.node(id).app?.kill()));
        await this.hold();
        for (const id of ids) await v.restartApp(id);
        return;
      }
      case 'pause': {
        const ids = await this.victims(leader);
        rec.detail = `SIGSTOP raftd ${ids.join(',')}${ids.includes(leader) ? ` (leader ${leader})` : ''}`;
        for (const id of ids) {
          v.paused.add(id);
          v.node(id).pause();
        }
        await this.hold();
        for (const id of ids) {
          v.node(id).resume();
          v.paused.delete(id);
        }
        return;
      }
      case 'partition-symmetric': {
        const ids = this.shuffled(v.ids);
        const minority = ids.slice(0, this.rng.int(1, Math.floor((ids.length - 1) / 2)));
        const majority = ids.filter((x) => !minority.includes(x));
        rec.detail = `${minority.join(',')} | ${majority.join(',')}`;
        await this.partition([
          ...minority.map((id) => [id, { dropTo: majority, dropFrom: majority }] as const),
          ...majority.map((id) => [id, { dropTo: minority, dropFrom: minority }] as const),
        ]);
        return;
      }
      case 'partition-oneway': {
        // One node's messages to some peers vanish (or it stops hearing them); the reverse direction works.
        const ids = v.ids;
        const a = leader && this.rng.chance(0.5) ? leader : this.rng.pick(ids);
        const others = this.shuffled(ids.filter((x) => x !== a));
        const b = others.slice(0, this.rng.int(1, others.length));
        const outbound = this.rng.chance(0.5);
        rec.detail = outbound ? `${a} -/-> ${b.join(',')}` : `${b.join(',')} -/-> ${a}`;
        await this.partition([[a, outbound ? { dropTo: b } : { dropFrom: b }]]);
        return;
      }
      case 'partition-leader': {
        if (!leader) {
          rec.skipped = 'no leader known';
          return;
        }
        const others = v.ids.filter((x) => x !== leader);
        rec.detail = `leader ${leader} isolated from ${others.join(',')}`;
        await this.partition([[leader, { dropTo: others, dropFrom: others }], ...others.map((id) => [id, { dropFrom: [leader] as number[] }] as const)]);
        return;
      }
      case 'transfer': {
        if (!leader) {
          rec.skipped = 'no leader known';
          return;
        }
        const to = this.rng.pick(v.ids.filter((x) => x !== leader && !v.notVoter.has(x)));
        const r = await call(v.node(leader).url, 'POST', `/v1/groups/${GROUP}/transfer-leadership`, { to }, 8000);
        rec.detail = `leader ${leader} -> ${to}: ${r.kind === 'answer' ? r.status : r.kind}`;
        await this.hold();
        return;
      }
      case 'member-readd':
      case 'member-learner': {
        const id = this.rng.pick(v.ids);
        v.notVoter.add(id);
        // force: taking a voter out of a 3-voter group is exactly the risk this nemesis runs on purpose.
        const r = await call((await v.entryPoint())!.url, 'DELETE', `/v1/groups/${GROUP}/members/${id}?force=true`, undefined, 8000);
        rec.detail = `remove ${id}${id === leader ? ' (leader)' : ''}: ${r.kind === 'answer' ? r.status : r.kind}`;
        await this.hold();
        if (kind === 'member-learner') {
          const l = await call((await v.entryPoint())!.url, 'POST', `/v1/groups/${GROUP}/members`, { node: id, role: 'learner', force: true }, 8000);
          rec.detail += `; add learner: ${l.kind === 'answer' ? l.status : l.kind}`;
          await this.hold();
        }
        const p = await call((await v.entryPoint())!.url, 'POST', `/v1/groups/${GROUP}/members`, { node: id, role: 'voter' }, 8000);
        rec.detail += `; ${kind === 'member-learner' ? 'promote' : 're-add voter'}: ${p.kind === 'answer' ? p.status : p.kind}`;
        // A refused or timed-out change is retried until the node is a voter again.
        await v.ensureVoters(Date.now() + 30_000);
        return;
      }
    }
  }

  private async partition(rules: ReadonlyArray<readonly [number, { dropTo?: number[]; dropFrom?: number[] }]>): Promise<void> {
    const v = this.view;
    await Promise.all(rules.map(([id, r]) => v.setFaults(id, r)));
    await this.hold();
    for (const id of v.ids) {
      for (let i = 0; i < 20 && !(await v.setFaults(id, {})); i++) await sleep(100);
    }
  }

  private shuffled<T>(xs: readonly T[]): T[] {
    const a = xs.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}
