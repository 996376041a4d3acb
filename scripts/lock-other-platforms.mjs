#!/usr/bin/env node
// Completes package-lock.json with the other platforms' optional binaries (chdb's and buf's) that
// the npm registry mirror here does not carry. Without their entries `npm ci` refuses the lock
// ("Missing: @chdb/lib-darwin-arm64 from lock file"); with them, npm ci skips them on a platform they
// do not match, and on one they do match fetches them from the registry as usual (the entries carry
// no integrity hash, since the mirror cannot give one). Run it after any `npm install` that rewrote
// the lock: `node scripts/lock-other-platforms.mjs`.

import { readFileSync, writeFileSync } from 'node:fs';

const OS = { darwin: 'darwin', linux: 'linux', win32: 'win32' };
const CPU = { arm64: 'arm64', aarch64: 'arm64', x64: 'x64', armv7: 'arm' };

/** os / cpu / libc of a platform package, read from its name (e.g. lib-linux-arm64-gnu). */
function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const os = parts.find((p) => p in OS);
  const cpu = parts.find((p) => p in CPU);
  if (!os || !cpu) return undefined;
  return { os: [OS[os]], cpu: [CPU[cpu]], ...(parts.includes('gnu') ? { libc: ['glibc'] } : {}) };
}

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [path, meta] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${dep}`;
    if (packages[key]) continue;
    const platform = platformOf(dep);
    if (!platform) continue;
    packages[key] = { version, ...platform, ...(meta.dev ? { dev: true } : {}), optional: true };
    added++;
    console.log(`lock: added ${dep}@${version} (${platform.os}/${platform.cpu}) for ${path.replace(/^node_modules\//, '')}`);
  }
}
const sorted = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
lock.packages = sorted;
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(`lock: ${added} platform entries added`);
