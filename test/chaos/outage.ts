// How long each injected fault stopped the clients: for every fault, the longest stretch without a
// successful operation (an acknowledged KV op, an acknowledged insert) that begins between the
// fault's injection and a while after its healing. Issue 18 asks that one fault cost about one
// election; the report prints this per fault kind, and the worst fault with its time.

import type { FaultKind, FaultRecord } from './nemesis.js';

/** Stretches that begin this long after a fault was healed still count as that fault's. */
export const OUTAGE_SETTLE_MS = 2000;

export interface FaultOutage {
  kind: FaultKind;
  detail: string;
  at: number;
  healedAt: number;
  /** The longest stretch without a success, in ms, and where it was (ms since the run started). */
  longestMs: number;
  from: number;
  to: number;
}

export interface KindOutage {
  count: number;
  maxMs: number;
  p50Ms: number;
  worst: FaultOutage;
}

export interface OutageReport {
  settleMs: number;
  perKind: Partial<Record<FaultKind, KindOutage>>;
  faults: FaultOutage[];
}

/**
 * `successes`: completion times (ms since the run started) of every successful operation;
 * `endMs`: when the workload stopped (a stretch still open then ends there).
 * A fault's stretches begin at its injection or at a success after it, up to `settleMs` after its
 * healing but not after the next fault's injection (that one is the next fault's); each runs to the
 * next success, even past those bounds: an outage that outlives its fault still counts in full.
 */
export function measureOutages(faults: readonly FaultRecord[], successes: readonly number[], endMs: number, settleMs = OUTAGE_SETTLE_MS): OutageReport {
  const times = [...successes].sort((a, b) => a - b);
  const injected = faults.filter((f) => !f.skipped).sort((a, b) => a.at - b.at);
  const out: FaultOutage[] = [];
  for (let i = 0; i < injected.length; i++) {
    const f = injected[i]!;
    const healedAt = f.healedAt ?? endMs;
    const next = injected[i + 1]?.at ?? Infinity;
    const settleEnd = Math.min(healedAt + settleMs, endMs);
    let best = { len: -1, from: f.at, to: f.at };
    let begin = f.at;
    let j = firstAfter(times, f.at);
    for (;;) {
      const end = j < times.length ? times[j]! : endMs;
      if (end - begin > best.len) best = { len: end - begin, from: begin, to: end };
      if (j >= times.length || end > settleEnd || end >= next) break;
      begin = end;
      j++;
    }
    out.push({ kind: f.kind, detail: f.detail, at: f.at, healedAt, longestMs: Math.max(0, Math.round(best.len)), from: Math.round(best.from), to: Math.round(best.to) });
  }
  const perKind: Partial<Record<FaultKind, KindOutage>> = {};
  for (const kind of new Set(out.map((x) => x.kind))) {
    const of = out.filter((x) => x.kind === kind).sort((a, b) => a.longestMs - b.longestMs);
    const worst = of[of.length - 1]!;
    perKind[kind] = { count: of.length, maxMs: worst.longestMs, p50Ms: of[Math.floor((of.length - 1) / 2)]!.longestMs, worst };
  }
  return { settleMs, perKind, faults: out };
}

/** Index of the first time strictly after t (binary search over sorted times). */
function firstAfter(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Report lines: per fault kind the count, p50 and max, and the worst fault with its time. */
export function formatOutages(r: OutageReport, what: string): string[] {
  const kinds = Object.entries(r.perKind) as Array<[FaultKind, KindOutage]>;
  if (kinds.length === 0) return [`longest window without ${what}: no faults injected`];
  const overall = Math.max(...kinds.map(([, k]) => k.maxMs));
  return [
    `longest window without ${what}, per fault (from injection to ${r.settleMs} ms after healing): max ${overall} ms`,
    ...kinds.map(([kind, k]) => `  ${kind.padEnd(19)} n=${String(k.count).padStart(3)}  p50 ${String(k.p50Ms).padStart(5)} ms  max ${String(k.maxMs).padStart(5)} ms  (worst: at ${k.worst.at} ms, ${k.worst.detail}; no success ${k.worst.from}..${k.worst.to} ms)`),
  ];
}
