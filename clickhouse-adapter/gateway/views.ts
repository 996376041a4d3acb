// Per-replica read views: for every user table t (in any group database rh_g<g>), a Merge table
// `<userDb>.t` over `rh_g*.t`, so users query the table by its own name and see all of it, whichever
// groups hold it. Views are local objects (never replicated): each rafthouse node creates, replaces and
// drops its own after DDL it proposes, periodically, and on demand when a read misses one.

import type { ClickHouseEngine } from '../engine/types.js';
import { queryRows, quoteIdent, quoteString } from '../engine/sql.js';
import { DATA_DB_REGEXP, INTERNAL_TABLE_PREFIX } from '../statemachine/naming.js';

export const VIEW_COMMENT = 'rafthouse read view';

function regexEscape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

export class ReadViews {
  /** table -> the column signature its view was built from. */
  private readonly built = new Map<string, string>();
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly engine: ClickHouseEngine, readonly userDb: string) {}

  /** Brings every view up to date. Concurrent calls share one run (plus one more if asked meanwhile). */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      try {
        do {
          this.again = false;
          await this.syncOnce();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    this.running = run;
    return run;
  }

  private async syncOnce(): Promise<void> {
    const tables = await queryRows<{ name: string; sig: string }>(this.engine,
      `SELECT table AS name, any(sig) AS sig FROM (
         SELECT database, table, arrayStringConcat(groupArray(concat(name, ' ', type)), ', ') AS sig
         FROM (SELECT database, table, name, type FROM system.columns
               WHERE match(database, ${quoteString(DATA_DB_REGEXP)}) AND NOT startsWith(table, ${quoteString(INTERNAL_TABLE_PREFIX)})
               ORDER BY database, table, position)
         GROUP BY database, table)
       GROUP BY table`);
    const views = await queryRows<{ name: string }>(this.engine,
      `SELECT name FROM system.tables WHERE database = ${quoteString(this.userDb)} AND engine = 'Merge' AND comment = ${quoteString(VIEW_COMMENT)}`);
    const have = new Set(views.map((v) => v.name));
    const want = new Map(tables.map((t) => [t.name, t.sig]));
    await this.engine.exec(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(this.userDb)}`);
    for (const [name, sig] of want) {
      if (have.has(name) && this.built.get(name) === sig) continue;
      await this.engine.exec(
        `CREATE OR REPLACE TABLE ${quoteIdent(this.userDb)}.${quoteIdent(name)} ENGINE = Merge(REGEXP(${quoteString(DATA_DB_REGEXP)}), ${quoteString('^' + regexEscape(name) + '$')}) COMMENT ${quoteString(VIEW_COMMENT)}`);
      this.built.set(name, sig);
    }
    for (const name of have) {
      if (want.has(name)) continue;
      await this.engine.exec(`DROP TABLE IF EXISTS ${quoteIdent(this.userDb)}.${quoteIdent(name)}`);
      this.built.delete(name);
    }
  }
}
