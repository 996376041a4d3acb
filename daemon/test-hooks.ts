// raftd's test-only hooks, all in this module, each off unless RAFTD_TEST_HOOKS names it
// (docs/operations.md, "Test-only hooks"). Every hook makes raftd lose messages or answer wrongly on
// purpose: never set the variable in production. raftd refuses to start on a name it does not know.
//
//   faults              a fault layer between the host and the transport, for chaos tests of real
//                       processes: drops messages to or from chosen peers (symmetric or one-way
//                       partitions), delays or drops a fraction of them; driven through
//                       GET/PUT /debug/faults (admin token), which exist only with this hook.
//   break-stale-reads   linearizable and lease reads answered like stale ones, so a chaos run can
//                       show its checker catches a real bug (npm run chaos -- --break stale-reads).

import type { FastifyInstance, RouteShorthandOptions } from 'fastify';
import type { GroupMessage, SnapshotHeader, TransportPort } from './host/ports.js';

export const TEST_HOOKS_ENV = 'RAFTD_TEST_HOOKS';
const TEST_HOOKS = ['faults', 'break-stale-reads'] as const;
export type TestHook = (typeof TEST_HOOKS)[number];

function isTestHook(name: string): name is TestHook {
  return (TEST_HOOKS as readonly string[]).includes(name);
}

/** The hooks RAFTD_TEST_HOOKS (a comma-separated list) enables: none when unset. Throws on an unknown name. */
export function enabledTestHooks(env: Readonly<Record<string, string | undefined>>): ReadonlySet<TestHook> {
  const names = (env[TEST_HOOKS_ENV] ?? '').split(',').map((n) => n.trim()).filter((n) => n !== '');
  const unknown = names.filter((n) => !isTestHook(n));
  if (unknown.length > 0) throw new Error(`${TEST_HOOKS_ENV}: unknown test hook "${unknown[0]}" (known: ${TEST_HOOKS.join(', ')})`);
  return new Set(names as TestHook[]);
}

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

const FAULT_RULES_SCHEMA = {
  type: 'object',
  properties: {
    dropTo: { type: 'array', maxItems: 1000, items: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } },
    dropFrom: { type: 'array', maxItems: 1000, items: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } },
    lossRate: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
    delayMs: { type: 'number', minimum: 0, maximum: 60_000 },
  },
} as const;

/**
 * GET /debug/faults (the rules and how many messages they dropped) and PUT /debug/faults (new rules;
 * omitted fields are off). `route` carries the admin access and the JSON body parsing of the API.
 */
export function registerFaultRoutes(app: FastifyInstance, faults: FaultLayer, route: RouteShorthandOptions): void {
  app.get('/debug/faults', route, async () => ({ rules: faults.current(), dropped: faults.dropped }));
  app.put<{ Body: Partial<FaultRules> | undefined }>('/debug/faults', { ...route, schema: { body: { anyOf: [FAULT_RULES_SCHEMA, { type: 'null' }] } } }, async (req) => {
    const b = req.body ?? {};
    return { rules: faults.set({ dropTo: b.dropTo ?? [], dropFrom: b.dropFrom ?? [], lossRate: b.lossRate ?? 0, delayMs: b.delayMs ?? 0 }) };
  });
}
