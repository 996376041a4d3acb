// Compressed answers, as ClickHouse's HTTP interface gives them: only with enable_http_compression=1,
// in an encoding the client accepts (Accept-Encoding), at http_zlib_compression_level. Node's zlib
// offers gzip, deflate and br; ClickHouse's zstd, lz4, xz, bz2 and snappy it does not have (Node 20),
// so a client accepting only those gets a plain answer, which every client reads.

import { brotliCompress, constants as zlibConstants, createBrotliCompress, createDeflate, createGzip, deflate, gzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import { promisify } from 'node:util';

const gzipAsync = promisify(gzip);
const deflateAsync = promisify(deflate);
const brotliAsync = promisify(brotliCompress);

export type ResponseEncoding = 'gzip' | 'deflate' | 'br';

/**
 * The encoding of an answer: only with enable_http_compression=1, and then the first of ClickHouse's
 * own order (gzip, deflate, ..., br) that the client accepts and Node's zlib can produce.
 */
export function responseEncoding(params: URLSearchParams, acceptEncoding: string | undefined): ResponseEncoding | undefined {
  if (params.get('enable_http_compression') !== '1' || !acceptEncoding) return undefined;
  const accepted = new Set(acceptEncoding.toLowerCase().split(',').map((p) => p.trim().split(';')[0]!.trim()));
  for (const e of ['gzip', 'deflate', 'br'] as const) if (accepted.has(e)) return e;
  return undefined;
}

function levelOf(levelParam: string | null): number {
  const n = Number(levelParam ?? 3);
  return Number.isInteger(n) && n >= 1 && n <= 9 ? n : 3;
}

/** The body compressed per `encoding`, at http_zlib_compression_level (ClickHouse's default 3, 1-9). */
export async function compress(body: Buffer, encoding: ResponseEncoding | undefined, levelParam: string | null): Promise<Buffer> {
  if (!encoding) return body;
  const level = levelOf(levelParam);
  if (encoding === 'gzip') return gzipAsync(body, { level });
  if (encoding === 'deflate') return deflateAsync(body, { level });
  return brotliAsync(body, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: level } });
}

/** A stream compressing per `encoding` (for an answer sent as it is produced). */
export function compressionStream(encoding: ResponseEncoding, levelParam: string | null): Transform {
  const level = levelOf(levelParam);
  if (encoding === 'gzip') return createGzip({ level });
  if (encoding === 'deflate') return createDeflate({ level });
  return createBrotliCompress({ params: { [zlibConstants.BROTLI_PARAM_QUALITY]: level } });
}
