/**
 * The one error class prunepack throws. Callers branch on `code`; the message always says
 * what went wrong, where (tensor name or byte offset), what was expected and what was found.
 */
export type ErrorCode =
  | 'UNKNOWN_FORMAT'      // no plugin recognises the bytes
  | 'TRUNCATED'           // the file ends before a structure it declares
  | 'CORRUPT'             // a field is out of range or inconsistent with the bytes
  | 'UNSUPPORTED'         // well-formed, but something prunepack does not handle
  | 'INVALID_SPARSITY'    // sparsity metadata fails the verifier's checks
  | 'INVALID_ARGUMENT'    // a caller or command-line mistake
  | 'IO'                  // reading or writing a file failed
  | 'UNSAFE_PATH'         // a path inside a model points outside the model's folder
  | 'VERIFY_FAILED'       // written output does not match the input
  | 'RUNTIME';            // a real runtime refused or failed on a model

export interface ErrorDetails {
  format?: string;
  /** Tensor name, operator, or `byte 1234`. */
  location?: string;
  expected?: string;
  found?: string;
  /** What the user can do about it. */
  hint?: string;
  cause?: unknown;
}

export class PrunepackError extends Error {
  readonly code: ErrorCode;
  readonly format?: string;
  readonly location?: string;
  readonly expected?: string;
  readonly found?: string;
  readonly hint?: string;

  constructor(code: ErrorCode, what: string, details: ErrorDetails = {}) {
    super(formatMessage(what, details), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'PrunepackError';
    this.code = code;
    this.format = details.format;
    this.location = details.location;
    this.expected = details.expected;
    this.found = details.found;
    this.hint = details.hint;
  }
}

function formatMessage(what: string, d: ErrorDetails): string {
  let message = d.format ? `${d.format}: ${what}` : what;
  if (d.location) message += ` (at ${d.location})`;
  if (d.expected !== undefined || d.found !== undefined) {
    message += `: expected ${d.expected ?? '?'}, found ${d.found ?? '?'}`;
  }
  if (d.hint) message += `. ${d.hint}`;
  return message;
}

export function isPrunepackError(e: unknown): e is PrunepackError {
  return e instanceof PrunepackError;
}
