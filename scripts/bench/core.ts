// `npm run bench:core`: committed 64-byte entries per second through a 3-node cluster of the
// real Raft core with no I/O and no faults. A lean harness (not the fault simulator): storage is
// MemoryStorage, messages are handed over in memory, "apply" counts entries.
//
// Reports one group with batching (proposeBatch of many entries per round) and 1,000 groups,
// plus where the wall time goes: the core (step/ready/advance/propose), storage, the harness.
// For a real profile: `npm run build && node --cpu-prof dist/scripts/bench/core.js` and open the
// .cpuprofile in Chrome DevTools.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MemoryStorage, RaftNode } from '../../daemon/raft/index.js';
import { Role, type Message, type NodeId, type Ready } from '../../daemon/raft/types.js';

const ENTRY_BYTES = 64;
const VOTERS: NodeId[] = [1, 2, 3];

interface Node {
  raft: RaftNode;
  storage: MemoryStorage;
  applied: number;
}

interface Times {
  core: number;
  storage: number;
  propose: number;
}

/** performance.now() costs ~5% of a tight loop, so the headline figure runs with the clock off. */
let timing = true;
const clock = (): number => (timing ? performance.now() : 0);

class Group {
  nodes = new Map<NodeId, Node>();
  inbox: Message[] = [];
  committed = 0;
  private seed = 1;

  constructor(opts: { maxSizePerMsg: number; maxInflightMsgs: number; maxUncommitted: number }) {
    for (const id of VOTERS) {
      const storage = new MemoryStorage({ confState: { voters: VOTERS, learners: [] } });
      const raft = new RaftNode({
        id,
        storage,
        electionTick: 10,
        heartbeatTick: 1,
        random: () => {
          // Deterministic LCG: the core takes its randomness from us.
          this.seed = (Math.imul(this.seed, 1103515245) + 12345) >>> 0;
          return this.seed / 4294967296;
        },
        maxSizePerMsg: opts.maxSizePerMsg,
        maxInflightMsgs: opts.maxInflightMsgs,
        maxUncommittedEntriesSize: opts.maxUncommitted,
        checkQuorum: false,
        preVote: false,
      });
      this.nodes.set(id, { raft, storage, applied: 0 });
    }
  }

  leader(): Node {
    return this.nodes.get(1)!;
  }

  elect(t: Times): void {
    this.leader().raft.campaign();
    for (let i = 0; i < 100 && this.leader().raft.status().role !== Role.Leader; i++) this.pump(t);
    if (this.leader().raft.status().role !== Role.Leader) throw new Error('bench: node 1 did not become leader');
    this.pump(t);
  }

  /** Drains all work: readies of every node and the messages between them. */
  pump(t: Times): void {
    for (let guard = 0; guard < 10_000; guard++) {
      let any = false;
      for (const n of this.nodes.values()) {
        let a = clock();
        if (!n.raft.hasReady()) {
          t.core += clock() - a;
          continue;
        }
        any = true;
        const rd: Ready = n.raft.ready();
        let b = clock();
        t.core += b - a;
        if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
        if (rd.entries.length) n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        a = clock();
        t.storage += a - b;
        for (const m of rd.messages) this.inbox.push(m);
        if (n === this.leader()) this.committed += rd.committedEntries.length;
        if (rd.committedEntries.length) n.applied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
        b = clock();
        n.raft.advance(rd);
        t.core += clock() - b;
      }
      if (this.inbox.length) {
        any = true;
        const batch = this.inbox;
        this.inbox = [];
        const a = clock();
        for (const m of batch) this.nodes.get(m.to)!.raft.step(m);
        t.core += clock() - a;
      }
      if (!any) return;
    }
    throw new Error('bench: cluster did not quiesce');
  }

  /** Keeps memory flat: snapshot + compact applied prefixes now and then. */
  compact(t: Times): void {
    const a = clock();
    for (const n of this.nodes.values()) {
      const keep = n.applied - 1000;
      if (keep > n.storage.firstIndex() + 10_000) {
        n.storage.createSnapshot(keep, { voters: VOTERS, learners: [] }, new Uint8Array());
        n.storage.compact(keep);
      }
    }
    t.storage += clock() - a;
  }
}

function payloads(n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const d = new Uint8Array(ENTRY_BYTES);
    d[0] = i & 255;
    d[1] = (i >> 8) & 255;
    out.push(d);
  }
  return out;
}

function report(label: string, entries: number, ms: number, t: Times): void {
  const rate = entries / (ms / 1000);
  if (!timing) {
    console.log(`${label}: ${entries.toLocaleString('en-US')} entries in ${(ms / 1000).toFixed(2)} s = ${Math.round(rate).toLocaleString('en-US')} committed entries/s`);
    return;
  }
  const harness = Math.max(0, ms - t.core - t.storage - t.propose);
  const pct = (x: number) => `${((100 * x) / ms).toFixed(0)}%`;
  console.log(`${label}: ${entries.toLocaleString('en-US')} entries in ${(ms / 1000).toFixed(2)} s = ${Math.round(rate).toLocaleString('en-US')} committed entries/s`);
  console.log(
    `  time: core step/ready/advance ${pct(t.core)}, propose ${pct(t.propose)}, MemoryStorage ${pct(t.storage)}, harness ${pct(harness)}`,
  );
}

function oneGroup(batch: number, seconds: number): number {
  const g = new Group({ maxSizePerMsg: 1 << 20, maxInflightMsgs: 256, maxUncommitted: 1 << 30 });
  const t: Times = { core: 0, storage: 0, propose: 0 };
  g.elect(t);
  const data = payloads(batch);
  // Warm up the JIT before measuring.
  for (let i = 0; i < 50; i++) {
    g.leader().raft.proposeBatch(data);
    g.pump(t);
  }
  const t2: Times = { core: 0, storage: 0, propose: 0 };
  const base = g.committed;
  const start = performance.now();
  let rounds = 0;
  while (performance.now() - start < seconds * 1000) {
    const a = clock();
    g.leader().raft.proposeBatch(data);
    t2.propose += clock() - a;
    g.pump(t2);
    if (++rounds % 64 === 0) g.compact(t2);
  }
  const ms = performance.now() - start;
  const n = g.committed - base;
  report(`1 group, batches of ${batch}`, n, ms, t2);
  return n / (ms / 1000);
}

function manyGroups(groups: number, batch: number, seconds: number): number {
  const gs: Group[] = [];
  const t: Times = { core: 0, storage: 0, propose: 0 };
  for (let i = 0; i < groups; i++) {
    const g = new Group({ maxSizePerMsg: 1 << 20, maxInflightMsgs: 256, maxUncommitted: 1 << 30 });
    g.elect(t);
    gs.push(g);
  }
  const data = payloads(batch);
  const t2: Times = { core: 0, storage: 0, propose: 0 };
  const base = gs.reduce((a, g) => a + g.committed, 0);
  const start = performance.now();
  let rounds = 0;
  while (performance.now() - start < seconds * 1000) {
    for (const g of gs) {
      const a = clock();
      g.leader().raft.proposeBatch(data);
      t2.propose += clock() - a;
      g.pump(t2);
    }
    if (++rounds % 64 === 0) for (const g of gs) g.compact(t2);
  }
  const ms = performance.now() - start;
  const n = gs.reduce((a, g) => a + g.committed, 0) - base;
  report(`${groups} groups, batches of ${batch} per group per round`, n, ms, t2);
  return n / (ms / 1000);
}

/**
 * Each case runs in a fresh process: measured in one process, the 1,000-group case ran ~4x slower
 * after the single-group cases (heap and inline-cache state left behind), which measures the
 * harness's history rather than the core.
 */
type Case = 'one64' | 'one1024' | 'groups' | 'breakdown';

function runCase(c: Case, seconds: number): void {
  switch (c) {
    case 'one64':
      return void emit(oneGroup(64, seconds));
    case 'one1024':
      return void emit(oneGroup(1024, seconds));
    case 'groups':
      return void emit(manyGroups(1000, 64, seconds));
    case 'breakdown':
      timing = true;
      oneGroup(64, Math.min(1, seconds));
      manyGroups(1000, 64, Math.min(1, seconds));
      return;
  }
}

function emit(rate: number): void {
  console.log(`RATE ${rate}`);
}

function main(): void {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const only = process.env.BENCH_CASE as Case | undefined;
  timing = false;
  if (only) return runCase(only, seconds);
  console.log(`bench:core — 3-node cluster, ${ENTRY_BYTES}-byte entries, in-memory, no faults (node ${process.version}); each case in a fresh process`);
  const cases: [Case, string][] = [
    ['one64', '1 group, batch 64'],
    ['one1024', '1 group, batch 1024'],
    ['groups', '1,000 groups, batch 64'],
  ];
  const results: [string, number][] = [];
  const child = (c: Case): string => {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_CASE: c },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`bench case ${c} failed: ${r.stderr}`);
    return r.stdout;
  };
  for (const [c, label] of cases) {
    const out = child(c);
    process.stdout.write(out.split('\n').filter((l) => l && !l.startsWith('RATE ')).map((l) => l + '\n').join(''));
    const m = /^RATE (\S+)$/m.exec(out);
    results.push([label, m ? Number(m[1]) : NaN]);
  }
  console.log('');
  console.log('where the time goes (a shorter pass with the clock on, which itself costs time):');
  process.stdout.write(child('breakdown'));
  console.log('');
  for (const [k, v] of results) console.log(`${k.padEnd(28)} ${Math.round(v).toLocaleString('en-US').padStart(12)} entries/s`);
  const best = Math.max(results[0]![1], results[1]![1]);
  console.log(`target 1,000,000 entries/s for one group: ${best >= 1_000_000 ? 'met' : 'NOT met'}`);
  console.log('profile one case: BENCH_CASE=groups node --cpu-prof dist/scripts/bench/core.js  (open the .cpuprofile in DevTools)');
}

main();
