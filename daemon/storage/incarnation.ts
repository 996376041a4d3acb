// What this node knows of its peers' data directories: per peer id, the first incarnation it saw
// (LogStore meta 'peer-incarnation/<id>'). A peer id that later shows up with another incarnation
// was restarted on an empty or replaced disk: it has forgotten its votes and its log, so letting it
// vote could elect a leader missing committed entries. The transport refuses such a peer
// (PEER_DISK_REPLACED); this book only answers "admit or not" and makes first sightings durable.

import type { LogStore } from './log-store.js';

/** The part of LogStore the book needs (a fake in tests). */
export type MetaStore = Pick<LogStore, 'getMeta' | 'putMeta'>;

export function peerIncarnationKey(peer: number): string {
  return `peer-incarnation/${peer}`;
}

export class PeerIncarnations {
  /** Per peer: the recorded incarnation, once read or durably written. One promise per peer, so
   * a Hello and a stream arriving together for a first sighting agree on one record. */
  private readonly known = new Map<number, Promise<string>>();

  constructor(private readonly store: MetaStore) {}

  /**
   * undefined: admitted (the incarnation matches the record, or it is the first one seen for this
   * peer and is now durably recorded). Otherwise the incarnation recorded earlier, which differs.
   * Rejects only when the store fails; the caller refuses the peer for now and it retries.
   */
  async admit(peer: number, incarnation: string): Promise<string | undefined> {
    let rec = this.known.get(peer);
    if (!rec) {
      const p = this.firstSighting(peer, incarnation);
      rec = p;
      this.known.set(peer, p);
      // A failed write must not stick: the next stream from the peer tries again.
      p.catch(() => {
        if (this.known.get(peer) === p) this.known.delete(peer);
      });
    }
    const recorded = await rec;
    return recorded === incarnation ? undefined : recorded;
  }

  private async firstSighting(peer: number, incarnation: string): Promise<string> {
    const key = peerIncarnationKey(peer);
    const stored = await this.store.getMeta(key);
    if (stored !== undefined && stored.length > 0) return new TextDecoder().decode(stored);
    // Durable (putMeta syncs) before the first message from this peer is accepted: a crash
    // after accepting must not forget whom we accepted.
    await this.store.putMeta(key, new TextEncoder().encode(incarnation));
    return incarnation;
  }
}
