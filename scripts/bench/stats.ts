// Shared by the bench scripts: percentiles (nearest rank, NaN when there are no samples) and CPU time.

import { readdirSync, readFileSync } from 'node:fs';

/** The p-th percentile (0-100) of samples already sorted ascending. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The p-th percentile of unsorted samples (sorts a copy). */
export function percentileOf(samples: readonly number[], p: number): number {
  return percentile([...samples].sort((a, b) => a - b), p);
}

// ---- CPU time of processes, from Linux /proc

/** USER_HZ: /proc/<pid>/stat counts CPU time in these ticks per second (100 on every Linux we run on). */
export const CLOCK_TICKS_PER_SECOND = 100;

/**
 * User + system CPU time a process has used so far, in seconds; NaN when it cannot be read (the
 * process is gone, or not Linux). On a shared machine CPU per operation is steadier than
 * operations per second, which move with whatever else runs.
 */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND; // utime, stime (fields 14, 15 of stat)
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds a process has used so far, main thread and the others apart (from
 * /proc/<pid>/task/<tid>/stat): 'main' is the event loop, where all JavaScript runs and what a CPU
 * profile shows; 'other' is every other thread: libuv's pool (RocksDB writes and their fsyncs), V8's
 * GC helpers, RocksDB's flush and compaction. Node 20 leaves every thread named "node", so they
 * cannot be told apart further. Empty when /proc cannot tell.
 */
export function threadCpuSeconds(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!pid) return out;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const s = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
      const kind = tid === String(pid) ? 'main' : 'other';
      out.set(kind, (out.get(kind) ?? 0) + s);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** Per-kind differences of two threadCpuSeconds readings (threads that ended in between are lost). */
export function threadCpuDelta(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

/**
 * One machine-readable result line for `npm run bench` (scripts/bench/all.ts), which collects them
 * into its goal table and JSON file: `@@bench-result {"key":...,...}`.
 */
export function emitResult(key: string, figures: Record<string, number | string | null>): void {
  process.stdout.write(`@@bench-result ${JSON.stringify({ key, ...figures })}\n`);
}
