// Who may call which route of raftd's HTTP API.
//
// Three kinds of route, named in each route's `config.access`:
//   open    load-balancer probes (/raft-health, /leader-check): no token, and they say nothing secret;
//   client  propose, read, barrier, status, metrics, listings: the client token or the admin token;
//   admin   membership, groups, nodes, leadership transfers, debug: the admin token only.
// A route that names nothing is a client route, so a route added without thought is never open.
// Loopback is not trusted: any local process could otherwise remove members or propose raw entries.
// Forwarding (forward.ts) relays the caller's own Authorization to the leader, which checks it again:
// a follower never lends its credentials to a request, and every node shares the same two tokens.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { RaftdError } from '../errors.js';

export type Access = 'open' | 'client' | 'admin';

export interface AuthTokens {
  /** The client API token; '' (only with --insecure) leaves client routes open. */
  apiToken: string;
  /** The admin token, valid on every route; '' (only with --insecure) leaves admin routes open. */
  adminToken: string;
}

/** The route option that names a route's access (default 'client'). */
export function access(level: Access): { config: { access: Access } } {
  return { config: { access: level } };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Checks a request's bearer token against the route's access; throws UNAUTHORIZED or FORBIDDEN. */
export function makeAuthorizer(tokens: AuthTokens): (req: FastifyRequest) => void {
  // Comparing fixed-length digests in constant time: neither the token's content nor its length leaks by timing.
  const api = tokens.apiToken === '' ? undefined : digest(tokens.apiToken);
  const admin = tokens.adminToken === '' ? undefined : digest(tokens.adminToken);
  return (req) => {
    const level = (req.routeOptions.config as { access?: Access } | undefined)?.access ?? 'client';
    if (level === 'open') return;
    if (level === 'client' && !api) return;
    if (level === 'admin' && !admin) return;
    const header = req.headers.authorization ?? '';
    const given = digest(header.startsWith('Bearer ') ? header.slice(7).trim() : '');
    // Both comparisons always run, so the answer time does not tell which token came close.
    const isAdmin = admin !== undefined && timingSafeEqual(given, admin);
    const isClient = api !== undefined && timingSafeEqual(given, api);
    if (isAdmin || (level === 'client' && isClient)) return;
    if (isClient) throw new RaftdError('FORBIDDEN', `${req.method} ${req.routeOptions.url ?? req.url} is an admin route: it needs the admin token, not the client API token`);
    throw new RaftdError('UNAUTHORIZED', `missing or wrong bearer token (Authorization: Bearer <${level === 'admin' ? 'admin' : 'api'} token>)`);
  };
}
