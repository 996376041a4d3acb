// An hraftd-style HTTP front for the KV service. It holds no state: every call goes through
// raftd's client API (RaftdClient), so any front on any node sees the replicated map.
//   POST   /key            {"k":"v", ...}            set (several keys: one batch)
//   GET    /key/k?level=linearizable|lease|stale     {"k": "v" | null}
//   DELETE /key/k                                    {"deleted": bool}
//   POST   /cas/k          {"expect": v|null, "value": v|null}   200 {"swapped":true} | 409 {"swapped":false,"value":current}
// Run:  node dist/adapters/kv/front.js --listen 127.0.0.1:8000 --raftd http://127.0.0.1:9001[,http://...] [--group 1]
//         [--api-token-file PATH]   raftd's client API token: that file, else RAFTD_API_TOKEN, else the file in RAFTD_API_TOKEN_FILE
//                                   (never on the command line, where every local user can read it)

import * as http from 'node:http';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { RaftdClient, RaftdError, type Consistency } from '../sdk/client.js';
import { API_TOKEN_ENV } from '../../protocol/secrets.js';
import { exitUsage, optionSecret, optionValue, commandLineOrExit, type CommandSpec } from '../../protocol/cli.js';
import type { KvCommand, KvCommandResult, KvQuery } from './commands.js';

export interface KvFrontOptions {
  host?: string;
  port: number;
  raftd: string | string[];
  group?: number;
  /** raftd's client API token; default: the SDK client's (RAFTD_API_TOKEN / RAFTD_API_TOKEN_FILE). */
  token?: string;
  timeoutMs?: number;
}

class FrontError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function body(req: http.IncomingMessage, limit = 1 << 20): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new FrontError(413, 'PAYLOAD_TOO_LARGE', `body over ${limit} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new FrontError(400, 'BAD_REQUEST', 'body is not JSON');
  }
}

function send(res: http.ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startKvFront(opts: KvFrontOptions): Promise<{ url: string; close(): Promise<void> }> {
  const group = opts.group ?? 1;
  const client = new RaftdClient({ url: opts.raftd, ...(opts.token !== undefined ? { token: opts.token } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  const propose = async (cmd: KvCommand): Promise<KvCommandResult> => (await client.proposeJson(group, cmd)).result as KvCommandResult;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://front');
    const keyMatch = /^\/(key|cas)\/(.+)$/.exec(url.pathname);
    const key = keyMatch ? decodeURIComponent(keyMatch[2]!) : undefined;
    if (req.method === 'POST' && url.pathname === '/key') {
      const b = await body(req);
      if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new FrontError(400, 'BAD_REQUEST', 'body must be {"key": "value", ...}');
      const pairs = Object.entries(b as Record<string, unknown>);
      if (pairs.length === 0 || !pairs.every(([, v]) => typeof v === 'string')) throw new FrontError(400, 'BAD_REQUEST', 'values must be strings');
      if (pairs.length === 1) {
        await propose({ op: 'set', key: pairs[0]![0], value: pairs[0]![1] as string });
      } else {
        const results = await client.proposeBatch(pairs.map(([k, v]) => ({ group, data: JSON.stringify({ op: 'set', key: k, value: v }) })));
        const failed = results.find((r) => 'error' in r);
        if (failed && 'error' in failed) throw new RaftdError(failed.error.code, failed.error.message, 503, failed.error.leader);
      }
      return send(res, 200, {});
    }
    if (req.method === 'GET' && keyMatch?.[1] === 'key') {
      const level = (url.searchParams.get('level') ?? 'linearizable') as Consistency;
      if (!['linearizable', 'lease', 'stale'].includes(level)) throw new FrontError(400, 'BAD_REQUEST', 'level must be linearizable, lease or stale');
      const r = await client.read<{ value: string | null }>(group, { op: 'get', key: key! } satisfies KvQuery, level);
      return send(res, 200, { [key!]: r.value });
    }
    if (req.method === 'DELETE' && keyMatch?.[1] === 'key') {
      return send(res, 200, await propose({ op: 'delete', key: key! }));
    }
    if (req.method === 'POST' && keyMatch?.[1] === 'cas') {
      const b = (await body(req)) as { expect?: unknown; value?: unknown } | null;
      const ok = (v: unknown): v is string | null => v === null || typeof v === 'string';
      if (!b || !ok(b.expect) || !ok(b.value)) throw new FrontError(400, 'BAD_REQUEST', 'body must be {"expect": string|null, "value": string|null}');
      const r = (await propose({ op: 'cas', key: key!, expect: b.expect, value: b.value })) as { swapped: boolean; value: string | null };
      return send(res, r.swapped ? 200 : 409, r);
    }
    throw new FrontError(404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof FrontError) return send(res, e.status, { error: { code: e.code, message: e.message } });
      if (e instanceof RaftdError) {
        const status = e.status >= 400 ? e.status : 503;
        return send(res, status, { error: { code: e.code, message: e.message, ...(e.leader ? { leader: e.leader } : {}) } });
      }
      send(res, 500, { error: { code: 'INTERNAL', message: (e as Error).message } });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(opts.port, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address() as { address: string; port: number };
  return {
    url: `http://${addr.address}:${addr.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      client.close();
    },
  };
}

/** The `kv front` command's options (protocol/cli.ts: parsing, --help, one-line usage errors). */
export const KV_FRONT_COMMAND: CommandSpec = {
  name: 'kv-front',
  usage: ['kv-front [options]     (node dist/adapters/kv/front.js, npm run kv:front --)'],
  about: ['kv-front: an hraftd-style HTTP front for the KV service; it holds no state, every call goes through raftd.'],
  options: [
    { name: 'listen', value: 'HOST:PORT', env: 'KV_FRONT_LISTEN', default: '127.0.0.1:8000', help: 'where to serve the front' },
    { name: 'raftd', value: 'URL[,URL]', env: 'KV_FRONT_RAFTD', default: 'http://127.0.0.1:9001', help: 'raftd client API addresses, tried in turn' },
    { name: 'group', value: 'int', env: 'KV_FRONT_GROUP', default: '1', help: 'the raftd group holding the map' },
    { name: 'api-token-file', value: 'file', env: API_TOKEN_ENV, secret: true, help: `raftd's client API token (or ${API_TOKEN_ENV} / ${API_TOKEN_ENV}_FILE)` },
  ],
};

function fail(msg: string): never {
  return exitUsage(KV_FRONT_COMMAND.name, msg);
}

// Run as a command when executed directly.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const line = commandLineOrExit(KV_FRONT_COMMAND, process.argv.slice(2));
  const get = (name: string): string => optionValue(KV_FRONT_COMMAND, line, process.env, name);
  const listen = get('listen');
  const raftd = get('raftd');
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) fail(`--listen "${listen}" is not HOST:PORT`);
  const group = Number(get('group'));
  if (!Number.isSafeInteger(group) || group < 1) fail(`--group must be an integer >= 1, not "${get('group')}"`);
  let token = '';
  try {
    token = optionSecret(KV_FRONT_COMMAND, line, process.env, 'api-token-file');
  } catch (e) {
    fail((e as Error).message);
  }
  const front = await startKvFront({ host: m[1]!, port: Number(m[2]), raftd: raftd.split(','), group, token });
  console.log(`kv front on ${front.url} -> raftd ${raftd}`);
  process.once('SIGTERM', () => void front.close().then(() => process.exit(0)));
  process.once('SIGINT', () => void front.close().then(() => process.exit(0)));
}
