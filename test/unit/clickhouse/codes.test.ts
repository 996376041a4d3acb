// The one table of ClickHouse error codes (clickhouse-adapter/engine/codes.ts) against ClickHouse
// itself: every name and number as the embedded ClickHouse's errorCodeToName() gives them, and the
// exception text and HTTP statuses built from it.

import { expect } from 'chai';
import { embeddedEngineForSuite } from '../../support/embedded-engine.js';
import { CODES, codeName, codeSet, exceptionText } from '../../../clickhouse-adapter/engine/codes.js';
import { clickHouseError, parseClickHouseError } from '../../../clickhouse-adapter/engine/errors.js';
import { queryRows } from '../../../clickhouse-adapter/engine/sql.js';
import { httpStatusFor } from '../../../clickhouse-adapter/gateway/errors.js';

describe('ClickHouse error codes (engine/codes.ts)', () => {
  const engine = embeddedEngineForSuite('ch-codes-');

  it('holds ClickHouse\'s own name for every number', async () => {
    const numbers = Object.values(CODES);
    const rows = await queryRows<{ code: number; name: string }>(engine(),
      `SELECT toUInt32(arrayJoin([${numbers.join(',')}])) AS code, errorCodeToName(code) AS name`);
    expect(rows).to.have.length(numbers.length);
    const wrong = rows.filter((r) => codeName(r.code) !== r.name).map((r) => `${r.code}: ours ${codeName(r.code)}, ClickHouse's ${r.name}`);
    expect(wrong).to.deep.equal([]);
  });

  it('gives each number one name', () => {
    expect(new Set(Object.values(CODES)).size).to.equal(Object.keys(CODES).length);
    expect(codeName(123_456)).to.equal('CODE_123456');
  });

  it('writes the exception text ClickHouse writes, and parses it back', () => {
    const text = exceptionText(CODES.UNKNOWN_TABLE, 'Table rh_g1.t does not exist');
    expect(text).to.equal('Code: 60. DB::Exception: Table rh_g1.t does not exist. (UNKNOWN_TABLE)');
    expect(exceptionText(CODES.READONLY, 'nope', { version: '26.7' })).to.equal('Code: 164. DB::Exception: nope. (READONLY) (version 26.7)\n');
    const e = clickHouseError('SETTING_CONSTRAINT_VIOLATION', 'Setting x should not be changed');
    expect([e.code, e.name, e.message]).to.deep.equal([452, 'SETTING_CONSTRAINT_VIOLATION', 'Setting x should not be changed']);
    const back = parseClickHouseError(e.raw)!;
    expect([back.code, back.name, back.message]).to.deep.equal([e.code, e.name, e.message]);
  });

  it('answers the HTTP status ClickHouse answers for a code, by name', () => {
    const status = (...names: Array<keyof typeof CODES>) => [...codeSet(...names)].map(httpStatusFor);
    expect(status('UNKNOWN_TABLE', 'UNKNOWN_TYPE_OF_QUERY', 'UNKNOWN_DIRECTION_OF_SORTING')).to.deep.equal([404, 404, 404]);
    expect(status('SYNTAX_ERROR', 'CANNOT_PARSE_ESCAPE_SEQUENCE')).to.deep.equal([400, 400]);
    expect(status('ACCESS_DENIED', 'AUTHENTICATION_FAILED')).to.deep.equal([403, 403]);
    expect(status('REQUIRED_PASSWORD', 'TOO_MANY_BYTES', 'TOO_MANY_SIMULTANEOUS_QUERIES', 'NOT_IMPLEMENTED', 'SOCKET_TIMEOUT')).to.deep.equal([401, 413, 429, 501, 503]);
    expect(status('READONLY', 'KEEPER_EXCEPTION')).to.deep.equal([500, 500]);
    expect(httpStatusFor(64)).to.equal(500); // a number ClickHouse no longer assigns
  });
});
