import { expect } from 'chai';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { EntryType, MessageType, type Message } from '../../../daemon/raft/types.js';
import { decodeAck, decodeBatch, encodeAck, encodeBatch, encodedMessageSize, type Batch, type GroupMessage } from '../../../daemon/transport/codec.js';
import { TransportError } from '../../../daemon/transport/errors.js';
import * as pb from '../../../gen/raftd/v1/raft_pb.js';

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

function msg(type: MessageType, over: Partial<Message> = {}): Message {
  return {
    type, to: 2, from: 1, term: 7, logTerm: 6, index: 41, entries: [], commit: 40,
    reject: false, rejectHint: 0, context: new Uint8Array(0), ...over,
  };
}

// One message of every type, with the fields that type uses (and large 53-bit values).
function everyType(): GroupMessage[] {
  const out: GroupMessage[] = [];
  const all = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');
  expect(all).to.have.length(13);
  for (const type of all) {
    const m = msg(type);
    if (type === MessageType.App) {
      m.entries = [
        { term: 7, index: 42, type: EntryType.Normal, data: bytes(1, 2, 3) },
        { term: 7, index: 43, type: EntryType.ConfChange, data: bytes(9) },
        { term: 7, index: 44, type: EntryType.Normal, data: new Uint8Array(0) },
      ];
    }
    if (type === MessageType.AppResp) Object.assign(m, { reject: true, rejectHint: 17 });
    if (type === MessageType.Heartbeat || type === MessageType.ReadIndex) m.context = bytes(0xde, 0xad);
    if (type === MessageType.Vote) Object.assign(m, { term: Number.MAX_SAFE_INTEGER, index: 2 ** 40 + 3, logTerm: 2 ** 33 });
    if (type === MessageType.Snap) {
      m.snapshot = { metadata: { index: 300, term: 5, confState: { voters: [1, 2, 3], learners: [200] } }, data: new Uint8Array(0) };
    }
    out.push({ group: type * 1000 + 1, message: m });
  }
  return out;
}

describe('transport codec', () => {
  const batch: Batch = { fromNode: 1, toNode: 2, clusterId: 'prod-é', seq: 5, messages: everyType() };

  it('round-trips every message type through its own encoder and decoder', () => {
    const wire = encodeBatch(batch);
    const back = decodeBatch(wire);
    expect(back).to.deep.equal(batch);
  });

  it('is read by protobuf-es exactly as the proto declares (enums shifted by one)', () => {
    const wire = encodeBatch(batch);
    const req = fromBinary(pb.StreamRequestSchema, wire);
    const b = req.batch!;
    expect(b.fromNode).to.equal(1n);
    expect(b.clusterId).to.equal('prod-é');
    expect(b.seq).to.equal(5n);
    expect(b.messages).to.have.length(13);
    const app = b.messages.find((m) => m.type === pb.MessageType.APP)!;
    expect(app.group).to.equal(MessageType.App * 1000 + 1);
    expect(app.entries.map((e) => [e.index, e.type, [...e.data]])).to.deep.equal([
      [42n, pb.EntryType.NORMAL, [1, 2, 3]],
      [43n, pb.EntryType.CONF_CHANGE, [9]],
      [44n, pb.EntryType.NORMAL, []],
    ]);
    const vote = b.messages.find((m) => m.type === pb.MessageType.VOTE)!;
    expect(vote.term).to.equal(BigInt(Number.MAX_SAFE_INTEGER));
    expect(vote.index).to.equal(2n ** 40n + 3n);
    const snap = b.messages.find((m) => m.type === pb.MessageType.SNAP)!;
    expect(snap.snapshot!.metadata!.confState!.voters).to.deep.equal([1n, 2n, 3n]);
    expect(snap.snapshot!.metadata!.confState!.learners).to.deep.equal([200n]);
    const resp = b.messages.find((m) => m.type === pb.MessageType.APP_RESP)!;
    expect([resp.reject, resp.rejectHint]).to.deep.equal([true, 17n]);
  });

  it('decodes what protobuf-es encodes, and skips unknown fields', () => {
    const pm = create(pb.MessageSchema, {
      group: 9, type: pb.MessageType.SNAP, to: 3n, from: 1n, term: 4n,
      snapshot: { metadata: { index: 10n, term: 4n, confState: { voters: [1n, 2n, 3n] } } },
      entries: [{ term: 4n, index: 9n, type: pb.EntryType.NORMAL, data: bytes(5) }],
    });
    const wire = toBinary(pb.StreamRequestSchema, create(pb.StreamRequestSchema, {
      batch: { fromNode: 1n, toNode: 3n, clusterId: 'c', seq: 1n, messages: [pm] },
    }));
    // Append an unknown varint field (99): a newer peer may send fields we do not know.
    const back = decodeBatch(wire);
    expect(back.messages[0]!.message.snapshot!.metadata.confState.voters).to.deep.equal([1, 2, 3]);
    expect(back.messages[0]!.message.entries[0]!.data).to.deep.equal(bytes(5));
    const withUnknown = new Uint8Array([...wire, (99 << 3) & 0xff | 0x80, 99 >> 4, 42]);
    expect(decodeBatch(withUnknown)).to.deep.equal(back);
  });

  it('hands entry data out as views of the received buffer, not copies', () => {
    const data = new Uint8Array(1000).fill(7);
    const wire = encodeBatch({ ...batch, messages: [{ group: 1, message: msg(MessageType.App, { entries: [{ term: 1, index: 1, type: EntryType.Normal, data }] }) }] });
    const e = decodeBatch(wire).messages[0]!.message.entries[0]!;
    expect(e.data.buffer).to.equal(wire.buffer);
    expect(e.data).to.deep.equal(data);
  });

  it('predicts each message size exactly', () => {
    const empty = encodeBatch({ ...batch, messages: [] }).length;
    let sum = 0;
    for (const gm of batch.messages) sum += encodedMessageSize(gm);
    const full = encodeBatch(batch).length;
    // The outer length prefix grows by at most a few bytes with the body.
    expect(full - empty - sum).to.be.within(0, 3);
  });

  it('rejects garbage with DECODE_ERROR, never a rounded number', () => {
    const wire = encodeBatch(batch);
    for (const cut of [1, 5, 30, wire.length - 1]) {
      expect(() => decodeBatch(wire.subarray(0, cut)), `cut ${cut}`).to.throw(TransportError).with.property('code', 'DECODE_ERROR');
    }
    const big = toBinary(pb.StreamRequestSchema, create(pb.StreamRequestSchema, { batch: { seq: 2n ** 60n } }));
    expect(() => decodeBatch(big)).to.throw(/2\^53/);
    const badType = toBinary(pb.StreamRequestSchema, create(pb.StreamRequestSchema, { batch: { messages: [{ type: 0 }] } }));
    expect(() => decodeBatch(badType)).to.throw(/without a type|unknown message type/);
    expect(() => encodeBatch({ ...batch, seq: -1 })).to.throw(TransportError);
  });

  it('round-trips acks', () => {
    for (const seq of [0, 1, 127, 128, 2 ** 31, 2 ** 45]) expect(decodeAck(encodeAck(seq))).to.equal(seq);
    expect(fromBinary(pb.StreamResponseSchema, encodeAck(300)).ack!.seq).to.equal(300n);
  });
});
