#!/usr/bin/env node
// raftctl: the operator's command line for a raftd cluster (etcdctl's role). Give it every endpoint;
// it finds whoever must answer (a group's leader, the meta group's leader) through the SDK client,
// which follows NOT_LEADER hints and moves past endpoints that are down.
//
// Exit codes: 0 done; 1 raftd refused or failed the request (its code is printed); 2 bad usage;
// 3 no endpoint answered.

import { RaftdClient, RaftdError, type PlacementView } from '../sdk/client.js';
import { ADMIN_TOKEN_ENV, API_TOKEN_ENV, resolveSecret, SecretError } from '../../protocol/secrets.js';
import { optionValue, parseCommandLine, renderHelp, UsageError as CliUsageError, type CliOption, type CommandLine, type CommandSpec } from '../../protocol/cli.js';

const COMMAND_OPTIONS: CliOption[] = [
  { name: 'endpoints', value: 'URL[,URL]', env: 'RAFTCTL_ENDPOINTS', default: 'http://127.0.0.1:8001', help: 'raftd client API addresses, comma-separated (host:port or http://host:port)' },
  { name: 'token-file', value: 'file', env: API_TOKEN_ENV, secret: true, help: `file with the client API token (or ${API_TOKEN_ENV} / ${API_TOKEN_ENV}_FILE)` },
  { name: 'admin-token-file', value: 'file', env: ADMIN_TOKEN_ENV, secret: true, help: `file with the admin token, for membership, groups, nodes, transfers (or ${ADMIN_TOKEN_ENV} / ${ADMIN_TOKEN_ENV}_FILE)` },
  { name: 'group', value: 'int', env: 'RAFTCTL_GROUP', default: '1', help: 'the group a command acts on (0 = the meta group)' },
  { name: 'timeout-ms', value: 'int', env: 'RAFTCTL_TIMEOUT_MS', default: '10000', help: 'deadline of one request' },
  { name: 'json', value: null, help: 'print JSON instead of text' },
  { name: 'force', value: null, help: 'remove-member: allow leaving fewer voters than survive one failure; remove-node: even while in a group' },
  { name: 'learner', value: null, help: 'add-member: as a learner (non-voting)' },
  { name: 'wait', value: null, help: 'rebalance, decommission: wait until no move is running and nothing is left to plan' },
];

const COMMANDS: Array<[string, string]> = [
  ['status', 'every endpoint: reachable or not, its groups, their leaders and terms'],
  ['leader', 'the leader of --group (0: the meta group)'],
  ['groups', 'every group with its members'],
  ['members', 'voters and learners of --group'],
  ['nodes', 'the registered nodes'],
  ['remove-node NODE', 'unregister NODE from the cluster (admin; refused while it is in a group unless --force)'],
  ['add-member NODE', 'add NODE to --group (admin; --learner)'],
  ['remove-member NODE', 'remove NODE from --group (admin; --force)'],
  ['transfer NODE', 'move --group\'s leadership to NODE (admin)'],
  ['placement', 'where every group is placed, groups per node, moves running'],
  ['rebalance', 'move replicas until groups per node are even (admin; --wait)'],
  ['decommission NODE', 'move every replica off NODE (admin; --wait)'],
  ['recommission NODE', 'take a decommissioning NODE back into placement (admin)'],
  ['create-group [NODE...]', 'create --group on NODEs (default: every meta voter) (admin)'],
  ['delete-group', 'delete --group (admin)'],
  ['get KEY', 'KV adapter: linearizable get of KEY in --group'],
  ['put KEY VALUE', 'KV adapter: set KEY to VALUE in --group'],
  ['sql QUERY', 'RaftHouse: run QUERY on a consistent endpoint (--endpoints are then RaftHouse\'s)'],
];

export const RAFTCTL_COMMAND: CommandSpec = {
  name: 'raftctl',
  usage: ['raftctl [options] <command> [args]'],
  about: ['raftctl: the operator\'s command line for a raftd cluster.', '', 'Commands:', ...COMMANDS.map(([c, h]) => `  ${c.padEnd(24)} ${h}`)],
  options: COMMAND_OPTIONS,
  footer: ['Exit codes: 0 done, 1 refused or failed (raftd\'s code printed), 2 usage, 3 no endpoint answered.'],
};

export const HELP = renderHelp(RAFTCTL_COMMAND);

class UsageError extends Error {}

interface Ctx {
  endpoints: string[];
  token: string;
  adminToken: string;
  group: number;
  timeoutMs: number;
  json: boolean;
  force: boolean;
  learner: boolean;
  wait: boolean;
}

function int(name: string, raw: string, min = 0): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min) throw new UsageError(`${name} must be >= ${min}`);
  return n;
}

function client(ctx: Ctx, admin = false, urls = ctx.endpoints): RaftdClient {
  const token = admin && ctx.adminToken ? ctx.adminToken : ctx.token;
  return new RaftdClient({ url: urls, ...(token ? { token } : {}), timeoutMs: ctx.timeoutMs, retryMs: ctx.timeoutMs });
}

type GroupStatus = { group: number; role: string; leader: number; term: number; commit: number; voters: number[]; learners: number[] };
type NodeStatus = { node: number; httpAddr: string; groups: GroupStatus[] };

async function endpointStatus(ctx: Ctx, url: string): Promise<NodeStatus | { error: string }> {
  const c = client(ctx, false, [url]);
  try {
    return (await c.status()) as unknown as NodeStatus;
  } catch (e) {
    return { error: e instanceof RaftdError ? `${e.code}: ${e.message}` : (e as Error).message };
  } finally {
    c.close();
  }
}

async function run(cmd: string, args: string[], ctx: Ctx): Promise<unknown> {
  const need = (n: number, what: string) => {
    if (args.length !== n) throw new UsageError(`${cmd} takes ${what}`);
  };
  const withClient = async <T>(admin: boolean, f: (c: RaftdClient) => Promise<T>): Promise<T> => {
    const c = client(ctx, admin);
    try {
      return await f(c);
    } finally {
      c.close();
    }
  };
  switch (cmd) {
    case 'status': {
      need(0, 'no arguments');
      const all = await Promise.all(ctx.endpoints.map(async (url) => ({ endpoint: url, ...(await endpointStatus(ctx, url)) })));
      if (all.every((s) => 'error' in s)) throw new RaftdError('UNREACHABLE', `no endpoint answered: ${all.map((s) => `${s.endpoint} (${(s as { error: string }).error})`).join(', ')}`, 0);
      return all;
    }
    case 'leader': {
      need(0, 'no arguments (the group is --group)');
      // Each reachable endpoint's view; the answer is the leader of the highest term seen.
      const views = (await Promise.all(ctx.endpoints.map((url) => endpointStatus(ctx, url)))).filter((s): s is NodeStatus => !('error' in s));
      if (views.length === 0) throw new RaftdError('UNREACHABLE', `no endpoint answered (${ctx.endpoints.join(', ')})`, 0);
      let best: GroupStatus | undefined;
      for (const v of views) {
        const g = v.groups.find((x) => x.group === ctx.group);
        if (g && g.leader > 0 && (!best || g.term > best.term)) best = g;
      }
      if (!best) throw new RaftdError('NO_LEADER', `group ${ctx.group}: no reachable node knows a leader`, 503);
      const leaderNode = views.find((v) => v.node === best!.leader);
      return { group: ctx.group, leader: best.leader, term: best.term, ...(leaderNode ? { httpAddr: leaderNode.httpAddr } : {}) };
    }
    case 'groups':
      need(0, 'no arguments');
      return withClient(false, (c) => c.listGroups());
    case 'members': {
      need(0, 'no arguments (the group is --group)');
      const views = (await Promise.all(ctx.endpoints.map((url) => endpointStatus(ctx, url)))).filter((s): s is NodeStatus => !('error' in s));
      if (views.length === 0) throw new RaftdError('UNREACHABLE', `no endpoint answered (${ctx.endpoints.join(', ')})`, 0);
      const g = views.map((v) => v.groups.find((x) => x.group === ctx.group)).filter((x): x is GroupStatus => !!x).sort((a, b) => b.term - a.term)[0];
      if (!g) throw new RaftdError('GROUP_NOT_FOUND', `group ${ctx.group} is on no reachable node`, 404);
      return { group: ctx.group, voters: g.voters, learners: g.learners, leader: g.leader };
    }
    case 'nodes':
      need(0, 'no arguments');
      return withClient(false, (c) => c.listNodes());
    case 'remove-node':
      need(1, 'NODE');
      await withClient(true, (c) => c.removeNode(int('NODE', args[0]!, 1), ctx.force));
      return { node: Number(args[0]), removed: true };
    case 'add-member':
      need(1, 'NODE');
      await withClient(true, (c) => c.addMember(ctx.group, int('NODE', args[0]!, 1), ctx.learner ? 'learner' : 'voter'));
      return { group: ctx.group, node: Number(args[0]), added: ctx.learner ? 'learner' : 'voter' };
    case 'remove-member':
      need(1, 'NODE');
      await withClient(true, (c) => c.removeMember(ctx.group, int('NODE', args[0]!, 1), ctx.force));
      return { group: ctx.group, node: Number(args[0]), removed: true };
    case 'transfer':
      need(1, 'NODE');
      await withClient(true, (c) => c.transferLeadership(ctx.group, int('NODE', args[0]!, 1)));
      return { group: ctx.group, leader: Number(args[0]) };
    case 'placement': {
      need(0, 'no arguments');
      const view = await withClient(false, (c) => c.placement());
      return ctx.json ? view : placementText(view);
    }
    case 'rebalance':
    case 'decommission':
    case 'recommission': {
      need(cmd === 'rebalance' ? 0 : 1, cmd === 'rebalance' ? 'no arguments' : 'NODE');
      const started = await withClient(true, (c) => (cmd === 'rebalance' ? c.rebalance() : c.decommission(int('NODE', args[0]!, 1), cmd === 'recommission')));
      if (!ctx.wait || cmd === 'recommission') return started;
      return waitBalanced(ctx, withClient);
    }
    case 'create-group': {
      const members = args.map((a) => int('NODE', a, 1));
      await withClient(true, (c) => c.createGroup(ctx.group, members.length ? members : undefined));
      return { group: ctx.group, created: true };
    }
    case 'delete-group':
      need(0, 'no arguments (the group is --group)');
      await withClient(true, (c) => c.deleteGroup(ctx.group));
      return { group: ctx.group, deleted: true };
    case 'get':
      need(1, 'KEY');
      return withClient(false, (c) => c.read(ctx.group, { op: 'get', key: args[0]! }));
    case 'put':
      need(2, 'KEY VALUE');
      return (await withClient(false, (c) => c.proposeJson(ctx.group, { op: 'set', key: args[0]!, value: args[1]! }))).result;
    case 'sql': {
      need(1, 'QUERY');
      return sql(ctx, args[0]!);
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  }
}

/** RaftHouse speaks ClickHouse's HTTP interface: the first endpoint that answers runs the query. */
async function sql(ctx: Ctx, query: string): Promise<string> {
  let last = '';
  for (const url of ctx.endpoints) {
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', body: query, signal: AbortSignal.timeout(ctx.timeoutMs) });
    } catch (e) {
      last = `${url}: ${(e as Error).message}`;
      continue;
    }
    const text = await res.text();
    if (!res.ok) throw new RaftdError(`CLICKHOUSE_${res.headers.get('x-clickhouse-exception-code') ?? res.status}`, text.trim(), res.status);
    return text;
  }
  throw new RaftdError('UNREACHABLE', `no endpoint answered: ${last}`, 0);
}

/** Polls the placement until nothing is planned or running (a pass ends when the plan is empty). */
async function waitBalanced(ctx: Ctx, withClient: <T>(admin: boolean, f: (c: RaftdClient) => Promise<T>) => Promise<T>): Promise<unknown> {
  // Quiet for three polls in a row: between one move's end and the next one's start the meta group
  // may briefly record none.
  for (let quiet = 0; ; ) {
    const view = await withClient(false, (c) => c.placement());
    const busy = view.groups.some((g) => g.move) || view.rebalance.running.length > 0;
    // `planning` is the answering node's own rebalancer; only the meta leader's counts.
    quiet = busy || (view.rebalance.leading && view.rebalance.planning) ? 0 : quiet + 1;
    if (quiet >= 3) return ctx.json ? view : placementText(view);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function placementText(view: PlacementView): string {
  const lines = [`replication factor ${view.replicationFactor === 0 ? 'every node' : view.replicationFactor} (in use: ${view.effectiveReplicationFactor})`];
  for (const n of view.nodes) lines.push(`node ${n.id}${n.zone ? ` zone ${n.zone}` : ''} ${n.state}${n.alive ? '' : ' (not heard from)'}: ${n.groups} groups`);
  for (const g of view.groups) {
    const move = g.move ? `  moving ${g.move.from ?? '-'} -> ${g.move.to ?? '-'} (${g.move.reason})` : '';
    lines.push(`group ${g.group}: ${g.members.join(',')}  preferred leader ${g.preferredLeader ?? '-'}${move}`);
  }
  const r = view.rebalance;
  lines.push(`rebalancing: ${r.running.length} moves running, ${r.movesDone} done, ${r.movesAborted} given up (as seen by this node)${r.lastError ? `; last error: ${r.lastError}` : ''}`);
  return lines.join('\n');
}

function print(result: unknown, json: boolean): void {
  if (typeof result === 'string' && !json) process.stdout.write(result.endsWith('\n') || result === '' ? result : result + '\n');
  else if (json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let line: CommandLine;
  try {
    line = parseCommandLine(RAFTCTL_COMMAND, argv, true);
  } catch (e) {
    if (!(e instanceof CliUsageError)) throw e;
    process.stderr.write(`raftctl: ${e.message}\n`);
    return 2;
  }
  if (line.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (line.positionals.length === 0) {
    process.stderr.write('raftctl: no command given (see raftctl --help)\n');
    return 2;
  }
  const get = (name: string): string => optionValue(RAFTCTL_COMMAND, line, env, name);
  const file = (name: string): string | undefined => {
    const v = line.flags.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  let ctx: Ctx;
  try {
    ctx = {
      endpoints: get('endpoints').split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => (/^https?:\/\//.test(s) ? s : `http://${s}`)),
      token: resolveSecret(file('token-file'), API_TOKEN_ENV, env, '--token-file'),
      adminToken: resolveSecret(file('admin-token-file'), ADMIN_TOKEN_ENV, env, '--admin-token-file'),
      group: int('--group', get('group')),
      timeoutMs: int('--timeout-ms', get('timeout-ms'), 1),
      json: line.flags.get('json') === true,
      force: line.flags.get('force') === true,
      learner: line.flags.get('learner') === true,
      wait: line.flags.get('wait') === true,
    };
    if (ctx.endpoints.length === 0) throw new UsageError('--endpoints is empty');
  } catch (e) {
    if (e instanceof UsageError || e instanceof SecretError) {
      process.stderr.write(`raftctl: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const [cmd, ...args] = line.positionals;
  try {
    print(await run(cmd!, args, ctx), ctx.json);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`raftctl: ${e.message} (see raftctl --help)\n`);
      return 2;
    }
    if (e instanceof RaftdError) {
      if (ctx.json) process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message, ...(e.leader ? { leader: e.leader } : {}) } }) + '\n');
      process.stderr.write(`raftctl: ${e.code}: ${e.message}\n`);
      return e.code === 'UNREACHABLE' ? 3 : 1;
    }
    process.stderr.write(`raftctl: ${(e as Error).message}\n`);
    return 1;
  }
}

// Run when executed directly (not when a test imports main()).
if (process.argv[1] && /raftctl[\\/]main\.(js|ts)$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
    process.stderr.write(`raftctl: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
