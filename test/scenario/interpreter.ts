// Runs a scenario file: each case's command goes to the core's environment (RaftEnv), the
// applier's (ApplierEnv) or the multi-group host's (HostEnv); what it prints is the case's actual
// output. Every environment is fresh per file and fully deterministic, so the output is a golden text.
import { readFileSync } from 'node:fs';
import { ApplierEnv } from './applier-env.js';
import { ArgError, Args } from './args.js';
import { parseFile, type Chunk, type TestCase } from './datadriven.js';
import { RaftEnv, errLine } from './raft-env.js';
import { HostEnv } from './host-env.js';

export interface CaseResult {
  c: TestCase;
  actual: string;
}

export interface FileResult {
  chunks: Chunk[];
  results: CaseResult[];
}

export class ScenarioError extends Error {}

export async function runScenarioFile(path: string, name = path): Promise<FileResult> {
  const chunks = parseFile(name, readFileSync(path, 'utf8'));
  const raft = new RaftEnv();
  const applier = new ApplierEnv();
  const host = new HostEnv();
  const results: CaseResult[] = [];
  try {
    for (const ch of chunks) {
      if (ch.kind !== 'case') continue;
      const c = ch.c;
      const args = new Args(c.cmd, c.args);
      let actual: string | undefined;
      try {
        actual = raft.run(c.cmd, args) ?? (await applier.run(c.cmd, args)) ?? (await host.run(c.cmd, args));
      } catch (e) {
        // A mistake in the script is the script's error; anything else the code under test threw is output.
        if (e instanceof ArgError) throw new ScenarioError(`${name}:${c.line}: ${e.message}`);
        actual = errLine(e);
      }
      if (actual === undefined) throw new ScenarioError(`${name}:${c.line}: unknown command "${c.cmd}"`);
      // A blank line would end the case in the file format: mark it instead (an error text may hold one).
      results.push({ c, actual: actual.replace(/^[ \t]*$/gm, '<blank>') });
    }
  } finally {
    await applier.close();
    await host.close();
  }
  return { chunks, results };
}
