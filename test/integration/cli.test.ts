// Every command of the repository, as a real process: `--help` has the one layout protocol/cli.ts
// renders (usage, about, the options table of flag / env / default / help), and a bad command line is
// refused with one line on stderr and exit status 2.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { entryCommand } from './cluster.js';
import { OPTIONS_HEADING, parseCommandLine, renderHelp, UsageError, type CommandSpec } from '../../protocol/cli.js';

interface Command {
  /** What --help's usage line starts with. */
  usage: string;
  entry: string;
  /** What a one-line error starts with. */
  prefix: string;
  /** Flags its --help must list (besides --help). */
  flags: string[];
  /** A flag that takes a value, given last without one. */
  valued: string;
}

const COMMANDS: Command[] = [
  { usage: 'raftd', entry: 'daemon/main.ts', prefix: 'raftd: ', flags: ['--id', '--peers', '--api-token-file', '--insecure'], valued: '--id' },
  { usage: 'rafthouse', entry: 'clickhouse-adapter/main.ts', prefix: 'rafthouse: ', flags: ['--app-listen', '--raftd-url', '--app-secret-file', '--insecure'], valued: '--engine' },
  { usage: 'raftd-kv-adapter', entry: 'adapters/kv/main.ts', prefix: 'raftd-kv-adapter: ', flags: ['--listen', '--data-dir', '--fsync', '--h2c', '--app-secret-file', '--insecure'], valued: '--listen' },
  { usage: 'kv-front', entry: 'adapters/kv/front.ts', prefix: 'kv-front: ', flags: ['--listen', '--raftd', '--group', '--api-token-file'], valued: '--raftd' },
  { usage: 'raftd-conformance', entry: 'adapters/conformance/main.ts', prefix: 'raftd-conformance: ', flags: ['--app-url', '--app-secret-file', '--restart-cmd', '--group', '--no-kv', '--timeout-ms'], valued: '--app-url' },
  { usage: 'raftctl', entry: 'adapters/raftctl/main.ts', prefix: 'raftctl: ', flags: ['--endpoints', '--token-file', '--admin-token-file', '--group', '--json'], valued: '--group' },
  { usage: 'rafthouse-adapter', entry: 'clickhouse-adapter/statemachine/main.ts', prefix: 'rafthouse-adapter: ', flags: ['--listen', '--engine', '--password-file', '--app-secret-file', '--insecure'], valued: '--listen' },
  { usage: 'raftd-ch-checksum', entry: 'clickhouse-adapter/statemachine/checksum-main.ts', prefix: 'raftd-ch-checksum: ', flags: ['--engine', '--data-dir', '--password-file', '--json'], valued: '--data-dir' },
  // npm start runs this file after a build; the test runs it directly (npm would add its own lines).
  { usage: 'npm start --', entry: 'scripts/start.ts', prefix: 'error: ', flags: ['--nodes', '--groups', '--data-dir', '--base-port', '--clickhouse-url'], valued: '--nodes' },
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(entry: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    // A clean environment: no RAFTD_* or KV_* variable of the caller changes what the command does.
    const child = spawn(process.execPath, [...entryCommand(entry), ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The flags of a --help text, checked line by line against the shared layout. */
function checkHelpShape(text: string, usage: string): string[] {
  const lines = text.replace(/\n$/, '').split('\n');
  expect(lines[0], 'first line').to.match(new RegExp(`^Usage: ${usage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `));
  const heading = lines.indexOf(OPTIONS_HEADING);
  expect(heading, 'the options heading').to.be.greaterThan(0);
  expect(lines.lastIndexOf(OPTIONS_HEADING)).to.equal(heading);
  expect(lines[heading - 1], 'a blank line before the options').to.equal('');
  const flags: string[] = [];
  let i = heading + 1;
  while (i < lines.length && lines[i] !== '') {
    // "  --flag <value>   ENV   default D", then the help aligned under the environment column.
    const m = /^ {2}(--[a-z0-9-]+)(?: <[^>\s]+>)? +(\S+) +default \S.*$/.exec(lines[i]!);
    expect(m, `option line: ${JSON.stringify(lines[i])}`).to.not.equal(null);
    expect(lines[i]!.slice(37).startsWith(`${m![2]!} `), `environment column of ${m![1]}`).to.equal(true);
    expect(lines[i + 1], `help line of ${m![1]}`).to.match(/^ {37}\S/);
    flags.push(m![1]!);
    i += 2;
  }
  expect(flags.length, 'options listed').to.be.greaterThan(1);
  expect(flags[flags.length - 1]).to.equal('--help');
  return flags;
}

describe('command lines: one --help layout, one-line usage errors (every command, real processes)', function () {
  this.timeout(120_000);

  for (const c of COMMANDS) {
    it(`${c.usage}: --help has the shared layout and lists its options`, async () => {
      const r = await run(c.entry, ['--help']);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.equal('');
      const flags = checkHelpShape(r.stdout, c.usage);
      for (const f of c.flags) expect(flags, `${c.usage} --help`).to.include(f);
      expect(new Set(flags).size, 'no flag twice').to.equal(flags.length);
    });

    it(`${c.usage}: an unknown flag and a missing value are one line on stderr, exit 2`, async () => {
      const unknown = await run(c.entry, ['--no-such-flag']);
      expect(unknown.code, unknown.stderr).to.equal(2);
      expect(unknown.stdout).to.equal('');
      expect(unknown.stderr.split('\n').filter((l) => l !== ''), unknown.stderr).to.have.length(1);
      expect(unknown.stderr).to.equal(`${c.prefix}unknown option --no-such-flag (see ${c.usage} --help)\n`);
      const missing = await run(c.entry, [c.valued]);
      expect(missing.code, missing.stderr).to.equal(2);
      expect(missing.stderr).to.equal(`${c.prefix}${c.valued} needs a value (see ${c.usage} --help)\n`);
    });
  }

  it('a secret given as a flag value is refused, naming the file flag (raftd, rafthouse, raftctl, the adapter process)', async () => {
    const raftd = await run('daemon/main.ts', ['--api-token', 'a-token-on-the-command-line']);
    expect(raftd.code).to.equal(2);
    expect(raftd.stderr).to.equal('raftd: --api-token: secrets are not taken on the command line (every local user sees it in ps): use --api-token-file PATH or RAFTD_API_TOKEN\n');
    const rafthouse = await run('clickhouse-adapter/main.ts', ['--app-secret=x']);
    expect(rafthouse.code).to.equal(2);
    expect(rafthouse.stderr).to.match(/^rafthouse: --app-secret: secrets are not taken on the command line .*--app-secret-file PATH or RAFTD_APP_SECRET\n$/);
    const raftctl = await run('adapters/raftctl/main.ts', ['--admin-token', 'x', 'status']);
    expect(raftctl.code).to.equal(2);
    expect(raftctl.stderr).to.match(/^raftctl: --admin-token: secrets are not taken on the command line/);
    const password = await run('clickhouse-adapter/statemachine/main.ts', ['--engine', 'server', '--password', 'p']);
    expect(password.code).to.equal(2);
    expect(password.stderr).to.match(/^rafthouse-adapter: --password: secrets are not taken on the command line .*--password-file PATH or CLICKHOUSE_PASSWORD\n$/);
  });

  it('a switch given a value is one line, exit 2', async () => {
    const r = await run('adapters/kv/main.ts', ['--insecure=1']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal('raftd-kv-adapter: --insecure takes no value (see raftd-kv-adapter --help)\n');
  });
});

describe('protocol/cli.ts', () => {
  const spec: CommandSpec = {
    name: 'demo',
    usage: ['demo [options]'],
    about: ['A demo.'],
    options: [
      { name: 'port', value: 'int', env: 'DEMO_PORT', default: '80', help: 'the port' },
      { name: 'verbose', value: null, env: 'DEMO_VERBOSE', help: 'say more' },
      { name: 'key-file', value: 'file', env: 'DEMO_KEY', secret: true, help: 'the key' },
    ],
  };

  it('renders the table: flag, environment variable, default, help', () => {
    const text = renderHelp(spec);
    expect(text).to.contain('  --port <int>                       DEMO_PORT                      default 80\n');
    expect(text).to.contain('  --verbose                          DEMO_VERBOSE                   default off\n');
    expect(text).to.contain('  --help                             -                              default off\n');
    expect(checkHelpShape(text, 'demo')).to.deep.equal(['--port', '--verbose', '--key-file', '--help']);
  });

  it('parses with parseArgs and turns its errors into one line', () => {
    const line = parseCommandLine(spec, ['--port=81', '--verbose']);
    expect([...line.flags]).to.deep.equal([['port', '81'], ['verbose', true]]);
    expect(parseCommandLine(spec, ['-h']).help).to.equal(true);
    expect(() => parseCommandLine(spec, ['--key', 'k'])).to.throw(UsageError, /^--key: secrets are not taken on the command line .* use --key-file PATH or DEMO_KEY$/);
    expect(() => parseCommandLine(spec, ['--port'])).to.throw(UsageError, /^--port needs a value \(see demo --help\)$/);
    expect(() => parseCommandLine(spec, ['x'])).to.throw(UsageError, /^unexpected argument "x"/);
    expect(parseCommandLine(spec, ['x'], true).positionals).to.deep.equal(['x']);
  });
});
