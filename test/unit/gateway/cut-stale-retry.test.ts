// The cut retries a statement error only when a group was behind its commit index AND the error is one
// the stale state explains (UNKNOWN_TABLE and kin, here or in a member's leg answer), at most
// CUT_DEFAULTS.maxStaleErrorAttempts times: a client's own error (throwIf) buys no rounds of held apply.
import { expect } from 'chai';
import { CutReader, CUT_DEFAULTS } from '../../../clickhouse-adapter/gateway/cut.js';
import { ClickHouseError } from '../../../clickhouse-adapter/engine/errors.js';

describe('consistent cut: statement errors after a stale round', () => {
  // Group 1 is always one entry behind its commit index: every round is "stale".
  const stale = (): CutReader => new CutReader({
    hold: async (groups) => ({ applied: new Map(groups.map((g) => [g, 5])), release: () => undefined }),
    readIndex: async () => 6,
    backoffMs: 0,
  });
  const attemptsOf = async (error: Error): Promise<{ runs: number; rejected: unknown }> => {
    let runs = 0;
    let rejected: unknown;
    await stale().read([1], async () => { runs++; throw error; }).catch((e: unknown) => { rejected = e; });
    return { runs, rejected };
  };

  it('reports a statement error of the client at once', async () => {
    const own = new ClickHouseError(395, 'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO', 'HTTP status code: 503', '');
    const r = await attemptsOf(own);
    expect(r.runs).to.equal(1);
    expect(r.rejected).to.equal(own);
  });

  it('retries UNKNOWN_TABLE (a member behind on a CREATE) a bounded number of times', async () => {
    const missing = new ClickHouseError(60, 'UNKNOWN_TABLE', 'Table rh_g3.t does not exist', '');
    const r = await attemptsOf(missing);
    expect(r.runs).to.equal(CUT_DEFAULTS.maxStaleErrorAttempts);
    expect(r.rejected).to.equal(missing);
    const leg = new ClickHouseError(86, 'RECEIVED_ERROR_FROM_REMOTE_IO_SERVER',
      "Received error from remote server http://127.0.0.1:1/internal/select?group=3&hold=h. HTTP status code: 400 'Bad Request', body length: 9 bytes, body: 'Code: 60. DB::Exception: Table rh_g3.t does not exist. (UNKNOWN_TABLE)'", '');
    expect((await attemptsOf(leg)).runs).to.equal(CUT_DEFAULTS.maxStaleErrorAttempts);
  });
});
