// One replica of the ClickHouse state machine in its own process (chdb allows one data directory per
// process). Speaks JSON lines on stdin/stdout; RH_CRASH_AT="<point>@<index>" makes it SIGKILL itself
// at that point of the apply path, as a crash would.

import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { APPLIED_DIR } from '../../../clickhouse-adapter/statemachine/applied-file.js';
import { openEmbedded } from '../../../clickhouse-adapter/engine/index.js';
import { ClickHouseStateMachine } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import type { CrashPoint } from '../../../clickhouse-adapter/statemachine/statemachine.js';
import { formatChecksums, groupChecksums } from '../../../clickhouse-adapter/statemachine/checksum.js';

const dataDir = process.env.RH_DATA_DIR;
if (!dataDir) throw new Error('RH_DATA_DIR is required');
const crashAt = process.env.RH_CRASH_AT;

const engine = await openEmbedded({ dataDir });
const sm = new ClickHouseStateMachine({
  engine,
  log: (m: string) => process.stderr.write(`${m}\n`),
  ...(process.env.RH_APPLIED_FILE ? { appliedDir: join(dataDir, APPLIED_DIR) } : {}),
  hook: (point: CrashPoint, index: number) => {
    if (crashAt === `${point}@${index}`) process.kill(process.pid, 'SIGKILL');
  },
});

interface Cmd {
  id: number;
  op: string;
  group?: number;
  entries?: Array<{ index: number; term: number; data: string }>;
  prepared?: string;
  data?: string;
  sql?: string;
}

async function handle(c: Cmd): Promise<unknown> {
  const g = c.group ?? 1;
  switch (c.op) {
    case 'apply':
      return sm.applyBatch(g, (c.entries ?? []).map((e) => ({ index: e.index, term: e.term, data: Buffer.from(e.data, 'base64') })));
    case 'last':
      return sm.lastLogIndex(g);
    case 'checksum':
      await sm.close(); // write deferred index records, so the printed index is the applied one
      return formatChecksums(await groupChecksums(engine));
    case 'prepare':
      return sm.prepareSnapshot(g);
    case 'save': {
      const parts: Buffer[] = [];
      for await (const chunk of sm.saveSnapshot(g, c.prepared!)) parts.push(Buffer.from(chunk));
      return Buffer.concat(parts).toString('base64');
    }
    case 'recover': {
      const bytes = Buffer.from(c.data!, 'base64');
      // Fed in small pieces, as an HTTP body would arrive.
      async function* pieces(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < bytes.length; i += 7777) yield bytes.subarray(i, i + 7777);
      }
      return sm.recoverFromSnapshot(g, pieces());
    }
    case 'query':
      return (await engine.query(c.sql!, { format: 'TabSeparated' })).toString('utf8');
    case 'databases':
      return (await engine.query("SELECT name FROM system.databases WHERE startsWith(name, 'rh_') ORDER BY name", { format: 'TabSeparated' })).toString('utf8');
    case 'exit':
      await sm.close();
      await engine.close();
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const c = JSON.parse(line) as Cmd;
  handle(c).then(
    (result) => process.stdout.write(JSON.stringify({ id: c.id, result }) + '\n'),
    (e: unknown) => {
      const err = e as { code?: unknown; message?: string };
      process.stdout.write(JSON.stringify({ id: c.id, error: { code: String(err.code ?? 'ERROR'), message: err.message ?? String(e) } }) + '\n');
    },
  );
});
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
