// `npm run bench:transport`: throughput of batched App messages (64-byte entries) between two
// GrpcTransports on loopback, in one process (sender and receiver share one CPU core, so these
// are lower bounds for two processes). Also the codec alone, for where the time goes.
//
// The sender keeps at most WINDOW messages unreceived (the transport drops beyond its queue
// bound, as it should; a benchmark must not measure drops). Each "tick" sends one message per
// group for GROUPS groups, like the host does.

import { EntryType, MessageType, type Message } from '../../daemon/raft/types.js';
import { decodeBatch, encodeBatch, encodedMessageSize, type GroupMessage } from '../../daemon/transport/codec.js';
import { GrpcTransport } from '../../daemon/transport/transport.js';
import { freePort } from '../../test/support/ports.js';

const ENTRY_BYTES = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

function tick(groups: number, entriesPerMsg: number, base: number): GroupMessage[] {
  const out: GroupMessage[] = [];
  for (let g = 0; g < groups; g++) {
    const entries = [];
    for (let i = 0; i < entriesPerMsg; i++) entries.push({ term: 3, index: base + i + 1, type: EntryType.Normal, data: new Uint8Array(ENTRY_BYTES).fill(i) });
    const message: Message = { type: MessageType.App, to: 2, from: 1, term: 3, logTerm: 3, index: base, entries, commit: base, reject: false, rejectHint: 0, context: new Uint8Array(0) };
    out.push({ group: g + 1, message });
  }
  return out;
}

function codecOnly(groups: number, entriesPerMsg: number): string {
  const msgs = tick(groups, entriesPerMsg, 1000);
  const t0 = performance.now();
  let n = 0;
  let bytes = 0;
  while (performance.now() - t0 < 1000) {
    const wire = encodeBatch({ fromNode: 1, toNode: 2, clusterId: 'bench', seq: n + 1, messages: msgs });
    bytes += wire.length;
    decodeBatch(wire);
    n++;
  }
  const s = (performance.now() - t0) / 1000;
  return `codec only (encode+decode): ${fmt((n * groups) / s)} msgs/s, ${fmt((n * groups * entriesPerMsg) / s)} entries/s, ${(bytes / s / 1e6).toFixed(0)} MB/s wire`;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function run(groups: number, entriesPerMsg: number): Promise<void> {
  const [pa, pb] = [await freePort(), await freePort()];
  let received = 0;
  let receivedEntries = 0;
  const a = new GrpcTransport({ nodeId: 1, clusterId: 'bench', listenAddr: `127.0.0.1:${pa}`, peers: new Map([[2, `127.0.0.1:${pb}`]]), clusterSecret: 'bench' }, { onMessages: () => undefined, onSnapshot: async () => undefined });
  const b = new GrpcTransport(
    { nodeId: 2, clusterId: 'bench', listenAddr: `127.0.0.1:${pb}`, peers: new Map([[1, `127.0.0.1:${pa}`]]), clusterSecret: 'bench' },
    {
      onMessages: (_from, msgs) => {
        received += msgs.length;
        for (const m of msgs) receivedEntries += m.message.entries.length;
      },
      onSnapshot: async () => undefined,
    },
  );
  await Promise.all([a.start(), b.start()]);
  const msgs = tick(groups, entriesPerMsg, 1000);
  const wirePerTick = msgs.reduce((s, m) => s + encodedMessageSize(m), 0);
  // Stay well inside the transport's default queue bound (10,000 messages / 64 MiB).
  const window = Math.min(8_000, Math.floor((16 * 1024 * 1024) / (wirePerTick / groups)));
  // Warm up the stream (and the JIT).
  a.send(2, msgs);
  while (received < groups) await new Promise((r) => setTimeout(r, 5));
  received = 0;
  receivedEntries = 0;
  const s0 = a.stats();
  let sent = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000) {
    if (sent - received < window) {
      a.send(2, msgs);
      sent += msgs.length;
    }
    await new Promise((r) => setImmediate(r));
  }
  while (received < sent && performance.now() - t0 < (SECONDS + 5) * 1000) await new Promise((r) => setImmediate(r));
  const s = (performance.now() - t0) / 1000;
  const st = a.stats();
  const batches = st.sentBatches - s0.sentBatches;
  console.log(
    `${groups} groups x ${entriesPerMsg} entries/msg: ${fmt(received / s)} msgs/s, ${fmt(receivedEntries / s)} entries/s, ` +
      `${((receivedEntries * ENTRY_BYTES) / s / 1e6).toFixed(1)} MB/s entry data, ${(((received / groups) * wirePerTick) / s / 1e6).toFixed(1)} MB/s wire; ` +
      `${fmt(batches)} batches (${fmt(received / Math.max(1, batches))} msgs/batch), dropped ${st.droppedMessages - s0.droppedMessages}`,
  );
  console.log('  ' + codecOnly(groups, entriesPerMsg));
  await Promise.all([a.close(), b.close()]);
}

console.log(`transport throughput, loopback, one process, ${SECONDS} s per case, ${ENTRY_BYTES}-byte entries`);
await run(1000, 1);
await run(100, 16);
await run(10, 256);
