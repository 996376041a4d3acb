// Reading a request body within bounds. The body is capped as it arrives, and a gzip/deflate/br body
// is inflated by a zlib stream (its work runs on libuv's thread pool, never on the event loop) whose
// output is capped too: a small compressed bomb is refused once its output passes the cap, having
// held at most the cap in memory.

import type { IncomingMessage } from 'node:http';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Transform } from 'node:stream';
import { CODES } from '../engine/codes.js';
import { GatewayError } from './errors.js';

export interface BodyLimits {
  /** Bytes on the wire. */
  maxBodyBytes: number;
  /** Bytes after Content-Encoding is undone (the same cap as a plain body gets by default). */
  maxDecompressedBytes: number;
}

function tooLarge(what: string, limit: number): GatewayError {
  return new GatewayError(CODES.TOO_MANY_BYTES, `${what} is larger than ${limit} bytes (rafthouse --max-body-bytes)`);
}

function decoder(encoding: string): Transform | undefined {
  if (encoding === '' || encoding === 'identity') return undefined;
  if (encoding === 'gzip' || encoding === 'x-gzip') return createGunzip();
  if (encoding === 'deflate') return createInflate();
  if (encoding === 'br') return createBrotliDecompress();
  throw new GatewayError(CODES.NOT_IMPLEMENTED, `Content-Encoding ${encoding} is not supported (gzip, deflate, br)`);
}

/** The body, decoded per Content-Encoding; TOO_MANY_BYTES (307) past a cap, CANNOT_DECOMPRESS for bad data. */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const encoding = String(req.headers['content-encoding'] ?? '').trim().toLowerCase();
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes) return Promise.reject(tooLarge('The request body', limits.maxBodyBytes));
  let inflate: Transform | undefined;
  try {
    inflate = decoder(encoding);
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise<Buffer>((resolve, reject) => {
    const out: Buffer[] = [];
    let wire = 0;
    let size = 0;
    let done = false;
    const fail = (e: Error): void => {
      if (done) return;
      done = true;
      inflate?.destroy();
      // Stop reading; the connection is closed after the error is sent (see GatewayHttp).
      req.pause();
      reject(e);
    };
    const take = (c: Buffer): void => {
      if (done) return;
      size += c.length;
      if (size > limits.maxDecompressedBytes) {
        fail(tooLarge(inflate ? 'The decompressed request body' : 'The request body', inflate ? limits.maxDecompressedBytes : limits.maxBodyBytes));
        return;
      }
      out.push(c);
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      wire += c.length;
      if (wire > limits.maxBodyBytes) {
        fail(tooLarge('The request body', limits.maxBodyBytes));
        return;
      }
      if (inflate) {
        // Backpressure: the socket waits while zlib works through what it has.
        if (!inflate.write(c)) {
          req.pause();
          inflate.once('drain', () => { if (!done) req.resume(); });
        }
      } else take(c);
    });
    req.on('end', () => {
      if (inflate) inflate.end();
      else if (!done) {
        done = true;
        resolve(Buffer.concat(out));
      }
    });
    req.on('error', fail);
    if (inflate) {
      inflate.on('data', take);
      inflate.on('end', () => {
        if (done) return;
        done = true;
        resolve(Buffer.concat(out));
      });
      inflate.on('error', (e: Error) => fail(new GatewayError(CODES.CANNOT_DECOMPRESS, `Cannot decompress the request body (${encoding}): ${e.message}`)));
    }
  });
}
