// Typed errors of the engine layer. Every failure ClickHouse reports becomes a ClickHouseError that
// keeps ClickHouse's own numeric code and name, whichever engine and whichever ClickHouse version
// produced it; everything else (unreachable server, closed engine, a capability missing) is an
// EngineError with a stable string code.

import type { CapabilityName } from './types.js';
import { CODES, codeName, exceptionText, type CodeName } from './codes.js';

/** An error ClickHouse itself reported. */
export class ClickHouseError extends Error {
  /** ClickHouse's numeric error code, e.g. 60 (UNKNOWN_TABLE), 62 (SYNTAX_ERROR), 164 (READONLY). */
  readonly code: number;
  /** ClickHouse's error name, e.g. 'UNKNOWN_TABLE'. Also set as the Error's `name`. */
  override readonly name: string;
  /** The text exactly as ClickHouse produced it. */
  readonly raw: string;

  constructor(code: number, name: string, message: string, raw: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = name;
    this.raw = raw;
  }
}

/**
 * A refusal RaftHouse itself raises with a ClickHouse code (the gateway's GatewayError, the rules'
 * RuleError), so clients see a familiar error: the name comes from the one table (codes.ts).
 */
export class CodedError extends Error {
  readonly codeName: string;
  constructor(readonly code: number, message: string) {
    super(message);
    this.codeName = codeName(code);
  }

  /** ClickHouse's exception text, as an entry result carries it (the gateway's toFault reads it back). */
  exceptionText(): string {
    return exceptionText(this.code, this.message);
  }
}

/** A ClickHouseError RaftHouse raises itself, with ClickHouse's number, name and exception text for `name`. */
export function clickHouseError(name: CodeName, message: string, options?: { cause?: unknown }): ClickHouseError {
  const code = CODES[name];
  return new ClickHouseError(code, name, message, exceptionText(code, message), options);
}

export type EngineErrorCode =
  | 'ENGINE_UNREACHABLE'        // the server did not answer (connection refused, timeout, DNS)
  | 'ENGINE_CLOSED'             // the engine was closed
  | 'ENGINE_OPEN_FAILED'        // chdb could not open the data directory
  | 'ENGINE_BAD_REQUEST'        // a malformed call: bad INSERT statement, bad setting name or value
  | 'ENGINE_FORMAT_UNSUPPORTED' // this engine cannot carry this data format (embedded: binary formats)
  | 'ENGINE_UNSUPPORTED'        // the ClickHouse behind the engine lacks a needed capability
  | 'ENGINE_PROTOCOL';          // an answer we could not understand

/** A failure of the engine layer itself, not reported by ClickHouse. */
export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'EngineError';
  }
}

/** The connected ClickHouse cannot do a mode safely; `missing` names exactly what it lacks. */
export class EngineUnsupportedError extends EngineError {
  readonly missing: CapabilityName[];
  readonly version: string;
  readonly mode: string;
  constructor(message: string, missing: CapabilityName[], version: string, mode: string) {
    super('ENGINE_UNSUPPORTED', message);
    this.name = 'EngineUnsupportedError';
    this.missing = missing;
    this.version = version;
    this.mode = mode;
  }
}

// Modern form (20.x+): "Code: 60. DB::Exception: Table x does not exist. (UNKNOWN_TABLE) (version 26.7.2.1)".
// Errors re-thrown inside ClickHouse repeat the prefix: "Code: 164. DB::Exception: Code: 164. DB::Exception: ...".
const MODERN_RE = /Code:\s*(\d+)\.\s*DB::Exception:\s*/;
// Legacy form (18.16): "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist., e.what() = DB::Exception".
const LEGACY_RE = /Code:\s*(\d+),\s*e\.displayText\(\)\s*=\s*(?:DB::Exception:\s*)?/;
// The error name ClickHouse appends: upper case, digits and underscores, at least three letters in a
// row (so "(2)" or "(official build)" never match), at the END of the text, before the optional
// "(version V)". An upper-case word in parentheses inside the message (a throwIf text, a quoted
// value) is part of the message.
const NAME_RE = /\s*\(((?=[A-Z0-9_]*[A-Z]{3})[A-Z][A-Z0-9_]*)\)(?:\s*\(version [^()]*(?:\([^()]*\)[^()]*)?\))?\s*$/;

const ANY_NAME_RE = /\s*\(((?=[A-Z0-9_]*[A-Z]{3})[A-Z][A-Z0-9_]*)\)/g;

/**
 * Parses a ClickHouse error text in either form. Returns undefined when the text carries no
 * ClickHouse code (a proxy's HTML page, a socket error).
 */
export function parseClickHouseError(text: string, cause?: unknown): ClickHouseError | undefined {
  const raw = text.trim();
  const legacy = LEGACY_RE.exec(raw);
  const modern = MODERN_RE.exec(raw);
  // Whichever prefix comes first is the outer error.
  if (legacy && (!modern || legacy.index <= modern.index)) {
    const code = Number(legacy[1]);
    let message = raw.slice(legacy.index + legacy[0].length);
    const what = message.search(/,\s*e\.what\(\)\s*=/);
    if (what >= 0) message = message.slice(0, what);
    message = message.trim().replace(/\.$/, '');
    return new ClickHouseError(code, codeName(code), message, raw, { cause });
  }
  if (modern) {
    const code = Number(modern[1]);
    let message = raw.slice(modern.index + modern[0].length);
    // Peel repeated "Code: N. DB::Exception: " prefixes of re-thrown errors.
    for (let m = /^Code:\s*\d+\.\s*DB::Exception:\s*/.exec(message); m; m = /^Code:\s*\d+\.\s*DB::Exception:\s*/.exec(message)) {
      message = message.slice(m[0].length);
    }
    // Not at the end (text after it, e.g. a stack trace): the last such name in the text.
    const nameMatch = NAME_RE.exec(message) ?? [...message.matchAll(ANY_NAME_RE)].pop();
    let name = codeName(code);
    if (nameMatch) {
      name = nameMatch[1]!;
      message = message.slice(0, nameMatch.index);
      // A re-thrown error repeats the inner one's tail: "... mode. (READONLY) (version V). (READONLY)".
      for (let inner = NAME_RE.exec(message.replace(/\.$/, '')); inner; inner = NAME_RE.exec(message.replace(/\.$/, ''))) {
        message = message.slice(0, inner.index);
      }
    }
    message = message.trim().replace(/\.$/, '');
    return new ClickHouseError(code, name, message, raw, { cause });
  }
  return undefined;
}
