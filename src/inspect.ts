import { dtypeBits, elementCount } from './model/dtype.js';
import type { Model, WeightConsumer } from './model/types.js';
import { countZeros } from './model/zeros.js';

export interface InspectWeight {
  name: string;
  /** Consumers as `OP:operand`, with pass-through operators first (`DENSIFY>CONV_2D:1`). */
  consumers: string[];
  shape: number[];
  dtype: string;
  /** Bytes as stored in the file. */
  bytes: number;
  /** Bytes of the dense tensor. */
  denseBytes: number;
  zeros: number | null;
  zeroShare: number | null;
  storedSparse: boolean;
}

export interface InspectReport {
  schema: 'prunepack.inspect/1';
  format: string;
  version: string;
  operators: Array<{ op: string; count: number }>;
  weights: InspectWeight[];
  totals: { weights: number; storedBytes: number; denseBytes: number; zeros: number; elements: number };
}

export function describeConsumer(c: WeightConsumer): string {
  return `${c.via?.length ? `${c.via.join('>')}>` : ''}${c.op}:${c.operand}`;
}

/** Summary of a model: operators and one row per weight. */
export function inspectModel(model: Model): InspectReport {
  const weights: InspectWeight[] = [];
  let zerosTotal = 0;
  let elementsTotal = 0;
  for (const w of model.weights) {
    const numeric = dtypeBits(w.dtype) > 0;
    const dense = numeric ? w.denseBytes() : w.bytes;
    const zeros = numeric ? countZeros(w.dtype, dense, w.shape, w.quantization) ?? null : null;
    const elements = numeric ? elementCount(w.shape) : 0;
    if (zeros !== null) { zerosTotal += zeros; elementsTotal += elements; }
    weights.push({
      name: w.name,
      consumers: w.consumers.map(describeConsumer),
      shape: w.shape,
      dtype: w.dtype,
      bytes: w.bytes.length,
      denseBytes: dense.length,
      zeros,
      zeroShare: zeros !== null && elements > 0 ? zeros / elements : null,
      storedSparse: w.sparsity !== undefined,
    });
  }
  return {
    schema: 'prunepack.inspect/1',
    format: model.format,
    version: model.version,
    operators: [...model.operatorCounts].map(([op, count]) => ({ op, count })).sort((a, b) => b.count - a.count || a.op.localeCompare(b.op)),
    weights,
    totals: {
      weights: weights.length,
      storedBytes: weights.reduce((s, w) => s + w.bytes, 0),
      denseBytes: weights.reduce((s, w) => s + w.denseBytes, 0),
      zeros: zerosTotal,
      elements: elementsTotal,
    },
  };
}
