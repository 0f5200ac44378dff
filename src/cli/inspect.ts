import { inspectModel, openModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { formatBytes, formatInt, percent, table } from './format.js';
import { parseOptions } from './args.js';

export const INSPECT_HELP = `Usage: prunepack inspect MODEL [--json]

Prints the model's format and version, its operators, and one row per weight:
name, consumer (operator:input, through DENSIFY/DEQUANTIZE where present), shape,
dtype, stored bytes, share of zeros, and whether it is already stored sparse.

Options:
  --json      the same as JSON (schema "prunepack.inspect/1") on stdout
  --verbose   stack traces on errors

Examples:
  prunepack inspect samples/cnn-synthetic-80.tflite
  prunepack inspect model.tflite --json > weights.json`;

export async function runInspect(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({ args, allowPositionals: true, options: { json: { type: 'boolean' }, verbose: { type: 'boolean' } } });
  if (positionals.length !== 1) {
    throw new PrunepackError('INVALID_ARGUMENT', `inspect takes one model path, got ${positionals.length}`, { hint: 'Usage: prunepack inspect MODEL [--json]' });
  }
  const file = positionals[0]!;
  const { model, plugin, source } = openModel(file);
  const report = inspectModel(model);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ file, fileBytes: source.fileSize ?? source.bytes.length, ...report }, null, 2)}\n`);
    return 0;
  }
  const out: string[] = [];
  out.push(`${file}: ${plugin.name}, version ${report.version}, ${formatBytes(source.fileSize ?? source.bytes.length)}`);
  out.push(`operators: ${report.operators.map((o) => `${o.op} x${o.count}`).join(', ') || 'none'}`);
  const t = report.totals;
  out.push(`weights: ${t.weights}, ${formatBytes(t.storedBytes)} stored, ${formatBytes(t.denseBytes)} dense, ${percent(t.elements ? t.zeros / t.elements : null)} zeros`);
  out.push('');
  out.push(table(
    ['weight', 'consumer', 'shape', 'dtype', 'bytes', 'zeros', 'sparse'],
    report.weights.map((w) => [
      w.name, w.consumers.join(', ') || '-', `[${w.shape.join(',')}]`, w.dtype, formatInt(w.bytes), percent(w.zeroShare), w.storedSparse ? 'yes' : 'no',
    ]),
    [false, false, false, false, true, true, false],
  ));
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
