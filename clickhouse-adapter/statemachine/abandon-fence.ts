// The abandon fence kept across a restart of the state machine's process (embedded engine: a file beside
// the applied-index files). A replica that told the leader "failing at i" must not apply i after a crash
// and restart either: the leader may have proposed the abandon on that word (docs/design-notes.md,
// "No poison entries"). Written synchronously before the answer leaves; a process crash keeps it (the
// page cache survives), a machine crash within the fence may not (no fsync: the write is on the hot
// path of a check, and the fence is 30 s).

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Fence {
  index: number;
  /** Date.now() when it expires. */
  until: number;
}

export class FenceFiles {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private path(group: number): string {
    return join(this.dir, `abandon-fence-${group}.json`);
  }

  save(group: number, fence: Fence): void {
    writeFileSync(this.path(group), JSON.stringify(fence));
  }

  clear(group: number): void {
    rmSync(this.path(group), { force: true });
  }

  /** The group's fence if one was saved and is still in force for an entry past `applied`. */
  load(group: number, applied: number): Fence | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.path(group), 'utf8'));
    } catch {
      return undefined; // none, or cut short: no fence (the answer it backed never left)
    }
    const f = raw as Partial<Fence>;
    if (!Number.isSafeInteger(f.index) || typeof f.until !== 'number') return undefined;
    return f.index! > applied && f.until > Date.now() ? { index: f.index!, until: f.until } : undefined;
  }
}
