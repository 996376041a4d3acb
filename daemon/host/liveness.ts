// Node-level failure detection, so idle (quiesced) groups need no per-group heartbeats.
// Every tick each node sends one small liveness message to every peer; any message from a
// peer counts as a sign of life. A peer silent for `deadAfterTicks` is considered down and
// the host wakes the groups it leads, so they can elect a new leader.

export class Liveness {
  private readonly lastHeard = new Map<number, number>();
  /** When each peer was last heard from, kept when the transport marks it dead (for /status). */
  private readonly lastSeen = new Map<number, number>();
  private readonly httpAddrs = new Map<number, string>();
  /** Each peer's application health as it last advertised it. */
  private readonly appHealth = new Map<number, boolean>();
  private now = 0;

  constructor(private readonly deadAfterTicks: number) {}

  tick(): void {
    this.now++;
  }

  heard(node: number, httpAddr?: string, appHealthy?: boolean): void {
    this.lastHeard.set(node, this.now);
    this.lastSeen.set(node, this.now);
    if (httpAddr) this.httpAddrs.set(node, httpAddr);
    if (appHealthy !== undefined) this.appHealth.set(node, appHealthy);
  }

  /** Whether the peer's application answered when it last said (true until it says otherwise). */
  appHealthy(node: number): boolean {
    return this.appHealth.get(node) ?? true;
  }

  isAlive(node: number): boolean {
    const t = this.lastHeard.get(node);
    return t !== undefined && this.now - t <= this.deadAfterTicks;
  }

  /** Ticks since the node was last heard from (Infinity if never). */
  silentFor(node: number): number {
    const t = this.lastHeard.get(node);
    return t === undefined ? Infinity : this.now - t;
  }

  /** Ticks since the node was last heard from, a connection failure notwithstanding (undefined if never). */
  ticksSinceSeen(node: number): number | undefined {
    const t = this.lastSeen.get(node);
    return t === undefined ? undefined : this.now - t;
  }

  /** The HTTP address a peer advertised in its liveness messages. */
  httpAddr(node: number): string | undefined {
    return this.httpAddrs.get(node);
  }

  /** The transport saw the connection fail: do not wait for the silence to add up. */
  markDead(node: number): void {
    this.lastHeard.set(node, -Infinity);
  }

  forget(node: number): void {
    this.lastHeard.delete(node);
    this.lastSeen.delete(node);
    this.httpAddrs.delete(node);
    this.appHealth.delete(node);
  }
}
