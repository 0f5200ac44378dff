/**
 * The sparse TFLite planner: for every constant weight of a dense TfliteDocument, which encoding
 * to write (dense, read natively by FULLY_CONNECTED, or through a DENSIFY operator), in which
 * layout, why, and what it costs. The plan is plain data; sparse-write.ts applies it.
 *
 * Layout search (sparse-weight.ts, zero-mask.ts): a weight's zero pattern is reduced to a byte
 * mask once; for each traversal order (and block shape) the number of distinct prefixes holding a
 * nonzero follows from memoized OR-reductions of the mask. From those counts the exact size of
 * every DENSE / SPARSE_CSR level choice follows arithmetically (values + index vectors at their
 * narrowest width), plus an estimate of the flatbuffer tables around them. See FORMATS.md for
 * which layouts each consumer reads. The analysis of each weight is independent of the graph, so
 * planSparseTfliteWith runs it in worker threads.
 */
import { BuiltinOptions } from '../../schemas/generated/tflite/tflite/builtin-options.js';
import { FullyConnectedOptionsT } from '../../schemas/generated/tflite/tflite/fully-connected-options.js';
import { FullyConnectedOptionsWeightsFormat } from '../../schemas/generated/tflite/tflite/fully-connected-options-weights-format.js';
import type { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import { PrunepackError } from '../../src/errors.js';
import type { DType } from '../../src/model/dtype.js';
import type { LevelFormat } from '../../src/sparsity/format-converter.js';
import type { TaskRunner } from '../../src/parallel/runner.js';
import type { TfliteDocument } from './document.js';
import { operatorName, tensorDType } from './model-view.js';
import {
  ANALYZE_TASK, analyzeWeight, densifiedName, densifyOverheadBytes, type WeightAnalysis, type WeightCandidate, type WeightSpec,
} from './sparse-weight.js';
import {
  DENSE_PREDICTION, DEFAULT_RUNTIME, OPTIMIZE_GOALS, analyzeXnnpackNchw, chooseCandidate, nativeEncodingOf, predictDensify, predictNative,
  runtimeProfile, type CostPrediction, type OptimizeGoal, type XnnpackCluster,
} from './latency.js';

export { densifiedName, densifyOverheadBytes } from './sparse-weight.js';

export type BlockChoice = 'auto' | 'none' | '1x4' | '1x16';
export const BLOCK_CHOICES: readonly BlockChoice[] = ['auto', 'none', '1x4', '1x16'];

export interface SparsePlanOptions {
  /** Least share of zeros for a weight to be considered (default 0.3, as the official converter). */
  minSparsity?: number;
  /**
   * Block shapes the planner may use: 'auto' any (FC native 1x4 float / 1x16 int8, and blocks of
   * 2..16 along any dimension behind DENSIFY), 'none' no blocks, '1x4' / '1x16' only that block
   * along the last (input) dimension. Unblocked layouts are always allowed.
   */
  block?: BlockChoice;
  /** Tensor names to leave dense. */
  keepDense?: readonly string[];
  /**
   * What to optimize (latency.ts): 'size' the smallest file (the default of this API, and what it
   * always did), 'balanced' the smallest file not predicted slower than dense in `runtime` (the
   * command line's default), 'latency' the encodings predicted fastest in `runtime`.
   */
  optimize?: OptimizeGoal;
  /** Runtime whose measured cost profile drives 'balanced' / 'latency' (default 'litert'). */
  runtime?: string;
}

/** How a weight is written: unchanged, sparse read by FULLY_CONNECTED itself, or sparse + DENSIFY. */
export type SparseRoute = 'dense' | 'native' | 'densify';

/** A layout in the terms of TFLite's FormatConverter (and of `sparsityFromDense`). */
export interface SparseLayout {
  /** n + k entries: a permutation of the n dimensions, then the k block dimensions. */
  traversalOrder: number[];
  /** k entries: the dimension each block dimension subdivides. */
  blockMap: number[];
  /** k entries: block sizes. */
  blockSize: number[];
  /** Format of each ORIGINAL dimension (index = dimension, not level); block levels are DENSE. */
  dimFormats: LevelFormat[];
}

export interface SparsePlanEntry {
  /** Tensor name (as in the file). */
  tensor: string;
  subgraph: number;
  tensorIndex: number;
  dtype: DType;
  shape: number[];
  /** Readers, traced through DEQUANTIZE: "DEQUANTIZE>CONV_2D:1", several joined by ", ". */
  consumer: string;
  /** Share of numerically zero elements (int8: equal to the zero point). */
  zeroShare: number;
  route: SparseRoute;
  /** Short description of the encoding, e.g. "DENSIFY 0d,1d,2d,3s u8" or "FC v8 CSR". */
  encoding: string;
  reason: string;
  /** Bytes of the dense weight. */
  bytesBefore: number;
  /**
   * Bytes after: values and index vectors exactly, flatbuffer tables (sparsity parameters, and for
   * DENSIFY the operator and its output tensor) estimated. Equal to bytesBefore when dense.
   */
  bytesAfter: number;
  /** Layout to write (route 'native' or 'densify'). */
  layout?: SparseLayout;
  /** Values in the sparse buffer (zeros inside stored blocks included). */
  storedValues?: number;
  /** float16 weights feeding DEQUANTIZE: the chain is sparse -> DENSIFY -> DEQUANTIZE. */
  viaDequantize?: boolean;
  /** Operators reading the weight natively (route 'native'): they must be FULLY_CONNECTED v8. */
  nativeOperators?: number[];
  /** Stored -0.0 values that the sparse encoding turns into +0.0 (numerically equal). */
  negativeZeros?: number;
  /**
   * Predicted per-inference time of the weight's reader(s) with this encoding relative to dense,
   * in the plan's runtime (latency.ts); absent for dense weights.
   */
  cost?: CostPrediction;
}

export interface XnnpackReport {
  /** True when XNNPACK may switch to its fast sparse (NCHW) inference. */
  qualifies: boolean;
  /** 1x1 CONV_2D filters in the model, and how many of them are read through DENSIFY. */
  conv1x1Filters: number;
  conv1x1Densified: number;
  /** Zero share over all 1x1 CONV_2D filter elements (null when there are none). */
  conv1x1ZeroShare: number | null;
  /** FULLY_CONNECTED operators at version 8 (XNNPACK does not take them). */
  nativeFullyConnected: number;
  /**
   * The operators around the 1x1 convolutions fit XNNPACK's NCHW rules: at least one cluster from
   * an entry convolution to an exit operator (latency.ts, analyzeXnnpackNchw).
   */
  patternFits: boolean;
  /**
   * XNNPACK is expected to switch to sparse inference at load time: a float weight is read through
   * DENSIFY by a delegated operator, and a fitting cluster's 1x1 filters are more than 2/3 zeros.
   * (`qualifies` is the zeros threshold alone.)
   */
  expected: boolean;
  /** The fitting clusters (operator indices refer to the dense model). */
  clusters: XnnpackCluster[];
  /** When the pattern does not fit: the first operators that break it and why. */
  blockers: string[];
  /** One line: why it qualifies or not. */
  reason: string;
}

export interface SparsePlan {
  options: Required<Omit<SparsePlanOptions, 'keepDense'>> & { keepDense: string[] };
  entries: SparsePlanEntry[];
  xnnpack: XnnpackReport;
  totals: { bytesBefore: number; bytesAfter: number; sparseWeights: number; densifyOps: number; nativeOperators: number };
}

// ---------------------------------------------------------------------------------------------
// Weights and their readers

interface Reader { op: number; operand: number }

const SPARSE_DTYPES: ReadonlySet<DType> = new Set(['float32', 'float16', 'int8']);

function tensorName(t: TensorT, s: number, i: number): string {
  return typeof t.name === 'string' && t.name ? t.name : `tensor_${s}_${i}`;
}

function isFullyConnectedNativeReader(doc: TfliteDocument, s: number, op: number, dtype: DType): boolean {
  const sg = doc.model.subgraphs[s]!;
  const operator = sg.operators[op]!;
  const code = doc.model.operatorCodes[operator.opcodeIndex];
  if (!code || operatorName(code) !== 'FULLY_CONNECTED' || code.version > 8) return false;
  const options = operator.builtinOptionsType === BuiltinOptions.FullyConnectedOptions && operator.builtinOptions instanceof FullyConnectedOptionsT
    ? operator.builtinOptions : null;
  if (options && options.weightsFormat !== FullyConnectedOptionsWeightsFormat.DEFAULT) return false;
  const input = sg.tensors[operator.inputs[0] ?? -1];
  const output = sg.tensors[operator.outputs[0] ?? -1];
  if (!input || !output) return false;
  if (dtype === 'float32') return input.type === TensorType.FLOAT32 && output.type === TensorType.FLOAT32;
  if (dtype === 'int8') return input.type === TensorType.INT8 && output.type === TensorType.INT8;
  return false;
}

// ---------------------------------------------------------------------------------------------
// The planner: the graph pass (collectWeights), the per-weight analysis (sparse-weight.ts, in this
// thread or in workers) and the per-weight decision (decideWeight), in that order.

type PlanSettings = SparsePlan['options'];

/** A weight whose zeros must be analyzed before its entry can be decided. */
interface WeightJob {
  entry: SparsePlanEntry;
  spec: WeightSpec;
  bytes: () => Uint8Array;
  keep: boolean;
  /** int8 with a nonzero zero point: sparse storage could only leave out 0. */
  nonzeroZeroPoint: boolean;
  /** Why the graph forbids a sparse encoding, or null. */
  graphReason: string | null;
  readers: Reader[];
  viaDequantize: boolean;
}

function planSettings(options: SparsePlanOptions): PlanSettings {
  const minSparsity = options.minSparsity ?? 0.3;
  const block = options.block ?? 'auto';
  const keepDense = [...(options.keepDense ?? [])];
  const optimize = options.optimize ?? 'size';
  const runtime = options.runtime ?? DEFAULT_RUNTIME;
  if (!OPTIMIZE_GOALS.includes(optimize)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'unknown optimize goal', { expected: OPTIMIZE_GOALS.join(', '), found: String(optimize) });
  }
  runtimeProfile(runtime); // throws for an unknown runtime
  if (!(minSparsity >= 0 && minSparsity <= 1)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'minimum sparsity out of range', { expected: 'a number in [0, 1]', found: String(options.minSparsity) });
  }
  if (!BLOCK_CHOICES.includes(block)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'unknown block choice', { expected: BLOCK_CHOICES.join(', '), found: String(block) });
  }
  return { minSparsity, block, keepDense, optimize, runtime };
}

/**
 * One entry per constant tensor, in file order. Entries that the graph or the dtype settles are
 * finished here; the others come back as jobs for the analysis.
 */
function collectWeights(doc: TfliteDocument, settings: PlanSettings): { entries: SparsePlanEntry[]; jobs: WeightJob[] } {
  const keep = new Set(settings.keepDense);
  const names = doc.model.operatorCodes.map(operatorName);
  const entries: SparsePlanEntry[] = [];
  const jobs: WeightJob[] = [];

  doc.model.subgraphs.forEach((sg, s) => {
    const readers = new Map<number, Reader[]>();
    sg.operators.forEach((op, o) => op.inputs.forEach((t, operand) => {
      if (t < 0) return;
      let list = readers.get(t);
      if (!list) readers.set(t, (list = []));
      list.push({ op: o, operand });
    }));
    const opName = (o: number) => names[sg.operators[o]!.opcodeIndex] ?? `OPCODE_${sg.operators[o]!.opcodeIndex}`;
    const consumerText = (t: number): string => {
      const parts: string[] = [];
      for (const r of readers.get(t) ?? []) {
        const name = opName(r.op);
        const out = sg.operators[r.op]!.outputs[0];
        if (name === 'DEQUANTIZE' && out !== undefined && out >= 0 && readers.has(out)) {
          for (const next of readers.get(out)!) parts.push(`DEQUANTIZE>${opName(next.op)}:${next.operand}`);
        } else {
          parts.push(`${name}:${r.operand}`);
        }
      }
      const counts = new Map<string, number>();
      for (const p of parts) counts.set(p, (counts.get(p) ?? 0) + 1);
      return [...counts].map(([p, c]) => (c > 1 ? `${p} x${c}` : p)).join(', ') || '-';
    };
    const outputs = new Set(sg.outputs);

    sg.tensors.forEach((tensor, t) => {
      const buffer = doc.buffers[tensor.buffer];
      if (tensor.buffer <= 0 || !buffer || !buffer.hasData || tensor.isVariable) return;
      const name = tensorName(tensor, s, t);
      const where = `subgraph ${s} tensor ${t} "${name}"`;
      if (tensor.sparsity) {
        throw new PrunepackError('INVALID_ARGUMENT', 'the planner needs a dense model', {
          format: 'tflite', location: where, hint: 'Densify first (densifyTfliteDocument); sparsifyTflite does it for you',
        });
      }
      const dtype = tensorDType(tensor.type, where);
      const shape = [...tensor.shape];
      const bytesBefore = buffer.byteLength;
      const entry: SparsePlanEntry = {
        tensor: name, subgraph: s, tensorIndex: t, dtype, shape, consumer: consumerText(t),
        zeroShare: 0, route: 'dense', encoding: 'dense', reason: '', bytesBefore, bytesAfter: bytesBefore,
      };
      entries.push(entry);
      if (!SPARSE_DTYPES.has(dtype)) { entry.reason = `${dtype}: DENSIFY takes float32, float16 and int8 only`; return; }
      const count = shape.reduce((a, b) => a * b, 1);
      if (shape.length === 0 || count === 0) { entry.reason = 'scalar or empty'; return; }
      if (count * (dtype === 'float32' ? 4 : dtype === 'float16' ? 2 : 1) !== bytesBefore) { entry.reason = 'buffer size does not match the shape'; return; }

      const tensorReaders = readers.get(t) ?? [];
      const graphReason = outputs.has(t) || sg.inputs.includes(t) ? 'constant is a subgraph input or output'
        : tensorReaders.length === 0 ? 'no operator reads it' : null;
      const zeroPoints = (tensor.quantization?.zeroPoint ?? []).map(Number);
      const nonzeroZeroPoint = dtype === 'int8' && zeroPoints.some((z) => z !== 0);
      const viaDequantize = dtype === 'float16' && tensorReaders.every((r) => opName(r.op) === 'DEQUANTIZE');
      // FULLY_CONNECTED operand 1 read natively: every reader must be such an operator.
      const native = shape.length === 2 && tensorReaders.every((r) => r.operand === 1 && isFullyConnectedNativeReader(doc, s, r.op, dtype))
        && (dtype !== 'int8' || (tensor.quantization?.scale.length ?? 0) <= 1);
      const keepIt = keep.has(name);
      jobs.push({
        entry, bytes: () => buffer.bytes, keep: keepIt, nonzeroZeroPoint, graphReason, readers: tensorReaders, viaDequantize,
        spec: {
          dtype, shape, zeroPoints, quantizedDimension: tensor.quantization?.quantizedDimension ?? 0,
          search: !keepIt && !nonzeroZeroPoint && graphReason === null, minSparsity: settings.minSparsity, block: settings.block,
          native, densifyPrefix: viaDequantize ? 'DENSIFY>DEQUANTIZE' : 'DENSIFY', densifyOverhead: densifyOverheadBytes(shape, densifiedName(t)),
        },
      });
    });
  });
  return { entries, jobs };
}

/** Settles one analyzed weight's entry: dense with the reason, or the chosen candidate. */
function decideWeight(job: WeightJob, analysis: WeightAnalysis, settings: PlanSettings): void {
  const { entry } = job;
  const { dtype, shape } = entry;
  const { optimize, minSparsity } = settings;
  const profile = runtimeProfile(settings.runtime);
  const bytesBefore = entry.bytesBefore;
  entry.zeroShare = analysis.zeroShare;
  const dense = (reason: string) => { entry.reason = reason; };
  if (job.keep) return dense('--keep-dense');
  if (entry.zeroShare < minSparsity) {
    return dense(`${(entry.zeroShare * 100).toFixed(1)}% zeros < ${(minSparsity * 100).toFixed(0)}%`);
  }
  if (job.nonzeroZeroPoint) return dense('int8 zero point != 0: sparse storage can only leave out 0, which is not this weight\'s zero');
  if (analysis.nonzeros === 0) return dense('all zeros: a sparse tensor would have an empty buffer, which TFLite reads as non-constant');
  if (job.graphReason !== null) return dense(job.graphReason);

  const candidates = analysis.candidates;
  if (candidates.length === 0) return dense('no sparse layout applies');
  // Predicted per-inference cost of each candidate in the plan's runtime (latency.ts)
  const costOf = (c: WeightCandidate): CostPrediction | null => (c.route === 'native'
    ? predictNative(profile, nativeEncodingOf(dtype, c.layout.blockSize)!, shape[0]!, shape[1]!, c.values)
    : predictDensify(profile, dtype));
  const costed = candidates.flatMap((c) => {
    const cost = costOf(c);
    return cost ? [{ ...c, cost }] : optimize === 'size' ? [{ ...c, cost: { relativeCost: Number.NaN, upperCost: Number.POSITIVE_INFINITY, basis: `${profile.name} cannot run it` } }] : [];
  });
  const chosen = chooseCandidate(optimize, [{ route: 'dense' as const, total: bytesBefore, cost: DENSE_PREDICTION }, ...costed]);
  const times = (c: { cost: CostPrediction }) => (Number.isFinite(c.cost.relativeCost) ? `${c.cost.relativeCost.toFixed(2)}x dense time` : c.cost.basis);
  if (chosen.route === 'dense') {
    const smallest = costed[0] ?? candidates[0]!;
    if (optimize === 'size' || smallest.total >= bytesBefore) {
      return dense(`sparse (${smallest.total} B as ${smallest.description}) not smaller than dense`);
    }
    const rejected = costed.map((c) => `${c.description} ${times(c)}`).join(', ')
      || `${profile.name} cannot run ${candidates.map((c) => c.description).join(', ')}`;
    return dense(`${optimize}: no sparse encoding predicted at least as fast as dense in ${profile.name} (${rejected})`);
  }
  entry.route = chosen.route;
  entry.encoding = chosen.description;
  entry.layout = chosen.layout;
  entry.bytesAfter = chosen.total;
  entry.storedValues = chosen.values;
  if (Number.isFinite(chosen.cost.relativeCost)) entry.cost = chosen.cost;
  if (analysis.negativeZeros) entry.negativeZeros = analysis.negativeZeros;
  // What the goal traded: a smaller encoding predicted slower, or a faster one that is larger.
  const smaller = optimize === 'size' ? undefined : costed.find((c) => c.total < chosen.total);
  const faster = optimize === 'size' ? undefined : costed.find((c) => c.cost.upperCost < chosen.cost.upperCost);
  const trade = smaller ? `; ${optimize}: not ${smaller.description} (${smaller.total} B, ${times(smaller)})`
    : faster ? `; ${optimize}: not ${faster.description} (${faster.total} B, ${times(faster)})` : '';
  const predicted = optimize === 'size' ? '' : `, ${times(chosen)} in ${profile.name}`;
  if (chosen.route === 'native') {
    entry.nativeOperators = job.readers.map((r) => r.op);
    const alternative = candidates.find((c) => c.route === 'densify');
    entry.reason = `${(entry.zeroShare * 100).toFixed(1)}% zeros; read natively by FULLY_CONNECTED${predicted}${alternative ? ` (DENSIFY: ${alternative.total} B)` : ''}${trade}`;
  } else {
    if (job.viaDequantize) entry.viaDequantize = true;
    const alternative = candidates.find((c) => c.route === 'native');
    entry.reason = `${(entry.zeroShare * 100).toFixed(1)}% zeros; smallest of ${analysis.tried} layouts tried${predicted}${alternative ? ` (FC native: ${alternative.total} B)` : ''}${trade}`;
  }
}

/**
 * Plans the sparse encoding of every constant weight of a dense document (densify first:
 * `densifyTfliteDocument`; already-sparse weights are re-planned from their dense values).
 */
export function planSparseTflite(doc: TfliteDocument, options: SparsePlanOptions = {}): SparsePlan {
  const settings = planSettings(options);
  const { entries, jobs } = collectWeights(doc, settings);
  for (const job of jobs) decideWeight(job, analyzeWeight(job.bytes(), job.spec), settings);
  return finishPlan(doc, settings, entries);
}

/**
 * planSparseTflite with the weight analyses run by `runner` (src/parallel: worker threads, one
 * weight per task). The plan is the same as planSparseTflite's.
 */
export async function planSparseTfliteWith(runner: TaskRunner, doc: TfliteDocument, options: SparsePlanOptions = {}): Promise<SparsePlan> {
  const settings = planSettings(options);
  const { entries, jobs } = collectWeights(doc, settings);
  const analyses = await Promise.all(jobs.map((job) => runner.run<WeightAnalysis>(ANALYZE_TASK, { bytes: [job.bytes()], params: job.spec })));
  jobs.forEach((job, i) => decideWeight(job, analyses[i]!, settings));
  return finishPlan(doc, settings, entries);
}

/** Turns the given entries dense (e.g. after the runtime refused them) and recomputes the report. */
export function keepDenseInPlan(doc: TfliteDocument, plan: SparsePlan, which: ReadonlyMap<SparsePlanEntry, string>): SparsePlan {
  const entries = plan.entries.map((e) => {
    const reason = which.get(e);
    if (reason === undefined || e.route === 'dense') return e;
    return { ...e, route: 'dense' as const, encoding: 'dense', reason, bytesAfter: e.bytesBefore, layout: undefined, viaDequantize: undefined, nativeOperators: undefined, negativeZeros: undefined, cost: undefined, storedValues: undefined };
  });
  return finishPlan(doc, plan.options, entries);
}

function finishPlan(doc: TfliteDocument, options: SparsePlan['options'], entries: SparsePlanEntry[]): SparsePlan {
  const totals = { bytesBefore: 0, bytesAfter: 0, sparseWeights: 0, densifyOps: 0, nativeOperators: 0 };
  for (const e of entries) {
    totals.bytesBefore += e.bytesBefore;
    totals.bytesAfter += e.bytesAfter;
    if (e.route !== 'dense') totals.sparseWeights++;
    if (e.route === 'densify') totals.densifyOps++;
    if (e.route === 'native') totals.nativeOperators += e.nativeOperators?.length ?? 0;
  }
  return { options, entries, xnnpack: xnnpackReport(doc, entries), totals };
}

// ---------------------------------------------------------------------------------------------
// XNNPACK

/**
 * Whether XNNPACK's fast sparse (NCHW) inference can kick in. Two conditions, reported apart:
 *  - the zeros: the 1x1 CONV_2D filters (traced back through DEQUANTIZE to their constant) must be
 *    more than 2/3 zeros (FORMATS.md; XNNPACK counts zeros * 3 > params * 2), and a float weight
 *    must reach a delegated operator through DENSIFY (that is what makes the delegate ask for sparse
 *    inference) -> `qualifies`;
 *  - the pattern: the operators around them must form an NCHW cluster by XNNPACK's rules
 *    (latency.ts, analyzeXnnpackNchw, which also counts the zeros per cluster) -> `patternFits`;
 *    both -> `expected`.
 */
export function xnnpackReport(doc: TfliteDocument, entries: readonly SparsePlanEntry[]): XnnpackReport {
  const names = doc.model.operatorCodes.map(operatorName);
  const byTensor = new Map(entries.map((e) => [`${e.subgraph}:${e.tensorIndex}`, e]));
  let filters = 0;
  let densified = 0;
  let elements = 0;
  let zeros = 0;
  let nativeFullyConnected = 0;
  let patternFits = false;
  let expected = false;
  const clusters: XnnpackCluster[] = [];
  const blockers: string[] = [];
  const seen = new Set<string>();
  doc.model.subgraphs.forEach((sg, s) => {
    const producer = new Map<number, number>();
    sg.operators.forEach((op, o) => op.outputs.forEach((t) => producer.set(t, o)));
    const native = new Set<number>();
    for (const e of entries) {
      if (e.subgraph === s && e.route === 'native') {
        nativeFullyConnected += e.nativeOperators?.length ?? 0;
        for (const o of e.nativeOperators ?? []) native.add(o);
      }
    }
    sg.operators.forEach((op) => {
      if (names[op.opcodeIndex] !== 'CONV_2D') return;
      let filter = op.inputs[1] ?? -1;
      const from = producer.get(filter);
      if (from !== undefined && names[sg.operators[from]!.opcodeIndex] === 'DEQUANTIZE') filter = sg.operators[from]!.inputs[0] ?? -1;
      const tensor = sg.tensors[filter];
      if (!tensor || tensor.shape.length !== 4 || tensor.shape[1] !== 1 || tensor.shape[2] !== 1) return;
      const key = `${s}:${filter}`;
      const entry = byTensor.get(key);
      if (!entry || seen.has(key)) return;
      seen.add(key);
      const count = entry.shape.reduce((a, b) => a * b, 1);
      filters++;
      elements += count;
      zeros += Math.round(entry.zeroShare * count);
      if (entry.route === 'densify') densified++;
    });
    const analysis = analyzeXnnpackNchw(doc, s, (t) => {
      const e = byTensor.get(`${s}:${t}`);
      if (!e) return null;
      const count = e.shape.reduce((a, b) => a * b, 1);
      return { zeros: Math.round(e.zeroShare * count), count };
    }, (t) => byTensor.get(`${s}:${t}`)?.route === 'densify', native);
    patternFits ||= analysis.patternFits;
    expected ||= analysis.expected;
    clusters.push(...analysis.clusters);
    for (const b of analysis.blockers) if (blockers.length < 4 && !blockers.includes(b)) blockers.push(b);
  });
  const share = elements ? zeros / elements : null;
  const percent = (x: number) => `${(x * 100).toFixed(1)}%`;
  let qualifies = false;
  let reason: string;
  if (filters === 0) reason = 'no 1x1 CONV_2D filters: XNNPACK has nothing to run sparse';
  else if (densified === 0) reason = `none of the ${filters} 1x1 CONV_2D filters is read through DENSIFY (too few zeros or not smaller sparse)`;
  else if (zeros * 3 <= elements * 2) reason = `1x1 CONV_2D filters are ${percent(share!)} zeros; XNNPACK needs at least 66.7% (more than 2/3)`;
  else {
    qualifies = true;
    reason = `${densified} of ${filters} 1x1 CONV_2D filters read through DENSIFY, ${percent(share!)} zeros (>= 66.7%)`
      + (densified < filters ? `; ${filters - densified} stay dense` : '');
  }
  if (filters > 0) {
    if (patternFits) {
      const best = clusters.reduce((a, b) => (b.params > a.params ? b : a));
      reason += `; NCHW pattern fits (${clusters.length} cluster${clusters.length > 1 ? 's' : ''}, largest ${best.operators.length} operators from ${best.entry} to ${best.exit}, `
        + `its 1x1 filters ${best.params ? percent(best.zeros / best.params) : '-'} zeros)`;
    } else {
      reason += `; NCHW pattern does not fit: ${blockers.join('; ') || 'no cluster'}`;
    }
    reason += expected ? ': XNNPACK is expected to run it sparse' : ': XNNPACK is expected to keep its dense kernels';
  }
  if (nativeFullyConnected) reason += `; ${nativeFullyConnected} FULLY_CONNECTED op(s) read sparse weights natively (version 8), which XNNPACK leaves to the builtin kernels`;
  return {
    qualifies, conv1x1Filters: filters, conv1x1Densified: densified, conv1x1ZeroShare: share, nativeFullyConnected,
    patternFits, expected, clusters, blockers, reason,
  };
}
