// The queries this gateway is running, by gateway user: what lets a client cancel its own queries
// (KILL QUERY) and see them (system.processes) without seeing or touching anyone else's.
//
// Every read gets an internal id (a UUID the client never sees) that the engine tags the statement
// with; the client's query_id maps onto it. system.processes in a read is replaced by the engine's
// processesSource() over the caller's running queries, and KILL QUERY WHERE <cond> is answered here:
// <cond> is evaluated over that same source, and the matching queries are aborted, which makes the
// engine KILL them for real.

import { randomUUID } from 'node:crypto';
import type { ClickHouseEngine } from '../engine/types.js';
import { CODES } from '../engine/codes.js';
import { GatewayError } from './errors.js';
import { identifierName, stringValue, tokenize } from '../sql/scanner.js';
import type { ParsedStatement } from './parse.js';

interface Running {
  clientId: string;
  user: string;
  abort: AbortController;
  done: Promise<void>;
  finish: () => void;
}

export interface QueryTicket {
  /** The engine's queryId for this query. */
  id: string;
  /** Aborted when the client goes away or the query is killed. */
  signal: AbortSignal;
  finish: () => void;
}

/** How long KILL QUERY ... SYNC waits for the killed queries to end. */
const KILL_SYNC_WAIT_MS = 5_000;

const KILL_RE = /^KILL QUERY WHERE ([\s\S]+) (SYNC|ASYNC|TEST)(?:\s+FORMAT\s+[A-Za-z][A-Za-z0-9_]*)?$/;

export class RunningQueries {
  private readonly running = new Map<string, Running>();

  /** Registers a query; `client` (the HTTP request's signal) aborts it too. Call finish() when it ends. */
  start(user: string, clientId: string, client?: AbortSignal): QueryTicket {
    const id = randomUUID();
    const abort = new AbortController();
    let finish!: () => void;
    const done = new Promise<void>((r) => { finish = r; });
    const onClient = (): void => abort.abort();
    client?.addEventListener('abort', onClient, { once: true });
    if (client?.aborted) abort.abort();
    this.running.set(id, { clientId, user, abort, done, finish });
    return {
      id,
      signal: abort.signal,
      finish: () => {
        client?.removeEventListener('abort', onClient);
        this.running.delete(id);
        finish();
      },
    };
  }

  /** internal id -> client query_id, for `user`'s running queries. */
  of(user: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const [id, r] of this.running) if (r.user === user) out.set(id, r.clientId);
    return out;
  }

  get size(): number {
    return this.running.size;
  }

  /**
   * `sql` with every `system.processes` replaced by the caller's own running queries. A statement that
   * names both `system` and `processes` any other way (a table function, a `database=system` default)
   * is refused rather than guessed at.
   */
  sandboxProcesses(sql: string, stmt: ParsedStatement, database: string, engine: ClickHouseEngine, user: string): string {
    // SHOW PROCESSLIST is ClickHouse's own SELECT over system.processes: the same, over the caller's.
    if (stmt.ast.type === 'ShowProcesslistQuery') {
      return `SELECT * FROM ${engine.processesSource(this.of(user))}${stmt.format ? ` FORMAT ${stmt.format}` : ''}`;
    }
    const touches = stmt.tables.some((t) => (t.database ?? database).toLowerCase() === 'system' && t.table.toLowerCase() === 'processes');
    const tokens = tokenize(sql);
    const name = (i: number): string => {
      const t = tokens[i];
      if (!t) return '';
      if (t.kind === 'quoted' || t.kind === 'word') return identifierName(t.text).toLowerCase();
      return t.kind === 'string' ? stringValue(t.text).toLowerCase() : '';
    };
    let out = '';
    let at = 0;
    let replaced = 0;
    let mentions = 0;
    for (let i = 0; i < tokens.length; i++) {
      if (name(i) === 'processes') mentions++;
      if (name(i) === 'system' && tokens[i + 1]?.text === '.' && name(i + 2) === 'processes') {
        out += sql.slice(at, tokens[i]!.start) + engine.processesSource(this.of(user));
        at = tokens[i + 2]!.end;
        replaced++;
        mentions++;
        i += 2;
      }
    }
    const system = tokens.some((_, i) => name(i) === 'system');
    if ((touches && replaced === 0) || mentions > replaced || (system && mentions > 0 && replaced === 0)) {
      throw new GatewayError(CODES.ACCESS_DENIED, 'system.processes can be read only as system.processes (it shows the caller\'s own queries)');
    }
    return replaced ? out + sql.slice(at) : sql;
  }

  /**
   * KILL QUERY WHERE <cond> [SYNC|ASYNC|TEST] over the caller's own queries. Returns the matches
   * (client query_id) with their status, as ClickHouse's KILL QUERY result rows.
   */
  async kill(stmt: ParsedStatement, engine: ClickHouseEngine, user: string): Promise<Array<{ kill_status: string; query_id: string; user: string; query: string }>> {
    const m = KILL_RE.exec(stmt.canonical);
    if (!m) throw new GatewayError(CODES.NOT_IMPLEMENTED, 'only KILL QUERY WHERE <condition> [SYNC|ASYNC|TEST] is supported (on this node, for the caller\'s own queries)');
    const [, cond, mode] = m;
    const mine = this.of(user);
    const byClient = new Map<string, string[]>();
    for (const [id, clientId] of mine) byClient.set(clientId, [...(byClient.get(clientId) ?? []), id]);
    const cond_ = this.sandboxProcesses(cond!, stmt, 'default', engine, user);
    const found = (await engine.query(`SELECT DISTINCT query_id, query FROM ${engine.processesSource(mine)} WHERE ${cond_}`, { format: 'JSONEachRow' }))
      .toString('utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l) as { query_id: string; query: string });
    const rows: Array<{ kill_status: string; query_id: string; user: string; query: string }> = [];
    const waits: Promise<void>[] = [];
    for (const f of found) {
      for (const id of byClient.get(f.query_id) ?? []) {
        const r = this.running.get(id);
        if (!r) continue;
        if (mode !== 'TEST') {
          r.abort.abort();
          waits.push(r.done);
        }
        rows.push({ kill_status: mode === 'TEST' ? 'waiting' : mode === 'SYNC' ? 'finished' : 'waiting', query_id: f.query_id, user, query: f.query });
      }
    }
    if (mode === 'SYNC' && waits.length) {
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([
        Promise.all(waits).then(() => true),
        new Promise<boolean>((r) => { timer = setTimeout(() => r(false), KILL_SYNC_WAIT_MS); }),
      ]);
      clearTimeout(timer);
      if (!ended) for (const r of rows) r.kill_status = 'waiting';
    }
    return rows;
  }
}

/** True for a `KILL QUERY` statement (the gateway answers it on both endpoints). */
export function isKillQuery(stmt: ParsedStatement): boolean {
  return stmt.ast.type === 'KillQueryQuery' && /^KILL QUERY\b/.test(stmt.canonical);
}

