// Shared by the bench scripts: percentiles (nearest rank, NaN when there are no samples) and CPU time.

import { readFileSync } from 'node:fs';

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
