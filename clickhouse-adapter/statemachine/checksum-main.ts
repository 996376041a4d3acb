#!/usr/bin/env node
// raftd-ch-checksum: prints, per group and per table, count() and sum(cityHash64(all columns)), so two
// replicas can be compared with diff. The embedded engine's directory must not be in use by another
// process (stop the adapter first, or ask a running adapter with a Read {"op":"checksum"}).

import { groupChecksums, formatChecksums } from './checksum.js';
import { ENGINE_FLAG_HELP, ENGINE_FLAG_OPTIONS, UsageError, engineFlags, openEngine, parseArgs } from './open.js';

const HELP = `raftd-ch-checksum: per-group, per-table checksums of a RaftHouse replica
${ENGINE_FLAG_HELP}
  --json                     JSON instead of lines
`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ...ENGINE_FLAG_OPTIONS, json: { type: 'boolean' } }, strict: true });
  if (values.help) { process.stdout.write(HELP); return; }
  const engine = await openEngine(engineFlags(values));
  try {
    const sums = await groupChecksums(engine);
    process.stdout.write(values.json ? JSON.stringify(sums, null, 2) + '\n' : formatChecksums(sums));
  } finally {
    await engine.close();
  }
}

main().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  process.stderr.write(`raftd-ch-checksum: ${err.code ?? 'ERROR'}: ${err.message}\n`);
  if (e instanceof UsageError) process.stderr.write(HELP);
  process.exit(e instanceof UsageError ? 2 : 1);
});
