/**
 * A real ONNX runtime for verification: onnxruntime-node (CPU), loaded lazily so nothing else
 * in prunepack depends on it. Load a model from bytes (or a path, for external data), feed the
 * same seeded inputs to two models, compare every output (max abs/rel difference, bit
 * identity). Node-only.
 *
 * Symbolic input dimensions are fixed before running: the first (batch) dimension to 1, every
 * other symbolic dimension to 64, unless `shapes` or `symbolicDim` say otherwise. For the
 * PaddleOCR models this gives det [1,3,64,64], rec [1,3,48,64], cls [1,3,64,64] (cls declares
 * [?,3,?,?]; pass shapes: { x: [1,3,48,192] } for its native size).
 *
 * Sessions run single-threaded with the default graph optimizations, so repeated runs of one
 * model are bit-identical and two models with the same effective weights give the same bits.
 */
import { createRequire } from 'node:module';
import { PrunepackError } from '../errors.js';
import type { DType } from '../model/dtype.js';
import { compareOutputs, deterministicInputs, type OutputDiff, type TensorSpec, type TypedArray } from './tflite-runtime.js';

export type { OutputDiff, TensorSpec, TypedArray };

/** The subset of onnxruntime-node's API used here (typed locally so the package stays optional). */
interface OrtTensor { type: string; dims: readonly number[]; data: unknown; dispose?(): void }
interface OrtValueMetadata { name: string; isTensor: boolean; type?: string; shape?: ReadonlyArray<number | string> }
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  inputMetadata?: readonly OrtValueMetadata[];
  outputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  InferenceSession: { create(model: Uint8Array | string, options?: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor;
  env: { versions?: { node?: string; common?: string } };
}

let ortPromise: Promise<{ ort: Ort; version: string }> | undefined;

/** onnxruntime-node, imported once per process. Throws PrunepackError 'RUNTIME' when it is not installed. */
export function loadOnnxRuntime(): Promise<{ ort: Ort; version: string }> {
  ortPromise ??= (async () => {
    try {
      const require = createRequire(import.meta.url);
      const ort = require('onnxruntime-node') as Ort;
      return { ort, version: `onnxruntime-node ${ort.env.versions?.node ?? ort.env.versions?.common ?? '?'}` };
    } catch (cause) {
      ortPromise = undefined;
      throw new PrunepackError('RUNTIME', 'onnxruntime-node is not available', {
        format: 'onnx', cause,
        hint: 'Install it (npm install --save-dev onnxruntime-node with npm config onnxruntime-node-install=skip) to run ONNX models',
      });
    }
  })();
  return ortPromise;
}

export interface OnnxRunOptions {
  /** Fixed input shapes by input name (take precedence over the model's dims). */
  shapes?: Readonly<Record<string, readonly number[]>>;
  /** Size for a symbolic dimension; default: 1 for axis 0, 64 otherwise. */
  symbolicDim?: (input: string, axis: number, param: string) => number;
  /** Seed of the input generator (default 1). */
  seed?: number;
}

export interface OnnxSession {
  readonly runtime: string;
  /** Inputs with symbolic dimensions resolved. */
  inputs(): TensorSpec[];
  outputNames(): string[];
  /** Output element types, known after the first run. */
  outputDTypes(): Array<DType | undefined>;
  /** Runs once; returns every output as a fresh typed array (strings as string[]). */
  run(inputs: readonly TypedArray[]): Promise<Array<TypedArray | string[]>>;
  dispose(): Promise<void>;
}

const ORT_TO_DTYPE: Record<string, DType> = {
  float32: 'float32', float64: 'float64', float16: 'float16', int8: 'int8', uint8: 'uint8', int16: 'int16', uint16: 'uint16',
  int32: 'int32', uint32: 'uint32', int64: 'int64', uint64: 'uint64', bool: 'bool', string: 'string',
};

function runtimeError(what: string, cause: unknown): PrunepackError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new PrunepackError('RUNTIME', `onnxruntime: ${what}: ${detail.split('\n')[0]}`, { format: 'onnx', cause });
}

/** Input specs with every symbolic or unknown dimension fixed. */
export function resolveInputSpecs(metadata: readonly OrtValueMetadata[], options: OnnxRunOptions = {}): TensorSpec[] {
  return metadata.map((m) => {
    if (!m.isTensor || !m.type) throw new PrunepackError('UNSUPPORTED', 'non-tensor model inputs cannot be generated', { format: 'onnx', location: m.name });
    const dtype = ORT_TO_DTYPE[m.type];
    if (!dtype || dtype === 'string') throw new PrunepackError('UNSUPPORTED', `cannot generate inputs of type ${m.type}`, { format: 'onnx', location: m.name });
    const fixed = options.shapes?.[m.name];
    const shape = fixed ? [...fixed] : (m.shape ?? []).map((d, axis) => {
      if (typeof d === 'number' && d >= 0) return d;
      const param = typeof d === 'string' ? d : '?';
      return options.symbolicDim ? options.symbolicDim(m.name, axis, param) : axis === 0 ? 1 : 64;
    });
    return { name: m.name, dtype, shape };
  });
}

/** Loads a model from bytes, or from a path (needed when it uses external data). */
export async function loadOnnxSession(model: Uint8Array | string, options: OnnxRunOptions = {}): Promise<OnnxSession> {
  const { ort, version } = await loadOnnxRuntime();
  let session: OrtSession;
  try {
    session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    });
  } catch (cause) {
    throw runtimeError('the runtime refused the model', cause);
  }
  const metadata = session.inputMetadata ?? session.inputNames.map((name) => ({ name, isTensor: true, type: 'float32', shape: [] }));
  let specs: TensorSpec[];
  try {
    specs = resolveInputSpecs(metadata, options);
  } catch (e) {
    await session.release();
    throw e;
  }
  let disposed = false;
  let outputTypes: Array<DType | undefined> = session.outputNames.map(() => undefined);
  return {
    runtime: version,
    outputDTypes: () => [...outputTypes],
    inputs: () => specs.map((s) => ({ ...s, shape: [...s.shape] })),
    outputNames: () => [...session.outputNames],
    async run(values) {
      if (disposed) throw new PrunepackError('INVALID_ARGUMENT', 'onnxruntime: session was disposed');
      if (values.length !== specs.length) {
        throw new PrunepackError('INVALID_ARGUMENT', 'onnxruntime: wrong number of model inputs', { expected: String(specs.length), found: String(values.length) });
      }
      const feeds: Record<string, OrtTensor> = {};
      specs.forEach((spec, i) => { feeds[spec.name] = new ort.Tensor(spec.dtype, values[i], spec.shape); });
      let results: Record<string, OrtTensor>;
      try {
        results = await session.run(feeds);
      } catch (cause) {
        throw runtimeError('running the model failed', cause);
      }
      outputTypes = session.outputNames.map((name) => ORT_TO_DTYPE[results[name]!.type]);
      return session.outputNames.map((name) => {
        const data = results[name]!.data;
        if (Array.isArray(data)) return [...(data as string[])];
        const array = data as TypedArray;
        return array.slice() as TypedArray;
      });
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await session.release();
    },
  };
}

export interface OnnxOutputComparison extends OutputDiff {
  name: string;
  elements: number;
}

export interface OnnxComparison {
  runtime: string;
  inputs: TensorSpec[];
  outputs: OnnxOutputComparison[];
  /** Every output bit-identical. */
  bitIdentical: boolean;
  maxAbsDiff: number;
  maxRelDiff: number;
}

/**
 * Runs `reference` and `candidate` on the same seeded inputs and compares every output.
 * Inputs are generated from the reference model's input specs (symbolic dims resolved).
 */
export async function compareOnnxModels(reference: Uint8Array | string, candidate: Uint8Array | string, options: OnnxRunOptions = {}): Promise<OnnxComparison> {
  const a = await loadOnnxSession(reference, options);
  try {
    const b = await loadOnnxSession(candidate, options);
    try {
      const specs = a.inputs();
      const inputs = deterministicInputs(specs, options.seed ?? 1);
      const [outA, outB] = [await a.run(inputs), await b.run(inputs)];
      const names = a.outputNames();
      if (names.join('\n') !== b.outputNames().join('\n')) {
        throw new PrunepackError('VERIFY_FAILED', 'the two models have different outputs', { format: 'onnx', expected: names.join(', '), found: b.outputNames().join(', ') });
      }
      const outputs = names.map((name, i): OnnxOutputComparison => {
        const x = outA[i]!;
        const y = outB[i]!;
        if (Array.isArray(x) || Array.isArray(y)) {
          const same = JSON.stringify(x) === JSON.stringify(y);
          return { name, elements: x.length, maxAbsDiff: same ? 0 : Infinity, maxRelDiff: same ? 0 : Infinity, bitIdentical: same };
        }
        return { name, elements: x.length, ...compareOutputs([x], [y], [a.outputDTypes()[i] ?? 'float32'])[0]! };
      });
      return {
        runtime: a.runtime, inputs: specs, outputs,
        bitIdentical: outputs.every((o) => o.bitIdentical),
        maxAbsDiff: Math.max(0, ...outputs.map((o) => o.maxAbsDiff)),
        maxRelDiff: Math.max(0, ...outputs.map((o) => o.maxRelDiff)),
      };
    } finally {
      await b.dispose();
    }
  } finally {
    await a.dispose();
  }
}
