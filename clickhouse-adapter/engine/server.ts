// The server engine: a ClickHouse server over HTTP through @clickhouse/client, as production runs it.
// A thin transport: per-call database and settings travel as URL parameters (so they never stick), the
// output format as `default_format` (so a FORMAT clause in the SQL still wins, as on the embedded
// engine), and errors of both the modern and the legacy (18.16) form keep ClickHouse's code.

import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { createClient, ClickHouseError as ClientClickHouseError, ClickHouseLogLevel } from '@clickhouse/client';
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { probeCapabilities } from './capabilities.js';
import { ClickHouseError, EngineError, clickHouseError, parseClickHouseError } from './errors.js';
import { codeName } from './codes.js';
import { checkSettingName, collectBytes, countPayloadRows, parseInsert, quoteString, refuseSessionStatements } from './sql.js';
import type {
  Capabilities, ClickHouseEngine, EngineSession, ExecOptions, InsertOptions, InsertResult, QueryOptions, Settings,
} from './types.js';

export interface ServerOptions {
  /** e.g. http://127.0.0.1:8123 */
  url: string;
  username?: string;
  password?: string;
  /** Per request; default 300000 (the client's default). */
  requestTimeoutMs?: number;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);

/** Maps what @clickhouse/client throws to ClickHouseError (keeping the code) or EngineError. */
export function mapClientError(e: unknown, url: string): Error {
  if (e instanceof ClickHouseError || e instanceof EngineError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  if (err instanceof ClientClickHouseError) {
    // The client understood a modern error: it gives the code, the name and the bare message.
    const code = Number(err.code);
    if (Number.isFinite(code)) {
      return new ClickHouseError(code, err.type ?? codeName(code), err.message.trim().replace(/\.$/, ''), err.message, { cause: err });
    }
  }
  // The legacy 18.16 body reaches us as a plain Error whose message is the whole body.
  const parsed = parseClickHouseError(err.message, err);
  if (parsed) return parsed;
  const sysCode = (err as { code?: unknown }).code;
  if ((typeof sysCode === 'string' && NETWORK_CODES.has(sysCode)) || /timeout/i.test(err.message) || /socket hang up/i.test(err.message)) {
    return new EngineError('ENGINE_UNREACHABLE', `ClickHouse at ${url} did not answer: ${err.message}`, { cause: err });
  }
  return new EngineError('ENGINE_PROTOCOL', `ClickHouse at ${url}: ${err.message}`, { cause: err });
}

/** result_rows of an X-ClickHouse-Summary header; 0 without one (18.16 sends none). */
function summaryRows(header: string | string[] | undefined): number {
  try {
    const n = Number((JSON.parse(String(header ?? '{}')) as { result_rows?: string }).result_rows ?? 0);
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}

function urlSettings(opts: { database?: string | undefined; settings?: Settings | undefined; params?: Record<string, string> | undefined } | undefined, extra: ClickHouseSettings = {}): ClickHouseSettings {
  const out: ClickHouseSettings = { ...extra };
  for (const [k, v] of Object.entries(opts?.settings ?? {})) {
    checkSettingName(k);
    out[k] = v;
  }
  // Query parameters travel as the client sent them (ClickHouse's HTTP form, parsed by the server in
  // the escaped format of each placeholder's type): the client's own query_params would escape them again.
  for (const [k, v] of Object.entries(opts?.params ?? {})) {
    checkSettingName(k);
    (out as Record<string, unknown>)[`param_${k}`] = v;
  }
  // `database` is an HTTP parameter, not a setting, but the client sends settings as URL parameters.
  if (opts?.database !== undefined) out['database'] = opts.database;
  return out;
}

const STREAM_TAIL = 16 * 1024;
// "Code: N. DB::Exception: ..." or "Code: N, e.displayText() = DB::Exception: ..." starting a line near the end.
const TRAILER_RE = /(?:^|\n)(Code: \d+(?:\.|, e\.displayText\(\) =) DB::Exception: [\s\S]*)$/;

/** A ClickHouse exception appended to the end of a streamed body, if there is one. */
export function findErrorTrailer(tail: Buffer): ClickHouseError | undefined {
  const m = TRAILER_RE.exec(tail.toString('latin1'));
  if (!m) return undefined;
  return parseClickHouseError(Buffer.from(m[1]!, 'latin1').toString('utf8'));
}

async function drain(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

class ServerEngine implements ClickHouseEngine {
  readonly kind = 'server' as const;
  /** True when the server user's profile is read-only (readonly != 0): found at open. */
  readonly = false;
  private caps: Capabilities | undefined;
  private closed = false;

  constructor(private readonly client: ClickHouseClient, private readonly url: string) {}

  get capabilities(): Capabilities {
    if (!this.caps) throw new EngineError('ENGINE_PROTOCOL', 'capabilities not probed yet');
    return this.caps;
  }

  setCapabilities(c: Capabilities): void {
    this.caps = c;
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new EngineError('ENGINE_CLOSED', 'the server engine is closed');
    try {
      return await fn();
    } catch (e) {
      throw mapClientError(e, this.url);
    }
  }

  exec(sql: string, opts?: ExecOptions): Promise<void> {
    return this.run(async () => {
      refuseSessionStatements(sql);
      await this.client.command({
        query: sql,
        clickhouse_settings: urlSettings(opts),
        ...(opts?.queryId ? { query_id: opts.queryId } : {}),
      });
    });
  }

  query(sql: string, opts?: QueryOptions): Promise<Buffer> {
    return this.run(async () => {
      refuseSessionStatements(sql);
      const stop = this.cancellation(opts);
      try {
        const r = await this.client.exec({
          query: sql,
          // wait_end_of_query: the server buffers the result, so an error found half-way comes back as an
          // HTTP error rather than as text appended to a 200 body (18.16 does the latter otherwise).
          // A cancelled call is also KILLed by its query_id (cancellation()): the abort alone closes our
          // request, which not every server version takes as a reason to stop the query.
          clickhouse_settings: urlSettings(opts, { ['default_format']: opts?.format ?? 'JSONEachRow', wait_end_of_query: 1 } as ClickHouseSettings),
          ...(opts?.queryId ? { query_id: opts.queryId } : {}),
          ...(stop ? { abort_signal: stop.signal } : {}),
        });
        const body = await drain(r.stream);
        if (opts?.onStats) opts.onStats({ resultRows: summaryRows(r.response_headers['x-clickhouse-summary']) });
        return body;
      } catch (e) {
        if (stop?.timedOut) throw clickHouseError('TIMEOUT_EXCEEDED', `Timeout exceeded: maximum: ${opts?.timeoutMs} ms`);
        throw e;
      } finally {
        stop?.done();
      }
    });
  }

  /** Aborts the request on the caller's signal or the deadline, and KILLs the query by its id too. */
  private cancellation(opts: QueryOptions | undefined): { signal: AbortSignal; timedOut: boolean; done: () => void } | undefined {
    if (!opts?.signal && !opts?.timeoutMs) return undefined;
    const ac = new AbortController();
    const state = { signal: ac.signal, timedOut: false, done: () => undefined as void };
    const fire = (): void => {
      if (ac.signal.aborted) return;
      ac.abort();
      if (opts.queryId) void this.client.command({ query: `KILL QUERY WHERE query_id = ${quoteString(opts.queryId)} ASYNC` }).catch(() => undefined);
    };
    const timer = opts.timeoutMs ? setTimeout(() => { state.timedOut = true; fire(); }, opts.timeoutMs) : undefined;
    opts.signal?.addEventListener('abort', fire, { once: true });
    if (opts.signal?.aborted) fire();
    state.done = () => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', fire);
    };
    return state;
  }

  processesSource(ids: ReadonlyMap<string, string>): string {
    const from = [...ids.keys()].map(quoteString).join(', ');
    const to = [...ids.values()].map(quoteString).join(', ');
    return `(SELECT * EXCEPT (rh_id) REPLACE (transform(rh_id, [${from}]::Array(String), [${to}]::Array(String), '') AS query_id) `
      + `FROM (SELECT *, query_id AS rh_id FROM system.processes) WHERE rh_id IN (${from || "''"}))`;
  }

  queryStream(sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array> {
    return this.streamIn(undefined, sql, opts);
  }

  /**
   * The server streams the body as it computes it; so does this. In a session (`session`), the call
   * carries session_id + session_timeout and the server keeps the session's state.
   */
  streamIn(session: { id: string; timeoutSeconds: number } | undefined, sql: string, opts?: QueryOptions): AsyncIterable<Uint8Array> {
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const stop = self.cancellation(opts);
        const r = await self.run(() => self.client.exec({
          query: sql,
          clickhouse_settings: urlSettings(opts, {
            ['default_format']: opts?.format ?? 'JSONEachRow',
            ...(session ? { session_timeout: session.timeoutSeconds } : {}),
          } as ClickHouseSettings),
          ...(opts?.queryId ? { query_id: opts.queryId } : {}),
          ...(session ? { session_id: session.id } : {}),
          ...(stop ? { abort_signal: stop.signal } : {}),
        })).catch((e: unknown) => {
          stop?.done();
          throw stop?.timedOut ? clickHouseError('TIMEOUT_EXCEEDED', `Timeout exceeded: maximum: ${opts?.timeoutMs} ms`) : e;
        });
        const it = (r.stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        // An error found after the server has started sending comes as text appended to a 200 body
        // (18.16 and many later releases). Hold back the last TAIL bytes until the end so such a trailer
        // is turned into an error instead of being handed out as data.
        let held: Buffer = Buffer.alloc(0);
        try {
          for (;;) {
            const next = await self.run(() => it.next()).catch((e: unknown) => {
              throw stop?.timedOut ? clickHouseError('TIMEOUT_EXCEEDED', `Timeout exceeded: maximum: ${opts?.timeoutMs} ms`) : e;
            });
            if (next.done) break;
            const all = held.length ? Buffer.concat([held, next.value]) : next.value;
            if (all.length > STREAM_TAIL) {
              held = Buffer.from(all.subarray(all.length - STREAM_TAIL));
              yield all.subarray(0, all.length - STREAM_TAIL);
            } else {
              held = all;
            }
          }
          const trailer = findErrorTrailer(held);
          if (trailer) throw trailer;
          if (held.length) yield held;
          // The summary the server sent with its headers (what it knew then, as its own client sees it).
          if (opts?.onStats) opts.onStats({ resultRows: summaryRows(r.response_headers['x-clickhouse-summary']) });
        } finally {
          stop?.done();
          // Breaking out early must release the socket, not leave a half-read response in the pool.
          if (!r.stream.readableEnded) r.stream.destroy();
        }
      },
    };
  }

  openSession(timeoutSeconds: number): EngineSession {
    // The server keeps the session (its temporary tables, SET) under this id; it expires there after
    // timeoutSeconds without a call, as the gateway's own session does.
    const session = { id: `rafthouse-${randomUUID()}`, timeoutSeconds };
    const self = this;
    return {
      query: async (sql, opts) => drain(self.streamIn(session, sql, opts)),
      queryStream: (sql, opts) => self.streamIn(session, sql, opts),
      close: async () => undefined,
    };
  }

  insert(sql: string, data: Uint8Array | AsyncIterable<Uint8Array>, opts?: InsertOptions): Promise<InsertResult> {
    return this.run(async () => {
      const parsed = parseInsert(sql);
      // One body, one INSERT: we hold the whole payload so the server forms the same blocks on replay.
      const buf = await collectBytes(data);
      const r = await this.client.exec({
        query: sql,
        values: Readable.from([buf]),
        clickhouse_settings: urlSettings({ settings: opts?.settings }),
        ...(opts?.queryId ? { query_id: opts.queryId } : {}),
      });
      await drain(r.stream);
      const written = r.summary?.written_rows;
      return { writtenRows: written !== undefined ? Number(written) : countPayloadRows(parsed.format, buf) };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }
}

/** Connects, checks /ping, detects the version and probes capabilities. */
export async function openServer(opts: ServerOptions): Promise<ClickHouseEngine> {
  const client = createClient({
    url: opts.url,
    username: opts.username ?? 'default',
    password: opts.password ?? '',
    request_timeout: opts.requestTimeoutMs ?? 300_000,
    // We throw typed errors ourselves; the client's own error log would print every one twice.
    log: { level: ClickHouseLogLevel.OFF },
  });
  const engine = new ServerEngine(client, opts.url);
  try {
    const ping = await client.ping();
    if (!ping.success) {
      throw new EngineError('ENGINE_UNREACHABLE', `ClickHouse at ${opts.url} did not answer /ping: ${ping.error.message}`, { cause: ping.error });
    }
    // A user whose profile is read-only cannot create the probe database: probe it without writing.
    const ro = await engine.query("SELECT value FROM system.settings WHERE name = 'readonly'", { format: 'TabSeparated' });
    engine.readonly = ro.toString('utf8').trim() !== '0';
    engine.setCapabilities(await probeCapabilities(engine));
  } catch (e) {
    await engine.close();
    throw e;
  }
  return engine;
}
