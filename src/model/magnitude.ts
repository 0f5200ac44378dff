/**
 * |value| of a weight's elements in real units, as `prune` ranks them and `audit` prices pruning:
 * floats decoded, int8/uint8 dequantized (|stored - zero point| x |scale|, per channel when there
 * is one zero point per channel). Lookup tables are built once (16-bit floats) or per call (one
 * 256-entry table per channel), so filling a row costs one load per element.
 */
import { bfloat16ToFloat32, float16ToFloat32, typedView } from './dtype.js';
import type { WeightTensor } from './types.js';

/** Fills `out` with the magnitudes of elements [start, start + out.length). */
export type MagnitudeFill = (start: number, out: Float64Array) => void;

/** The quantization of an int8/uint8 weight, read once: zero point and scale per element. */
export interface QuantizedLayout {
  zeroPoints: number[];
  scales: number[];
  /** One zero point per channel along `axis` (otherwise element 0's applies to all). */
  perChannel: boolean;
  /** Channels along the quantization axis (1 without one). */
  channels: number;
  /** Channel of flat element i (0 when not per channel). */
  channelOf(i: number): number;
}

export function quantizedLayout(weight: Pick<WeightTensor, 'shape' | 'quantization'>): QuantizedLayout {
  const q = weight.quantization;
  const zeroPoints = q?.zeroPoint ? Array.from(q.zeroPoint as ArrayLike<number | bigint>, Number) : [0];
  const scales = q?.scale ? Array.from(q.scale) : [1];
  const axis = q?.axis;
  let inner = 1;
  if (axis !== undefined) for (let d = axis + 1; d < weight.shape.length; d++) inner *= weight.shape[d]!;
  const channels = axis !== undefined ? weight.shape[axis]! : 1;
  const perChannel = axis !== undefined && zeroPoints.length > 1;
  return { zeroPoints, scales, perChannel, channels, channelOf: perChannel ? (i) => Math.floor(i / inner) % channels : () => 0 };
}

let halfTable: Float64Array | null = null;
let bhalfTable: Float64Array | null = null;

/** |value| of every 16-bit pattern, built once per process. */
function magnitudeTable16(decode: (h: number) => number): Float64Array {
  const t = new Float64Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = Math.abs(decode(h));
  return t;
}

/** The magnitude reader of a float32/float16/bfloat16/int8/uint8 weight; null for other dtypes. */
export function magnitudeFill(weight: Pick<WeightTensor, 'dtype' | 'shape' | 'quantization'>, bytes: Uint8Array): MagnitudeFill | null {
  const v = typedView(weight.dtype, bytes);
  if (!v) return null;
  switch (weight.dtype) {
    case 'float32': {
      const a = v as Float32Array;
      return (start, out) => { for (let k = 0; k < out.length; k++) out[k] = Math.abs(a[start + k]!); };
    }
    case 'float16': case 'bfloat16': {
      const table = weight.dtype === 'float16' ? (halfTable ??= magnitudeTable16(float16ToFloat32)) : (bhalfTable ??= magnitudeTable16(bfloat16ToFloat32));
      const a = v as Uint16Array;
      return (start, out) => { for (let k = 0; k < out.length; k++) out[k] = table[a[start + k]!]!; };
    }
    case 'int8': case 'uint8': {
      const q = quantizedLayout(weight);
      // One 256-entry table per channel: |stored - zero point| x |scale|.
      const signed = weight.dtype === 'int8';
      const tables = Array.from({ length: q.perChannel ? q.channels : 1 }, (_, c) => {
        const t = new Float64Array(256);
        const z = q.zeroPoints[c] ?? q.zeroPoints[0]!;
        const sc = Math.abs(q.scales[c] ?? q.scales[0] ?? 1);
        for (let b = 0; b < 256; b++) t[b] = Math.abs((signed ? (b << 24) >> 24 : b) - z) * sc;
        return t;
      });
      const a = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return (start, out) => {
        if (!q.perChannel) {
          const t = tables[0]!;
          for (let k = 0; k < out.length; k++) out[k] = t[a[start + k]!]!;
          return;
        }
        for (let k = 0; k < out.length; k++) out[k] = tables[q.channelOf(start + k)]![a[start + k]!]!;
      };
    }
    default: return null;
  }
}
