// Group 0, raftd's meta group: the node registry and the group catalog. Its commands are
// applied by raftd itself (never sent to the application), in log order, on every member.

import { PLACEMENT_OPS, PlacementState, type PlacementCommand, type PlacementEffects } from '../placement/records.js';

export const META_GROUP = 0;

export interface NodeInfo {
  id: number;
  raftAddr: string;
  httpAddr: string;
  /** Failure domain for placement (--zone); absent or '' when not given. */
  zone?: string;
}

export interface GroupInfo {
  group: number;
  /**
   * The nodes placement puts the group on: the voters it was created with, updated when a
   * rebalancing move finishes (placement/records.ts). Its exact membership lives in its own log.
   */
  members: number[];
}

export type MetaCommand =
  | { op: 'register'; node: NodeInfo }
  | { op: 'deregister'; id: number }
  | { op: 'create-group'; group: number; members: number[] }
  | { op: 'delete-group'; group: number }
  // placement (issue 21): see daemon/placement/records.ts
  | PlacementCommand;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeMetaCommand(cmd: MetaCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

/** Returns undefined for an entry that is not a meta command (e.g. a leader's empty entry). */
export function decodeMetaCommand(data: Uint8Array): MetaCommand | undefined {
  if (data.length === 0) return undefined;
  try {
    const v = JSON.parse(decoder.decode(data)) as MetaCommand;
    return typeof v === 'object' && v !== null && typeof v.op === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface MetaEffects extends PlacementEffects {
  onRegister(node: NodeInfo): void;
  onDeregister(id: number): void;
  onCreateGroup(info: GroupInfo): void;
  onDeleteGroup(group: number): void;
}

/** The replicated catalog. Deterministic: the same commands give the same state everywhere. */
export class MetaState {
  readonly nodes = new Map<number, NodeInfo>();
  readonly groups = new Map<number, GroupInfo>();
  readonly deletedGroups = new Set<number>();
  /** Placement records (issue 21): node states, moves running. */
  readonly placement = new PlacementState();

  apply(cmd: MetaCommand, effects?: MetaEffects): { ok: true } | { ok: false; code: string; message: string } {
    switch (cmd.op) {
      case 'register':
        if (cmd.node.zone !== undefined && (typeof cmd.node.zone !== 'string' || cmd.node.zone.length > 64)) {
          return { ok: false, code: 'BAD_REQUEST', message: 'zone must be a string of at most 64 characters' };
        }
        this.nodes.set(cmd.node.id, { ...cmd.node });
        effects?.onRegister(cmd.node);
        return { ok: true };
      case 'deregister':
        this.nodes.delete(cmd.id);
        effects?.onDeregister(cmd.id);
        return { ok: true };
      case 'create-group':
        if (cmd.group === META_GROUP || this.groups.has(cmd.group) || this.deletedGroups.has(cmd.group)) {
          return { ok: false, code: 'CONFLICT', message: `group ${cmd.group} exists or existed` };
        }
        this.groups.set(cmd.group, { group: cmd.group, members: [...cmd.members] });
        effects?.onCreateGroup({ group: cmd.group, members: [...cmd.members] });
        return { ok: true };
      case 'delete-group':
        if (!this.groups.has(cmd.group)) return { ok: false, code: 'GROUP_NOT_FOUND', message: `group ${cmd.group} does not exist` };
        this.groups.delete(cmd.group);
        this.deletedGroups.add(cmd.group);
        this.placement.forgetGroup(cmd.group);
        effects?.onDeleteGroup(cmd.group);
        return { ok: true };
      default:
        if (PLACEMENT_OPS.has((cmd as { op: string }).op)) return this.placement.apply(cmd, this, effects);
        return { ok: false, code: 'BAD_REQUEST', message: `unknown meta command "${String((cmd as { op: unknown }).op).slice(0, 40)}"` };
    }
  }
}
