// A process of the cluster that ends by itself during a chaos run is an anomaly: the nemesis only
// ever kills with SIGKILL, so an exit code (raftd's 70 after APPLY_GAP, a crash's 1) or any other
// signal means raftd or the application gave up on its own.

import type { ChildProcess } from 'node:child_process';
import type { LocalCluster } from '../integration/cluster.js';

export class ExitWatch {
  readonly exits: string[] = [];
  private readonly seen = new WeakSet<ChildProcess>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly cluster: LocalCluster,
    private readonly t0: number,
    everyMs = 100,
  ) {
    this.timer = setInterval(() => this.poll(), everyMs);
  }

  private poll(): void {
    for (const n of this.cluster.nodes) {
      for (const p of [n, n.app]) {
        const proc = p?.proc;
        if (!p || !proc || this.seen.has(proc)) continue;
        if (proc.exitCode === null && (proc.signalCode === null || proc.signalCode === 'SIGKILL')) continue;
        this.seen.add(proc);
        const how = proc.exitCode !== null ? `exit code ${proc.exitCode}` : `signal ${proc.signalCode}`;
        this.exits.push(`${p.name} ended by itself (${how}) at about ${Math.round(performance.now() - this.t0)} ms: see its log`);
      }
    }
  }

  /** Stops watching (before the cluster is torn down) and returns what was seen. */
  stop(): string[] {
    this.poll();
    clearInterval(this.timer);
    return this.exits;
  }
}
