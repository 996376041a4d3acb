#!/usr/bin/env node
// raftd-ch-checksum: prints, per group and per table, count() and sum(cityHash64(all columns)), so two
// replicas can be compared with diff. The embedded engine's directory must not be in use by another
// process (stop the adapter first, or ask a running adapter with a Read {"op":"checksum"}).

import { groupChecksums, formatChecksums } from './checksum.js';
import { ENGINE_OPTIONS, UsageError, engineFlags, openEngine } from './open.js';
import { commandLineOrExit, type CommandSpec } from '../../protocol/cli.js';

const COMMAND: CommandSpec = {
  name: 'raftd-ch-checksum',
  usage: ['raftd-ch-checksum [options]'],
  about: ['raftd-ch-checksum: per-group, per-table checksums of a RaftHouse replica (diff two replicas\' output).'],
  options: [...ENGINE_OPTIONS, { name: 'json', value: null, help: 'JSON instead of lines' }],
};

async function main(): Promise<void> {
  const line = commandLineOrExit(COMMAND, process.argv.slice(2));
  const engine = await openEngine(engineFlags(COMMAND, line, process.env));
  try {
    const sums = await groupChecksums(engine);
    process.stdout.write(line.flags.get('json') === true ? JSON.stringify(sums, null, 2) + '\n' : formatChecksums(sums));
  } finally {
    await engine.close();
  }
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  process.stderr.write(e instanceof UsageError ? `raftd-ch-checksum: ${err.message}\n` : `raftd-ch-checksum: ${err.code ?? 'ERROR'}: ${err.message}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
