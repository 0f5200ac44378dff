import type { DType } from './dtype.js';

/** Affine quantization: real = scale * (q - zeroPoint); per tensor or per channel along `axis`. */
export interface Quantization {
  scale: Float32Array | number[];
  zeroPoint: number[] | BigInt64Array;
  /** Channel axis for per-channel quantization; undefined when per tensor. */
  axis?: number;
  min?: number[];
  max?: number[];
}

/** One operator input (or attribute) that reads a weight. */
export interface WeightConsumer {
  /** Operator kind in the format's own vocabulary: FULLY_CONNECTED, CONV_2D, MatMul, Conv... */
  op: string;
  /** Index of the operator within its graph, and the graph's index. */
  opIndex: number;
  subgraph: number;
  /** Which input of the operator the weight feeds (0-based). */
  operand: number;
  /** Representation-only operators the weight passes through first (DENSIFY, DEQUANTIZE). */
  via?: string[];
}

/**
 * A constant weight, format-neutral. `bytes` is a view into the input bytes (no copy);
 * for tensors that are already stored sparse, `bytes` holds the stored values and
 * `sparsity` says how to expand them (`denseBytes()` does it on demand).
 */
export interface WeightTensor {
  /** Stable identifier within the model (format plugins use the tensor name, made unique). */
  name: string;
  dtype: DType;
  shape: number[];
  /** Stored bytes exactly as in the file. */
  bytes: Uint8Array;
  /** `bytes.length`, known without loading the bytes (paged models); absent: use bytes.length. */
  readonly storedByteLength?: number;
  quantization?: Quantization;
  consumers: WeightConsumer[];
  /** Format-specific sparse layout when the weight is stored sparse in the input. */
  sparsity?: unknown;
  /** Dense bytes (decodes stored sparsity when present; otherwise `bytes`). */
  denseBytes(): Uint8Array;
  /**
   * Drops what `bytes` and `denseBytes()` loaded or decoded (they are rebuilt on the next use),
   * so a caller walking a big model one weight at a time holds one weight at a time.
   */
  release?(): void;
}

/** What every plugin returns from `read`. */
export interface Model {
  format: string;
  /** Format version (TFLite schema version, ONNX IR version, tfjs format string). */
  version: string;
  /** Operator kind -> count over all graphs. */
  operatorCounts: Map<string, number>;
  weights: WeightTensor[];
  /** The parsed document, owned by the plugin (used by its writers). */
  document: unknown;
  /**
   * Files other than the model file that the plugin read to build this model (ONNX external
   * data, TF.js weight shards), as resolved paths. Commands protect them from being replaced by
   * an output (protectInputFile).
   */
  companionFiles?: string[];
}
