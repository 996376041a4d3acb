// The conformance kit against real adapters (the TypeScript KV adapter and the stdlib Python one,
// as separate processes restarted with kill -9), and against broken adapters it must catch.

import { expect } from 'chai';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { runConformance, type CheckResult } from '../../../adapters/conformance/kit.js';
import { AppProcess, freePort, nodeArgs, root, run, tmpDir } from './procs.js';
import { startToy, ToyDisk, type ToyFaults } from './toy.js';
import { ensureSecretsDir } from '../../../protocol/secrets.js';
import { TEST_APP_SECRET } from '../../support/app-secret.js';

function byName(results: CheckResult[]): Record<string, CheckResult> {
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

describe('conformance kit (real processes)', function () {
  this.timeout(90_000);
  const dirs: string[] = [];
  const apps: AppProcess[] = [];
  after(() => {
    for (const a of apps) a.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function startApp(kind: 'ts' | 'py'): Promise<{ app: AppProcess; secretFile: string }> {
    const dir = tmpDir(`conf-${kind}-`);
    dirs.push(dir);
    const secretFile = ensureSecretsDir(path.join(dir, 'secrets')).appSecret;
    const port = await freePort();
    const data = path.join(dir, 'data');
    const cmd =
      kind === 'ts'
        ? [process.execPath, ...nodeArgs('adapters/kv/main.ts'), '--listen', `127.0.0.1:${port}`, '--data-dir', data]
        : ['python3', path.join(root, 'adapters/examples/python-kv/adapter.py'), '--listen', `127.0.0.1:${port}`, '--data-dir', data];
    const app = new AppProcess(dir, port, cmd, 'app', { RAFTD_APP_SECRET_FILE: secretFile });
    apps.push(app);
    await app.start();
    return { app, secretFile };
  }

  for (const kind of ['ts', 'py'] as const) {
    it(`raftd-conformance passes on the ${kind === 'ts' ? 'TypeScript KV adapter' : 'Python stdlib adapter'}, restart included`, async () => {
      const { app, secretFile } = await startApp(kind);
      const { code, out } = await run(process.execPath, [...nodeArgs('adapters/conformance/main.ts'), '--app-url', app.url, '--app-secret-file', secretFile, '--restart-cmd', `sh ${app.script}`]);
      // Unsigned, wrongly signed, replayed and altered calls refused, and the state unchanged.
      expect(out, out).to.match(/PASS auth-required/);
      expect(out, out).to.match(/PASS restart-durable/);
      expect(out, out).to.match(/PASS redelivery-skipped/);
      expect(out, out).to.match(/PASS snapshot-deterministic-under-updates/);
      expect(out, out).to.match(/PASS recover-replaces-state/);
      expect(out, out).not.to.match(/^FAIL/m);
      expect(code, out).to.equal(0);
      expect(out).to.match(kind === 'ts' ? /PASS h2c/ : /INFO h2c/);
      // The SDK advertises the binary UpdateEntries body; the Python adapter, unchanged, does not.
      expect(out).to.match(kind === 'ts' ? /PASS binary-entries/ : /INFO binary-entries/);
    });
  }

  it('the CLI exits non-zero and names the check when an app fails one', async () => {
    const toy = await startToy(0, new ToyDisk(), { reapply: true });
    try {
      const { code, out } = await run(process.execPath, [...nodeArgs('adapters/conformance/main.ts'), '--app-url', toy.url]);
      expect(code, out).to.equal(1);
      expect(out).to.match(/^FAIL redelivery-skipped: redelivered entry 1 .*applied again/m);
      expect(out).to.match(/^SKIP restart-durable/m);
    } finally {
      await toy.close();
    }
  });

  it('without the app secret the kit\'s calls are refused by a secured app: it fails and says so', async () => {
    const { app } = await startApp('ts');
    const { code, out } = await run(process.execPath, [...nodeArgs('adapters/conformance/main.ts'), '--app-url', app.url]);
    expect(code, out).to.equal(1);
    expect(out).to.match(/^FAIL fresh-group-starts-at-0: .*HTTP 401/m);
    expect(out).to.match(/^SKIP auth-required/m);
  });

  it('the KV and Python adapters refuse to start without the app secret (exit 2, naming where it goes)', async () => {
    const dir = tmpDir('conf-nosecret-');
    dirs.push(dir);
    const port = await freePort();
    const env = { ...process.env, RAFTD_APP_SECRET: '', RAFTD_APP_SECRET_FILE: '' };
    const kv = await run(process.execPath, [...nodeArgs('adapters/kv/main.ts'), '--listen', `127.0.0.1:${port}`, '--data-dir', path.join(dir, 'kv')], { env });
    expect(kv.code, kv.out).to.equal(2);
    expect(kv.out).to.match(/no --app-secret-file \(or RAFTD_APP_SECRET/);
    const py = await run('python3', [path.join(root, 'adapters/examples/python-kv/adapter.py'), '--listen', `127.0.0.1:${port}`, '--data-dir', path.join(dir, 'py')], { env });
    expect(py.code, py.out).to.not.equal(0);
    expect(py.out).to.match(/no --app-secret-file \(or RAFTD_APP_SECRET/);
  });

  it('the CLI refuses bad usage with status 2', async () => {
    const { code, out } = await run(process.execPath, [...nodeArgs('adapters/conformance/main.ts'), '--app-url', 'not-a-url']);
    expect(code).to.equal(2);
    expect(out).to.match(/--app-url/);
  });
});

describe('conformance kit catches broken adapters', function () {
  this.timeout(30_000);

  async function check(faults: ToyFaults): Promise<Record<string, CheckResult>> {
    const disk = new ToyDisk();
    let toy = await startToy(0, disk, faults);
    const port = toy.port;
    try {
      const results = await runConformance({
        appUrl: toy.url,
        restart: async () => {
          await toy.close();
          toy = await startToy(port, disk, faults);
        },
      });
      return byName(results);
    } finally {
      await toy.close();
    }
  }

  it('a correct toy passes every check (so the failures below are the faults, not the toy)', async () => {
    const r = await check({});
    const failed = Object.values(r).filter((c) => c.status === 'FAIL');
    expect(failed, JSON.stringify(failed)).to.deep.equal([]);
    expect(r['restart-durable']!.status).to.equal('PASS');
  });

  it('re-applying redelivered entries fails redelivery-skipped', async () => {
    const r = await check({ reapply: true });
    expect(r['redelivery-skipped']!.status).to.equal('FAIL');
    expect(r['redelivery-skipped']!.reason).to.match(/redelivered entry 1/);
  });

  it('snapshot bytes that differ between calls fail snapshot-deterministic', async () => {
    const r = await check({ unstableSnapshot: true });
    expect(r['snapshot-deterministic']!.status).to.equal('FAIL');
    expect(r['snapshot-deterministic']!.reason).to.match(/differ/);
    expect(r['redelivery-skipped']!.status).to.equal('PASS');
  });

  it('losing the last index on restart fails restart-durable', async () => {
    const r = await check({ volatile: true });
    expect(r['restart-durable']!.status).to.equal('FAIL');
    expect(r['restart-durable']!.reason).to.match(/before the restart and is 0 after/);
    expect(r['snapshot-deterministic']!.status).to.equal('PASS');
  });

  it('with kv: false (--no-kv) a correct toy passes and a re-applying one still fails on results', async () => {
    const disk = new ToyDisk();
    const good = await startToy(0, disk, {});
    const bad = await startToy(0, new ToyDisk(), { reapply: true });
    try {
      const ok = byName(await runConformance({ appUrl: good.url, kv: false }));
      expect(Object.values(ok).filter((c) => c.status === 'FAIL')).to.deep.equal([]);
      const broken = byName(await runConformance({ appUrl: bad.url, kv: false }));
      expect(broken['redelivery-skipped']!.status).to.equal('FAIL');
    } finally {
      await good.close();
      await bad.close();
    }
  });

  it('an app that serves unsigned calls fails auth-required (the toy checks no signature)', async () => {
    const toy = await startToy(0, new ToyDisk(), {});
    try {
      const r = byName(await runConformance({ appUrl: toy.url, appSecret: TEST_APP_SECRET }));
      expect(r['auth-required']!.status).to.equal('FAIL');
      expect(r['auth-required']!.reason).to.match(/an unsigned UpdateEntries answered HTTP 200, expected 401/);
      expect(r['redelivery-skipped']!.status).to.equal('PASS');
    } finally {
      await toy.close();
    }
  });

  it('an app that does not answer fails the first check instead of hanging', async () => {
    const port = await freePort();
    const r = byName(await runConformance({ appUrl: `http://127.0.0.1:${port}`, timeoutMs: 2000 }));
    expect(r['fresh-group-starts-at-0']!.status).to.equal('FAIL');
    expect(r['fresh-group-starts-at-0']!.reason).to.match(/no answer/);
  });
});
