// Randomized check of the log store against a plain in-memory model of each group's log: seeded
// sequences of appends (with conflict truncation), snapshots that match or replace the log,
// compaction, hard states, several writes of one group per batch, deletes and reopens.
import { expect } from 'chai';
import { EntryType, type Entry, type HardState, type SnapshotMetadata } from '../../../daemon/raft/types.js';
import { LogStore, type GroupWrite, type LoadedGroup } from '../../../daemon/storage/index.js';
import { decodeEntryIndex, decodeRun, entryKey, groupKey, KIND_ENTRY } from '../../../daemon/storage/codec.js';
import { Rocks } from '../../../daemon/storage/rocks.js';
import { TempDirs, payload } from './helpers.js';
import { seeded as prng } from '../raft/network.js';

class Model {
  snapshot: SnapshotMetadata | null = null;
  entries: Entry[] = [];
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  get base(): number {
    return this.snapshot ? this.snapshot.index : 0;
  }
  get last(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.index : this.base;
  }
  append(es: Entry[]): void {
    const i = es[0]!.index;
    this.entries = [...this.entries.filter((e) => e.index < i), ...es];
  }
  applySnapshot(s: SnapshotMetadata): void {
    if (s.index <= this.base) return;
    const at = this.entries.find((e) => e.index === s.index);
    this.entries = at && at.term === s.term ? this.entries.filter((e) => e.index > s.index) : [];
    this.snapshot = s;
  }
  loaded(): LoadedGroup {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries };
  }
}

const GROUPS = [0, 1, 2, 255, 256];

describe('storage: randomized model check', function () {
  this.timeout(60_000);
  const tmp = new TempDirs();
  after(() => tmp.cleanup());

  for (const seed of process.env.STORAGE_MODEL_SEEDS ? Array.from({ length: Number(process.env.STORAGE_MODEL_SEEDS) }, (_, i) => i + 1) : [1, 2, 3, 4, 5]) {
    it(`seed ${seed}: the store always loads exactly the model's logs`, async () => {
      const rnd = prng(seed);
      const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
      const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const dir = await tmp.make();
      let store = await LogStore.open({ dir, nodeId: 1, clusterId: 'model' });
      const models = new Map<number, Model>(GROUPS.map((g) => [g, new Model()]));
      let term = 1;

      const randomWrite = (g: number, m: Model): GroupWrite => {
        const w: GroupWrite = { group: g };
        const r = rnd();
        if (r < 0.6) {
          // Mostly appends at the end, sometimes a truncating append (sometimes at a run boundary).
          const from = rnd() < 0.7 ? m.last + 1 : int(m.base + 1, m.last + 1);
          if (rnd() < 0.3) term++;
          const n = rnd() < 0.1 ? int(100, 300) : int(1, 12);
          const es: Entry[] = [];
          for (let i = from; i < from + n; i++) es.push({ index: i, term, type: rnd() < 0.1 ? EntryType.ConfChange : EntryType.Normal, data: payload(g, i, term, int(0, 40)) });
          w.entries = es;
          m.append(es);
        } else if (r < 0.8) {
          const index = int(m.base + 1, m.last + 3);
          const at = m.entries.find((e) => e.index === index);
          const t = at && rnd() < 0.7 ? at.term : term + 1;
          const snap: SnapshotMetadata = { index, term: t, confState: { voters: [1, 2, int(3, 9)], learners: rnd() < 0.5 ? [] : [10] } };
          w.snapshot = snap;
          m.applySnapshot(snap);
          if (rnd() < 0.3) w.compactTo = int(0, m.base);
          // Sometimes entries right after the snapshot in the same write.
          if (rnd() < 0.3 && m.last === m.base) {
            const es: Entry[] = [{ index: m.base + 1, term: t, type: EntryType.Normal, data: payload(g, m.base + 1, t) }];
            w.entries = es;
            m.append(es);
          }
        }
        if (rnd() < 0.5) {
          m.hardState = { term, vote: int(0, 3), commit: int(0, m.last) };
          w.hardState = m.hardState;
        }
        return w;
      };

      for (let step = 0; step < 120; step++) {
        const r = rnd();
        if (r < 0.05) {
          await store.close();
          store = await LogStore.open({ dir, nodeId: 1, clusterId: 'model' });
          continue;
        }
        if (r < 0.08) {
          const g = pick(GROUPS);
          await store.deleteGroup(g);
          models.set(g, new Model());
          continue;
        }
        const batch: GroupWrite[] = [];
        const n = int(1, 6);
        // Half the writes of a batch go to one group: same-group sequences inside a batch
        // (append, truncate, snapshot) are where the staging logic is subtle.
        const hot = pick(GROUPS);
        for (let i = 0; i < n; i++) {
          const g = rnd() < 0.5 ? hot : pick(GROUPS);
          batch.push(randomWrite(g, models.get(g)!));
        }
        await store.write(batch);
        for (const g of new Set(batch.map((w) => w.group))) {
          expect(await store.loadGroup(g), `seed ${seed} step ${step} group ${g}`).to.deep.equal(models.get(g)!.loaded());
        }
      }

      const all = await store.loadAll();
      await store.collectGarbage();
      for (const g of GROUPS) {
        const m = models.get(g)!;
        const empty = m.snapshot === null && m.entries.length === 0 && m.hardState.term === 0 && m.hardState.commit === 0;
        if (!empty) expect(all.get(g), `loadAll group ${g}`).to.deep.equal(m.loaded());
      }
      await store.close();

      // Nothing but the model's entries is left on disk: no stale runs below the snapshot or
      // after a truncation, and every run is keyed by its first index.
      const db = await Rocks.open(dir, { createIfMissing: false, errorIfExists: false });
      try {
        for (const g of GROUPS) {
          const onDisk: number[] = [];
          await db.scan({ gte: entryKey(g, 0), lt: groupKey(KIND_ENTRY, g + 1) }, (k, v) => {
            const run = decodeRun(decodeEntryIndex(k), v);
            for (const e of run) onDisk.push(e.index);
          });
          expect(onDisk, `disk of group ${g}`).to.deep.equal(models.get(g)!.entries.map((e) => e.index));
        }
      } finally {
        await db.close();
      }
    });
  }
});
