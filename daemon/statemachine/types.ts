// Shapes of the state-machine API v1 as raftd sees them (docs/state-machine-api.md).

export interface AppEntry {
  index: number;
  term: number;
  /** The entry's payload; empty = a no-op entry that only advances the app's index. */
  data: Uint8Array;
}

export interface EntryApplied {
  index: number;
  ok: true;
  result: unknown;
}

export interface EntryFailed {
  index: number;
  ok: false;
  error: { code: string; message: string };
}

/**
 * On the wire the app answers {index, skipped: true}; the client adds `ok: true` so every
 * result has a boolean `ok` (the host's EntryOutcome relies on it): a skipped entry did not fail,
 * its effect is simply already in the app (its original result is lost).
 */
export interface EntrySkipped {
  index: number;
  ok: true;
  skipped: true;
}

export type EntryResult = EntryApplied | EntryFailed | EntrySkipped;

export interface UpdateEntriesResult {
  results: EntryResult[];
  lastLogIndex: number;
}
