import { typedView, type DType } from './dtype.js';
import type { Quantization, WeightTensor } from './types.js';

/**
 * Number of zero elements in dense bytes. Zero means numerically zero: -0.0 counts, NaN
 * never does; quantized values are zero when they equal the zero point (of their channel,
 * when quantization is per channel). Returns undefined for types without a numeric view.
 */
export function countZeros(dtype: DType, dense: Uint8Array, shape: readonly number[], quantization?: Quantization): number | undefined {
  const values = typedView(dtype, dense);
  if (!values) return undefined;
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const v = values as Uint16Array;
    let zeros = 0;
    for (let i = 0; i < v.length; i++) if ((v[i]! & 0x7fff) === 0) zeros++;
    return zeros;
  }
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    let zeros = 0;
    for (let i = 0; i < values.length; i++) if (values[i] === 0n) zeros++;
    return zeros;
  }
  const v = values as Exclude<typeof values, BigInt64Array | BigUint64Array>;
  const zp = quantization?.zeroPoint;
  const isInteger = !(v instanceof Float32Array || v instanceof Float64Array);
  if (!isInteger || !zp || zp.length === 0) {
    const zero = isInteger && zp && zp.length ? Number(zp[0]) : 0;
    let zeros = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === zero) zeros++;
    return zeros;
  }
  if (zp.length === 1 || quantization.axis === undefined) {
    const zero = Number(zp[0]);
    let zeros = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === zero) zeros++;
    return zeros;
  }
  // Per channel: element i belongs to channel (i / inner) % channels.
  const axis = quantization.axis;
  let inner = 1;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  const channels = shape[axis] ?? 1;
  const points = Float64Array.from(zp as ArrayLike<number | bigint>, Number);
  let zeros = 0;
  for (let i = 0; i < v.length; i++) {
    if (v[i] === points[Math.floor(i / inner) % channels]!) zeros++;
  }
  return zeros;
}

export function weightZeros(weight: WeightTensor): number | undefined {
  return countZeros(weight.dtype, weight.denseBytes(), weight.shape, weight.quantization);
}
