// Opening the engine the adapter process and the checksum tool run on, from command-line flags.

import { readFileSync } from 'node:fs';
import { optionValue, UsageError, type CliOption, type CommandLine, type CommandSpec } from '../../protocol/cli.js';
import { openEmbedded, openServer } from '../engine/index.js';
import type { ClickHouseEngine } from '../engine/index.js';

export interface EngineFlags {
  engine: 'embedded' | 'server';
  dataDir: string;
  clickhouseUrl: string | undefined;
  user: string | undefined;
  password: string | undefined;
}

/** The engine flags both commands share (protocol/cli.ts table: parsing and --help). */
export const ENGINE_OPTIONS: readonly CliOption[] = [
  { name: 'engine', value: 'embedded|server', env: 'RAFTHOUSE_ENGINE', default: 'embedded', help: 'ClickHouse engine: embedded (chdb in-process) or server' },
  { name: 'data-dir', value: 'DIR', env: 'RAFTHOUSE_DATA_DIR', default: './rafthouse-data', help: 'embedded: the chdb data directory' },
  { name: 'clickhouse-url', value: 'URL', env: 'CLICKHOUSE_URL', help: 'server: e.g. http://127.0.0.1:8123' },
  { name: 'user', value: 'NAME', env: 'CLICKHOUSE_USER', help: 'server: the ClickHouse user' },
  { name: 'password-file', value: 'file', env: 'CLICKHOUSE_PASSWORD', secret: true, help: 'server: file with its password (or CLICKHOUSE_PASSWORD / CLICKHOUSE_PASSWORD_FILE)' },
];

/** A ClickHouse password: the flag's file, else CLICKHOUSE_PASSWORD, else the file in CLICKHOUSE_PASSWORD_FILE. Any length (ClickHouse decides). */
function password(file: string | undefined, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (e) {
      throw new UsageError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  if (file !== undefined && file !== '') return read(file, '--password-file');
  if (env['CLICKHOUSE_PASSWORD'] !== undefined) return env['CLICKHOUSE_PASSWORD'];
  const envFile = env['CLICKHOUSE_PASSWORD_FILE'];
  return envFile ? read(envFile, 'CLICKHOUSE_PASSWORD_FILE') : undefined;
}

export function engineFlags(spec: CommandSpec, line: CommandLine, env: Readonly<Record<string, string | undefined>>): EngineFlags {
  const get = (name: string): string => optionValue(spec, line, env, name);
  const engine = get('engine');
  if (engine !== 'embedded' && engine !== 'server') throw new UsageError(`--engine must be embedded or server, got ${engine}`);
  const url = get('clickhouse-url') || undefined;
  if (engine === 'server' && !url) throw new UsageError('--engine server needs --clickhouse-url');
  const file = line.flags.get('password-file');
  return {
    engine,
    dataDir: get('data-dir'),
    clickhouseUrl: url,
    user: get('user') || undefined,
    password: password(typeof file === 'string' ? file : undefined, env),
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

export { UsageError };
