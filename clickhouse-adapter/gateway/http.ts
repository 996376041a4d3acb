// ClickHouse's HTTP interface (the modern form stock clients parse) in front of the Gateway.
//   GET/HEAD /ping -> "Ok.\n"
//   GET|POST /?query=...   query in the URL (INSERT data then in the body), or the query in the body
//   database, default_format, query_id, param_<name>, settings as URL parameters
//   user/password: X-ClickHouse-User/Key headers, user/password parameters, or Basic auth
//   multipart/form-data bodies: the query, param_<name> and settings as form fields; a file part N is
//   an external data table (N_structure or N_types, N_format) the query reads (gateway/external.ts)
//   gzip/deflate/br request bodies (Content-Encoding); gzip/deflate/br responses, errors included, with
//   enable_http_compression=1 + Accept-Encoding (Node's zlib has no zstd, lz4, xz or bz2)
//   responses carry X-ClickHouse-Query-Id, -Format, -Summary, -Timezone (and -Progress with
//   send_progress_in_http_headers=1), a Content-Type per format as ClickHouse's; errors carry
//   X-ClickHouse-Exception-Code and "Code: N. DB::Exception: ... (NAME) (version V)" with ClickHouse's status.
// The endpoint (consistent or local) is chosen by the Host header when it names one, else by the port.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, randomUUID, randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { readBody } from './body.js';
import { compress, compressionStream, responseEncoding } from './compression.js';
import type { ResponseEncoding } from './compression.js';
import { contentType } from './formats.js';
import type { Settings } from '../engine/types.js';
import { utf8Text } from './gateway.js';
import type { Endpoint, Gateway } from './gateway.js';
import { CODES } from '../engine/codes.js';
import { GatewayError, exceptionText, httpStatusFor, toFault } from './errors.js';
import { significant, tokenize } from '../sql/scanner.js';
import { insertDataOffset } from './lexer.js';
import { externalFieldNames } from './external.js';
import type { ExternalTable } from './external.js';

export interface HttpOptions {
  gateway: Gateway;
  /** user -> password ("" for none). */
  users: ReadonlyMap<string, string>;
  /** ClickHouse version reported in errors (the engine's). */
  version: string;
  /** Host names (without port) that select an endpoint whatever the port. */
  consistentHosts?: string[];
  localHosts?: string[];
  timezone?: string;
  /** Request body cap on the wire and after gzip/deflate decoding (default 32 MiB). */
  maxBodyBytes?: number;
  log?: (msg: string) => void;
}

/** URL parameters that are part of the HTTP protocol, not ClickHouse settings. */
const PROTOCOL_PARAMS = new Set([
  'query', 'database', 'default_format', 'query_id', 'user', 'password', 'quota_key', 'compress', 'decompress',
  'enable_http_compression', 'http_zlib_compression_level', 'session_id', 'session_timeout', 'session_check',
  'wait_end_of_query', 'buffer_size', 'http_wait_end_of_query', 'http_response_buffer_size', 'send_progress_in_http_headers',
  'http_headers_progress_interval_ms', 'add_http_cors_header', 'role', 'default_role', 'stacktrace', 'cancel_http_readonly_queries_on_client_close',
]);

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * A multipart/form-data body: its fields join the URL parameters (the URL's win, as ClickHouse reads
 * them first); a file part is an external data table, returned with its description (N_structure or
 * N_types, N_format, from the fields or the URL), which is taken out of the parameters.
 */
async function formFields(body: Buffer, type: string, params: URLSearchParams): Promise<ExternalTable[]> {
  let form: FormData;
  try {
    form = await new Response(body, { headers: { 'content-type': type } }).formData();
  } catch (e) {
    throw new GatewayError(CODES.BAD_ARGUMENTS, `Cannot parse the multipart/form-data body: ${(e as Error).message}`);
  }
  const files: Array<[string, Blob]> = [];
  for (const [name, value] of form) {
    if (typeof value !== 'string') files.push([name, value]);
    else if (!params.has(name)) params.set(name, value);
  }
  const external: ExternalTable[] = [];
  for (const [name, file] of files) {
    const [structure, types, format] = externalFieldNames(name).map((k) => {
      const v = params.get(k);
      params.delete(k);
      return v ?? undefined;
    });
    external.push({
      name, data: Buffer.from(await file.arrayBuffer()),
      ...(structure !== undefined ? { structure } : {}), ...(types !== undefined ? { types } : {}), ...(format !== undefined ? { format } : {}),
    });
  }
  return external;
}

/**
 * Where the data of `INSERT ... FORMAT X <data>` sent whole in the body begins (ClickHouse reads the
 * statement up to FORMAT X and the rest as data, binary included), or undefined for any other body.
 * The head is read byte for byte (latin1), so the offset is a byte offset whatever the data holds.
 * VALUES data stays part of the text (it is SQL).
 */
export function inlineInsertData(body: Buffer): number | undefined {
  const head = body.subarray(0, INLINE_HEAD_BYTES).toString('latin1');
  const first = significant(tokenize(head.slice(0, 200)))[0];
  if (!first || first.text.toUpperCase() !== 'INSERT') return undefined;
  const at = insertDataOffset(head);
  if (!at || at.values || at.offset >= body.length) return undefined;
  return at.offset;
}
/** How far into a body the statement of an inline INSERT is looked for. */
const INLINE_HEAD_BYTES = 64 * 1024;

/**
 * Default request body cap, on the wire and decoded: half raftd's largest entry (64 MiB), and low
 * enough that a refused gzip bomb has cost the node less than 64 MiB.
 */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/** Resolves when `w` may take more, or the client went away. */
function writable(w: Writable, gone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (gone.aborted || w.destroyed) {
      resolve();
      return;
    }
    const done = (): void => {
      w.off('drain', done);
      gone.removeEventListener('abort', done);
      resolve();
    };
    w.once('drain', done);
    gone.addEventListener('abort', done, { once: true });
  });
}

export class GatewayHttp {
  private readonly servers: http.Server[] = [];

  constructor(private readonly o: HttpOptions) {}

  /** Starts one listener for an endpoint; resolves with its address (host:port). */
  async listen(endpoint: Endpoint, host: string, port: number): Promise<string> {
    const server = http.createServer((req, res) => void this.handle(endpoint, req, res));
    server.keepAliveTimeout = 10_000;
    server.on('connection', (s) => s.setNoDelay(true));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.servers.push(server);
    const a = server.address() as AddressInfo;
    return `${a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    })));
  }

  private endpointFor(byPort: Endpoint, hostHeader: string | undefined): Endpoint {
    if (!hostHeader) return byPort;
    const name = hostHeader.replace(/:\d+$/, '').toLowerCase();
    if (this.o.localHosts?.some((h) => h.toLowerCase() === name)) return 'local';
    if (this.o.consistentHosts?.some((h) => h.toLowerCase() === name)) return 'consistent';
    return byPort;
  }

  private authenticate(req: http.IncomingMessage, url: URL): string {
    let user = req.headers['x-clickhouse-user'] as string | undefined;
    let password = req.headers['x-clickhouse-key'] as string | undefined;
    if (user === undefined && url.searchParams.has('user')) {
      user = url.searchParams.get('user')!;
      password = url.searchParams.get('password') ?? '';
    }
    const auth = req.headers.authorization;
    if (user === undefined && auth && /^Basic /i.test(auth)) {
      const dec = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      user = i < 0 ? dec : dec.slice(0, i);
      password = i < 0 ? '' : dec.slice(i + 1);
    }
    user = user || 'default';
    password = password ?? '';
    const expected = this.o.users.get(user);
    if (expected === undefined || !safeEqual(expected, password)) {
      throw new GatewayError(CODES.AUTHENTICATION_FAILED, `${user}: Authentication failed: password is incorrect, or there is no user with such name`);
    }
    return user;
  }

  /**
   * Sends a result as the gateway produces it (chunked), waiting for the client to take each chunk
   * (backpressure: the gateway holds about one chunk per stream). An error after the headers went out
   * is sent the way ClickHouse 25.11+ does (WriteBufferFromHTTP1ServerResponse::cancelWithException):
   * the response carries X-ClickHouse-Exception-Tag (16 random characters), and the body ends with
   *   \r\n__exception__\r\n<tag>\r\n<Code: N. DB::Exception: ...>\n<length of that text> <tag>\r\n__exception__\r\n
   * then the connection closes without the final empty chunk, so no client can take the body for
   * complete (compressed: the compressed stream and the response end normally, see below). A client that does not know the tag still finds the "Code: N. DB::Exception" text at
   * the end of the body, as older servers sent it.
   */
  private async stream(
    res: http.ServerResponse, body: AsyncIterable<Uint8Array>, headers: http.OutgoingHttpHeaders,
    encoding: ResponseEncoding | undefined, level: string | null, gone: AbortSignal,
  ): Promise<void> {
    const tag = randomBytes(8).toString('hex');
    const it = body[Symbol.asyncIterator]();
    res.writeHead(200, { ...headers, 'x-clickhouse-exception-tag': tag, ...(encoding ? { 'content-encoding': encoding, vary: 'Accept-Encoding' } : {}) });
    // The negotiated compression (compression.ts), applied as the chunks go out.
    const gz = encoding ? compressionStream(encoding, level) : undefined;
    if (gz) gz.pipe(res, { end: false });
    const out: Writable = gz ?? res;
    const ended = (w: Writable) => new Promise<void>((resolve) => {
      if (gz) gz.once('end', () => resolve());
      else w.once('finish', () => resolve());
    });
    try {
      for (;;) {
        if (gone.aborted) return;
        const next = await it.next();
        if (next.done) break;
        if (!out.write(next.value)) await writable(gz ? gz : res, gone);
      }
      if (gz) {
        const done = ended(gz);
        gz.end();
        await done;
      }
      res.end();
    } catch (e) {
      const f = toFault(e);
      const text = exceptionText(f, this.o.version).slice(0, 16 * 1024);
      const trailer = `\r\n__exception__\r\n${tag}\r\n${text}${Buffer.byteLength(text)} ${tag}\r\n__exception__\r\n`;
      if (gone.aborted || res.destroyed) return;
      if (gz) {
        // Compressed: the compressed stream is finished and the response ended properly. A connection cut
        // here makes clients (@clickhouse/client, measured) drop the decompressor's last output, the
        // trailer with it, and report a bare ECONNRESET instead of the error.
        const done = ended(gz);
        gz.end(trailer);
        await done;
        res.end();
        return;
      }
      await new Promise<void>((resolve) => res.write(trailer, () => resolve()));
      // No final chunk: the body must not look complete.
      res.socket?.end();
    } finally {
      await Promise.resolve(it.return?.(undefined)).catch(() => undefined);
    }
  }

  private async handle(byPort: Endpoint, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    let queryId = url.searchParams.get('query_id') || randomUUID();
    const encoding = responseEncoding(url.searchParams, req.headers['accept-encoding'] as string | undefined);
    const level = url.searchParams.get('http_zlib_compression_level');
    // ClickHouse's add_http_cors_header=1: browsers may read the answer (errors too).
    if (url.searchParams.get('add_http_cors_header') === '1') res.setHeader('access-control-allow-origin', '*');
    // The client going away before its answer is written cancels what runs for it.
    const gone = new AbortController();
    res.once('close', () => { if (!res.writableFinished) gone.abort(); });
    try {
      if (url.pathname === '/ping' || url.pathname === '/') {
        if (url.pathname === '/ping' || (req.method !== 'POST' && !url.searchParams.has('query'))) {
          if (req.method !== 'GET' && req.method !== 'HEAD') throw new GatewayError(CODES.UNSUPPORTED_METHOD, `method ${req.method} is not allowed on ${url.pathname}`);
          res.writeHead(200, { 'content-type': 'text/html; charset=UTF-8', 'content-length': 4 });
          res.end(req.method === 'HEAD' ? undefined : 'Ok.\n');
          return;
        }
      } else {
        res.writeHead(404, { 'content-type': 'text/plain; charset=UTF-8' });
        res.end(`There is no handle ${url.pathname}\n`);
        return;
      }
      if (req.method !== 'GET' && req.method !== 'POST') throw new GatewayError(CODES.UNSUPPORTED_METHOD, `method ${req.method} is not allowed`);
      const user = this.authenticate(req, url);
      const endpoint = this.endpointFor(byPort, req.headers.host);
      const cap = this.o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
      let body = await readBody(req, { maxBodyBytes: cap, maxDecompressedBytes: cap });
      const type = String(req.headers['content-type'] ?? '');
      let external: ExternalTable[] = [];
      if (/^multipart\/form-data\b/i.test(type)) {
        // Never SQL: the query and everything else come as fields.
        external = await formFields(body, type, url.searchParams);
        body = Buffer.alloc(0);
        queryId = url.searchParams.get('query_id') || queryId;
      }

      for (const k of ['compress', 'decompress']) {
        if (url.searchParams.get(k) === '1') {
          throw new GatewayError(CODES.NOT_IMPLEMENTED, `${k}=1 (ClickHouse's native block compression) is not supported by RaftHouse; use enable_http_compression=1 with Accept-Encoding, or Content-Encoding for the request body`);
        }
      }
      const settings: Settings = {};
      const params: Record<string, string> = {};
      for (const [k, v] of url.searchParams) {
        if (k.startsWith('param_')) params[k.slice(6)] = v;
        else if (!PROTOCOL_PARAMS.has(k)) settings[k] = v;
      }
      const urlQuery = url.searchParams.get('query');
      let sql: string;
      let data: Buffer | undefined;
      if (urlQuery !== null) {
        const first = significant(tokenize(urlQuery.slice(0, 200)))[0];
        if (first && first.text.toUpperCase() === 'INSERT' && body.length > 0) {
          sql = urlQuery;
          data = body;
        } else {
          sql = body.length ? `${urlQuery}\n${utf8Text(body, 'The query')}` : urlQuery;
        }
      } else {
        const inline = inlineInsertData(body);
        sql = utf8Text(inline ? body.subarray(0, inline) : body, 'The query');
        if (inline) data = body.subarray(inline);
      }
      if (sql.trim() === '') throw new GatewayError(CODES.SYNTAX_ERROR, 'Empty query');
      const database = url.searchParams.get('database') ?? undefined;
      const format = url.searchParams.get('default_format') ?? undefined;
      const sessionId = url.searchParams.get('session_id');
      const session = sessionId ? {
        id: sessionId, check: url.searchParams.get('session_check') === '1',
        ...(url.searchParams.has('session_timeout') ? { timeout: url.searchParams.get('session_timeout')! } : {}),
      } : undefined;
      const result = await this.o.gateway.execute({
        endpoint, sql, ...(data ? { data } : {}), ...(database ? { database } : {}), ...(format ? { format } : {}),
        queryId, settings, params, readonlyMethod: req.method === 'GET', user, signal: gone.signal, ...(session ? { session } : {}),
        ...(external.length ? { external } : {}),
      });
      queryId = result.queryId;
      const summary = JSON.stringify(result.summary);
      // The answer is whole before it is sent (a stream: as much of it as was prefetched), so the one
      // progress header is the count known then.
      const progress = url.searchParams.get('send_progress_in_http_headers') === '1' ? { 'x-clickhouse-progress': summary } : {};
      const headers = {
        'content-type': contentType(result.format, settings),
        'x-clickhouse-query-id': queryId,
        'x-clickhouse-format': result.format,
        'x-clickhouse-timezone': this.o.timezone ?? 'UTC',
        ...progress,
        'x-clickhouse-summary': summary,
        'x-clickhouse-server-display-name': 'rafthouse',
      };
      if (result.stream) {
        await this.stream(res, result.stream, headers, encoding, level, gone.signal);
        return;
      }
      const out = await compress(result.body, encoding, level);
      res.writeHead(200, {
        ...headers,
        ...(encoding ? { 'content-encoding': encoding, vary: 'Accept-Encoding' } : {}),
        'content-length': out.length,
      });
      res.end(out);
    } catch (e) {
      const f = toFault(e);
      const plain = Buffer.from(exceptionText(f, this.o.version));
      if (f.code === CODES.UNKNOWN_EXCEPTION) this.o.log?.(`gateway: unexpected error: ${(e as Error)?.stack ?? String(e)}`);
      if (res.headersSent) {
        res.end(plain);
        return;
      }
      // Compressed like a result would have been: a client that asked for compression decodes errors too.
      const text = await compress(plain, encoding, level).catch(() => plain);
      const encoded = text !== plain;
      res.writeHead(httpStatusFor(f.code), {
        'content-type': 'text/plain; charset=UTF-8',
        'x-clickhouse-query-id': queryId,
        'x-clickhouse-exception-code': String(f.code),
        'x-clickhouse-server-display-name': 'rafthouse',
        ...(encoded ? { 'content-encoding': encoding!, vary: 'Accept-Encoding' } : {}),
        'content-length': text.length,
        // An unread (or refused) request body must not be read on: the connection closes after this.
        ...(req.complete ? {} : { connection: 'close' }),
      });
      res.end(text);
      if (!req.complete) res.once('finish', () => req.destroy());
    }
  }
}
