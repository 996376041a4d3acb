// Quiescence and liveness of one host's groups: the node-level liveness message each tick, an idle
// group's leader telling its followers to stop ticking it (and waking one whose leader died), a
// follower deciding its leader is silent (requests answered NO_LEADER at once), and a leader whose
// app cannot apply handing leadership to a healthy voter. Moved out of host.ts as it was; the Host's
// maps (groups, known peers) and its node-level Liveness are shared with it.

import { MessageType, NONE, Role, type Message } from '../raft/types.js';
import { RaftdError } from '../errors.js';
import type { GroupReplica } from './group.js';
import type { Liveness } from './liveness.js';
import { META_GROUP } from './meta.js';
import type { HostMetrics } from './metrics.js';
import type { HostDeps, HostOptions } from './host.js';

/** Reserved group id of node-to-node liveness messages (never a real group). */
export const LIVENESS_GROUP = 0xffffffff;
/** Context marking a leader's heartbeat that tells followers to stop ticking an idle group. */
export const QUIESCE = new TextEncoder().encode('q');
const encoder = new TextEncoder();

/** What quiescence and liveness need of the rest of the Host. */
export interface QuiescenceHost {
  /** Consecutive ticks the application has been unhealthy (0: healthy). */
  appUnhealthyTicks(): number;
  markDirty(g: GroupReplica): void;
}

export class Quiescence {
  constructor(
    private readonly opts: HostOptions,
    private readonly deps: HostDeps,
    private readonly metrics: HostMetrics,
    private readonly groups: Map<number, GroupReplica>,
    private readonly liveness: Liveness,
    private readonly knownPeers: Map<number, string>,
    private readonly host: QuiescenceHost,
  ) {}

  private get appUnhealthyTicks(): number {
    return this.host.appUnhealthyTicks();
  }

  private markDirty(g: GroupReplica): void {
    this.host.markDirty(g);
  }

  /** The voter (not this node) that is alive, says its app is healthy, and has the most of the log; or NONE. */
  private healthiestVoter(g: GroupReplica): number {
    const st = g.status();
    let best = NONE;
    let bestMatch = -1;
    for (const id of st.confState.voters) {
      if (id === this.opts.nodeId || !this.liveness.isAlive(id) || !this.liveness.appHealthy(id)) continue;
      const match = st.progress?.[id]?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    return best;
  }

  /**
   * A follower that has not heard its leader for an election timeout fails the reads waiting for
   * a read index now (NO_LEADER: a read has no effect, so failing it is always definite) instead
   * of holding them until their deadline, and answers new ones at once (leaderSilent).
   */
  countLeaderSilence(g: GroupReplica): void {
    if (g.role === Role.Leader) {
      g.leaderSilentTicks = 0;
      return;
    }
    if (++g.leaderSilentTicks > this.opts.electionTicks && g.hasWaiters() && this.leaderSilent(g.group)) {
      g.failReads(new RaftdError('NO_LEADER', `group ${g.group}: node ${this.opts.nodeId} has not heard a leader for an election timeout; retry (on another node)`));
    }
  }

  /**
   * True when this replica is not the group's leader, has heard no leader of it for more than an
   * election timeout, and does not hear a quorum of the group's voters either (or is not a member
   * of the group at all, or no election ended within two election timeouts): it is cut off, no
   * election it can see will end its wait, so waiting only holds the client. (With a quorum in
   * touch, an election is under way or about to be, and a request waits for it as before: the
   * leader died, the others elect one.) An awake replica counts its own ticks since the leader's last append, heartbeat or
   * snapshot; a quiesced one (not ticked, no heartbeats) goes by the node-level liveness of the
   * leader it knows. While the leader it knows is still heard at node level, an awake replica is
   * not called silent either: a leader that quiesced a group this replica did not (it had a read
   * waiting, say) sends no heartbeats, yet is there, and a request wakes it.
   */
  leaderSilent(group: number): boolean {
    const g = this.groups.get(group);
    if (!g || g.role === Role.Leader) return false;
    const leader = g.leader();
    const nodeSilent = leader === NONE || this.liveness.silentFor(leader) > this.opts.electionTicks;
    if (!(g.quiesced || g.leaderSilentTicks > this.opts.electionTicks)) return false;
    const conf = g.status().confState;
    // Not a member (removed, or not added yet): no leader sends it anything, so no election it can
    // see ends the wait. Requests through it waited the full leader wait (3 s) in chaos runs. Even
    // while the leader it knew is heard at node level (it leads other groups here): a removed node
    // now learns its removal and keeps that leader as its hint, but hears nothing more of the group.
    if (!conf.voters.includes(this.opts.nodeId) && !conf.learners.includes(this.opts.nodeId)) return true;
    if (!nodeSilent) return false;
    // Leaderless for two election timeouts although a quorum is heard: the election that should
    // have ended the wait did not. A node removed from the group that missed its own removal sits
    // here for good (it pre-campaigns, the others refuse); requests through it waited the full
    // leader wait (3 s) in chaos runs. Refusing is definite; an election that ends later just
    // serves the retry.
    if (!g.quiesced && g.leaderSilentTicks > 2 * this.opts.electionTicks) return true;
    const voters = conf.voters;
    let heard = 0;
    for (const id of voters) if (id === this.opts.nodeId || this.liveness.silentFor(id) <= this.opts.electionTicks) heard++;
    return heard * 2 <= voters.length;
  }

  /**
   * A leader whose application has been unhealthy for more than an election timeout (or that
   * misses entries being repaired) hands leadership to a live voter whose application is healthy,
   * the one with most of the log (a transfer waits for the target to catch up, then TimeoutNow).
   * Its proposals would otherwise hang for the whole outage: they commit, but no app answers them.
   * With no healthy voter (every app down) it keeps leading: there is nobody better. At most one
   * attempt per election timeout (the core abandons a transfer that did not finish in that time).
   */
  maybeHandOff(g: GroupReplica): void {
    if (g.group === META_GROUP) return;
    if (g.handOffTicks > 0) {
      g.handOffTicks--;
      return;
    }
    if (this.appUnhealthyTicks <= this.opts.electionTicks && g.repairThrough === 0) return;
    const to = this.healthiestVoter(g);
    if (to === NONE) return;
    g.handOffTicks = this.opts.electionTicks;
    this.opts.logger.warn({ group: g.group, to, appUnhealthyTicks: this.appUnhealthyTicks, repairThrough: g.repairThrough }, 'the app cannot apply; handing leadership over');
    g.node.transferLeadership(to);
    this.metrics.appHandOffs++;
    // Its proposals wait for an app that is not there (their entries may well apply, through the
    // other replicas' apps and later its own): answer them now, outcome unknown, so their clients
    // move on to the next leader instead of waiting for their deadline (issue 18: 3 s of no
    // successful write after a leader's app was killed, every client held here).
    g.failProposals(new RaftdError('OUTCOME_UNKNOWN', `group ${g.group}: node ${this.opts.nodeId}'s application cannot apply; leadership is being handed over and the proposal may or may not take effect`));
    this.markDirty(g);
  }

  sendLiveness(appHealthy: boolean): void {
    // placement (issue 21): "HTTPADDR ZONE" when this node has a zone.
    const context = encoder.encode(this.opts.zone ? `${this.opts.httpAddr} ${this.opts.zone}` : this.opts.httpAddr);
    for (const id of this.knownPeers.keys()) {
      if (id === this.opts.nodeId) continue;
      // `reject` carries "my application is unhealthy" (older nodes ignore it on liveness messages):
      // a leader handing over picks a target whose application answers.
      const message: Message = {
        type: MessageType.Heartbeat, to: id, from: this.opts.nodeId, term: 0, logTerm: 0, index: 0,
        entries: [], commit: 0, reject: !appHealthy, rejectHint: 0, context,
      };
      this.deps.transport.send(id, [{ group: LIVENESS_GROUP, message }]);
    }
  }

  /** An idle group costs nothing: its leader tells followers to stop ticking it. */
  maybeQuiesce(g: GroupReplica): boolean {
    if (g.role !== Role.Leader || !g.quiescable()) {
      g.idleTicks = 0;
      return false;
    }
    const st = g.status();
    for (const id of st.confState.voters) if (id !== st.id && !this.liveness.isAlive(id)) return false;
    if (++g.idleTicks < this.opts.heartbeatTicks + 2) return false;
    for (const id of [...st.confState.voters, ...st.confState.learners]) {
      if (id === st.id) continue;
      this.deps.transport.send(id, [
        {
          group: g.group,
          message: {
            type: MessageType.Heartbeat, to: id, from: st.id, term: st.term, logTerm: 0, index: 0,
            entries: [], commit: st.commit, reject: false, rejectHint: 0, context: QUIESCE,
          },
        },
      ]);
    }
    g.quiesced = true;
    this.metrics.quiesced++;
    return true;
  }

  maybeWakeForDeadLeader(g: GroupReplica): void {
    const leader = g.leader();
    if (leader === this.opts.nodeId) return;
    if (leader === NONE || !this.liveness.isAlive(leader)) g.wake();
  }
}
