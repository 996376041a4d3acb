// Run as its own process by app-client.test.ts: uses an AppClient against a real app, closes both
// and then simply ends. The process exits by itself only if close() left no referenced handle.

import { AppClient } from '../../../daemon/statemachine/index.js';
import { TestApp } from './test-app.js';

const proto = process.argv[2] === 'h2' ? 'h2' : 'h1';
const app = new TestApp(proto);
const url = await app.listen();
const client = new AppClient({ appUrl: url, retry: { initialMs: 10, maxMs: 50 }, callTimeoutMs: 60_000 }); // a leaked deadline would outlive the test's patience
await client.connect();
await client.updateEntries(1, [{ index: 1, term: 1, data: new TextEncoder().encode('1') }]);
let chunks = 0;
app.snapshotBytes = 1 << 20;
for await (const _ of client.saveSnapshot(1, 'p')) chunks++;
// A call in flight at close() and an unhealthy spell (probe timer armed) must not keep us alive.
app.hook = async () => {
  await new Promise((r) => setTimeout(r, 200));
  return false;
};
const pending = client.lastLogIndex(1).catch((e: Error) => e);
await new Promise((r) => setTimeout(r, 20));
await client.close();
const err = await pending;
await app.close();
process.stdout.write(`done ${chunks > 0} ${(err as { code?: string }).code}\n`);
