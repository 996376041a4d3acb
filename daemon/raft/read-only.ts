// ReadIndex requests waiting for a quorum to confirm the leader is still the leader. The leader
// records its commit index, broadcasts a heartbeat carrying the request's context, and answers once
// a quorum echoed it. Requests are queued in order: a quorum for a later request confirms every
// earlier one too (leadership at a later instant implies it at the earlier).
import type { NodeId } from './types.js';

export interface ReadRequest {
  /** The node that asked (the leader itself for local reads). */
  from: NodeId;
  context: Uint8Array;
  index: number;
  acks: Set<NodeId>;
}

export function contextKey(ctx: Uint8Array): string {
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]!);
  return s;
}

export class ReadOnly {
  private pending = new Map<string, ReadRequest>();
  private queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  /** Adds a request; a duplicate context still in the queue is ignored (returns false). */
  add(from: NodeId, context: Uint8Array, index: number, self: NodeId): boolean {
    const key = contextKey(context);
    if (this.pending.has(key)) return false;
    this.pending.set(key, { from, context, index, acks: new Set([self]) });
    this.queue.push(key);
    return true;
  }

  /** Records that `from` echoed `context`; returns the acks so far (undefined if unknown). */
  recvAck(from: NodeId, context: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(contextKey(context));
    if (!rs) return undefined;
    rs.acks.add(from);
    return rs.acks;
  }

  /** Removes and returns every request up to and including the one with `context`. */
  advance(context: Uint8Array): ReadRequest[] {
    const key = contextKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const keys = this.queue.splice(0, at + 1);
    const out: ReadRequest[] = [];
    for (const k of keys) {
      out.push(this.pending.get(k)!);
      this.pending.delete(k);
    }
    return out;
  }

  /** Context of the newest pending request, to piggyback on a heartbeat round. */
  lastContext(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1]!)!.context;
  }

  clear(): void {
    this.pending.clear();
    this.queue = [];
  }
}
