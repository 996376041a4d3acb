// The pure parts of the gateway's HTTP protocol: the Content-Type per format, the response encoding
// negotiated from enable_http_compression + Accept-Encoding, and how query parameters reach the
// embedded engine (as ClickHouse's own `SET param_<name>` text, never re-escaped).

import { expect } from 'chai';
import { contentType } from '../../../clickhouse-adapter/gateway/formats.js';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { compress, compressionStream, responseEncoding } from '../../../clickhouse-adapter/gateway/compression.js';
import { paramsStatement } from '../../../clickhouse-adapter/engine/sql.js';
import { EngineError } from '../../../clickhouse-adapter/engine/errors.js';

describe('gateway HTTP protocol', function () {
  it('names ClickHouse\'s Content-Type for each format family', function () {
    expect(contentType('JSONEachRow')).to.equal('application/x-ndjson; charset=UTF-8');
    expect(contentType('JSONLines')).to.equal('application/x-ndjson; charset=UTF-8');
    expect(contentType('JSONEachRow', { output_format_json_array_of_rows: 1 })).to.equal('application/json; charset=UTF-8');
    expect(contentType('JSON')).to.equal('application/json; charset=UTF-8');
    expect(contentType('JSONCompactEachRow')).to.equal('text/plain; charset=UTF-8');
    expect(contentType('CSV')).to.equal('text/csv; charset=UTF-8; header=absent');
    expect(contentType('CSVWithNames')).to.equal('text/csv; charset=UTF-8; header=present');
    expect(contentType('TSVRaw')).to.equal('text/tab-separated-values; charset=UTF-8');
    expect(contentType('RowBinaryWithNamesAndTypes')).to.equal('application/octet-stream');
    expect(contentType('PrettyCompact')).to.equal('text/plain; charset=UTF-8');
  });

  it('compresses only with enable_http_compression=1, in the first accepted encoding it can produce', function () {
    const on = new URLSearchParams({ enable_http_compression: '1' });
    expect(responseEncoding(on, 'gzip, deflate, br')).to.equal('gzip');
    expect(responseEncoding(on, 'br;q=1.0, deflate')).to.equal('deflate');
    expect(responseEncoding(on, 'br')).to.equal('br');
    expect(responseEncoding(on, 'zstd')).to.equal(undefined);
    expect(responseEncoding(on, undefined)).to.equal(undefined);
    expect(responseEncoding(new URLSearchParams(), 'gzip')).to.equal(undefined);
    expect(responseEncoding(new URLSearchParams({ enable_http_compression: '0' }), 'gzip')).to.equal(undefined);
  });

  it('compresses whole bodies and streams alike, in each encoding', async function () {
    const body = Buffer.from('x'.repeat(10_000) + '\n');
    const decode = { gzip: gunzipSync, deflate: inflateSync, br: brotliDecompressSync } as const;
    for (const e of ['gzip', 'deflate', 'br'] as const) {
      const whole = await compress(body, e, '9');
      expect(whole.length).to.be.below(body.length);
      expect(decode[e](whole).equals(body), e).to.equal(true);
      const chunks: Buffer[] = [];
      for await (const c of Readable.from([body.subarray(0, 5000), body.subarray(5000)]).pipe(compressionStream(e, null))) chunks.push(c as Buffer);
      expect(decode[e](Buffer.concat(chunks)).equals(body), e).to.equal(true);
    }
    expect(await compress(body, undefined, null)).to.equal(body);
  });

  it('hands parameter text to ClickHouse unchanged, as a quoted SET param_<name>', function () {
    expect(paramsStatement({ s: "foo_\\'_bar", n: '\\N' })).to.equal("SET param_s = 'foo_\\\\\\'_bar', param_n = '\\\\N'");
    expect(paramsStatement({})).to.equal(undefined);
    expect(() => paramsStatement({ 'x = 1; DROP': 'v' })).to.throw(EngineError);
  });
});
