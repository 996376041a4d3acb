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
import { APP_SECRET_ENV, resolveSecret } from '../../protocol/secrets.js';
import { ENGINE_FLAG_HELP, ENGINE_FLAG_OPTIONS, UsageError, engineFlags, openEngine, parseArgs } from './open.js';

const HELP = `rafthouse-adapter: the RaftHouse ClickHouse state machine, served to raftd
  --listen HOST:PORT         where raftd reaches it (default 127.0.0.1:7100)
${ENGINE_FLAG_HELP}
  --dedup-window N           non_replicated_deduplication_window on every group table (default 10000)
  --app-secret-file PATH     the app secret raftd signs every call with (or ${APP_SECRET_ENV} / ${APP_SECRET_ENV}_FILE);
                             calls not signed with it are refused (401)
  --insecure                 serve unsigned calls: anyone who reaches the port rewrites the data (tests only)
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { ...ENGINE_FLAG_OPTIONS, listen: { type: 'string' }, 'dedup-window': { type: 'string' }, 'app-secret-file': { type: 'string' }, insecure: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) { process.stdout.write(HELP); return; }
  const flags = engineFlags(values);
  const listen = values.listen ?? '127.0.0.1:7100';
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new UsageError(`--listen must be HOST:PORT, got ${listen}`);
  const dedupWindow = values['dedup-window'] !== undefined ? Number(values['dedup-window']) : 10_000;
  if (!Number.isSafeInteger(dedupWindow) || dedupWindow < 100) throw new UsageError('--dedup-window must be an integer >= 100');

  const appSecret = resolveSecret(values['app-secret-file'], APP_SECRET_ENV, process.env, 'app secret');
  if (appSecret === '' && values.insecure !== true) {
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
  process.stderr.write(`rafthouse-adapter: ${err.code ?? 'ERROR'}: ${err.message}\n`);
  if (e instanceof UsageError) process.stderr.write(HELP);
  process.exit(e instanceof UsageError ? 2 : e instanceof EngineUnsupportedError ? 3 : 1);
});
