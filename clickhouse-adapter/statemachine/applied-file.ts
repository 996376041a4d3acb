// The per-batch applied-index record, kept in a small file per group beside the embedded engine.
//
// Recording the index in ClickHouse (`_rh_applied`) is one more INSERT per applied batch: a new part,
// ~3 ms alone and 20 ms or more while three replicas insert on two cores (measured on bench:gateway's
// critical path). This file costs one pwrite. It is only as durable as the data it describes: the
// embedded engine writes parts without fsync, in this same process, so a kill -9 keeps both (page
// cache) and a power loss may lose either, exactly as with the record in ClickHouse.
//
// The file names the database INSTANCE it describes (a random id stored in that database's
// `_rh_applied`). A database swapped in by a snapshot restore, re-created after a group deletion,
// or replaced behind our back gets a new id, so a stale file is ignored, never trusted.
//
// Format: one fixed-size record `<instance> <index>[ <inflight> <attempt>]` padded with spaces,
// rewritten in place by a single pwrite (never truncated, so a crash leaves the old record or the new
// one, not an empty file). `<inflight>` is the tokenised insert that was running when the record was
// written (phantom.ts: after a crash, that one insert's deduplication record cannot be trusted), and
// `<attempt>` the number of repair inserts already started for it.

import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const RECORD_BYTES = 96;

/** The files' directory inside an embedded engine's data directory (ClickHouse leaves unknown names alone). */
export const APPLIED_DIR = 'rafthouse-applied';

export interface AppliedRecord {
  instance: string;
  /** Highest index recorded. */
  index: number;
  /** A tokenised insert above `index` that may have been running at a crash. */
  inflight?: { index: number; attempt: number };
}

export class AppliedFiles {
  private readonly fds = new Map<number, number>();

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private path(group: number): string {
    return join(this.dir, `g${group}.applied`);
  }

  /** The group's record, or undefined when there is none or it does not parse. */
  read(group: number): AppliedRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(group), 'latin1');
    } catch {
      return undefined;
    }
    const m = /^([0-9a-f-]{8,64}) (\d{1,16})(?: (\d{1,16}) (\d{1,6}))? *\n?$/.exec(text);
    if (!m) return undefined;
    const index = Number(m[2]);
    if (!Number.isSafeInteger(index)) return undefined;
    const rec: AppliedRecord = { instance: m[1]!, index };
    if (m[3] !== undefined) {
      const inflight = Number(m[3]);
      if (!Number.isSafeInteger(inflight)) return undefined;
      rec.inflight = { index: inflight, attempt: Number(m[4]) };
    }
    return rec;
  }

  write(group: number, rec: AppliedRecord): void {
    const line = rec.inflight ? `${rec.instance} ${rec.index} ${rec.inflight.index} ${rec.inflight.attempt}` : `${rec.instance} ${rec.index}`;
    if (line.length >= RECORD_BYTES || !/^[0-9a-f-]{8,64}$/.test(rec.instance)) throw new Error(`bad applied record ${line}`);
    const buf = Buffer.alloc(RECORD_BYTES, 0x20);
    buf.write(line, 0, 'latin1');
    buf[RECORD_BYTES - 1] = 0x0a;
    let fd = this.fds.get(group);
    if (fd === undefined) {
      // 'a+' would append; 'r+' needs the file: create it empty first, never truncate an existing one.
      try {
        fd = openSync(this.path(group), 'r+');
      } catch {
        closeSync(openSync(this.path(group), 'a'));
        fd = openSync(this.path(group), 'r+');
      }
      this.fds.set(group, fd);
    }
    const n = writeSync(fd, buf, 0, RECORD_BYTES, 0);
    if (n !== RECORD_BYTES) throw new Error(`short write of the applied record of group ${group} (${n} bytes)`);
  }

  remove(group: number): void {
    this.closeOne(group);
    rmSync(this.path(group), { force: true });
  }

  private closeOne(group: number): void {
    const fd = this.fds.get(group);
    if (fd === undefined) return;
    this.fds.delete(group);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }

  close(): void {
    for (const g of [...this.fds.keys()]) this.closeOne(g);
  }
}
