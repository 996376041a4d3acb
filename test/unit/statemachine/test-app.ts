// A small but real state-machine API v1 application for the client tests: a real HTTP server
// (HTTP/1.1-only via node:http, or h2c-only via node:http2) with an in-memory counter state per
// group, plus knobs to misbehave (fail, stall, answer garbage, apply only part of a batch).

import { createCipheriv, createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

export interface Call {
  name: string;
  body: unknown;
}

/** A hook may answer the call itself (return true) or let the normal handler run (false). */
export type Hook = (name: string, body: Record<string, unknown> | undefined, res: Res, app: TestApp) => boolean | Promise<boolean>;

interface GroupState {
  lastIndex: number;
  /** Durable index (Sync moves it up to lastIndex); `crash()` drops state back to it. */
  durable: number;
  /** Every index applied, in application order: the tests check order and no duplicates. */
  appliedOrder: number[];
  sum: number;
}

export class TestApp {
  readonly calls: Call[] = [];
  readonly groups = new Map<number, GroupState>();
  hook: Hook | undefined;
  /** Delay before answering UpdateEntries (ms), to let enqueues pile up. */
  applyDelayMs = 0;
  /** Delay the next UpdateEntries answer (after applying), as a slow network or app would. */
  answerDelayOnceMs = 0;
  /** Apply at most this many entries per UpdateEntries (returns a lower lastLogIndex). */
  applyLimit = Infinity;
  /** SaveSnapshot: bytes to stream, and how many were written when the client got the first. */
  snapshotBytes = 0;
  snapshotSent = 0;
  /** RecoverFromSnapshot: bytes received so far and the sha256 of the whole body. */
  recoverReceived = 0;
  recoverDigest = '';
  private server: http.Server | http2.Http2Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  port = 0;

  constructor(readonly proto: 'h1' | 'h2') {}

  state(group: number): GroupState {
    let s = this.groups.get(group);
    if (!s) this.groups.set(group, (s = { lastIndex: 0, durable: 0, appliedOrder: [], sum: 0 }));
    return s;
  }

  /** Loses everything not made durable by Sync (an app crash under RAFT_SYNC=1). */
  crash(group: number): void {
    const s = this.state(group);
    s.lastIndex = s.durable;
    s.appliedOrder = s.appliedOrder.filter((i) => i <= s.durable);
  }

  callsNamed(name: string): Call[] {
    return this.calls.filter((c) => c.name === name);
  }

  async listen(port = 0): Promise<string> {
    const handler = (req: Req, res: Res): void => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'INTERNAL', message: err.message } }));
        } else res.destroy();
      });
    };
    const server = this.proto === 'h1' ? http.createServer(handler) : http2.createServer(handler);
    server.on('connection', (sock: import('node:net').Socket) => {
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops accepting and drops every connection (the app "goes down"). */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: Req, res: Res): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const name = url.pathname.replace(/^\/raft\/v1\//, '');
    if (name === 'RecoverFromSnapshot') {
      const group = Number(url.searchParams.get('group'));
      this.calls.push({ name, body: { group } });
      if (this.hook && (await this.hook(name, { group }, res, this))) return;
      const h = createHash('sha256');
      this.recoverReceived = 0;
      for await (const chunk of req) {
        this.recoverReceived += (chunk as Buffer).length;
        h.update(chunk as Buffer);
      }
      this.recoverDigest = h.digest('hex');
      const s = this.state(group);
      s.lastIndex = s.durable = 1000;
      return json(res, 200, { lastLogIndex: s.lastIndex });
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    this.calls.push({ name, body });
    if (this.hook && (await this.hook(name, body, res, this))) return;
    const group = body['group'] as number;
    const s = this.state(group);
    switch (name) {
      case 'LastLogIndex':
        return json(res, 200, { lastLogIndex: s.lastIndex });
      case 'UpdateEntries': {
        if (this.applyDelayMs > 0) await new Promise((r) => setTimeout(r, this.applyDelayMs));
        const entries = body['entries'] as Array<{ index: number; term: number; data: string }>;
        const results: unknown[] = [];
        let applied = 0;
        for (const e of entries) {
          if (e.index <= s.lastIndex) {
            results.push({ index: e.index, skipped: true });
            continue;
          }
          if (e.index !== s.lastIndex + 1) return json(res, 400, { error: { code: 'GAP', message: `expected ${s.lastIndex + 1}, got ${e.index}` } });
          if (applied >= this.applyLimit) break;
          applied++;
          s.lastIndex = e.index;
          s.appliedOrder.push(e.index);
          const text = Buffer.from(e.data, 'base64').toString('utf8');
          if (text === 'bad') results.push({ index: e.index, ok: false, error: { code: 'BAD_COMMAND', message: 'bad' } });
          else {
            s.sum += text === '' ? 0 : Number(text);
            results.push({ index: e.index, ok: true, result: { sum: s.sum } });
          }
        }
        if (this.answerDelayOnceMs > 0) {
          const ms = this.answerDelayOnceMs;
          this.answerDelayOnceMs = 0;
          await new Promise((r) => setTimeout(r, ms));
        }
        return json(res, 200, { results, lastLogIndex: s.lastIndex });
      }
      case 'Read':
        return json(res, 200, { result: { sum: s.sum, query: body['query'] } });
      case 'PrepareSnapshot':
        return json(res, 200, { prepared: `snap-${s.lastIndex}`, lastLogIndex: s.lastIndex });
      case 'SaveSnapshot':
        return this.streamSnapshot(res, String(body['prepared']));
      case 'Sync':
        s.durable = s.lastIndex;
        return json(res, 200, { lastLogIndex: s.durable });
      case 'DeleteGroup':
        this.groups.delete(group);
        return json(res, 200, {});
      default:
        return json(res, 404, { error: { code: 'NOT_FOUND', message: name } });
    }
  }

  /** Deterministic bytes for `prepared`, written 64 KiB at a time, honouring back-pressure. */
  private async streamSnapshot(res: Res, prepared: string): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    this.snapshotSent = 0;
    const w = res as unknown as NodeJS.WritableStream;
    for (const chunk of snapshotChunks(prepared, this.snapshotBytes)) {
      this.snapshotSent += chunk.length;
      if (!w.write(chunk)) await new Promise((r) => w.once('drain', r));
    }
    res.end();
  }
}

/** The deterministic snapshot content both sides of a test can recompute (an AES-CTR keystream). */
export function* snapshotChunks(seed: string, total: number, chunkSize = 64 << 10): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkSize);
  for (let off = 0; off < total; off += chunkSize) yield cipher.update(zeros.subarray(0, Math.min(chunkSize, total - off)));
}

export function json(res: Res, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function raw(res: Res, status: number, text: string, contentType = 'application/json'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
