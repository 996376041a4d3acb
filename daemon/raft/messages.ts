// Building and vetting messages. Every message has the same shape (fast property access) and the
// core never trusts one from the network: anything malformed is dropped before it reaches a rule.
import { MessageType, type Entry, type Message, type NodeId } from './types.js';

export const EMPTY_BYTES = new Uint8Array(0);
export const NO_ENTRIES: Entry[] = [];
/** Vote/PreVote context marking an election forced by TimeoutNow (leases do not apply). */
export const TRANSFER_CONTEXT = new TextEncoder().encode('transfer');

export function isTransfer(ctx: Uint8Array): boolean {
  if (ctx.length !== TRANSFER_CONTEXT.length) return false;
  for (let i = 0; i < ctx.length; i++) if (ctx[i] !== TRANSFER_CONTEXT[i]) return false;
  return true;
}

export function newMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: NO_ENTRIES,
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
  };
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Whether `m` is well formed enough to act on. Content-level sanity (terms, ranges) is checked in the rules. */
export function wellFormed(m: Message, self: NodeId): boolean {
  if (m === null || typeof m !== 'object') return false;
  if (m.to !== self || !isIndex(m.from) || m.from === 0 || m.from === self) return false;
  if (typeof m.type !== 'number' || m.type < MessageType.Vote || m.type > MessageType.SnapStatus) return false;
  if (!isIndex(m.term) || !isIndex(m.logTerm) || !isIndex(m.index) || !isIndex(m.commit) || !isIndex(m.rejectHint)) return false;
  if (!(m.context instanceof Uint8Array) || !Array.isArray(m.entries)) return false;
  if (m.type === MessageType.App) {
    const ents = m.entries;
    let prevTerm = m.logTerm;
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      if (!e || e.index !== m.index + 1 + i || !isIndex(e.term) || e.term < prevTerm || e.term > m.term) return false;
      if (!(e.data instanceof Uint8Array) || (e.type !== 0 && e.type !== 1)) return false;
      prevTerm = e.term;
    }
    if (m.logTerm > m.term) return false;
  } else if (m.type === MessageType.Snap) {
    const s = m.snapshot;
    if (!s || typeof s !== 'object' || !s.metadata || !isIndex(s.metadata.index) || !isIndex(s.metadata.term)) return false;
    if (s.metadata.term > m.term || s.metadata.index === 0) return false;
    const cs = s.metadata.confState;
    if (!cs || !Array.isArray(cs.voters) || !Array.isArray(cs.learners)) return false;
    if (!cs.voters.every(isIndex) || !cs.learners.every(isIndex)) return false;
    if (!(s.data instanceof Uint8Array)) return false;
  }
  return true;
}
