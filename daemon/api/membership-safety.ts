// Whether a membership change leaves a group able to survive a failure. An operator who removes or
// demotes one voter too many (3 voters down to 2, or a live voter while another is down) gets a group
// that the next crash stops; raftd refuses such a change unless the request says `force`.

/** How many more voters may fail with the group still holding a quorum (negative: it has none now). */
export function failuresSurvived(voters: readonly number[], alive: (node: number) => boolean): number {
  if (voters.length === 0) return -1;
  const quorum = Math.floor(voters.length / 2) + 1;
  return voters.filter(alive).length - quorum;
}

/**
 * Why taking `node` out of the voters (removal or demotion to learner) is unsafe, or undefined if it
 * is not: it is unsafe when afterwards the group survives no failure and it survived more before.
 * Taking out a voter that is down never makes things worse, so it is always allowed.
 */
export function unsafeVoterRemoval(group: number, voters: readonly number[], node: number, alive: (node: number) => boolean): string | undefined {
  if (!voters.includes(node)) return undefined;
  const before = failuresSurvived(voters, alive);
  const after = failuresSurvived(voters.filter((v) => v !== node), alive);
  if (after >= 1 || after >= before) return undefined;
  const live = voters.filter(alive).length;
  return (
    `taking node ${node} out of group ${group}'s voters [${voters.join(', ')}] (${live} reachable) leaves ${voters.length - 1} voter(s) ` +
    `that survive ${Math.max(after, 0)} failure(s), down from ${before}; add a voter first, or repeat the request with force`
  );
}
