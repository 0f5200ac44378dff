/**
 * `prunepack unpack PACK [-o OUT]`, and `prunepack convert MODEL --to pack` (called from convert.ts).
 * Packs: docs/pack-format.md.
 */
import { parseOptions } from './args.js';
import { PrunepackError } from '../errors.js';
import { formatInt } from './format.js';
import { defaultPackPath, packModelFile, unpackToDisk, writePackFile } from '../pack/node.js';

export const UNPACK_HELP = `Usage: prunepack unpack PACK [-o OUT] [--force]

Restores the model file(s) of a pack written by \`convert MODEL --to pack\`: every weight decoded
and checked against its CRC-32, every file against its CRC-32. Multi-file models (ONNX with
external data, TF.js model.json + shards) are restored beside OUT under their original names.

Options:
  -o, --output OUT   path of the model file (default: its original name in the pack's folder)
  --force            replace existing files
  --json             print the summary as JSON`;

export async function runUnpack(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({
    args, allowPositionals: true,
    options: { output: { type: 'string', short: 'o' }, force: { type: 'boolean' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } },
  });
  if (positionals.length !== 1) throw new PrunepackError('INVALID_ARGUMENT', 'unpack takes one pack path', { hint: 'Usage: prunepack unpack PACK [-o OUT]' });
  const { restored, written } = unpackToDisk(positionals[0]!, values.output, { force: values.force ?? false });
  const summary = {
    pack: positionals[0], format: restored.format, exact: restored.exact, byteIdentical: restored.byteIdentical,
    files: written.map((p, i) => ({ path: p, bytes: [...restored.files.values()][i]!.length })),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    for (const f of summary.files) process.stdout.write(`${f.path}: ${formatInt(f.bytes)} B\n`);
    process.stdout.write(restored.byteIdentical ? 'byte-identical to the packed model\n' : 'numerically identical to the packed model (negative zeros restored as +0; pack with --exact for byte-identical files)\n');
  }
  return 0;
}

/** The `pack` target of `convert` (its own options: -o, --exact, --force, --json). */
export async function runConvertPack(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({
    args, allowPositionals: true,
    options: {
      to: { type: 'string' }, output: { type: 'string', short: 'o' }, exact: { type: 'boolean' }, force: { type: 'boolean' },
      json: { type: 'boolean' }, verbose: { type: 'boolean' }, 'no-verify': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new PrunepackError('INVALID_ARGUMENT', 'convert takes one model path', { hint: 'Usage: prunepack convert MODEL --to pack [-o OUT] [--exact]' });
  const input = positionals[0]!;
  const output = values.output ?? defaultPackPath(input);
  const { bytes, report } = packModelFile(input, { exact: values.exact ?? false, skipSelfCheck: values['no-verify'] ?? false });
  writePackFile(output, bytes, values.force ?? false);
  const summary = {
    input, output, target: 'pack', format: report.format, inputBytes: report.inputBytes, outputBytes: report.packBytes,
    ratio: report.packBytes / report.inputBytes, exact: report.exact, byteIdentical: report.byteIdentical,
    skeletonBytes: report.skeletonBytes, poolBytes: report.poolBytes, pooledWeights: report.pooledWeights, weights: report.weights, skipped: report.skipped,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`${output}: ${formatInt(report.packBytes)} B from ${formatInt(report.inputBytes)} B, ratio ${summary.ratio.toFixed(3)}x\n`);
  process.stdout.write(`${report.weights.length} weights encoded (${report.pooledWeights} small ones in the shared pool, ${formatInt(report.poolBytes)} B), ${report.skipped.length + report.kept.length} left in the skeleton (${formatInt(report.skeletonBytes)} B deflated)\n`);
  process.stdout.write(report.byteIdentical ? 'unpack restores the input byte for byte\n'
    : 'unpack restores the same numbers; negative zeros come back as +0 (use --exact for byte-identical files)\n');
  return 0;
}
