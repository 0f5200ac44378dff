/**
 * Real TensorFlow.js for verification: @tensorflow/tfjs-core with the CPU backend, tfjs-converter
 * for graph models and tfjs-layers for layers models, all loaded lazily so nothing else in
 * prunepack depends on them. Node-only.
 *
 * A model given by its model.json path is loaded the way users load it: a plain model through
 * TF.js's own http handler (over a file-serving fetch, so TF.js's weight decoding is the one under
 * test), a prunepack-sparse model through the prunepack/tfjs IOHandler. Both models run on the
 * same seeded inputs: float32 uniform in [-1, 1), int32 in [0, 255], bool 0/1; unknown
 * dimensions become 1 on axis 0 and `dynamicDim` (default 32) elsewhere. The CPU backend is
 * deterministic, so equal weights must give bit-identical outputs.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PrunepackError } from '../errors.js';
import type { DType } from '../model/dtype.js';
import { parseModelJson, type TfjsKind } from '../../converters/tfjs/manifest.js';
import { tfjsFileFetch, tfjsFileHandler } from '../../converters/tfjs/files.js';
import type { TfjsLoadHandler } from '../../converters/tfjs/loader.js';
import { compareOutputs, mulberry32, type OutputDiff, type TensorSpec, type TypedArray } from './tflite-runtime.js';

/** The parts of TF.js used here, typed locally so the packages stay optional. */
interface TfTensor {
  dtype: string;
  shape: number[];
  data(): Promise<TypedArray | string[] | Uint8Array[]>;
  dispose(): void;
}
interface TfModelInput { name: string; shape?: Array<number | null>; dtype?: string }
interface TfGraphModel {
  inputs: TfModelInput[];
  outputs: Array<{ name: string }>;
  execute(inputs: Record<string, TfTensor>): TfTensor | TfTensor[];
  executeAsync(inputs: Record<string, TfTensor>): Promise<TfTensor | TfTensor[]>;
  dispose(): void;
}
interface TfLayersModel {
  inputs: Array<{ name: string; shape: Array<number | null>; dtype?: string }>;
  outputs: Array<{ name: string }>;
  predict(x: TfTensor | TfTensor[]): TfTensor | TfTensor[];
  dispose(): void;
}
interface TfCore {
  version_core: string;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  backend(): unknown;
  tensor(values: TypedArray, shape: number[], dtype: string): TfTensor;
  io: { http(path: string, options: { fetchFunc: (url: string) => Promise<Response> }): unknown };
}
export interface TfjsRuntime {
  version: string;
  tf: TfCore;
  loadGraphModel(handler: unknown): Promise<TfGraphModel>;
  loadLayersModel(handler: unknown): Promise<TfLayersModel>;
}

let runtimePromise: Promise<TfjsRuntime> | undefined;

/** TF.js core + CPU backend + converter + layers, imported once per process. */
export function loadTfjsRuntime(): Promise<TfjsRuntime> {
  runtimePromise ??= (async () => {
    try {
      const require = createRequire(import.meta.url);
      const tf = require('@tensorflow/tfjs-core') as TfCore;
      require('@tensorflow/tfjs-backend-cpu');
      const converter = require('@tensorflow/tfjs-converter') as { loadGraphModel(h: unknown): Promise<TfGraphModel> };
      const layers = require('@tensorflow/tfjs-layers') as { loadLayersModel(h: unknown): Promise<TfLayersModel> };
      await tf.setBackend('cpu');
      await tf.ready();
      // The CPU backend greets Node users once, on its first tensor; this is not a user-facing run.
      const backend = tf.backend() as { firstUse?: boolean };
      if (typeof backend.firstUse === 'boolean') backend.firstUse = false;
      return {
        version: `tfjs-core ${tf.version_core} (cpu backend)`, tf,
        loadGraphModel: (h) => converter.loadGraphModel(h), loadLayersModel: (h) => layers.loadLayersModel(h),
      };
    } catch (cause) {
      runtimePromise = undefined;
      throw new PrunepackError('RUNTIME', 'TensorFlow.js is not available', {
        format: 'tfjs', cause, hint: 'Install @tensorflow/tfjs-core, @tensorflow/tfjs-backend-cpu, @tensorflow/tfjs-converter and @tensorflow/tfjs-layers',
      });
    }
  })();
  return runtimePromise;
}

/** A model to run: a model.json path, or an IOHandler with its kind. */
export type TfjsModelSource = string | { handler: TfjsLoadHandler | unknown; kind: TfjsKind };

export interface TfjsRunOptions {
  /** Input shapes by input name (take precedence over the model's). */
  shapes?: Readonly<Record<string, readonly number[]>>;
  /** Size of unknown dimensions other than axis 0 (default 32). */
  dynamicDim?: number;
  /** Seed of the input generator (default 1). */
  seed?: number;
}

export interface TfjsOutputComparison extends OutputDiff {
  name: string;
  elements: number;
  dtype: string;
}

export interface TfjsComparison {
  runtime: string;
  kind: TfjsKind;
  inputs: TensorSpec[];
  outputs: TfjsOutputComparison[];
  bitIdentical: boolean;
  maxAbsDiff: number;
  maxRelDiff: number;
}

interface LoadedModel {
  kind: TfjsKind;
  inputs: TensorSpec[];
  outputNames: string[];
  run(inputs: TfTensor[]): Promise<TfTensor[]>;
  dispose(): void;
}

function runtimeError(what: string, cause: unknown): PrunepackError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new PrunepackError('RUNTIME', `TensorFlow.js: ${what}: ${detail.split('\n')[0]}`, { format: 'tfjs', cause });
}

const TF_DTYPES: Record<string, DType> = { float32: 'float32', int32: 'int32', bool: 'bool' };

function specsOf(inputs: TfModelInput[], options: TfjsRunOptions): TensorSpec[] {
  return inputs.map((input) => {
    const dtype = TF_DTYPES[input.dtype ?? 'float32'];
    if (!dtype) throw new PrunepackError('UNSUPPORTED', `cannot generate inputs of type ${input.dtype}`, { format: 'tfjs', location: input.name });
    const fixed = options.shapes?.[input.name];
    if (!fixed && !input.shape) {
      throw new PrunepackError('UNSUPPORTED', 'model input of unknown rank', { format: 'tfjs', location: input.name, hint: 'Pass its shape in options.shapes' });
    }
    const shape = fixed ? [...fixed] : input.shape!.map((d, axis) => (d === null || d < 0 ? (axis === 0 ? 1 : options.dynamicDim ?? 32) : d));
    return { name: input.name, dtype, shape };
  });
}

/** Seeded inputs: float32 in [-1, 1), int32 in [0, 255] (image-like), bool 0/1. */
export function tfjsInputs(specs: readonly TensorSpec[], seed: number): TypedArray[] {
  return specs.map((spec, i) => {
    const rand = mulberry32((seed * 0x9e3779b1 + i * 0x85ebca6b) >>> 0);
    const count = spec.shape.reduce((n, d) => n * d, 1);
    if (spec.dtype === 'int32') return Int32Array.from({ length: count }, () => Math.floor(rand() * 256));
    if (spec.dtype === 'bool') return Uint8Array.from({ length: count }, () => (rand() < 0.5 ? 0 : 1));
    return Float32Array.from({ length: count }, () => rand() * 2 - 1);
  });
}

/** Reads model.json at `file` to pick the loader: prunepack's for sparse models, TF.js's own otherwise. */
function handlerFor(modelJson: string, runtime: TfjsRuntime): { handler: unknown; kind: TfjsKind } {
  const file = path.resolve(modelJson);
  const parsed = parseModelJson(fs.readFileSync(file), file);
  const handler = parsed.manifest?.sparse || parsed.manifest?.sentinel
    ? tfjsFileHandler(file)
    : runtime.tf.io.http(file, { fetchFunc: tfjsFileFetch(file) });
  return { handler, kind: parsed.kind };
}

async function loadModel(source: TfjsModelSource, runtime: TfjsRuntime, options: TfjsRunOptions): Promise<LoadedModel> {
  const { handler, kind } = typeof source === 'string' ? handlerFor(source, runtime) : source;
  if (kind === 'weights-manifest') throw new PrunepackError('UNSUPPORTED', 'a bare weights manifest has no topology to run', { format: 'tfjs' });
  if (kind === 'graph-model') {
    let model: TfGraphModel;
    try { model = await runtime.loadGraphModel(handler); } catch (e) { throw e instanceof PrunepackError ? e : runtimeError('loading the graph model failed', e); }
    let dynamic = false;
    return {
      kind, inputs: specsOf(model.inputs, options), outputNames: model.outputs.map((o) => o.name),
      async run(tensors) {
        const feed = Object.fromEntries(model.inputs.map((input, i) => [input.name, tensors[i]!]));
        let out: TfTensor | TfTensor[];
        if (!dynamic) {
          try {
            out = model.execute(feed);
            return Array.isArray(out) ? out : [out];
          } catch (e) {
            // Control flow and dynamic shapes need executeAsync; TF.js says so in its message.
            if (!/executeAsync/.test((e as Error).message ?? '')) throw runtimeError('running the graph model failed', e);
            dynamic = true;
          }
        }
        try { out = await model.executeAsync(feed); } catch (e) { throw runtimeError('running the graph model failed', e); }
        return Array.isArray(out) ? out : [out];
      },
      dispose: () => model.dispose(),
    };
  }
  let model: TfLayersModel;
  try { model = await runtime.loadLayersModel(handler); } catch (e) { throw e instanceof PrunepackError ? e : runtimeError('loading the layers model failed', e); }
  return {
    kind, inputs: specsOf(model.inputs, options), outputNames: model.outputs.map((o) => o.name),
    async run(tensors) {
      let out: TfTensor | TfTensor[];
      try { out = model.predict(tensors.length === 1 ? tensors[0]! : tensors); } catch (e) { throw runtimeError('running the layers model failed', e); }
      return Array.isArray(out) ? out : [out];
    },
    dispose: () => model.dispose(),
  };
}

async function collect(tensors: TfTensor[]): Promise<Array<{ dtype: string; data: TypedArray | string[] }>> {
  const out: Array<{ dtype: string; data: TypedArray | string[] }> = [];
  for (const t of tensors) {
    const data = await t.data();
    out.push({ dtype: t.dtype, data: Array.isArray(data) ? data.map((d) => (typeof d === 'string' ? d : new TextDecoder().decode(d))) : data });
    t.dispose();
  }
  return out;
}

/** Runs `reference` and `candidate` on the same seeded inputs and compares every output bit for bit. */
export async function compareTfjsModels(reference: TfjsModelSource, candidate: TfjsModelSource, options: TfjsRunOptions = {}): Promise<TfjsComparison> {
  const runtime = await loadTfjsRuntime();
  const a = await loadModel(reference, runtime, options);
  try {
    const b = await loadModel(candidate, runtime, options);
    try {
      if (a.outputNames.join('\n') !== b.outputNames.join('\n')) {
        throw new PrunepackError('VERIFY_FAILED', 'the two models have different outputs', { format: 'tfjs', expected: a.outputNames.join(', '), found: b.outputNames.join(', ') });
      }
      const specs = a.inputs;
      const values = tfjsInputs(specs, options.seed ?? 1);
      const make = () => specs.map((s, i) => runtime.tf.tensor(values[i]!, s.shape, s.dtype));
      const inputsA = make();
      const inputsB = make();
      let outA: Array<{ dtype: string; data: TypedArray | string[] }>;
      let outB: Array<{ dtype: string; data: TypedArray | string[] }>;
      try {
        outA = await collect(await a.run(inputsA));
        outB = await collect(await b.run(inputsB));
      } finally {
        for (const t of [...inputsA, ...inputsB]) t.dispose();
      }
      const outputs = a.outputNames.map((name, i): TfjsOutputComparison => {
        const x = outA[i]!;
        const y = outB[i]!;
        if (Array.isArray(x.data) || Array.isArray(y.data) || x.dtype !== y.dtype) {
          const same = x.dtype === y.dtype && JSON.stringify(Array.from(x.data as ArrayLike<unknown>)) === JSON.stringify(Array.from(y.data as ArrayLike<unknown>));
          return { name, dtype: x.dtype, elements: x.data.length, maxAbsDiff: same ? 0 : Infinity, maxRelDiff: same ? 0 : Infinity, bitIdentical: same };
        }
        return { name, dtype: x.dtype, elements: x.data.length, ...compareOutputs([x.data], [y.data as TypedArray])[0]! };
      });
      return {
        runtime: runtime.version, kind: a.kind, inputs: specs, outputs,
        bitIdentical: outputs.every((o) => o.bitIdentical),
        maxAbsDiff: Math.max(0, ...outputs.map((o) => o.maxAbsDiff)),
        maxRelDiff: Math.max(0, ...outputs.map((o) => o.maxRelDiff)),
      };
    } finally {
      b.dispose();
    }
  } finally {
    a.dispose();
  }
}
