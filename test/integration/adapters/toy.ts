// A deliberately small adapter written straight on node:http (no SDK), with switches that break
// it in one specific way each, so the tests can show the conformance kit names the right check.

import * as http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export interface ToyFaults {
  /** Applies redelivered entries again instead of skipping them (the SDK's skip bypassed). */
  reapply?: boolean;
  /** SaveSnapshot bytes differ between calls for the same prepared value. */
  unstableSnapshot?: boolean;
  /** Keeps everything in memory: a restart loses the last index. */
  volatile?: boolean;
}

interface Group {
  last: number;
  kv: Map<string, string>;
  prepared: Map<string, string>;
}

/** State that survives a "restart" unless the toy is volatile. */
export class ToyDisk {
  groups = new Map<number, Group>();
}

export async function startToy(port: number, disk: ToyDisk, faults: ToyFaults): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const groups = faults.volatile ? new Map<number, Group>() : disk.groups;
  let saves = 0;
  const g = (n: number): Group => {
    let s = groups.get(n);
    if (!s) groups.set(n, (s = { last: 0, kv: new Map(), prepared: new Map() }));
    return s;
  };
  const err = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
  const serialize = (s: Group): string => JSON.stringify({ last: s.last, kv: [...s.kv].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) });

  function handle(call: string, query: URLSearchParams, raw: Buffer): { status: number; body: unknown; bytes?: Buffer } {
    if (call === 'RecoverFromSnapshot') {
      const group = Number(query.get('group'));
      if (!(group >= 1)) return err(400, 'BAD_REQUEST', 'group');
      try {
        const snap = JSON.parse(raw.toString()) as { last: number; kv: Array<[string, string]> };
        if (typeof snap.last !== 'number' || !Array.isArray(snap.kv)) throw new Error('shape');
        groups.set(group, { last: snap.last, kv: new Map(snap.kv), prepared: new Map() });
        return { status: 200, body: { lastLogIndex: snap.last } };
      } catch {
        return err(400, 'BAD_SNAPSHOT', 'not a toy snapshot');
      }
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString()) as Record<string, unknown>;
    } catch {
      return err(400, 'BAD_REQUEST', 'json');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !Number.isSafeInteger(body.group) || (body.group as number) < 1) return err(400, 'BAD_REQUEST', 'group');
    const s = g(body.group as number);
    switch (call) {
      case 'LastLogIndex':
      case 'Sync':
        return { status: 200, body: { lastLogIndex: s.last } };
      case 'UpdateEntries': {
        const entries = body.entries as Array<{ index: unknown; data: unknown }>;
        if (!Array.isArray(entries) || entries.length === 0) return err(400, 'BAD_REQUEST', 'entries');
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          if (!Number.isSafeInteger(e.index) || typeof e.data !== 'string' || !/^[A-Za-z0-9+/]*=*$/.test(e.data)) return err(400, 'BAD_REQUEST', 'entry');
          if (i > 0 && e.index !== (entries[i - 1]!.index as number) + 1) return err(400, 'BAD_REQUEST', 'contiguous');
        }
        if ((entries[0]!.index as number) > s.last + 1) return { status: 409, body: { error: { code: 'INDEX_GAP', message: 'gap', lastLogIndex: s.last } } };
        const results = entries.map((e) => {
          const index = e.index as number;
          if (index <= s.last && !faults.reapply) return { index, skipped: true };
          s.last = Math.max(s.last, index);
          const data = Buffer.from(e.data as string, 'base64').toString();
          if (data === '') return { index, ok: true, result: null };
          try {
            const c = JSON.parse(data) as { op: string; key: string; value: string };
            if (c.op !== 'set') throw new Error('op');
            s.kv.set(c.key, c.value);
            return { index, ok: true, result: { ok: true } };
          } catch {
            return { index, ok: false, error: { code: 'BAD_COMMAND', message: 'not a set' } };
          }
        });
        return { status: 200, body: { results, lastLogIndex: s.last } };
      }
      case 'Read': {
        const q = body.query as { key?: unknown } | null;
        if (!q || typeof q.key !== 'string') return err(400, 'BAD_QUERY', 'query');
        return { status: 200, body: { result: { value: s.kv.get(q.key) ?? null } } };
      }
      case 'PrepareSnapshot': {
        const name = `p${s.last}`;
        s.prepared.set(name, serialize(s));
        return { status: 200, body: { prepared: name, lastLogIndex: s.last } };
      }
      case 'SaveSnapshot': {
        if (typeof body.prepared !== 'string') return err(400, 'BAD_REQUEST', 'prepared');
        const text = s.prepared.get(body.prepared);
        if (text === undefined) return err(410, 'SNAPSHOT_GONE', 'gone');
        // The fault: a "generated at" counter makes every call's bytes different.
        const bytes = Buffer.from(faults.unstableSnapshot ? text.replace(/^\{/, `{"save":${++saves},`) : text);
        return { status: 200, body: null, bytes };
      }
      case 'DeleteGroup':
        groups.delete(body.group as number);
        return { status: 200, body: {} };
      default:
        return err(404, 'NOT_FOUND', call);
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://toy');
      const r: { status: number; body: unknown; bytes?: Buffer } = url.pathname.startsWith('/raft/v1/') ? handle(url.pathname.slice(9), url.searchParams, Buffer.concat(chunks)) : err(404, 'NOT_FOUND', 'path');
      const out = r.bytes ?? Buffer.from(JSON.stringify(r.body));
      res.writeHead(r.status, { 'content-type': r.bytes ? 'application/octet-stream' : 'application/json', 'content-length': out.length });
      res.end(out);
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
