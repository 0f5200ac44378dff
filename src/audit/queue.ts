/**
 * The work queue of a streaming audit on several threads (src/audit/parallel.ts), shared by the
 * calling thread and the worker threads (src/audit/worker.ts). Workers do not parse the model:
 * the calling thread locates each weight's bytes in the file (PagedFile.locateRange) and sends
 * what streamWeight needs to know about it (name, dtype, shape, quantization, consumers, byte
 * range); a worker reads the range itself. So a worker loads only this module's imports (the
 * analysis, not the format readers and writers), which makes it start several times faster.
 */
import type { Model, Quantization, WeightConsumer, WeightTensor } from '../model/types.js';
import type { DType } from '../model/dtype.js';
import type { PagedFile } from '../io/paged.js';
import { streamWeight, type RangeTarget, type StreamedWeight } from './weight.js';

/** workerData of a worker thread. */
export interface WorkerTask {
  file: string;
  /** Int32Array(1) over a SharedArrayBuffer: the next position in WorkerJobs.order to take. */
  next: SharedArrayBuffer;
  gzipLevel: 6 | 9;
  gzipWeights: number | null;
  zeroPatterns: boolean;
  pruneCost: boolean;
  /** The calling thread's compiled kernel module (zero-bits-wasm.ts): no compile, and its tiered-up code, in the worker. */
  kernelModule?: WebAssembly.Module;
}

/** One weight as a worker sees it: its description and where its stored (dense) bytes are. */
export interface WeightSpec {
  name: string;
  dtype: DType;
  shape: number[];
  quantization?: Quantization;
  consumers: WeightConsumer[];
  offset: number;
  length: number;
}

/** The message that gives the workers their work, once the calling thread has opened the model. */
export interface WorkerJobs {
  format: string;
  fileSize: number;
  /** Indices into `weights` in the order they are taken (largest first). */
  order: number[];
  /** Per model weight: its spec, or null for weights the calling thread analyses itself. */
  weights: (WeightSpec | null)[];
}

/** Message from a worker: one weight done, or the worker's failure. */
export type WorkerMessage =
  | { kind: 'weight'; index: number; result: StreamedWeight; bytes: number }
  | { kind: 'done' }
  | { kind: 'error'; message: string; code?: string; details?: { format?: string; location?: string; expected?: string; found?: string; hint?: string } };

/** Stored into the queue counter to stop every thread after its current weight. */
export const QUEUE_STOP = 0x3fffffff;

/** Weight indices, largest stored bytes first (ties by index): the order threads take them in. */
export function queueOrder(model: Model): number[] {
  return model.weights.map((w, i) => ({ i, bytes: w.storedByteLength ?? w.bytes.length }))
    .sort((a, b) => b.bytes - a.bytes || a.i - b.i).map((x) => x.i);
}

/** Analyses `index` as every thread does (streamWeight with the task's options). */
export function runWeight(model: Model, index: number, task: Omit<WorkerTask, 'file' | 'next'>, paged: RangeTarget | undefined): StreamedWeight {
  const deep = task.gzipWeights === null || index < task.gzipWeights;
  return streamWeight(model, index, {
    gzipLevel: task.gzipLevel, deep, zeroPattern: task.zeroPatterns, pruneCost: task.pruneCost, ...(paged ? { paged } : {}),
  });
}

/** Takes weights from the shared queue (positions in `order`) until it is empty; `done` gets each result. */
export function drainQueue(model: Model, task: Omit<WorkerTask, 'file'>, order: readonly number[], paged: RangeTarget | undefined,
  done: (index: number, result: StreamedWeight, bytes: number) => void): void {
  const next = new Int32Array(task.next);
  for (;;) {
    const k = Atomics.add(next, 0, 1);
    if (k >= order.length) return;
    const index = order[k]!;
    const weight = model.weights[index]!;
    done(index, runWeight(model, index, task, paged), weight.storedByteLength ?? weight.bytes.length);
  }
}

/**
 * Where each weight stored dense lies in the file, found by loading it with range reads recorded
 * (not performed); null for weights stored sparse or not read by one range.
 */
export function locateWeights(model: Model, paged: PagedFile): (WeightSpec | null)[] {
  return model.weights.map((w) => {
    if (w.sparsity !== undefined || !w.release) return null;
    let range: { offset: number; length: number } | null = null;
    try {
      range = paged.locateRange(() => w.denseBytes());
    } catch {
      return null; // the calling thread meets the same error and reports it
    } finally {
      w.release();
    }
    if (!range || range.length !== (w.storedByteLength ?? -1)) return null;
    return {
      name: w.name, dtype: w.dtype, shape: [...w.shape], consumers: w.consumers, offset: range.offset, length: range.length,
      ...(w.quantization ? { quantization: w.quantization } : {}),
    };
  });
}

/** A model of the located weights for a worker: each weight reads its range through `reader` when used. */
export function modelOfSpecs(jobs: WorkerJobs, reader: PagedFile): Model {
  const weights = jobs.weights.map((spec): WeightTensor | null => {
    if (!spec) return null;
    let bytes: Uint8Array | null = null;
    const load = () => (bytes ??= reader.readRange(spec.offset, spec.length));
    return {
      name: spec.name, dtype: spec.dtype, shape: spec.shape, consumers: spec.consumers, storedByteLength: spec.length,
      ...(spec.quantization ? { quantization: spec.quantization } : {}),
      get bytes() { return load(); },
      denseBytes: load,
      release() { bytes = null; },
    };
  });
  return { format: jobs.format, version: '', operatorCounts: new Map(), weights: weights as WeightTensor[], document: null };
}
