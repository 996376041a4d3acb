#!/usr/bin/env node
// The RaftHouse state-machine adapter process: raftd calls it (docs/state-machine-api.md) and it applies
// each group's log to the group's ClickHouse database.
//
//   rafthouse-adapter --listen 127.0.0.1:7100 [--engine embedded --data-dir DIR | --engine server --clickhouse-url URL]
//   with the app secret raftd signs its calls with in --app-secret-file PATH, RAFTD_APP_SECRET or RAFTD_APP_SECRET_FILE.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStateMachine } from '../../adapters/sdk/server.js';
import { MODE_REQUIREMENTS, requireCapabilities, EngineUnsupportedError, openEmbedded } from '../engine/index.js';
import type { ClickHouseEngine } from '../engine/index.js';
import { ClickHouseStateMachine } from './statemachine.js';
import { APPLIED_DIR } from './applied-file.js';
import { APP_SECRET_ENV } from '../../protocol/secrets.js';
import { ENGINE_OPTIONS, UsageError, engineFlags, openEngine } from './open.js';
import { commandLineOrExit, optionSecret, optionSwitch, optionValue, type CommandSpec } from '../../protocol/cli.js';

const COMMAND: CommandSpec = {
  name: 'rafthouse-adapter',
  usage: ['rafthouse-adapter [options]'],
  about: ['rafthouse-adapter: the RaftHouse ClickHouse state machine alone, served to raftd (rafthouse runs it with its gateway).'],
  options: [
    { name: 'listen', value: 'HOST:PORT', env: 'RAFTHOUSE_APP_LISTEN', default: '127.0.0.1:7100', help: 'where raftd reaches it' },
    ...ENGINE_OPTIONS,
    { name: 'dedup-window', value: 'int', env: 'RAFTHOUSE_DEDUP_WINDOW', default: '10000', help: 'non_replicated_deduplication_window on every group table' },
    { name: 'app-secret-file', value: 'file', env: APP_SECRET_ENV, secret: true, help: `the app secret raftd signs every call with (or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE); calls not signed with it are refused (401)` },
    { name: 'insecure', value: null, env: 'RAFTHOUSE_INSECURE', help: 'serve unsigned calls: anyone who reaches the port rewrites the data (tests only)' },
  ],
};

async function main(): Promise<void> {
  const line = commandLineOrExit(COMMAND, process.argv.slice(2));
  const get = (name: string): string => optionValue(COMMAND, line, process.env, name);
  const flags = engineFlags(COMMAND, line, process.env);
  const listen = get('listen');
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new UsageError(`--listen must be HOST:PORT, got ${listen}`);
  const dedupWindow = Number(get('dedup-window'));
  if (!Number.isSafeInteger(dedupWindow) || dedupWindow < 100) throw new UsageError('--dedup-window must be an integer >= 100');

  const appSecret = optionSecret(COMMAND, line, process.env, 'app-secret-file');
  if (appSecret === '' && !optionSwitch(COMMAND, line, process.env, 'insecure')) {
    throw new UsageError(`no --app-secret-file (or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE): the state-machine API refuses calls without raftd's secret; give it, or --insecure for a throwaway test`);
  }
  const engine = await openEngine(flags);
  try {
    // Refuse what this ClickHouse cannot do safely, naming what is missing.
    requireCapabilities(engine, MODE_REQUIREMENTS['RaftHouse exactly-once apply'], 'RaftHouse exactly-once apply');
    requireCapabilities(engine, MODE_REQUIREMENTS['RaftHouse snapshots'], 'RaftHouse snapshots');
  } catch (e) {
    await engine.close();
    throw e;
  }
  // Every entry is validated with ClickHouse's parser (rules/): with a server engine, a parser-only
  // embedded session on a scratch directory, so every replica parses with the same ClickHouse.
  let parserEngine: ClickHouseEngine = engine;
  let parserDir: string | undefined;
  if (flags.engine !== 'embedded') {
    parserDir = mkdtempSync(join(tmpdir(), 'rafthouse-adapter-parser-'));
    parserEngine = await openEmbedded({ dataDir: parserDir, readonly: true, allowSettings: true });
  }
  const sm = new ClickHouseStateMachine({
    engine, dedupWindow, parserEngine, log: (m) => process.stderr.write(`rafthouse-adapter: ${m}\n`),
    ...(flags.engine === 'embedded' ? { appliedDir: join(flags.dataDir, APPLIED_DIR) } : {}),
  });
  const served = await serveStateMachine(sm, { host: m[1]!, port: Number(m[2]), ...(appSecret !== '' ? { appSecret } : { insecure: true }) });
  process.stdout.write(`rafthouse-adapter: ${engine.kind} ClickHouse ${engine.capabilities.version}, listening on ${served.url}\n`);
  const stop = async (): Promise<void> => {
    await served.close();
    await sm.close(); // write deferred index records
    await engine.close();
    if (parserDir) {
      await parserEngine.close();
      rmSync(parserDir, { recursive: true, force: true });
    }
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  process.stderr.write(e instanceof UsageError ? `rafthouse-adapter: ${err.message}\n` : `rafthouse-adapter: ${err.code ?? 'ERROR'}: ${err.message}\n`);
  process.exit(e instanceof UsageError ? 2 : e instanceof EngineUnsupportedError ? 3 : 1);
});
