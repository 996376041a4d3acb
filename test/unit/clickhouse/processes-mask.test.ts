// system.processes as the gateway shows it (engine/embedded.ts, processesSource): a placed read's url()
// leg signature (placed/auth.ts) is masked, so a client listing its running reads cannot replay a leg.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded, type ClickHouseEngine } from '../../../clickhouse-adapter/engine/index.js';

describe('embedded engine: system.processes masks leg signatures', function () {
  this.timeout(30_000);
  let dir: string;
  let engine: ClickHouseEngine;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rh-processes-'));
    engine = await openEmbedded({ dataDir: dir });
  });
  after(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the statement with its signature masked', async () => {
    const sig = 'ab'.repeat(32);
    const id = 'mask-test-1';
    const running = engine.query(`SELECT sleepEachRow(0.1) FROM numbers(15) /* headers('x-rafthouse-leg-signature' = '${sig}') */ SETTINGS max_block_size = 1`,
      { format: 'TSV', queryId: id });
    let text = '';
    for (let i = 0; i < 20 && !text; i++) {
      await new Promise((r) => setTimeout(r, 50));
      text = (await engine.query(`SELECT query FROM ${engine.processesSource!(new Map([[id, 'client-id']]))}`, { format: 'TSVRaw' })).toString();
    }
    await running;
    expect(text).to.include("x-rafthouse-leg-signature' = '<masked>'");
    expect(text).to.not.include(sig);
  });
});
