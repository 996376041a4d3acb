// The layout's promise, checked on the sources: protocol/ (the wire formats both sides of a contract
// use) imports nothing of the project, and adapters/ and clickhouse-adapter/ reach raftd only through
// protocol/ and its HTTP APIs, never by importing daemon/. test/integration/sdk/package.test.ts checks
// the SDK's own package the same way, from what npm packs.

import { expect } from 'chai';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository: this file is <root>/test/unit/protocol/x.ts, or <root>/<outDir>/test/unit/protocol/x.js. */
const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!statSync(join(dir, 'package.json'), { throwIfNoEntry: false })?.isFile()) dir = dirname(dir);
  return dir;
})();

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Each import of a source file as the repository path it names (relative ones) or as written (packages). */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  // `import x from '...'`, `export {x} from '...'` (over several lines too), `import '...'`, `import('...')`.
  const found = text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/gm);
  return [...found].map((m) => {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    return spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec)) : spec;
  });
}

describe('layout boundaries (protocol/, adapters/, clickhouse-adapter/)', () => {
  it('adapters/ and clickhouse-adapter/ import nothing from daemon/', () => {
    const files = [...sources('adapters'), ...sources('clickhouse-adapter')];
    expect(files.length).to.be.above(20);
    const crossings = files.flatMap((f) => imports(f).filter((i) => i.startsWith('daemon/')).map((i) => `${f} imports ${i}`));
    expect(crossings).to.deep.equal([]);
  });

  it('protocol/ imports only node built-ins and itself', () => {
    const files = sources('protocol');
    expect(files).to.include('protocol/entries-codec.ts');
    const outside = files.flatMap((f) => imports(f).filter((i) => !i.startsWith('node:') && !i.startsWith('protocol/')).map((i) => `${f} imports ${i}`));
    expect(outside).to.deep.equal([]);
  });
});
