import path from 'node:path';
import fs from 'node:fs';
import { parseJobs, parseOptions } from './args.js';
import { Gzip, gzipSync } from 'fflate';
import { openModel, readModel, writeModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { openPagedSource, protectInputFile, readModelSource, writeFileAtomic, type Chunk } from '../io/files.js';
import { defaultJobs } from '../parallel/pool.js';
import type { Model, WeightTensor } from '../model/types.js';
import { byteLengthOf, dtypeBits, elementCount, typedView } from '../model/dtype.js';
import { firstSparseMismatch } from '../sparsity/format-converter.js';
import { verifySparsity } from '../sparsity/verify-sparsity.js';
import { formatBytes, formatInt, percent, table } from './format.js';
import { tfliteDocumentOf } from '../../converters/tflite/index.js';
import { tensorDType } from '../../converters/tflite/model-view.js';
import { densifyTfliteValues } from '../../converters/tflite/sparse-values.js';
import type { SparsityParams } from '../sparsity/types.js';
import { densifyTfliteDocument } from '../../converters/tflite/densify.js';
import { BLOCK_CHOICES, type BlockChoice, type SparsePlan, type SparsePlanEntry } from '../../converters/tflite/sparse-plan.js';
import {
  createRuntimeCheck, MIN_PARALLEL_BYTES, prestartWeightPool, sparsifyTfliteAsync, sparsifyTfliteChecked, type RuntimeComparison, type SparsifyResult,
} from '../../converters/tflite/sparse-write.js';
import { assembleLayout, layoutTflite, type TfliteLayout } from '../../converters/tflite/write.js';
import { DEFAULT_OPTIMIZE, DEFAULT_RUNTIME, OPTIMIZE_GOALS, runtimeProfile, runtimeProfileNames, type OptimizeGoal } from '../../converters/tflite/latency.js';
import { tfjsDocumentOf, type TfjsPlanEntry } from '../../converters/tfjs/index.js';
import { resolveTfjsOutput, writeTfjsFiles } from '../../converters/tfjs/files.js';
import { defaultExternalLocation, onnxNeedsExternalData, writeOnnxFiles } from '../../converters/onnx/files.js';

export const CONVERT_HELP = `Usage: prunepack convert MODEL --to TARGET [-o OUT] [options]

Writes MODEL for TARGET and verifies it: the output goes to a temporary file next to OUT, is
read back (every weight decoded and compared with the input's dense values), both models run
in their runtime (TFLite WASM for TFLite, onnxruntime-node for ONNX) on the same deterministic
inputs, and only then is it renamed to OUT.

Targets:
  tflite          plain dense TFLite: sparse tensors expanded, DENSIFY operators removed,
                  FULLY_CONNECTED versions restored (for TFLite Micro, tflite2onnx, viewers)
  tflite-sparse   sparse TFLite that TFLite runtimes run: every float32 / float16 / int8 weight
                  with enough zeros, in the smallest layout its consumer reads (FULLY_CONNECTED
                  natively, everything else through DENSIFY); weights the runtime refuses stay dense
  onnx            plain dense ONNX: every sparse tensor expanded (lossless otherwise)
  onnx-sparse     ONNX with checker-valid sparse tensors where they are smaller (file size only:
                  onnxruntime densifies them at load)
  tfjs            plain dense TensorFlow.js (MODEL is a model.json): re-sharded, every other
                  model.json field kept; OUT is a folder (or a .json path in one)
  tfjs-sparse     TensorFlow.js with sparse weights (docs/tfjs-sparse.md), loaded through the
                  prunepack/tfjs IOHandler; standard TF.js loaders refuse it
  pack            one compact, verifiable file (docs/pack-format.md), restored by \`unpack\` or
                  the prunepack/pack loader; --exact makes the restore byte-identical in every case

Options:
  --to TARGET          target format (required)
  -o, --output OUT     output path (default: MODEL with ".TARGET" before the extension)
  --min-sparsity S     tflite-sparse: least share of zeros to store a weight sparse (default 0.3)
  --block B            tflite-sparse: auto | none | 1x4 | 1x16 block shapes allowed (default auto)
  --keep-dense NAME    tflite-sparse: leave this tensor dense (repeatable)
  --optimize GOAL      tflite-sparse: size | balanced | latency (default balanced: the smallest file
                       not predicted slower than dense in the runtime; latency: the fastest
                       encodings; size: the smallest file). See docs/performance.md
  --runtime NAME       tflite-sparse: litert | tfjs-tflite, the runtime the plan is tuned for and
                       checked in first (default litert)
  --jobs N             tflite-sparse: threads for the weight analysis and encoding (default: the
                       number of cores; 1 = this thread only); the output is the same for any N
  --external-data F    onnx, onnx-sparse: tensors of 1 KiB or more go to the data file F, next to
                       OUT (default: kept inline; the input's external data stays external, in
                       OUT.data, and so does everything when the model would reach 2 GiB)
  --shard-size N       tfjs, tfjs-sparse: shard size in bytes, or with KiB/MiB (default 4MiB)
  --no-verify          skip the read-back and the runtime check (models over 2 GB: the runtime
                       check is always skipped, the read-back decodes and compares every weight)
  --force              replace OUT if it exists (the input itself is never replaced)
  --json               print the summary (and the plan) as JSON
  --verbose            stack traces on errors

Examples:
  prunepack convert model.tflite --to tflite-sparse -o model.sparse.tflite
  prunepack convert model.tflite --to tflite-sparse --block 1x4 --keep-dense embedding
  prunepack convert model.sparse.tflite --to tflite -o model.dense.tflite
  prunepack convert model.onnx --to onnx-sparse -o model.sparse.onnx
  prunepack convert big.onnx --to onnx-sparse -o out/big.onnx --external-data big.onnx.data
  prunepack convert web/model.json --to tfjs-sparse -o web-sparse/`;

interface SizeSummary {
  inputBytes: number;
  outputBytes: number;
  ratio: number;
  inputGzipBytes: number;
  outputGzipBytes: number;
  gzipRatio: number;
}

export async function runConvert(args: string[]): Promise<number> {
  // --- pack target (src/cli/unpack.ts, docs/pack-format.md): its own options, handled apart. ---
  if (isPackTarget(args)) return (await import('./unpack.js')).runConvertPack(args);
  const { values, positionals } = parseConvertArgs(args);
  if (positionals.length !== 1) throw new PrunepackError('INVALID_ARGUMENT', 'convert takes one model path', { hint: 'Usage: prunepack convert MODEL --to TARGET [-o OUT]' });
  if (!values.to) throw new PrunepackError('INVALID_ARGUMENT', 'missing --to TARGET', { hint: 'For example: --to tflite-sparse' });
  const input = positionals[0]!;
  const target = values.to;
  const verify = !values['no-verify'];
  if (target === 'tfjs' || target === 'tfjs-sparse') return runConvertTfjs(input, target, values);
  if (values['shard-size'] !== undefined) {
    throw new PrunepackError('INVALID_ARGUMENT', '--shard-size applies to TF.js targets only', { expected: '--to tfjs or --to tfjs-sparse', found: `--to ${target}` });
  }
  const sparseOptionsGiven = values['min-sparsity'] !== undefined || values.block !== undefined || values['keep-dense'] !== undefined
    || values.optimize !== undefined || values.runtime !== undefined || values.jobs !== undefined;
  if (sparseOptionsGiven && target !== 'tflite-sparse') {
    throw new PrunepackError('INVALID_ARGUMENT', '--min-sparsity, --block, --keep-dense, --optimize, --runtime and --jobs apply to one target only', { expected: '--to tflite-sparse', found: `--to ${target}` });
  }
  if (values['external-data'] !== undefined && target !== 'onnx' && target !== 'onnx-sparse') {
    throw new PrunepackError('INVALID_ARGUMENT', '--external-data applies to ONNX targets only', { expected: '--to onnx or --to onnx-sparse', found: `--to ${target}` });
  }
  const jobs = parseJobs(values.jobs) ?? defaultJobs();
  const { optimize, runtime: tunedFor } = parseLatencyOptions(values.optimize, values.runtime);
  let minSparsity = 0.3;
  if (values['min-sparsity'] !== undefined) {
    minSparsity = Number(values['min-sparsity']);
    if (!(minSparsity >= 0 && minSparsity <= 1)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'invalid --min-sparsity', { expected: 'a number in [0, 1], e.g. 0.3', found: values['min-sparsity'] });
    }
  }
  const block = (values.block ?? 'auto') as BlockChoice;
  if (!BLOCK_CHOICES.includes(block)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'invalid --block', { expected: BLOCK_CHOICES.join(' | '), found: values.block });
  }
  const ext = path.extname(input);
  const output = values.output ?? `${input.slice(0, input.length - ext.length)}.${target}${ext}`;
  if (path.resolve(output) === path.resolve(input)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'the output would replace the input', { hint: 'Choose another path with -o' });
  }
  if (fs.existsSync(output) && !values.force) {
    throw new PrunepackError('INVALID_ARGUMENT', `${output} exists`, { hint: 'Pass --force to replace it, or choose another path with -o' });
  }
  protectInputFile(input);
  if (target === 'tflite-sparse' && jobs > 1 && (fs.statSync(input, { throwIfNoEntry: false })?.size ?? 0) >= MIN_PARALLEL_BYTES) {
    // The worker threads start and load their code while the model is read (errors, if any,
    // surface when they are used).
    prestartWeightPool(jobs).catch(() => undefined);
  }
  // Worker threads read the weights where they are: in shared memory.
  const source = readModelSource(input, { shared: target === 'tflite-sparse' && jobs > 1 });
  const { model } = readModel(source);
  for (const file of model.companionFiles ?? []) protectInputFile(file);
  const inputBytes = source.fileSize ?? source.bytes.length;

  const onnxTarget = model.format === 'onnx' && (target === 'onnx' || target === 'onnx-sparse');
  if (onnxTarget && (values['external-data'] !== undefined || onnxNeedsExternalData(model, target))) {
    return runConvertOnnxFiles(model, source.path ?? input, target, output, values, inputBytes);
  }

  // The output as pieces (flatbuffer head + weight views for TFLite), streamed to the file.
  let written: Pick<TfliteLayout, 'head' | 'pieces' | 'totalSize'>;
  let sparse: SparsifyResult | undefined;
  let runtime: RuntimeComparison | undefined;
  let runtimeSkipped: string | null = null;
  let densifyReport: ReturnType<typeof densifyTfliteDocument>['report'] | undefined;
  const tfliteTarget = model.format === 'tflite' && (target === 'tflite' || target === 'tflite-sparse');
  if (tfliteTarget && verify) {
    // The WASM runtimes hold at most 2 GB and need about 3x the dense model in it (the file, the
    // weights XNNPACK packs, DENSIFY outputs); the read-back still decodes every weight.
    const dense = expandedBytes(model, inputBytes);
    if (dense > RUNTIME_CHECK_MAX_BYTES) {
      runtimeSkipped = `runtime check skipped: the dense model (${formatBytes(dense)}) is larger than the TFLite WASM runtimes hold `
        + `(${formatBytes(RUNTIME_CHECK_MAX_BYTES)}); every weight decoded and compared instead`;
    }
  }
  const reference = tfliteTarget && verify && !runtimeSkipped ? await runtimeReference(source.bytes, target === 'tflite-sparse' ? tunedFor : undefined) : undefined;

  if (tfliteTarget && target === 'tflite-sparse') {
    const doc = tfliteDocumentOf(model);
    // With the read-back (below), every written weight is compared with its dense values there:
    // the encoder checks the metadata only, and the values are compared once, not twice.
    const options = { minSparsity, block, keepDense: values['keep-dense'] ?? [], optimize, runtime: tunedFor, jobs, checkValues: !verify };
    sparse = reference ? await sparsifyTfliteChecked(doc, options, reference.check) : await sparsifyTfliteAsync(doc, options);
    written = sparse.layout;
    runtime = reference?.last() ?? undefined;
    densifyReport = sparse.densifyReport;
  } else if (tfliteTarget && target === 'tflite') {
    const densified = densifyTfliteDocument(tfliteDocumentOf(model));
    densifyReport = densified.report;
    written = layoutTflite(densified.doc);
    if (reference) {
      runtime = await reference.compare(assembleLayout(written));
      // The input ran other kernels when it was sparse (native sparse FC, XNNPACK sparse inference).
      const wasSparse = densified.report.densifiedTensors > 0;
      if (!runtime.bitIdentical && !(wasSparse && runtime.withinTolerance)) {
        throw new PrunepackError('VERIFY_FAILED', 'the dense model computes different outputs in the TFLite runtime', {
          location: output, expected: wasSparse ? `differences within ${runtime.tolerance} relative` : 'bit-identical outputs',
          found: `max abs ${runtime.maxAbsDiff}, max rel ${runtime.maxRelDiff}`,
        });
      }
    }
  } else {
    const bytes = writeModel(model, target);
    written = { head: bytes, pieces: [], totalSize: bytes.length };
    if (verify && model.format === 'onnx') {
      // Both models in onnxruntime-node on the same deterministic inputs.
      const { compareOnnxModels } = await import('../verify/onnx-runtime.js');
      const comparison = await compareOnnxModels(source.path ?? source.bytes, bytes);
      runtime = {
        engine: comparison.runtime, seeds: [1], bitIdentical: comparison.bitIdentical, withinTolerance: comparison.bitIdentical,
        tolerance: 0, maxAbsDiff: comparison.maxAbsDiff, maxRelDiff: comparison.maxRelDiff,
        outputs: comparison.outputs.map((o) => ({ ...o, referenceMaxAbs: Number.NaN })),
      };
      if (!comparison.bitIdentical) {
        throw new PrunepackError('VERIFY_FAILED', 'the written model computes different outputs in onnxruntime', {
          location: output, expected: 'bit-identical outputs', found: `max abs ${comparison.maxAbsDiff}, max rel ${comparison.maxRelDiff}`,
        });
      }
    }
  }

  writeFileAtomic(output, written.totalSize, [{ position: 0, bytes: written.head }, ...written.pieces], verify ? (temp) => verifyReadBack(model, temp, output) : undefined);

  const sizes = sizeSummary(source.bytes, inputBytes, written);
  const summary = {
    input, output, target, ...sizes,
    weightsVerified: verify ? model.weights.length : null,
    runtime: runtime ?? null,
    ...(runtimeSkipped ? { runtimeSkipped } : {}),
    ...(densifyReport ? { densify: densifyReport } : {}),
    ...(sparse ? { threads: sparse.threads } : {}),
    ...(sparse ? { plan: planJson(sparse.plan), xnnpack: { ...sparse.plan.xnnpack, observed: xnnpackObserved(sparse, runtime) }, refusals: sparse.refusals } : {}),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  const lines: string[] = [];
  if (sparse) lines.push(planTable(sparse.plan), '');
  lines.push(`${output}: ${formatBytes(sizes.outputBytes)} (${formatInt(sizes.outputBytes)} B) from ${formatBytes(sizes.inputBytes)} (${formatInt(sizes.inputBytes)} B), ratio ${sizes.ratio.toFixed(3)}x`);
  lines.push(Number.isFinite(sizes.gzipRatio)
    ? `gzip -9: ${formatInt(sizes.outputGzipBytes)} B from ${formatInt(sizes.inputGzipBytes)} B, ratio ${sizes.gzipRatio.toFixed(3)}x`
    : `gzip -9: not computed for models over ${formatBytes(GZIP_SUMMARY_LIMIT)} (it would take longer than the conversion)`);
  if (densifyReport && (densifyReport.densifiedTensors || densifyReport.removedDensifyOps)) {
    lines.push(`input densified: ${densifyReport.densifiedTensors} sparse tensors expanded, ${densifyReport.removedDensifyOps} DENSIFY removed, ${densifyReport.restoredFullyConnected.length} FULLY_CONNECTED version(s) restored`);
  }
  if (sparse) {
    const t = sparse.plan.totals;
    lines.push(`sparse weights: ${t.sparseWeights} (${t.densifyOps} through DENSIFY, ${t.nativeOperators} FULLY_CONNECTED reading natively); analyzed and encoded on ${sparse.threads} thread${sparse.threads > 1 ? 's' : ''}`);
    lines.push(latencyLine(sparse.plan));
    lines.push(`XNNPACK fast sparse inference: ${sparse.plan.xnnpack.expected ? 'expected' : sparse.plan.xnnpack.qualifies ? 'not expected (zeros threshold met, operator pattern does not fit)' : 'not expected'} (${sparse.plan.xnnpack.reason})`);
    const observed = xnnpackObserved(sparse, runtime);
    if (observed !== null) {
      lines.push(observed ? 'XNNPACK ran its sparse kernels in the runtime (outputs differ from the dense model in the last bits)'
        : 'XNNPACK kept its dense kernels in the runtime (outputs bit-identical to the dense model)');
    }
    for (const r of sparse.refusals) lines.push(`runtime refused, kept dense: ${r.tensors.join(', ')}: ${r.reason}`);
  }
  if (verify) lines.push(`${model.weights.length} weights verified`);
  if (runtime) {
    const how = runtime.bitIdentical ? 'bit-identical outputs'
      : `outputs within ${runtime.tolerance.toExponential()} relative (max abs ${runtime.maxAbsDiff.toExponential(3)}, max rel ${runtime.maxRelDiff.toExponential(3)})`;
    lines.push(`runtime ${runtime.engine}: ${how}`);
  } else if (runtimeSkipped) {
    lines.push(runtimeSkipped);
  } else if (!verify) {
    lines.push('not verified (--no-verify)');
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/** Options of `convert`. */
/** `--to pack` / `--to=pack` (the pack branch of runConvert). */
function isPackTarget(args: readonly string[]): boolean {
  return args.some((a, i) => a === '--to=pack' || (a === '--to' && args[i + 1] === 'pack'));
}

function parseConvertArgs(args: string[]) {
  return parseOptions({
    args, allowPositionals: true,
    options: {
      to: { type: 'string' }, output: { type: 'string', short: 'o' }, force: { type: 'boolean' }, json: { type: 'boolean' },
      verbose: { type: 'boolean' }, 'min-sparsity': { type: 'string' }, block: { type: 'string' },
      'keep-dense': { type: 'string', multiple: true }, 'no-verify': { type: 'boolean' }, optimize: { type: 'string' }, runtime: { type: 'string' }, 'shard-size': { type: 'string' },
      jobs: { type: 'string' }, 'external-data': { type: 'string' },
    },
  });
}

/** --optimize and --runtime (tflite-sparse). */
function parseLatencyOptions(optimize: string | undefined, runtime: string | undefined): { optimize: OptimizeGoal; runtime: string } {
  const goal = (optimize ?? DEFAULT_OPTIMIZE) as OptimizeGoal;
  if (!OPTIMIZE_GOALS.includes(goal)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'invalid --optimize', { expected: OPTIMIZE_GOALS.join(' | '), found: optimize });
  }
  const name = runtime ?? DEFAULT_RUNTIME;
  if (!runtimeProfileNames().includes(name)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'invalid --runtime', { expected: runtimeProfileNames().join(' | '), found: runtime });
  }
  return { optimize: goal, runtime: name };
}

/** One line: what the plan was optimized for, and its predicted effect on inference time. */
function latencyLine(plan: SparsePlan): string {
  const { optimize, runtime } = plan.options;
  const profile = runtimeProfile(runtime);
  const native = plan.entries.filter((e) => e.route === 'native' && e.cost);
  const predicted = native.length
    ? `${native.length} FULLY_CONNECTED weight(s) read natively, predicted ${native.map((e) => `${e.cost!.relativeCost.toFixed(2)}x`).join(', ')} dense time`
    : 'no weight read natively: inference runs the dense kernels (DENSIFY expands weights once at start-up)';
  const xnnpack = plan.xnnpack.expected ? `; XNNPACK sparse mode expected${profile.xnnpackSparse ? ` (measured ${profile.xnnpackSparse.speedup.toFixed(2)}x on ${profile.xnnpackSparse.model})` : ''}` : '';
  return `optimized for ${optimize} in ${runtime} (cost table measured ${profile.measured.date}): ${predicted}${xnnpack}`;
}

/**
 * The runtime check against the input: LiteRT first (or the runtime the plan is tuned for), the
 * older tfjs-tflite runtime when LiteRT cannot run the input (it refuses variable tensors, e.g.
 * LSTM state); an error when none can.
 */
async function runtimeReference(bytes: Uint8Array, preferred?: string) {
  const { loadTfliteRuntime, ENGINE_NAMES } = await import('../verify/tflite-runtime.js');
  const failures: string[] = [];
  const order = [...ENGINE_NAMES].sort((a, b) => Number(b === preferred) - Number(a === preferred));
  for (const name of order) {
    try {
      return await createRuntimeCheck(bytes, { engine: await loadTfliteRuntime(name) });
    } catch (e) {
      if (!(e instanceof PrunepackError && (e.code === 'RUNTIME' || e.code === 'UNSUPPORTED'))) throw e;
      failures.push(e.message.split('\n')[0]!);
    }
  }
  throw new PrunepackError('RUNTIME', `no TFLite runtime can run the input model, so the output cannot be checked against it: ${failures.join('; ')}`, {
    hint: 'Pass --no-verify to convert without the runtime check',
  });
}

/**
 * Whether the runtime run shows XNNPACK's sparse kernels at work: through DENSIFY alone the
 * arithmetic is that of the dense model, so any difference in the outputs comes from them.
 * Null when it cannot be told (no runtime run, FULLY_CONNECTED reads sparse weights natively, or
 * the input was sparse already).
 */
function xnnpackObserved(result: SparsifyResult, runtime: RuntimeComparison | undefined): boolean | null {
  const { plan } = result;
  if (!runtime || !plan.xnnpack.qualifies || plan.entries.some((e) => e.route === 'native')) return null;
  if (result.densifyReport.densifiedTensors > 0) return null; // the reference was sparse itself
  return !runtime.bitIdentical;
}

/**
 * Largest dense model checked in the TFLite WASM runtime. Measured (LiteRT 2.5.3, tfjs-tflite
 * alpha.10): a 256 MiB dense FULLY_CONNECTED model took 560 MB of WASM heap, its DENSIFY version
 * 720-780 MB; a 1 GiB one aborted in both (their memory ends at 2 GB).
 */
export const RUNTIME_CHECK_MAX_BYTES = 512 << 20;

/** Bytes of the model with every weight dense (what a runtime holds once DENSIFY has run), without loading any weight. */
function expandedBytes(model: Model, fileBytes: number): number {
  const doc = tfliteDocumentOf(model);
  let stored = 0;
  let dense = 0;
  doc.model.subgraphs.forEach((sg, s) => sg.tensors.forEach((t, i) => {
    const buffer = doc.buffers[t.buffer];
    if (t.buffer <= 0 || !buffer?.hasData) return;
    stored += buffer.byteLength;
    dense += t.sparsity ? Math.ceil((elementCount(t.shape) * dtypeBits(tensorDType(t.type, `subgraph ${s} tensor ${i}`))) / 8) : buffer.byteLength;
  }));
  return fileBytes - stored + dense;
}

/**
 * gzip -9 (fflate, as `audit`) runs at 2-5 MB/s on weights, several times slower than the
 * conversion itself: above this input size the summary leaves it out rather than spend most of the
 * run on a number beside the point of the conversion.
 */
const GZIP_SUMMARY_LIMIT = 16 << 20;

function sizeSummary(inputHead: Uint8Array, inputBytes: number, output: { head: Uint8Array; pieces: Chunk[]; totalSize: number }): SizeSummary {
  const gz = (b: Uint8Array) => gzipSync(b, { level: 9 }).length;
  const small = inputHead.length === inputBytes && inputBytes <= GZIP_SUMMARY_LIMIT;
  const inputGzipBytes = small ? gz(inputHead) : NaN;
  const outputGzipBytes = small ? gz(output.pieces.length ? assembleLayout(output) : output.head) : NaN;
  return {
    inputBytes, outputBytes: output.totalSize, ratio: inputBytes / output.totalSize,
    inputGzipBytes, outputGzipBytes, gzipRatio: inputGzipBytes / outputGzipBytes,
  };
}

function planJson(plan: SparsePlan) {
  return {
    options: plan.options,
    totals: plan.totals,
    entries: plan.entries.map((e) => ({
      tensor: e.tensor, consumer: e.consumer, dtype: e.dtype, shape: e.shape, zeroShare: e.zeroShare, route: e.route,
      encoding: e.encoding, reason: e.reason, bytesBefore: e.bytesBefore, bytesAfter: e.bytesAfter,
      ...(e.layout ? { layout: e.layout } : {}), ...(e.negativeZeros ? { negativeZeros: e.negativeZeros } : {}), ...(e.cost ? { cost: e.cost } : {}),
    })),
  };
}

const SPARSE_CAPABLE = new Set(['float32', 'float16', 'int8']);

/** The plan as a table: every float32/float16/int8 weight (other constants are counted). */
function planTable(plan: SparsePlan): string {
  const shown = plan.entries.filter((e) => SPARSE_CAPABLE.has(e.dtype));
  const clip = (s: string, n: number) => (s.length > n ? `…${s.slice(s.length - n + 1)}` : s);
  const rows = shown.map((e: SparsePlanEntry) => [
    clip(e.tensor, 48), clip(e.consumer, 32), e.route === 'dense' ? 'dense' : e.encoding, percent(e.zeroShare), e.reason,
    formatInt(e.bytesBefore), formatInt(e.bytesAfter),
  ]);
  const others = plan.entries.length - shown.length;
  const text = table(['tensor', 'consumer', 'encoding', 'zeros', 'reason', 'bytes before', 'bytes after'], rows,
    [false, false, false, true, false, true, true]);
  const t = plan.totals;
  return `${text}\n${others ? `(${others} other constants, e.g. int32 shapes, stay dense: DENSIFY takes float32, float16, int8)\n` : ''}`
    + `weights: ${formatInt(t.bytesBefore)} B -> ${formatInt(t.bytesAfter)} B (estimated)`;
}

/**
 * Every weight of `a` must have a weight of the same name in `b` with the same dense values:
 * identical bytes, except that a float zero may change sign (sparse storage keeps no zeros, so
 * a -0.0 comes back as +0.0).
 */
export function verifyWeightsEqual(a: Model, b: Model): void {
  compareWeights(a, new Map(b.weights.map((w) => [w.name, w])));
}

/**
 * verifyWeightsEqual against the model in `file` (the written output), holding one decoded
 * output weight at a time: the read-back model itself is not kept, and each weight is let go
 * once compared (a model's weights keep their decoded bytes).
 */
function verifyReadBack(input: Model, file: string, name: string): void {
  // A TFLite output is read in pages (its structure, then each weight's range when it is compared,
  // dropped after): reading it whole put its bytes on top of the input's and the written pieces,
  // the peak of a default convert (1 GiB model: 1.94 GB of RSS during the read-back).
  const source = input.format === 'tflite' ? openPagedSource(file) : readModelSource(file);
  try {
    const written = readModel({ ...source, path: name }).model;
    compareWeights(input, new Map(written.weights.map((w) => [w.name, w])), reusingDecoder(input.format), reusingDecoder(written.format),
      written.format === 'tflite' ? sparseEqualsDense : undefined);
  } finally {
    source.paged?.close();
  }
}

/**
 * True when the TFLite sparse weight `w` holds exactly the dense bytes `dense` (zeros of either
 * sign equal), checked without decoding it: the sparsity verifier, then one pass over the stored
 * values and the dense bytes (firstSparseMismatch, for the layouts our writer emits). False when
 * that check does not apply or finds a difference: the caller then decodes and compares (and
 * names the difference).
 */
function sparseEqualsDense(dense: Uint8Array, w: WeightTensor): boolean {
  if (!w.sparsity || (w.dtype !== 'float32' && w.dtype !== 'float16' && w.dtype !== 'int8')) return false;
  const params = w.sparsity as SparsityParams;
  const elementSize = dtypeBits(w.dtype) / 8;
  const stored = w.bytes;
  if (dense.length !== elementCount(w.shape) * elementSize) return false;
  try {
    verifySparsity(params, w.shape, stored.length, elementSize);
  } catch {
    return false; // the decode reports it, with the weight's name
  }
  const values = typedView(w.dtype, stored);
  const expected = typedView(w.dtype, dense);
  if (!values || !expected) return false;
  return firstSparseMismatch(values, w.shape, params, expected, w.dtype === 'float16' ? 'float16' : undefined) === -1;
}

/**
 * Dense bytes of a weight; TFLite sparse weights decode into one buffer reused from call to call,
 * so decoded weights never pile up as garbage the collector may leave until the end (a 1 GB model
 * would hold a second copy), nor in the models' own caches.
 */
function reusingDecoder(format: string): (w: WeightTensor) => Uint8Array {
  if (format !== 'tflite') return (w) => w.denseBytes();
  let scratch = new ArrayBuffer(0);
  return (w) => {
    if (!w.sparsity) return w.denseBytes();
    const size = Math.ceil((elementCount(w.shape) * dtypeBits(w.dtype)) / 8);
    if (scratch.byteLength < size) scratch = new ArrayBuffer(size);
    return densifyTfliteValues(w.bytes, w.dtype, w.shape, w.sparsity as SparsityParams, w.name, new Uint8Array(scratch, 0, size));
  };
}

/**
 * Compares every weight of `a` with the same-named entry of `others`, removing each entry once
 * compared; `denseA` / `denseB` decode a weight (default: its denseBytes()); `equalWithoutDecoding`
 * may prove an entry equal to `a`'s dense bytes first (then it is not decoded).
 */
function compareWeights(a: Model, others: Map<string, WeightTensor>, denseA = (w: WeightTensor) => w.denseBytes(), denseB = denseA,
  equalWithoutDecoding?: (dense: Uint8Array, w: WeightTensor) => boolean): void {
  for (const w of a.weights) {
    const other = others.get(w.name);
    if (!other) throw new PrunepackError('VERIFY_FAILED', 'a weight is missing from the output', { location: w.name });
    others.delete(w.name);
    try {
      const x = denseA(w);
      if (equalWithoutDecoding?.(x, other)) continue;
      const y = denseB(other);
      if (x.length === y.length && Buffer.compare(x, y) === 0) continue;
      const at = x.length === y.length && w.dtype === other.dtype ? firstDifference(x, y, w.dtype) : 0;
      if (at >= 0) {
        throw new PrunepackError('VERIFY_FAILED', 'a weight differs in the output', {
          location: `${w.name}${x.length === y.length ? ` byte ${at}` : ''}`, expected: `${x.length} bytes of ${w.dtype}`, found: `${y.length} bytes of ${other.dtype}, different`,
        });
      }
    } finally {
      other.release?.(); // a paged read-back holds one weight at a time (it is rebuilt if used again)
    }
  }
}

/** Byte offset of the first element that differs other than by the sign of a float zero; -1 if none. */
function firstDifference(x: Uint8Array, y: Uint8Array, dtype: string): number {
  const width = dtype === 'float32' ? 4 : dtype === 'float16' || dtype === 'bfloat16' ? 2 : dtype === 'float64' ? 8 : 1;
  const signByte = width - 1; // little-endian: the sign bit is the top bit of the last byte
  for (let i = 0; i < x.length; i += width) {
    let same = true;
    for (let j = 0; j < width; j++) if (x[i + j] !== y[i + j]) { same = false; break; }
    if (same) continue;
    if (width === 1) return i;
    let zeros = true;
    for (let j = 0; j < width; j++) {
      const mask = j === signByte ? 0x7f : 0xff;
      if ((x[i + j]! & mask) !== 0 || (y[i + j]! & mask) !== 0) { zeros = false; break; }
    }
    if (!zeros) return i;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// TensorFlow.js targets: the output is a folder (model.json + shards), written by writeTfjsFiles
// into a staging folder, read back and run in TF.js there, and only then moved into place.

/** Parses a shard size: bytes, or a number with K/KiB/M/MiB (powers of 1024). */
export function parseShardSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(|b|k|kb|kib|m|mb|mib)$/i.exec(text.trim());
  const unit = m ? { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 }[m[2]!.toLowerCase()]! : 0;
  const bytes = m ? Math.round(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new PrunepackError('INVALID_ARGUMENT', 'invalid --shard-size', { expected: 'bytes, or e.g. 4MiB, 512KiB', found: text });
  }
  return bytes;
}

/** Dense bytes above which the ONNX runtime check of an external-data model is skipped (memory: both models load). */
export const ONNX_RUNTIME_CHECK_MAX_BYTES = 2 ** 31;

/**
 * ONNX with an external data file (`--external-data`, an input that has one, or a model that
 * would reach 2 GiB inline): written by writeOnnxFiles, tensors streamed from the input's files
 * in pieces, never one buffer. The read-back check runs on the temporary model before it is
 * renamed; the runtime check (onnxruntime-node reads the data file beside the model) runs on the
 * placed files, which are removed again when it fails.
 */
async function runConvertOnnxFiles(model: Model, inputPath: string, target: 'onnx' | 'onnx-sparse', output: string,
  values: ReturnType<typeof parseConvertArgs>['values'], inputBytes: number): Promise<number> {
  const verify = !values['no-verify'];
  const location = values['external-data'] ?? defaultExternalLocation(output);
  const written = writeOnnxFiles(model, output, {
    target, externalData: { location },
    check: verify ? (temp) => verifyReadBack(model, temp, output) : undefined,
  });
  const companionBytes = (model.companionFiles ?? []).reduce((n, f) => n + fs.statSync(f).size, 0);
  const denseBytes = model.weights.reduce((n, w) => n + byteLengthOf(w.dtype, elementCount(w.shape)), 0);
  let runtime: RuntimeComparison | undefined;
  let runtimeSkipped: string | null = null;
  if (verify && denseBytes > ONNX_RUNTIME_CHECK_MAX_BYTES) {
    runtimeSkipped = `runtime check skipped: the dense weights (${formatBytes(denseBytes)}) are over ${formatBytes(ONNX_RUNTIME_CHECK_MAX_BYTES)} `
      + '(both models would be held in memory); every weight decoded and compared instead';
  } else if (verify) {
    const { compareOnnxModels } = await import('../verify/onnx-runtime.js');
    const removeOutputs = () => { for (const f of [written.modelPath, written.externalPath]) if (f) fs.rmSync(f, { force: true }); };
    let comparison: Awaited<ReturnType<typeof compareOnnxModels>>;
    try {
      comparison = await compareOnnxModels(inputPath, written.modelPath);
    } catch (e) {
      removeOutputs();
      throw e;
    }
    if (!comparison.bitIdentical) {
      removeOutputs();
      throw new PrunepackError('VERIFY_FAILED', 'the written model computes different outputs in onnxruntime (the written files were removed)', {
        location: output, expected: 'bit-identical outputs', found: `max abs ${comparison.maxAbsDiff}, max rel ${comparison.maxRelDiff}`,
      });
    }
    runtime = {
      engine: comparison.runtime, seeds: [1], bitIdentical: true, withinTolerance: true,
      tolerance: 0, maxAbsDiff: comparison.maxAbsDiff, maxRelDiff: comparison.maxRelDiff,
      outputs: comparison.outputs.map((o) => ({ ...o, referenceMaxAbs: Number.NaN })),
    };
  }
  const totalIn = inputBytes + companionBytes;
  const totalOut = written.modelBytes + written.externalBytes;
  const summary = {
    input: inputPath, output, target, externalData: written.externalPath ?? null,
    inputBytes: totalIn, outputBytes: totalOut, ratio: totalIn / totalOut,
    modelBytes: written.modelBytes, externalBytes: written.externalBytes,
    weightsVerified: verify ? model.weights.length : null, runtime: runtime ?? null,
    ...(runtimeSkipped ? { runtimeSkipped } : {}),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `${output}: ${formatBytes(written.modelBytes)} (${formatInt(written.modelBytes)} B)`
      + (written.externalPath ? ` + ${written.externalPath}: ${formatBytes(written.externalBytes)} (${formatInt(written.externalBytes)} B)` : ''),
    `from ${formatBytes(totalIn)} (${formatInt(totalIn)} B, external data included), ratio ${(totalIn / totalOut).toFixed(3)}x`,
    'gzip -9: not computed for models with external data',
  ];
  if (verify) lines.push(`${model.weights.length} weights verified`);
  if (runtime) lines.push(`runtime ${runtime.engine}: bit-identical outputs`);
  else if (runtimeSkipped) lines.push(runtimeSkipped);
  else lines.push('not verified (--no-verify)');
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function runConvertTfjs(input: string, target: 'tfjs' | 'tfjs-sparse', values: ReturnType<typeof parseConvertArgs>['values']): Promise<number> {
  const tfjsOptions = new Set(['to', 'output', 'force', 'json', 'verbose', 'no-verify', 'shard-size', 'keep-dense']);
  const others = Object.keys(values).filter((k) => !tfjsOptions.has(k) && (values as Record<string, unknown>)[k] !== undefined);
  if (others.length) {
    throw new PrunepackError('INVALID_ARGUMENT', `${others.map((k) => `--${k}`).join(', ')} ${others.length === 1 ? 'does' : 'do'} not apply to --to ${target}`, {
      expected: '-o, --shard-size, --keep-dense (tfjs-sparse), --force, --json, --no-verify', found: others.map((k) => `--${k}`).join(' '),
      hint: 'tfjs-sparse picks the encoding of every weight by size',
    });
  }
  if (values['keep-dense'] !== undefined && target !== 'tfjs-sparse') {
    throw new PrunepackError('INVALID_ARGUMENT', '--keep-dense applies to sparse targets only', { found: `--to ${target}` });
  }
  const verify = !values['no-verify'];
  const shardSize = values['shard-size'] !== undefined ? parseShardSize(values['shard-size']) : undefined;
  const inputDir = path.dirname(input);
  const stem = path.basename(input).replace(/\.json$/i, '');
  // Default: a sibling folder, web/model.json -> web.tfjs-sparse/, models/face.json -> models/face.tfjs-sparse/.
  const output = values.output ?? (stem === 'model'
    ? path.join(path.dirname(path.resolve(inputDir)), `${path.basename(path.resolve(inputDir))}.${target}`)
    : path.join(inputDir, `${stem}.${target}`));
  protectInputFile(input);
  const { model, source } = openModel(input);
  for (const file of model.companionFiles ?? []) protectInputFile(file);
  if (model.format !== 'tfjs') {
    throw new PrunepackError('UNSUPPORTED', `--to ${target} needs a TensorFlow.js model.json as input`, { found: `a ${model.format} model`, hint: 'prunepack converts within a format family' });
  }
  const doc = tfjsDocumentOf(model);
  const inputFolder = path.dirname(path.resolve(input));
  const inputFiles = [path.resolve(input), ...(doc.parsed.manifest?.groups.flatMap((g) => g.checkedPaths.map((p) => path.join(inputFolder, ...p.split('/')))) ?? [])];
  const { folder, modelJsonName } = resolveTfjsOutput(output);
  if (path.resolve(folder, modelJsonName) === path.resolve(input)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'the output would replace the input', { hint: 'Choose another folder with -o' });
  }
  const runnable = doc.parsed.kind !== 'weights-manifest';
  let runtime: import('../verify/tfjs-runtime.js').TfjsComparison | undefined;
  const written = await writeTfjsFiles(model, output, {
    target, force: values.force, protect: inputFiles, keepDense: values['keep-dense'],
    ...(shardSize !== undefined ? { shardSize } : {}),
    check: verify ? async (staged) => {
      const readBack = openModel(staged).model;
      verifyWeightsEqual(model, readBack);
      if (!runnable) return;
      const { compareTfjsModels } = await import('../verify/tfjs-runtime.js');
      runtime = await compareTfjsModels(source.path ?? input, staged);
      if (!runtime.bitIdentical) {
        throw new PrunepackError('VERIFY_FAILED', 'the written model computes different outputs in TensorFlow.js', {
          location: output, expected: 'bit-identical outputs', found: `max abs ${runtime.maxAbsDiff}, max rel ${runtime.maxRelDiff}`,
        });
      }
    } : undefined,
  });

  const inputWeights = doc.weights.reduce((n, w) => n + w.storedPieces().reduce((k, p) => k + p.length, 0), 0);
  const inputJson = source.bytes.length;
  const outputWeights = written.layout.weightBytes;
  const outputJson = written.layout.modelJson.length;
  // gzip -9 of the shards as one stream, fed piece by piece (no copy of the whole model).
  const gz = (parts: Uint8Array[]) => { let n = 0; const z = new Gzip({ level: 9 }, (chunk) => { n += chunk.length; }); parts.forEach((p, i) => z.push(p, i === parts.length - 1)); if (!parts.length) z.push(new Uint8Array(0), true); return n; };
  const inputGzip = gz(doc.weights.flatMap((w) => w.storedPieces()));
  const outputGzip = gz(written.layout.shards.flatMap((s) => s.chunks));
  const summary = {
    input, output: written.modelJsonPath, target,
    files: written.files,
    weights: { inputBytes: inputWeights, outputBytes: outputWeights, inputGzipBytes: inputGzip, outputGzipBytes: outputGzip, ratio: inputWeights / outputWeights },
    modelJson: { inputBytes: inputJson, outputBytes: outputJson },
    sparseWeights: written.layout.sparseWeights,
    weightsVerified: verify ? model.weights.length : null,
    runtime: runtime ?? null,
    plan: written.layout.plan,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  const lines: string[] = [];
  if (target === 'tfjs-sparse') lines.push(tfjsPlanTable(written.layout.plan), '');
  lines.push(`${written.modelJsonPath}: ${written.files.length - 1} shard(s) of ${formatBytes(outputWeights)} (${formatInt(outputWeights)} B) from ${formatBytes(inputWeights)} (${formatInt(inputWeights)} B), ratio ${(inputWeights / outputWeights).toFixed(3)}x`);
  lines.push(`shards with gzip -9: ${formatInt(outputGzip)} B from ${formatInt(inputGzip)} B; output as served without compression is ${(outputWeights / inputGzip).toFixed(3)}x of gzip -9 of the input shards`);
  if (target === 'tfjs-sparse') lines.push(`sparse weights: ${written.layout.sparseWeights} of ${model.weights.length} (load with the prunepack/tfjs IOHandler; standard TF.js loaders refuse this model)`);
  if (verify) lines.push(`${model.weights.length} weights verified`);
  if (runtime) lines.push(`runtime ${runtime.runtime}: ${runtime.bitIdentical ? 'bit-identical outputs' : 'outputs differ'} (${runtime.outputs.length} outputs, inputs ${runtime.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ')})`);
  else if (verify && !runnable) lines.push('a bare weights manifest has no topology: weights verified, nothing to run');
  else if (!verify) lines.push('not verified (--no-verify)');
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function tfjsPlanTable(plan: readonly TfjsPlanEntry[]): string {
  const clip = (s: string, n: number) => (s.length > n ? `…${s.slice(s.length - n + 1)}` : s);
  const rows = plan.map((e) => [
    clip(e.tensors.length === 1 ? e.tensors[0]! : `${e.tensors[0]} (+${e.tensors.length - 1})`, 56), e.storage, e.encoding,
    formatInt(e.bytesBefore), formatInt(e.bytesAfter),
  ]);
  const before = plan.reduce((n, e) => n + e.bytesBefore, 0);
  const after = plan.reduce((n, e) => n + e.bytesAfter, 0);
  return `${table(['weights', 'storage', 'encoding', 'bytes before', 'bytes after'], rows, [false, false, false, true, true])}\nweights: ${formatInt(before)} B -> ${formatInt(after)} B`;
}
