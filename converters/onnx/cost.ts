/**
 * Exact byte costs of prunepack's ONNX encodings, computed with the real encoders (no
 * formula to drift from the writer): a dense Constant `value` attribute against the sparse
 * forms, and the break-even share of zeros per element type.
 */
import { AttributeProto_AttributeType as AttrType, NodeProtoField as N } from '../../schemas/generated/onnx/onnx-descriptor.js';
import { byteLengthOf, type DType } from '../../src/model/dtype.js';
import { onnxDataType } from './dtypes.js';
import { encodeTensor } from './tensor.js';
import { encodeSparseTensor, freshValuesTensor, lengthDelimitedField, sparseNodes, tensorAttribute, type SparseMode } from './write.js';
import { ProtoWriter } from './protobuf.js';

/** Bytes of a dense weight stored as a Constant `value` attribute (raw_data). */
export function onnxDenseBytes(dtype: DType, dims: readonly number[]): number {
  const count = dims.reduce((a, b) => a * b, 1);
  const tensor = encodeTensor({ dims, dataType: onnxDataType(dtype), data: { kind: 'dense', dtype, count, bytes: new Uint8Array(byteLengthOf(dtype, count)) } });
  return lengthDelimitedField(N.attribute, tensorAttribute('value', tensor)).length;
}

/**
 * Bytes of the sparse form holding `positions` (linear, ascending): the Constant `sparse_value`
 * attribute for mode 'constant', the whole node chain minus a Constant node's own overhead
 * for mode 'scatter' (so both compare with onnxDenseBytes).
 */
export function onnxSparseBytes(dtype: DType, dims: readonly number[], positions: Float64Array, mode: SparseMode = 'constant'): number {
  const values = new Uint8Array(byteLengthOf(dtype, positions.length));
  const dataType = onnxDataType(dtype);
  if (mode === 'constant') {
    const sparse = encodeSparseTensor(freshValuesTensor('w', dataType, dtype, values, positions.length), dims, positions);
    const attribute = new ProtoWriter().stringField(1, 'sparse_value').uintField(20, AttrType.SPARSE_TENSOR).messageField(22, sparse).finish();
    return lengthDelimitedField(N.attribute, attribute).length;
  }
  let n = 0;
  const valuesTensor = freshValuesTensor('', dataType, dtype, values, positions.length);
  const nodes = sparseNodes('scatter', 1, 'w', dtype, dataType, dims, { positions, values }, valuesTensor, { fresh: (b) => `${b}${n++}` });
  const constantNodeOverhead = lengthDelimitedField(1, new ProtoWriter().stringField(N.output, 'w').stringField(N.op_type, 'Constant').finish()).length;
  return nodes.length - constantNodeOverhead;
}

/** Evenly spread positions of `nnz` non-zeros among `count` elements. */
function spread(count: number, nnz: number): Float64Array {
  const out = new Float64Array(nnz);
  for (let i = 0; i < nnz; i++) out[i] = Math.floor((i * count) / nnz);
  return out;
}

/**
 * The smallest share of zeros (0..1) at which the sparse form of a `count`-element weight is
 * smaller than its dense form, with non-zeros spread evenly (index varint sizes as for random
 * pruning). 1 when sparse never wins.
 */
export function onnxBreakEvenSparsity(dtype: DType, count: number, mode: SparseMode = 'constant'): number {
  const dims = [count];
  const dense = onnxDenseBytes(dtype, dims);
  const smaller = (nnz: number) => onnxSparseBytes(dtype, dims, spread(count, nnz), mode) < dense;
  let lo = 1;
  let hi = count;
  if (!smaller(1)) return 1;
  if (smaller(count)) return 0;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (smaller(mid)) lo = mid; else hi = mid;
  }
  return 1 - lo / count;
}

