// history.json, written in chunks: a 600 s run on a quiet machine records 200,000+ operations, and
// one JSON.stringify of all of them (plus the string's copies) is a heap spike the runner does not
// need. The file is the same single JSON document as before (JSON.parse reads it whole).

import { closeSync, openSync, writeSync } from 'node:fs';

const CHUNK = 2000;

/** Writes `{...header, ops: [...]}` to `file`, `CHUNK` ops per write. */
export function writeHistoryFile(file: string, header: Record<string, unknown>, ops: readonly unknown[]): void {
  const fd = openSync(file, 'w');
  try {
    const head = JSON.stringify(header);
    writeSync(fd, (head === '{}' ? '{' : head.slice(0, -1) + ',') + '"ops":[');
    for (let i = 0; i < ops.length; i += CHUNK) {
      const part = ops.slice(i, i + CHUNK).map((op) => JSON.stringify(op));
      writeSync(fd, (i > 0 ? ',' : '') + part.join(','));
    }
    writeSync(fd, ']}');
  } finally {
    closeSync(fd);
  }
}
