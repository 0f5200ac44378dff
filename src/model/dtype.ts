/**
 * Element types shared by every format plugin, with byte widths and typed-array views.
 * float16 and bfloat16 are stored as raw 16-bit patterns (Uint16Array) and converted with
 * the helpers below.
 */
export type DType =
  | 'float32' | 'float16' | 'bfloat16' | 'float64'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'int4' | 'uint4' | 'int2' | 'uint2'
  | 'bool' | 'complex64' | 'complex128' | 'string'
  | 'float8e4m3fn' | 'float8e4m3fnuz' | 'float8e5m2' | 'float8e5m2fnuz' | 'float8e8m0' | 'float4e2m1'
  | 'resource' | 'variant';

export type NumericArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

interface DTypeInfo {
  /** Bits per element; 0 for variable-size types (string, resource, variant). */
  bits: number;
  /** Typed-array constructor for one element (packed sub-byte types use Uint8Array over bytes). */
  view?: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): NumericArray; BYTES_PER_ELEMENT: number };
  float: boolean;
}

const DTYPES: Record<DType, DTypeInfo> = {
  float32: { bits: 32, view: Float32Array, float: true },
  float16: { bits: 16, view: Uint16Array, float: true },
  bfloat16: { bits: 16, view: Uint16Array, float: true },
  float64: { bits: 64, view: Float64Array, float: true },
  int8: { bits: 8, view: Int8Array, float: false },
  uint8: { bits: 8, view: Uint8Array, float: false },
  int16: { bits: 16, view: Int16Array, float: false },
  uint16: { bits: 16, view: Uint16Array, float: false },
  int32: { bits: 32, view: Int32Array, float: false },
  uint32: { bits: 32, view: Uint32Array, float: false },
  int64: { bits: 64, view: BigInt64Array, float: false },
  uint64: { bits: 64, view: BigUint64Array, float: false },
  int4: { bits: 4, float: false },
  uint4: { bits: 4, float: false },
  int2: { bits: 2, float: false },
  uint2: { bits: 2, float: false },
  bool: { bits: 8, view: Uint8Array, float: false },
  complex64: { bits: 64, view: Float32Array, float: true },
  complex128: { bits: 128, view: Float64Array, float: true },
  string: { bits: 0, float: false },
  float8e4m3fn: { bits: 8, view: Uint8Array, float: true },
  float8e4m3fnuz: { bits: 8, view: Uint8Array, float: true },
  float8e5m2: { bits: 8, view: Uint8Array, float: true },
  float8e5m2fnuz: { bits: 8, view: Uint8Array, float: true },
  float8e8m0: { bits: 8, view: Uint8Array, float: true },
  float4e2m1: { bits: 4, float: true },
  resource: { bits: 0, float: false },
  variant: { bits: 0, float: false },
};

export function dtypeBits(dtype: DType): number {
  return DTYPES[dtype].bits;
}

export function isFloatDType(dtype: DType): boolean {
  return DTYPES[dtype].float;
}

/** Bytes needed for `count` elements (sub-byte types packed, rounded up to a whole byte). */
export function byteLengthOf(dtype: DType, count: number): number {
  return Math.ceil((DTYPES[dtype].bits * count) / 8);
}

/** Number of elements of a shape; throws on negative or non-integer dims, or above 2^53. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(', ')}] has more than 2^53 elements`);
  }
  return n;
}

/**
 * A typed view of `bytes` as elements of `dtype`: no copy when the offset is aligned, one copy
 * otherwise. Returns null for types that have no element view (sub-byte, string).
 */
export function typedView(dtype: DType, bytes: Uint8Array): NumericArray | null {
  const info = DTYPES[dtype];
  if (!info.view) return null;
  const width = info.view.BYTES_PER_ELEMENT;
  const length = Math.floor(bytes.byteLength / width);
  if (bytes.byteOffset % width === 0) return new info.view(bytes.buffer, bytes.byteOffset, length);
  const copy = new Uint8Array(length * width);
  copy.set(bytes.subarray(0, length * width));
  return new info.view(copy.buffer, 0, length);
}

// float16 <-> float32 through a lookup-free bit routine (exact for every value, including
// subnormals, infinities and NaN payload high bits).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float16ToFloat32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) {
    // zero or subnormal: mantissa * 2^-24
    const value = mantissa * 5.960464477539063e-8;
    return sign ? -value : value;
  }
  if (exponent === 0x1f) {
    u32[0] = sign | 0x7f800000 | (mantissa << 13);
    return f32[0]!;
  }
  u32[0] = sign | ((exponent + 112) << 23) | (mantissa << 13);
  return f32[0]!;
}

/** float32 -> float16 bits, round to nearest even. */
export function float32ToFloat16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  let e = exponent - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mantissa >>> 13;
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) { m = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | m;
}

export function bfloat16ToFloat32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** float32 -> bfloat16 bits, round to nearest even (NaN stays NaN). */
export function float32ToBfloat16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** True when the 16-bit float pattern is +0 or -0 (same rule for float16 and bfloat16). */
export function isHalfZero(bits: number): boolean {
  return (bits & 0x7fff) === 0;
}
