// One command-line convention for every program of this repository (raftd, rafthouse, the KV adapter
// and its front, the conformance kit, raftctl, npm start): parsing by node:util parseArgs, options in
// one table per command (flag, environment variable, default, help), one --help layout rendered from
// that table, and one answer to a bad command line: a single line on stderr and exit status 2.
// It lives in protocol/ so daemon/, adapters/ and clickhouse-adapter/ all import it without adapters
// importing daemon/.

import { parseArgs } from 'node:util';
import { resolveSecret, SecretError } from './secrets.js';

export interface CliOption {
  /** The flag without its dashes: `data-dir` is given as `--data-dir`. */
  readonly name: string;
  /** What the flag takes, shown as `<value>` in --help (`int`, `HOST:PORT`, `file`); null: a switch that takes no value. */
  readonly value: string | null;
  /** The environment variable read when the flag is absent ('' or absent: none). */
  readonly env?: string;
  /** Shown in --help; '' or absent: none. */
  readonly default?: string;
  readonly help: string;
  /**
   * The flag names a file holding a secret (protocol/secrets.ts). `--X` for a flag `--X-file` is then
   * refused with a line saying why, instead of "unknown option": a secret on argv is visible in ps.
   */
  readonly secret?: boolean;
}

export interface CommandSpec {
  /** The command as a user types it: `raftd`, `raftctl`, `npm start --`. */
  readonly name: string;
  /** Synopsis lines after "Usage: " (the first) or aligned under it. */
  readonly usage: readonly string[];
  /** What the command does, and rules that hold for every option; printed before the options. */
  readonly about: readonly string[];
  readonly options: readonly CliOption[];
  /** Printed after the options: commands, exit statuses, where to read more. */
  readonly footer?: readonly string[];
}

/** A bad command line: one line, exit status 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

export const HELP_OPTION: CliOption = { name: 'help', value: null, help: 'print this text and exit' };

/** The heading of the options section: the same words in every command's --help. */
export const OPTIONS_HEADING = 'Options (a flag wins over its environment variable, which wins over the default):';

const FLAG_WIDTH = 34;
const ENV_WIDTH = 30;

/**
 * --help, the same layout for every command:
 *   Usage: <synopsis>            (further synopses aligned under it)
 *   <blank> about lines <blank>
 *   Options (...):
 *     --flag <value>             ENV                            default D
 *                                help
 *   <blank> footer lines
 */
export function renderHelp(spec: CommandSpec): string {
  const lines: string[] = [];
  spec.usage.forEach((u, i) => lines.push(`${i === 0 ? 'Usage: ' : '       '}${u}`));
  if (spec.about.length > 0) lines.push('', ...spec.about);
  lines.push('', OPTIONS_HEADING);
  for (const o of [...spec.options, HELP_OPTION]) {
    const flag = `--${o.name}${o.value === null ? '' : ` <${o.value}>`}`;
    const env = o.env ? o.env : '-';
    const dflt = o.default ? o.default : o.value === null ? 'off' : '(none)';
    lines.push(`  ${flag.padEnd(FLAG_WIDTH)} ${env.padEnd(ENV_WIDTH)} default ${dflt}`);
    lines.push(`  ${''.padEnd(FLAG_WIDTH)} ${o.help}`);
  }
  if (spec.footer && spec.footer.length > 0) lines.push('', ...spec.footer);
  return lines.join('\n') + '\n';
}

export interface CommandLine {
  /** Flags given, by name: a string for a flag with a value, true for a switch. */
  readonly flags: ReadonlyMap<string, string | true>;
  readonly positionals: readonly string[];
  /** --help or -h was given. */
  readonly help: boolean;
}

/**
 * Parses argv with node:util parseArgs against the command's table. Throws UsageError with one line
 * (unknown option, missing value, a value given to a switch, a secret given as a flag value).
 */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[], allowPositionals = false): CommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const o of spec.options) options[o.name] = { type: o.value === null ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(parseErrorLine(spec, e as Error & { code?: string }));
  }
  const flags = new Map<string, string | true>();
  for (const [name, v] of Object.entries(parsed.values)) {
    if (name === 'help' || v === undefined || v === false) continue;
    // parseArgs gives the last value of a repeated flag only when asked for arrays; a plain option is a string.
    flags.set(name, v === true ? true : String(v));
  }
  return { flags, positionals: parsed.positionals, help: parsed.values['help'] === true };
}

/** parseArgs' messages run to several sentences; a user needs the flag and what is wrong with it. */
function parseErrorLine(spec: CommandSpec, e: Error & { code?: string }): string {
  const flag = /'(-{1,2}[^' ]+)/.exec(e.message)?.[1]?.replace(/=.*$/, '') ?? '';
  const see = `(see ${spec.name} --help)`;
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const secret = spec.options.find((o) => o.secret && `--${o.name}` === `${flag}-file`);
      if (secret) {
        return `${flag}: secrets are not taken on the command line (every local user sees it in ps): use --${secret.name} PATH${secret.env ? ` or ${secret.env}` : ''}`;
      }
      return `unknown option ${flag} ${see}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      // Both "argument missing" (a flag that takes a value, at the end) and "does not take an argument".
      return /does not take an argument/.test(e.message) ? `${flag} takes no value ${see}` : `${flag} needs a value ${see}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /'([^']*)'/.exec(e.message)?.[1] ?? '';
      return `unexpected argument ${JSON.stringify(arg)} ${see}`;
    }
    default:
      return `${e.message.split(/(?<=\.)\s/)[0]} ${see}`;
  }
}

/**
 * A flag's value, else its environment variable's, else its default ('' when none). Not for secrets:
 * those go through protocol/secrets.ts resolveSecret (the env var holds the value, ENV_FILE a path).
 */
export function optionValue(spec: CommandSpec, line: CommandLine, env: Readonly<Record<string, string | undefined>>, name: string): string {
  const o = spec.options.find((x) => x.name === name);
  if (!o) throw new Error(`${spec.name}: no option --${name} in its table`);
  const flag = line.flags.get(name);
  if (flag !== undefined) return flag === true ? '1' : flag;
  const fromEnv = o.env ? env[o.env] : undefined;
  if (fromEnv !== undefined) return fromEnv;
  return o.default ?? '';
}

/**
 * A secret option (`--X-file`): the flag's file, else its environment variable's value, else the file
 * that variable + `_FILE` names (protocol/secrets.ts); '' when none is set. A bad one (unreadable,
 * empty, shorter than `minLength`, MIN_SECRET_LENGTH by default) is a UsageError.
 */
export function optionSecret(spec: CommandSpec, line: CommandLine, env: Readonly<Record<string, string | undefined>>, name: string, minLength?: number): string {
  const o = spec.options.find((x) => x.name === name);
  if (!o) throw new Error(`${spec.name}: no option --${name} in its table`);
  const flag = line.flags.get(name);
  try {
    return resolveSecret(typeof flag === 'string' ? flag : undefined, o.env ?? '', env, `--${name}`, minLength);
  } catch (e) {
    if (e instanceof SecretError) throw new UsageError(e.message);
    throw e;
  }
}

/** A switch: given as a flag, or its environment variable is 1/true/yes/on. */
export function optionSwitch(spec: CommandSpec, line: CommandLine, env: Readonly<Record<string, string | undefined>>, name: string): boolean {
  if (line.flags.get(name) === true) return true;
  const o = spec.options.find((x) => x.name === name);
  const v = o?.env ? env[o.env] : undefined;
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

/** The one way a command stops on a bad command line: `<command>: <message>` on stderr, exit 2. */
export function exitUsage(command: string, message: string): never {
  process.stderr.write(`${command}: ${message}\n`);
  process.exit(2);
}

/** For a command's entry point: the parsed line; --help printed (exit 0), a bad line refused (exit 2). */
export function commandLineOrExit(spec: CommandSpec, argv: readonly string[], allowPositionals = false): CommandLine {
  let line: CommandLine;
  try {
    line = parseCommandLine(spec, argv, allowPositionals);
  } catch (e) {
    if (e instanceof UsageError) exitUsage(spec.name, e.message);
    throw e;
  }
  if (line.help) {
    process.stdout.write(renderHelp(spec));
    process.exit(0);
  }
  return line;
}
