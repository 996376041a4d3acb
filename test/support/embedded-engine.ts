// A read-only embedded ClickHouse (chdb) in a temporary directory for one mocha suite: opened before
// its tests, closed and removed after them.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded, type ClickHouseEngine } from '../../clickhouse-adapter/engine/index.js';

/** Registers the suite's before/after hooks; the returned function gives the open engine. */
export function embeddedEngineForSuite(prefix: string): () => ClickHouseEngine {
  let dir: string | undefined;
  let engine: ClickHouseEngine | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    engine = await openEmbedded({ dataDir: dir, readonly: true });
  });
  after(async () => {
    await engine?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!engine) throw new Error('the embedded engine is not open (used outside a test?)');
    return engine;
  };
}
