// One walk over a statement's AST that applies the per-node rules shared by reads and writes: table
// functions (allow-list), scalar functions with external reach, every table named, INTO OUTFILE /
// FROM INFILE. What differs between reads and writes comes in as TreeRules.

import type { AstNode, TableRef, Token } from './ast.js';
import { isWord, tableRef, walk } from './ast.js';
import { RuleError, denied } from './errors.js';
import { CODES } from '../engine/codes.js';
import { checkScalarFunction, checkTableFunction } from './functions.js';

export interface TreeRules {
  tableFunctions: ReadonlySet<string>;
  /** "in a replicated statement", "in a read": for the refusal's text. */
  where: string;
  /** Scalar functions with external reach an operator opened (reads only). */
  scalarAllowed?: ReadonlySet<string>;
  /** Every table the statement names (FROM, JOIN, IN, subqueries, DESCRIBE ...). */
  table(ref: TableRef): void;
  /** Every scalar function call, with its ancestors (root first). */
  fn?(name: string, path: readonly AstNode[]): void;
  /** Engine names (as the canonical text gives them) whose Function node under Storage definition is not a call. */
  engines?: ReadonlySet<string>;
}

export function checkTree(root: AstNode, r: TreeRules): void {
  walk(root, (n, path) => {
    if (n.type === 'TableIdentifier') r.table(tableRef(n.arg));
    if (n.type !== 'Function') return;
    const parent = path[path.length - 1];
    if (parent?.type === 'TableExpression') {
      checkTableFunction(n.arg, r.tableFunctions, r.where);
      return;
    }
    if (parent?.type === 'Storage' && parent.arg.startsWith('definition') && parent.children[0] === n && r.engines?.has(n.arg)) return;
    checkScalarFunction(n.arg, r.scalarAllowed);
    r.fn?.(n.arg, path);
  });
}

/** INTO OUTFILE '<file>' and FROM INFILE '<file>' in the canonical text (a table may be named outfile). */
export function checkFileClauses(toks: Token[]): void {
  for (let i = 0; i + 2 < toks.length; i++) {
    if (isWord(toks[i], 'INTO') && isWord(toks[i + 1], 'OUTFILE') && toks[i + 2]!.kind === 'string') {
      throw new RuleError(CODES.INTO_OUTFILE_NOT_ALLOWED, 'INTO OUTFILE is not allowed: RaftHouse returns results to the client only');
    }
    if (isWord(toks[i], 'FROM') && isWord(toks[i + 1], 'INFILE') && toks[i + 2]!.kind === 'string') {
      denied('FROM INFILE reads a server file; send the data with the request instead');
    }
  }
}
