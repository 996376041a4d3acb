// A fault layer between the host and the transport, for chaos tests of real processes:
// drops messages to or from chosen peers (symmetric or one-way partitions) and can delay or
// drop a fraction of them. Off unless raftd runs with RAFTD_ENABLE_FAULTS=1; then the client
// API exposes it at /debug/faults. Never enable it in production.

import type { GroupMessage, SnapshotHeader, TransportPort } from './ports.js';

export interface FaultRules {
  /** Peers this node sends nothing to. */
  dropTo: number[];
  /** Peers whose messages this node ignores. */
  dropFrom: number[];
  /** Fraction [0,1) of all remaining messages dropped at random. */
  lossRate: number;
  /** Extra delay in ms added to every outgoing batch. */
  delayMs: number;
}

export const NO_FAULTS: FaultRules = { dropTo: [], dropFrom: [], lossRate: 0, delayMs: 0 };

export class FaultLayer implements TransportPort {
  private rules: FaultRules = NO_FAULTS;
  dropped = 0;

  constructor(private readonly inner: TransportPort) {}

  set(rules: Partial<FaultRules>): FaultRules {
    this.rules = { ...NO_FAULTS, ...rules };
    return this.rules;
  }

  current(): FaultRules {
    return this.rules;
  }

  /** Filters inbound traffic; returns false when the batch from `from` must be ignored. */
  admits(from: number): boolean {
    if (this.rules.dropFrom.includes(from)) {
      this.dropped++;
      return false;
    }
    return true;
  }

  send(to: number, msgs: GroupMessage[]): void {
    const r = this.rules;
    if (r.dropTo.includes(to)) {
      this.dropped += msgs.length;
      return;
    }
    const kept = r.lossRate > 0 ? msgs.filter(() => Math.random() >= r.lossRate) : msgs;
    this.dropped += msgs.length - kept.length;
    if (kept.length === 0) return;
    if (r.delayMs > 0) setTimeout(() => this.inner.send(to, kept), r.delayMs);
    else this.inner.send(to, kept);
  }

  async sendSnapshot(to: number, header: SnapshotHeader, data: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.rules.dropTo.includes(to)) throw new Error(`fault layer: snapshot to ${to} dropped`);
    return this.inner.sendSnapshot(to, header, data);
  }

  setPeer(id: number, addr: string): void {
    this.inner.setPeer(id, addr);
  }

  removePeer(id: number): void {
    this.inner.removePeer(id);
  }

  unreachablePeers(): number[] {
    return this.inner.unreachablePeers?.() ?? [];
  }
}
