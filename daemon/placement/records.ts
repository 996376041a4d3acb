// Placement as the meta group records it (issue 21). The meta leader decides (planner.ts) and
// proposes these commands; every member applies them in log order, validating each one itself (a
// command the state does not allow is refused the same way everywhere), so all nodes agree on
// where each group's replicas are, which moves are running, and which nodes are leaving.

import type { Move, NodeState } from './placement.js';

/** Node states an operator (or the meta leader) records; `dead` is never recorded, it is observed. */
export type RecordedNodeState = Exclude<NodeState, 'dead'>;

export type PlacementCommand =
  | { op: 'node-state'; id: number; state: RecordedNodeState }
  /** A move begins: `to` will be added as a learner, promoted, then `from` removed. */
  | { op: 'move-start'; move: Move }
  /** The move's membership changes are committed in the group: the placement now says so. */
  | { op: 'move-done'; group: number }
  /** Given up (the group refused it, or the plan changed): nothing recorded changes. */
  | { op: 'move-abort'; group: number; why: string };

export const PLACEMENT_OPS = new Set(['node-state', 'move-start', 'move-done', 'move-abort']);

export type ApplyResult = { ok: true } | { ok: false; code: string; message: string };

/** What applying needs of the rest of the meta state. */
export interface CatalogView {
  nodes: ReadonlyMap<number, unknown>;
  groups: Map<number, { group: number; members: number[] }>;
}

export interface PlacementEffects {
  /** A move finished: `from` (if any) no longer holds the group; `to` (if any) does. */
  onMoveDone?(group: number, from: number | null, to: number | null): void;
}

const MAX_REASON = 200;
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= 0xfffffffe;
const isNodeOrNull = (v: unknown): v is number | null => v === null || isId(v);
const REASONS = new Set(['decommission', 'dead', 'unknown-node', 'under-replicated', 'over-replicated', 'balance', 'operator']);

export class PlacementState {
  /** Node id -> recorded state (absent: active). */
  readonly nodeStates = new Map<number, RecordedNodeState>();
  /** Group -> the move running on it (at most one per group). */
  readonly moves = new Map<number, Move>();
  /** Moves finished since this node started replaying the log (for /status and metrics). */
  movesDone = 0;
  movesAborted = 0;
  /** (group, node) pairs a move took a replica off; cleared when a later move brings it back. */
  private readonly movedOff = new Map<number, Set<number>>();

  stateOf(id: number): RecordedNodeState {
    return this.nodeStates.get(id) ?? 'active';
  }

  /** Whether a move took `node`'s replica of `group` away (so a stray message must not re-create it). */
  wasMovedOff(group: number, node: number): boolean {
    return this.movedOff.get(group)?.has(node) === true && this.moves.get(group)?.to !== node;
  }

  apply(cmd: PlacementCommand, catalog: CatalogView, effects?: PlacementEffects): ApplyResult {
    switch (cmd.op) {
      case 'node-state': {
        if (!isId(cmd.id)) return bad('node-state: id must be a node id');
        if (cmd.state !== 'active' && cmd.state !== 'decommissioning') return bad('node-state: state must be active or decommissioning');
        if (!catalog.nodes.has(cmd.id)) return { ok: false, code: 'NOT_FOUND', message: `node ${cmd.id} is not registered` };
        if (cmd.state === 'active') this.nodeStates.delete(cmd.id);
        else this.nodeStates.set(cmd.id, cmd.state);
        return { ok: true };
      }
      case 'move-start': {
        const m = cmd.move as Partial<Move> | undefined;
        if (!m || !isId(m.group) || !isNodeOrNull(m.from) || !isNodeOrNull(m.to) || (m.from === null && m.to === null) || !REASONS.has(String(m.reason))) {
          return bad('move-start: {group, from, to, reason} with node ids (or null for one of from/to)');
        }
        const g = catalog.groups.get(m.group);
        if (!g) return { ok: false, code: 'GROUP_NOT_FOUND', message: `group ${m.group} does not exist` };
        if (this.moves.has(m.group)) return { ok: false, code: 'CONFLICT', message: `group ${m.group} has a move running` };
        if (m.from !== null && !g.members.includes(m.from)) return bad(`move-start: node ${m.from} holds no replica of group ${m.group}`);
        if (m.to !== null && g.members.includes(m.to)) return bad(`move-start: node ${m.to} already holds group ${m.group}`);
        if (m.to !== null && !catalog.nodes.has(m.to)) return { ok: false, code: 'NOT_FOUND', message: `node ${m.to} is not registered` };
        this.moves.set(m.group, { group: m.group, from: m.from, to: m.to, reason: m.reason! });
        return { ok: true };
      }
      case 'move-done': {
        const m = this.moves.get(cmd.group);
        if (!m) return { ok: false, code: 'NOT_FOUND', message: `group ${cmd.group} has no move running` };
        this.moves.delete(cmd.group);
        const g = catalog.groups.get(cmd.group);
        if (g) {
          let members = g.members.filter((x) => x !== m.from);
          if (m.to !== null && !members.includes(m.to)) members = [...members, m.to];
          g.members = members.sort((a, b) => a - b);
        }
        if (m.from !== null) {
          const set = this.movedOff.get(cmd.group) ?? new Set<number>();
          set.add(m.from);
          this.movedOff.set(cmd.group, set);
        }
        if (m.to !== null) this.movedOff.get(cmd.group)?.delete(m.to);
        this.movesDone++;
        effects?.onMoveDone?.(cmd.group, m.from, m.to);
        return { ok: true };
      }
      case 'move-abort': {
        if (!this.moves.has(cmd.group)) return { ok: false, code: 'NOT_FOUND', message: `group ${cmd.group} has no move running` };
        this.moves.delete(cmd.group);
        this.movesAborted++;
        return { ok: true };
      }
    }
  }

  /** A group was deleted: its move (if any) is moot. */
  forgetGroup(group: number): void {
    this.moves.delete(group);
    this.movedOff.delete(group);
  }
}

function bad(message: string): ApplyResult {
  return { ok: false, code: 'BAD_REQUEST', message: message.slice(0, MAX_REASON + 100) };
}
