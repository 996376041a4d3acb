// The pure parts of the gateway's HTTP protocol: the Content-Type per format, the response encoding
// negotiated from enable_http_compression + Accept-Encoding, and how query parameters reach the
// embedded engine (as ClickHouse's own `SET param_<name>` text, never re-escaped).

import { expect } from 'chai';
import { contentType } from '../../../clickhouse-adapter/gateway/formats.js';
import { responseEncoding } from '../../../clickhouse-adapter/gateway/http.js';
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

  it('hands parameter text to ClickHouse unchanged, as a quoted SET param_<name>', function () {
    expect(paramsStatement({ s: "foo_\\'_bar", n: '\\N' })).to.equal("SET param_s = 'foo_\\\\\\'_bar', param_n = '\\\\N'");
    expect(paramsStatement({})).to.equal(undefined);
    expect(() => paramsStatement({ 'x = 1; DROP': 'v' })).to.throw(EngineError);
  });
});
