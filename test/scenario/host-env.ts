// The deterministic environment behind the host's scenario commands: real Hosts (daemon/host), each
// with its groups and the meta group, over the simulator's ports (test/sim/host-ports.ts) in virtual
// time that only `host-run` moves. Messages take 1 ms, fsyncs 1 ms, app calls 1 ms; nothing is
// dropped unless a command cuts a node off. What happens is printed in the order it happened:
// leadership changes, repairs, and the outcome of the clients' proposals and reads.
import pino from 'pino';
import { Host } from '../../daemon/host/host.js';
import { META_GROUP } from '../../daemon/host/meta.js';
import type { ApplierFactory, GroupMessage, SnapshotHeader, TransportPort } from '../../daemon/host/ports.js';
import { GroupApplier } from '../../daemon/statemachine/applier.js';
import type { AppEntry } from '../../daemon/statemachine/types.js';
import { RaftdError } from '../../daemon/errors.js';
import { Role } from '../../daemon/raft/types.js';
import { EventQueue } from '../sim/eventqueue.js';
import { SimApp, SimClock, SimLogStore, type SimWorld } from '../sim/host-ports.js';
import { Rng } from '../sim/rng.js';
import { simHostOptions, type SimHostNode } from '../sim/sim-host.js';
import { ArgError, type Args } from './args.js';

const enc = new TextEncoder();
const silent = pino({ level: 'silent' });

type EnvNode = SimHostNode;

export class HostEnv implements SimWorld {
  readonly t = { fsyncMs: [1, 1] as [number, number], appMs: [1, 1] as [number, number], appSync: true };
  private readonly q = new EventQueue();
  private readonly nodes = new Map<number, EnvNode>();
  private ids: number[] = [];
  private groups = 0;
  private snapshotInterval = 1000;
  private catchup = 0;
  private readonly blocked = new Set<string>();
  private out: string[] = [];
  private opSeq = 0;
  private valueSeq = 0;
  /** group -> the node seen leading it (for printing changes). */
  private readonly leaders = new Map<number, string>();
  private readonly repairs = new Map<string, number>();
  private rng = new Rng(1);

  // ---- SimWorld: fixed latencies, no random failures; a broken rule is printed, not thrown.
  storeIo(store: SimLogStore, _delay: [number, number], done: () => void): Promise<void> {
    const clock = store.clock();
    return new Promise((resolve) => clock.after(this.t.fsyncMs[0], () => (done(), resolve())));
  }
  appLatency(): Promise<void> {
    return new Promise((resolve) => this.q.after(this.t.appMs[0], resolve));
  }
  appFails(): boolean {
    return false;
  }
  noteApplied(_node: number, _group: number, _e: AppEntry): void {}
  violation(property: string, detail: string): void {
    this.out.push(`VIOLATION ${property}: ${detail}`);
  }
  count(kind: string): void {
    if (kind === 'app-restore') this.out.push(`t=${this.q.now} an app restored a snapshot`);
  }

  async run(cmd: string, a: Args): Promise<string | undefined> {
    this.out = [];
    switch (cmd) {
      case 'host-start':
        this.start(a);
        break;
      case 'host-run':
        await this.advance(a.int('ms'));
        break;
      case 'host-propose':
        this.propose(a.int('node'), a.int('group'), a.int('n', 1));
        await this.advance(0);
        break;
      case 'host-read':
        this.read(a.int('node'), a.int('group'));
        await this.advance(0);
        break;
      case 'host-crash':
        for (const id of a.ids()) this.crash(this.node(id));
        break;
      case 'host-restart':
        for (const id of a.ids()) this.restart(this.node(id));
        await this.advance(0);
        break;
      case 'host-pause':
        for (const id of a.ids()) this.node(id).clock.pause(), this.out.push(`node ${id} paused (SIGSTOP)`);
        break;
      case 'host-resume':
        for (const id of a.ids()) this.node(id).clock.resume(), this.out.push(`node ${id} resumed`);
        await this.advance(0);
        break;
      case 'host-isolate':
        for (const id of a.ids()) for (const o of this.ids) if (o !== id) this.blocked.add(`${id}-${o}`).add(`${o}-${id}`);
        this.out.push(`isolated ${a.ids().join(',')}`);
        break;
      case 'host-heal':
        this.blocked.clear();
        this.out.push('network healed');
        break;
      case 'app-lose': {
        // The app goes back to an earlier index (it broke its durability promise, or restored an
        // older state): the cause of issue 18's APPLY_GAP once raftd's log is compacted past it.
        const n = this.node(a.int('node'));
        const s = n.app.groups.get(a.int('group'));
        if (!s) throw new ArgError(`app-lose: node ${n.id} has no group ${a.int('group')}`);
        const to = a.int('to');
        s.applied = s.durableApplied = to;
        this.out.push(`node ${n.id}'s app lost group ${a.int('group')}'s entries after ${to}`);
        break;
      }
      case 'host-state':
        this.state(a.has('group') ? a.int('group') : undefined);
        break;
      default:
        return undefined;
    }
    return this.out.length ? this.out.join('\n') : 'ok';
  }

  private node(id: number): EnvNode {
    const n = this.nodes.get(id);
    if (!n) throw new ArgError(`no node ${id} (host-start first)`);
    return n;
  }

  private start(a: Args): void {
    if (this.nodes.size > 0) throw new ArgError('host-start: already started');
    this.ids = Array.from({ length: a.int('nodes', 3) }, (_, k) => k + 1);
    this.groups = a.int('groups', 1);
    this.snapshotInterval = a.int('snapshot-interval', 1000);
    this.catchup = a.int('catchup', 0);
    this.t.appSync = a.bool('app-sync', true);
    this.rng = new Rng(a.int('seed', 1));
    for (const id of this.ids) {
      const n = { id, up: false } as EnvNode;
      n.store = new SimLogStore(this, () => n.clock);
      n.app = new SimApp(this, id);
      this.nodes.set(id, n);
      this.launch(n);
    }
    this.out.push(`${this.ids.length} nodes, ${this.groups} data group(s), snapshot every ${this.snapshotInterval} entries keeping ${this.catchup}`);
  }

  private transport(from: number): TransportPort {
    return {
      send: (to: number, msgs: GroupMessage[]) => {
        if (this.blocked.has(`${from}-${to}`)) return;
        this.q.after(1, () => {
          const n = this.nodes.get(to);
          if (n?.up && !this.blocked.has(`${from}-${to}`)) n.clock.run(() => n.host.onMessages(from, msgs));
        });
      },
      sendSnapshot: async (to: number, header: SnapshotHeader, data: AsyncIterable<Uint8Array>) => {
        const parts: Uint8Array[] = [];
        for await (const c of data) parts.push(c);
        await new Promise<void>((r) => this.q.after(1, r));
        const n = this.nodes.get(to);
        if (!n?.up || this.blocked.has(`${from}-${to}`)) throw new Error(`snapshot to ${to}: unreachable`);
        this.out.push(`t=${this.q.now} node ${from} sends node ${to} a snapshot of group ${header.group} at ${header.metadata.index}`);
        const bytes = Buffer.concat(parts);
        async function* stream(): AsyncIterable<Uint8Array> {
          yield bytes;
        }
        await new Promise<void>((resolve, reject) => n.clock.run(() => void n.host.onSnapshot(header, stream()).then(resolve, reject)));
      },
      setPeer: () => undefined,
      removePeer: () => undefined,
    };
  }

  private launch(n: EnvNode): void {
    const clock = new SimClock(this.q);
    const r = this.rng.fork();
    const makeApplier: ApplierFactory = (group, onApplied, refetch, lazy, onGap) =>
      new GroupApplier(group, n.app, { onApplied, sync: this.t.appSync, refetch, lazy, onGap, clock, random: () => 0.5 });
    n.clock = clock;
    n.up = true;
    n.host = new Host(
      simHostOptions(n.id, {
        ids: this.ids,
        groups: this.groups,
        tickMs: 10,
        electionTicks: 10,
        requestTimeoutMs: 1000,
        snapshotInterval: this.snapshotInterval,
        catchupEntries: this.catchup,
        random: () => r.float(),
        logger: silent,
      }),
      {
        store: n.store,
        transport: this.transport(n.id),
        app: n.app,
        makeApplier,
        clock,
        fatal: (err) => this.out.push(`t=${this.q.now} node ${n.id} FATAL: ${String(err)}`),
      },
    );
    n.host.start().catch((e) => this.out.push(`node ${n.id} failed to start: ${String(e)}`));
  }

  private crash(n: EnvNode): void {
    n.up = false;
    n.clock.dead = true;
    const lost = n.store.crash();
    this.out.push(`node ${n.id} crashed${lost ? ` (${lost} unsynced write(s) lost)` : ''}`);
  }

  private restart(n: EnvNode): void {
    if (n.up) throw new ArgError(`host-restart: node ${n.id} is running`);
    this.launch(n);
    this.out.push(`node ${n.id} restarted`);
  }

  /** Moves virtual time on by ms, running every event due, each with its promise jobs. */
  private async advance(ms: number): Promise<void> {
    const until = this.q.now + ms;
    let reached = false;
    this.q.at(until, () => (reached = true));
    for (;;) {
      const ev = this.q.pop();
      if (!ev) break;
      ev.run();
      await new Promise<void>((r) => setImmediate(r));
      this.observe();
      if (reached && this.q.peekTime() > until) break;
    }
  }

  /** Prints leadership changes and repairs as they happen. */
  private observe(): void {
    for (let group = 0; group <= this.groups; group++) {
      // The leader of the highest term (a paused or cut-off old leader may still think it leads).
      let who = 'none';
      let term = -1;
      for (const n of this.nodes.values()) {
        if (!n.up || n.clock.isPaused) continue;
        const st = n.host.groups.get(group)?.status();
        if (st?.role === Role.Leader && st.term > term) {
          who = `node ${n.id} (term ${st.term})`;
          term = st.term;
        }
      }
      if (who !== 'none' && this.leaders.get(group) !== who) {
        this.leaders.set(group, who);
        this.out.push(`t=${this.q.now} ${group === META_GROUP ? 'meta group' : `group ${group}`}: leader ${who}`);
      }
    }
    for (const n of this.nodes.values()) {
      if (!n.up) continue;
      for (const [group, g] of n.host.groups) {
        const key = `${n.id}:${group}`;
        const was = this.repairs.get(key) ?? 0;
        if (g.repairThrough !== was) {
          this.repairs.set(key, g.repairThrough);
          this.out.push(
            g.repairThrough > 0
              ? `t=${this.q.now} node ${n.id} group ${group}: the app misses entries the log no longer holds; repairing through ${g.repairThrough}`
              : `t=${this.q.now} node ${n.id} group ${group}: repaired`,
          );
        }
      }
    }
  }

  private propose(node: number, group: number, count: number): void {
    const n = this.node(node);
    const id = ++this.opSeq;
    const datas = Array.from({ length: count }, () => enc.encode(JSON.stringify({ t: 'w', k: 'x', v: `v${++this.valueSeq}` })));
    const first = this.valueSeq - count + 1;
    this.out.push(`op ${id}: node ${node} proposes ${count} write(s) x=v${first}..v${this.valueSeq} to group ${group}`);
    let results: Promise<Array<unknown>>;
    try {
      results = n.host.proposeAll(group, datas);
    } catch (e) {
      this.out.push(`op ${id}: ${(e as RaftdError).code ?? ''} ${(e as Error).message}`);
      return;
    }
    void results.then((rs) => {
      const ok = rs.filter((r) => !(r instanceof RaftdError)).map((r) => (r as { index: number }).index);
      const errs = [...new Set(rs.filter((r): r is RaftdError => r instanceof RaftdError).map((r) => r.code))];
      this.out.push(`t=${this.q.now} op ${id}: ${ok.length ? `applied at ${ok[0]}..${ok[ok.length - 1]}` : ''}${errs.length ? `${ok.length ? '; ' : ''}failed ${errs.join(',')}` : ''}`);
    });
  }

  private read(node: number, group: number): void {
    const n = this.node(node);
    const id = ++this.opSeq;
    this.out.push(`op ${id}: node ${node} reads x of group ${group} (linearizable)`);
    n.host.read(group, { key: 'x' }, 'linearizable').then(
      (v) => this.out.push(`t=${this.q.now} op ${id}: x=${(v as { value: string | null }).value}`),
      (e) => this.out.push(`t=${this.q.now} op ${id}: failed ${(e as { code?: string }).code ?? (e as Error).message}`),
    );
  }

  private state(only?: number): void {
    for (const n of this.nodes.values()) {
      if (!n.up) {
        this.out.push(`node ${n.id}: down`);
        continue;
      }
      const gs: string[] = [];
      for (const [group, g] of [...n.host.groups].sort((x, y) => x[0] - y[0])) {
        if (only !== undefined ? group !== only : group === META_GROUP) continue;
        const st = g.status();
        const app = group === META_GROUP ? '' : ` app=${n.app.groups.get(group)?.applied ?? 0}`;
        gs.push(`g${group} ${['follower', 'candidate', 'precandidate', 'leader'][st.role]} term=${st.term} commit=${st.commit} log=${st.firstIndex}..${st.lastIndex}${app}${g.repairThrough ? ` repairing-through=${g.repairThrough}` : ''}`);
      }
      this.out.push(`node ${n.id}${n.clock.isPaused ? ' (paused)' : ''}: ${gs.join('; ')}`);
    }
  }

  /** Stops every host's timers (the file is done). */
  async close(): Promise<void> {
    for (const n of this.nodes.values()) n.clock.dead = true;
  }
}
