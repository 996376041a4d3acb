// The SDK published alone: packed with its own manifest (adapters/sdk/package.json, through
// scripts/sdk-package.ts), installed by npm into a directory outside the repository, and used from
// there: an adapter built on the installed package serves a real raftd, and the installed client
// writes through raftd and reads the write back. Anything the SDK imports from outside its package
// (daemon/, a protocol/ file the manifest does not list, an undeclared dependency) fails here.

import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { packSdk, type PackedSdk } from '../../../scripts/sdk-package.js';
import { LocalCluster, REPO_ROOT, freePort, waitForHttp } from '../cluster.js';

const run = promisify(execFile);

/** Every module specifier a compiled ES module names (static imports, re-exports, dynamic imports). */
function specifiers(source: string): string[] {
  return [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'([^']+)'/g)].map((m) => m[1]!);
}

/**
 * The imports of the package's modules that it cannot satisfy itself: a relative path to a file
 * it does not contain (or outside it), or a bare name that is neither node's nor a dependency.
 */
function unsatisfiedImports(pkgDir: string): string[] {
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const deps = new Set(Object.keys(manifest.dependencies ?? {}));
  const problems: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const file = join(dir, name);
      if (statSync(file).isDirectory()) walk(file);
      else if (name.endsWith('.js')) {
        for (const spec of specifiers(readFileSync(file, 'utf8'))) {
          const where = relative(pkgDir, file);
          if (spec.startsWith('.')) {
            const target = resolve(dirname(file), spec);
            const inside = !relative(pkgDir, target).startsWith('..');
            let exists = false;
            try {
              exists = statSync(target).isFile();
            } catch {
              /* missing */
            }
            if (!inside || !exists) problems.push(`${where} imports ${spec}, which the package does not contain`);
          } else if (!spec.startsWith('node:') && !deps.has(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!)) {
            problems.push(`${where} imports ${spec}, which is not a dependency of the package`);
          }
        }
      }
    }
  };
  walk(pkgDir);
  return problems;
}

/** The smallest adapter worth the name: a replicated in-memory map, on the installed SDK. */
const ADAPTER = `
import { serveStateMachine } from '@raftd/sdk';
const groups = new Map();
const state = (g) => { let s = groups.get(g); if (!s) groups.set(g, (s = { last: 0, kv: {} })); return s; };
const sm = {
  async lastLogIndex(g) { return state(g).last; },
  async applyBatch(g, entries) {
    const s = state(g);
    return entries.map((e) => {
      s.last = e.index;
      if (e.data.length === 0) return { ok: true };
      const { k, v } = JSON.parse(Buffer.from(e.data).toString());
      s.kv[k] = v;
      return { ok: true, result: { k } };
    });
  },
  async read(g, q) { return state(g).kv[q.k] ?? null; },
  async prepareSnapshot(g) { const s = state(g); return { prepared: JSON.stringify(s), lastLogIndex: s.last }; },
  async *saveSnapshot(g, prepared) { yield Buffer.from(prepared); },
  async recoverFromSnapshot(g, data) {
    const parts = []; for await (const c of data) parts.push(Buffer.from(c));
    const s = JSON.parse(Buffer.concat(parts).toString()); groups.set(g, s); return s.last;
  },
};
const served = await serveStateMachine(sm, { host: '127.0.0.1', port: Number(process.argv[2]) });
console.log('serving', served.url);
`;

/** One write and one read through raftd with the installed client; prints what it got. */
const CLIENT = `
import { RaftdClient } from '@raftd/sdk';
const client = new RaftdClient({ url: process.argv[2], timeoutMs: 15000 });
const written = await client.propose(1, JSON.stringify({ k: 'greeting', v: 'hello from the packed SDK' }));
const read = await client.read(1, { k: 'greeting' });
client.close();
console.log(JSON.stringify({ written, read }));
`;

/** A TypeScript user of the package: its declarations must resolve through its "exports". */
const TYPED_USER = `
import { RaftdClient, StateMachineError, type StateMachine, type Entry } from '@raftd/sdk';
export const client: RaftdClient = new RaftdClient({ url: 'http://127.0.0.1:1' });
export const refusal: StateMachineError = new StateMachineError('BAD_QUERY', 'no');
export function firstIndex(sm: StateMachine, entries: Entry[]): number { void sm; return entries[0]?.index ?? 0; }
`;

describe('the SDK packed alone (npm pack of adapters/sdk, installed outside the repository)', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'raftd-sdk-user-'));
  const user = join(dir, 'user');
  let packed: PackedSdk;
  let cluster: LocalCluster | undefined;
  let adapter: ChildProcess | undefined;

  before(async () => {
    packed = packSdk(join(dir, 'dist'));
    mkdirSync(user);
    writeFileSync(join(user, 'package.json'), JSON.stringify({ name: 'sdk-user', private: true, type: 'module' }));
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', packed.tarball], { cwd: user });
  });

  after(async () => {
    await cluster?.destroy();
    if (adapter && adapter.exitCode === null) {
      adapter.kill('SIGKILL');
      await new Promise((r) => adapter!.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds only the SDK and the protocol/ files it names, each import satisfied inside it', () => {
    expect(packed.files).to.include.members(['package.json', 'adapters/sdk/index.js', 'adapters/sdk/index.d.ts', 'protocol/entries-codec.js']);
    for (const f of packed.files) expect(f, f).to.match(/^(package\.json|adapters\/sdk\/[^/]+\.(js|d\.ts)|protocol\/[^/]+\.(js|d\.ts))$/);
    expect(unsatisfiedImports(join(user, 'node_modules/@raftd/sdk'))).to.deep.equal([]);
  });

  it('the import check names a module that reaches outside the package', () => {
    const fake = join(dir, 'fake');
    mkdirSync(join(fake, 'adapters/sdk'), { recursive: true });
    writeFileSync(join(fake, 'package.json'), JSON.stringify({ name: 'fake', dependencies: {} }));
    writeFileSync(join(fake, 'adapters/sdk/index.js'), "import { RaftdError } from '../../daemon/errors.js';\nimport pino from 'pino';\nexport { RaftdError, pino };\n");
    expect(unsatisfiedImports(fake)).to.deep.equal([
      'adapters/sdk/index.js imports ../../daemon/errors.js, which the package does not contain',
      'adapters/sdk/index.js imports pino, which is not a dependency of the package',
    ]);
  });

  it('type-checks a TypeScript user against the declarations it ships', () => {
    const file = join(user, 'typed-user.ts');
    writeFileSync(file, TYPED_USER);
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      // The user's own @types/node (any recent one): the repository's, not the package's.
      typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
      types: ['node'],
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(errors).to.deep.equal([]);
  });

  it('serves a real raftd from an adapter built on the installed package, and writes and reads through it', async () => {
    const port = await freePort();
    const appUrl = `http://127.0.0.1:${port}`;
    cluster = await LocalCluster.create({ nodes: 1, appUrls: () => appUrl });
    writeFileSync(join(user, 'adapter.mjs'), ADAPTER);
    writeFileSync(join(user, 'client.mjs'), CLIENT);
    adapter = spawn(process.execPath, [join(user, 'adapter.mjs'), String(port)], { cwd: user, env: { ...process.env, ...cluster.secrets!.appEnv() }, stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForHttp(appUrl, 20_000);
    await cluster.startAll();
    await cluster.waitForLeaders([1], 30_000);
    const { stdout } = await run(process.execPath, [join(user, 'client.mjs'), cluster.nodes[0]!.url], { cwd: user, env: { ...process.env, ...cluster.secrets!.clientEnv() } });
    const got = JSON.parse(stdout) as { written: { index: number; result: unknown }; read: unknown };
    expect(got.written.result).to.deep.equal({ k: 'greeting' });
    expect(got.written.index).to.be.a('number').above(0);
    expect(got.read).to.equal('hello from the packed SDK');
  });
});
