// Opening the engine the adapter process and the checksum tool run on, from command-line flags.

import { parseArgs } from 'node:util';
import { openEmbedded, openServer } from '../engine/index.js';
import type { ClickHouseEngine } from '../engine/index.js';

export interface EngineFlags {
  engine: 'embedded' | 'server';
  dataDir: string;
  clickhouseUrl: string | undefined;
  user: string | undefined;
  password: string | undefined;
}

export const ENGINE_FLAG_HELP = `  --engine embedded|server   ClickHouse engine (default embedded: chdb in-process)
  --data-dir DIR             embedded: the chdb data directory (default ./rafthouse-data)
  --clickhouse-url URL       server: e.g. http://127.0.0.1:8123
  --user NAME, --password P  server credentials (also CLICKHOUSE_USER / CLICKHOUSE_PASSWORD)`;

export const ENGINE_FLAG_OPTIONS = {
  engine: { type: 'string' },
  'data-dir': { type: 'string' },
  'clickhouse-url': { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  help: { type: 'boolean' },
} as const;

export class UsageError extends Error {
  readonly code = 'USAGE';
}

export function engineFlags(values: Record<string, string | boolean | undefined>): EngineFlags {
  const engine = (values.engine as string | undefined) ?? 'embedded';
  if (engine !== 'embedded' && engine !== 'server') throw new UsageError(`--engine must be embedded or server, got ${engine}`);
  const url = values['clickhouse-url'] as string | undefined;
  if (engine === 'server' && !url) throw new UsageError('--engine server needs --clickhouse-url');
  return {
    engine,
    dataDir: (values['data-dir'] as string | undefined) ?? './rafthouse-data',
    clickhouseUrl: url,
    user: (values.user as string | undefined) ?? process.env.CLICKHOUSE_USER,
    password: (values.password as string | undefined) ?? process.env.CLICKHOUSE_PASSWORD,
  };
}

export async function openEngine(f: EngineFlags): Promise<ClickHouseEngine> {
  if (f.engine === 'embedded') return openEmbedded({ dataDir: f.dataDir });
  return openServer({
    url: f.clickhouseUrl!,
    ...(f.user !== undefined ? { username: f.user } : {}),
    ...(f.password !== undefined ? { password: f.password } : {}),
  });
}

export { parseArgs };
