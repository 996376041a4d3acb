// Gives up, through the log, an entry that keeps failing for a reason outside the entry
// (docs/design-notes.md, "Poison entries").
//
// The state machine never skips an entry on its own: replicas would disagree. Instead, on the node whose
// raftd leads the group, once the group's next entry has failed for `afterMs` (and a few attempts), this
// proposes {"kind":"abandon","index":i} to the group. Each replica whose own attempt at i failed and
// whose batch holds that abandon entry fails i as RH_ABANDONED; a replica that applied i keeps it; the
// abandon entry itself is a no-op. raftd's applier sends a growing batch after failed attempts, so the
// abandon entry reaches a stuck replica's batch however much was committed behind i.

import type { RaftdClient } from '../../adapters/sdk/client.js';
import { encodeEntry } from './entry.js';
import type { StuckEntry } from './statemachine.js';

export interface AbandonWatchOptions {
  /** The state machine's stuck entries (ClickHouseStateMachine.stuckEntries). */
  stuck(): Map<number, StuckEntry>;
  /** A client of THIS node's raftd only: isLeader must be about this node. */
  raftd: RaftdClient;
  /** How long the entry must have been failing (default 2 s). */
  afterMs?: number;
  /** Failed attempts before giving up (default 3). */
  minAttempts?: number;
  /** How often to look (default 500 ms). */
  everyMs?: number;
  /**
   * Whether another replica of the group has applied `index` (then this replica is the sick one and
   * abandoning would make it differ): see appliedOnPeers. Default: no check.
   */
  appliedElsewhere?(group: number, index: number): Promise<boolean>;
  log?: (m: string) => void;
}

export const ABANDON_DEFAULTS = { afterMs: 2000, minAttempts: 3, everyMs: 500 } as const;

/** Starts the watch; returns its stop function. */
export function watchStuckEntries(opts: AbandonWatchOptions): () => void {
  const afterMs = opts.afterMs ?? ABANDON_DEFAULTS.afterMs;
  const minAttempts = opts.minAttempts ?? ABANDON_DEFAULTS.minAttempts;
  const log = opts.log ?? (() => undefined);
  /** group -> index and when its abandon was last proposed (proposed again after afterMs if still stuck). */
  const proposed = new Map<number, { index: number; at: number }>();
  let running = false;
  const tick = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      for (const [group, s] of opts.stuck()) {
        if (now - s.since < afterMs || s.attempts < minAttempts) continue;
        const last = proposed.get(group);
        if (last && last.index === s.index && now - last.at < afterMs) continue;
        // Only the leader's replica decides: a follower alone may be the sick one (its disk, its memory).
        if (!(await opts.raftd.isLeader(group).catch(() => false))) continue;
        // A leader that became leader while sick (its replica stuck, the others past the entry) must not
        // give up what the others applied.
        if (opts.appliedElsewhere && (await opts.appliedElsewhere(group, s.index).catch(() => true))) {
          proposed.set(group, { index: s.index, at: now }); // look again after afterMs, not every tick
          log(`group ${group}: entry ${s.index} keeps failing here but another replica applied it: not abandoning (this replica must recover: disk, memory, or a snapshot)`);
          continue;
        }
        proposed.set(group, { index: s.index, at: now });
        log(`group ${group}: entry ${s.index} has failed for ${now - s.since} ms (${s.attempts} attempts, last: ${s.error.slice(0, 200)}); proposing to abandon it`);
        // Not awaited to the end: it applies only after the stuck entry is resolved, which it causes.
        opts.raftd.propose(group, encodeEntry({ v: 1, kind: 'abandon', index: s.index })).catch((e: Error) => log(`group ${group}: proposing the abandon of entry ${s.index}: ${e.message}`));
      }
      for (const g of [...proposed.keys()]) if (!opts.stuck().has(g)) proposed.delete(g);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.everyMs ?? ABANDON_DEFAULTS.everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * appliedElsewhere for watchStuckEntries: asks every member of the group that this node's raftd knows
 * (GET /v1/groups, /v1/nodes) for its `/status`, and answers true if any reports the group applied at
 * or past `index`. Members that do not answer count as not having applied it: a replica that is down
 * and applies the entry later, successfully, is the one case the design notes leave open.
 */
export function appliedOnPeers(local: RaftdClient, clientFor: (httpAddr: string) => RaftdClient, selfId: () => Promise<number>): (group: number, index: number) => Promise<boolean> {
  return async (group, index) => {
    const [groups, nodes, me] = await Promise.all([local.listGroups(), local.listNodes(), selfId()]);
    const members = groups.find((g) => g.group === group)?.members ?? [];
    const checks = nodes.filter((n) => members.includes(n.id) && n.id !== me).map(async (n) => {
      try {
        const st = (await clientFor(n.httpAddr).status()) as { groups?: Array<{ group: number; applied?: number }> };
        return (st.groups?.find((g) => g.group === group)?.applied ?? 0) >= index;
      } catch {
        return false;
      }
    });
    return (await Promise.all(checks)).some((x) => x);
  };
}
