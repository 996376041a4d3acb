// How every program of this repository takes a secret (raftd, rafthouse, the KV adapter, the SDK,
// npm start): never on the command line, where `ps` and /proc/<pid>/cmdline show it to every local
// user. One rule for every secret X:
//   --X-file PATH      a flag that names a file holding the secret (its value is never an argument);
//   ENV                an environment variable holding the value;
//   ENV_FILE           an environment variable naming the file.
// The first one set wins in that order. A file's content is the secret with surrounding whitespace
// removed; an empty file is an error, not "no secret".

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The secrets of a raftd cluster, by the file names `--secrets-dir` and `raftd --generate-secrets` use. */
export const SECRET_FILES = {
  /** Bearer token of raftd's client API (propose, read, status, metrics). */
  apiToken: 'api-token',
  /** Bearer token of raftd's admin routes (membership, groups, nodes, transfers, debug); also valid for the client API. */
  adminToken: 'admin-token',
  /** Shared by raftd and its application: raftd proves it on every state-machine API call. */
  appSecret: 'app-secret',
  /** Shared by the raftd peers of one cluster: proven on connect by a challenge, never sent. */
  clusterSecret: 'cluster-secret',
} as const;

export type SecretName = keyof typeof SECRET_FILES;

/** The environment variables of the SDK's sides (the application and raftd's clients). */
export const APP_SECRET_ENV = 'RAFTD_APP_SECRET';
export const API_TOKEN_ENV = 'RAFTD_API_TOKEN';
export const ADMIN_TOKEN_ENV = 'RAFTD_ADMIN_TOKEN';

export class SecretError extends Error {
  readonly code = 'BAD_SECRET';
}

/** Secrets shorter than this are refused: a guessable token is no authentication. */
export const MIN_SECRET_LENGTH = 16;

export function readSecretFile(path: string, what: string, minLength = MIN_SECRET_LENGTH): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SecretError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return checkSecret(text.trim(), `${what} (${path})`, minLength);
}

/** `minLength`: MIN_SECRET_LENGTH for what this project generates; 1 for an operator's own (a ClickHouse password). */
export function checkSecret(value: string, what: string, minLength = MIN_SECRET_LENGTH): string {
  if (value === '') throw new SecretError(`${what} is empty`);
  if (value.length < minLength) throw new SecretError(`${what} is shorter than ${minLength} characters`);
  if (/[\r\n]/.test(value)) throw new SecretError(`${what} spans several lines`);
  return value;
}

/**
 * The secret from a `--X-file` flag's path, else ENV, else ENV_FILE; '' when none is set.
 * `env` is the variable's name (e.g. RAFTD_APP_SECRET); `ENV_FILE` is that name + '_FILE'.
 */
export function resolveSecret(
  flagFile: string | undefined,
  envName: string,
  env: Readonly<Record<string, string | undefined>>,
  what: string,
  minLength = MIN_SECRET_LENGTH,
): string {
  if (flagFile !== undefined && flagFile !== '') return readSecretFile(flagFile, what, minLength);
  const value = env[envName];
  if (value !== undefined && value !== '') return checkSecret(value.trim(), `${what} (${envName})`, minLength);
  const file = env[`${envName}_FILE`];
  if (file !== undefined && file !== '') return readSecretFile(file, `${what} (${envName}_FILE)`, minLength);
  return '';
}

/** 32 random bytes, base64url: what every generated secret is. */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Creates DIR (0700) and, for each secret missing there, a file with a new one (0600). Existing files
 * are kept, so a second run changes nothing. Returns the paths by name.
 */
export function ensureSecretsDir(dir: string): Record<SecretName, string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const out = {} as Record<SecretName, string>;
  for (const [name, file] of Object.entries(SECRET_FILES) as Array<[SecretName, string]>) {
    const path = join(dir, file);
    if (!existsSync(path)) writeFileSync(path, generateSecret() + '\n', { mode: 0o600, flag: 'wx' });
    else if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    out[name] = path;
  }
  return out;
}
