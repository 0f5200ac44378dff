/**
 * `npm run bench -- latency`: inference latency of tflite-sparse outputs against their dense
 * model, in the TFLite WebAssembly runtimes we ship with (LiteRT and tfjs-tflite), one thread.
 *
 *  - default: every benchmark model (the CNN sample, pruned MediaPipe float16 models, Google's
 *    sparse face detector re-encoded from its dense form, a 90%-zero 1x4-block MLP and a 90%
 *    unstructured MLP), dense vs `--optimize size | balanced | latency`, both engines. Warm-up,
 *    then many interleaved rounds (each round runs every variant once, in rotated order); the
 *    ratio printed is the median over rounds of dense time / variant time measured in the same
 *    round (> 1: faster than dense). Results are appended to bench/results.json and written to
 *    docs/performance.md ("Inference latency").
 *  - `--calibrate`: measures the cost table of converters/tflite/latency.ts: FULLY_CONNECTED
 *    layers of several shapes and densities, dense vs read natively (float32 CSR, float32 1x4,
 *    int8 1x16) vs DENSIFY, and fits fixed + perRow * rows + perValue * stored values (in units of
 *    the runtime's dense time per weight element). Prints the profile to paste into latency.ts.
 *
 * Options: --engine litert|tfjs-tflite (default both), --quick (fewer rounds), --only NAME.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { ActivationFunctionType } from '../schemas/generated/tflite/tflite/activation-function-type.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { writeTflite } from '../converters/tflite/write.js';
import { readTflite, readTfliteDocument } from '../converters/tflite/read.js';
import { densifyTfliteDocument } from '../converters/tflite/densify.js';
import { planSparseTflite, type SparseLayout, type SparsePlan } from '../converters/tflite/sparse-plan.js';
import { applySparsePlan, createRuntimeCheck, sparsifyTfliteChecked } from '../converters/tflite/sparse-write.js';
import {
  OPTIMIZE_GOALS, interpolateRate, measureLatency, median, runtimeProfile, type KernelCost, type NativeEncoding, type OptimizeGoal,
} from '../converters/tflite/latency.js';
import { ENGINE_NAMES, loadTfliteRuntime, type EngineName } from '../src/verify/tflite-runtime.js';
import { pruneModel, writeModel } from '../src/index.js';
import { buildCnnSample, prunedNormal, seededRandom } from '../samples/build-samples.js';
import { mlp } from './official-comparison.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const F32 = TensorType.FLOAT32;
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const gc = (globalThis as { gc?: () => void }).gc;

export const LAYOUT_CSR: SparseLayout = { traversalOrder: [0, 1], blockMap: [], blockSize: [], dimFormats: ['DENSE', 'SPARSE_CSR'] };
export const blockLayout = (size: number): SparseLayout => ({ traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [size], dimFormats: ['DENSE', 'SPARSE_CSR', 'DENSE'] });

// ---------------------------------------------------------------------------------------------
// Benchmark models

export interface BenchModel {
  name: string;
  /** The dense (pruned) model. */
  dense: Uint8Array;
  /** Engines that can run it. */
  engines: readonly EngineName[];
}

const MEDIAPIPE = (p: string) => path.join(root, 'node_modules', '@mediapipe', p);

function pruned(bytes: Uint8Array, sparsity: number, block?: [number, number]): Uint8Array {
  return writeModel(pruneModel(readTflite(bytes), { sparsity, ...(block ? { block } : {}) }).model, 'tflite');
}

/** The latency benchmark's models (built deterministically). */
export function latencyModels(): BenchModel[] {
  const read = (p: string) => new Uint8Array(fs.readFileSync(p));
  const both = ENGINE_NAMES;
  const googleSparse = read(MEDIAPIPE('face_detection/face_detection_full_range_sparse.tflite'));
  return [
    { name: 'CNN sample, 80%', dense: buildCnnSample(0.8), engines: both },
    { name: 'MLP 784-512-256-10, 90% in 1x4 blocks', dense: pruned(mlp([784, 512, 256, 10], 202), 0.9, [1, 4]), engines: both },
    { name: 'MLP 784-1024-512-10, 90% unstructured', dense: pruned(mlp([784, 1024, 512, 10], 203), 0.9), engines: both },
    { name: 'face_detection_short_range (f16), 80%', dense: pruned(read(MEDIAPIPE('face_detection/face_detection_short_range.tflite')), 0.8), engines: both },
    { name: 'face_detection_full_range (f16), 90%', dense: pruned(read(MEDIAPIPE('face_detection/face_detection_full_range.tflite')), 0.9), engines: both },
    { name: 'hand_landmark_lite (f16), 80%', dense: pruned(read(MEDIAPIPE('hands/hand_landmark_lite.tflite')), 0.8), engines: both },
    { name: 'selfie_segmentation (f16), 80%', dense: pruned(read(MEDIAPIPE('selfie_segmentation/selfie_segmentation.tflite')), 0.8), engines: ['litert'] },
    { name: 'Google face_detection_full_range_sparse, densified', dense: writeTflite(densifyTfliteDocument(readTfliteDocument(googleSparse)).doc), engines: both },
  ];
}

// ---------------------------------------------------------------------------------------------
// Calibration models: a FULLY_CONNECTED layer between two tiny dense ones (1 -> cols, rows -> 1),
// so that a native read splits the XNNPACK graph as it would in a real model; the baseline is the
// same model without the measured layer (1 -> cols -> 1).

function fcSandwich(rows: number, cols: number, weights: Float32Array | Int8Array | null, int8: boolean, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const g = new TfliteGraphBuilder();
  const E = 1;
  const fc = (x: number, inputs: number, units: number, name: string, w?: Float32Array | Int8Array): number => {
    if (int8) {
      const values = w ?? Int8Array.from({ length: units * inputs }, () => Math.round((random() * 2 - 1) * 127));
      const wt = g.constant(`${name}/weights`, TensorType.INT8, [units, inputs], bytesOf(values), { scale: [0.002], zeroPoint: [0] });
      const b = g.constant(`${name}/bias`, TensorType.INT32, [units], bytesOf(new Int32Array(units)), { scale: [0.00004], zeroPoint: [0] });
      const y = g.tensor(`${name}/out`, TensorType.INT8, [1, units], { scale: [0.05], zeroPoint: [0] });
      g.operator(BuiltinOperator.FULLY_CONNECTED, 4, [x, wt, b], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
      return y;
    }
    const values = w ?? prunedNormal(units * inputs, 0.1, 0, random);
    const wt = g.constant(`${name}/weights`, F32, [units, inputs], bytesOf(values));
    const b = g.constant(`${name}/bias`, F32, [units], bytesOf(prunedNormal(units, 0.05, 0, random)));
    const y = g.tensor(`${name}/out`, F32, [1, units]);
    g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, wt, b], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT(ActivationFunctionType.RELU));
    return y;
  };
  const x = int8 ? g.tensor('x', TensorType.INT8, [1, E], { scale: [0.02], zeroPoint: [0] }) : g.tensor('x', F32, [1, E]);
  const a = fc(x, E, cols, 'in');
  // weights null: the baseline without the measured layer (its time is the harness and the small layers)
  const b = weights ? fc(a, cols, rows, 'measured', weights) : a;
  const y = fc(b, weights ? rows : cols, E, 'out');
  return writeTflite(g.finish([x], [y], `calibration ${rows}x${cols}`));
}

function maskedWeights(rows: number, cols: number, density: number, block: number, int8: boolean, seed: number): Float32Array | Int8Array {
  const random = seededRandom(seed);
  const values = int8 ? new Int8Array(rows * cols) : new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c += block) {
      if (random() >= density) continue;
      for (let k = 0; k < block; k++) {
        const v = int8 ? (1 + Math.floor(random() * 126)) * (random() < 0.5 ? -1 : 1) : (random() * 2 - 1) * 0.2 || 0.01;
        values[r * cols + c + k] = v;
      }
    }
  }
  return values;
}

/** The model with `measured/weights` read natively in `layout`, or through DENSIFY. */
function variant(dense: Uint8Array, route: 'native' | 'densify', layout: SparseLayout): Uint8Array {
  const doc = readTfliteDocument(dense);
  const plan = planSparseTflite(doc, { minSparsity: 0 });
  const sg = doc.model.subgraphs[0]!;
  const entries = plan.entries.map((e) => {
    if (e.tensor !== 'measured/weights') return { ...e, route: 'dense' as const, layout: undefined, nativeOperators: undefined, viaDequantize: undefined };
    const readers = sg.operators.flatMap((op, o) => (op.inputs[1] === e.tensorIndex ? [o] : []));
    return { ...e, route, layout, nativeOperators: route === 'native' ? readers : undefined };
  });
  return writeTflite(applySparsePlan(doc, { ...plan, entries }));
}

interface CalibrationPoint {
  encoding: NativeEncoding | 'densify-float' | 'densify-int8';
  rows: number;
  cols: number;
  stored: number;
  /** Time of the measured layer in this variant / in the dense model (same rounds). */
  ratio: number;
}

/** A model that runs in `engine`, or the runtime's first error line. */
async function runs(engineName: EngineName, bytes: Uint8Array): Promise<string | null> {
  const { deterministicInputs } = await import('../src/verify/tflite-runtime.js');
  try {
    const engine = await loadTfliteRuntime(engineName);
    const session = await engine.load(bytes);
    try { await session.run(deterministicInputs(session.inputs(), 1)); } finally { session.dispose(); }
    return null;
  } catch (e) {
    return (e as Error).message.split('\n')[0]!;
  }
}

async function calibrateEngine(engineName: EngineName, quick: boolean): Promise<void> {
  const shapes: Array<[number, number]> = quick ? [[512, 512], [64, 2048], [1024, 1024]]
    : [[16, 64], [64, 2048], [128, 1600], [256, 512], [512, 784], [512, 512], [1024, 256], [1024, 1024], [2048, 512]];
  const densities = quick ? [0.05, 0.2] : [0.03, 0.06, 0.1, 0.2, 0.35, 0.5];
  const rounds = quick ? 40 : 200;
  const points: CalibrationPoint[] = [];
  const refused = new Set<string>();
  const denseLayer: Array<{ int8: boolean; rows: number; cols: number; ms: number }> = [];
  for (const int8 of [false, true]) {
    for (const [rows, cols] of shapes) {
      if (int8 && cols % 16) continue;
      const seed = rows * 7 + cols;
      const denseModel = fcSandwich(rows, cols, maskedWeights(rows, cols, 1, 1, int8, seed), int8, seed);
      // the same sandwich without the measured layer: its time is the harness and the small layers
      const baseModel = fcSandwich(rows, cols, null, int8, seed);
      const models: Array<{ name: string; bytes: Uint8Array; point?: Omit<CalibrationPoint, 'ratio'> }> = [
        { name: 'dense', bytes: denseModel }, { name: 'base', bytes: baseModel },
      ];
      for (const density of densities) {
        const encodings: Array<[NativeEncoding, number]> = int8 ? [['int8-1x16', 16]] : [['float32-csr', 1], ['float32-1x4', 4]];
        for (const [encoding, block] of encodings) {
          if (cols % block) continue;
          const w = maskedWeights(rows, cols, density, block, int8, seed + Math.round(density * 1000) + block);
          let stored = 0;
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < cols; c += block) {
              let any = false;
              for (let k = 0; k < block; k++) if (w[r * cols + c + k]) any = true;
              if (any) stored += block;
            }
          }
          const base = fcSandwich(rows, cols, w, int8, seed);
          const layout = block === 1 ? LAYOUT_CSR : blockLayout(block);
          models.push({ name: `${encoding} ${density}`, bytes: variant(base, 'native', layout), point: { encoding, rows, cols, stored } });
          if (density === 0.2 || density === 0.05) {
            models.push({ name: `densify ${encoding} ${density}`, bytes: variant(base, 'densify', layout), point: { encoding: int8 ? 'densify-int8' : 'densify-float', rows, cols, stored } });
          }
        }
      }
      const usable: typeof models = [];
      for (const m of models) {
        const error = await runs(engineName, m.bytes);
        if (error === null) usable.push(m);
        else if (!refused.has(m.name.replace(/ [\d.]+$/, ''))) {
          refused.add(m.name.replace(/ [\d.]+$/, ''));
          console.log(`${engineName}: ${m.name.replace(/ [\d.]+$/, '')} refused: ${error}`);
        }
      }
      if (usable[0]?.name !== 'dense' || usable[1]?.name !== 'base') continue;
      const engine = await loadTfliteRuntime(engineName);
      const m = await measureLatency(engine, usable, { rounds, minRounds: rounds, warmup: 3, minSampleMs: 3, maxSeconds: 400, trials: TRIALS, betweenRounds: gc });
      const layerMs = -m.results[1]!.deltaMs; // dense - base
      denseLayer.push({ int8, rows, cols, ms: layerMs });
      m.results.forEach((r, i) => {
        const point = usable[i]!.point;
        if (point) points.push({ ...point, ratio: (layerMs + r.deltaMs) / layerMs });
      });
      console.log(`${engineName} ${int8 ? 'int8   ' : 'float32'} ${`${rows}x${cols}`.padEnd(9)} dense layer ${(layerMs * 1000).toFixed(1)} us (${(layerMs * 1e6 / (rows * cols)).toFixed(3)} ns/elem); `
        + `layer time / dense: ${m.results.slice(2).map((r, i) => `${r.name} ${usable[i + 2]!.point ? ((layerMs + r.deltaMs) / layerMs).toFixed(2) : '?'}`).join(', ')}`);
    }
  }
  // XNNPACK's sparse mode: Google's sparse face detector (PAD + VALID convolutions, DEPTH_TO_SPACE
  // exits) against its densified copy
  const google = new Uint8Array(fs.readFileSync(MEDIAPIPE('face_detection/face_detection_full_range_sparse.tflite')));
  const googleDense = writeTflite(densifyTfliteDocument(readTfliteDocument(google)).doc);
  const xm = await measureLatency(await loadTfliteRuntime(engineName), [{ name: 'dense', bytes: googleDense }, { name: 'sparse', bytes: google }],
    { rounds: quick ? 20 : 120, minRounds: quick ? 20 : 120, warmup: 3, maxSeconds: 180, trials: TRIALS, betweenRounds: gc });
  const raw: CalibrationRaw = { engine: engineName, date: new Date().toISOString(), points, denseLayer, refused: [...refused], xnnpackSparse: xm.results[1]!.speedup };
  const dir = path.join(os.tmpdir(), 'prunepack-calibration');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${engineName}.json`), JSON.stringify(raw, null, 1));
  console.log(`${engineName}: raw measurements in ${path.join(dir, `${engineName}.json`)} (--refit FILE... fits them again)`);
  console.log(`${engineName} profile: ${JSON.stringify(fitProfile(raw))}`);
}

interface CalibrationRaw {
  engine: string;
  date: string;
  points: CalibrationPoint[];
  denseLayer: Array<{ int8: boolean; rows: number; cols: number; ms: number }>;
  refused: string[];
  xnnpackSparse: number;
}

const MAX_STORED_SHARE = 0.25;

/** Calibration points whose dense layer lasts long enough to measure a ratio well (>= 64K elements). */
const RELIABLE_ELEMENTS = 65_536;

/** The profile fields of latency.ts from raw calibration measurements. */
function fitProfile(raw: CalibrationRaw, verbose = false) {
  const { points, denseLayer } = raw;
  const denseRates = (int8: boolean): Array<[number, number]> => {
    const bySize = new Map<number, number[]>();
    for (const d of denseLayer) {
      if (d.int8 !== int8 || d.rows * d.cols < 16_384) continue;
      const bytes = d.rows * d.cols * (int8 ? 1 : 4);
      bySize.set(bytes, [...(bySize.get(bytes) ?? []), d.ms * 1e6 / (d.rows * d.cols)]);
    }
    return [...bySize].map(([bytes, rates]) => [bytes, round(rates.reduce((a, b) => a + b, 0) / rates.length, 4)] as [number, number]).sort((a, b) => a[0] - b[0]);
  };
  const rates = { float32: denseRates(false), int8: denseRates(true) };
  const fit = (encoding: NativeEncoding): KernelCost | null => {
    // beyond a quarter of the values stored the kernels slow down faster than linearly (and are
    // slower than dense everywhere measured): fit the range where the decision is made
    const pts = points.filter((p) => p.encoding === encoding && p.stored <= MAX_STORED_SHARE * p.rows * p.cols);
    if (pts.length < 4) return null;
    const int8 = encoding === 'int8-1x16';
    const layer = (p: CalibrationPoint) => denseLayer.find((d) => d.int8 === int8 && d.rows === p.rows && d.cols === p.cols)!.ms * 1e6;
    // native layer time (ns) = fixed + perRow * rows + perValue * stored; least squares on relative error
    const ns = pts.map((p) => p.ratio * layer(p));
    const coef = leastSquares(pts.map((p) => [1, p.rows, p.stored]), ns, ns.map((t) => 1 / Math.max(t, 100) ** 2));
    const [fixedNs, perRowNs, perValueNs] = coef.map((c) => Math.max(0, c)) as [number, number, number];
    // then the time per stored value for each weight size (it rises as the weight leaves the caches)
    const perSize = new Map<number, number[]>();
    pts.forEach((p, i) => {
      if (p.rows * p.cols < 16_384) return;
      const bytes = p.rows * p.cols * (int8 ? 1 : 4);
      perSize.set(bytes, [...(perSize.get(bytes) ?? []), Math.max(0, (ns[i]! - fixedNs - perRowNs * p.rows) / p.stored)]);
    });
    const perValue = perSize.size ? [...perSize].map(([bytes, v]) => [bytes, round(median(v), 4)] as [number, number]).sort((a, b) => a[0] - b[0])
      : [[1 << 20, round(perValueNs, 4)] as [number, number]];
    const k: KernelCost = { fixedNs: round(fixedNs, 0), perRowNs: round(perRowNs, 3), perValueNs: perValue, maxStoredShare: MAX_STORED_SHARE, uncertainty: 0 };
    const errors: number[] = [];
    for (const p of pts) {
      const bytes = p.rows * p.cols * (int8 ? 1 : 4);
      const predicted = (k.fixedNs + k.perRowNs * p.rows + interpolateRate(k.perValueNs, bytes) * p.stored) / (p.rows * p.cols * interpolateRate(int8 ? rates.int8 : rates.float32, bytes));
      if (verbose) console.log(`  ${encoding} ${p.rows}x${p.cols} stored ${(p.stored / (p.rows * p.cols)).toFixed(3)}: measured ${p.ratio.toFixed(2)} predicted ${predicted.toFixed(2)}`);
      // The error that matters: a read predicted at most as slow as dense that measures slower than
      // predicted (on layers long enough to measure); errors above dense speed do not change a choice.
      if (p.rows * p.cols >= RELIABLE_ELEMENTS && predicted <= 1) errors.push((p.ratio - predicted) / predicted);
    }
    k.uncertainty = round(Math.max(0.1, ...errors), 2);
    return k;
  };
  const densify = (encoding: 'densify-float' | 'densify-int8') => {
    const pts = points.filter((p) => p.encoding === encoding && p.rows * p.cols >= 100_000);
    if (!pts.length) return null;
    const m = median(pts.map((p) => p.ratio));
    return Math.abs(m - 1) < 0.03 ? 1 : round(m, 2); // within noise of dense speed: dense speed
  };
  return {
    date: raw.date.slice(0, 10),
    denseNsPerElement: rates,
    native: { 'float32-csr': fit('float32-csr'), 'float32-1x4': fit('float32-1x4'), 'int8-1x16': fit('int8-1x16') },
    densify: { float: densify('densify-float'), int8: densify('densify-int8') },
    xnnpackSparse: { speedup: round(raw.xnnpackSparse, 2), model: 'face_detection_full_range_sparse.tflite (Google) vs its densified copy' },
    refused: raw.refused,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Weighted least squares by normal equations (small systems). */
function leastSquares(xs: number[][], ys: number[], w: number[]): number[] {
  const n = xs[0]!.length;
  const a = Array.from({ length: n }, () => new Array<number>(n + 1).fill(0));
  xs.forEach((x, i) => {
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) a[r]![c]! += w[i]! * x[r]! * x[c]!;
      a[r]![n]! += w[i]! * x[r]! * ys[i]!;
    }
  });
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c || a[c]![c] === 0) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k <= n; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return a.map((row, i) => row[n]! / row[i]!);
}

// ---------------------------------------------------------------------------------------------
// The model benchmark

export interface LatencyRow {
  model: string;
  engine: string;
  goal: OptimizeGoal;
  bytes: number;
  denseBytes: number;
  /** Median over rounds of dense time / this variant's time (> 1: faster). */
  speedup: number;
  quartiles: [number, number];
  /** Ratio of the 10th percentiles (dense / variant): the estimate least disturbed by other processes. */
  speedupP10: number;
  denseMs: number;
  variantMs: number;
  /** Same file as another goal's (measured once). */
  sameAs?: OptimizeGoal;
  nativeWeights: number;
  densifyWeights: number;
  xnnpackExpected: boolean;
  /** Max relative difference of the outputs to dense in this engine (0: bit-identical). */
  maxRelDiff: number;
}

async function benchModel(model: BenchModel, engineName: EngineName, rounds: number, maxSeconds: number): Promise<LatencyRow[]> {
  const engine = await loadTfliteRuntime(engineName);
  const check = await createRuntimeCheck(model.dense, { engine });
  const variants: Array<{ goal: OptimizeGoal; bytes: Uint8Array; plan: SparsePlan; maxRelDiff: number }> = [];
  for (const goal of OPTIMIZE_GOALS) {
    const result = await sparsifyTfliteChecked(readTfliteDocument(model.dense), { optimize: goal, runtime: engineName }, check.check);
    const comparison = await check.compare(result.bytes);
    variants.push({ goal, bytes: result.bytes, plan: result.plan, maxRelDiff: comparison.bitIdentical ? 0 : comparison.maxRelDiff });
  }
  const unique: Array<{ name: string; bytes: Uint8Array }> = [{ name: 'dense', bytes: model.dense }];
  const sameAs = new Map<OptimizeGoal, OptimizeGoal>();
  for (const v of variants) {
    const twin = variants.find((w) => w !== v && unique.some((u) => u.name === w.goal) && Buffer.compare(Buffer.from(w.bytes), Buffer.from(v.bytes)) === 0);
    if (twin) sameAs.set(v.goal, twin.goal);
    else unique.push({ name: v.goal, bytes: v.bytes });
  }
  const m = await measureLatency(engine, unique, { rounds, minRounds: Math.min(rounds, 60), maxSeconds, warmup: 3, minSampleMs: 2, trials: TRIALS, betweenRounds: gc });
  const byName = new Map(m.results.map((r) => [r.name, r]));
  return variants.map((v) => {
    const r = byName.get(sameAs.get(v.goal) ?? v.goal)!;
    return {
      model: model.name, engine: m.engine, goal: v.goal, bytes: v.bytes.length, denseBytes: model.dense.length,
      speedup: r.speedup, quartiles: r.speedupQuartiles, speedupP10: r.speedupP10, denseMs: byName.get('dense')!.medianMs, variantMs: r.medianMs,
      ...(sameAs.has(v.goal) ? { sameAs: sameAs.get(v.goal)! } : {}),
      nativeWeights: v.plan.entries.filter((e) => e.route === 'native').length,
      densifyWeights: v.plan.entries.filter((e) => e.route === 'densify').length,
      xnnpackExpected: v.plan.xnnpack.expected, maxRelDiff: v.maxRelDiff,
    };
  });
}

function printRows(rows: readonly LatencyRow[]): string {
  const lines: string[] = [];
  const engines = [...new Set(rows.map((r) => r.engine))];
  for (const engine of engines) {
    lines.push(`| model (${engine}) | dense | size | balanced | latency |`, '|---|---|---|---|---|');
    const models = [...new Set(rows.filter((r) => r.engine === engine).map((r) => r.model))];
    for (const model of models) {
      const of = (goal: OptimizeGoal) => rows.find((r) => r.engine === engine && r.model === model && r.goal === goal)!;
      const cell = (goal: OptimizeGoal) => {
        const r = of(goal);
        const routes = `${r.nativeWeights ? `${r.nativeWeights} native` : ''}${r.nativeWeights && r.densifyWeights ? ', ' : ''}${r.densifyWeights ? `${r.densifyWeights} DENSIFY` : ''}`;
        return `**${r.speedup.toFixed(2)}x** [${r.quartiles[0].toFixed(2)}-${r.quartiles[1].toFixed(2)}; p10 ${r.speedupP10.toFixed(2)}x], ${r.bytes.toLocaleString('en-US')} B${routes ? ` (${routes}${r.xnnpackExpected ? ', XNNPACK sparse' : ''})` : ''}${r.sameAs ? ` = ${r.sameAs}` : ''}`;
      };
      const d = of('size');
      lines.push(`| ${model} | ${d.denseMs.toFixed(3)} ms, ${d.denseBytes.toLocaleString('en-US')} B | ${cell('size')} | ${cell('balanced')} | ${cell('latency')} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** Fresh sessions per measurement: a session's memory placement changes its speed (latency.ts). */
const TRIALS = 12;

const BEGIN = '<!-- latency-results:begin (written by npm run bench -- latency) -->';
const END = '<!-- latency-results:end -->';

function writeResults(rows: readonly LatencyRow[], meta: Record<string, unknown>): void {
  // bench/results.json: keep the other benchmarks' rows, replace the latency ones
  const file = path.join(root, 'bench', 'results.json');
  const previous = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as { rows?: Array<{ benchmark: string }> } & Record<string, unknown> : {};
  const kept = (previous.rows ?? []).filter((r) => !r.benchmark.startsWith('latency '));
  const added = rows.map((r) => ({
    benchmark: `latency ${r.engine.split(' ')[0]}: ${r.model}`, metric: `${r.goal}: dense time / ${r.goal} time (median of interleaved rounds)`,
    value: r.speedup, ...(r.goal !== 'size' ? { target: '>= 0.97' } : {}),
  }));
  fs.writeFileSync(file, `${JSON.stringify({ ...previous, rows: [...kept, ...added], latency: { ...meta, rows } }, null, 2)}\n`);
  // docs/performance.md: the generated part of "Inference latency"
  const doc = path.join(root, 'docs', 'performance.md');
  const table = `${BEGIN}\n\nMeasured ${String(meta.date)} on ${String(meta.machine)}, node ${process.version}, \`${String(meta.command)}\`: ${String(meta.method)}\n\n${printRows(rows)}${END}`;
  let text = fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '# Performance\n\n## Inference latency\n\n';
  const at = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (at >= 0 && end > at) text = `${text.slice(0, at)}${table}${text.slice(end + END.length)}`;
  else text = `${text.trimEnd()}\n\n${table}\n`;
  fs.writeFileSync(doc, text);
}

// ---------------------------------------------------------------------------------------------
// Entry point

export async function runLatencyBench(argv: readonly string[]): Promise<void> {
  const engineArg = argv.includes('--engine') ? argv[argv.indexOf('--engine') + 1] as EngineName : undefined;
  const engines = engineArg ? [engineArg] : [...ENGINE_NAMES];
  const quick = argv.includes('--quick');
  if (argv.includes('--calibrate')) {
    for (const e of engines) await calibrateEngine(e, quick);
    return;
  }
  if (argv.includes('--refit')) {
    for (const file of argv.slice(argv.indexOf('--refit') + 1).filter((a) => !a.startsWith('--'))) {
      const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as CalibrationRaw;
      console.log(`${raw.engine} profile: ${JSON.stringify(fitProfile(raw, argv.includes('--verbose')))}`);
    }
    return;
  }
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const rounds = quick ? 30 : 240;
  const maxSeconds = quick ? 10 : 120;
  const rows: LatencyRow[] = [];
  for (const model of latencyModels()) {
    if (only && !model.name.includes(only)) continue;
    for (const engineName of engines) {
      if (!model.engines.includes(engineName)) continue;
      const result = await benchModel(model, engineName, rounds, maxSeconds);
      rows.push(...result);
      console.log(`${engineName.padEnd(11)} ${model.name.padEnd(52)} ${result.map((r) => `${r.goal} ${r.speedup.toFixed(2)}x (${r.bytes.toLocaleString('en-US')} B)`).join('  ')}`);
    }
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const meta = {
    date: new Date().toISOString().slice(0, 10), machine: `${cpu}, ${os.cpus().length} cores (shared)`, command: `npm run bench -- latency${quick ? ' --quick' : ''}`,
    method: `one thread; per model and engine: ${OPTIMIZE_GOALS.join(' / ')} outputs of tflite-sparse (each checked in that engine), ${TRIALS} trials, each loading fresh sessions of dense and of every distinct output in rotated order, each behind a spacer model of random size (where a session lands in wasm memory changes its speed by up to 1.8x), 3 warm-up runs, then its share of ${rounds} rounds (at most ${maxSeconds} s in all) in which every session runs once, in rotated order (repeated back to back to >= 2 ms per sample); the ratio is the median over rounds of dense time / output time in the same round, [its quartiles; p10: ratio of the 10th-percentile times, the estimate least disturbed by other processes]; > 1 is faster than dense.`,
    profiles: engines.map((e) => runtimeProfile(e).measured),
  };
  console.log(`\n${printRows(rows)}`);
  const failing = rows.filter((r) => r.goal !== 'size' && r.speedup < 0.97);
  if (failing.length) console.log(`BELOW 0.97: ${failing.map((r) => `${r.engine} ${r.model} ${r.goal} ${r.speedup.toFixed(3)}`).join('; ')}`);
  if (!only) writeResults(rows, meta);
  else console.log('(--only: results not written)');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await runLatencyBench(process.argv.slice(2));
}
