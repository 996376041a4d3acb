// Gives up, through the log, an entry that keeps failing for a reason outside the entry on EVERY replica
// (docs/design-notes.md, "No poison entries").
//
// The state machine never skips an entry on its own: replicas would disagree. On the node whose raftd
// leads the group, once the group's next entry i has failed here for `afterMs` (and a few attempts), this
// asks every member of the group (voters and learners, this node included) through its raftd, as a stale
// read that reaches that member's state machine, whether it is failing at i. A member that answers
// "failing" holds i (a fence: no retry of i until the log decides or the fence expires). Only when every
// member answered "failing", within half the fence, is {"kind":"abandon","index":i,"mac":...} proposed;
// otherwise the fences are released and the check is repeated later: a member that is down, unreachable,
// behind, busy with an attempt, or that applied i keeps the group stuck (and visible) instead.
// Every replica meeting an authenticated abandon of i in its batch fails i as RH_ABANDONED without
// another attempt; the abandon entry itself is a no-op.

import type { RaftdClient } from '../../adapters/sdk/client.js';
import { abandonMac } from './abandon-auth.js';
import { encodeEntry } from './entry.js';
import { ABANDON_FENCE_MS } from './statemachine.js';
import type { AbandonCheckReply, StuckEntry } from './statemachine.js';

/** One member's answer to an abandon check (`error`: it could not be asked, or refused). */
export interface MemberReply {
  node: number;
  reply?: AbandonCheckReply;
  error?: string;
}

export interface AbandonWatchOptions {
  /** The state machine's stuck entries (ClickHouseStateMachine.stuckEntries). */
  stuck(): Map<number, StuckEntry>;
  /** A client of THIS node's raftd only: isLeader must be about this node. */
  raftd: RaftdClient;
  /** The RaftHouse app secret: the MAC of the abandon entry (abandon-auth.ts). */
  secret: string;
  /** Asks every member of the group (see checkMembers); release=true drops the fences a check set. */
  checkMembers(group: number, index: number, release?: boolean): Promise<MemberReply[]>;
  /** How long the entry must have been failing here (default 2 s). */
  afterMs?: number;
  /** Failed attempts before giving up (default 3). */
  minAttempts?: number;
  /** How often to look (default 500 ms). */
  everyMs?: number;
  /** Pause after a check that did not lead to an abandon (default 1 s). */
  recheckMs?: number;
  /** The members' fence (ClickHouseStateMachine abandonFenceMs): the abandon is proposed only within half of it. */
  fenceMs?: number;
  log?: (m: string) => void;
}

export const ABANDON_DEFAULTS = { afterMs: 2000, minAttempts: 3, everyMs: 500, recheckMs: 1000, fenceMs: ABANDON_FENCE_MS } as const;

/** Starts the watch; returns its stop function. */
export function watchStuckEntries(opts: AbandonWatchOptions): () => void {
  const afterMs = opts.afterMs ?? ABANDON_DEFAULTS.afterMs;
  const minAttempts = opts.minAttempts ?? ABANDON_DEFAULTS.minAttempts;
  const recheckMs = opts.recheckMs ?? ABANDON_DEFAULTS.recheckMs;
  const fenceMs = opts.fenceMs ?? ABANDON_DEFAULTS.fenceMs;
  const log = opts.log ?? (() => undefined);
  /** group -> index and when it may next be looked at (a proposed abandon: after afterMs; a refused one: recheckMs). */
  const next = new Map<number, { index: number; at: number }>();
  /** group -> the last "not abandoning" line and when it was logged (the check repeats every second). */
  const lastRefusal = new Map<number, { line: string; at: number }>();
  let running = false;
  const decide = async (group: number, s: StuckEntry): Promise<void> => {
    const started = Date.now();
    const replies = await opts.checkMembers(group, s.index);
    const notFailing = replies.filter((r) => r.reply?.state !== 'failing');
    const elapsed = Date.now() - started;
    if (replies.length > 0 && notFailing.length === 0 && elapsed < fenceMs / 2) {
      next.set(group, { index: s.index, at: Date.now() + afterMs });
      log(`group ${group}: entry ${s.index} has failed for ${started - s.since} ms (${s.attempts} attempts here, last: ${s.error.slice(0, 200)}) and every member (${replies.map((r) => r.node).join(', ')}) reports failing at it; proposing to abandon it`);
      // Not awaited to the end: it applies only after the stuck entry is resolved, which it causes.
      const entry = encodeEntry({ v: 1, kind: 'abandon', index: s.index, mac: abandonMac(opts.secret, 'entry', group, s.index) });
      opts.raftd.propose(group, entry).catch((e: Error) => log(`group ${group}: proposing the abandon of entry ${s.index}: ${e.message}`));
      return;
    }
    next.set(group, { index: s.index, at: Date.now() + recheckMs });
    const why = elapsed >= fenceMs / 2 ? `the check took ${elapsed} ms (more than half the ${fenceMs} ms fence)`
      : notFailing.map((r) => `node ${r.node}: ${r.reply ? `${r.reply.state} (applied ${r.reply.applied})` : r.error?.slice(0, 200)}`).join('; ');
    const line = `group ${group}: entry ${s.index} keeps failing here but not every member is failing at it (${why}): not abandoning; asking again every ${recheckMs} ms`;
    const prev = lastRefusal.get(group);
    if (!prev || prev.line !== line || Date.now() - prev.at > 30_000) {
      lastRefusal.set(group, { line, at: Date.now() });
      log(line);
    }
    // The members that hold the entry for this check may retry it again now.
    if (replies.some((r) => r.reply?.state === 'failing')) {
      opts.checkMembers(group, s.index, true).catch(() => undefined);
    }
  };
  const tick = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      const stuck = opts.stuck();
      for (const [group, s] of stuck) {
        if (now - s.since < afterMs || s.attempts < minAttempts) continue;
        const n = next.get(group);
        if (n && n.index === s.index && now < n.at) continue;
        // Only the leader's replica decides (one decision at a time per group).
        if (!(await opts.raftd.isLeader(group).catch(() => false))) continue;
        await decide(group, s).catch((e: Error) => {
          next.set(group, { index: s.index, at: Date.now() + recheckMs });
          log(`group ${group}: abandon check of entry ${s.index}: ${e.message}`);
        });
      }
      for (const g of [...next.keys()]) if (!stuck.has(g)) { next.delete(g); lastRefusal.delete(g); }
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.everyMs ?? ABANDON_DEFAULTS.everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * checkMembers for watchStuckEntries: the group's members as this node's raftd sees them (`/status`
 * voters and learners; this node's raftd is the leader when it is called), each asked through its own
 * raftd (`/v1/nodes` httpAddr) with a stale read `{op:"abandon-check"}` that its state machine answers.
 * A member without an address, or whose raftd or state machine does not answer, is an error reply.
 */
export function checkMembers(local: RaftdClient, clientFor: (httpAddr: string) => RaftdClient, secret: string): (group: number, index: number, release?: boolean) => Promise<MemberReply[]> {
  return async (group, index, release = false) => {
    const [status, nodes] = await Promise.all([
      local.status() as Promise<{ node?: unknown; groups?: Array<{ group: number; voters?: number[]; learners?: number[] }> }>,
      local.listNodes(),
    ]);
    const g = status.groups?.find((x) => x.group === group);
    if (!g) throw new Error(`this node's raftd does not host group ${group}`);
    const members = [...new Set([...(g.voters ?? []), ...(g.learners ?? [])])];
    const self = Number(status.node);
    const query = { op: release ? 'abandon-release' : 'abandon-check', index, mac: abandonMac(secret, release ? 'release' : 'check', group, index) };
    return Promise.all(members.map(async (node): Promise<MemberReply> => {
      const addr = nodes.find((n) => n.id === node)?.httpAddr;
      if (node !== self && !addr) return { node, error: 'no address known' };
      try {
        const client = node === self ? local : clientFor(addr!);
        return { node, reply: await client.read<AbandonCheckReply>(group, query, 'stale') };
      } catch (e) {
        return { node, error: (e as Error).message };
      }
    }));
  };
}
