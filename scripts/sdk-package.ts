// Builds the SDK's npm package (adapters/sdk/package.json) from the compiled tree: the package keeps
// the repository's layout (adapters/sdk/, protocol/) so the SDK's relative imports of protocol/ hold,
// and its manifest's "files" decides what goes in. Anything the SDK imports that the manifest does not
// list is left out of the tarball, and the packed SDK fails to load (test/integration/sdk-package.test.ts).
//
//   npm run pack:sdk [-- DEST_DIR]     writes raftd-sdk-<version>.tgz into DEST_DIR (default .)

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The compiled tree this file is part of (<outDir>/scripts/sdk-package.js). */
const OUT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO_ROOT = resolve(OUT_DIR, '..');
/** The compiled folders the package is cut from; its manifest picks the files. */
const PACKAGE_DIRS = ['adapters/sdk', 'protocol'] as const;

export interface PackedSdk {
  tarball: string;
  /** Paths inside the package, as npm pack reports them. */
  files: string[];
}

function copyCompiled(staging: string): void {
  for (const dir of PACKAGE_DIRS) {
    mkdirSync(join(staging, dir), { recursive: true });
    for (const f of readdirSync(join(OUT_DIR, dir))) if (f.endsWith('.js')) copyFileSync(join(OUT_DIR, dir, f), join(staging, dir, f));
  }
}

/** The .d.ts files, emitted from the sources beside the compiled tree (tsconfig has declaration off). */
function emitDeclarations(staging: string): void {
  const program = ts.createProgram([join(REPO_ROOT, 'adapters/sdk/index.ts')], {
    declaration: true,
    emitDeclarationOnly: true,
    outDir: staging,
    rootDir: REPO_ROOT,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    types: ['node'],
  });
  const result = program.emit();
  const errors = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics].filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) throw new Error(`SDK declarations: ${ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => REPO_ROOT, getNewLine: () => '\n' })}`);
}

/** Packs the SDK into `dest` (created if missing) and returns the tarball's path and contents. */
export function packSdk(dest: string): PackedSdk {
  if (!import.meta.url.endsWith('.js')) throw new Error('packSdk packs the compiled tree: run it from dist/ (npm run pack:sdk)');
  const staging = mkdtempSync(join(tmpdir(), 'raftd-sdk-pack-'));
  try {
    copyFileSync(join(REPO_ROOT, 'adapters/sdk/package.json'), join(staging, 'package.json'));
    copyCompiled(staging);
    emitDeclarations(staging);
    mkdirSync(dest, { recursive: true });
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', resolve(dest)], { cwd: staging, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const [report] = JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>;
    if (!report) throw new Error(`npm pack reported nothing: ${out}`);
    return { tarball: join(resolve(dest), report.filename), files: report.files.map((f) => f.path) };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const packed = packSdk(process.argv[2] ?? '.');
  console.log([packed.tarball, ...packed.files.map((f) => `  ${f}`)].join('\n'));
}

