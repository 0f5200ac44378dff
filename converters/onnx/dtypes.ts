/**
 * ONNX element types (TensorProto.DataType) mapped to prunepack's DType, and which typed
 * field of TensorProto holds each type when raw_data is not used.
 */
import { TensorProto_DataType as DataType, TensorProtoField } from '../../schemas/generated/onnx/onnx-descriptor.js';
import { PrunepackError } from '../../src/errors.js';
import type { DType } from '../../src/model/dtype.js';

const BY_CODE = new Map<number, DType>([
  [DataType.FLOAT, 'float32'], [DataType.UINT8, 'uint8'], [DataType.INT8, 'int8'], [DataType.UINT16, 'uint16'],
  [DataType.INT16, 'int16'], [DataType.INT32, 'int32'], [DataType.INT64, 'int64'], [DataType.STRING, 'string'],
  [DataType.BOOL, 'bool'], [DataType.FLOAT16, 'float16'], [DataType.DOUBLE, 'float64'], [DataType.UINT32, 'uint32'],
  [DataType.UINT64, 'uint64'], [DataType.COMPLEX64, 'complex64'], [DataType.COMPLEX128, 'complex128'],
  [DataType.BFLOAT16, 'bfloat16'], [DataType.FLOAT8E4M3FN, 'float8e4m3fn'], [DataType.FLOAT8E4M3FNUZ, 'float8e4m3fnuz'],
  [DataType.FLOAT8E5M2, 'float8e5m2'], [DataType.FLOAT8E5M2FNUZ, 'float8e5m2fnuz'], [DataType.UINT4, 'uint4'],
  [DataType.INT4, 'int4'], [DataType.FLOAT4E2M1, 'float4e2m1'], [DataType.FLOAT8E8M0, 'float8e8m0'],
  [DataType.UINT2, 'uint2'], [DataType.INT2, 'int2'],
]);

const BY_DTYPE = new Map<DType, number>([...BY_CODE].map(([code, dtype]) => [dtype, code]));

export function onnxDType(code: number, where: string): DType {
  const dtype = BY_CODE.get(code);
  if (!dtype) {
    throw new PrunepackError(code === 0 ? 'CORRUPT' : 'UNSUPPORTED', code === 0 ? 'tensor has no data_type (UNDEFINED)' : 'unknown tensor data_type', {
      format: 'onnx', location: where, expected: 'a TensorProto.DataType of IR version 13 (1..26)', found: String(code),
    });
  }
  return dtype;
}

export function onnxDataType(dtype: DType): number {
  const code = BY_DTYPE.get(dtype);
  if (code === undefined) throw new PrunepackError('UNSUPPORTED', `ONNX has no element type for ${dtype}`, { format: 'onnx' });
  return code;
}

/** The typed TensorProto field for a dtype (when raw_data is not used). */
export function typedFieldOf(dtype: DType): number {
  switch (dtype) {
    case 'float32': case 'complex64': return TensorProtoField.float_data;
    case 'float64': case 'complex128': return TensorProtoField.double_data;
    case 'int64': return TensorProtoField.int64_data;
    case 'uint32': case 'uint64': return TensorProtoField.uint64_data;
    case 'string': return TensorProtoField.string_data;
    default: return TensorProtoField.int32_data;
  }
}

/**
 * Number of typed-field entries that hold `count` elements: two per complex element, one
 * byte (two 4-bit or four 2-bit elements) per int32_data entry for sub-byte types.
 */
export function typedEntryCount(dtype: DType, count: number): number {
  switch (dtype) {
    case 'complex64': case 'complex128': return 2 * count;
    case 'int4': case 'uint4': case 'float4e2m1': return Math.ceil(count / 2);
    case 'int2': case 'uint2': return Math.ceil(count / 4);
    default: return count;
  }
}

/** Bytes one int32_data entry expands to in little-endian raw form. */
export function int32EntryWidth(dtype: DType): number {
  switch (dtype) {
    case 'int32': return 4;
    case 'int16': case 'uint16': case 'float16': case 'bfloat16': return 2;
    default: return 1;
  }
}

export const DATA_FIELDS: ReadonlySet<number> = new Set([
  TensorProtoField.float_data, TensorProtoField.int32_data, TensorProtoField.string_data, TensorProtoField.int64_data,
  TensorProtoField.raw_data, TensorProtoField.double_data, TensorProtoField.uint64_data,
  TensorProtoField.external_data, TensorProtoField.data_location,
]);

export const TYPED_FIELD_NAMES: Readonly<Record<number, string>> = {
  [TensorProtoField.float_data]: 'float_data', [TensorProtoField.int32_data]: 'int32_data',
  [TensorProtoField.string_data]: 'string_data', [TensorProtoField.int64_data]: 'int64_data',
  [TensorProtoField.double_data]: 'double_data', [TensorProtoField.uint64_data]: 'uint64_data',
};
