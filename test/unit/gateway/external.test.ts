// The pure part of external data tables (gateway/external.ts): the CREATE each table becomes, the
// bounds, and the structures refused before ClickHouse sees them. What ClickHouse makes of a valid
// CREATE, and the query over the tables, is http-fidelity.test.ts (a real node).

import { expect } from 'chai';
import { planExternalTables, EXTERNAL_LIMITS } from '../../../clickhouse-adapter/gateway/external.js';
import { GatewayError } from '../../../clickhouse-adapter/gateway/errors.js';

const data = Buffer.from('1\n');

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof GatewayError ? e.code : -1;
  }
  return undefined;
}

describe('external data tables: plans', () => {
  it('builds a Memory temporary table from a structure or from types, with the format resolved', () => {
    const [a, b] = planExternalTables([
      { name: 'a', structure: 'id UInt32, s String', data },
      { name: 'B_2', types: 'UInt8, Tuple(x UInt8, y String),Array(Nullable(String))', format: 'csv', data },
    ]);
    expect(a).to.deep.equal({ name: 'a', create: 'CREATE TEMPORARY TABLE `a` (id UInt32, s String) ENGINE = Memory', format: 'TabSeparated' });
    expect(b!.create).to.equal('CREATE TEMPORARY TABLE `B_2` (_1 UInt8, _2 Tuple(x UInt8, y String), _3 Array(Nullable(String))) ENGINE = Memory');
    expect(b!.format).to.equal('CSV');
  });

  it('refuses what could leave the column list, bad names, duplicates, Values and unknown formats, and too many tables', () => {
    const one = (t: Partial<Parameters<typeof planExternalTables>[0][number]>) => () => planExternalTables([{ name: 't', data, ...t }]);
    expect(codeOf(one({ structure: "a UInt8) ENGINE = File(TSV, '/etc/passwd'" }))).to.equal(36);
    expect(codeOf(one({ structure: 'a UInt8) AS SELECT 1 --' }))).to.equal(36);
    expect(codeOf(one({ structure: 'a UInt8 -- x' }))).to.equal(36);
    expect(codeOf(one({ structure: 'a UInt8); DROP TABLE x; (' }))).to.equal(36);
    expect(codeOf(one({ structure: 'a Array(UInt8' }))).to.equal(36);
    expect(codeOf(one({ types: 'UInt8,,String' }))).to.equal(36);
    expect(codeOf(one({ structure: '   ' }))).to.equal(36);
    expect(codeOf(one({ structure: 'a UInt8, '.repeat(EXTERNAL_LIMITS.maxStructureChars) }))).to.equal(36);
    expect(codeOf(one({}))).to.equal(36);
    expect(codeOf(one({ name: '1t', structure: 'a UInt8' }))).to.equal(36);
    expect(codeOf(one({ name: 'a`b', structure: 'a UInt8' }))).to.equal(36);
    expect(codeOf(one({ structure: 'a UInt8', format: 'Values' }))).to.equal(73);
    expect(codeOf(one({ structure: 'a UInt8', format: 'Nope' }))).to.equal(73);
    expect(codeOf(() => planExternalTables([{ name: 't', structure: 'a UInt8', data }, { name: 'T', structure: 'a UInt8', data }]))).to.equal(36);
    const many = Array.from({ length: EXTERNAL_LIMITS.maxTables + 1 }, (_, i) => ({ name: `t${i}`, structure: 'a UInt8', data }));
    expect(codeOf(() => planExternalTables(many))).to.equal(36);
    expect(planExternalTables(many.slice(1))).to.have.length(EXTERNAL_LIMITS.maxTables);
  });
});
