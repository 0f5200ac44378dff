import fs from 'node:fs';
import path from 'node:path';
import { openModel, pruneModel, readModel, writeModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { protectInputFile, writeFileAtomic } from '../io/files.js';
import { formatInt, percent, table } from './format.js';
import { parseOptions } from './args.js';

export const PRUNE_HELP = `Usage: prunepack prune MODEL --sparsity S [--block RxC] -o OUT [--force] [--json]

One-shot magnitude pruning, for size what-ifs and for building test models.
NO fine-tuning happens: the model's accuracy is NOT preserved. Prune during training
(TensorFlow Model Optimization, torch.nn.utils.prune) for models you ship.

Every float32/float16/bfloat16/int8/uint8 weight of rank >= 2 with at least 64 elements gets
exactly round(count x S) zeros, smallest magnitudes first (dequantized for int8/uint8, per
channel). With --block, whole RxC blocks of the weight's matrix view (rows = first dimension,
columns = the rest) are zeroed by smallest L1 norm. The output keeps the input's format.

Options:
  --sparsity S    share of zeros, 0..1 (required)
  --block RxC     prune whole blocks, e.g. 1x4 (FULLY_CONNECTED's fast sparse kernel) or 1x16
  -o, --output    output path (required)
  --force         replace OUT if it exists (the input is never replaced)
  --json          per-weight report as JSON

Examples:
  prunepack prune model.tflite --sparsity 0.8 -o model-80.tflite
  prunepack prune model.tflite --sparsity 0.9 --block 1x4 -o model-90-1x4.tflite`;

export async function runPrune(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({
    args, allowPositionals: true,
    options: { sparsity: { type: 'string' }, block: { type: 'string' }, output: { type: 'string', short: 'o' }, force: { type: 'boolean' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } },
  });
  if (positionals.length !== 1) throw new PrunepackError('INVALID_ARGUMENT', 'prune takes one model path', { hint: 'Usage: prunepack prune MODEL --sparsity S -o OUT' });
  if (values.sparsity === undefined) throw new PrunepackError('INVALID_ARGUMENT', 'missing --sparsity', { hint: 'For example --sparsity 0.8' });
  if (!values.output) throw new PrunepackError('INVALID_ARGUMENT', 'missing -o OUT', { hint: 'prune writes a new model; name it with -o' });
  const sparsity = Number(values.sparsity);
  if (!(sparsity >= 0 && sparsity <= 1)) throw new PrunepackError('INVALID_ARGUMENT', '--sparsity must be between 0 and 1', { found: values.sparsity });
  let block: [number, number] | undefined;
  if (values.block) {
    const m = /^(\d+)x(\d+)$/.exec(values.block);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new PrunepackError('INVALID_ARGUMENT', '--block must look like RxC', { expected: 'e.g. 1x4', found: values.block });
    block = [Number(m[1]), Number(m[2])];
  }
  const input = positionals[0]!;
  const output = values.output;
  if (path.resolve(output) === path.resolve(input)) throw new PrunepackError('INVALID_ARGUMENT', 'the output would replace the input', { hint: 'Choose another path with -o' });
  if (fs.existsSync(output) && !fs.statSync(output).isDirectory() && !values.force) throw new PrunepackError('INVALID_ARGUMENT', `${output} exists`, { hint: 'Pass --force to replace it' });

  protectInputFile(input);
  const { model } = openModel(input);
  for (const file of model.companionFiles ?? []) protectInputFile(file);
  const pruned = pruneModel(model, { sparsity, block });
  if (model.format === 'tfjs') {
    // model.json + weight shards: written as a set, checked, then moved into place.
    const { writeTfjsFiles } = await import('../../converters/tfjs/files.js');
    await writeTfjsFiles(pruned.model, output, {
      target: 'tfjs', force: values.force, protect: [input],
      check: (staged) => { openModel(staged); },
    });
  } else {
    const bytes = writeModel(pruned.model, model.format);
    writeFileAtomic(output, bytes.length, [{ position: 0, bytes }], (temp) => {
      readModel({ bytes: fs.readFileSync(temp), path: output });
    });
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ input, output, sparsity, block: block?.join('x') ?? null, weights: pruned.results }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`${table(
    ['weight', 'elements', 'zeros before', 'zeros after', 'note'],
    pruned.results.map((r) => [r.name, formatInt(r.elements), percent(r.zerosBefore / r.elements), percent(r.zerosAfter / r.elements), r.pruned ? r.reason : `skipped: ${r.reason}`]),
    [false, true, true, true, false],
  )}\n${output}: ${pruned.results.filter((r) => r.pruned).length} weights pruned (no fine-tuning: accuracy is not preserved)\n`);
  return 0;
}
