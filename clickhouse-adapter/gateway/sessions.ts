// Client sessions (HTTP `session_id`): each pins one ClickHouse session of the read engine on the node
// that serves it, holding its temporary tables and the settings its `SET`s gave. Nothing of a session
// is replicated: a write inside a session still goes through Raft; only the session's own state
// (temporary tables, session settings) is local. As in ClickHouse, a session belongs to the user that
// opened it, serves one request at a time (373 SESSION_IS_LOCKED), expires `session_timeout` seconds
// after its last request ended, and `session_check=1` refuses to open one (372 SESSION_NOT_FOUND).

import type { ClickHouseEngine, EngineSession } from '../engine/types.js';
import { CODES } from '../engine/codes.js';
import { GatewayError } from './errors.js';

export interface SessionOptions {
  /** Sessions open at once on this node; one more is refused. Default 1000. */
  maxSessions: number;
  /** session_timeout when the request gives none, seconds. Default 60 (ClickHouse's default_session_timeout). */
  defaultTimeoutSeconds: number;
  /** The largest session_timeout a request may ask for, seconds. Default 3600 (ClickHouse's max_session_timeout). */
  maxTimeoutSeconds: number;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = { maxSessions: 1000, defaultTimeoutSeconds: 60, maxTimeoutSeconds: 3600 };

/** A session id: what ClickHouse accepts in practice, bounded. */
const SESSION_ID_RE = /^[A-Za-z0-9_.:@+\-]{1,128}$/;

export interface SessionRequest {
  id: string;
  user: string;
  /** session_timeout as sent (seconds), if any. */
  timeout?: string;
  /** session_check=1: the session must exist already. */
  check: boolean;
}

interface Entry {
  session: EngineSession;
  busy: boolean;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  /** Temporary tables created in this session (lower case names): writes to them stay local. */
  temporary: Set<string>;
}

/** One request's hold on its session; release() when the response is done (streamed or not). */
export interface SessionLease {
  readonly session: EngineSession;
  readonly temporary: Set<string>;
  release(): void;
}

export class SessionRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly o: SessionOptions;

  constructor(private readonly engine: ClickHouseEngine, opts: Partial<SessionOptions> = {}) {
    this.o = { ...DEFAULT_SESSION_OPTIONS, ...opts };
  }

  get size(): number {
    return this.entries.size;
  }

  /** Takes the session for one request, opening it unless session_check; throws 372/373/374/202. */
  acquire(req: SessionRequest): SessionLease {
    if (!SESSION_ID_RE.test(req.id)) {
      throw new GatewayError(CODES.BAD_ARGUMENTS, 'session_id must be 1 to 128 letters, digits or _.:@+-');
    }
    const timeoutMs = this.timeoutMs(req.timeout);
    const key = `${req.user}\u0000${req.id}`;
    let e = this.entries.get(key);
    if (e?.busy) throw new GatewayError(CODES.SESSION_IS_LOCKED, `Session ${req.id} is locked by a concurrent client`);
    if (!e) {
      if (req.check) throw new GatewayError(CODES.SESSION_NOT_FOUND, `Session ${req.id} not found`);
      if (this.entries.size >= this.o.maxSessions) {
        throw new GatewayError(CODES.TOO_MANY_SIMULTANEOUS_QUERIES, `Too many simultaneous sessions on this node. Maximum: ${this.o.maxSessions}`);
      }
      e = { session: this.engine.openSession(Math.ceil(timeoutMs / 1000)), busy: false, timeoutMs, timer: undefined, temporary: new Set() };
      this.entries.set(key, e);
    }
    const entry = e;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.busy = true;
    entry.timeoutMs = timeoutMs;
    let released = false;
    return {
      session: entry.session,
      temporary: entry.temporary,
      release: () => {
        if (released) return;
        released = true;
        entry.busy = false;
        if (this.entries.get(key) !== entry) return;
        entry.timer = setTimeout(() => this.expire(key, entry), entry.timeoutMs);
        entry.timer.unref();
      },
    };
  }

  private timeoutMs(raw: string | undefined): number {
    if (raw === undefined || raw === '') return this.o.defaultTimeoutSeconds * 1000;
    const s = Number(raw);
    if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(s) || s <= 0) {
      throw new GatewayError(CODES.INVALID_SESSION_TIMEOUT, `Invalid session timeout: '${raw.slice(0, 32)}'`);
    }
    if (s > this.o.maxTimeoutSeconds) {
      throw new GatewayError(CODES.INVALID_SESSION_TIMEOUT, `Session timeout ${s} is larger than max_session_timeout: ${this.o.maxTimeoutSeconds}. Maximum session timeout could be modified in configuration file.`);
    }
    return Math.round(s * 1000);
  }

  private expire(key: string, e: Entry): void {
    if (e.busy || this.entries.get(key) !== e) return;
    this.entries.delete(key);
    void e.session.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) if (e.timer) clearTimeout(e.timer);
    await Promise.allSettled(all.map((e) => e.session.close()));
  }
}
