// The SDK's server: both protocols on one port, validation, the skip rule, error mapping,
// snapshot streaming. A small in-memory StateMachine records what the SDK let through.

import { expect } from 'chai';
import * as http2 from 'node:http2';
import { serveStateMachine, type ServedStateMachine } from '../../../adapters/sdk/server.js';
import { StateMachineError, type Entry, type EntryResult, type StateMachine } from '../../../adapters/sdk/types.js';

class Recorder implements StateMachine {
  last = new Map<number, number>();
  applied: number[] = [];
  applyError: Error | undefined;
  readError: Error | undefined;
  wrongCount = false;
  snapshotChunks = 0;
  applyDelayMs = 0;
  async lastLogIndex(group: number): Promise<number> {
    return this.last.get(group) ?? 0;
  }
  async applyBatch(group: number, entries: Entry[]): Promise<EntryResult[]> {
    if (this.applyDelayMs) await new Promise((r) => setTimeout(r, this.applyDelayMs));
    if (this.applyError) {
      // Applies the first entry, then fails: the error must report how far it got.
      this.last.set(group, entries[0]!.index);
      throw this.applyError;
    }
    for (const e of entries) this.applied.push(e.index);
    this.last.set(group, entries[entries.length - 1]!.index);
    const out: EntryResult[] = entries.map((e) => (e.data.length === 3 ? { ok: false, error: { code: 'THREE', message: 'three bytes' } } : { ok: true, result: { len: e.data.length } }));
    return this.wrongCount ? out.slice(1) : out;
  }
  async read(_group: number, query: unknown): Promise<unknown> {
    if (this.readError) throw this.readError;
    return { echo: query };
  }
  async prepareSnapshot(group: number): Promise<{ prepared: string; lastLogIndex: number }> {
    return { prepared: `p${await this.lastLogIndex(group)}`, lastLogIndex: await this.lastLogIndex(group) };
  }
  async *saveSnapshot(_group: number, prepared: string): AsyncIterable<Uint8Array> {
    if (prepared === 'gone') throw new StateMachineError('SNAPSHOT_GONE', 'gone');
    for (let i = 0; i < this.snapshotChunks; i++) yield new Uint8Array(64 * 1024).fill(i % 251);
  }
  async recoverFromSnapshot(group: number, data: AsyncIterable<Uint8Array>): Promise<number> {
    let n = 0;
    for await (const c of data) n += c.length;
    this.last.set(group, n);
    return n;
  }
}

async function post(url: string, call: string, body: unknown, raw?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/raft/v1/${call}`, { method: 'POST', body: raw ?? JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

function h2post(url: string, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url);
    s.on('error', reject);
    const req = s.request({ ':method': 'POST', ':path': path });
    let status = 0;
    let text = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      s.close();
      resolve({ status, text });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const e = (index: number, data = ''): { index: number; term: number; data: string } => ({ index, term: 1, data });

describe('adapter SDK server', () => {
  let sm: Recorder;
  let srv: ServedStateMachine;
  beforeEach(async () => {
    sm = new Recorder();
    srv = await serveStateMachine(sm, { port: 0, insecure: true });
  });
  afterEach(() => srv.close());

  it('serves HTTP/1.1 and h2c (prior knowledge) on the same port', async () => {
    const h1 = await post(srv.url, 'LastLogIndex', { group: 7 });
    expect(h1).to.deep.equal({ status: 200, json: { lastLogIndex: 0 } });
    const h2 = await h2post(srv.url, '/raft/v1/LastLogIndex', JSON.stringify({ group: 7 }));
    expect(h2.status).to.equal(200);
    expect(JSON.parse(h2.text)).to.deep.equal({ lastLogIndex: 0 });
  });

  it('h2c: true serves only HTTP/2, h2c: false only HTTP/1.1', async () => {
    const only2 = await serveStateMachine(sm, { port: 0, insecure: true, h2c: true });
    const only1 = await serveStateMachine(sm, { port: 0, insecure: true, h2c: false });
    try {
      expect((await h2post(only2.url, '/raft/v1/LastLogIndex', '{"group":1}')).status).to.equal(200);
      let h1Failed = false;
      await fetch(`${only2.url}/raft/v1/LastLogIndex`, { method: 'POST', body: '{"group":1}' }).catch(() => (h1Failed = true));
      expect(h1Failed).to.equal(true);
      expect((await post(only1.url, 'LastLogIndex', { group: 1 })).status).to.equal(200);
      const h2 = await h2post(only1.url, '/raft/v1/LastLogIndex', '{"group":1}').then(
        (r) => (r.status === 200 ? 'answered' : 'refused'),
        () => 'refused',
      );
      expect(h2).to.equal('refused');
    } finally {
      await only2.close();
      await only1.close();
    }
  });

  it('streams a multi-chunk snapshot over h2c and HTTP/1.1 identically', async () => {
    sm.snapshotChunks = 40; // 2.5 MiB
    const a = Buffer.from(await (await fetch(`${srv.url}/raft/v1/SaveSnapshot`, { method: 'POST', body: '{"group":1,"prepared":"x"}' })).arrayBuffer());
    expect(a.length).to.equal(40 * 64 * 1024);
    const b = await new Promise<Buffer>((resolve, reject) => {
      const s = http2.connect(srv.url);
      const req = s.request({ ':method': 'POST', ':path': '/raft/v1/SaveSnapshot' });
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        s.close();
        resolve(Buffer.concat(chunks));
      });
      req.on('error', reject);
      req.end('{"group":1,"prepared":"x"}');
    });
    expect(b.equals(a)).to.equal(true);
  });

  it('rejects malformed requests with 400 BAD_REQUEST and a reason, without calling the adapter', async () => {
    const cases: Array<[string, unknown, string?]> = [
      ['UpdateEntries', undefined, '{"group":'],
      ['UpdateEntries', [1, 2]],
      ['UpdateEntries', { entries: [e(1)] }],
      ['UpdateEntries', { group: 0, entries: [e(1)] }],
      ['UpdateEntries', { group: 4294967295, entries: [e(1)] }],
      ['UpdateEntries', { group: 1.5, entries: [e(1)] }],
      ['UpdateEntries', { group: 1, entries: [] }],
      ['UpdateEntries', { group: 1, entries: [{ index: 0, term: 1, data: '' }] }],
      ['UpdateEntries', { group: 1, entries: [{ index: 1, term: -1, data: '' }] }],
      ['UpdateEntries', { group: 1, entries: [{ index: 1, term: 1, data: 'abc' }] }],
      ['UpdateEntries', { group: 1, entries: [{ index: 1, term: 1 }] }],
      ['UpdateEntries', { group: 1, entries: [e(1), e(3)] }],
      ['SaveSnapshot', { group: 1 }],
      ['SaveSnapshot', { group: 1, prepared: 'x'.repeat(1025) }],
      ['LastLogIndex', { group: '1x' }],
    ];
    for (const [call, body, raw] of cases) {
      const r = await post(srv.url, call, body, raw);
      expect(r.status, `${call} ${raw ?? JSON.stringify(body)}`).to.equal(400);
      expect(r.json.error.code).to.equal('BAD_REQUEST');
      expect(r.json.error.message).to.be.a('string').and.not.equal('');
    }
    const rec = await fetch(`${srv.url}/raft/v1/RecoverFromSnapshot`, { method: 'POST', body: 'x' });
    expect(rec.status).to.equal(400);
    expect(sm.applied).to.deep.equal([]);
    expect((await post(srv.url, 'NoSuch', { group: 1 })).json.error.code).to.equal('NOT_FOUND');
    const get = await fetch(`${srv.url}/raft/v1/LastLogIndex`);
    expect(get.status).to.equal(405);
    expect(((await get.json()) as any).error.code).to.equal('METHOD_NOT_ALLOWED');
  });

  it('skips redelivered entries itself, passes only new ones, and answers INDEX_GAP for gaps', async () => {
    const r1 = await post(srv.url, 'UpdateEntries', { group: 1, entries: [e(1), e(2, 'AAAA')] });
    expect(r1.json).to.deep.equal({ results: [{ index: 1, ok: true, result: { len: 0 } }, { index: 2, ok: false, error: { code: 'THREE', message: 'three bytes' } }], lastLogIndex: 2 });
    const r2 = await post(srv.url, 'UpdateEntries', { group: 1, entries: [e(1), e(2), e(3)] });
    expect(r2.json.results).to.deep.equal([{ index: 1, skipped: true }, { index: 2, skipped: true }, { index: 3, ok: true, result: { len: 0 } }]);
    expect(sm.applied).to.deep.equal([1, 2, 3]);
    const gap = await post(srv.url, 'UpdateEntries', { group: 1, entries: [e(5)] });
    expect(gap.status).to.equal(409);
    expect(gap.json.error).to.include({ code: 'INDEX_GAP', lastLogIndex: 3 });
    expect(sm.applied).to.deep.equal([1, 2, 3]);
  });

  it('serializes overlapping UpdateEntries of one group, so a retry racing the original applies nothing twice', async () => {
    sm.applyDelayMs = 30;
    const body = { group: 1, entries: [e(1), e(2)] };
    const [a, b] = await Promise.all([post(srv.url, 'UpdateEntries', body), post(srv.url, 'UpdateEntries', body)]);
    expect(sm.applied).to.deep.equal([1, 2]);
    const skipped = [a, b].filter((r) => r.json.results.every((x: any) => x.skipped === true));
    expect(skipped).to.have.length(1);
  });

  it('maps thrown errors to the contract: StateMachineError code/status, plain Error -> 500 INTERNAL', async () => {
    sm.readError = new StateMachineError('BAD_QUERY', 'what?');
    expect(await post(srv.url, 'Read', { group: 1, query: 1 })).to.deep.equal({ status: 400, json: { error: { code: 'BAD_QUERY', message: 'what?' } } });
    sm.readError = new StateMachineError('KEY_LOCKED', 'locked');
    expect((await post(srv.url, 'Read', { group: 1, query: 1 })).status).to.equal(422);
    sm.readError = new StateMachineError('TEAPOT', 'short and stout', 418);
    expect((await post(srv.url, 'Read', { group: 1, query: 1 })).status).to.equal(418);
    sm.readError = new Error('boom');
    expect(await post(srv.url, 'Read', { group: 1, query: 1 })).to.deep.equal({ status: 500, json: { error: { code: 'INTERNAL', message: 'boom' } } });
    sm.readError = undefined;
    expect(await post(srv.url, 'Read', { group: 1 })).to.deep.equal({ status: 200, json: { result: { echo: null } } });

    sm.applyError = new StateMachineError('UNAVAILABLE', 'disk full');
    const r = await post(srv.url, 'UpdateEntries', { group: 2, entries: [e(1), e(2)] });
    expect(r.status).to.equal(503);
    expect(r.json.error).to.deep.equal({ code: 'UNAVAILABLE', message: 'disk full', lastLogIndex: 1 });
    sm.applyError = new Error('bug');
    const r2 = await post(srv.url, 'UpdateEntries', { group: 3, entries: [e(1)] });
    expect(r2.status).to.equal(500);
    expect(r2.json.error.code).to.equal('INTERNAL');
    sm.applyError = undefined;
    sm.wrongCount = true;
    const r3 = await post(srv.url, 'UpdateEntries', { group: 4, entries: [e(1), e(2)] });
    expect(r3.status).to.equal(500);
    expect(r3.json.error.message).to.match(/adapter bug: applyBatch returned 1 results for 2 entries/);
  });

  it('answers SNAPSHOT_GONE before streaming, recovers from a streamed body, and reports optional calls', async () => {
    const gone = await post(srv.url, 'SaveSnapshot', { group: 1, prepared: 'gone' });
    expect(gone).to.deep.equal({ status: 410, json: { error: { code: 'SNAPSHOT_GONE', message: 'gone' } } });
    const rec = await fetch(`${srv.url}/raft/v1/RecoverFromSnapshot?group=9`, { method: 'POST', body: Buffer.alloc(300_000) });
    expect(await rec.json()).to.deep.equal({ lastLogIndex: 300_000 });
    expect((await post(srv.url, 'Sync', { group: 9 })).json).to.deep.equal({ lastLogIndex: 300_000 });
    const del = await post(srv.url, 'DeleteGroup', { group: 9 });
    expect(del.status).to.equal(501);
    expect(del.json.error.code).to.equal('NOT_IMPLEMENTED');
  });

  it('keeps serving after a client drops a snapshot stream midway', async () => {
    sm.snapshotChunks = 2000; // 125 MiB: far more than socket buffers hold
    const ctl = new AbortController();
    const res = await fetch(`${srv.url}/raft/v1/SaveSnapshot`, { method: 'POST', body: '{"group":1,"prepared":"x"}', signal: ctl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ctl.abort();
    await new Promise((r) => setTimeout(r, 50));
    expect((await post(srv.url, 'LastLogIndex', { group: 1 })).status).to.equal(200);
  });
});
