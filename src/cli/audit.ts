import fs from 'node:fs';
import { openModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { auditModel } from '../audit/audit.js';
import { auditFileStreaming } from '../audit/parallel.js';
import { checkBudgets } from '../audit/budget.js';
import { renderAuditHtml } from '../audit/render-html.js';
import { renderAuditText } from '../audit/render-text.js';
import type { GzipLevel } from '../audit/gzip.js';
import { parseJobs, parseOptions } from './args.js';
import { createProgress } from './progress.js';

export const AUDIT_HELP = `Usage: prunepack audit MODEL [--json] [--html REPORT.html] [--top N] [budgets]

Where the bytes of MODEL are and what each encoding would make of them. Per weight: consumer,
shape, dtype, bytes, share of zeros, zero structure (best block shape and its block sparsity,
N:M pattern, zero rows/columns), bytes under each candidate encoding (prunepack's sparse codecs,
and the TFLite or ONNX sparse forms), the encoding each target would choose and why, gzip bytes.
Totals: dense size, each target's exact output size and its gzip, the information bound, and
each one's ratio to it. FULLY_CONNECTED weights (TFLite): the share of zeros in whole 1x4 / 1x16
kernel blocks (and with --prune-cost what prune --block would cost). Weights with the most bytes saved come first.

Options:
  --json               the report as JSON on stdout (schema "prunepack.audit/1", docs/audit-schema.json)
  --html FILE          also write a self-contained HTML report (charts, zero patterns, tables)
  --top N              list only the first N weights (default 20 on the terminal, all with --json/--html)
  --gzip-level L       6 (default, fast) or 9 (gzip -9, several times slower) for every gzip figure
  --gzip-weights N     per-weight gzip and +deflate candidates for the first N weights only
                       (default 20; "all" for every weight; 0 for none: the slow part on big models)
  --prune-cost         FULLY_CONNECTED weights: also what prune --block would cost (extra zeros,
                       L1 removed); sums every value's magnitude, several times the rest's time
  --max-bytes N        budget: the target's output must be at most N bytes (exit code 4 otherwise)
  --min-ratio R        budget: dense bytes / target bytes must be at least R (exit code 4 otherwise)
  --target T           target of the budgets (default: tflite-sparse for TFLite, onnx-sparse for ONNX)
  --stream             one pass, one weight in memory at a time (TFLite read in pages): per-weight
                       analysis only, no writer targets (default for files of 512 MiB or more
                       without budgets)
  --no-stream          read the whole model and build every target, whatever its size
  --jobs N             threads for a streaming audit (default: one per core; 1 = this thread)
  --quiet              no progress bar on stderr
  --verbose            stack traces on errors

Examples:
  prunepack audit samples/cnn-synthetic-80.tflite
  prunepack audit model.tflite --html report.html --top 50
  prunepack audit model.onnx --json | jq '.totals.targets'
  prunepack audit model.tflite --max-bytes 300000 --min-ratio 2 --target tflite-sparse
  prunepack audit big-model.tflite --stream --json > audit.json`;

/** Files at least this large are audited streaming unless --no-stream or a budget is given. */
export const STREAM_THRESHOLD = 512 * 1024 * 1024;

function parseNumber(name: string, text: string | undefined, check: (n: number) => boolean, expected: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || !check(n)) {
    throw new PrunepackError('INVALID_ARGUMENT', `invalid ${name}`, { expected, found: text });
  }
  return n;
}

export async function runAudit(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({
    args, allowPositionals: true,
    options: {
      json: { type: 'boolean' }, html: { type: 'string' }, top: { type: 'string' }, 'gzip-level': { type: 'string' },
      'gzip-weights': { type: 'string' }, 'max-bytes': { type: 'string' }, 'min-ratio': { type: 'string' },
      target: { type: 'string' }, quiet: { type: 'boolean' }, verbose: { type: 'boolean' },
      stream: { type: 'boolean' }, 'no-stream': { type: 'boolean' }, jobs: { type: 'string' },
      'prune-cost': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) {
    throw new PrunepackError('INVALID_ARGUMENT', `audit takes one model path, got ${positionals.length}`, { hint: 'Usage: prunepack audit MODEL [--json] [--html REPORT.html]' });
  }
  const top = parseNumber('--top', values.top, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0');
  const gzipLevel = parseNumber('--gzip-level', values['gzip-level'], (n) => n === 6 || n === 9, '6 or 9') as GzipLevel | undefined;
  const gzipWeights = values['gzip-weights'] === 'all' ? null
    : parseNumber('--gzip-weights', values['gzip-weights'], (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0, or "all"') ?? 20;
  const maxBytes = parseNumber('--max-bytes', values['max-bytes'], (n) => Number.isSafeInteger(n) && n >= 0, 'a whole number of bytes');
  const minRatio = parseNumber('--min-ratio', values['min-ratio'], (n) => n > 0, 'a number > 0, e.g. 2.5');
  if (values.target !== undefined && maxBytes === undefined && minRatio === undefined) {
    throw new PrunepackError('INVALID_ARGUMENT', '--target names the target of a budget', { hint: 'Add --max-bytes N or --min-ratio R' });
  }
  const file = positionals[0]!;
  const jobs = parseJobs(values.jobs);
  if (values.stream && values['no-stream']) throw new PrunepackError('INVALID_ARGUMENT', '--stream and --no-stream contradict each other', { hint: 'Pass one of them' });
  const budgeted = maxBytes !== undefined || minRatio !== undefined;
  if (values.stream && budgeted) {
    throw new PrunepackError('INVALID_ARGUMENT', 'budgets need the target outputs, which a streaming audit does not build', { hint: 'Drop --stream (the model is then read whole), or drop the budget' });
  }
  let streaming = values.stream ?? false;
  if (!values.stream && !values['no-stream'] && !budgeted) {
    try { streaming = fs.statSync(file).size >= STREAM_THRESHOLD; } catch { /* openModel reports it */ }
  }

  const progress = createProgress({ quiet: values.quiet });
  let report;
  try {
    progress.phase(`reading ${file}`, 1);
    const common = {
      file,
      gzipLevel: gzipLevel ?? 6,
      top: top ?? (values.json || values.html !== undefined ? null : 20),
      gzipWeights: values['gzip-weights'] === undefined && streaming ? 0 : gzipWeights,
      zeroPatterns: values.html !== undefined ? 6 : 0,
      pruneCost: values['prune-cost'] ?? false,
      onProgress: progress.callback,
    };
    if (streaming) {
      // The input size for the report (a missing file is reported by the reader, with a hint).
      let inputBytes: number | undefined;
      try { inputBytes = fs.statSync(file).size; } catch { /* below */ }
      report = (await auditFileStreaming(file, { ...common, ...(inputBytes !== undefined ? { inputBytes } : {}), ...(jobs !== undefined ? { jobs } : {}) })).report;
    } else {
      const { model, source } = openModel(file);
      const fileBytes = source.fileSize ?? source.bytes.length;
      const wholeFile = source.bytes.length === fileBytes;
      report = auditModel(model, { ...common, ...(wholeFile ? { input: source.bytes } : {}), inputBytes: fileBytes });
    }
  } finally {
    progress.done();
  }
  const budgets = checkBudgets(report, { maxBytes, minRatio, target: values.target });

  if (values.html !== undefined) {
    try {
      fs.writeFileSync(values.html, renderAuditHtml(report));
    } catch (e) {
      throw new PrunepackError('IO', `cannot write ${values.html}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }
  if (values.json) {
    // The zero-pattern pictures are for the HTML page; they stay out of the JSON.
    const json = { ...report, weights: report.weights.map(({ zeroPattern: _, ...w }) => w) };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(`${renderAuditText(report)}\n`);
    if (values.html !== undefined) process.stdout.write(`HTML report: ${values.html}\n`);
  }
  const missed = budgets.filter((b) => !b.passed);
  for (const b of missed) process.stderr.write(`prunepack: budget missed (--${b.kind} ${b.limit}): ${b.message}\n`);
  return missed.length ? 4 : 0;
}
