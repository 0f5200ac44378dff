import path from 'node:path';
import { openModel, readModel, writeModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { writeFileAtomic } from '../io/files.js';
import { formatBytes } from './format.js';
import { parseOptions } from './main.js';
import fs from 'node:fs';

export const CONVERT_HELP = `Usage: prunepack convert MODEL --to TARGET [-o OUT] [--force] [--json]

Writes MODEL for TARGET. The output is written to a temporary file next to OUT, read
back and checked (every weight compared with the input), and only then renamed to OUT.

Targets (this version): tflite (plain TFLite, lossless rewrite).

Options:
  --to TARGET     target format (required)
  -o, --output    output path (default: MODEL with ".TARGET" before the extension)
  --force         replace OUT if it exists (the input itself is never replaced)
  --json          print the summary as JSON
  --verbose       stack traces on errors

Examples:
  prunepack convert model.tflite --to tflite -o model.rewritten.tflite`;

export async function runConvert(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({
    args, allowPositionals: true,
    options: { to: { type: 'string' }, output: { type: 'string', short: 'o' }, force: { type: 'boolean' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } },
  });
  if (positionals.length !== 1) throw new PrunepackError('INVALID_ARGUMENT', 'convert takes one model path', { hint: 'Usage: prunepack convert MODEL --to TARGET [-o OUT]' });
  if (!values.to) throw new PrunepackError('INVALID_ARGUMENT', 'missing --to TARGET', { hint: 'For example: --to tflite' });
  const input = positionals[0]!;
  const target = values.to;
  const ext = path.extname(input);
  const output = values.output ?? `${input.slice(0, input.length - ext.length)}.${target}${ext}`;
  if (path.resolve(output) === path.resolve(input)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'the output would replace the input', { hint: 'Choose another path with -o' });
  }
  if (fs.existsSync(output) && !values.force) {
    throw new PrunepackError('INVALID_ARGUMENT', `${output} exists`, { hint: 'Pass --force to replace it, or choose another path with -o' });
  }
  const { model, source } = openModel(input);
  const bytes = writeModel(model, target);
  writeFileAtomic(output, bytes.length, [{ position: 0, bytes }], (temp) => {
    const written = readModel({ bytes: fs.readFileSync(temp), path: output }).model;
    verifyWeightsEqual(model, written);
  });
  const inputBytes = source.fileSize ?? source.bytes.length;
  const summary = { input, output, target, inputBytes, outputBytes: bytes.length, ratio: inputBytes / bytes.length, weightsVerified: model.weights.length };
  if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else process.stdout.write(`${output}: ${formatBytes(bytes.length)} (input ${formatBytes(inputBytes)}, ratio ${summary.ratio.toFixed(3)}x), ${summary.weightsVerified} weights verified\n`);
  return 0;
}

/** Every weight of `a` must have a weight of the same name in `b` with identical dense bytes. */
export function verifyWeightsEqual(a: import('../model/types.js').Model, b: import('../model/types.js').Model): void {
  const byName = new Map(b.weights.map((w) => [w.name, w]));
  for (const w of a.weights) {
    const other = byName.get(w.name);
    if (!other) throw new PrunepackError('VERIFY_FAILED', 'a weight is missing from the output', { location: w.name });
    const x = w.denseBytes();
    const y = other.denseBytes();
    if (x.length !== y.length || Buffer.compare(x, y) !== 0) {
      throw new PrunepackError('VERIFY_FAILED', 'a weight differs in the output', { location: w.name, expected: `${x.length} bytes`, found: `${y.length} bytes, different` });
    }
  }
}
