// Where the groups are, as this rafthouse sees it (placed groups, issue 21), and the coordinator's
// half of a cross-node consistent cut: apply held in the local groups AND in one member of every
// remote group (docs/design-notes.md, "RaftHouse over placed groups").
//
// The placement comes from this node's own raftd (GET /v1/placement, polled): which groups it hosts,
// the members of the others, which nodes are alive, the moves running. A move to this node creates
// the group's database at once (before the learner's snapshot or first entries arrive); raftd's
// DeleteGroup drops a replica moved away. Remote members are reached on their rafthouse's internal
// endpoint (server.ts), whose address this node is given (--internal-peers): raftd does not know it.

import { signAppRequest } from '../../protocol/app-auth.js';
import type { RaftdClient, PlacementView } from '../../adapters/sdk/client.js';
import type { ApplyHold } from '../statemachine/statemachine.js';
import { quoteString } from '../engine/sql.js';
import { CutRetryError } from '../gateway/cut.js';
import { INTERNAL_PATHS } from './server.js';
import { legSignature, LEG_SIGNATURE_HEADER } from './auth.js';

export interface PlacedGroupsOptions {
  /** This node's own raftd (its first --raftd-url): `local` in its placement is about this node. */
  raftd: RaftdClient;
  /** node id -> base URL of that node's rafthouse internal endpoint (http://host:port). */
  peers: ReadonlyMap<number, string>;
  /** The cluster's internal secret (every rafthouse has the same). */
  secret: string;
  groups: number;
  local: {
    holdApply(groups: readonly number[]): Promise<ApplyHold>;
    appliedIndexNow(group: number): number | undefined;
    prepareGroup(group: number): Promise<void>;
  };
  /** Milliseconds between placement refreshes. */
  pollMs?: number;
  /** A remote hold's lease: longer than the cut's round cap (3 s) so a round never outlives it by design. */
  leaseMs?: number;
  /** Time to wait for one member's hold answer before trying the next. */
  holdTimeoutMs?: number;
  log?: (m: string) => void;
}

/**
 * The groups raftd placed with no replica on node `me` (by the placement's members: a replica placed
 * here but not created yet is not counted), ascending.
 */
export function groupsPlacedElsewhere(view: PlacementView, me: number): number[] {
  return view.groups.filter((g) => g.group !== 0 && !g.members.includes(me)).map((g) => g.group).sort((a, b) => a - b);
}

/** The operator's mistake, in words: rafthouse not given --internal-peers under placed groups. */
export function unwiredPlacementWarning(elsewhere: readonly number[]): string {
  return `raftd places groups ${elsewhere.join(',')} on other nodes only, but this rafthouse was not given --internal-peers `
    + '(and its peers --internal-listen): consistent reads of tables with rows in those groups are refused; '
    + 'wire every rafthouse with --internal-listen and --internal-peers, or run raftd with --replication-factor 0 (every group on every node)';
}

/**
 * Whether a consistent read touching `touched` groups must be refused on a rafthouse without
 * --internal-peers: it would read the groups here only. undefined: every touched group is placed here.
 */
export function unwiredReadRefusal(touched: readonly number[], elsewhere: readonly number[]): string | undefined {
  const away = new Set(elsewhere);
  const missing = touched.filter((g) => away.has(g));
  if (missing.length === 0) return undefined;
  return `this read needs groups ${missing.join(',')}, which have no replica on this node, and this rafthouse has no --internal-peers `
    + 'to read them from the nodes holding them (raftd places groups on a subset of the nodes: --replication-factor); '
    + 'give every rafthouse --internal-listen and --internal-peers, or run raftd with --replication-factor 0';
}

export const PLACED_DEFAULTS = { pollMs: 500, leaseMs: 4_000, holdTimeoutMs: 1_500, suspectMs: 5_000 } as const;

/** A held remote group: where, and the hold's id the legs name. */
export interface RemoteLeg {
  group: number;
  node: number;
  base: string;
  hold: string;
}

/** A cut's hold over local and remote groups. */
export interface PlacedHold extends ApplyHold {
  legs: ReadonlyMap<number, RemoteLeg>;
}

export class PlacedGroups {
  private me: number | undefined;
  private view: PlacementView | undefined;
  private local = new Set<number>();
  private members = new Map<number, number[]>();
  private preferred = new Map<number, number | null>();
  private moving = new Map<number, number | null>();
  private alive = new Set<number>();
  /** node -> until when it is passed over (it failed a hold or a leg). */
  private readonly suspect = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private refreshing: Promise<void> | undefined;
  private readonly prepared = new Set<number>();
  private elsewhere: number[] = [];
  private warned = '';

  constructor(private readonly o: PlacedGroupsOptions) {}

  async start(): Promise<void> {
    // Not wired, the watch only guards reads: raftd not answering yet (it starts after its
    // application) is not worth a line every poll.
    const failed = (e: Error): void => {
      if (this.wired || this.known) this.o.log?.(`placement: ${e.message}`);
    };
    await this.refresh().catch(failed);
    const tick = (): void => {
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.refresh().catch(failed).finally(tick), this.o.pollMs ?? PLACED_DEFAULTS.pollMs);
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Reads the placement again (concurrent calls share one request). */
  refresh(): Promise<void> {
    this.refreshing ??= this.load().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    if (this.me === undefined) this.me = Number((await this.o.raftd.status())['node']);
    const v = await this.o.raftd.placement();
    this.view = v;
    const me = this.me;
    this.local = new Set(v.groups.filter((g) => g.local && g.members.includes(me)).map((g) => g.group));
    this.members = new Map(v.groups.map((g) => [g.group, g.members]));
    this.preferred = new Map(v.groups.map((g) => [g.group, g.preferredLeader]));
    this.moving = new Map(v.groups.filter((g) => g.move).map((g) => [g.group, g.move!.to]));
    this.alive = new Set(v.nodes.filter((n) => n.alive).map((n) => n.id));
    this.elsewhere = groupsPlacedElsewhere(v, me);
    // Not wired: said once per change of what is missing (the log line an operator must not miss).
    const missing = this.wired ? '' : this.elsewhere.join(',');
    if (missing !== this.warned) {
      this.warned = missing;
      if (missing) this.o.log?.(`WARNING: ${unwiredPlacementWarning(this.elsewhere)}`);
    }
    // A move to this node: the group's database exists before its first snapshot or entry arrives.
    for (const [g, to] of this.moving) {
      if (to !== me || this.prepared.has(g) || this.o.local.appliedIndexNow(g) !== undefined) continue;
      this.prepared.add(g);
      await this.o.local.prepareGroup(g).catch((e: Error) => this.o.log?.(`placement: preparing group ${g} for its move here: ${e.message}`));
    }
    for (const g of this.prepared) if (!this.moving.has(g)) this.prepared.delete(g);
  }

  /** Whether this node knows the other rafthouses' internal endpoints (--internal-peers). */
  get wired(): boolean {
    return this.o.peers.size > 0;
  }

  /** Whether the placement was read at least once. */
  get known(): boolean {
    return this.view !== undefined;
  }

  /** The groups placed with no replica on this node, as last read (ascending). */
  placedElsewhere(): readonly number[] {
    return this.elsewhere;
  }

  /** Known once the first placement was read. */
  get nodeId(): number | undefined {
    return this.me;
  }

  /** Whether this node serves reads of `group` from its own replica. */
  isLocal(group: number): boolean {
    return this.view === undefined || this.local.has(group);
  }

  /** True when some group has no replica here: reads may need remote legs. */
  partial(): boolean {
    if (!this.view) return false;
    for (let g = 1; g <= this.o.groups; g++) if (!this.local.has(g)) return true;
    return false;
  }

  /** The members to ask for a hold of `group`, best first: the preferred leader, then alive ones, not a move's target. */
  private candidates(group: number): number[] {
    const now = Date.now();
    const ms = (this.members.get(group) ?? []).filter((n) => n !== this.me && this.o.peers.has(n));
    const score = (n: number): number => (this.alive.has(n) ? 0 : 4) + ((this.suspect.get(n) ?? 0) > now ? 2 : 0) + (this.moving.get(group) === n ? 1 : 0) + (this.preferred.get(group) === n ? -0.5 : 0);
    return ms.sort((a, b) => score(a) - score(b) || a - b);
  }

  /** Passes `node` over for a while (a failed hold or leg). */
  markSuspect(node: number): void {
    this.suspect.set(node, Date.now() + PLACED_DEFAULTS.suspectMs);
  }

  /** The node whose internal endpoint is `base`, if any. */
  nodeOfBase(base: string): number | undefined {
    for (const [n, b] of this.o.peers) if (b === base) return n;
    return undefined;
  }

  /**
   * Holds apply of `groups`: the local ones in this process's state machine, each remote one on one
   * member, all before the caller starts its ReadIndexes (cut.ts). A group whose hold no member grants
   * makes the round retry (CutRetryError), after the holds already taken are released.
   */
  async hold(groups: readonly number[]): Promise<PlacedHold> {
    // One group at a time, in increasing group order, local and remote alike: every coordinator (and
    // every local cut, ClickHouseStateMachine.holdApply) takes group locks in the same global order, so
    // coordinators that want the same groups wait for each other in turn instead of each holding a
    // group the other wants (measured: six nodes reading all twelve groups at once, each taking its
    // local groups first, starved reads and applies alike).
    const order = [...new Set(groups)].sort((a, b) => a - b);
    const applied = new Map<number, number>();
    const legs = new Map<number, RemoteLeg>();
    const locals: ApplyHold[] = [];
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      for (const h of locals) h.release();
      for (const leg of legs.values()) void this.call(leg.base, INTERNAL_PATHS.release, { hold: leg.hold }, 2_000).catch(() => undefined);
    };
    try {
      for (const g of order) {
        if (this.isLocal(g)) {
          const h = await this.o.local.holdApply([g]);
          locals.push(h);
          applied.set(g, h.applied.get(g) ?? 0);
          // Placed here without state here yet (nothing applied) or any more (moved away since the last
          // refresh): a_g is 0, the check fails and the round retries; the placement is read again.
          if (this.o.local.appliedIndexNow(g) === undefined) void this.refresh().catch(() => undefined);
        } else {
          const r = await this.holdRemote(g);
          legs.set(g, r.leg);
          applied.set(g, r.applied);
        }
      }
    } catch (e) {
      release();
      if (e instanceof CutRetryError) throw e;
      this.o.log?.(`placement: a hold failed: ${(e as Error).message}`);
      throw new CutRetryError('a hold of a group placed elsewhere failed');
    }
    return { applied, legs, release };
  }

  private async holdRemote(group: number): Promise<{ leg: RemoteLeg; applied: number }> {
    const tried: string[] = [];
    for (const node of this.candidates(group)) {
      const base = this.o.peers.get(node)!;
      try {
        const r = await this.call(base, INTERNAL_PATHS.hold, { group, leaseMs: this.o.leaseMs ?? PLACED_DEFAULTS.leaseMs }, this.o.holdTimeoutMs ?? PLACED_DEFAULTS.holdTimeoutMs) as { hold: string; applied: number };
        return { leg: { group, node, base, hold: r.hold }, applied: r.applied };
      } catch (e) {
        tried.push(`node ${node}: ${(e as Error).message.slice(0, 200)}`);
        this.markSuspect(node);
      }
    }
    void this.refresh().catch(() => undefined);
    // The members' answers name their internal addresses: logged here, not told to the client.
    if (tried.length) this.o.log?.(`placement: no member of group ${group} held its apply: ${tried.join('; ')}`);
    const nodes = tried.length ? `tried node${tried.length > 1 ? 's' : ''} ${tried.map((t) => t.split(':')[0]!.slice(5)).join(', ')}` : 'no member with a known internal endpoint';
    throw new CutRetryError(`no member of group ${group} held its apply (${nodes})`);
  }

  private async call(base: string, path: string, body: object, timeoutMs: number): Promise<unknown> {
    const buf = Buffer.from(JSON.stringify(body));
    const res = await fetch(base + path, {
      method: 'POST', body: buf, signal: AbortSignal.timeout(timeoutMs),
      headers: { 'content-type': 'application/json', ...signAppRequest(this.o.secret, 'POST', path, buf) },
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${res.status} ${text.trim().slice(0, 300)}`);
    return JSON.parse(text) as unknown;
  }

  /**
   * The table function that reads `sql` (a SELECT in the group's database) from `leg`'s replica under
   * its hold, in the Native format with `structure` (ClickHouse checks it against the stream).
   */
  /** A leg's failure in full (member URLs, hold ids): for the operator's log, never the client. */
  logLegFailure(message: string): void {
    this.o.log?.(`placement: a remote leg failed: ${message}`);
  }

  legSource(leg: RemoteLeg, sql: string, structure: string): string {
    const pathAndQuery = `${INTERNAL_PATHS.select}?group=${leg.group}&hold=${leg.hold}&q=${Buffer.from(sql, 'utf8').toString('base64url')}`;
    const sig = legSignature(this.o.secret, pathAndQuery);
    return `url(${quoteString(leg.base + pathAndQuery)}, 'Native', ${quoteString(structure)}, headers(${quoteString(LEG_SIGNATURE_HEADER)} = ${quoteString(sig)}))`;
  }
}
