/**
 * Builds ONNX models in code, for tests, samples and tools: a small declarative spec encoded
 * with prunepack's own protobuf writer. Tensor data is given as dense little-endian bytes and
 * written in the storage asked for (raw_data, the typed field with packed or unpacked entries,
 * or an external data reference), so every reader path can be exercised.
 */
import {
  AttributeProtoField as A, AttributeProto_AttributeType as AttrType, FunctionProtoField as Fn, GraphProtoField as G,
  ModelProtoField as M, NodeProtoField as N, OperatorSetIdProtoField as Op, SparseTensorProtoField as S,
  StringStringEntryProtoField as KV, TensorProtoField as T, TensorProto_DataLocation, TensorProto_DataType,
  TensorShapeProtoField, TensorShapeProto_DimensionField, TrainingInfoProtoField, TypeProtoField, TypeProto_TensorField, ValueInfoProtoField as V,
} from '../../schemas/generated/onnx/onnx-descriptor.js';
import { byteLengthOf, elementCount, type DType } from '../../src/model/dtype.js';
import { int32EntryWidth, onnxDataType, typedEntryCount, typedFieldOf } from './dtypes.js';
import { ProtoWriter, WIRE_I32, WIRE_I64, concatChunks, encodeVarints, type Chunks } from './protobuf.js';
import { splitStrings } from './tensor.js';

export type TensorStorageSpec =
  | 'raw'
  | 'typed'
  | 'typed-unpacked'
  | { external: { location: string; offset?: number | string; length?: number | string; extra?: Array<[string, string]> } };

export interface TensorSpec {
  name?: string;
  dtype: DType;
  dims: number[];
  /** Dense little-endian bytes (strings: uint32-LE length + bytes per element). */
  data: Uint8Array;
  storage?: TensorStorageSpec;
  docString?: string;
  metadata?: Record<string, string>;
}

export interface SparseSpec {
  /** values.name: the tensor's name in sparse_initializer. */
  name?: string;
  dtype: DType;
  dims: number[];
  /** Stored values, packed like raw_data. */
  values: Uint8Array;
  /** Linear positions of the values. */
  indices: number[];
  layout?: 'linear' | 'coordinate';
  indexType?: 'int64' | 'int32';
  valuesStorage?: TensorStorageSpec;
}

export type AttributeSpec =
  | { name: string; tensor: TensorSpec }
  | { name: string; sparse: SparseSpec }
  | { name: string; int: number }
  | { name: string; ints: number[] }
  | { name: string; float: number }
  | { name: string; string: string }
  | { name: string; graph: GraphSpec }
  | { name: string; graphs: GraphSpec[] };

export interface NodeSpec {
  opType: string;
  inputs?: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attributes?: AttributeSpec[];
  docString?: string;
}

export interface ValueSpec {
  name: string;
  dtype: DType;
  /** Omit for an unknown shape; strings are symbolic dimensions. */
  dims?: Array<number | string>;
}

export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  initializers?: TensorSpec[];
  sparseInitializers?: SparseSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  valueInfo?: ValueSpec[];
  docString?: string;
}

export interface FunctionSpec {
  name: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  nodes: NodeSpec[];
  opsets: Array<{ domain: string; version: number }>;
}

export interface ModelSpec {
  irVersion: number;
  opsets: Array<{ domain: string; version: number }>;
  graph: GraphSpec;
  functions?: FunctionSpec[];
  producerName?: string;
  docString?: string;
  metadata?: Record<string, string>;
  trainingInfo?: Array<{ initialization?: GraphSpec; algorithm: GraphSpec; updateBinding?: Array<[string, string]> }>;
  /** Raw bytes appended to the ModelProto (unknown fields, to test that they survive). */
  unknownFields?: Uint8Array;
}

function entry(key: string, value: string): ProtoWriter {
  return new ProtoWriter().stringField(KV.key, key).stringField(KV.value, value);
}

/** Writes dense bytes into the typed field of `dtype`, per the onnx.proto rules. */
function writeTyped(w: ProtoWriter, dtype: DType, count: number, dense: Uint8Array, packed: boolean): void {
  const field = typedFieldOf(dtype);
  if (dtype === 'string') {
    for (const s of splitStrings(dense, count, 'builder')) w.bytesField(T.string_data, s);
    return;
  }
  const entries = typedEntryCount(dtype, count);
  const view = new DataView(dense.buffer, dense.byteOffset, dense.byteLength);
  if (field === T.float_data || field === T.double_data) {
    const width = field === T.float_data ? 4 : 8;
    if (packed) { w.bytesField(field, dense); return; }
    for (let i = 0; i < entries; i++) { w.key(field, width === 4 ? WIRE_I32 : WIRE_I64); w.raw(dense.subarray(i * width, (i + 1) * width)); }
    return;
  }
  // Varint fields: collect (possibly negative) values as bigint, then encode.
  const values: bigint[] = [];
  for (let i = 0; i < entries; i++) {
    if (field === T.int64_data) values.push(view.getBigInt64(8 * i, true));
    else if (field === T.uint64_data) values.push(dtype === 'uint32' ? BigInt(view.getUint32(4 * i, true)) : view.getBigUint64(8 * i, true));
    else {
      const width = int32EntryWidth(dtype);
      const signed = dtype === 'int8' || dtype === 'int16' || dtype === 'int32';
      const v = width === 4 ? view.getInt32(4 * i, true) : width === 2 ? (signed ? view.getInt16(2 * i, true) : view.getUint16(2 * i, true)) : (signed ? view.getInt8(i) : view.getUint8(i));
      values.push(BigInt(v));
    }
  }
  const varint = (v: bigint) => {
    let u = BigInt.asUintN(64, v);
    const out: number[] = [];
    while (u >= 0x80n) { out.push(Number(u & 0x7fn) | 0x80); u >>= 7n; }
    out.push(Number(u));
    return Uint8Array.from(out);
  };
  if (packed) {
    const parts = values.map(varint);
    const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let p = 0;
    for (const part of parts) { body.set(part, p); p += part.length; }
    w.bytesField(field, body);
  } else {
    for (const v of values) { w.key(field, 0); w.raw(varint(v)); }
  }
}

export function encodeTensorSpec(spec: TensorSpec): Chunks {
  const w = new ProtoWriter();
  for (const d of spec.dims) w.int64Field(T.dims, d);
  w.uintField(T.data_type, onnxDataType(spec.dtype));
  if (spec.name !== undefined) w.stringField(T.name, spec.name);
  const storage = spec.storage ?? (spec.dtype === 'string' ? 'typed' : 'raw');
  const count = storage === 'typed' || storage === 'typed-unpacked' ? elementCount(spec.dims) : 0;
  if (storage === 'raw') w.bytesField(T.raw_data, spec.data);
  else if (storage === 'typed' || storage === 'typed-unpacked') writeTyped(w, spec.dtype, count, spec.data, storage === 'typed');
  else {
    const { location, offset, length, extra } = storage.external;
    w.messageField(T.external_data, entry('location', location));
    if (offset !== undefined) w.messageField(T.external_data, entry('offset', String(offset)));
    if (length !== undefined) w.messageField(T.external_data, entry('length', String(length)));
    for (const [k, v] of extra ?? []) w.messageField(T.external_data, entry(k, v));
    w.uintField(T.data_location, TensorProto_DataLocation.EXTERNAL);
  }
  if (spec.docString) w.stringField(T.doc_string, spec.docString);
  for (const [k, v] of Object.entries(spec.metadata ?? {})) w.messageField(T.metadata_props, entry(k, v));
  return w.finish();
}

export function encodeSparseSpec(spec: SparseSpec): Chunks {
  const nnz = spec.indices.length;
  const values = encodeTensorSpec({ name: spec.name, dtype: spec.dtype, dims: [nnz], data: spec.values, storage: spec.valuesStorage ?? 'raw' });
  const rank = spec.dims.length;
  const layout = spec.layout ?? 'linear';
  const flat: number[] = [];
  for (const linear of spec.indices) {
    if (layout === 'linear') { flat.push(linear); continue; }
    const coords: number[] = [];
    let rest = linear;
    for (let d = rank - 1; d >= 0; d--) { coords.unshift(rest % spec.dims[d]!); rest = Math.floor(rest / spec.dims[d]!); }
    flat.push(...coords);
  }
  const indexDims = layout === 'linear' ? [nnz] : [nnz, rank];
  const indices = new ProtoWriter();
  for (const d of indexDims) indices.int64Field(T.dims, d);
  if (spec.indexType === 'int32') {
    indices.uintField(T.data_type, TensorProto_DataType.INT32);
    const raw = new Uint8Array(4 * flat.length);
    new DataView(raw.buffer).setInt32(0, 0, true);
    flat.forEach((v, i) => new DataView(raw.buffer).setInt32(4 * i, v, true));
    indices.bytesField(T.raw_data, raw);
  } else {
    indices.uintField(T.data_type, TensorProto_DataType.INT64);
    indices.bytesField(T.int64_data, encodeVarints(flat));
  }
  const w = new ProtoWriter().messageField(S.values, values).messageField(S.indices, indices);
  for (const d of spec.dims) w.int64Field(S.dims, d);
  return w.finish();
}

function encodeAttribute(spec: AttributeSpec): Chunks {
  const w = new ProtoWriter().stringField(A.name, spec.name);
  if ('tensor' in spec) w.messageField(A.t, encodeTensorSpec(spec.tensor)).uintField(A.type, AttrType.TENSOR);
  else if ('sparse' in spec) w.uintField(A.type, AttrType.SPARSE_TENSOR).messageField(A.sparse_tensor, encodeSparseSpec(spec.sparse));
  else if ('int' in spec) w.int64Field(A.i, spec.int).uintField(A.type, AttrType.INT);
  else if ('ints' in spec) { for (const v of spec.ints) w.int64Field(A.ints, v); w.uintField(A.type, AttrType.INTS); }
  else if ('float' in spec) {
    const f = new Uint8Array(4);
    new DataView(f.buffer).setFloat32(0, spec.float, true);
    w.key(A.f, WIRE_I32).raw(f).uintField(A.type, AttrType.FLOAT);
  } else if ('string' in spec) w.stringField(A.s, spec.string).uintField(A.type, AttrType.STRING);
  else if ('graph' in spec) w.messageField(A.g, encodeGraph(spec.graph)).uintField(A.type, AttrType.GRAPH);
  else { for (const g of spec.graphs) w.messageField(A.graphs, encodeGraph(g)); w.uintField(A.type, AttrType.GRAPHS); }
  return w.finish();
}

function encodeNodeSpec(spec: NodeSpec): Chunks {
  const w = new ProtoWriter();
  for (const i of spec.inputs ?? []) w.stringField(N.input, i);
  for (const o of spec.outputs) w.stringField(N.output, o);
  if (spec.name) w.stringField(N.name, spec.name);
  w.stringField(N.op_type, spec.opType);
  for (const a of spec.attributes ?? []) w.messageField(N.attribute, encodeAttribute(a));
  if (spec.docString) w.stringField(N.doc_string, spec.docString);
  if (spec.domain) w.stringField(N.domain, spec.domain);
  return w.finish();
}

function encodeValueInfo(spec: ValueSpec): Chunks {
  const tensorType = new ProtoWriter().uintField(TypeProto_TensorField.elem_type, onnxDataType(spec.dtype));
  if (spec.dims) {
    const shape = new ProtoWriter();
    for (const d of spec.dims) {
      const dim = new ProtoWriter();
      if (typeof d === 'number') dim.int64Field(TensorShapeProto_DimensionField.dim_value, d);
      else dim.stringField(TensorShapeProto_DimensionField.dim_param, d);
      shape.messageField(TensorShapeProtoField.dim, dim);
    }
    tensorType.messageField(TypeProto_TensorField.shape, shape);
  }
  const type = new ProtoWriter().messageField(TypeProtoField.tensor_type, tensorType);
  return new ProtoWriter().stringField(V.name, spec.name).messageField(V.type, type).finish();
}

export function encodeGraph(spec: GraphSpec): Chunks {
  const w = new ProtoWriter();
  for (const n of spec.nodes) w.messageField(G.node, encodeNodeSpec(n));
  w.stringField(G.name, spec.name);
  for (const t of spec.initializers ?? []) w.messageField(G.initializer, encodeTensorSpec(t));
  if (spec.docString) w.stringField(G.doc_string, spec.docString);
  for (const i of spec.inputs) w.messageField(G.input, encodeValueInfo(i));
  for (const o of spec.outputs) w.messageField(G.output, encodeValueInfo(o));
  for (const v of spec.valueInfo ?? []) w.messageField(G.value_info, encodeValueInfo(v));
  for (const s of spec.sparseInitializers ?? []) w.messageField(G.sparse_initializer, encodeSparseSpec(s));
  return w.finish();
}

function encodeOpset(o: { domain: string; version: number }): ProtoWriter {
  const w = new ProtoWriter();
  if (o.domain) w.stringField(Op.domain, o.domain);
  return w.int64Field(Op.version, o.version);
}

export function encodeOnnxModel(spec: ModelSpec): Uint8Array {
  const w = new ProtoWriter().int64Field(M.ir_version, spec.irVersion);
  if (spec.producerName) w.stringField(M.producer_name, spec.producerName);
  if (spec.docString) w.stringField(M.doc_string, spec.docString);
  w.messageField(M.graph, encodeGraph(spec.graph));
  for (const o of spec.opsets) w.messageField(M.opset_import, encodeOpset(o));
  for (const [k, v] of Object.entries(spec.metadata ?? {})) w.messageField(M.metadata_props, entry(k, v));
  for (const t of spec.trainingInfo ?? []) {
    const tw = new ProtoWriter();
    if (t.initialization) tw.messageField(TrainingInfoProtoField.initialization, encodeGraph(t.initialization));
    tw.messageField(TrainingInfoProtoField.algorithm, encodeGraph(t.algorithm));
    for (const [k, v] of t.updateBinding ?? []) tw.messageField(TrainingInfoProtoField.update_binding, entry(k, v));
    w.messageField(M.training_info, tw);
  }
  for (const f of spec.functions ?? []) {
    const fw = new ProtoWriter().stringField(Fn.name, f.name);
    for (const i of f.inputs) fw.stringField(Fn.input, i);
    for (const o of f.outputs) fw.stringField(Fn.output, o);
    for (const n of f.nodes) fw.messageField(Fn.node, encodeNodeSpec(n));
    for (const o of f.opsets) fw.messageField(Fn.opset_import, encodeOpset(o));
    fw.stringField(Fn.domain, f.domain);
    w.messageField(M.functions, fw);
  }
  if (spec.unknownFields) w.raw(spec.unknownFields);
  return concatChunks(w.finish());
}

/** Dense bytes helpers for specs. */
export function float32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function zeroBytes(dtype: DType, count: number): Uint8Array {
  return new Uint8Array(byteLengthOf(dtype, count));
}
