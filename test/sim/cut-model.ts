// A deterministic-schedule model of the consistent cut (gateway/cut.ts) with many groups, driving
// the REAL CutReader. Time is a step counter. Each step, groups commit entries at random (each
// commit is a write, linearized at its commit step) and the local replica applies them with a
// random, per-group lag — except in groups whose apply is held. ReadIndex answers a group's commit
// index at a step after it was asked, then (like raftd's barrier) waits until the local replica
// applied it. A read of the local replica looks at its groups one by one over several steps (torn
// unless apply is held). The checker then asks, for every read: is there ONE step t within the
// read's window at which every group's committed state is exactly what the read saw?
//
// Variants: 'cut' (the protocol), 'skip-check' (mutant: no r_g == a_g check), 'stale-readindex'
// (mutant: ReadIndex answers a commit index from before the hold), 'per-group' (today's read
// without a cut: a fresh barrier per group, then the read).

import { CutReader } from '../../clickhouse-adapter/gateway/cut.js';
import type { ApplyHold } from '../../clickhouse-adapter/statemachine/statemachine.js';
import { Rng } from './rng.js';

export type CutVariant = 'cut' | 'skip-check' | 'stale-readindex' | 'per-group';

export interface CutModelOptions {
  seed: number;
  groups: number;
  readers: number;
  readsPerReader: number;
  variant: CutVariant;
  /** Chance per step that some group commits an entry. */
  commitRate?: number;
  /** Chance per step and group that the local replica applies one pending entry. */
  applyRate?: number;
}

export interface ReadRecord {
  start: number;
  end: number;
  seen: Map<number, number>;
  attempts: number;
}

export interface CutModelResult {
  reads: ReadRecord[];
  violations: string[];
  /** Reads that failed with RH_CUT_UNAVAILABLE. */
  unavailable: number;
  retries: number;
  steps: number;
}

export async function runCutModel(o: CutModelOptions): Promise<CutModelResult> {
  const rng = new Rng(o.seed);
  const G = o.groups;
  const groups = Array.from({ length: G }, (_, i) => i + 1);
  const commitRate = o.commitRate ?? 0.5;
  const applyRate = o.applyRate ?? 0.4;
  // commitTimes[g][i]: the step index i of group g was committed at (index 0: before everything).
  const commitTimes = new Map<number, number[]>(groups.map((g) => [g, [-1]]));
  const applied = new Map<number, number>(groups.map((g) => [g, 0]));
  const held = new Map<number, number>(groups.map((g) => [g, 0]));
  const commit = (g: number) => commitTimes.get(g)!.length - 1;
  const commitAt = (g: number, t: number) => commitTimes.get(g)!.filter((x) => x <= t).length - 1;
  let now = 0;
  let waiters: Array<{ at: number; wake: () => void }> = [];
  const sleep = (n: number) => new Promise<void>((wake) => waiters.push({ at: now + n, wake }));
  const until = async (cond: () => boolean) => { while (!cond()) await sleep(1); };

  const hold = async (gs: readonly number[]): Promise<ApplyHold> => {
    await sleep(rng.int(0, 1));
    for (const g of gs) held.set(g, held.get(g)! + 1);
    const snapshot = new Map(gs.map((g) => [g, applied.get(g)!]));
    let done = false;
    return { applied: snapshot, release: () => { if (done) return; done = true; for (const g of gs) held.set(g, held.get(g)! - 1); } };
  };
  const readIndex = async (g: number): Promise<number> => {
    const asked = now;
    await sleep(rng.int(0, 3));
    // The leader's answer: its commit index when it got the request (after `asked`); the mutant
    // answers with one from before.
    const r = o.variant === 'stale-readindex' ? commitAt(g, asked - rng.int(1, 6)) : commit(g);
    await until(() => applied.get(g)! >= r);
    await sleep(rng.int(0, 1));
    return r;
  };
  const cut = new CutReader({ hold, readIndex, maxAttempts: 1000, maxHoldMs: 1e9, backoffMs: 0, skipCheck: o.variant === 'skip-check' });

  const reads: ReadRecord[] = [];
  let unavailable = 0;
  const reader = async (id: number) => {
    const rr = new Rng(o.seed * 1000 + id);
    for (let k = 0; k < o.readsPerReader; k++) {
      await sleep(rr.int(0, 4));
      const gs = rr.chance(0.5) ? groups : groups.filter(() => rr.chance(0.5));
      if (gs.length < 2) continue;
      const start = now;
      const look = async (): Promise<Buffer> => {
        const seen: Array<[number, number]> = [];
        for (const g of gs) {
          seen.push([g, applied.get(g)!]);
          await sleep(rr.int(0, 2)); // the read reaches the next group's table a little later
        }
        return Buffer.from(JSON.stringify(seen));
      };
      try {
        let body: Buffer;
        let attempts = 1;
        if (o.variant === 'per-group') {
          await Promise.all(gs.map((g) => readIndex(g)));
          body = await look();
        } else {
          const r = await cut.read(gs, look);
          body = r.body;
          attempts = r.attempts;
        }
        reads.push({ start, end: now, seen: new Map(JSON.parse(body.toString()) as Array<[number, number]>), attempts });
      } catch (e) {
        if (!/RH_CUT_UNAVAILABLE/.test((e as Error).message)) throw e;
        unavailable++;
      }
    }
  };

  let finished = false;
  const all = Promise.all(Array.from({ length: o.readers }, (_, i) => reader(i))).finally(() => { finished = true; });
  all.catch(() => undefined);
  while (!finished) {
    now++;
    if (rng.chance(commitRate)) commitTimes.get(rng.pick(groups))!.push(now);
    for (const g of groups) {
      if (held.get(g)! === 0 && applied.get(g)! < commit(g) && rng.chance(applyRate)) applied.set(g, applied.get(g)! + 1);
    }
    const due = waiters.filter((w) => w.at <= now);
    waiters = waiters.filter((w) => w.at > now);
    for (const w of due) w.wake();
    // Let every continuation run before the next step (a few macrotask turns).
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    if (now > 2_000_000) throw new Error('model did not finish');
  }
  await all;
  return { reads, violations: checkOneInstant(reads, commitTimes), unavailable, retries: cut.stats().retries, steps: now };
}

/**
 * Every read must equal the committed state of all its groups at one step t, start <= t <= end:
 * group g's state was `seen` exactly during [commitTimes[seen], commitTimes[seen + 1]).
 */
export function checkOneInstant(reads: ReadRecord[], commitTimes: Map<number, number[]>): string[] {
  const out: string[] = [];
  for (const r of reads) {
    let lo = r.start;
    let hi = r.end + 1; // exclusive
    for (const [g, idx] of r.seen) {
      const times = commitTimes.get(g)!;
      lo = Math.max(lo, times[idx]!);
      hi = Math.min(hi, times[idx + 1] ?? Infinity);
    }
    if (lo >= hi) {
      out.push(`read [${r.start}, ${r.end}] saw ${[...r.seen].map(([g, i]) => `g${g}@${i}`).join(' ')}: no instant in its window had that state`);
    }
  }
  return out;
}
