// Majority arithmetic over the voter set.
export enum VoteResult {
  Pending = 0,
  Won = 1,
  Lost = 2,
}

/**
 * The largest index acknowledged by a majority of `matches` (one per voter). Sorts `matches` in
 * place (descending): callers pass a scratch array to avoid allocating on every ack.
 */
export function majorityIndex(matches: number[], n: number): number {
  if (n === 0) return Infinity;
  // Insertion sort: voter sets are tiny (3-7).
  for (let i = 1; i < n; i++) {
    const v = matches[i]!;
    let j = i - 1;
    while (j >= 0 && matches[j]! < v) {
      matches[j + 1] = matches[j]!;
      j--;
    }
    matches[j + 1] = v;
  }
  return matches[(n / 2) | 0]!;
}

/** Tally of granted/rejected votes by voters only. */
export function voteResult(voters: readonly number[], votes: ReadonlyMap<number, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const r = votes.get(v);
    if (r === true) granted++;
    else if (r === false) rejected++;
  }
  const q = ((voters.length / 2) | 0) + 1;
  if (granted >= q) return VoteResult.Won;
  if (voters.length - rejected < q) return VoteResult.Lost;
  return VoteResult.Pending;
}

export function isQuorum(count: number, voters: number): boolean {
  return count >= ((voters / 2) | 0) + 1;
}
