// Membership: one change at a time, effective as soon as the ConfChange entry is in a node's log
// (Ongaro's thesis, ch. 4). A change alters the voter set by at most one node, so any two
// consecutive configurations share a majority and no joint consensus is needed.
import { ConfChangeType, type ConfChange, type ConfState } from './types.js';

/** A bare change: version(1) + type(1) + node(8, two big-endian uint32 halves) + context. */
const V_DELTA = 1;
/**
 * A change with the configuration it results in: version(1) + type(1) + node(8) + context length(4)
 * + context + voter count(4) + voters(8 each) + learner count(4) + learners(8 each). Leaders write
 * this form, so a node that joins with no membership at all learns the full one from the first
 * conf entry it receives instead of applying a delta to nothing.
 */
const V_FULL = 2;
const HEADER = 10;
const TWO_32 = 0x1_0000_0000;

export class ConfChangeDecodeError extends Error {
  readonly code = 'RAFT_CONF_CHANGE_DECODE';
}

function putId(dv: DataView, at: number, id: number): void {
  dv.setUint32(at, Math.floor(id / TWO_32));
  dv.setUint32(at + 4, id % TWO_32);
}

function getId(dv: DataView, at: number): number {
  return dv.getUint32(at) * TWO_32 + dv.getUint32(at + 4);
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(HEADER + cc.context.length);
  const dv = new DataView(out.buffer);
  out[0] = V_DELTA;
  out[1] = cc.type;
  putId(dv, 2, cc.node);
  out.set(cc.context, HEADER);
  return out;
}

/** The form a leader appends: the change plus the configuration it results in. */
export function encodeConfEntry(cc: ConfChange, result: ConfState): Uint8Array {
  const len = HEADER + 4 + cc.context.length + 4 + 8 * result.voters.length + 4 + 8 * result.learners.length;
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  out[0] = V_FULL;
  out[1] = cc.type;
  putId(dv, 2, cc.node);
  let at = HEADER;
  dv.setUint32(at, cc.context.length);
  at += 4;
  out.set(cc.context, at);
  at += cc.context.length;
  for (const list of [result.voters, result.learners]) {
    dv.setUint32(at, list.length);
    at += 4;
    for (const id of list) {
      putId(dv, at, id);
      at += 8;
    }
  }
  return out;
}

/** Decodes either form; `result` is set for entries written by a leader. */
export function decodeConfEntry(b: Uint8Array): { cc: ConfChange; result?: ConfState } {
  if (b.length < HEADER) throw new ConfChangeDecodeError(`conf change too short (${b.length} bytes)`);
  const version = b[0];
  if (version !== V_DELTA && version !== V_FULL) throw new ConfChangeDecodeError(`unknown conf change version ${version}`);
  const type = b[1]!;
  if (type !== ConfChangeType.AddVoter && type !== ConfChangeType.AddLearner && type !== ConfChangeType.RemoveNode) {
    throw new ConfChangeDecodeError(`unknown conf change type ${type}`);
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const node = getId(dv, 2);
  if (version === V_DELTA) return { cc: { type, node, context: b.slice(HEADER) } };
  let at = HEADER;
  const need = (n: number): void => {
    if (at + n > b.length) throw new ConfChangeDecodeError('conf change truncated');
  };
  need(4);
  const clen = dv.getUint32(at);
  at += 4;
  need(clen);
  const context = b.slice(at, at + clen);
  at += clen;
  const lists: number[][] = [];
  for (let k = 0; k < 2; k++) {
    need(4);
    const n = dv.getUint32(at);
    at += 4;
    need(8 * n);
    const list: number[] = [];
    for (let i = 0; i < n; i++, at += 8) list.push(getId(dv, at));
    lists.push(list);
  }
  if (at !== b.length) throw new ConfChangeDecodeError('trailing bytes after conf change');
  return { cc: { type, node, context }, result: { voters: lists[0]!, learners: lists[1]! } };
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  return decodeConfEntry(b).cc;
}

/** Why a change cannot be applied to a configuration; undefined when it can. */
export function checkConfChange(cs: ConfState, cc: ConfChange): string | undefined {
  if (!Number.isSafeInteger(cc.node) || cc.node < 1) return `invalid node id ${cc.node}`;
  const isVoter = cs.voters.includes(cc.node);
  const isLearner = cs.learners.includes(cc.node);
  switch (cc.type) {
    case ConfChangeType.AddVoter:
      return isVoter ? `node ${cc.node} is already a voter` : undefined;
    case ConfChangeType.AddLearner:
      // Demoting a voter would be legal Raft but nothing needs it; refusing keeps the rules simple.
      if (isVoter) return `node ${cc.node} is a voter; remove it first`;
      return isLearner ? `node ${cc.node} is already a learner` : undefined;
    case ConfChangeType.RemoveNode:
      if (!isVoter && !isLearner) return `node ${cc.node} is not a member`;
      if (isVoter && cs.voters.length === 1) return `cannot remove the last voter ${cc.node}`;
      return undefined;
    default:
      return `unknown conf change type ${String(cc.type)}`;
  }
}

/** The configuration after `cc`; an invalid change leaves it unchanged (every node decides alike). */
export function applyConfChange(cs: ConfState, cc: ConfChange): ConfState {
  if (checkConfChange(cs, cc) !== undefined) return cs;
  const voters = cs.voters.filter((v) => v !== cc.node);
  const learners = cs.learners.filter((v) => v !== cc.node);
  if (cc.type === ConfChangeType.AddVoter) voters.push(cc.node);
  else if (cc.type === ConfChangeType.AddLearner) learners.push(cc.node);
  voters.sort((a, b) => a - b);
  learners.sort((a, b) => a - b);
  return { voters, learners };
}

/**
 * Applies an encoded conf entry: the configuration it carries if any, else the delta. Undecodable
 * bytes are a no-op (deterministic on every node).
 */
export function applyEncodedConfChange(cs: ConfState, data: Uint8Array): ConfState {
  let dec: { cc: ConfChange; result?: ConfState };
  try {
    dec = decodeConfEntry(data);
  } catch {
    return cs;
  }
  return dec.result ?? applyConfChange(cs, dec.cc);
}

export function copyConfState(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}

interface Point {
  index: number;
  conf: ConfState;
}

/**
 * The configurations in force along the log: `base` at the snapshot index, then one point per
 * ConfChange entry above it. Truncating the log drops the points above the cut, which reverts
 * the membership to the latest change that remains.
 */
export class ConfHistory {
  private base: Point;
  private points: Point[] = [];

  constructor(baseIndex: number, base: ConfState) {
    this.base = { index: baseIndex, conf: copyConfState(base) };
  }

  current(): ConfState {
    return this.points.length > 0 ? this.points[this.points.length - 1]!.conf : this.base.conf;
  }

  /** Index of the entry that set the current configuration (the base index if none above it). */
  currentIndex(): number {
    return this.points.length > 0 ? this.points[this.points.length - 1]!.index : this.base.index;
  }

  /** Records a ConfChange entry appended at `index`; returns the new configuration. */
  push(index: number, data: Uint8Array): ConfState {
    const conf = applyEncodedConfChange(this.current(), data);
    this.points.push({ index, conf });
    return conf;
  }

  /** Forgets every point at or above `index` (the log is cut there). Returns true if any went. */
  truncateFrom(index: number): boolean {
    let n = this.points.length;
    while (n > 0 && this.points[n - 1]!.index >= index) n--;
    if (n === this.points.length) return false;
    this.points.length = n;
    return true;
  }

  /** Replaces everything with a snapshot's configuration. */
  reset(index: number, conf: ConfState): void {
    this.base = { index, conf: copyConfState(conf) };
    this.points = [];
  }

  /** Folds points at or below `index` into the base (they are below the oldest snapshot). */
  compact(index: number): void {
    let k = 0;
    while (k < this.points.length && this.points[k]!.index <= index) k++;
    if (k === 0) return;
    this.base = { index: this.points[k - 1]!.index, conf: this.points[k - 1]!.conf };
    this.points.splice(0, k);
  }

  /** Number of recorded changes above the base. */
  size(): number {
    return this.points.length;
  }

  baseIndex(): number {
    return this.base.index;
  }

  /** The configuration in force at log position `index`; undefined below the base. */
  at(index: number): ConfState | undefined {
    if (index < this.base.index) return undefined;
    let conf = this.base.conf;
    for (const p of this.points) {
      if (p.index > index) break;
      conf = p.conf;
    }
    return conf;
  }
}
