// A KV adapter write through one raftd node, as the placement tests make it: retried while the
// answer says the write was not taken (no leader yet, leadership moving, the group not there yet).
import { until } from '../support/until.js';
import type { RaftdNode } from './cluster.js';

const NOT_TAKEN = new Set(['NO_LEADER', 'NOT_LEADER', 'LEADERSHIP_TRANSFER', 'GROUP_NOT_FOUND']);

/** Resolves once `via` acknowledged `key = value` in `group`; throws on any other refusal, or after 20 s. */
export async function putKv(via: RaftdNode, group: number, key: string, value: string): Promise<void> {
  await until(`put ${key} in group ${group} via node ${via.spec.id}`, 20_000, async () => {
    const r = await via.post(`/v1/groups/${group}/propose`, JSON.stringify({ op: 'set', key, value }), { 'content-type': 'application/octet-stream' });
    if (r.status === 200) return true;
    const code = (r.body as { error?: { code?: string } }).error?.code;
    if (code !== undefined && NOT_TAKEN.has(code)) return undefined;
    throw new Error(`put answered ${r.status} ${JSON.stringify(r.body)}`);
  });
}
