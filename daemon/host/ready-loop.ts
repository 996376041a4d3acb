// The host's ready loop: every group with work hands over its Ready; one flush persists all of
// them in ONE storage write (one fsync) and sends their messages, batched per peer: what the core
// lets leave early (Ready.earlyMessages) while the write runs, everything else after it. Committed
// entries go to the host's apply hand-off (during the write when already durable), then the cores
// advance. Moved out of host.ts as it was; the Host owns what happens to each Ready's parts.

import type { Logger } from 'pino';
import { MessageType, type Entry, type Message, type Ready, type Role } from '../raft/types.js';
import type { GroupReplica } from './group.js';
import type { HostMetrics } from './metrics.js';
import type { GroupMessage, GroupWrite, LogStorePort, TransportPort } from './ports.js';
import type { Clock } from '../clock.js';

/** What the loop asks of the Host for the parts of a Ready that are not I/O. */
export interface ReadyLoopHost {
  onSoftState(g: GroupReplica, role: Role, leader: number): void;
  applyCommitted(g: GroupReplica, entries: Entry[]): void;
  sendSnapshot(g: GroupReplica, m: Message): Promise<void>;
  stopping(): boolean;
  /** The log store failed: the host stops acting (and the shell is told through deps.fatal). */
  stopForGood(): void;
}

export class ReadyLoop {
  private readonly dirty = new Set<GroupReplica>();
  private flushing = false;
  private flushScheduled = false;
  /** The flush in progress (stop() waits for it). */
  done: Promise<void> = Promise.resolve();
  /** First states of groups bootstrapped since the last flush: written first in the next one. */
  readonly bootstrapWrites: GroupWrite[] = [];

  constructor(
    private readonly deps: { store: LogStorePort; transport: TransportPort; clock: Clock; fatal(err: unknown): void },
    private readonly metrics: HostMetrics,
    private readonly logger: Logger,
    /** Mutation (HostFaults.sendBeforePersist): every message leaves before the write. */
    private readonly sendBeforePersist: boolean,
    private readonly host: ReadyLoopHost,
  ) {}

  markDirty(g: GroupReplica): void {
    this.dirty.add(g);
  }

  schedule(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    this.deps.clock.defer(() => {
      this.flushScheduled = false;
      this.done = this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.dirty.size > 0) {
        const batch: Array<[GroupReplica, Ready]> = [];
        for (const g of this.dirty) if (!g.deleted && g.node.hasReady()) batch.push([g, g.node.ready()]);
        this.dirty.clear();
        if (batch.length === 0) break;
        await this.handleReadies(batch);
      }
    } catch (e) {
      // Storage failure: we cannot acknowledge anything any more. Stop rather than lie.
      this.logger.fatal({ err: e }, 'persisting Raft state failed; stopping the node');
      this.host.stopForGood();
      this.deps.fatal(e);
    } finally {
      this.flushing = false;
    }
    if (this.dirty.size > 0 && !this.host.stopping()) this.schedule();
  }

  private async handleReadies(batch: Array<[GroupReplica, Ready]>): Promise<void> {
    // A group bootstrapped since the last flush has its first state in this write: nothing of
    // this flush goes out before it is durable.
    const bootstrapping = this.bootstrapWrites.length > 0;
    const writes: GroupWrite[] = this.bootstrapWrites.splice(0);
    // Entries, votes and terms must be on disk before any message goes out; a commit index alone
    // need not be (it is re-learnt from the leader), so a flush that only moves commits skips fsync.
    let mustSync = writes.length > 0;
    for (const [g, rd] of batch) {
      if (rd.entries.length === 0 && !rd.hardState && !rd.snapshot) continue;
      const w: GroupWrite = { group: g.group };
      if (rd.snapshot) w.snapshot = rd.snapshot.metadata;
      if (rd.entries.length > 0) w.entries = rd.entries;
      if (rd.hardState) w.hardState = rd.hardState;
      writes.push(w);
      mustSync ||= rd.mustSync;
    }
    // What may go out BEFORE the write is the core's call (Ready.earlyMessages: leaders' appends
    // and heartbeats, Raft thesis 10.2.1), so the followers' fsyncs overlap the leader's.
    // Everything else (votes, append acks) waits for it.
    const early = new Outbox();
    const late = new Outbox();
    const snaps: Array<[GroupReplica, Message]> = [];
    const allEarly = this.sendBeforePersist;
    for (const [g, rd] of batch) {
      for (const m of rd.earlyMessages) (bootstrapping ? late : early).add(g.group, m);
      for (const m of rd.messages) {
        if (m.type === MessageType.Snap) snaps.push([g, m]);
        else (allEarly ? early : late).add(g.group, m);
      }
    }
    this.sendOutbox(early);
    // Committed entries below this Ready's new entries are already durable here (an earlier
    // flush wrote them): the app gets them while this write runs instead of after it.
    const appliedEarly = new Set<GroupReplica>();
    for (const [g, rd] of batch) {
      if (rd.softState) this.host.onSoftState(g, rd.softState.role, rd.softState.leader);
      if (rd.committedEntries.length === 0 || rd.snapshot) continue;
      const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      if (rd.entries.length > 0 && lastCommitted >= rd.entries[0]!.index) continue;
      if (lastCommitted > g.storage.lastIndex()) continue;
      this.host.applyCommitted(g, rd.committedEntries);
      appliedEarly.add(g);
    }
    if (writes.length > 0) {
      const t0 = this.deps.clock.now();
      await this.deps.store.write(writes, { sync: mustSync });
      if (mustSync) this.metrics.observeFsync(this.deps.clock.now() - t0, writes.length);
    }
    // Now durable: update the in-memory log caches, then let the other messages go.
    for (const [g, rd] of batch) {
      if (rd.snapshot) g.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) g.storage.append(rd.entries);
      if (rd.hardState) g.storage.setHardState(rd.hardState);
    }
    this.sendOutbox(late);
    for (const [g, m] of snaps) void this.host.sendSnapshot(g, m);
    for (const [g, rd] of batch) {
      if (rd.committedEntries.length > 0 && !appliedEarly.has(g)) this.host.applyCommitted(g, rd.committedEntries);
      if (rd.readStates.length > 0) g.onReadStates(rd.readStates);
      g.node.advance(rd);
      if (g.node.hasReady()) this.markDirty(g);
    }
  }

  private sendOutbox(outbox: Outbox): void {
    for (const [to, msgs] of outbox.byPeer) {
      this.metrics.messagesSent += msgs.length;
      this.deps.transport.send(to, msgs);
    }
  }
}

/** Messages of one flush, per destination node (the transport sends each list as one batch). */
class Outbox {
  readonly byPeer = new Map<number, GroupMessage[]>();

  add(group: number, message: Message): void {
    let q = this.byPeer.get(message.to);
    if (!q) this.byPeer.set(message.to, (q = []));
    q.push({ group, message });
  }
}
