// Membership: one change at a time, effective as soon as the ConfChange entry is in a node's log
// (Ongaro's thesis, ch. 4). A change alters the voter set by at most one node, so any two
// consecutive configurations share a majority and no joint consensus is needed.
import { ConfChangeType, type ConfChange, type ConfState } from './types.js';

const VERSION = 1;
/** version(1) + type(1) + node as two big-endian uint32 halves(8). */
const HEADER = 10;
const TWO_32 = 0x1_0000_0000;

export class ConfChangeDecodeError extends Error {
  readonly code = 'RAFT_CONF_CHANGE_DECODE';
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(HEADER + cc.context.length);
  const dv = new DataView(out.buffer);
  out[0] = VERSION;
  out[1] = cc.type;
  dv.setUint32(2, Math.floor(cc.node / TWO_32));
  dv.setUint32(6, cc.node % TWO_32);
  out.set(cc.context, HEADER);
  return out;
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  if (b.length < HEADER) throw new ConfChangeDecodeError(`conf change too short (${b.length} bytes)`);
  if (b[0] !== VERSION) throw new ConfChangeDecodeError(`unknown conf change version ${b[0]}`);
  const type = b[1]!;
  if (type !== ConfChangeType.AddVoter && type !== ConfChangeType.AddLearner && type !== ConfChangeType.RemoveNode) {
    throw new ConfChangeDecodeError(`unknown conf change type ${type}`);
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const node = dv.getUint32(2) * TWO_32 + dv.getUint32(6);
  return { type, node, context: b.slice(HEADER) };
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

/** Applies an encoded change; undecodable bytes are a no-op (deterministic on every node). */
export function applyEncodedConfChange(cs: ConfState, data: Uint8Array): ConfState {
  let cc: ConfChange;
  try {
    cc = decodeConfChange(data);
  } catch {
    return cs;
  }
  return applyConfChange(cs, cc);
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
