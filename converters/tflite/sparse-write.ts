/**
 * Applies a sparse plan to a dense TfliteDocument: sparse buffers and sparsity parameters,
 * DENSIFY operators placed right before each weight's first reader (TFLite runs operators in
 * order), FULLY_CONNECTED version 8 for native sparse readers. Every tensor written is checked
 * here: its metadata passes the verifier and decodes back to the input's values (the values
 * check is left to the caller with `checkValues: false`, when it reads the written file back).
 *
 * Also the whole `--to tflite-sparse` pipeline: densify (so already-sparse inputs are re-planned,
 * not double-encoded), plan, write, and optionally prove the result in a real runtime, keeping
 * dense whatever the runtime refuses.
 */
import { BuiltinOperator } from '../../schemas/generated/tflite/tflite/builtin-operator.js';
import { OperatorT } from '../../schemas/generated/tflite/tflite/operator.js';
import { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import { PrunepackError } from '../../src/errors.js';
import { float16ToFloat32, type DType } from '../../src/model/dtype.js';
import { inThreadRunner, type TaskRunner } from '../../src/parallel/runner.js';
import type { OutputDiff, TensorSpec, TfliteEngine, TypedArray } from '../../src/verify/tflite-runtime.js';
import { TfliteBuffer, TypedSparsityT, type TfliteDocument } from './document.js';
import {
  bufferReferenceCounts, cloneTfliteDocument, densifyTfliteDocument, operatorCodeIndex, setTensorBytes, type DensifyReport,
} from './densify.js';
import {
  densifiedName, keepDenseInPlan, planSparseTflite, planSparseTfliteWith, type SparseLayout, type SparsePlan, type SparsePlanEntry, type SparsePlanOptions,
} from './sparse-plan.js';
import { ENCODE_TASK, encodeSparseWeight, tasks as weightTasks, type WeightEncoding } from './sparse-weight.js';
import { assembleLayout, layoutTflite, writeTflite, type TfliteLayout, type TfliteWriteOptions } from './write.js';

export { encodeSparseWeight } from './sparse-weight.js';

// ---------------------------------------------------------------------------------------------
// Applying a plan

/** Minimum TFLite runtime for DENSIFY v1 and FULLY_CONNECTED v8 (op_version_runtime.cc). */
const MIN_RUNTIME_DENSIFY = '2.2.0';
const MIN_RUNTIME_SPARSE_FC = '2.3.0';

/** Encodings made ahead of applySparsePlan (e.g. in worker threads), by the layout of their plan entry. */
export type PlanEncodings = ReadonlyMap<SparseLayout, WeightEncoding>;

/**
 * The sparse model for `plan` (made by planSparseTflite from this same dense `doc`). `doc` is
 * not modified. `encodings` (from encodePlan on the same document and plan) saves encoding again.
 */
export function applySparsePlan(doc: TfliteDocument, plan: SparsePlan, encodings?: PlanEncodings): TfliteDocument {
  const out = cloneTfliteDocument(doc);
  const references = bufferReferenceCounts(out);
  let emptyBuffer = -1;
  const insertions = new Map<number, Array<{ before: number; op: OperatorT }>>();
  let anyDensify = false;
  let anyNative = false;

  for (const entry of plan.entries) {
    if (entry.route === 'dense') continue;
    const sg = out.model.subgraphs[entry.subgraph];
    const tensor = sg?.tensors[entry.tensorIndex];
    const where = `subgraph ${entry.subgraph} tensor ${entry.tensorIndex} "${entry.tensor}"`;
    if (!sg || !tensor || !entry.layout || tensor.sparsity || tensor.shape.join() !== entry.shape.join()) {
      throw new PrunepackError('INVALID_ARGUMENT', 'the plan does not belong to this (dense) document', { format: 'tflite', location: where });
    }
    const buffer = out.buffers[tensor.buffer]!;
    const { params, stored } = encodings?.get(entry.layout) ?? encodeSparseWeight(buffer.bytes, entry.dtype, entry.shape, entry.layout, where);
    setTensorBytes(out, entry.subgraph, entry.tensorIndex, stored, references);
    tensor.sparsity = new TypedSparsityT(params);

    if (entry.route === 'native') {
      anyNative = true;
      const code = operatorCodeIndex(out, BuiltinOperator.FULLY_CONNECTED, 8);
      for (const o of entry.nativeOperators ?? []) {
        const op = sg.operators[o]!;
        if (op.inputs[1] !== entry.tensorIndex) throw new Error(`internal: operator ${o} does not read ${where} as weights`);
        op.opcodeIndex = code;
      }
      continue;
    }

    // DENSIFY: constant (sparse) -> densified tensor (same type and quantization, dense shape) -> readers
    anyDensify = true;
    if (emptyBuffer < 0) {
      emptyBuffer = out.buffers[0] && !out.buffers[0].hasData ? 0 : out.buffers.push(TfliteBuffer.of(new Uint8Array(0))) - 1;
    }
    const q = tensor.quantization;
    const quantization = q && (q.scale.length || q.zeroPoint.length || q.min.length || q.max.length || q.details) ? q : null;
    const densified = new TensorT([...tensor.shape], tensor.type, emptyBuffer, uniqueName(sg.tensors, densifiedName(entry.tensorIndex)),
      quantization, false, null, [...tensor.shapeSignature], tensor.hasRank);
    const d = sg.tensors.push(densified) - 1;
    let first = -1;
    sg.operators.forEach((op, o) => {
      let reads = false;
      op.inputs = op.inputs.map((i) => (i === entry.tensorIndex ? ((reads = true), d) : i));
      if (reads && first < 0) first = o;
    });
    if (first < 0) throw new Error(`internal: no operator reads ${where}`);
    let list = insertions.get(entry.subgraph);
    if (!list) insertions.set(entry.subgraph, (list = []));
    list.push({ before: first, op: new OperatorT(operatorCodeIndex(out, BuiltinOperator.DENSIFY, 1), [entry.tensorIndex], [d]) });
  }

  for (const [s, list] of insertions) {
    const sg = out.model.subgraphs[s]!;
    const byPosition = new Map<number, OperatorT[]>();
    for (const { before, op } of list) {
      const at = byPosition.get(before);
      if (at) at.push(op); else byPosition.set(before, [op]);
    }
    const operators: OperatorT[] = [];
    sg.operators.forEach((op, o) => {
      operators.push(...(byPosition.get(o) ?? []));
      operators.push(op);
    });
    sg.operators = operators;
  }
  if (anyNative) raiseMinRuntimeVersion(out, MIN_RUNTIME_SPARSE_FC, references);
  else if (anyDensify) raiseMinRuntimeVersion(out, MIN_RUNTIME_DENSIFY, references);
  return out;
}

function uniqueName(tensors: readonly TensorT[], wanted: string): string {
  const names = new Set(tensors.map((t) => (typeof t.name === 'string' ? t.name : '')));
  if (!names.has(wanted)) return wanted;
  for (let i = 1; ; i++) if (!names.has(`${wanted}#${i}`)) return `${wanted}#${i}`;
}

function compareVersions(a: string, b: string): number {
  const x = a.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const y = b.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** Raises the "min_runtime_version" metadata (when the model has it) to at least `version`. */
function raiseMinRuntimeVersion(doc: TfliteDocument, version: string, references: Uint32Array): void {
  const entry = doc.model.metadata.find((m) => m.name === 'min_runtime_version');
  if (!entry) return;
  const old = doc.buffers[entry.buffer];
  if (!old) return;
  const text = new TextDecoder().decode(old.bytes).replace(/\0.*$/s, '');
  if (/^\d+(\.\d+)*$/.test(text) && compareVersions(text, version) >= 0) return;
  // The converter pads the string with NULs to 16 bytes; keep the length when it fits.
  const bytes = new Uint8Array(Math.max(old.byteLength, version.length + 1));
  bytes.set(new TextEncoder().encode(version));
  if (references[entry.buffer] === 1) {
    doc.buffers[entry.buffer] = TfliteBuffer.of(bytes);
  } else {
    entry.buffer = doc.buffers.push(TfliteBuffer.of(bytes)) - 1;
  }
}

// ---------------------------------------------------------------------------------------------
// The pipeline

export interface SparsifyResult {
  /** The written model, assembled on first use (a view of `layout` otherwise: stream that). */
  readonly bytes: Uint8Array;
  /** The written model as flatbuffer head + weight pieces (write.ts), for streaming to a file. */
  layout: TfliteLayout;
  plan: SparsePlan;
  /** The dense document the plan refers to (the input, densified). */
  dense: TfliteDocument;
  densifyReport: DensifyReport;
  /** Groups of weights kept dense because the runtime refused them, with its message. */
  refusals: Array<{ tensors: string[]; reason: string }>;
  /** Threads the analysis and encoding ran on (1: this thread). */
  threads: number;
}

export interface SparsifyOptions extends SparsePlanOptions {
  /**
   * Threads for the per-weight analysis and encoding (default 1: this thread). Above 1, a pool of
   * worker threads takes one weight per task when the model has enough work (MIN_PARALLEL_BYTES);
   * the output is byte-identical either way. Weights in a SharedArrayBuffer reach the workers
   * without a copy; others are copied once per task.
   */
  jobs?: number;
  /** Least float32/float16/int8 weight bytes for which threads are started (default MIN_PARALLEL_BYTES). */
  parallelMinBytes?: number;
  /** Address buffers with Buffer.offset/size even below 2 GB (write.ts). */
  forceOffsetBuffers?: boolean;
  /**
   * Decode-compare every encoded weight with its dense values (default true). False when the
   * caller compares the written file's weights with the dense ones anyway (`convert` without
   * --no-verify reads the output back): the metadata is still verified here.
   */
  checkValues?: boolean;
}

/** Below this many bytes of candidate weights, starting worker threads costs more than it saves. */
export const MIN_PARALLEL_BYTES = 8 << 20;

function sparsifyResult(dense: TfliteDocument, plan: SparsePlan, densifyReport: DensifyReport, encodings: PlanEncodings | undefined,
  threads: number, refusals: SparsifyResult['refusals'] = [], write: TfliteWriteOptions = {}): SparsifyResult {
  const layout = layoutTflite(applySparsePlan(dense, plan, encodings), write);
  let bytes: Uint8Array | undefined;
  return {
    get bytes() { return (bytes ??= assembleLayout(layout)); },
    layout, plan, dense, densifyReport, refusals, threads,
  };
}

/** Densify, plan and write in this thread, without a runtime: `--to tflite-sparse --no-verify --jobs 1`. */
export function sparsifyTflite(doc: TfliteDocument, options: SparsePlanOptions = {}): SparsifyResult {
  const { doc: dense, report } = densifyTfliteDocument(doc);
  return sparsifyResult(dense, planSparseTflite(dense, options), report, undefined, 1);
}

/** sparsifyTflite with `options.jobs` threads for the analysis and the encoding. */
export async function sparsifyTfliteAsync(doc: TfliteDocument, options: SparsifyOptions = {}): Promise<SparsifyResult> {
  const { dense, report, plan, encodings, threads } = await planAndEncode(doc, options);
  return sparsifyResult(dense, plan, report, encodings, threads, [], { forceOffsetBuffers: options.forceOffsetBuffers });
}

/**
 * Densifies, plans and encodes every sparse weight of the plan with a runner over `jobs` threads
 * (in this thread when 1 or when the model is small).
 */
async function planAndEncode(doc: TfliteDocument, options: SparsifyOptions) {
  const { jobs = 1, parallelMinBytes = MIN_PARALLEL_BYTES } = options;
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new PrunepackError('INVALID_ARGUMENT', 'invalid number of jobs', { expected: 'an integer >= 1', found: String(jobs) });
  }
  const { doc: dense, report } = densifyTfliteDocument(doc);
  const runner = await weightRunner(dense, jobs, parallelMinBytes);
  try {
    const plan = await planSparseTfliteWith(runner, dense, options); // the planner reads its own options only
    return { dense, report, plan, encodings: await encodePlan(runner, dense, plan, options.checkValues ?? true), threads: runner.size };
  } finally {
    await runner.close();
  }
}

/**
 * The pool of `jobs` worker threads when the model has enough float32/float16/int8
 * weight bytes, else this thread alone.
 */
async function weightRunner(doc: TfliteDocument, jobs: number, minBytes: number): Promise<TaskRunner> {
  let bytes = 0;
  let weights = 0;
  for (const sg of doc.model.subgraphs) {
    for (const t of sg.tensors) {
      const b = doc.buffers[t.buffer];
      if (t.buffer > 0 && b?.hasData && ELEMENT_TYPES.has(t.type)) { bytes += b.byteLength; weights++; }
    }
  }
  if (jobs <= 1 || weights < 2 || bytes < minBytes) return inThreadRunner(weightTasks);
  return weightPool(jobs);
}

/**
 * The process-wide pool of `jobs` worker threads for weightTasks; this thread hands out the
 * weights, takes the results and lays out the file. (It ran tasks too until the results were
 * copied back: measured on a 1 GB model in one process after `--jobs 1` runs, two workers took the
 * stage from 1.48-1.58 s to 1.35-1.40 s, this thread's tasks having slowed by its other work.)
 */
async function weightPool(jobs: number): Promise<TaskRunner> {
  const { sharedPool } = await import('../../src/parallel/pool.js');
  return sharedPool({ size: jobs, modules: [new URL('./sparse-weight.js', import.meta.url)] });
}

/**
 * Starts the worker threads sparsifyTfliteAsync / sparsifyTfliteChecked will use with `jobs`
 * threads (Node only), so that they start and load their code while the caller reads the model
 * (`prunepack convert` does, for inputs of at least MIN_PARALLEL_BYTES). Nothing when jobs <= 1.
 */
export async function prestartWeightPool(jobs: number): Promise<void> {
  if (Number.isInteger(jobs) && jobs > 1) await weightPool(jobs);
}

const ELEMENT_TYPES = new Set([TensorType.FLOAT32, TensorType.FLOAT16, TensorType.INT8]);

/**
 * Encodes (and checks: see encodeSparseWeight for `checkValues`) every sparse weight of `plan`
 * with `runner`, one weight per task.
 */
export async function encodePlan(runner: TaskRunner, doc: TfliteDocument, plan: SparsePlan, checkValues = true): Promise<PlanEncodings> {
  const sparse = plan.entries.filter((e) => e.route !== 'dense' && e.layout);
  const encoded = await Promise.all(sparse.map((e) => {
    const tensor = doc.model.subgraphs[e.subgraph]?.tensors[e.tensorIndex];
    const buffer = tensor ? doc.buffers[tensor.buffer] : undefined;
    if (!tensor || !buffer || tensor.sparsity) {
      throw new PrunepackError('INVALID_ARGUMENT', 'the plan does not belong to this (dense) document', { format: 'tflite', location: e.tensor });
    }
    const where = `subgraph ${e.subgraph} tensor ${e.tensorIndex} "${e.tensor}"`;
    return runner.run<WeightEncoding>(ENCODE_TASK, { bytes: [buffer.bytes], params: { dtype: e.dtype, shape: e.shape, layout: e.layout, where, checkValues } });
  }));
  return new Map(sparse.map((e, i) => [e.layout!, encoded[i]!]));
}

/**
 * Judges a candidate model: resolves with null when it is acceptable (loads, runs, same outputs),
 * else with the reason. `plan` says which weights are sparse in it.
 */
export type CandidateCheck = (bytes: Uint8Array, plan: SparsePlan) => Promise<string | null>;

/** Largest group of weights that is bisected one by one after the runtime refused the group. */
const MAX_INDIVIDUAL_RETRIES = 16;

/**
 * Densify, plan, write, and check with `check` (normally a real runtime, see
 * createRuntimeCheck). When the check fails, weights are tried again per group of the same
 * route, dtype and consumer kind, then one by one, and whatever fails is kept dense, its plan
 * entry saying why. The returned model passed `check` (or the call throws).
 */
export async function sparsifyTfliteChecked(doc: TfliteDocument, options: SparsifyOptions, check: CandidateCheck): Promise<SparsifyResult> {
  const { dense, report, plan: firstPlan, encodings, threads } = await planAndEncode(doc, options);
  const write = { forceOffsetBuffers: options.forceOffsetBuffers };
  const first = sparsifyResult(dense, firstPlan, report, encodings, threads, [], write);
  const reason = await check(first.bytes, first.plan);
  if (reason === null) return first;
  const sparse = first.plan.entries.filter((e) => e.route !== 'dense');
  const groups = new Map<string, SparsePlanEntry[]>();
  for (const e of sparse) {
    const consumers = [...new Set(e.consumer.split(', ').map((c) => c.replace(/:\d+( x\d+)?$/, '')))].sort().join('+');
    const key = `${e.route}|${e.dtype}|${consumers}`;
    const list = groups.get(key);
    if (list) list.push(e); else groups.set(key, [e]);
  }
  const only = (keep: readonly SparsePlanEntry[]): SparsePlan => {
    const set = new Set(keep);
    return keepDenseInPlan(dense, first.plan, new Map(sparse.filter((e) => !set.has(e)).map((e) => [e, 'excluded while testing'])));
  };
  const attempt = async (plan: SparsePlan): Promise<string | null> => {
    try {
      return await check(writeTflite(applySparsePlan(dense, plan, encodings)), plan);
    } catch (e) {
      return (e as Error).message;
    }
  };
  const refused = new Map<SparsePlanEntry, string>();
  const refusals: SparsifyResult['refusals'] = [];
  for (const group of groups.values()) {
    const groupReason = await attempt(only(group));
    if (groupReason === null) continue;
    const failing: SparsePlanEntry[] = [];
    if (group.length <= MAX_INDIVIDUAL_RETRIES && group.length > 1) {
      for (const e of group) {
        const single = await attempt(only([e]));
        if (single !== null) { failing.push(e); refused.set(e, `runtime refused: ${single}`); }
      }
      if (failing.length) refusals.push({ tensors: failing.map((e) => e.tensor), reason: groupReason });
    }
    if (failing.length === 0) {
      for (const e of group) refused.set(e, `runtime refused: ${groupReason}`);
      refusals.push({ tensors: group.map((e) => e.tensor), reason: groupReason });
    }
  }
  let result = sparsifyResult(dense, keepDenseInPlan(dense, first.plan, refused), report, encodings, threads, refusals, write);
  const combined = await check(result.bytes, result.plan);
  if (combined !== null) {
    // The parts pass alone but not together: give up on sparsity rather than ship garbage.
    const all = new Map(sparse.map((e) => [e, refused.get(e) ?? `runtime refused the combined model: ${combined}`]));
    refusals.push({ tensors: sparse.filter((e) => !refused.has(e)).map((e) => e.tensor), reason: combined });
    result = sparsifyResult(dense, keepDenseInPlan(dense, first.plan, all), report, encodings, threads, refusals, write);
    const last = await check(result.bytes, result.plan);
    if (last !== null) {
      throw new PrunepackError('RUNTIME', 'even the dense rewrite fails the runtime check', { format: 'tflite', found: last });
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Runtime comparison

export interface OutputComparison extends OutputDiff {
  name: string;
  /** Largest |output| of the reference (scale for the tolerance). */
  referenceMaxAbs: number;
}

export interface RuntimeComparison {
  engine: string;
  seeds: number[];
  outputs: OutputComparison[];
  bitIdentical: boolean;
  maxAbsDiff: number;
  maxRelDiff: number;
  /** Every element within `tolerance` (relative, floored at the output's scale). */
  withinTolerance: boolean;
  tolerance: number;
}

export interface RuntimeCheckOptions {
  /** Input seeds for deterministicInputs (default [1]). */
  seeds?: number[];
  /**
   * Relative tolerance where the arithmetic legitimately changes order: FULLY_CONNECTED reading
   * sparse weights natively, and XNNPACK's fast sparse inference (which a DENSIFY-fed model with
   * >= 2/3 zeros in its 1x1 convolutions may get): |a - b| <= tolerance * max(|a|, |b|, largest
   * |reference output|). Default 1e-5. Otherwise outputs must be bit-identical.
   */
  tolerance?: number;
  engine?: TfliteEngine;
}

export interface RuntimeCheck {
  /** Compares a candidate with the reference (throws PrunepackError 'RUNTIME' when it cannot run). */
  compare(candidate: Uint8Array): Promise<RuntimeComparison>;
  /**
   * A CandidateCheck for sparsifyTfliteChecked: bit-identical outputs, or within tolerance when
   * the plan has native FULLY_CONNECTED reads or qualifies for XNNPACK sparse inference.
   */
  check: CandidateCheck;
  /** The last comparison made by `check` (the accepted model's when it passed). */
  last(): RuntimeComparison | null;
}

/**
 * Runs `reference` once in the TFLite WASM runtime (loaded lazily: Node only) on deterministic
 * inputs and returns a checker for candidates.
 */
export async function createRuntimeCheck(reference: Uint8Array, options: RuntimeCheckOptions = {}): Promise<RuntimeCheck> {
  const runtime = await import('../../src/verify/tflite-runtime.js');
  const name = options.engine?.name ?? runtime.DEFAULT_ENGINE;
  let engine = options.engine ?? await runtime.loadTfliteRuntime(name);
  const seeds = options.seeds ?? [1];
  const tolerance = options.tolerance ?? 1e-5;
  const run = async (bytes: Uint8Array): Promise<{ specs: TensorSpec[]; outputs: TypedArray[][] }> => {
    // A candidate that made the runtime abort leaves a broken instance: the cache hands out a fresh one.
    engine = await runtime.loadTfliteRuntime(name);
    const session = await engine.load(bytes);
    try {
      const specs = session.outputs();
      const outputs: TypedArray[][] = [];
      for (const seed of seeds) outputs.push(await session.run(runtime.deterministicInputs(session.inputs(), seed)));
      return { specs, outputs };
    } finally {
      session.dispose();
    }
  };
  const ref = await run(reference);
  const dtypes = ref.specs.map((s) => s.dtype);
  let lastComparison: RuntimeComparison | null = null;

  const compare = async (candidate: Uint8Array): Promise<RuntimeComparison> => {
    const got = await run(candidate);
    const outputs: OutputComparison[] = ref.specs.map((spec) => ({
      name: spec.name, maxAbsDiff: 0, maxRelDiff: 0, bitIdentical: true, referenceMaxAbs: 0,
    }));
    let within = true;
    ref.outputs.forEach((refRun, r) => {
      const diffs = runtime.compareOutputs(refRun, got.outputs[r]!, dtypes);
      diffs.forEach((d, i) => {
        const o = outputs[i]!;
        o.maxAbsDiff = Math.max(o.maxAbsDiff, d.maxAbsDiff);
        o.maxRelDiff = Math.max(o.maxRelDiff, d.maxRelDiff);
        o.bitIdentical &&= d.bitIdentical;
        const scale = maxAbs(refRun[i]!, dtypes[i]);
        o.referenceMaxAbs = Math.max(o.referenceMaxAbs, scale);
        if (!d.bitIdentical && !withinTolerance(refRun[i]!, got.outputs[r]![i]!, dtypes[i], tolerance, scale)) within = false;
      });
    });
    lastComparison = {
      engine: `${engine.name} (${engine.version})`,
      seeds,
      outputs,
      bitIdentical: outputs.every((o) => o.bitIdentical),
      maxAbsDiff: Math.max(0, ...outputs.map((o) => o.maxAbsDiff)),
      maxRelDiff: Math.max(0, ...outputs.map((o) => o.maxRelDiff)),
      withinTolerance: within,
      tolerance,
    };
    return lastComparison;
  };

  const check: CandidateCheck = async (bytes, plan) => {
    let c: RuntimeComparison;
    try {
      c = await compare(bytes);
    } catch (e) {
      return (e as Error).message.split('\n')[0]!;
    }
    if (c.bitIdentical) return null;
    // XNNPACK's sparse kernels: the zeros threshold (qualifies) or the replayed load-time decision
    // (expected, which counts zeros per NCHW cluster and can differ from the model-wide share)
    const reordered = plan.entries.some((e) => e.route === 'native') || plan.xnnpack.qualifies || plan.xnnpack.expected;
    if (reordered && c.withinTolerance) return null;
    return `outputs differ from the dense model (max abs ${c.maxAbsDiff.toExponential(3)}, max rel ${c.maxRelDiff.toExponential(3)})`
      + (reordered ? ` beyond ${tolerance} relative` : ' although DENSIFY must be exact');
  };
  return { compare, check, last: () => lastComparison };
}

function valueAt(a: TypedArray, i: number, dtype: DType | undefined): number {
  const v = a[i]!;
  if (typeof v === 'bigint') return Number(v);
  return a instanceof Uint16Array && dtype === 'float16' ? float16ToFloat32(v) : v;
}

function maxAbs(a: TypedArray, dtype: DType | undefined): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(valueAt(a, i, dtype));
    if (v > m && Number.isFinite(v)) m = v;
  }
  return m;
}

function withinTolerance(a: TypedArray, b: TypedArray, dtype: DType | undefined, tolerance: number, scale: number): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = valueAt(a, i, dtype);
    const y = valueAt(b, i, dtype);
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    const bound = tolerance * Math.max(Math.abs(x), Math.abs(y), scale);
    if (!(Math.abs(x - y) <= bound)) return false;
  }
  return true;
}
