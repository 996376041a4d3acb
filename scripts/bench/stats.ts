// Percentiles for the bench scripts: nearest rank, NaN when there are no samples.

/** The p-th percentile (0-100) of samples already sorted ascending. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The p-th percentile of unsorted samples (sorts a copy). */
export function percentileOf(samples: readonly number[], p: number): number {
  return percentile([...samples].sort((a, b) => a - b), p);
}
