// Group 0, raftd's meta group: the node registry and the group catalog. Its commands are
// applied by raftd itself (never sent to the application), in log order, on every member.

export const META_GROUP = 0;

export interface NodeInfo {
  id: number;
  raftAddr: string;
  httpAddr: string;
}

export interface GroupInfo {
  group: number;
  /** The voters the group was created with (its later membership lives in its own log). */
  members: number[];
}

export type MetaCommand =
  | { op: 'register'; node: NodeInfo }
  | { op: 'deregister'; id: number }
  | { op: 'create-group'; group: number; members: number[] }
  | { op: 'delete-group'; group: number };

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

export interface MetaEffects {
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

  apply(cmd: MetaCommand, effects?: MetaEffects): { ok: true } | { ok: false; code: string; message: string } {
    switch (cmd.op) {
      case 'register':
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
        effects?.onDeleteGroup(cmd.group);
        return { ok: true };
    }
  }
}
