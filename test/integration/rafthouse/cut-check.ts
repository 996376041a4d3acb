// Real-time order across groups, checked on a history of single-row inserts and full reads of one
// sharded table (test/integration/rafthouse/cut.test.ts, test/chaos/rafthouse.ts). All times come
// from one clock (the test process).

export interface WriteOp {
  id: string;
  sent: number;
  /** Acknowledged at; undefined: the outcome is unknown (an error or a timeout). */
  acked?: number;
}

export interface ReadOp {
  node: number;
  start: number;
  end: number;
  seen: ReadonlySet<string>;
}

/**
 * Violations of one-instant reads, under inserts only:
 *  - fresh: a read sees every write acknowledged before it started;
 *  - no phantom: it sees no write sent after it ended, nor an id never written;
 *  - real-time order: if it saw write w, it sees every write acknowledged before w was sent;
 *  - monotonic: a read that started after another ended sees everything that one saw.
 */
export function realTimeViolations(writes: readonly WriteOp[], reads: readonly ReadOp[], limit = 20): string[] {
  const out: string[] = [];
  const byId = new Map(writes.map((w) => [w.id, w]));
  const acked = writes.filter((w) => w.acked !== undefined).sort((a, b) => a.acked! - b.acked!);
  const add = (m: string) => { if (out.length < limit) out.push(m); };
  // Acked writes before time t: a prefix of `acked` (sorted by ack time).
  const ackedBefore = (t: number): WriteOp[] => {
    let lo = 0;
    let hi = acked.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (acked[mid]!.acked! < t) lo = mid + 1;
      else hi = mid;
    }
    return acked.slice(0, lo);
  };
  for (const r of reads) {
    const where = `read on node ${r.node} [${r.start.toFixed(1)}, ${r.end.toFixed(1)}] ms`;
    for (const w of ackedBefore(r.start)) if (!r.seen.has(w.id)) add(`${where} misses ${w.id}, acknowledged at ${w.acked!.toFixed(1)} before it started`);
    let latestSent = -Infinity;
    let latestId = '';
    for (const id of r.seen) {
      const w = byId.get(id);
      if (!w) { add(`${where} saw ${id}, never written`); continue; }
      if (w.sent > r.end) add(`${where} saw ${id}, sent at ${w.sent.toFixed(1)} after the read ended`);
      if (w.sent > latestSent) { latestSent = w.sent; latestId = id; }
    }
    // The strongest requirement comes from the seen write sent last.
    if (latestId) {
      for (const w of ackedBefore(latestSent)) {
        if (!r.seen.has(w.id)) add(`${where} saw ${latestId} (sent ${latestSent.toFixed(1)}) but misses ${w.id}, acknowledged at ${w.acked!.toFixed(1)} before that was sent`);
      }
    }
  }
  // Everything seen by reads that ended before r started (a union built up in end order) must be in r.
  const byEnd = [...reads].sort((a, b) => a.end - b.end);
  const byStart = [...reads].sort((a, b) => a.start - b.start);
  const earlier = new Map<string, ReadOp>();
  let i = 0;
  for (const r of byStart) {
    while (i < byEnd.length && byEnd[i]!.end < r.start) {
      for (const id of byEnd[i]!.seen) if (!earlier.has(id)) earlier.set(id, byEnd[i]!);
      i++;
    }
    for (const [id, p] of earlier) {
      if (!r.seen.has(id)) add(`read on node ${r.node} started at ${r.start.toFixed(1)} misses ${id}, which a read on node ${p.node} ending at ${p.end.toFixed(1)} saw`);
    }
  }
  return out;
}
