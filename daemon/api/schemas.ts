// The client API's request shapes as JSON schemas: fastify checks params, querystring and body
// against them before a handler runs, and a mismatch answers 400 BAD_REQUEST like every other bad
// input (server.ts's error handler). Path and query values are strings on the wire; their patterns
// say exactly which strings (nothing is coerced: "5.0" is not a group id).
// Not here: a proposal's body (opaque bytes), and propose-batch's, which comes in two encodings
// told apart by content type (JSON, or protocol/batch-codec.ts's framing): server.ts checks both.

import type { FastifySchemaValidationError } from 'fastify';
import { MAX_GROUP } from '../../protocol/client-api.js';

/**
 * 0..4294967294 in decimal, at most 10 characters (leading zeros allowed): a group id in a path, and
 * a node id there too. 4294967295 is storage's end-of-range key (daemon/storage/codec.ts).
 */
const U32_ID_PATTERN =
  '^(?=[0-9]{1,10}$)0*(?:[0-9]{1,9}|[1-3][0-9]{9}|4[01][0-9]{8}|42[0-8][0-9]{7}|429[0-3][0-9]{6}|4294[0-8][0-9]{5}|42949[0-5][0-9]{4}|429496[0-6][0-9]{3}|4294967[01][0-9]{2}|42949672[0-8][0-9]|429496729[0-4])$';
/** A peer's address as /v1/nodes takes it: a hostname or a bracketed IPv6 address, then a port. */
const HOST_PORT_PATTERN = '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):\\d{1,5}$';
/** An HTTP status a load balancer may be told to expect (leader-check/:code). */
const STATUS_CODE_PATTERN = '^[2-5][0-9]{2}$';

/** What a pattern means, for the error message (the pattern itself says little to a client). */
const PATTERN_MEANING: ReadonlyMap<string, string> = new Map([
  [U32_ID_PATTERN, 'an integer in 0..4294967294'],
  [HOST_PORT_PATTERN, 'HOST:PORT'],
  [STATUS_CODE_PATTERN, 'an HTTP status in 200..599'],
]);

const idInPath = { type: 'string', pattern: U32_ID_PATTERN } as const;
const nodeId = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const hostPort = { type: 'string', maxLength: 261, pattern: HOST_PORT_PATTERN } as const;
/** `force` as JSON (a boolean) or as a query string value (`?force`, `force=1`, ...). */
const FORCE_VALUES = [true, false, 'true', 'false', '1', '0', ''] as const;
export type ForceValue = (typeof FORCE_VALUES)[number];
export const CONSISTENCIES = ['linearizable', 'lease', 'stale'] as const;
/** Members named in one request, at most: far above any real group, far below what costs anything. */
const MAX_MEMBERS = 1000;

export const groupParams = { type: 'object', required: ['group'], properties: { group: idInPath } } as const;
export const memberParams = { type: 'object', required: ['group', 'node'], properties: { group: idInPath, node: idInPath } } as const;
export const nodeParams = { type: 'object', required: ['id'], properties: { id: idInPath } } as const;
export const statusCodeParams = { type: 'object', properties: { code: { type: 'string', pattern: STATUS_CODE_PATTERN } } } as const;

export const consistencyQuery = { type: 'object', properties: { consistency: { type: 'string', enum: CONSISTENCIES } } } as const;
export const forceQuery = { type: 'object', properties: { force: { type: 'string', enum: FORCE_VALUES.filter((v) => typeof v === 'string') } } } as const;
export const groupQuery = { type: 'object', properties: { group: idInPath } } as const;

export const createGroupBody = {
  type: 'object',
  required: ['group'],
  properties: {
    group: { type: 'integer', minimum: 1, maximum: MAX_GROUP },
    members: { type: 'array', minItems: 1, maxItems: MAX_MEMBERS, items: { ...nodeId, minimum: 1 } },
  },
} as const;
export const addMemberBody = {
  type: 'object',
  required: ['node'],
  properties: { node: nodeId, role: { type: 'string', enum: ['voter', 'learner'] }, force: { enum: FORCE_VALUES } },
} as const;
export const transferBody = { type: 'object', required: ['to'], properties: { to: nodeId } } as const;
export const registerNodeBody = {
  type: 'object',
  required: ['id', 'raftAddr', 'httpAddr'],
  properties: { id: { ...nodeId, minimum: 1 }, raftAddr: hostPort, httpAddr: hostPort, fresh: { type: 'boolean' } },
} as const;

/** The validator's options: no coercion (a JSON "5" is not 5), no defaults or removals behind the caller's back. */
export const AJV_OPTIONS = { coerceTypes: false, useDefaults: false, removeAdditional: false } as const;

/** One line for the first problem, e.g. `params.group must be an integer in 0..4294967294`. */
export function schemaErrorMessage(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const e = errors[0];
  if (!e) return new Error(`${dataVar} is invalid`);
  const where = dataVar + e.instancePath.replace(/\//g, '.');
  const params = e.params as { allowedValues?: unknown[]; pattern?: string };
  let what = e.message ?? 'is invalid';
  if (e.keyword === 'enum' && params.allowedValues) what = `must be one of ${params.allowedValues.map((v) => (v === '' ? '""' : String(v))).join(', ')}`;
  else if (e.keyword === 'pattern' && params.pattern) what = `must be ${PATTERN_MEANING.get(params.pattern) ?? `like ${params.pattern}`}`;
  return new Error(`${where} ${what}`);
}
