// Three replicas fed the same log, in different batch sizes (so different part layouts and different
// index-record points), end with identical checksums and identical per-entry results.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Replica, buildLog, feed } from './harness.js';

const here = fileURLToPath(import.meta.url);
const ts = here.endsWith('.ts');
const CHECKSUM_MAIN = join(here, '..', '..', '..', '..', 'clickhouse-adapter', 'statemachine', ts ? 'checksum-main.ts' : 'checksum-main.js');

describe('chsm: replicas fed the same log', function () {
  this.timeout(60_000);
  const replicas: Replica[] = [];

  after(async () => {
    for (const r of replicas) { await r.stop(); r.remove(); }
  });

  it('end with identical checksums and identical results, failures included', async () => {
    const log = buildLog();
    for (let i = 0; i < 3; i++) replicas.push(Replica.fresh());
    await Promise.all(replicas.map((r) => r.start()));
    const results = await Promise.all(replicas.map((r, i) => feed(r, log, [1, 4, 26][i]!)));
    for (const r of results.slice(1)) expect(r).to.deep.equal(results[0]);
    const res = results[0]!;
    expect(res).to.have.length(log.length);
    // The failing entries fail the same way everywhere and the group moves on.
    expect(res[7]).to.deep.include({ ok: false });
    expect((res[7] as { error: { code: string } }).error.code).to.equal('CLICKHOUSE_60');
    expect((res[8] as { error: { code: string } }).error.code).to.equal('CLICKHOUSE_62');
    expect((res[24] as { error: { code: string } }).error.code).to.equal('RH_BAD_ENTRY');
    expect(res[25]).to.deep.equal({ ok: true, result: { writtenRows: 500 } });
    for (const r of replicas) expect(await r.last()).to.equal(log.length);
    const sums = await Promise.all(replicas.map((r) => r.checksum()));
    expect(sums[1]).to.equal(sums[0]);
    expect(sums[2]).to.equal(sums[0]);
    // 1000 + 2 + 300 + 5000 (INSERT SELECT) - 10 (DELETE id < 10) + 2000 + 500 rows in t; u2 = 400 + 3 + 1 + 1.
    expect(sums[0]).to.include('g1 t rows=8792 ');
    expect(sums[0]).to.include('g1 u2 rows=405 ');
    expect(sums[0]).to.not.include(' w ');
    const updated = await replicas[0]!.call<string>('query', { sql: "SELECT countIf(endsWith(v, '!')), any(extra) FROM rh_g1.t WHERE id = 1000" });
    expect(updated.trim()).to.equal('1\t1000');
  });

  it('a redelivered batch changes nothing', async () => {
    const r = replicas[0]!;
    const before = await r.checksum();
    const log = buildLog();
    const res = await r.apply(log.slice(0, 6));
    expect(res.every((x) => (x as { result?: { skipped?: boolean } }).result?.skipped === true)).to.equal(true);
    expect(await r.checksum()).to.equal(before);
  });

  it('raftd-ch-checksum prints the same checksums from the data directory', async () => {
    const r = replicas[1]!;
    const expected = await r.checksum();
    await r.stop(); // one process per chdb directory
    const { stdout } = await promisify(execFile)(process.execPath,
      [...(ts ? ['--import', 'tsx'] : []), CHECKSUM_MAIN, '--engine', 'embedded', '--data-dir', r.dataDir]);
    expect(stdout).to.equal(expected);
  });
});
