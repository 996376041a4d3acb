// rafthouse's internal endpoint (placed groups, issue 21): what another node's gateway asks of this
// replica during a consistent read of groups this node holds and it does not.
//
//   POST /internal/hold     {"group": g, "leaseMs": n}  -> {"hold": id, "applied": a_g, "leaseMs": n}
//   POST /internal/release  {"hold": id}                -> {"released": bool}
//   GET|HEAD /internal/select?group=g&hold=id&q=<base64url SELECT>
//        -> the SELECT's result in ClickHouse's Native format, run in group g's database under the hold
//
// Hold and release are signed like raftd's state-machine calls (protocol/app-auth.ts), a select leg by
// a signature over its path and query (auth.ts): without the cluster's internal secret every call is
// refused (401). The SELECT gets the public read endpoint's sandbox (rules/reads.ts: checkRead, with the
// group's database as the only one it may name besides the system catalogs), a read-only session, and
// bounds of its own: time, result bytes, memory; holds are bounded in number and lease (holds.ts).

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AppAuthError, AppRequestVerifier } from '../../protocol/app-auth.js';
import type { ClickHouseEngine } from '../engine/types.js';
import { ClickHouseError, CodedError } from '../engine/errors.js';
import { CODES, exceptionText } from '../engine/codes.js';
import { checkRead } from '../rules/index.js';
import { checkStatementSettings, readSettings, type ReadLimits } from '../gateway/limits.js';
import type { SqlParser } from '../gateway/parse.js';
import { dataDb } from '../statemachine/naming.js';
import { legSignatureValid, LEG_SIGNATURE_HEADER } from './auth.js';
import { HoldRefused, type HoldTable } from './holds.js';

export const INTERNAL_PATHS = { hold: '/internal/hold', release: '/internal/release', select: '/internal/select' } as const;

/** Bounds of one leg read (a coordinator's round holds apply for about 3 s: a leg is short). */
export const LEG_LIMITS: ReadLimits = { maxExecutionTime: 10, maxMemoryUsage: 2 * 1024 ** 3, maxResultRows: 0, maxResultBytes: 256 * 1024 ** 2 };

const MAX_CONTROL_BODY = 4096;
const MAX_QUERY_CHARS = 256 * 1024;

export interface InternalServerOptions {
  secret: string;
  holds: HoldTable;
  readEngine: ClickHouseEngine;
  parser: SqlParser;
  groups: number;
  limits?: ReadLimits;
  /** Leg reads running at once; more get 503. */
  maxConcurrentLegs?: number;
  log?: (m: string) => void;
}

class Refusal extends Error {
  constructor(readonly status: number, message: string, readonly code: number = CODES.BAD_ARGUMENTS) {
    super(message);
  }
}

export class InternalServer {
  private readonly server: Server;
  private readonly verifier: AppRequestVerifier;
  private legsRunning = 0;

  constructor(private readonly o: InternalServerOptions) {
    if (o.secret.length === 0) throw new Error('the internal endpoint needs a non-empty cluster secret (an empty one would let anyone hold apply and read legs)');
    this.verifier = new AppRequestVerifier({ secret: o.secret });
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  listen(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? `${a.address}:${a.port}` : `${host}:${port}`);
      });
    });
  }

  close(): Promise<void> {
    this.o.holds.closeAll();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    try {
      if (path === INTERNAL_PATHS.select && (req.method === 'GET' || req.method === 'HEAD')) {
        await this.select(req, res, url);
        return;
      }
      if (req.method !== 'POST' || (path !== INTERNAL_PATHS.hold && path !== INTERNAL_PATHS.release)) throw new Refusal(404, `no internal route ${req.method} ${path}`);
      const call = this.verifier.verifyHeaders('POST', url, req.headers);
      const body = await readBody(req, MAX_CONTROL_BODY);
      this.verifier.verifyBody(call, body);
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new Refusal(400, 'the body is not JSON');
      }
      if (path === INTERNAL_PATHS.hold) {
        const group = this.group(doc['group']);
        const leaseMs = Number(doc['leaseMs']);
        if (!Number.isSafeInteger(leaseMs) || leaseMs < 1) throw new Refusal(400, 'leaseMs must be a positive integer');
        const h = await this.o.holds.hold(group, leaseMs);
        json(res, 200, { hold: h.id, applied: h.applied, leaseMs: h.leaseMs });
      } else {
        const id = doc['hold'];
        if (typeof id !== 'string') throw new Refusal(400, 'hold must be a string');
        json(res, 200, { released: this.o.holds.release(id) });
      }
    } catch (e) {
      this.fail(res, e);
    }
  }

  private group(v: unknown): number {
    const g = Number(v);
    if (!Number.isSafeInteger(g) || g < 1 || g > this.o.groups) throw new Refusal(400, `group must be 1..${this.o.groups}`);
    return g;
  }

  private async select(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    if (!legSignatureValid(this.o.secret, url, one(req.headers[LEG_SIGNATURE_HEADER]))) {
      throw new Refusal(401, 'a select leg must carry a valid signature under the cluster\'s internal secret', CODES.AUTHENTICATION_FAILED);
    }
    const params = new URL(url, 'http://internal').searchParams;
    const group = this.group(params.get('group'));
    const hold = params.get('hold') ?? '';
    // 410: ClickHouse does not retry a client error; the coordinator's round fails and tries again.
    if (!this.o.holds.alive(hold, group)) throw new Refusal(410, `hold ${hold.slice(0, 8)} of group ${group} is not live (expired or released): the leg is refused`);
    const q = params.get('q') ?? '';
    if (q.length > MAX_QUERY_CHARS) throw new Refusal(400, 'the pushed-down query is too long');
    const sql = Buffer.from(q, 'base64url').toString('utf8');
    const db = dataDb(group);
    const stmt = await this.o.parser.parse(sql);
    if (stmt.kind !== 'select' || stmt.write) throw new Refusal(400, 'a leg is a SELECT');
    // The public read sandbox, with the group's database standing for the user database.
    checkRead(stmt, { database: db, userDb: db });
    const limits = this.o.limits ?? LEG_LIMITS;
    checkStatementSettings(sql, limits);
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end();
      return;
    }
    const max = this.o.maxConcurrentLegs ?? 16;
    if (this.legsRunning >= max) throw new Refusal(503, `more than ${max} leg reads at once`, CODES.TOO_MANY_SIMULTANEOUS_QUERIES);
    this.legsRunning++;
    try {
      // Stopped in the engine when the hold ends (released, expired) or the coordinator hangs up, and
      // never allowed past the lease: an abandoned leg must not keep one of the slots.
      const out = await this.o.holds.underHold(hold, group, ({ signal, remainingMs }) => {
        const stop = new AbortController();
        const hangUp = (): void => stop.abort();
        signal.addEventListener('abort', hangUp, { once: true });
        res.once('close', hangUp);
        const ms = Math.max(1, Math.min(limits.maxExecutionTime * 1000, remainingMs));
        const settings = { ...readSettings(undefined, limits), max_execution_time: Math.max(1, Math.ceil(ms / 1000)) };
        // A query id: the engine cancels (signal, timeoutMs) only a query it can name.
        return this.o.readEngine.query(sql, { database: db, format: 'Native', settings, timeoutMs: ms, signal: stop.signal, queryId: randomUUID() })
          .finally(() => signal.removeEventListener('abort', hangUp));
      });
      if (out === undefined) throw new Refusal(410, `hold of group ${group} ended while the leg ran: the leg is refused`);
      if (limits.maxResultBytes > 0 && out.length > limits.maxResultBytes) throw new Refusal(413, `a leg's result is limited to ${limits.maxResultBytes} bytes`, CODES.TOO_MANY_ROWS_OR_BYTES);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(out.length) });
      res.end(out);
    } finally {
      this.legsRunning--;
    }
  }

  private fail(res: ServerResponse, e: unknown): void {
    const { status, code, message } = this.faultOf(e);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8', 'x-clickhouse-exception-code': String(code) });
    res.end(exceptionText(code, message) + '\n');
  }

  /** The HTTP status and ClickHouse code of a failed call (410: the hold is gone; 5xx: worth a retry elsewhere). */
  private faultOf(e: unknown): { status: number; code: number; message: string } {
    const message = (e as Error).message;
    if (e instanceof Refusal) return { status: e.status, code: e.code, message };
    if (e instanceof AppAuthError) return { status: e.status, code: CODES.AUTHENTICATION_FAILED, message };
    if (e instanceof HoldRefused) return { status: e.reason === 'NOT_PLACED_HERE' ? 404 : 503, code: CODES.TOO_MANY_SIMULTANEOUS_QUERIES, message };
    if (e instanceof CodedError || e instanceof ClickHouseError) return { status: 400, code: e.code, message };
    this.o.log?.(`internal endpoint: ${message}`);
    return { status: 500, code: CODES.UNKNOWN_EXCEPTION, message };
  }
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const b = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(b.length) });
  res.end(b);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) {
        reject(new Refusal(413, `an internal call's body is limited to ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
