// Typed access to a scenario command's arguments, with errors that name the command.
import type { CmdArg } from './datadriven.js';

export class ArgError extends Error {}

export class Args {
  constructor(
    readonly cmd: string,
    readonly list: CmdArg[],
  ) {}

  /** Bare tokens (no `=`), in order. */
  positional(): string[] {
    return this.list.filter((a) => a.bare).map((a) => a.key);
  }

  /** Bare tokens that are numbers (node ids). */
  ids(): number[] {
    // Other bare words are flags (bool() reads them).
    return this.positional().filter((p) => /^[0-9]+$/.test(p)).map((p) => this.toInt(p, 'id'));
  }

  has(key: string, withValue = false): boolean {
    return this.list.some((a) => a.key === key && (!withValue || a.vals.length > 0));
  }

  str(key: string, def?: string): string {
    const a = this.list.find((x) => x.key === key && x.vals.length > 0);
    if (!a) {
      if (def === undefined) throw new ArgError(`${this.cmd}: missing ${key}=`);
      return def;
    }
    return a.vals[0]!;
  }

  int(key: string, def?: number): number {
    const a = this.list.find((x) => x.key === key && x.vals.length > 0);
    if (!a) {
      if (def === undefined) throw new ArgError(`${this.cmd}: missing ${key}=`);
      return def;
    }
    return this.toInt(a.vals[0]!, key);
  }

  ints(key: string): number[] | undefined {
    const a = this.list.find((x) => x.key === key);
    return a ? a.vals.map((v) => this.toInt(v, key)) : undefined;
  }

  bool(key: string, def = false): boolean {
    const a = this.list.find((x) => x.key === key);
    if (!a) return def;
    if (a.vals.length === 0) return true;
    if (a.vals[0] === 'true') return true;
    if (a.vals[0] === 'false') return false;
    throw new ArgError(`${this.cmd}: ${key} must be true or false`);
  }

  private toInt(s: string, what: string): number {
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new ArgError(`${this.cmd}: ${what} "${s}" is not an integer`);
    return n;
  }
}
