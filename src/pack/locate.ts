/**
 * Where each weight of a model sits in its file(s): byte ranges for buildPack. No file system
 * access. Weights are found by identity of the bytes they view (TFLite buffers, ONNX raw_data,
 * TF.js shards read through the caller's buffers) or, for ONNX external data, by the tensor's
 * external reference. Anything not found stays in the skeleton (costs size, never correctness).
 */
import type { Model, WeightTensor } from '../model/types.js';
import type { PackInputFile, PackRange } from './write.js';

export interface ExternalRangeRef {
  /** Relative file name (as in the pack) and byte range. */
  file: string;
  offset: number;
  length: number;
}

export interface LocateOptions {
  /** ONNX external data: the tensor's file and range, when the weight is not a view into `files`. */
  external?: (weight: WeightTensor) => ExternalRangeRef | undefined;
}

/** Byte ranges of `model`'s weights inside `files`. */
export function locateWeights(model: Model, files: readonly PackInputFile[], options: LocateOptions = {}): PackRange[] {
  const out: PackRange[] = [];
  const byName = new Map(files.map((f, i) => [f.name, i]));
  for (const w of model.weights) {
    const stored = w.sparsity !== undefined && w.sparsity !== null;
    // Already-sparse weights: the stored values as a flat vector (their zeros are real zeros).
    const shape = stored ? null : w.shape;
    let located: { file: number; offset: number; length: number } | undefined;
    const b = w.bytes;
    if (b && b.byteLength > 0) {
      for (let i = 0; i < files.length; i++) {
        const f = files[i]!.bytes;
        if (f.buffer !== b.buffer) continue;
        const offset = b.byteOffset - f.byteOffset;
        if (offset >= 0 && offset + b.byteLength <= f.byteLength) { located = { file: i, offset, length: b.byteLength }; break; }
      }
    }
    if (!located && !stored && options.external) {
      const ref = options.external(w);
      const file = ref ? byName.get(ref.file) : undefined;
      if (ref && file !== undefined) located = { file, offset: ref.offset, length: ref.length };
    }
    if (!located) continue;
    const width = elementWidth(w.dtype);
    if (width === 0 || located.length % width !== 0) continue;
    const quantization = !stored && w.quantization ? { zeroPoint: w.quantization.zeroPoint, ...(w.quantization.axis === undefined ? {} : { axis: w.quantization.axis }) } : undefined;
    out.push({
      ...located, name: w.name, dtype: w.dtype,
      shape: shape ?? [located.length / width],
      ...(quantization ? { quantization } : {}),
    });
  }
  return out;
}

const WIDTHS: Record<string, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4,
  int64: 8, uint64: 8, bool: 1, complex64: 8, float8e4m3fn: 1, float8e4m3fnuz: 1, float8e5m2: 1, float8e5m2fnuz: 1, float8e8m0: 1,
};

export function elementWidth(dtype: string): number {
  return WIDTHS[dtype] ?? 0;
}
