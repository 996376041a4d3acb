// The SDK's binary UpdateEntries (docs/state-machine-api.md, "Binary UpdateEntries"): advertised
// on LastLogIndex, decoded into the same Entry objects as JSON (views, no copies), and malformed
// bodies answered 400 BAD_REQUEST without reaching the adapter, over real HTTP.

import { expect } from 'chai';
import { serveStateMachine, type ServedStateMachine } from '../../../adapters/sdk/server.js';
import { RecordingStateMachine } from '../../support/recording-sm.js';

const CT = 'application/vnd.raftd.entries';


interface WireEntry {
  index: number | bigint;
  term: number | bigint;
  data: Uint8Array;
  /** Declared length when it must lie about data.length. */
  len?: number;
}

/** The wire format, written independently of raftd's encoder. */
function encode(group: number, entries: WireEntry[], count = entries.length): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(8);
  head.writeUInt32BE(group, 0);
  head.writeUInt32BE(count, 4);
  parts.push(head);
  for (const e of entries) {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(BigInt(e.index), 0);
    h.writeBigUInt64BE(BigInt(e.term), 8);
    h.writeUInt32BE(e.len ?? e.data.length, 16);
    parts.push(h, Buffer.from(e.data));
  }
  return Buffer.concat(parts);
}

async function post(url: string, call: string, body: Buffer | string, contentType: string): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(`${url}/raft/v1/${call}`, { method: 'POST', headers: { 'content-type': contentType }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

const bytes = (...v: number[]): Uint8Array => Uint8Array.from(v);

describe('adapter SDK server: binary UpdateEntries', () => {
  let sm: RecordingStateMachine;
  let srv: ServedStateMachine;
  beforeEach(async () => {
    sm = new RecordingStateMachine();
    srv = await serveStateMachine(sm, { port: 0, insecure: true });
  });
  afterEach(async () => {
    await srv.close();
  });

  it('advertises binary on LastLogIndex answers, unless binaryEntries is false', async () => {
    const r = await post(srv.url, 'LastLogIndex', '{"group":1}', 'application/json');
    expect(r.status).to.equal(200);
    expect(r.headers.get('raftd-entries')).to.equal('binary');
    const off = await serveStateMachine(sm, { port: 0, insecure: true, binaryEntries: false });
    try {
      const r2 = await post(off.url, 'LastLogIndex', '{"group":1}', 'application/json');
      expect(r2.json).to.deep.equal({ lastLogIndex: 0 });
      expect(r2.headers.get('raftd-entries')).to.equal(null);
    } finally {
      await off.close();
    }
  });

  it('applies a binary body as the same Entry objects (data are views), with the skip rule', async () => {
    const big = new Uint8Array(700_000).map((_, i) => (i * 7) % 256);
    const body = encode(3, [
      { index: 1, term: 2, data: bytes(1, 2, 3) },
      { index: 2, term: 2, data: new Uint8Array(0) },
      { index: 3, term: 5, data: big },
    ]);
    const r = await post(srv.url, 'UpdateEntries', body, `${CT}; charset=binary`);
    expect(r.status, JSON.stringify(r.json)).to.equal(200);
    expect(r.json).to.deep.equal({
      results: [
        { index: 1, ok: true, result: { len: 3 } },
        { index: 2, ok: true, result: { len: 0 } },
        { index: 3, ok: true, result: { len: 700_000 } },
      ],
      lastLogIndex: 3,
    });
    const [b] = sm.batches;
    expect(b!.map((e) => [e.index, e.term])).to.deep.equal([
      [1, 2],
      [2, 2],
      [3, 5],
    ]);
    expect(Buffer.from(b![0]!.data).equals(Buffer.from([1, 2, 3]))).to.equal(true);
    expect(Buffer.from(b![2]!.data).equals(Buffer.from(big))).to.equal(true);
    // All three share the request body's memory: no per-entry copy.
    expect(b![0]!.data.buffer).to.equal(b![2]!.data.buffer);

    // Redelivery of 2..4: 2 and 3 skipped, only 4 reaches the adapter.
    const again = encode(3, [
      { index: 2, term: 2, data: new Uint8Array(0) },
      { index: 3, term: 5, data: bytes(9) },
      { index: 4, term: 5, data: bytes(4, 4) },
    ]);
    const r2 = await post(srv.url, 'UpdateEntries', again, CT);
    expect(r2.json.results).to.deep.equal([
      { index: 2, skipped: true },
      { index: 3, skipped: true },
      { index: 4, ok: true, result: { len: 2 } },
    ]);
    expect(sm.batches[1]!.map((e) => e.index)).to.deep.equal([4]);
    // And a gap is still INDEX_GAP.
    const gap = await post(srv.url, 'UpdateEntries', encode(3, [{ index: 9, term: 5, data: bytes(1) }]), CT);
    expect(gap.status).to.equal(409);
    expect(gap.json.error).to.include({ code: 'INDEX_GAP', lastLogIndex: 4 });
  });

  it('rejects malformed binary bodies with 400 BAD_REQUEST, never reaching the adapter', async () => {
    const two = encode(1, [
      { index: 1, term: 1, data: bytes(1, 2, 3, 4) },
      { index: 2, term: 1, data: bytes(5, 6) },
    ]);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty body', Buffer.alloc(0), /shorter than/],
      ['header cut short', two.subarray(0, 6), /shorter than/],
      ['truncated inside an entry header', two.subarray(0, 8 + 20 + 4 + 10), /does not fit/],
      ['truncated inside the second entry header', encode(1, [{ index: 1, term: 1, data: new Uint8Array(30) }, { index: 2, term: 1, data: bytes(1) }]).subarray(0, 8 + 20 + 30 + 5), /truncated/],
      ['truncated inside entry data', two.subarray(0, two.length - 1), /exceeds/],
      ['count 0', encode(1, [], 0), /non-empty/],
      ['count above the entries present', encode(1, [{ index: 1, term: 1, data: bytes(1) }, { index: 2, term: 1, data: bytes(2) }], 3), /does not fit|truncated/],
      ['count below the entries present (trailing bytes)', encode(1, [{ index: 1, term: 1, data: bytes(1) }, { index: 2, term: 1, data: bytes(2) }], 1), /after the last/],
      ['huge count', encode(1, [{ index: 1, term: 1, data: bytes(1) }], 0xffffffff), /does not fit/],
      ['length beyond the body', encode(1, [{ index: 1, term: 1, data: bytes(1, 2), len: 0xffffffff }]), /exceeds/],
      ['length one past the body', encode(1, [{ index: 1, term: 1, data: bytes(1, 2), len: 3 }]), /exceeds/],
      ['group 0', encode(0, [{ index: 1, term: 1, data: bytes(1) }]), /group/],
      ['group 2^32-1', encode(0xffffffff, [{ index: 1, term: 1, data: bytes(1) }]), /group/],
      ['index 0', encode(1, [{ index: 0, term: 1, data: bytes(1) }]), /index/],
      ['index >= 2^53', encode(1, [{ index: 2n ** 53n, term: 1, data: bytes(1) }]), /index/],
      ['term >= 2^53', encode(1, [{ index: 1, term: 2n ** 63n, data: bytes(1) }]), /term/],
      ['non-contiguous indexes', encode(1, [{ index: 1, term: 1, data: bytes(1) }, { index: 3, term: 1, data: bytes(1) }]), /contiguous/],
    ];
    for (const [name, body, why] of cases) {
      const r = await post(srv.url, 'UpdateEntries', body, CT);
      expect(r.status, name).to.equal(400);
      expect(r.json.error.code, name).to.equal('BAD_REQUEST');
      expect(r.json.error.message, name).to.match(why);
    }
    expect(sm.batches, 'the adapter saw nothing').to.deep.equal([]);
    // The server is still healthy and the JSON form still works.
    const ok = await post(srv.url, 'UpdateEntries', JSON.stringify({ group: 1, entries: [{ index: 1, term: 1, data: 'AQI=' }] }), 'application/json');
    expect(ok.json).to.deep.equal({ results: [{ index: 1, ok: true, result: { len: 2 } }], lastLogIndex: 1 });
  });

  it('a binary body over maxBodyBytes is 413 PAYLOAD_TOO_LARGE', async () => {
    const small = await serveStateMachine(sm, { port: 0, insecure: true, maxBodyBytes: 1000 });
    try {
      const r = await post(small.url, 'UpdateEntries', encode(1, [{ index: 1, term: 1, data: new Uint8Array(2000) }]), CT);
      expect(r.status).to.equal(413);
      expect(r.json.error.code).to.equal('PAYLOAD_TOO_LARGE');
    } finally {
      await small.close();
    }
  });
});
