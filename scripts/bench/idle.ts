// npm run bench:idle — 3 raftd processes holding N groups each (default 10,000), idle.
// Waits for every group to have a leader, lets idle groups quiesce, then samples each
// process's CPU time from /proc for --seconds and prints % of one core per process.

import { LocalCluster } from '../../test/integration/cluster.js';
import { loadavg } from 'node:os';
import { cpuSeconds, emitResult } from './stats.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, def: number) => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : def;
  };
  const groups = opt('--groups', 10_000);
  const seconds = opt('--seconds', 20);
  const tickMs = opt('--tick-ms', 100);
  console.log(`bench:idle — 3 raftd processes x ${groups} groups, tick ${tickMs} ms, sampling ${seconds} s`);
  const cluster = await LocalCluster.create({ nodes: 3, groups, tickMs, electionTicks: 10 });
  try {
    const t0 = Date.now();
    await cluster.startAll();
    const all = Array.from({ length: groups }, (_, i) => i + 1);
    await cluster.waitForLeaders([0, ...all], 300_000);
    const electedSec = (Date.now() - t0) / 1000;
    console.log(`  all ${groups} groups have leaders after ${electedSec.toFixed(1)} s; letting them go idle…`);
    const settle = Date.now() + 60_000;
    for (;;) {
      const st = (await cluster.nodes[0]!.get('/status')).body as { groups: Array<{ quiesced: boolean }> };
      const q = st.groups.filter((g) => g.quiesced).length;
      if (q >= groups || Date.now() > settle) {
        console.log(`  node 1: ${q} of ${st.groups.length} groups quiesced`);
        break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const pids = cluster.nodes.map((n) => n.proc!.pid!);
    const before = pids.map(cpuSeconds);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = pids.map(cpuSeconds);
    const pcts = pids.map((pid, i) => {
      const pct = ((after[i]! - before[i]!) / seconds) * 100;
      console.log(`  node ${i + 1} (pid ${pid}): ${pct.toFixed(1)}% of one core`);
      return pct;
    });
    emitResult('idle', { groups, electedSec, idlePctPerProcessMax: Math.max(...pcts), idlePctPerProcessMean: pcts.reduce((a, b) => a + b, 0) / pcts.length, loadavg: loadavg()[0]! });
  } finally {
    await cluster.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
