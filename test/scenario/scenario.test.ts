// Every test/scenario/testdata/*.txt runs through the interpreter and must print exactly its golden
// output. SCENARIO_REWRITE=1 writes the actual output back as the new golden text instead (review the
// diff before committing it: a golden file must never freeze a wrong behaviour).
import { expect } from 'chai';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../integration/cluster.js';
import { renderFile } from './datadriven.js';
import { runScenarioFile } from './interpreter.js';

const DIR = join(REPO_ROOT, 'test', 'scenario', 'testdata');
const REWRITE = process.env['SCENARIO_REWRITE'] === '1';

/** A line diff good enough for golden text: the first differing line onwards, both sides. */
function diff(expected: string, actual: string): string {
  const e = expected.split('\n');
  const a = actual.split('\n');
  let k = 0;
  while (k < e.length && k < a.length && e[k] === a[k]) k++;
  const ctx = Math.max(0, k - 2);
  const show = (ls: string[], sign: string) => ls.slice(ctx, ctx + 12).map((l, i) => `${ctx + i === k ? sign : ' '} ${l}`).join('\n');
  return `first difference at output line ${k + 1}\n--- expected\n${show(e, '-')}\n+++ actual\n${show(a, '+')}`;
}

describe('scenarios (data-driven, test/scenario/testdata)', function () {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.txt')).sort();

  it('has at least 25 scenario files', () => {
    expect(files.length).to.be.at.least(25);
  });

  for (const f of files) {
    it(f, async () => {
      const path = join(DIR, f);
      const { chunks, results } = await runScenarioFile(path, `testdata/${f}`);
      if (REWRITE) {
        writeFileSync(path, renderFile(chunks, results.map((r) => r.actual)));
        return;
      }
      const failures = results
        .filter((r) => r.actual !== r.c.expected)
        .map((r) => `testdata/${f}:${r.c.line}: ${r.c.input}\n${diff(r.c.expected, r.actual)}`);
      if (failures.length) throw new Error(`${failures.length} case(s) differ (SCENARIO_REWRITE=1 rewrites the golden output)\n\n${failures.slice(0, 3).join('\n\n')}`);
    });
  }
});
