// chdb's raw insert for every input format, binary ones included.
//
// chdb's public Session.insert({values: Buffer, format}) hands the payload to the engine zero-copy, but
// only for the eight text formats on its own allow-list ("binary formats wait on an upstream check").
// The native entry under it, InsertRawAsyncConnection(connection, prefix, data, countLines), takes any
// `INSERT ... FORMAT X` prefix and the payload as bytes with their length (measured, chdb 3.4:
// Native, RowBinary and Parquet payloads with NUL bytes inside strings land intact). The caller builds
// the prefix from structured, validated parts (engine/sql.ts structuredInsertPrefix); this module only
// reaches the native entry, which chdb's package does not export, through the package's own loader.
// Without it (another chdb layout), insertRaw is undefined and the engine uses Session.insert for the
// formats chdb allows.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Session } from 'chdb';

interface NativeRawSummary {
  rowsWritten: number;
  bytesWritten: number;
  elapsed: number;
}

type NativeRawInsert = (connection: unknown, prefix: string, data: Uint8Array, countLines: boolean) => Promise<NativeRawSummary>;

function loadRawInsert(): NativeRawInsert | undefined {
  try {
    const require = createRequire(import.meta.url);
    const root = dirname(require.resolve('chdb/package.json'));
    const loader = require(join(root, 'dist', 'loader.js')) as { loadNative?: () => Record<string, unknown> };
    const fn = loader.loadNative?.()['InsertRawAsyncConnection'];
    return typeof fn === 'function' ? (fn as NativeRawInsert) : undefined;
  } catch {
    return undefined;
  }
}

const nativeRawInsert = loadRawInsert();

/** Whether this chdb build lets every format through insertRaw. */
export const RAW_INSERT_ANY_FORMAT = nativeRawInsert !== undefined;

/**
 * Runs `prefix` (`INSERT INTO db.t [(cols)] FORMAT X`, built by the caller from validated parts) with
 * `data` as its payload on the Session's connection; the rows ClickHouse reports written.
 */
export async function insertRaw(session: Session, prefix: string, data: Uint8Array): Promise<number> {
  if (!nativeRawInsert) throw new Error('chdb raw insert entry not available');
  const connection = (session as unknown as { connection?: unknown }).connection;
  if (!connection) throw Object.assign(new Error('No active connection available'), { code: 'CHDB_CLOSED' });
  const r = await nativeRawInsert(connection, prefix, data, false);
  return r.rowsWritten;
}
