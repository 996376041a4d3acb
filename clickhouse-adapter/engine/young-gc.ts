// Bounded memory for streamed results. Each chunk chdb hands over is a fresh ArrayBuffer outside
// V8's heap; the small objects that own them never fill the young generation, so nothing collects
// them until V8's external-memory trigger fires, about 64 MiB later (measured: a streamed
// `numbers(1e8)` grew the process 65-80 MiB). A minor collection (a scavenge, about a millisecond)
// every few MiB of streamed bytes frees the chunks already written and keeps the growth a few MiB.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Streamed bytes between two minor collections. */
export const YOUNG_GC_EVERY_BYTES = 8 * 1024 * 1024;

type GcFunction = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gc: GcFunction | undefined | null = null;

function gcFunction(): GcFunction | undefined {
  if (gc !== null) return gc;
  try {
    // Exposes `gc` in contexts created from now on; this process's own global is left as it is.
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as GcFunction;
  } catch {
    gc = undefined; // a runtime without the flag: the external-memory trigger still bounds growth
  }
  return gc;
}

/** Counts streamed bytes and runs a minor collection each YOUNG_GC_EVERY_BYTES. */
export class YoungGcPacer {
  private bytes = 0;

  add(n: number): void {
    this.bytes += n;
    if (this.bytes < YOUNG_GC_EVERY_BYTES) return;
    this.bytes = 0;
    gcFunction()?.({ type: 'minor' });
  }
}
