/**
 * Inference latency knowledge for the sparse TFLite planner, and the helpers that measure it.
 *
 * A sparse weight reaches its operator in one of two ways (FORMATS.md):
 *  - read NATIVELY by FULLY_CONNECTED version 8 (float32 random CSR, float32 1x4 blocks, int8 1x16
 *    blocks): the builtin sparse kernel runs at every inference, and XNNPACK does not take the
 *    operator (it refuses version 8), so the graph around it is split into several XNNPACK parts;
 *  - through DENSIFY: the weight is expanded ONCE when the model is prepared (the XNNPACK delegate
 *    unpacks DENSIFY -> [DEQUANTIZE] chains of float constants at delegate-prepare time; TFLite's
 *    own DENSIFY kernel also fills its output once), so inferences run the same dense kernels as
 *    the dense model. One exception: int8 DENSIFY outputs are not treated as static weights by the
 *    delegate, so their reader leaves XNNPACK for TFLite's builtin kernel.
 * How fast a native read is depends on the runtime (its kernels and its XNNPACK), on the shape and
 * on how many values are stored. The planner predicts it from the per-runtime table below,
 * measured with `npm run bench -- latency --calibrate` (bench/latency.ts), and then chooses per
 * weight according to the optimize goal:
 *  - 'size': the smallest encoding (what tflite-sparse always did);
 *  - 'balanced' (default): the smallest encoding that the table does not mark slower than dense;
 *  - 'latency': the encoding the table predicts fastest (ties, e.g. DENSIFY vs dense, by size).
 * Predictions carry the calibration's uncertainty: a native read counts as "not slower" only when
 * its predicted cost times (1 + uncertainty) is at most the dense cost.
 *
 * XNNPACK's fast sparse (NCHW) inference is a property of the whole graph, not of one weight:
 * `analyzeXnnpackNchw` replays XNNPACK's rules on the TFLite graph (see its comment for the source
 * files the rules come from).
 *
 * Adding a runtime: implement a `TfliteEngine` loader in src/verify/tflite-runtime.ts, run the
 * calibration against it (bench/latency.ts `calibrate(engineName)`), and register the printed
 * profile with `registerRuntimeProfile` (or add it to RUNTIME_PROFILES below). The planner only
 * needs the profile; verification and the benchmark need the engine.
 *
 * This module is pure (no Node imports) except `measureLatency`, which receives an engine.
 */
import { BuiltinOperator } from '../../schemas/generated/tflite/tflite/builtin-operator.js';
import { Conv2DOptionsT } from '../../schemas/generated/tflite/tflite/conv2doptions.js';
import { DepthwiseConv2DOptionsT } from '../../schemas/generated/tflite/tflite/depthwise-conv2doptions.js';
import { Padding } from '../../schemas/generated/tflite/tflite/padding.js';
import { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import type { SubGraphT } from '../../schemas/generated/tflite/tflite/sub-graph.js';
import { PrunepackError } from '../../src/errors.js';
import type { TfliteEngine, TfliteSession, TypedArray } from '../../src/verify/tflite-runtime.js';
import { BuiltinOptions } from '../../schemas/generated/tflite/tflite/builtin-options.js';
import { AddOptionsT } from '../../schemas/generated/tflite/tflite/add-options.js';
import type { TfliteDocument } from './document.js';
import { TfliteGraphBuilder } from './graph-builder.js';
import { operatorName } from './model-view.js';
import { writeTflite } from './write.js';
import { mulberry32 as seededUniform } from '../../src/random.js';

// ---------------------------------------------------------------------------------------------
// Goals

export type OptimizeGoal = 'size' | 'latency' | 'balanced';
export const OPTIMIZE_GOALS: readonly OptimizeGoal[] = ['size', 'latency', 'balanced'];
export const DEFAULT_OPTIMIZE: OptimizeGoal = 'balanced';

// ---------------------------------------------------------------------------------------------
// The cost table

/** The layouts FULLY_CONNECTED v8 reads natively. */
export type NativeEncoding = 'float32-csr' | 'float32-1x4' | 'int8-1x16';

/**
 * Time of one FULLY_CONNECTED reading its weight natively, batch 1, in nanoseconds on the
 * calibration machine: fixedNs + perRowNs * rows + perValueNs * storedValues, where storedValues
 * counts every value in the buffer (zeros inside stored 1x4 / 1x16 blocks too). Only its ratio to
 * the dense time measured on the same machine (`denseNsPerElement`) is used.
 */
export interface KernelCost {
  /** Per operator: builtin kernel dispatch and the extra XNNPACK partition boundary around it. */
  fixedNs: number;
  perRowNs: number;
  /** Time per stored value against the weight's dense size in bytes (like denseNsPerElement). */
  perValueNs: Array<[number, number]>;
  /**
   * The fit holds up to this share of stored values; beyond it the kernels were measured slower
   * than dense (and slower than the fit), so the planner treats such a read as slower.
   */
  maxStoredShare: number;
  /**
   * Relative error of the fit near dense speed (largest |measured - predicted| / predicted over the
   * calibration points predicted between 0.3x and 2x the dense time).
   */
  uncertainty: number;
}

export interface RuntimeCostProfile {
  /** Runtime name as given to `--runtime` (and, for built-in runtimes, the verification engine). */
  name: string;
  /** What was measured: package, version, build, threads. */
  runtime: string;
  measured: {
    date: string;
    command: string;
    machine: string;
    method: string;
  };
  /**
   * Dense FULLY_CONNECTED time per weight element (ns) against the weight's size in bytes: the rate
   * falls off as the weight leaves the caches; interpolated in log(size), constant beyond the ends.
   */
  denseNsPerElement: { float32: Array<[number, number]>; int8: Array<[number, number]> };
  /** null: the runtime cannot run that native layout (the planner will not choose it). */
  native: Record<NativeEncoding, KernelCost | null>;
  /**
   * Per-inference time of the reader of a DENSIFY output relative to the dense model, measured
   * (float: XNNPACK keeps its dense kernels). null: the runtime refuses that DENSIFY (LiteRT's
   * XNNPACK fails to prepare int8 DENSIFY outputs), so the planner keeps such weights dense.
   */
  densify: { float: number; int8: number | null };
  /**
   * XNNPACK's sparse (NCHW) mode when it switches on: speed of the model relative to the same
   * model in dense mode (> 1: faster), and on which model it was measured. null: not measured.
   */
  xnnpackSparse: { speedup: number; model: string } | null;
}

const METHOD = 'calibration models 1 -> cols -> rows -> 1 (FULLY_CONNECTED, the measured layer in the middle, so that a native read splits the XNNPACK graph as in a real model) and the same model without the middle layer; 9 float32 shapes from 16x64 to 2048x512 (8 int8), stored shares 3%..50% (random elements for CSR, random 1x4 / 1x16 blocks); per shape, dense, baseline, every native variant and DENSIFY at 5% / 20% timed in one process: 12 trials of fresh sessions loaded behind spacer models of random size (where a session lands in memory changes its speed), 3 warm-up runs, 200 interleaved rounds in all (rotated order, runs repeated to >= 3 ms per sample, gc between rounds); layer time = median over rounds of (variant - baseline), ratio to (dense - baseline). Fit: fixed + perRow * rows + perValue * stored by least squares on relative error over stored shares <= 25%, then perValue per weight size (median); uncertainty = largest under-prediction on layers >= 64K elements predicted at most as slow as dense (at least 10%). XNNPACK sparse: face_detection_full_range_sparse vs its densified copy, 12 trials, 120 rounds.';

/*
 * MEASURED TABLE, from `npm run bench -- latency --calibrate` (raw measurements are refitted with
 * `--refit FILE`). Times are this machine's; the planner only uses their ratios. LiteRT refused int8
 * DENSIFY outputs ("TfLiteXNNPackDelegate failed to prepare"), hence densify.int8 = null there.
 */
export const RUNTIME_PROFILES: RuntimeCostProfile[] = [
  {
    name: 'litert',
    runtime: '@litertjs/core 2.5.3, wasm compat build (no relaxed SIMD), XNNPACK, 1 thread',
    measured: {
      date: '2026-11-27', command: 'npm run bench -- latency --calibrate',
      machine: 'Intel Xeon (2 vCPUs shared with other jobs), Linux, node v20.20.2',
      method: METHOD,
    },
    denseNsPerElement: {
      float32: [[524288, 0.0932], [819200, 0.1006], [1048576, 0.1131], [1605632, 0.1505], [4194304, 0.2409]],
      int8: [[131072, 0.054], [204800, 0.0526], [262144, 0.0626], [401408, 0.0605], [1048576, 0.0713]],
    },
    native: {
      'float32-csr': { fixedNs: 350, perRowNs: 5.83, perValueNs: [[524288, 1.2089], [819200, 1.2317], [1048576, 1.2613], [1605632, 1.3163], [4194304, 1.5374]], maxStoredShare: 0.25, uncertainty: 0.1 },
      'float32-1x4': { fixedNs: 446, perRowNs: 3.899, perValueNs: [[524288, 0.5435], [819200, 0.594], [1048576, 0.6129], [1605632, 0.6169], [4194304, 0.7546]], maxStoredShare: 0.25, uncertainty: 0.15 },
      'int8-1x16': { fixedNs: 233, perRowNs: 12.07, perValueNs: [[131072, 0.4548], [204800, 0.4406], [262144, 0.4846], [401408, 0.5164], [1048576, 0.578]], maxStoredShare: 0.25, uncertainty: 0.1 },
    },
    densify: { float: 1, int8: null },
    xnnpackSparse: { speedup: 1.35, model: 'face_detection_full_range_sparse.tflite (Google) vs its densified copy' },
  },
  {
    name: 'tfjs-tflite',
    runtime: '@tensorflow/tfjs-tflite 0.0.1-alpha.10, tflite_web_api_cc_simd (TFLite ~2.12), XNNPACK, 1 thread',
    measured: {
      date: '2026-11-27', command: 'npm run bench -- latency --calibrate',
      machine: 'Intel Xeon (2 vCPUs shared with other jobs), Linux, node v20.20.2',
      method: METHOD,
    },
    denseNsPerElement: {
      float32: [[524288, 0.0856], [819200, 0.0904], [1048576, 0.1013], [1605632, 0.1201], [4194304, 0.223]],
      int8: [[131072, 0.07], [204800, 0.0691], [262144, 0.0765], [401408, 0.0729], [1048576, 0.08]],
    },
    native: {
      'float32-csr': { fixedNs: 205, perRowNs: 5.591, perValueNs: [[524288, 1.2242], [819200, 1.2442], [1048576, 1.2883], [1605632, 1.3277], [4194304, 1.5634]], maxStoredShare: 0.25, uncertainty: 0.15 },
      'float32-1x4': { fixedNs: 220, perRowNs: 4.702, perValueNs: [[524288, 0.4835], [819200, 0.5378], [1048576, 0.5424], [1605632, 0.5762], [4194304, 0.7228]], maxStoredShare: 0.25, uncertainty: 0.17 },
      'int8-1x16': { fixedNs: 239, perRowNs: 7.958, perValueNs: [[131072, 0.4996], [204800, 0.5085], [262144, 0.5412], [401408, 0.5313], [1048576, 0.5646]], maxStoredShare: 0.25, uncertainty: 0.1 },
    },
    densify: { float: 1, int8: 1 },
    xnnpackSparse: { speedup: 1.78, model: 'face_detection_full_range_sparse.tflite (Google) vs its densified copy' },
  },
];

/** Time per element (ns) for a weight of `bytes`, from a profile's table (dense or per stored value). */
export function interpolateRate(table: ReadonlyArray<readonly [number, number]>, bytes: number): number {
  if (table.length === 0) return Number.NaN;
  if (bytes <= table[0]![0]) return table[0]![1];
  const last = table[table.length - 1]!;
  if (bytes >= last[0]) return last[1];
  for (let i = 1; i < table.length; i++) {
    const [b1, r1] = table[i]!;
    if (bytes <= b1) {
      const [b0, r0] = table[i - 1]!;
      const t = (Math.log(bytes) - Math.log(b0)) / (Math.log(b1) - Math.log(b0));
      return r0 + (r1 - r0) * t;
    }
  }
  return last[1];
}

export const DEFAULT_RUNTIME = 'litert';

const extraProfiles = new Map<string, RuntimeCostProfile>();

/** Adds (or replaces) a runtime's cost profile, e.g. one measured for a runtime plugin. */
export function registerRuntimeProfile(profile: RuntimeCostProfile): void {
  extraProfiles.set(profile.name, profile);
}

export function runtimeProfileNames(): string[] {
  return [...new Set([...RUNTIME_PROFILES.map((p) => p.name), ...extraProfiles.keys()])];
}

export function runtimeProfile(name: string = DEFAULT_RUNTIME): RuntimeCostProfile {
  const profile = extraProfiles.get(name) ?? RUNTIME_PROFILES.find((p) => p.name === name);
  if (!profile) {
    throw new PrunepackError('INVALID_ARGUMENT', `no latency profile for runtime '${name}'`, {
      expected: runtimeProfileNames().join(', '), found: name,
      hint: 'A new runtime needs a measured profile: see converters/tflite/latency.ts and docs/performance.md',
    });
  }
  return profile;
}

// ---------------------------------------------------------------------------------------------
// Predictions and the choice

export type CostRoute = 'dense' | 'native' | 'densify';

export interface CostPrediction {
  /** Predicted per-inference time of the weight's reader(s) relative to dense (1 = same). */
  relativeCost: number;
  /** relativeCost widened by the calibration's uncertainty: what the choice uses. */
  upperCost: number;
  /** One line: where the number comes from. */
  basis: string;
}

/** The native layout of a FULLY_CONNECTED candidate, from its description and dtype. */
export function nativeEncodingOf(dtype: string, blockSize: readonly number[]): NativeEncoding | null {
  if (dtype === 'float32') return blockSize.length === 0 ? 'float32-csr' : blockSize[0] === 4 ? 'float32-1x4' : null;
  if (dtype === 'int8') return blockSize.length === 1 && blockSize[0] === 16 ? 'int8-1x16' : null;
  return null;
}

/**
 * Predicted cost of reading a [rows, cols] weight natively with `storedValues` values in the
 * buffer, relative to the dense FULLY_CONNECTED (null: the runtime cannot read that layout).
 */
export function predictNative(profile: RuntimeCostProfile, encoding: NativeEncoding, rows: number, cols: number, storedValues: number): CostPrediction | null {
  const k = profile.native[encoding];
  if (!k) return null;
  const int8 = encoding === 'int8-1x16';
  const rate = interpolateRate(int8 ? profile.denseNsPerElement.int8 : profile.denseNsPerElement.float32, rows * cols * (int8 ? 1 : 4));
  const nativeNs = k.fixedNs + k.perRowNs * rows + interpolateRate(k.perValueNs, rows * cols * (int8 ? 1 : 4)) * storedValues;
  const relativeCost = nativeNs / (rows * cols * rate);
  const inRange = storedValues <= k.maxStoredShare * rows * cols;
  return {
    relativeCost,
    upperCost: inRange ? relativeCost * (1 + k.uncertainty) : Math.max(relativeCost * (1 + k.uncertainty), 1 + k.uncertainty),
    basis: `${profile.name} ${encoding}: ${fmt(nativeNs / 1000)} us vs dense ${fmt(rows * cols * rate / 1000)} us predicted (+/-${Math.round(k.uncertainty * 100)}%${inRange ? '' : `, over ${Math.round(k.maxStoredShare * 100)}% stored: treated as slower`})`,
  };
}

/** null: the runtime refuses DENSIFY for this dtype (the planner keeps the weight dense). */
export function predictDensify(profile: RuntimeCostProfile, dtype: string): CostPrediction | null {
  const c = dtype === 'int8' ? profile.densify.int8 : profile.densify.float;
  if (c === null) return null;
  return { relativeCost: c, upperCost: c, basis: `${profile.name}: DENSIFY runs once at start-up; readers measured at ${c.toFixed(2)}x dense time` };
}

export const DENSE_PREDICTION: CostPrediction = { relativeCost: 1, upperCost: 1, basis: 'dense' };

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2);
}

export interface CostedCandidate {
  route: CostRoute;
  /** Bytes the weight costs in the file with this encoding (the dense weight for 'dense'). */
  total: number;
  cost: CostPrediction;
}

/** A candidate whose predicted time, with its uncertainty, is not above the dense model's. */
export function notSlowerThanDense(c: CostedCandidate): boolean {
  return c.cost.upperCost <= 1;
}

/**
 * The candidate for `goal` ('dense' must be among them). size: fewest bytes; balanced: fewest
 * bytes among those not slower than dense; latency: lowest upper cost, then fewest bytes.
 * Hence bytes(size) <= bytes(balanced) <= bytes(latency) for every weight.
 */
export function chooseCandidate<T extends CostedCandidate>(goal: OptimizeGoal, candidates: readonly T[]): T {
  if (!candidates.some((c) => c.route === 'dense')) throw new Error('internal: the dense candidate is missing');
  // Array.prototype.sort is stable: on equal bytes the earlier candidate (dense first) wins.
  const bySize = (a: T, b: T) => a.total - b.total;
  if (goal === 'size') return [...candidates].sort(bySize)[0]!;
  if (goal === 'balanced') return candidates.filter(notSlowerThanDense).sort(bySize)[0]!;
  return [...candidates].sort((a, b) => a.cost.upperCost - b.cost.upperCost || a.total - b.total)[0]!;
}

// ---------------------------------------------------------------------------------------------
// XNNPACK's sparse (NCHW) inference
//
// Replays, on the TFLite graph, what the XNNPACK delegate and XNNPACK do at load time:
//  - tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc: DENSIFY of a constant float16/float32
//    sparse tensor (and a DEQUANTIZE after it) is unpacked at prepare time and its output recorded
//    as a "static sparse weight"; a delegated partition with a node reading one gets
//    XNN_FLAG_HINT_SPARSE_INFERENCE. SAME padding is passed as XNN_FLAG_TENSORFLOW_SAME_PADDING with
//    zero explicit padding (CalculatePadding).
//  - XNNPACK src/subgraph.c, xnn_subgraph_optimize: a zero-padding PAD of H/W only is fused into the
//    following convolution / depthwise convolution unless that one has SAME padding; then, with the
//    hint, xnn_subgraph_rewrite_for_nchw: xnn_check_nchw_compatibility classifies nodes (1x1
//    convolution without padding and stride: NCHW; 3x3 stride-2 convolution, padding 1, 3 input
//    channels: NHWC->NCHW entry; 3x3 / 5x5 depthwise, stride 1 or 2, padding 1 / 2, no SAME flag:
//    NCHW; ADD / MULTIPLY of 4-D tensors (constants scalar or vector): NCHW; 4-D unary: NCHW;
//    bilinear resize with H, W > 1: NCHW; global average pooling / mean / sum: NCHW and exit;
//    DEPTH_TO_SPACE: exit; fully connected: NCHW (recent XNNPACK); anything else: incompatible).
//    Connected components grow from exit nodes through NCHW nodes to entry nodes; a cluster is
//    dropped when an input is external or produced by an incompatible node, or when a value it
//    consumes has a consumer outside it; a surviving cluster switches to sparse inference when its
//    1x1 convolution (and fully connected) filters are MORE than 2/3 zeros (zeros * 3 > params * 2),
//    counted over all of them, DENSIFY-fed or not.

export interface XnnpackCluster {
  /** Operator indices (subgraph 0 numbering of the dense input model). */
  operators: number[];
  entry: string;
  exit: string;
  filters: number;
  params: number;
  zeros: number;
  /** zeros * 3 > params * 2 */
  sparseEnough: boolean;
}

export interface XnnpackNchwAnalysis {
  /** A float weight read through DENSIFY reaches an operator XNNPACK delegates. */
  hint: boolean;
  /** Clusters whose operators all fit the NCHW rules. */
  clusters: XnnpackCluster[];
  /** At least one cluster fits the rules (whatever its zeros). */
  patternFits: boolean;
  /** hint, and a fitting cluster with enough zeros: XNNPACK is expected to run it sparse. */
  expected: boolean;
  /** Why operators next to convolutions do not fit (first few, "OP #i: reason"). */
  blockers: string[];
}

type Flag = number;
const NCHW = 1;
const ENTER = 2; // NHWC -> NCHW
const EXIT = 4; // NCHW -> NHWC
const INCOMPATIBLE_CLUSTER = 8;

const UNARY = new Set([
  'RELU', 'RELU6', 'RELU_N1_TO_1', 'RELU_0_TO_1', 'HARD_SWISH', 'LOGISTIC', 'TANH', 'ELU', 'LEAKY_RELU', 'ABS', 'NEG',
  'SQUARE', 'SQRT', 'RSQRT', 'FLOOR', 'CEIL', 'ROUND', 'GELU', 'EXP', 'LOG',
]);

interface GraphNode {
  op: number;
  name: string;
  inputs: number[]; // non-static tensor inputs
  outputs: number[];
  flags: Flag;
  reason: string;
  leader: number;
  /** 1x1 convolution / fully connected filter (constant tensor index), for the zero count */
  filter: number;
}

/**
 * `zerosOf(tensor)`: zero count and element count of a constant (float) weight tensor, or null.
 * `densified(tensor)`: whether the plan reads that constant through DENSIFY.
 */
export function analyzeXnnpackNchw(doc: TfliteDocument, subgraph: number,
  zerosOf: (tensor: number) => { zeros: number; count: number } | null,
  densified: (tensor: number) => boolean,
  nativeFullyConnected: ReadonlySet<number> = new Set()): XnnpackNchwAnalysis {
  const sg = doc.model.subgraphs[subgraph];
  const empty: XnnpackNchwAnalysis = { hint: false, clusters: [], patternFits: false, expected: false, blockers: [] };
  if (!sg) return empty;
  const names = doc.model.operatorCodes.map(operatorName);
  const opName = (o: number) => names[sg.operators[o]!.opcodeIndex] ?? '?';
  const isConstant = (t: number) => {
    const tensor = sg.tensors[t];
    const buffer = tensor ? doc.buffers[tensor.buffer] : undefined;
    return !!tensor && tensor.buffer > 0 && !!buffer && buffer.hasData && !tensor.isVariable;
  };
  // Static values: constants and DEQUANTIZE / DENSIFY outputs of static values (unpacked at prepare).
  const staticTensor = new Set<number>();
  const constantOf = new Map<number, number>(); // static tensor -> its constant
  const unpack = new Set<number>();
  sg.tensors.forEach((_, t) => { if (isConstant(t)) { staticTensor.add(t); constantOf.set(t, t); } });
  sg.operators.forEach((op, o) => {
    const n = opName(o);
    const input = op.inputs[0] ?? -1;
    if ((n === 'DEQUANTIZE' || n === 'DENSIFY') && op.inputs.length === 1 && staticTensor.has(input)) {
      unpack.add(o);
      for (const out of op.outputs) { staticTensor.add(out); constantOf.set(out, constantOf.get(input)!); }
    }
  });
  const graphInputs = new Set(sg.inputs);
  const graphOutputs = new Set(sg.outputs);
  const consumers = new Map<number, number[]>();
  sg.operators.forEach((op, o) => {
    if (unpack.has(o)) return;
    for (const t of new Set(op.inputs)) {
      if (t < 0 || staticTensor.has(t)) continue;
      let list = consumers.get(t);
      if (!list) consumers.set(t, (list = []));
      list.push(o);
    }
  });
  const rank = (t: number) => sg.tensors[t]?.shape.length ?? 0;
  const isFloat = (t: number) => {
    const type = sg.tensors[t]?.type;
    return type === TensorType.FLOAT32 || type === TensorType.FLOAT16;
  };

  // The hint: a float weight read through DENSIFY by an operator XNNPACK may delegate.
  const DELEGATED_READERS = new Set(['CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED', 'TRANSPOSE_CONV', 'BATCH_MATMUL']);
  let hint = false;
  sg.operators.forEach((op, o) => {
    if (unpack.has(o) || !DELEGATED_READERS.has(opName(o)) || nativeFullyConnected.has(o)) return;
    for (const t of op.inputs) {
      const c = constantOf.get(t);
      if (c !== undefined && densified(c) && (sg.tensors[c]!.type === TensorType.FLOAT32 || sg.tensors[c]!.type === TensorType.FLOAT16)) hint = true;
    }
  });

  // PAD fusion: zero PAD of H/W feeding (only) a VALID convolution / depthwise convolution.
  const fusedPadding = new Map<number, [number, number, number, number]>(); // consumer op -> top, bottom, left, right
  const fusedPads = new Set<number>();
  sg.operators.forEach((op, o) => {
    if (opName(o) !== 'PAD') return;
    const [x, paddingsTensor] = op.inputs as [number, number];
    const out = op.outputs[0]!;
    const readers = consumers.get(out) ?? [];
    if (readers.length !== 1 || graphOutputs.has(out) || rank(x) !== 4 || !isFloat(x)) return;
    const pads = readInts(doc, sg, paddingsTensor);
    if (!pads || pads.length !== 8 || pads[0] || pads[1] || pads[6] || pads[7]) return;
    const c = readers[0]!;
    const cname = opName(c);
    const reader = sg.operators[c]!;
    const options = reader.builtinOptions;
    const valid = (options instanceof Conv2DOptionsT || options instanceof DepthwiseConv2DOptionsT) && options.padding === Padding.VALID;
    if ((cname === 'CONV_2D' || cname === 'DEPTHWISE_CONV_2D') && reader.inputs[0] === out && valid) {
      fusedPads.add(o);
      fusedPadding.set(c, [pads[2]!, pads[3]!, pads[4]!, pads[5]!]);
    }
  });

  // Classify (xnn_check_nchw_compatibility)
  const nodes: GraphNode[] = [];
  const nodeOfOp = new Map<number, number>();
  const producer = new Map<number, number>(); // tensor -> node
  sg.operators.forEach((op, o) => {
    if (unpack.has(o)) return;
    const node: GraphNode = { op: o, name: opName(o), inputs: [], outputs: [...op.outputs], flags: 0, reason: '', leader: nodes.length, filter: -1 };
    if (fusedPads.has(o)) return; // the PAD disappears into its reader
    const inputs = op.inputs.filter((t) => t >= 0 && !staticTensor.has(t));
    node.inputs = inputs.map((t) => padSource(sg, fusedPads, t));
    classify(node, sg, op.inputs, op.builtinOptions, fusedPadding.get(o) ?? [0, 0, 0, 0], nativeFullyConnected.has(o), staticTensor, rank, isFloat, (t) => readInts(doc, sg, t));
    if (node.filter >= 0) node.filter = constantOf.get(node.filter) ?? -1; // the constant behind DEQUANTIZE / DENSIFY
    nodeOfOp.set(o, nodes.length);
    for (const t of op.outputs) producer.set(t, nodes.length);
    nodes.push(node);
  });
  // Consumers after PAD fusion
  const nodeConsumers = new Map<number, number>();
  nodes.forEach((node) => { for (const t of new Set(node.inputs)) nodeConsumers.set(t, (nodeConsumers.get(t) ?? 0) + 1); });
  const totalConsumers = (t: number) => (nodeConsumers.get(t) ?? 0) + (graphOutputs.has(t) ? 1 : 0);

  // Connected components (Shiloach-Vishkin as in xnn_subgraph_rewrite_for_nchw)
  const join = (n: number): boolean => {
    const node = nodes[n]!;
    let update = false;
    for (const t of node.inputs) {
      if (graphInputs.has(t) || graphOutputs.has(t)) { node.flags |= INCOMPATIBLE_CLUSTER; continue; }
      const p = producer.get(t);
      if (p === undefined) { node.flags |= INCOMPATIBLE_CLUSTER; continue; }
      const prod = nodes[p]!;
      if ((prod.flags & (ENTER | NCHW)) !== 0 && (prod.flags & INCOMPATIBLE_CLUSTER) === 0) {
        prod.flags &= ~EXIT;
        if (prod.leader !== node.leader) {
          prod.leader = node.leader = Math.max(prod.leader, node.leader);
          update = true;
        }
      } else {
        node.flags |= INCOMPATIBLE_CLUSTER;
      }
    }
    return update;
  };
  let update = false;
  nodes.forEach((node, n) => { if (node.flags & EXIT) update = join(n) || update; });
  const clusters: XnnpackCluster[] = [];
  if (update) {
    while (update) {
      update = false;
      nodes.forEach((node, n) => {
        if (node.flags & INCOMPATIBLE_CLUSTER) return;
        if ((node.flags & (NCHW | EXIT)) === 0) return;
        update = join(n) || update;
      });
    }
    for (const node of nodes) nodes[node.leader]!.flags |= node.flags & INCOMPATIBLE_CLUSTER;
    const inValid = (node: GraphNode) => (nodes[node.leader]!.flags & INCOMPATIBLE_CLUSTER) === 0 && (node.flags & (NCHW | EXIT)) !== 0;
    const nchwConsumers = new Map<number, number>();
    for (const node of nodes) if (inValid(node)) for (const t of new Set(node.inputs)) nchwConsumers.set(t, (nchwConsumers.get(t) ?? 0) + 1);
    for (const node of nodes) {
      if (!inValid(node)) continue;
      for (const t of new Set(node.inputs)) {
        if (nchwConsumers.get(t) !== totalConsumers(t)) nodes[node.leader]!.flags |= INCOMPATIBLE_CLUSTER;
      }
    }
    const byLeader = new Map<number, GraphNode[]>();
    nodes.forEach((node) => {
      if ((nodes[node.leader]!.flags & INCOMPATIBLE_CLUSTER) !== 0) return;
      if ((node.flags & (NCHW | EXIT | ENTER)) === 0) return;
      let list = byLeader.get(node.leader);
      if (!list) byLeader.set(node.leader, (list = []));
      list.push(node);
    });
    for (const members of byLeader.values()) {
      if (!members.some((m) => m.flags & (NCHW | EXIT))) continue;
      let params = 0;
      let zeros = 0;
      let filters = 0;
      for (const m of members) {
        if (m.filter < 0 || (m.flags & (NCHW | EXIT)) === 0) continue;
        const z = zerosOf(m.filter);
        const shape = sg.tensors[m.filter]!.shape;
        const count = (shape[0] ?? 0) * (shape[shape.length - 1] ?? 0);
        filters++;
        params += count;
        if (z && z.count === count) zeros += z.zeros;
      }
      const entry = members.find((m) => m.flags & ENTER) ?? members[0]!;
      const exit = [...members].reverse().find((m) => m.flags & EXIT) ?? members[members.length - 1]!;
      clusters.push({
        operators: members.map((m) => m.op), entry: `${entry.name} #${entry.op}`, exit: `${exit.name} #${exit.op}`,
        filters, params, zeros, sparseEnough: params > 0 && zeros * 3 > params * 2,
      });
    }
  }
  // Blockers: incompatible operators next to NCHW-compatible convolutions, and cluster breakers.
  const blockers: string[] = [];
  const seen = new Set<string>();
  const add = (text: string) => { if (!seen.has(text) && blockers.length < 4) { seen.add(text); blockers.push(text); } };
  const convLike = (node: GraphNode) => node.name === 'CONV_2D' || node.name === 'DEPTHWISE_CONV_2D';
  for (const node of nodes) {
    if (node.flags & (NCHW | ENTER | EXIT)) continue;
    const touches = node.inputs.some((t) => { const p = producer.get(t); return p !== undefined && (nodes[p]!.flags & (NCHW | ENTER)) !== 0; })
      || node.outputs.some((t) => [...(consumers.get(t) ?? [])].some((c) => { const n = nodeOfOp.get(c); return n !== undefined && (nodes[n]!.flags & (NCHW | EXIT)) !== 0; }));
    if (convLike(node) || touches) add(`${node.name} #${node.op}: ${node.reason}`);
  }
  if (!nodes.some((n) => n.flags & ENTER)) add('no entry: XNNPACK enters NCHW only at a 3x3 stride-2 CONV_2D with 3 input channels and explicit padding 1 (PAD then VALID)');
  if (!nodes.some((n) => n.flags & EXIT)) add('no exit: XNNPACK leaves NCHW only at MEAN / SUM / global average pooling or DEPTH_TO_SPACE');
  const patternFits = clusters.length > 0;
  return { hint, clusters, patternFits, expected: hint && clusters.some((c) => c.sparseEnough), blockers: patternFits ? [] : blockers };
}

/** The tensor a fused PAD's reader really reads (the PAD's input), or t itself. */
function padSource(sg: SubGraphT, fusedPads: ReadonlySet<number>, t: number): number {
  for (const o of fusedPads) if (sg.operators[o]!.outputs[0] === t) return sg.operators[o]!.inputs[0]!;
  return t;
}

function readInts(doc: TfliteDocument, sg: SubGraphT, t: number): number[] | null {
  const tensor = sg.tensors[t];
  const buffer = tensor ? doc.buffers[tensor.buffer] : undefined;
  if (!tensor || !buffer || !buffer.hasData) return null;
  const bytes = buffer.bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (tensor.type === TensorType.INT32) return Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getInt32(i * 4, true));
  if (tensor.type === TensorType.INT64) return Array.from({ length: bytes.byteLength / 8 }, (_, i) => Number(view.getBigInt64(i * 8, true)));
  return null;
}

function classify(node: GraphNode, sg: SubGraphT, allInputs: readonly number[], options: unknown,
  padding: [number, number, number, number], native: boolean, staticTensor: ReadonlySet<number>,
  rank: (t: number) => number, isFloat: (t: number) => boolean, ints: (t: number) => number[] | null): void {
  const no = (reason: string) => { node.flags = 0; node.reason = reason; };
  const x = allInputs[0] ?? -1;
  if (native) return no('reads its weights natively (version 8): not delegated to XNNPACK');
  if (![...node.inputs, ...node.outputs].every(isFloat)) return no('not float: XNNPACK runs only float graphs sparse');
  const [top, bottom, left, right] = padding;
  switch (node.name) {
    case 'CONV_2D': {
      if (!(options instanceof Conv2DOptionsT)) return no('no options');
      const filter = sg.tensors[allInputs[1] ?? -1];
      if (!filter || filter.shape.length !== 4) return no('filter is not 4-D');
      const [, kh, kw, inC] = filter.shape as [number, number, number, number];
      const channels = sg.tensors[x]?.shape[3] ?? 0;
      if (channels !== inC) return no('grouped convolution');
      if (options.dilationHFactor !== 1 || options.dilationWFactor !== 1) return no('dilation');
      if (kh === 1 && kw === 1) {
        if (top || bottom || left || right) return no('1x1 with padding');
        if (options.strideH !== 1 || options.strideW !== 1) return no('1x1 with stride > 1');
        node.flags = NCHW;
        node.filter = allInputs[1]!;
        return;
      }
      if (kh === 3 && kw === 3) {
        if (options.padding === Padding.SAME) return no('3x3 with SAME padding: XNNPACK needs explicit padding 1 (PAD then a VALID convolution)');
        if (top !== 1 || bottom !== 1 || left !== 1 || right !== 1) return no('3x3 without padding 1 on every side');
        if (options.strideH !== 2 || options.strideW !== 2) return no('3x3 with stride other than 2');
        if (inC !== 3) return no(`3x3 with ${inC} input channels (the entry convolution must have 3)`);
        node.flags = ENTER;
        return;
      }
      return no(`${kh}x${kw} kernel`);
    }
    case 'DEPTHWISE_CONV_2D': {
      if (!(options instanceof DepthwiseConv2DOptionsT)) return no('no options');
      const filter = sg.tensors[allInputs[1] ?? -1];
      const channels = sg.tensors[x]?.shape[3] ?? 0;
      if (!filter || filter.shape.length !== 4) return no('filter is not 4-D');
      const [, kh, kw, outC] = filter.shape as [number, number, number, number];
      if (options.dilationHFactor !== 1 || options.dilationWFactor !== 1) return no('dilation');
      if (options.padding === Padding.SAME) return no('SAME padding: XNNPACK needs explicit padding (PAD then a VALID depthwise convolution)');
      if (outC !== channels) return no('depth multiplier != 1');
      if (options.strideH !== options.strideW || (options.strideH !== 1 && options.strideH !== 2)) return no('stride other than 1 or 2');
      if (kh !== kw || (kh !== 3 && kh !== 5)) return no(`${kh}x${kw} kernel (3x3 or 5x5 only)`);
      const p = kh === 3 ? 1 : 2;
      if (top !== p || bottom !== p || left !== p || right !== p) return no(`${kh}x${kw} without padding ${p} on every side`);
      node.flags = NCHW;
      return;
    }
    case 'FULLY_CONNECTED':
      node.flags = NCHW;
      node.filter = allInputs[1] ?? -1;
      return;
    case 'ADD':
    case 'MUL': {
      const operands = allInputs.slice(0, 2);
      if (!operands.every((t) => rank(t) === 4)) return no('operands are not 4-D');
      for (const t of operands) {
        if (staticTensor.has(t) && (sg.tensors[t]?.shape.filter((d) => d !== 1).length ?? 0) > 1) return no('constant operand is not a scalar or vector');
      }
      node.flags = NCHW;
      return;
    }
    case 'RESIZE_BILINEAR': {
      const shape = sg.tensors[x]?.shape ?? [];
      if (shape.length === 4 && shape[1]! > 1 && shape[2]! > 1) { node.flags = NCHW; return; }
      return no('input H or W is 1');
    }
    case 'MEAN':
    case 'SUM': {
      if (rank(x) !== 4) return no('input is not 4-D');
      const axes = ints(allInputs[1] ?? -1);
      if (!axes || [...axes].map((a) => (a < 0 ? a + 4 : a)).sort().join() !== '1,2') return no('reduces other axes than H, W');
      node.flags = NCHW | EXIT;
      return;
    }
    case 'DEPTH_TO_SPACE':
      node.flags = EXIT;
      return;
    default:
      if (UNARY.has(node.name)) {
        if (rank(x) === 4) { node.flags = NCHW; return; }
        return no('input is not 4-D');
      }
      return no('not in XNNPACK\'s NCHW operator set');
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring

export interface TimedModel {
  name: string;
  bytes: Uint8Array;
}

export interface LatencyOptions {
  /** Runs of each model before timing (default 10). */
  warmup?: number;
  /** Rounds; each round runs every model once, in rotated order (default 100). */
  rounds?: number;
  /** Stop after this many seconds of timing, if at least `minRounds` were done (default 60). */
  maxSeconds?: number;
  minRounds?: number;
  /**
   * Runs per model per round, so that a round's sample lasts at least about this many ms
   * (default 1: small models are repeated back to back; the reported time is per run).
   */
  minSampleMs?: number;
  /** Input seed for deterministicInputs (default 1). */
  seed?: number;
  /**
   * Sessions are loaded afresh this many times (default 1), in a rotated order, and the rounds are
   * split between them, so that the speed of one session's memory placement averages out.
   */
  trials?: number;
  /**
   * Before each session of a trial, load a small "spacer" model of pseudo-random size and keep it
   * until the trial ends, so that sessions land at varying places in the runtime's memory (the
   * allocator is deterministic: without spacers every trial repeats the same placement). Default
   * true when trials > 1.
   */
  spacers?: boolean;
  /** Called between rounds when given (e.g. global.gc), outside the timed region. */
  betweenRounds?: () => void;
}

export interface LatencyResult {
  name: string;
  bytes: number;
  /** Load (and compile / prepare) time of the model, ms (median over trials). */
  loadMs: number;
  /** Median time of one run, ms. */
  medianMs: number;
  /** Median over rounds of (reference time / this model's time in the same round): > 1 faster. */
  speedup: number;
  /** Median over rounds of (this model's time - reference time in the same round), ms. */
  deltaMs: number;
  /**
   * 10th percentile of the reference's times / 10th percentile of this model's: a second estimate
   * that ignores the samples slowed down by other processes (useful on a shared machine).
   */
  speedupP10: number;
  /** 25th and 75th percentile of those per-round ratios. */
  speedupQuartiles: [number, number];
}

export interface LatencyMeasurement {
  engine: string;
  rounds: number;
  trials: number;
  runsPerSample: number;
  results: LatencyResult[];
}

/**
 * Times `models` in one engine, interleaved: after a warm-up, every round runs each model (the
 * order rotates from round to round), and each model's time is compared with the reference
 * (models[0]) in the same round, so slow drifts of a shared machine cancel out. With `trials`,
 * the sessions are created anew several times (see LatencyOptions.trials). All models get the
 * same deterministic inputs (they must have the same input signature).
 */
export async function measureLatency(engine: TfliteEngine, models: readonly TimedModel[], options: LatencyOptions = {}): Promise<LatencyMeasurement> {
  const { deterministicInputs } = await import('../../src/verify/tflite-runtime.js');
  const warmup = options.warmup ?? 10;
  const maxRounds = options.rounds ?? 100;
  const minRounds = Math.min(options.minRounds ?? 20, maxRounds);
  const maxMs = (options.maxSeconds ?? 60) * 1000;
  const trials = Math.max(1, Math.min(options.trials ?? 1, maxRounds));
  const times: number[][] = models.map(() => []);
  const loadMs: number[][] = models.map(() => []);
  const started = performance.now();
  let rounds = 0;
  let runsPerSample = 0;
  const spacers = options.spacers ?? trials > 1;
  const random = seededUniform(0x5eed + (options.seed ?? 1));
  for (let trial = 0; trial < trials; trial++) {
    // Fresh sessions, loaded in a rotated order behind spacers: where a session lands in the
    // runtime's memory changes its speed (up to 1.8x between sessions of the SAME model in LiteRT).
    const sessions: TfliteSession[] = new Array(models.length);
    const spacing: TfliteSession[] = [];
    try {
      for (let j = 0; j < models.length; j++) {
        const k = (j + trial) % models.length;
        if (spacers) spacing.push(await engine.load(spacerModel(64 * Math.floor(random() * 4096))));
        const t0 = performance.now();
        sessions[k] = await engine.load(models[k]!.bytes);
        loadMs[k]!.push(performance.now() - t0);
      }
      const inputs: TypedArray[][] = sessions.map((s) => deterministicInputs(s.inputs(), options.seed ?? 1));
      const warm: number[] = [];
      for (let i = 0; i < warmup; i++) {
        for (let k = 0; k < sessions.length; k++) {
          const t0 = performance.now();
          await sessions[k]!.run(inputs[k]!);
          if (k === 0) warm.push(performance.now() - t0);
        }
      }
      if (runsPerSample === 0) {
        const perRun = warm.length ? median(warm) : 1;
        runsPerSample = Math.max(1, Math.min(1000, Math.round((options.minSampleMs ?? 1) / Math.max(perRun, 1e-3))));
      }
      const roundsHere = Math.ceil(maxRounds / trials);
      for (let r = 0; r < roundsHere && rounds < maxRounds; r++) {
        // each trial gets its share of the rounds and of the time budget
        if (rounds >= minRounds * (trial + 1) / trials && performance.now() - started > maxMs * (trial + 1) / trials) break;
        for (let j = 0; j < sessions.length; j++) {
          const k = (j + rounds) % sessions.length;
          const session = sessions[k]!;
          const t0 = performance.now();
          for (let i = 0; i < runsPerSample; i++) await session.run(inputs[k]!);
          times[k]!.push((performance.now() - t0) / runsPerSample);
        }
        rounds++;
        options.betweenRounds?.();
      }
    } finally {
      for (const s of sessions) s?.dispose();
      for (const s of spacing) s.dispose();
    }
  }
  const results = models.map((m, k) => {
    const ratios = times[0]!.map((t, r) => t / times[k]![r]!).sort((a, b) => a - b);
    return {
      name: m.name, bytes: m.bytes.length, loadMs: median(loadMs[k]!), medianMs: median(times[k]!),
      deltaMs: median(times[k]!.map((t, r) => t - times[0]![r]!)),
      speedupP10: quantile([...times[0]!].sort((a, b) => a - b), 0.1) / quantile([...times[k]!].sort((a, b) => a - b), 0.1),
      speedup: median(ratios), speedupQuartiles: [quantile(ratios, 0.25), quantile(ratios, 0.75)] as [number, number],
    };
  });
  return { engine: `${engine.name} (${engine.version})`, rounds, trials, runsPerSample, results };
}

/** A one-ADD model padded with `padding` bytes of metadata (the runtime keeps a copy of it). */
function spacerModel(padding: number): Uint8Array {
  const g = new TfliteGraphBuilder();
  const x = g.tensor('x', TensorType.FLOAT32, [1]);
  const y = g.tensor('y', TensorType.FLOAT32, [1]);
  g.operator(BuiltinOperator.ADD, 1, [x, x], [y], BuiltinOptions.AddOptions, new AddOptionsT());
  g.addMetadata('padding', new Uint8Array(padding));
  return writeTflite(g.finish([x], [y], 'spacer'));
}


export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** Quantile of SORTED values (linear interpolation). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}
