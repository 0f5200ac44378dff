/**
 * ONNX sparse tensors (COO): parse and check SparseTensorProto, expand to dense bytes, and
 * find / gather the non-zero elements of dense bytes for encoding.
 *
 * "Zero" here means all bits zero, so dense -> sparse -> dense is exact for every type
 * (-0.0 and NaN payloads are stored explicitly).
 */
import { SparseTensorProtoField as S, TensorProto_DataType } from '../../schemas/generated/onnx/onnx-descriptor.js';
import { PrunepackError } from '../../src/errors.js';
import { byteLengthOf, dtypeBits, elementCount, type DType } from '../../src/model/dtype.js';
import { ProtoReader, WIRE_LEN, WIRE_VARINT } from './protobuf.js';
import { parseTensor, splitStrings, tensorDenseBytes, type TensorInfo, type TensorParseOptions } from './tensor.js';
// The limits are TFLite's (one rule for every format); read.ts is where they are defined.
import { maxSparseExpansion, MAX_DENSE_TENSOR_BYTES } from '../tflite/read.js';

/** Dense tensors above this size are not materialised (a tiny sparse file can declare huge dims). */
export const MAX_DENSE_BYTES = MAX_DENSE_TENSOR_BYTES;

export type SparseLayout = 'linear' | 'coordinate' | 'scatter';

/** A sparse weight as prunepack sees it, whatever its ONNX spelling. */
export interface SparseInfo {
  name: string;
  dtype: DType;
  dataType: number;
  dims: number[];
  /** Dense element count. */
  count: number;
  nnz: number;
  layout: SparseLayout;
  values: TensorInfo;
  /** Linear element positions of the stored values, in stored order. */
  linear: Float64Array;
  /** True when `linear` is strictly ascending. */
  ascending: boolean;
}

function corrupt(what: string, where: string, expected?: string, found?: string): PrunepackError {
  return new PrunepackError('CORRUPT', what, { format: 'onnx', location: where, expected, found });
}

/**
 * The dense bytes all sparse tensors of one file may declare together: `maxSparseExpansion` of
 * the bytes the file really stores (the protobuf, plus external data read by its sparse tensors),
 * one tensor at most MAX_DENSE_BYTES. A sparse tensor declares its dense size in its dims, not in
 * stored bytes, so each one is charged when its dims are known, before anything is allocated.
 */
export class SparseExpansionBudget {
  private declared = 0;

  constructor(private stored: number) {}

  get limit(): number {
    return maxSparseExpansion(this.stored);
  }

  /** Charges one sparse tensor (`externalBytes`: its values/indices stored in external data), or throws UNSUPPORTED. */
  charge(dtype: DType, count: number, dims: readonly number[], externalBytes: number, where: string): void {
    const bytes = byteLengthOf(dtype, count);
    const shape = `${dtype}[${dims.join(', ')}]`;
    if (bytes > MAX_DENSE_BYTES) {
      throw new PrunepackError('UNSUPPORTED', 'a sparse tensor declares a dense size over 2 GiB', {
        format: 'onnx', location: where, expected: `at most ${MAX_DENSE_BYTES} dense bytes`, found: `${bytes} bytes for ${shape}`,
        hint: 'The file is damaged, or holds a tensor too large to expand in memory',
      });
    }
    if (!this.tryCharge(dtype, count, externalBytes)) {
      throw new PrunepackError('UNSUPPORTED', 'the sparse tensors declare more dense data than prunepack expands for a file this size', {
        format: 'onnx', location: where,
        expected: `at most ${this.limit} dense bytes in total (64 MiB + 64 x ${this.stored} stored bytes)`,
        found: `${this.declared + bytes} bytes with this tensor (${bytes} bytes for ${shape})`,
        hint: 'The file is damaged or hostile: its sparse tensors would expand far beyond what it stores',
      });
    }
  }

  /** Charges a tensor if it fits in the budget; false (and nothing charged) if not. */
  tryCharge(dtype: DType, count: number, externalBytes: number): boolean {
    const bytes = byteLengthOf(dtype, count);
    if (bytes > MAX_DENSE_BYTES || this.declared + bytes > maxSparseExpansion(this.stored + externalBytes)) return false;
    this.stored += externalBytes;
    this.declared += bytes;
    return true;
  }
}

/** Parses and checks a SparseTensorProto body; its dense size is charged to `budget` before its indices are decoded. */
export function parseSparseTensor(
  bytes: Uint8Array, start: number, end: number, where: string, options: TensorParseOptions, budget: SparseExpansionBudget,
): SparseInfo {
  const r = new ProtoReader(bytes, start, end, where);
  let valuesRange: [number, number] | undefined;
  let indicesRange: [number, number] | undefined;
  const dims: number[] = [];
  while (r.next()) {
    if (r.field === S.values) { r.expectWire(WIRE_LEN, 'values'); valuesRange = r.len('values'); }
    else if (r.field === S.indices) { r.expectWire(WIRE_LEN, 'indices'); indicesRange = r.len('indices'); }
    else if (r.field === S.dims) {
      if (r.wire === WIRE_LEN) {
        const [s, e] = r.len('dims');
        const sub = new ProtoReader(bytes, s, e, where);
        while (sub.pos < e) dims.push(sub.int64('dim'));
      } else { r.expectWire(WIRE_VARINT, 'dims'); dims.push(r.int64('dim')); }
    } else r.skip();
  }
  if (!valuesRange) throw corrupt('sparse tensor has no values', where, 'a values TensorProto', 'none');
  const values = parseTensor(bytes, valuesRange[0], valuesRange[1], `${where}.values`, options);
  if (values.dims.length !== 1) throw corrupt('sparse tensor values must be rank 1 [NNZ]', `${where}.values`, 'dims [NNZ]', `[${values.dims.join(', ')}]`);
  if (values.dtype === 'string') throw new PrunepackError('UNSUPPORTED', 'sparse string tensors are not supported', { format: 'onnx', location: where });
  for (const d of dims) if (d < 0) throw corrupt('sparse tensor has a negative dimension', where, 'dims >= 0', `[${dims.join(', ')}]`);
  let count: number;
  try { count = elementCount(dims); } catch { throw corrupt('sparse tensor shape has more than 2^53 elements', where, 'product of dims <= 2^53', `[${dims.join(', ')}]`); }
  const nnz = values.dims[0]!;
  if (nnz > count) throw corrupt('sparse tensor has more values than elements', where, `<= ${count}`, String(nnz));
  if (!indicesRange) {
    if (nnz !== 0) throw corrupt('sparse tensor has values but no indices', where, `${nnz} indices`, 'none');
    budget.charge(values.dtype, count, dims, values.resolved?.length ?? 0, where);
    return { name: values.name, dtype: values.dtype, dataType: values.dataType, dims, count, nnz, layout: 'linear', values, linear: new Float64Array(0), ascending: true };
  }
  const indices = parseTensor(bytes, indicesRange[0], indicesRange[1], `${where}.indices`, { ...options, resolveExternal: true });
  const rank = dims.length;
  let layout: SparseLayout;
  if (indices.dims.length === 1 && indices.dims[0] === nnz) layout = 'linear';
  else if (indices.dims.length === 2 && indices.dims[0] === nnz && indices.dims[1] === rank) layout = 'coordinate';
  else throw corrupt('sparse tensor indices have the wrong shape', `${where}.indices`, `[${nnz}] or [${nnz}, ${rank}]`, `[${indices.dims.join(', ')}]`);
  budget.charge(values.dtype, count, dims, (values.resolved?.length ?? 0) + (indices.resolved?.length ?? 0), where);
  const raw = integerValues(tensorDenseBytes(bytes, indices), indices.dtype, indices.count, `${where}.indices`);
  const linear = layout === 'linear' ? raw : linearize(raw, dims, `${where}.indices`);
  const ascending = checkIndices(linear, count, where);
  return { name: values.name, dtype: values.dtype, dataType: values.dataType, dims, count, nnz, layout, values, linear, ascending };
}

/** Integer index tensor -> numbers (any integer type; INT64 is what the checker requires). */
export function integerValues(dense: Uint8Array, dtype: DType, count: number, where: string): Float64Array {
  const out = new Float64Array(count);
  const view = new DataView(dense.buffer, dense.byteOffset, dense.byteLength);
  switch (dtype) {
    case 'int64': case 'uint64':
      for (let i = 0; i < count; i++) {
        const low = view.getUint32(8 * i, true);
        const high = view.getUint32(8 * i + 4, true);
        const v = (dtype === 'int64' ? high | 0 : high) * 4294967296 + low;
        if (!Number.isSafeInteger(v)) throw corrupt('sparse index is outside the safe integer range', where, `<= ${Number.MAX_SAFE_INTEGER}`, 'larger');
        out[i] = v;
      }
      return out;
    case 'int32': for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true); return out;
    case 'uint32': for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true); return out;
    case 'int16': for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true); return out;
    case 'uint16': for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true); return out;
    case 'int8': for (let i = 0; i < count; i++) out[i] = view.getInt8(i); return out;
    case 'uint8': for (let i = 0; i < count; i++) out[i] = view.getUint8(i); return out;
    default: throw corrupt('sparse tensor indices must be integers', where, 'INT64', dtype);
  }
}

function linearize(coords: Float64Array, dims: readonly number[], where: string): Float64Array {
  const rank = dims.length;
  const n = rank === 0 ? 0 : coords.length / rank;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (let j = 0; j < rank; j++) {
      const c = coords[i * rank + j]!;
      if (c < 0 || c >= dims[j]!) throw corrupt('sparse coordinate out of range', where, `0 <= index < ${dims[j]} in dimension ${j}`, `${c} (value ${i})`);
      v = v * dims[j]! + c;
    }
    out[i] = v;
  }
  return out;
}

/** Indices must be in range and unique; returns whether they are strictly ascending. */
function checkIndices(linear: Float64Array, count: number, where: string): boolean {
  let ascending = true;
  for (let i = 0; i < linear.length; i++) {
    const v = linear[i]!;
    if (!(v >= 0 && v < count)) throw corrupt('sparse index out of range', where, `0 <= index < ${count}`, `${v} (value ${i})`);
    if (i > 0 && v <= linear[i - 1]!) ascending = false;
  }
  if (!ascending) {
    const sorted = Float64Array.from(linear).sort();
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i] === sorted[i - 1]) throw corrupt('sparse tensor has a duplicate index', where, 'unique indices', String(sorted[i]));
    }
  }
  return ascending;
}

/** Scatters stored values into dense bytes (all other elements zero). */
export function expandSparse(values: Uint8Array, linear: Float64Array, dtype: DType, count: number, where: string): Uint8Array {
  const size = byteLengthOf(dtype, count);
  if (size > MAX_DENSE_BYTES) {
    throw new PrunepackError('UNSUPPORTED', 'sparse tensor is too large to expand in memory', { format: 'onnx', location: where, expected: `<= ${MAX_DENSE_BYTES} dense bytes`, found: `${size} bytes` });
  }
  const out = new Uint8Array(size);
  const bits = dtypeBits(dtype);
  if (bits >= 8) {
    const w = bits / 8;
    if (values.length !== linear.length * w) throw corrupt('sparse values have the wrong size', where, `${linear.length * w} bytes`, `${values.length} bytes`);
    for (let i = 0; i < linear.length; i++) {
      const dst = linear[i]! * w;
      const src = i * w;
      for (let b = 0; b < w; b++) out[dst + b] = values[src + b]!;
    }
    return out;
  }
  for (let i = 0; i < linear.length; i++) setPacked(out, linear[i]!, bits, getPacked(values, i, bits));
  return out;
}

function getPacked(bytes: Uint8Array, index: number, bits: number): number {
  const perByte = 8 / bits;
  const shift = (index % perByte) * bits;
  return (bytes[Math.floor(index / perByte)]! >> shift) & ((1 << bits) - 1);
}

function setPacked(bytes: Uint8Array, index: number, bits: number, value: number): void {
  const perByte = 8 / bits;
  const shift = (index % perByte) * bits;
  const at = Math.floor(index / perByte);
  bytes[at] = (bytes[at]! & ~(((1 << bits) - 1) << shift)) | (value << shift);
}

/** Linear positions of the elements whose bits are not all zero (strings: non-empty). */
export function nonZeroPositions(dense: Uint8Array, dtype: DType, count: number): Float64Array {
  if (dtype === 'string') {
    const positions: number[] = [];
    splitStrings(dense, count, 'string tensor').forEach((s, i) => { if (s.length) positions.push(i); });
    return Float64Array.from(positions);
  }
  // Two passes (count, then fill) so a large tensor needs no growing JavaScript array.
  if (dtypeBits(dtype) === 32 && dense.byteOffset % 4 === 0) {
    const words = new Uint32Array(dense.buffer, dense.byteOffset, count);
    let nnz = 0;
    for (let i = 0; i < count; i++) if (words[i] !== 0) nnz++;
    const positions = new Float64Array(nnz);
    for (let i = 0, k = 0; k < nnz; i++) if (words[i] !== 0) positions[k++] = i;
    return positions;
  }
  const isNonZero = nonZeroTest(dense, dtype, count);
  let nnz = 0;
  for (let i = 0; i < count; i++) if (isNonZero(i)) nnz++;
  const positions = new Float64Array(nnz);
  for (let i = 0, k = 0; k < nnz; i++) if (isNonZero(i)) positions[k++] = i;
  return positions;
}

function nonZeroTest(dense: Uint8Array, dtype: DType, count: number): (i: number) => boolean {
  const bits = dtypeBits(dtype);
  if (bits < 8) return (i) => getPacked(dense, i, bits) !== 0;
  const w = bits / 8;
  if (w === 1) return (i) => dense[i] !== 0;
  return (i) => {
    for (let b = 0; b < w; b++) if (dense[i * w + b] !== 0) return true;
    return false;
  };
}

/** The values at `positions`, packed like raw_data. */
export function gatherValues(dense: Uint8Array, dtype: DType, positions: Float64Array): Uint8Array {
  const bits = dtypeBits(dtype);
  const out = new Uint8Array(byteLengthOf(dtype, positions.length));
  if (bits >= 8) {
    const w = bits / 8;
    for (let i = 0; i < positions.length; i++) {
      const src = positions[i]! * w;
      for (let b = 0; b < w; b++) out[i * w + b] = dense[src + b]!;
    }
  } else {
    for (let i = 0; i < positions.length; i++) setPacked(out, i, bits, getPacked(dense, positions[i]!, bits));
  }
  return out;
}

export const INT64 = TensorProto_DataType.INT64;
