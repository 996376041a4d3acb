// A tiny synchronous cluster for unit tests: every node is a real RaftNode on a real
// MemoryStorage; Ready batches are persisted, sent and applied exactly as a host would.
import {
  MemoryStorage,
  MessageType,
  RaftNode,
  Role,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
} from '../../../daemon/raft/index.js';

/** A deterministic [0,1) source (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TestNode {
  id: NodeId;
  raft: RaftNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
  /** Every message this node sent (for assertions). */
  sent: Message[];
}

export type NodeOpts = Partial<Omit<RaftConfig, 'id' | 'storage'>>;

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export class Network {
  nodes = new Map<NodeId, TestNode>();
  /** Links "from-to" that drop everything. */
  private cut = new Set<string>();
  /** Drop messages matching this predicate. */
  dropIf: ((m: Message) => boolean) | undefined;
  /** Messages held back instead of delivered (when holdIf matches). */
  holdIf: ((m: Message) => boolean) | undefined;
  held: Message[] = [];
  delivered: Message[] = [];

  constructor(
    ids: NodeId[],
    readonly opts: NodeOpts = {},
    conf?: ConfState,
    storages?: Map<NodeId, MemoryStorage>,
  ) {
    const cs = conf ?? { voters: ids, learners: [] };
    for (const id of ids) this.add(id, storages?.get(id) ?? new MemoryStorage({ confState: cs }));
  }

  config(id: NodeId, storage: MemoryStorage, extra: NodeOpts = {}): RaftConfig {
    return {
      id,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      random: seeded(id * 7919),
      ...this.opts,
      ...extra,
    };
  }

  add(id: NodeId, storage: MemoryStorage, extra: NodeOpts = {}): TestNode {
    const n: TestNode = { id, raft: new RaftNode(this.config(id, storage, extra)), storage, applied: [], readStates: [], sent: [] };
    this.nodes.set(id, n);
    return n;
  }

  /** Simulates a crash and restart: the node keeps only its storage. */
  restart(id: NodeId, extra: NodeOpts = {}): TestNode {
    const old = this.node(id);
    const applied = old.applied.length > 0 ? old.applied[old.applied.length - 1]!.index : old.storage.firstIndex() - 1;
    const n = this.add(id, old.storage, { applied, ...extra });
    n.applied = old.applied;
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  isolate(id: NodeId): void {
    for (const o of this.nodes.keys()) if (o !== id) this.cutLink(id, o);
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  cutOneWay(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}-${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Handles one Ready of node n like a host: persist, collect messages, apply, advance. */
  handleReady(n: TestNode): Message[] {
    const rd = n.raft.ready();
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) n.applied.push(e);
    for (const rs of rd.readStates) n.readStates.push(rs);
    n.raft.advance(rd);
    const msgs = [...rd.earlyMessages, ...rd.messages];
    n.sent.push(...msgs);
    return msgs;
  }

  /** Drains readies and delivers messages until the cluster is quiet. */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const out: Message[] = [];
      for (const n of this.nodes.values()) {
        while (n.raft.hasReady()) out.push(...this.handleReady(n));
      }
      if (out.length === 0) return;
      for (const m of out) this.deliver(m);
    }
    throw new Error('network did not stabilize');
  }

  deliver(m: Message): void {
    if (this.cut.has(`${m.from}-${m.to}`)) return;
    if (this.dropIf?.(m)) return;
    if (this.holdIf?.(m)) {
      this.held.push(m);
      return;
    }
    const to = this.nodes.get(m.to);
    if (!to) return;
    this.delivered.push(m);
    to.raft.step(m);
  }

  releaseHeld(): void {
    const h = this.held;
    this.held = [];
    for (const m of h) this.deliver(m);
  }

  /** Ticks every node (or the given ones) `n` times, stabilizing after each tick. */
  tick(n = 1, ids?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids ?? this.nodes.keys()) this.node(id).raft.tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).raft.campaign();
    this.stabilize();
  }

  leader(): TestNode | undefined {
    let found: TestNode | undefined;
    for (const n of this.nodes.values()) if (n.raft.status().role === Role.Leader) found = n;
    return found;
  }

  /** Data of applied normal entries with data (skips leaders' empty entries). */
  appliedData(id: NodeId): string[] {
    return this.node(id)
      .applied.filter((e) => e.data.length > 0 && e.type === 0)
      .map((e) => dec(e.data));
  }

  countSent(type: MessageType, from?: NodeId): number {
    let c = 0;
    for (const n of this.nodes.values()) {
      if (from !== undefined && n.id !== from) continue;
      for (const m of n.sent) if (m.type === type) c++;
    }
    return c;
  }

  clearSent(): void {
    for (const n of this.nodes.values()) n.sent = [];
    this.delivered = [];
  }
}

/** A message with every field at its zero value. */
export function msg(fields: Partial<Message> & { type: MessageType; from: NodeId; to: NodeId }): Message {
  return { term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0), ...fields };
}

/** A storage holding a log with the given terms at indexes 1..n (data "i"), and hard state term. */
export function storageWithLog(terms: number[], conf: ConfState, hardTerm?: number, commit = 0): MemoryStorage {
  const s = new MemoryStorage({ confState: conf });
  s.append(terms.map((t, i) => ({ term: t, index: i + 1, type: 0, data: enc(`e${i + 1}`) })));
  s.setHardState({ term: hardTerm ?? (terms.length ? terms[terms.length - 1]! : 0), vote: 0, commit });
  return s;
}

export function termsOf(s: MemoryStorage): number[] {
  const out: number[] = [];
  for (let i = s.firstIndex(); i <= s.lastIndex(); i++) out.push(s.term(i));
  return out;
}
