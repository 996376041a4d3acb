// The data-driven test file format (after cockroachdb/datadriven, as etcd-io/raft uses it):
//
//   # a comment
//   command positional key=value key=(a,b)
//   ----
//   expected output, up to the next blank line
//
// Output never contains a blank line (the interpreters print "ok" for nothing), so one blank line
// always ends a case. Rewriting keeps comments and blank lines between cases as they were.

export interface CmdArg {
  key: string;
  /** `key` alone: []; `key=v`: [v]; `key=(a,b)`: [a, b]. */
  vals: string[];
  /** Written without `=` (a positional token). */
  bare: boolean;
}

export interface TestCase {
  /** 1-based line of the command, for messages. */
  line: number;
  cmd: string;
  args: CmdArg[];
  /** The command line as written. */
  input: string;
  expected: string;
}

/** One piece of a file: verbatim text (comments, blank lines) or a case. */
export type Chunk = { kind: 'text'; text: string } | { kind: 'case'; c: TestCase };

export class ScenarioSyntaxError extends Error {
  constructor(file: string, line: number, msg: string) {
    super(`${file}:${line}: ${msg}`);
  }
}

export function parseArgs(tokens: string[]): CmdArg[] {
  return tokens.map((t) => {
    const eq = t.indexOf('=');
    if (eq < 0) return { key: t, vals: [], bare: true };
    const key = t.slice(0, eq);
    let v = t.slice(eq + 1);
    if (v.startsWith('(') && v.endsWith(')')) {
      v = v.slice(1, -1);
      return { key, vals: v === '' ? [] : v.split(',').map((s) => s.trim()), bare: false };
    }
    return { key, vals: [v], bare: false };
  });
}

export function parseFile(name: string, text: string): Chunk[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const chunks: Chunk[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.trim() === '' || l.trimStart().startsWith('#')) {
      chunks.push({ kind: 'text', text: l });
      i++;
      continue;
    }
    const line = i + 1;
    const input = l.trim();
    const tokens = input.split(/\s+/);
    i++;
    if (lines[i] !== '----') throw new ScenarioSyntaxError(name, line, `expected ---- after "${input}"`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') out.push(lines[i++]!);
    chunks.push({ kind: 'case', c: { line, cmd: tokens[0]!, args: parseArgs(tokens.slice(1)), input, expected: out.join('\n') } });
  }
  return chunks;
}

/** The file again, with each case's expected output replaced by `actual[k]` (k-th case). */
export function renderFile(chunks: Chunk[], actual: string[]): string {
  const out: string[] = [];
  let k = 0;
  for (const ch of chunks) {
    if (ch.kind === 'text') out.push(ch.text);
    else {
      out.push(ch.c.input, '----', actual[k++]!);
    }
  }
  return out.join('\n') + '\n';
}
