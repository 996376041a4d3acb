// placement (issue 21): a request for a group this node holds no replica of goes to a node that
// does. The meta group says where the group is placed; the relay tries its leader as last learnt
// first, then the group's members (ones this node hears from first). A member that does not lead
// answers NOT_LEADER with the leader's address (a forwarded request is never forwarded again): the
// relay follows that hint once. Only answers that prove the request was not taken move on to the
// next node: a refused connection, NOT_LEADER, NO_LEADER, GROUP_NOT_FOUND (the replica moved on).

import { RaftdError } from '../errors.js';
import type { Host } from '../host/host.js';
import { ForwardError, type ForwardAnswer } from './forward.js';

/** Answers that say the request was not taken: safe to try another member. */
const NOT_TAKEN = new Set(['NOT_LEADER', 'NO_LEADER', 'GROUP_NOT_FOUND']);

export class MemberRelay {
  /** Group -> HTTP address of its leader as last learnt (a hint; wrong ones cost one hop). */
  private readonly leaders = new Map<number, string>();

  constructor(private readonly host: Host) {}

  /** Whether requests for `group` must go to another node (placed elsewhere, no replica here). */
  isRemote(group: number): boolean {
    return !this.host.groups.has(group) && this.host.meta.groups.has(group);
  }

  /** The nodes to try, best first: the learnt leader, then the members this node hears from. */
  private candidates(group: number): string[] {
    const info = this.host.meta.groups.get(group);
    const move = this.host.meta.placement.moves.get(group);
    const ids = [...(info?.members ?? [])];
    if (move?.to !== undefined && move.to !== null && !ids.includes(move.to)) ids.push(move.to);
    const alive = (id: number) => this.host.liveness.isAlive(id);
    ids.sort((a, b) => Number(alive(b)) - Number(alive(a)) || a - b);
    const out: string[] = [];
    const hint = this.leaders.get(group);
    if (hint) out.push(hint);
    for (const id of ids) {
      if (id === this.host.nodeId) continue;
      const addr = this.host.httpAddrOf(id);
      if (addr && !out.includes(addr)) out.push(addr);
    }
    return out;
  }

  /**
   * Sends through `send` to a member of the group until one takes the request; the answer is
   * relayed as is. Throws NO_LEADER when no member could be reached (nothing was taken), and
   * TIMEOUT when a member may have taken it and its answer was lost.
   */
  async relay(group: number, deadline: number, send: (addr: string) => Promise<ForwardAnswer>): Promise<ForwardAnswer & { via: string }> {
    let tried = new Set<string>();
    let last = 'no member of the group is known';
    const queue = this.candidates(group);
    while (Date.now() < deadline) {
      if (queue.length === 0) {
        // Every member said "not taken" (an election in progress, say): try them all again shortly.
        await new Promise((r) => setTimeout(r, 100));
        tried = new Set();
        queue.push(...this.candidates(group));
        if (queue.length === 0) break;
        continue;
      }
      const addr = queue.shift()!;
      if (tried.has(addr)) continue;
      tried.add(addr);
      let answer: ForwardAnswer;
      try {
        answer = await send(addr);
      } catch (e) {
        if (e instanceof ForwardError && e.code === 'REFUSED') {
          last = `${addr}: ${e.message}`;
          if (this.leaders.get(group) === addr) this.leaders.delete(group);
          continue;
        }
        throw new RaftdError('TIMEOUT', `group ${group}: relaying to node at ${addr} failed (${(e as Error).message}); the outcome is unknown`);
      }
      const error = errorOf(answer);
      if (error && NOT_TAKEN.has(error.code)) {
        last = `${addr}: ${error.code}`;
        if (this.leaders.get(group) === addr) this.leaders.delete(group);
        // The member knows the leader: go there next (it may be this node's first try too).
        if (error.leader?.httpAddr && error.leader.httpAddr !== this.host.httpAddrOf(this.host.nodeId)) {
          tried.delete(error.leader.httpAddr);
          queue.unshift(error.leader.httpAddr);
        }
        continue;
      }
      if (answer.status < 500) this.leaders.set(group, addr);
      return { ...answer, via: addr };
    }
    throw new RaftdError('NO_LEADER', `group ${group} has no replica on node ${this.host.nodeId} and no member took the request (${last}); retry`);
  }
}

function errorOf(a: ForwardAnswer): { code: string; leader?: { httpAddr?: string } } | undefined {
  let body: unknown = a.body;
  if (typeof body === 'string') {
    if (a.status < 400) return undefined;
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const err = (body as { error?: { code?: unknown; leader?: { httpAddr?: string } } } | null)?.error;
  return err && typeof err.code === 'string' ? { code: err.code, ...(err.leader ? { leader: err.leader } : {}) } : undefined;
}
