// raftd's client HTTP API (fastify). Every node answers; writes and lease reads that need the
// leader are forwarded to it (or refused with NOT_LEADER and its address when the client asks
// not to be forwarded). Linearizable reads are served locally through ReadIndex.

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Role } from '../raft/types.js';
import { RaftdError } from '../errors.js';
import { META_GROUP } from '../host/meta.js';
import type { Consistency, Host } from '../host/host.js';
import type { EntryOutcome } from '../host/group.js';
import { RaftdMetrics } from './metrics.js';
import { ForwardError, LeaderForwarder, type ForwardAnswer } from './forward.js';
import { FORWARDED_HEADER, LEADER_HEADER, NO_FORWARD_HEADER } from '../../protocol/client-api.js';
import { BINARY_BATCH_TYPE, decodeBatchRequest, encodeBatchResponse } from '../../protocol/batch-codec.js';
import { registerFaultRoutes, type FaultLayer } from '../test-hooks.js';
import { access, makeAuthorizer } from './auth.js';
import {
  AJV_OPTIONS, addMemberBody, consistencyQuery, createGroupBody, forceQuery, groupParams, groupQuery, memberParams, nodeParams,
  registerNodeBody, schemaErrorMessage, statusCodeParams, transferBody, type ForceValue,
} from './schemas.js';
import { changeMemberOnLeader } from '../placement/host-port.js';
import { MemberRelay } from './member-relay.js';
import { registerPlacementRoutes, type PlacementApiOptions } from './placement-routes.js';

export interface ApiOptions {
  host: Host;
  httpAddr: string;
  /** Client API token ('' only under --insecure: client routes open). */
  apiToken: string;
  /** Admin token, valid on every route ('' only under --insecure: admin routes open). */
  adminToken: string;
  /** Upper bound of a request body (an entry, a batch). */
  bodyLimit: number;
  /** How long a request waits for a leader to be elected before NO_LEADER. */
  leaderWaitMs: number;
  requestTimeoutMs: number;
  /** The host's tick, to report how long ago a peer was heard from. */
  tickMs: number;
  logger: Logger;
  /** Test hook 'faults' only (RAFTD_TEST_HOOKS, test-hooks.ts): exposes /debug/faults. */
  faults?: FaultLayer;
  /** placement (issue 21): rebalancing settings; absent: manual, defaults. */
  placement?: PlacementApiOptions;
}

export const API_DEFAULTS = { bodyLimit: 64 * 1024 * 1024, leaderWaitMs: 3000 } as const;

function parseJson(body: unknown): unknown {
  const buf = body as Buffer | undefined;
  if (!buf || buf.length === 0) return undefined;
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new RaftdError('BAD_REQUEST', `request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** `force` as the schemas admit it (schemas.ts): absent or false-like is false. */
function isForce(v: ForceValue | undefined): boolean {
  return v === true || v === 'true' || v === '1' || v === '';
}

// Request shapes the routes declare (schemas.ts validates them before the handler runs).
type GroupRoute = { Params: { group: string } };
type ConsistencyRoute = GroupRoute & { Querystring: { consistency?: Consistency } };
type ForceQuery = { Querystring: { force?: ForceValue } };
type GroupQuery = { Querystring: { group?: string } };

function outcomeBody(o: EntryOutcome): Record<string, unknown> {
  if (o.ok) return o.skipped ? { index: o.index, result: null, skipped: true } : { index: o.index, result: o.result ?? null };
  return { index: o.index, error: { code: o.error?.code ?? 'APP_ERROR', message: o.error?.message ?? 'the application refused the entry' } };
}

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const { host } = opts;
  const app = Fastify({ logger: false, bodyLimit: opts.bodyLimit, forceCloseConnections: true, ajv: { customOptions: AJV_OPTIONS }, schemaErrorFormatter: schemaErrorMessage });
  // Follower -> leader forwarding: keep-alive node:http; proposals grouped into binary batches (forward.ts).
  const forwarder = new LeaderForwarder();
  // placement (issue 21): requests for groups placed on other nodes go to one of their members.
  const relay = new MemberRelay(host);
  app.addHook('onClose', async () => forwarder.close());
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  // Every body arrives as bytes (a proposal is opaque). A route whose body is JSON parses it before
  // its schema checks it, and keeps the bytes for forwarding to the leader.
  const rawBodies = new WeakMap<FastifyRequest, Buffer>();
  const jsonBody = {
    preValidation: async (req: FastifyRequest): Promise<void> => {
      const raw = req.body as Buffer | undefined;
      if (raw) rawBodies.set(req, raw);
      req.body = parseJson(raw);
    },
  };
  /** What a leader or member gets: the bytes the client sent (a JSON route has parsed its body by now). */
  function bytesToForward(req: FastifyRequest): Buffer | undefined {
    if (req.method === 'GET' || req.method === 'DELETE') return undefined;
    return rawBodies.get(req) ?? (Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
  }

  // Every route needs a token (auth.ts), loopback included; only the load-balancer probes are open.
  const authorize = makeAuthorizer({ apiToken: opts.apiToken, adminToken: opts.adminToken });
  app.addHook('onRequest', async (req) => authorize(req));

  app.setErrorHandler((err: unknown, _req, reply) => {
    let e: RaftdError;
    if (err instanceof RaftdError) e = err;
    else {
      const fe = err as { statusCode?: number; code?: string; message?: string };
      if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new RaftdError('PAYLOAD_TOO_LARGE', `request body exceeds ${opts.bodyLimit} bytes`);
      else if (fe.statusCode && fe.statusCode < 500) e = new RaftdError('BAD_REQUEST', fe.message ?? 'bad request');
      else {
        opts.logger.error({ err }, 'unexpected API error');
        e = new RaftdError('INTERNAL', fe.message ?? 'internal error');
      }
    }
    host.metrics.countError(e.code);
    void reply.code(e.status).send(e.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new RaftdError('NOT_FOUND', `no route ${req.method} ${req.url}`).toJSON());
  });

  /** Resolves the group's leader, waiting briefly for an election. */
  async function leaderOf(group: number): Promise<{ id: number; httpAddr: string }> {
    const deadline = Date.now() + opts.leaderWaitMs;
    for (;;) {
      host.getGroup(group);
      const hint = host.leaderHint(group);
      if (hint) return hint;
      // Waiting is for an election in progress; past an election timeout without a word from any
      // leader this node is cut off, and the answer is definite now: nothing was forwarded or
      // proposed, so NO_LEADER (retry, on another node) is true.
      if (host.leaderSilent(group)) throw new RaftdError('NO_LEADER', `group ${group}: node ${host.nodeId} has not heard a leader for an election timeout; retry on another node`);
      if (Date.now() >= deadline) throw new RaftdError('NO_LEADER', `group ${group} has no leader right now; retry`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * A forwarding failure as the client's error. Refused: the request never reached that leader
   * (retryable, NO_LEADER). Anything else may have happened after the leader took it: TIMEOUT, the
   * outcome is unknown.
   */
  function forwardFailure(e: unknown, leader: { id: number; httpAddr: string }): RaftdError {
    const refused = e instanceof ForwardError && e.code === 'REFUSED';
    return new RaftdError(refused ? 'NO_LEADER' : 'TIMEOUT', `forwarding to leader node ${leader.id} at ${leader.httpAddr} failed (${(e as Error).message}); ${refused ? 'retry' : 'the outcome is unknown'}`);
  }

  /**
   * Rejects (FAILED: the outcome is unknown) once this node no longer takes `leaderId` for the
   * group's leader: another node won an election, or that leader fell silent (paused, cut off,
   * dead). A request forwarded to it would otherwise be held until the forward's deadline while
   * the new leader serves everyone else (issue 18: a follower held forwarded writes for the whole
   * of a leader's SIGSTOP). Checked every tick; stop() when the forward settled.
   */
  function leaderGone(group: number, leaderId: number): { abandoned: Promise<never>; stop(): void } {
    let timer: NodeJS.Timeout | undefined;
    const abandoned = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        if (host.leaderHint(group)?.id === leaderId) return;
        clearInterval(timer);
        reject(new ForwardError('FAILED', `node ${leaderId} is no longer the leader node ${host.nodeId} knows (a new leader, or silent)`));
      }, opts.tickMs);
    });
    abandoned.catch(() => undefined);
    return { abandoned, stop: () => clearInterval(timer) };
  }

  /**
   * Runs `local` if this node leads the group; otherwise forwards the request to the leader
   * (once: a forwarded request is never forwarded again) or answers NOT_LEADER.
   */
  async function onLeader(req: FastifyRequest, reply: FastifyReply, group: number, local: () => Promise<unknown>, proposal?: Buffer): Promise<unknown> {
    if (relay.isRemote(group)) return toMember(req, reply, group, proposal);
    const deadline = Date.now() + opts.leaderWaitMs;
    for (;;) {
      const leader = await leaderOf(group);
      if (leader.id === host.nodeId) return local();
      if (req.headers[NO_FORWARD_HEADER] || req.headers[FORWARDED_HEADER]) {
        throw new RaftdError('NOT_LEADER', `node ${host.nodeId} is not the leader of group ${group}; node ${leader.id} is`, leader);
      }
      const headers: Record<string, string> = { [FORWARDED_HEADER]: '1' };
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      const timeoutMs = opts.requestTimeoutMs + 1000;
      let answer: ForwardAnswer;
      host.metrics.forwarded++;
      const gone = leaderGone(group, leader.id);
      try {
        let sent: Promise<ForwardAnswer>;
        if (proposal) sent = forwarder.propose(leader.httpAddr, group, proposal, headers, timeoutMs);
        else {
          if (req.headers['content-type']) headers['content-type'] = String(req.headers['content-type']);
          const body = bytesToForward(req);
          sent = forwarder.request(leader.httpAddr, req.method, req.url, headers, body, timeoutMs);
        }
        sent.catch(() => undefined); // its failure after an abandon is nobody's to handle
        answer = await Promise.race([sent, gone.abandoned]);
      } catch (e) {
        // Refused: the request never reached the old leader, so it is safe to try the next one.
        if (e instanceof ForwardError && e.code === 'REFUSED' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        throw forwardFailure(e, leader);
      } finally {
        gone.stop();
      }
      void reply.code(answer.status).header('content-type', answer.contentType).header(LEADER_HEADER, leader.httpAddr);
      return answer.body;
    }
  }

  /**
   * placement (issue 21): the group has no replica here; a member serves the request (its leader
   * for writes). The answer is relayed as is, with the member's address in LEADER_HEADER.
   */
  async function toMember(req: FastifyRequest, reply: FastifyReply, group: number, proposal?: Buffer): Promise<unknown> {
    if (req.headers[FORWARDED_HEADER]) throw new RaftdError('GROUP_NOT_FOUND', `group ${group} has no replica on node ${host.nodeId}`);
    if (req.headers[NO_FORWARD_HEADER]) throw new RaftdError('NOT_LEADER', `group ${group} has no replica on node ${host.nodeId}`);
    const headers: Record<string, string> = { [FORWARDED_HEADER]: '1' };
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    if (req.headers['content-type']) headers['content-type'] = String(req.headers['content-type']);
    const timeoutMs = opts.requestTimeoutMs + 1000;
    host.metrics.forwarded++;
    const body = bytesToForward(req);
    const answer = await relay.relay(group, Date.now() + opts.leaderWaitMs, (addr) =>
      proposal ? forwarder.propose(addr, group, proposal, headers, timeoutMs) : forwarder.request(addr, req.method, req.url, headers, body, timeoutMs),
    );
    void reply.code(answer.status).header('content-type', answer.contentType).header(LEADER_HEADER, answer.via);
    return answer.body;
  }

  app.post<GroupRoute>('/v1/groups/:group/propose', { schema: { params: groupParams } }, async (req, reply) => {
    const group = Number(req.params.group);
    if (group === META_GROUP) throw new RaftdError('BAD_REQUEST', 'group 0 is raftd\'s meta group; use the /v1/groups and /v1/nodes endpoints');
    const data = (req.body as Buffer | undefined) ?? Buffer.alloc(0);
    if (data.length === 0) throw new RaftdError('BAD_REQUEST', 'an entry needs a non-empty body');
    return onLeader(req, reply, group, async () => {
      const t0 = performance.now();
      const [outcome] = await host.proposeAll(group, [new Uint8Array(data.buffer, data.byteOffset, data.length)]);
      if (outcome instanceof RaftdError) throw outcome;
      host.metrics.proposeMs.observe(performance.now() - t0);
      if (!outcome.ok) {
        void reply.code(422);
        return { index: outcome.index, error: outcome.error ?? { code: 'APP_ERROR', message: 'the application refused the entry' } };
      }
      return outcomeBody(outcome);
    }, data);
  });

  app.post('/v1/propose-batch', async (req, reply) => {
    // Binary framing (protocol/batch-codec.ts) for bulk clients; the answer then comes in the same framing.
    const binary = (req.headers['content-type'] ?? '').startsWith(BINARY_BATCH_TYPE);
    const items = binary ? parseBinaryBatch(req.body) : parseJsonBatch(req.body);
    const results: Array<Record<string, unknown>> = new Array(items.length);
    const byGroup = new Map<number, number[]>();
    items.forEach((it, i) => {
      const list = byGroup.get(it.group) ?? [];
      list.push(i);
      byGroup.set(it.group, list);
    });
    const forwarded = Boolean(req.headers[FORWARDED_HEADER]);
    await Promise.all(
      [...byGroup].map(async ([group, idxs]) => {
        try {
          if (group === META_GROUP) throw new RaftdError('BAD_REQUEST', 'group 0 is raftd\'s meta group');
          if (relay.isRemote(group)) {
            // placement (issue 21): each entry through a member of the group, as its own /propose would go.
            if (forwarded || req.headers[NO_FORWARD_HEADER]) throw new RaftdError('GROUP_NOT_FOUND', `group ${group} has no replica on node ${host.nodeId}`);
            const headers: Record<string, string> = { [FORWARDED_HEADER]: '1' };
            if (req.headers.authorization) headers.authorization = req.headers.authorization;
            host.metrics.forwarded += idxs.length;
            await Promise.all(idxs.map(async (i) => {
              try {
                const answer = await relay.relay(group, Date.now() + opts.leaderWaitMs, (addr) => forwarder.propose(addr, group, items[i]!.data, headers, opts.requestTimeoutMs + 1000));
                results[i] = typeof answer.body === 'string' ? (JSON.parse(answer.body) as Record<string, unknown>) : answer.body;
              } catch (e) {
                results[i] = errorBody(e instanceof SyntaxError ? new RaftdError('TIMEOUT', `a member of group ${group} answered with malformed JSON; the outcome is unknown`) : e);
              }
            }));
            return;
          }
          const leader = await leaderOf(group);
          if (leader.id === host.nodeId) {
            // One promise for the group's whole slice (not one per entry); the data are not copied.
            const outs = await host.proposeAll(group, idxs.map((i) => items[i]!.data));
            outs.forEach((o, k) => (results[idxs[k]!] = o instanceof RaftdError ? errorBody(o) : outcomeBody(o)));
            return;
          }
          if (forwarded || req.headers[NO_FORWARD_HEADER]) throw new RaftdError('NOT_LEADER', `node ${host.nodeId} is not the leader of group ${group}`, leader);
          // The same forwarder as single proposals: its lanes send the slice to the leader as binary
          // propose-batch requests, and each entry gets the answer its own /propose would have had.
          const headers: Record<string, string> = { [FORWARDED_HEADER]: '1' };
          if (req.headers.authorization) headers.authorization = req.headers.authorization;
          host.metrics.forwarded += idxs.length;
          const gone = leaderGone(group, leader.id);
          await Promise.all(idxs.map(async (i) => {
            try {
              const sent = forwarder.propose(leader.httpAddr, group, items[i]!.data, headers, opts.requestTimeoutMs + 1000);
              sent.catch(() => undefined);
              const answer = await Promise.race([sent, gone.abandoned]);
              results[i] = typeof answer.body === 'string' ? (JSON.parse(answer.body) as Record<string, unknown>) : answer.body;
            } catch (e) {
              results[i] = errorBody(e instanceof SyntaxError ? new RaftdError('TIMEOUT', `leader ${leader.id} answered with malformed JSON; the outcome is unknown`) : forwardFailure(e, leader));
            }
          })).finally(() => gone.stop());
        } catch (e) {
          for (const i of idxs) results[i] = errorBody(e);
        }
      }),
    );
    if (binary) return reply.type(BINARY_BATCH_TYPE).send(encodeBatchResponse(results));
    return { results };
  });

  function parseJsonBatch(raw: unknown): Array<{ group: number; data: Buffer }> {
    const body = parseJson(raw) as { items?: unknown } | undefined;
    if (!body || !Array.isArray(body.items)) throw new RaftdError('BAD_REQUEST', 'body must be {"items": [{"group": N, "data": "<base64>"}]}');
    return body.items.map((it, i) => {
      const group = (it as { group?: unknown } | null)?.group;
      if (typeof group !== 'number' || !Number.isSafeInteger(group) || group < 0) throw new RaftdError('BAD_REQUEST', `items[${i}].group must be a non-negative integer`);
      const data = (it as { data?: unknown }).data;
      if (typeof data !== 'string' || data.length === 0) throw new RaftdError('BAD_REQUEST', `items[${i}].data must be non-empty base64`);
      return { group, data: Buffer.from(data, 'base64') };
    });
  }

  function parseBinaryBatch(raw: unknown): Array<{ group: number; data: Buffer }> {
    try {
      return decodeBatchRequest((raw as Buffer | undefined) ?? Buffer.alloc(0));
    } catch (e) {
      throw new RaftdError('BAD_REQUEST', `binary propose-batch body: ${(e as Error).message}`);
    }
  }

  function errorBody(e: unknown): Record<string, unknown> {
    const err = e instanceof RaftdError ? e : new RaftdError('INTERNAL', (e as Error).message);
    return err.toJSON();
  }

  app.post<ConsistencyRoute>('/v1/groups/:group/read', { ...jsonBody, schema: { params: groupParams, querystring: consistencyQuery } }, async (req, reply) => {
    const group = Number(req.params.group);
    const consistency = req.query.consistency ?? 'linearizable';
    const query: unknown = req.body;
    const run = async () => {
      const t0 = performance.now();
      const result = await host.read(group, query, consistency);
      host.metrics.readMs.observe(performance.now() - t0);
      return { result };
    };
    // A lease is only the leader's to use; ReadIndex and stale reads are served right here
    // (placement, issue 21: or by a member, when the group has no replica here).
    if (relay.isRemote(group)) return toMember(req, reply, group);
    return consistency === 'lease' ? onLeader(req, reply, group, run) : run();
  });

  app.post<ConsistencyRoute>('/v1/groups/:group/barrier', { schema: { params: groupParams, querystring: consistencyQuery } }, async (req, reply) => {
    const group = Number(req.params.group);
    const consistency = req.query.consistency ?? 'linearizable';
    const run = async () => ({ appliedIndex: await host.readBarrier(group, consistency) });
    if (relay.isRemote(group)) return toMember(req, reply, group);
    return consistency === 'lease' ? onLeader(req, reply, group, run) : run();
  });

  // ---- load-balancer probes
  type LeaderCheckRoute = GroupQuery & { Params: { code?: string } };
  const leaderCheck = async (req: FastifyRequest<LeaderCheckRoute>, reply: FastifyReply) => {
    const code = req.params.code === undefined ? 404 : Number(req.params.code);
    const q = req.query.group;
    const group = q === undefined ? (host.groups.has(1) ? 1 : META_GROUP) : Number(q);
    const g = host.groups.get(group);
    const leader = g?.status().role === Role.Leader;
    void reply.code(leader ? 200 : code);
    return { group, leader, node: host.nodeId };
  };
  const probe = { ...access('open'), schema: { params: statusCodeParams, querystring: groupQuery } };
  app.get<LeaderCheckRoute>('/leader-check', probe, leaderCheck);
  app.get<LeaderCheckRoute>('/leader-check/:code', probe, leaderCheck);
  // Without a group: this node (app reachable, every group it hosts in a quorum with a leader). A group
  // whose apply keeps failing (one entry that will not apply) is listed, but is that group's problem: it
  // turns only `?group=G` red, never every node's probe (docs/operations.md).
  app.get<GroupQuery>('/raft-health', probe, async (req, reply) => {
    const q = req.query.group;
    const groups = q === undefined ? [...host.groups.keys()] : [Number(q)];
    const unhealthy = groups.filter((g) => (q === undefined ? !host.groupHealthy(g) : !host.groupServing(g)));
    const applyFailing = groups.filter((g) => (host.groupApplyFailure(g)?.attempts ?? 0) >= 2);
    const appOk = host.appHealthy();
    // Without a group named: not healthy until the groups this node was started with exist.
    const bootstrapped = q !== undefined || host.bootstrapComplete();
    const ok = unhealthy.length === 0 && appOk && groups.length > 0 && bootstrapped;
    void reply.code(ok ? 200 : 500);
    return { healthy: ok, app: appOk, bootstrapped, groups: groups.length, unhealthyGroups: unhealthy.slice(0, 100), applyFailingGroups: applyFailing.slice(0, 100) };
  });

  // ---- groups and membership
  app.get('/v1/groups', async () => ({
    groups: [...host.meta.groups.values()].map((g) => ({ group: g.group, members: g.members, local: host.groups.has(g.group), ...(host.meta.placement.moves.has(g.group) ? { move: host.meta.placement.moves.get(g.group) } : {}) })),
  }));
  app.post<{ Body: { group: number; members?: number[] } }>('/v1/groups', { ...access('admin'), ...jsonBody, schema: { body: createGroupBody } }, async (req, reply) => {
    const { group } = req.body;
    // placement (issue 21): by default the group's ring position (every meta voter with factor 0).
    const members = req.body.members ?? host.placeNewGroup(group);
    if (members.length === 0) throw new RaftdError('BAD_REQUEST', 'a group needs at least one member');
    return onLeader(req, reply, META_GROUP, async () => {
      const o = await host.proposeMeta({ op: 'create-group', group, members: [...new Set(members)].sort((a, b) => a - b) });
      if (!o.ok) throw new RaftdError(o.error?.code === 'CONFLICT' ? 'CONFLICT' : 'BAD_REQUEST', o.error?.message ?? 'refused');
      void reply.code(201);
      return { group, members };
    });
  });
  app.delete<GroupRoute>('/v1/groups/:group', { ...access('admin'), schema: { params: groupParams } }, async (req, reply) => {
    const group = Number(req.params.group);
    if (group === META_GROUP) throw new RaftdError('BAD_REQUEST', 'the meta group cannot be deleted');
    return onLeader(req, reply, META_GROUP, async () => {
      const o = await host.proposeMeta({ op: 'delete-group', group });
      if (!o.ok) throw new RaftdError('GROUP_NOT_FOUND', o.error?.message ?? `group ${group} does not exist`);
      return { group, deleted: true };
    });
  });
  type AddMemberRoute = GroupRoute & { Body: { node: number; role?: 'voter' | 'learner'; force?: ForceValue } };
  app.post<AddMemberRoute>('/v1/groups/:group/members', { ...access('admin'), ...jsonBody, schema: { params: groupParams, body: addMemberBody } }, async (req, reply) => {
    const group = Number(req.params.group);
    const { node } = req.body;
    const role = req.body.role ?? 'voter';
    const force = isForce(req.body.force);
    return onLeader(req, reply, group, async () => {
      // Demoting a voter to learner takes it out of the quorum like a removal does (refused unless forced).
      const index = await changeMemberOnLeader(host, group, node, role, force);
      return { group, node, role, index };
    });
  });
  type RemoveMemberRoute = { Params: { group: string; node: string } } & ForceQuery;
  app.delete<RemoveMemberRoute>('/v1/groups/:group/members/:node', { ...access('admin'), schema: { params: memberParams, querystring: forceQuery } }, async (req, reply) => {
    const group = Number(req.params.group);
    const node = Number(req.params.node);
    const force = isForce(req.query.force);
    return onLeader(req, reply, group, async () => {
      const index = await changeMemberOnLeader(host, group, node, 'remove', force);
      return { group, node, removed: true, index };
    });
  });
  app.post<GroupRoute & { Body: { to: number } }>('/v1/groups/:group/transfer-leadership', { ...access('admin'), ...jsonBody, schema: { params: groupParams, body: transferBody } }, async (req, reply) => {
    const group = Number(req.params.group);
    const { to } = req.body;
    return onLeader(req, reply, group, async () => {
      host.transferLeadership(group, to);
      const deadline = Date.now() + opts.requestTimeoutMs;
      while (Date.now() < deadline) {
        const hint = host.leaderHint(group);
        if (hint && hint.id === to) return { group, leader: to };
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new RaftdError('TIMEOUT', `group ${group}: leadership did not move to node ${to}`);
    });
  });

  // ---- nodes (join)
  app.get('/v1/nodes', async () => ({ nodes: [...host.meta.nodes.values()] }));
  type RegisterNodeRoute = { Body: { id: number; raftAddr: string; httpAddr: string; fresh?: boolean; zone?: string } };
  app.post<RegisterNodeRoute>('/v1/nodes', { ...access('admin'), ...jsonBody, schema: { body: registerNodeBody } }, async (req, reply) => {
    const body = req.body;
    const id = body.id;
    const existing = host.meta.nodes.get(id);
    if (existing && existing.raftAddr !== body.raftAddr) {
      throw new RaftdError('CONFLICT', `node id ${id} is already registered at ${existing.raftAddr}`);
    }
    // A node id that may have voted must never come back with an empty disk: it would have
    // forgotten its votes and log. A fresh node needs a fresh id.
    if (existing && body.fresh === true) {
      throw new RaftdError('CONFLICT', `node id ${id} is already a member and this node's data dir is empty: use a new id (a member restarting with an empty disk could vote twice)`);
    }
    return onLeader(req, reply, META_GROUP, async () => {
      // placement (issue 21): the joining node's zone, if it has one (the schema bounds it).
      const zone = body.zone;
      const o = await host.proposeMeta({ op: 'register', node: { id, raftAddr: body.raftAddr, httpAddr: body.httpAddr, ...(zone ? { zone } : {}) } });
      if (!o.ok) throw new RaftdError('CONFLICT', o.error?.message ?? 'refused');
      return { nodes: [...host.meta.nodes.values()] };
    });
  });

  app.delete<{ Params: { id: string } } & ForceQuery>('/v1/nodes/:id', { ...access('admin'), schema: { params: nodeParams, querystring: forceQuery } }, async (req, reply) => {
    const id = Number(req.params.id);
    const force = isForce(req.query.force);
    if (!host.meta.nodes.has(id) && !host.peers().has(id)) throw new RaftdError('NOT_FOUND', `node ${id} is not registered`);
    return onLeader(req, reply, META_GROUP, async () => {
      // A node that still votes somewhere must leave its groups first: forgetting its address
      // would make those groups count a voter nobody can reach.
      const groups = [...host.groups.keys()].filter((g) => host.groupStatus(g).confState.voters.includes(id) || host.groupStatus(g).confState.learners.includes(id));
      if (groups.length > 0 && !force) {
        throw new RaftdError('CONFLICT', `node ${id} is still a member of group(s) ${groups.slice(0, 20).join(', ')}${groups.length > 20 ? ', ...' : ''}: remove it from them first (DELETE /v1/groups/G/members/${id}), or repeat with force`);
      }
      // Checked here, on the meta leader (a follower forwards): it cannot forget itself while it leads.
      if (id === host.nodeId) throw new RaftdError('CONFLICT', `node ${id} leads the meta group: move its leadership first (POST /v1/groups/0/transfer-leadership)`);
      const o = await host.proposeMeta({ op: 'deregister', id });
      if (!o.ok) throw new RaftdError('CONFLICT', o.error?.message ?? 'refused');
      return { node: id, removed: true };
    });
  });

  /** Every node this one knows (registered or a peer), and whether it hears from it. */
  function nodesView(): Array<Record<string, unknown>> {
    const ids = new Set<number>([...host.meta.nodes.keys(), ...host.peers().keys(), host.nodeId]);
    return [...ids].sort((a, b) => a - b).map((id) => {
      const info = host.meta.nodes.get(id);
      const self = id === host.nodeId;
      const seenTicks = host.liveness.ticksSinceSeen(id);
      return {
        id,
        raftAddr: info?.raftAddr ?? host.peers().get(id) ?? '',
        httpAddr: info?.httpAddr ?? host.httpAddrOf(id) ?? '',
        registered: info !== undefined,
        connected: self || host.liveness.isAlive(id),
        // null: never heard from since this node started (e.g. a node registered that never came up).
        lastSeenMsAgo: self ? 0 : seenTicks === undefined ? null : seenTicks * opts.tickMs,
      };
    });
  }

  app.get('/status', async () => {
    const groups = [...host.groups.keys()].sort((a, b) => a - b).map((g) => {
      const s = host.groupStatus(g);
      const lag = s.progress ? Math.max(0, ...Object.values(s.progress).map((p) => s.lastIndex - p.match)) : undefined;
      const f = host.groupApplyFailure(g);
      const applyFailing = f ? { sinceMs: Math.round(f.sinceMs), attempts: f.attempts, code: f.error.code ?? 'ERROR', message: f.error.message.slice(0, 500) } : undefined;
      return { group: g, role: Role[s.role].toLowerCase(), leader: s.leader, term: s.term, commit: s.commit, applied: s.appliedByApp, lastIndex: s.lastIndex, firstIndex: s.firstIndex, voters: s.confState.voters, learners: s.confState.learners, quiesced: s.quiesced, pending: s.pending, bytesApplied: s.bytesApplied, ...(lag !== undefined ? { maxFollowerLag: lag } : {}), ...(applyFailing ? { applyFailing } : {}) };
    });
    // placement (issue 21): the rebalancer's progress (moves running and their step).
    return { node: host.nodeId, httpAddr: opts.httpAddr, appHealthy: host.appHealthy(), peers: Object.fromEntries(host.peers()), nodes: nodesView(), groups, rebalance: rebalancer.status() };
  });

  if (opts.faults) registerFaultRoutes(app, opts.faults, { ...access('admin'), ...jsonBody });

  // placement (issue 21): /v1/placement, /v1/rebalance, decommissioning, and the rebalancer itself.
  const rebalancer = registerPlacementRoutes(app, { host, onLeader, adminToken: opts.adminToken, logger: opts.logger, ...(opts.placement ?? {}) });

  const metrics = new RaftdMetrics(host, rebalancer);
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.contentType);
    return metrics.render();
  });

  return app;
}
