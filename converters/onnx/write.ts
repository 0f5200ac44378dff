/**
 * ONNX writers: `onnx` (plain dense) and `onnx-sparse` (COO where it is smaller), as a plan
 * (one entry per weight: encoding, reason, bytes before/after) executed by splicing edits into
 * the input bytes. Everything the plan does not touch is copied from the input unchanged.
 *
 * Sparse forms, both valid for onnx.checker with full_check and run by onnxruntime:
 *  - default opset >= 11: a `Constant` node with `sparse_value` (values rank 1 in raw_data,
 *    INT64 linear indices, strictly ascending, in int64_data varints), placed in place of a
 *    Constant `value`, or before the first reader of a former initializer (which leaves
 *    graph.initializer and graph.input). Not a sparse_initializer: shape inference types
 *    those as sparse tensors and full_check fails on MatMul/Conv.
 *  - default opset 9-10 (Constant has no `sparse_value` there): the same COO data expanded by
 *    operators, `Reshape(Scatter(ConstantOfShape([N]), indices, values, axis=0), dims)`.
 *    onnxruntime folds it to a dense initializer at load.
 *  - older opsets: everything stays dense.
 */
import {
  AttributeProtoField as A, AttributeProto_AttributeType as AttrType, GraphProtoField as G, NodeProtoField as N,
  SparseTensorProtoField as S, TensorProto_DataType,
} from '../../schemas/generated/onnx/onnx-descriptor.js';
import { PrunepackError } from '../../src/errors.js';
import { byteLengthOf, type DType } from '../../src/model/dtype.js';
import { enclosingNode, usesInScope, type FieldSpan, type OnnxDocument, type OnnxGraph, type OnnxNode, type ValueUse, type WeightSlot } from './document.js';
import { ProtoWriter, concatChunks, MAX_PROTOBUF_BYTES, type Chunks } from './protobuf.js';
import { EditSet } from './splice.js';
import { expandSparse, gatherValues, nonZeroPositions } from './sparse.js';
import { encodeTensor, rewriteTensor, tensorDenseBytes, type TensorData } from './tensor.js';
import type { ResolvedExternalData } from './external-data.js';

export type OnnxTarget = 'onnx' | 'onnx-sparse';

export interface ExternalDataOptions {
  /** External data file name, relative to the output model's folder (no '..', not absolute). */
  location: string;
  /** Dense tensors of at least this many bytes go to the external file (default 1024). */
  threshold?: number;
}

export interface OnnxWriteOptions {
  /** Write large dense tensors to an external data file. */
  externalData?: ExternalDataOptions;
}

export type OnnxEncoding = 'kept' | 'dense' | 'sparse-constant' | 'sparse-scatter';

/** One weight's decision. `bytesBefore`/`bytesAfter` are the bytes of the fields involved (external bytes included). */
export interface OnnxPlanEntry {
  name: string;
  kind: WeightSlot['kind'];
  encoding: OnnxEncoding;
  external: boolean;
  reason: string;
  bytesBefore: number;
  bytesAfter: number;
  nnz?: number;
  elements: number;
}

/** A tensor copied unchanged from an input external data file: read when the output is written. */
export interface ExternalSourceRange {
  source: ResolvedExternalData;
  where: string;
  length: number;
}

/** One piece of an external data file: bytes in memory, or a range read from an input file. */
export type ExternalPart = Uint8Array | ExternalSourceRange;

export interface OnnxLayout {
  /** The ModelProto bytes. */
  model: Chunks;
  /** The external data file, when any tensor went there (streamed by writeOnnxFiles, never joined). */
  external?: { location: string; parts: ExternalPart[]; length: number };
  plan: OnnxPlanEntry[];
}

const DEFAULT_EXTERNAL_THRESHOLD = 1024;

/** Types ConstantOfShape (opset 9) can fill, hence usable in the scatter form. */
export const SCATTER_DTYPES: ReadonlySet<DType> = new Set<DType>([
  'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool',
]);

export type SparseMode = 'constant' | 'scatter';

/** Which sparse form a graph's opset allows, or why none. */
export function sparseModeFor(doc: OnnxDocument, graph: OnnxGraph): { mode?: SparseMode; reason: string } {
  const opset = graph.defaultOpset;
  if (opset === undefined) return { reason: 'the graph imports no default-domain opset' };
  if (opset >= 11 && doc.irVersion >= 6) return { mode: 'constant', reason: `opset ${opset}: Constant sparse_value` };
  if (opset >= 9) return { mode: 'scatter', reason: `opset ${opset} has no Constant sparse_value: ConstantOfShape + Scatter` };
  return { reason: `opset ${opset} < 9 has neither Constant sparse_value nor Scatter` };
}

class ExternalFile {
  readonly parts: ExternalPart[] = [];
  length = 0;
  constructor(readonly location: string) {}

  /** Appends tensor bytes; offsets aligned to 4096 for tensors of 64 KiB or more (mmap-friendly), else 64. */
  add(part: ExternalPart): { location: string; offset: number; length: number } {
    const align = part.length >= 65536 ? 4096 : 64;
    const pad = (align - (this.length % align)) % align;
    if (pad) { this.parts.push(new Uint8Array(pad)); this.length += pad; }
    const offset = this.length;
    this.parts.push(part);
    this.length += part.length;
    return { location: this.location, offset, length: part.length };
  }
}

/**
 * The input external data range of a weight written unchanged, so an external output can copy
 * it range by range instead of holding it in memory.
 */
function unchangedExternalSource(doc: OnnxDocument, slot: WeightSlot, index: number): ExternalSourceRange | undefined {
  if ((slot.kind !== 'initializer' && slot.kind !== 'constant') || doc.overrides.has(index)) return undefined;
  const resolved = slot.tensor.storage === 'external' ? slot.tensor.resolved : undefined;
  return resolved ? { source: resolved, where: slot.tensor.where, length: resolved.length } : undefined;
}

function fieldBytes(field: FieldSpan): number {
  return field.end - field.start;
}

export function lengthDelimitedField(field: number, body: Chunks): Chunks {
  return new ProtoWriter().messageField(field, body).finish();
}

function concat(...lists: Chunks[]): Chunks {
  const parts: Uint8Array[] = [];
  let length = 0;
  for (const c of lists) { parts.push(...c.parts); length += c.length; }
  return { parts, length };
}

// ---------------------------------------------------------------------------------------------
// Encoders for new nodes and attributes
// ---------------------------------------------------------------------------------------------

function encodeNode(spec: { inputs?: string[]; outputs: string[]; opType: string; attributes: Chunks[] }): Chunks {
  const w = new ProtoWriter();
  for (const input of spec.inputs ?? []) w.stringField(N.input, input);
  for (const output of spec.outputs) w.stringField(N.output, output);
  w.stringField(N.op_type, spec.opType);
  for (const attribute of spec.attributes) w.messageField(N.attribute, attribute);
  return w.finish();
}

export function tensorAttribute(name: string, tensor: Chunks): Chunks {
  return new ProtoWriter().stringField(A.name, name).messageField(A.t, tensor).uintField(A.type, AttrType.TENSOR).finish();
}

function sparseAttribute(name: string, sparse: Chunks): Chunks {
  return new ProtoWriter().stringField(A.name, name).uintField(A.type, AttrType.SPARSE_TENSOR).messageField(A.sparse_tensor, sparse).finish();
}

function intAttribute(name: string, value: number): Chunks {
  return new ProtoWriter().stringField(A.name, name).int64Field(A.i, value).uintField(A.type, AttrType.INT).finish();
}

/** SparseTensorProto from a rank-1 values TensorProto and INT64 linear indices (int64_data varints). */
export function encodeSparseTensor(values: Chunks, dims: readonly number[], positions: Float64Array): Chunks {
  const nnz = positions.length;
  const indicesTensor = encodeTensor({ dims: [nnz], dataType: TensorProto_DataType.INT64, data: { kind: 'int64', values: positions } });
  const w = new ProtoWriter().messageField(S.values, values).messageField(S.indices, indicesTensor);
  for (const d of dims) w.int64Field(S.dims, d);
  return w.finish();
}

/** A fresh rank-1 values tensor (used when there is no source TensorProto to keep fields from). */
export function freshValuesTensor(name: string, dataType: number, dtype: DType, values: Uint8Array, nnz: number): Chunks {
  return encodeTensor({ name, dims: [nnz], dataType, data: { kind: 'dense', dtype, count: nnz, bytes: values } });
}

export interface SparseForm {
  positions: Float64Array;
  values: Uint8Array;
}

/**
 * Non-zero positions and values of a dense weight. An all-zero weight stores one explicit zero
 * at index 0 (NNZ 0 tensors are an edge case runtimes handle inconsistently).
 */
export function sparseForm(dense: Uint8Array, dtype: DType, count: number): SparseForm {
  let positions = nonZeroPositions(dense, dtype, count);
  if (positions.length === 0) positions = Float64Array.of(0);
  return { positions, values: gatherValues(dense, dtype, positions) };
}

/**
 * Node fields (complete, with keys) that define `valueName` sparsely in the given mode.
 * `values` is the rank-1 values TensorProto (holding form.values).
 */
export function sparseNodes(mode: SparseMode, nodeField: number, valueName: string, dtype: DType, dataType: number, dims: readonly number[], form: SparseForm, values: Chunks, names: { fresh(base: string): string }): Chunks {
  if (mode === 'constant') {
    const sparse = encodeSparseTensor(values, dims, form.positions);
    return lengthDelimitedField(nodeField, encodeNode({ outputs: [valueName], opType: 'Constant', attributes: [sparseAttribute('sparse_value', sparse)] }));
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const nnz = form.positions.length;
  const int64 = TensorProto_DataType.INT64;
  const lengthName = names.fresh(`${valueName}__prunepack_length`);
  const zerosName = names.fresh(`${valueName}__prunepack_zeros`);
  const indicesName = names.fresh(`${valueName}__prunepack_indices`);
  const valuesName = names.fresh(`${valueName}__prunepack_values`);
  const flatName = dims.length === 1 ? valueName : names.fresh(`${valueName}__prunepack_flat`);
  const constant = (output: string, tensor: Chunks) => encodeNode({ outputs: [output], opType: 'Constant', attributes: [tensorAttribute('value', tensor)] });
  const zero = encodeTensor({ dims: [1], dataType, data: { kind: 'dense', dtype, count: 1, bytes: new Uint8Array(byteLengthOf(dtype, 1)) } });
  const nodes = [
    constant(lengthName, encodeTensor({ dims: [1], dataType: int64, data: { kind: 'int64', values: [count] } })),
    encodeNode({ inputs: [lengthName], outputs: [zerosName], opType: 'ConstantOfShape', attributes: [tensorAttribute('value', zero)] }),
    constant(indicesName, encodeTensor({ dims: [nnz], dataType: int64, data: { kind: 'int64', values: form.positions } })),
    constant(valuesName, values),
    encodeNode({ inputs: [zerosName, indicesName, valuesName], outputs: [flatName], opType: 'Scatter', attributes: [intAttribute('axis', 0)] }),
  ];
  if (dims.length > 1) {
    const shapeName = names.fresh(`${valueName}__prunepack_shape`);
    nodes.push(constant(shapeName, encodeTensor({ dims: [dims.length], dataType: int64, data: { kind: 'int64', values: dims } })));
    nodes.push(encodeNode({ inputs: [flatName, shapeName], outputs: [valueName], opType: 'Reshape', attributes: [] }));
  }
  return concat(...nodes.map((n) => lengthDelimitedField(nodeField, n)));
}

/** Fresh value names that collide with nothing in the model. */
class NameAllocator {
  private readonly taken = new Set<string>();
  constructor(doc: OnnxDocument) {
    for (const g of doc.graphs) {
      for (const n of g.nodes) { for (const v of n.inputs) this.taken.add(v); for (const v of n.outputs) this.taken.add(v); }
      for (const i of g.inputs) this.taken.add(i.name);
    }
    for (const s of doc.slots) this.taken.add(s.valueName);
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.taken.has(name); i++) name = `${base}_${i}`;
    this.taken.add(name);
    return name;
  }
}

// ---------------------------------------------------------------------------------------------
// Planning and layout
// ---------------------------------------------------------------------------------------------

function slotDims(slot: WeightSlot): number[] {
  return slot.kind === 'initializer' || slot.kind === 'constant' ? slot.tensor.dims : slot.sparse.dims;
}

function slotDType(slot: WeightSlot): { dtype: DType; dataType: number; count: number } {
  return slot.kind === 'initializer' || slot.kind === 'constant'
    ? { dtype: slot.tensor.dtype, dataType: slot.tensor.dataType, count: slot.tensor.count }
    : { dtype: slot.sparse.dtype, dataType: slot.sparse.dataType, count: slot.sparse.count };
}

/** Dense bytes of a slot (override first). */
export function slotDenseBytes(doc: OnnxDocument, index: number): Uint8Array {
  const override = doc.overrides.get(index);
  if (override) return override;
  const slot = doc.slots[index]!;
  if (slot.kind === 'initializer' || slot.kind === 'constant') return tensorDenseBytes(doc.bytes, slot.tensor);
  const s = slot.sparse;
  return expandSparse(tensorDenseBytes(doc.bytes, s.values), s.linear, s.dtype, s.count, slot.name);
}

/** Bytes the slot occupies in the input (its fields, plus external bytes). */
function inputBytes(slot: WeightSlot): number {
  switch (slot.kind) {
    case 'initializer': return fieldBytes(slot.field) + (slot.tensor.resolved?.length ?? 0);
    case 'sparse-initializer': return fieldBytes(slot.field);
    case 'constant': return fieldBytes(slot.attribute.field) + (slot.tensor.resolved?.length ?? 0);
    case 'constant-sparse': return fieldBytes(slot.attribute.field);
    case 'scatter': return slot.nodes.reduce((n, node) => n + fieldBytes(node.field), 0);
  }
}

/** Lays out the model for `target`. Pure: the document is not modified. */
export function layoutOnnx(doc: OnnxDocument, target: OnnxTarget, options: OnnxWriteOptions = {}): OnnxLayout {
  if (target !== 'onnx' && target !== 'onnx-sparse') {
    throw new PrunepackError('INVALID_ARGUMENT', `unknown ONNX target ${String(target)}`, { format: 'onnx', expected: 'onnx or onnx-sparse', found: String(target) });
  }
  const edits = new EditSet();
  const external = options.externalData ? new ExternalFile(options.externalData.location) : undefined;
  const threshold = options.externalData?.threshold ?? DEFAULT_EXTERNAL_THRESHOLD;
  const names = new NameAllocator(doc);
  const usesByGraph = new Map<OnnxGraph, Map<string, ValueUse[]>>();
  const usesOf = (slot: WeightSlot): ValueUse[] => {
    let uses = usesByGraph.get(slot.graph);
    if (!uses) usesByGraph.set(slot.graph, (uses = usesInScope(slot.graph)));
    return uses.get(slot.valueName) ?? [];
  };
  const plan: OnnxPlanEntry[] = [];

  doc.slots.forEach((slot, index) => {
    const { dtype, dataType, count } = slotDType(slot);
    const dims = slotDims(slot);
    const override = doc.overrides.get(index);
    const before = inputBytes(slot);
    const entry = (encoding: OnnxEncoding, reason: string, after: number, extra: Partial<OnnxPlanEntry> = {}): void => {
      plan.push({ name: slot.name, kind: slot.kind, encoding, external: false, reason, bytesBefore: before, bytesAfter: after, elements: count, ...extra });
    };

    // The dense form: what the `onnx` target writes, and the baseline the sparse form must beat.
    const needsDenseRewrite = slot.kind !== 'initializer' && slot.kind !== 'constant'
      || override !== undefined || slot.tensor.storage === 'external'
      || (external !== undefined && dtype !== 'string' && byteLengthOf(dtype, count) >= threshold);
    let denseCache: Uint8Array | undefined;
    const dense = () => (denseCache ??= slotDenseBytes(doc, index));
    const denseLayout = (): { apply: () => void; bytes: number; external: boolean; encoding: OnnxEncoding } => {
      if (!needsDenseRewrite) return { apply: () => {}, bytes: before, external: false, encoding: 'kept' };
      const source = external ? unchangedExternalSource(doc, slot, index) : undefined;
      const length = source ? source.length : dense().length;
      const toExternal = external !== undefined && dtype !== 'string' && length >= threshold;
      // Placeholder placement for sizing; the real one is taken only if this form is applied.
      const build = (tensorData: TensorData) => {
        switch (slot.kind) {
          case 'initializer': return lengthDelimitedField(G.initializer, rewriteTensor(doc.bytes, slot.tensor, tensorData));
          case 'constant': return lengthDelimitedField(N.attribute, rewriteAttributeTensor(doc, slot.attribute, rewriteTensor(doc.bytes, slot.tensor, tensorData)));
          case 'sparse-initializer':
            return lengthDelimitedField(G.initializer, rewriteTensor(doc.bytes, slot.sparse.values, tensorData, dims));
          case 'constant-sparse':
            return lengthDelimitedField(N.attribute, tensorAttribute('value', rewriteTensor(doc.bytes, slot.sparse.values, tensorData, dims)));
          case 'scatter':
            return lengthDelimitedField(slot.graph.nodeField, encodeNode({
              outputs: [slot.valueName], opType: 'Constant', attributes: [tensorAttribute('value', rewriteTensor(doc.bytes, slot.sparse.values, tensorData, dims))],
            }));
        }
      };
      const denseData = (): TensorData => ({ kind: 'dense', dtype, count, bytes: dense() });
      const sizing = toExternal
        ? build({ kind: 'external', placement: { location: external.location, offset: 0, length } }).length + length + 8
        : build(denseData()).length;
      return {
        bytes: sizing, external: toExternal, encoding: 'dense',
        apply: () => {
          const fields = build(toExternal ? { kind: 'external', placement: external.add(source ?? dense()) } : denseData());
          switch (slot.kind) {
            case 'initializer': edits.replace(slot.field, fields); break;
            case 'sparse-initializer': edits.replace(slot.field, fields); break;
            case 'constant': case 'constant-sparse': edits.replace(slot.attribute.field, fields); break;
            case 'scatter':
              slot.nodes.forEach((node, i) => edits.replace(node.field, i === slot.nodes.length - 1 ? fields : null));
              break;
          }
        },
      };
    };

    const writeDense = (reason: string) => {
      const d = denseLayout();
      d.apply();
      entry(d.encoding, reason, d.bytes, { external: d.external });
    };

    if (target === 'onnx') {
      writeDense(slot.kind === 'initializer' || slot.kind === 'constant' ? 'dense target' : 'dense target: sparse tensor expanded');
      return;
    }

    // onnx-sparse
    const { mode, reason: modeReason } = sparseModeFor(doc, slot.graph);
    if (!mode) return writeDense(modeReason);
    if (slot.graph.kind === 'training') return writeDense('training graphs are left as they are');
    if (dtype === 'string') return writeDense('string tensors stay dense');
    if (mode === 'scatter' && !SCATTER_DTYPES.has(dtype)) return writeDense(`${dtype} cannot be filled by ConstantOfShape at opset ${slot.graph.defaultOpset}`);
    if (dims.length === 0 || dims.some((d) => d === 0)) return writeDense('scalars and empty tensors stay dense');
    if (slot.kind === 'scatter' && mode === 'scatter' && override === undefined) {
      entry('kept', 'already in the opset 9-10 sparse form', before, { nnz: slot.sparse.nnz });
      return;
    }
    const removesInitializer = slot.kind === 'initializer' || slot.kind === 'sparse-initializer';
    let firstReader: OnnxNode | undefined;
    if (removesInitializer) {
      if (doc.trainingBound.has(slot.valueName)) return writeDense('bound by training_info');
      if (slot.graph.outputs.includes(slot.valueName)) return writeDense('also a graph output');
      for (const use of usesOf(slot)) {
        const node = enclosingNode(slot.graph, use.node);
        if (node && (!firstReader || node.index < firstReader.index)) firstReader = node;
      }
      if (!firstReader) return writeDense('not read by any operator');
    }
    const form = sparseForm(dense(), dtype, count);
    // The values tensor keeps the source tensor's name, doc_string, metadata_props and unknown fields.
    const source = slot.kind === 'initializer' || slot.kind === 'constant' ? slot.tensor : slot.sparse.values;
    const nnzValues = rewriteTensor(doc.bytes, source, { kind: 'dense', dtype, count: form.positions.length, bytes: form.values }, [form.positions.length]);
    const nodes = sparseNodes(mode, slot.graph.nodeField, slot.valueName, dtype, dataType, dims, form, nnzValues, names);
    let sparseBytes: number;
    let applySparse: () => void;
    const graphInput = removesInitializer ? slot.graph.inputs.find((i) => i.name === slot.valueName) : undefined;
    switch (slot.kind) {
      case 'initializer': case 'sparse-initializer':
        sparseBytes = nodes.length - (graphInput ? fieldBytes(graphInput.field) : 0);
        applySparse = () => {
          edits.replace(slot.field, null);
          if (graphInput) edits.replace(graphInput.field, null);
          edits.insertBefore(firstReader!.field, nodes);
        };
        break;
      case 'constant': case 'constant-sparse':
        if (mode === 'constant') {
          const sparse = encodeSparseTensor(nnzValues, dims, form.positions);
          const attribute = lengthDelimitedField(N.attribute, sparseAttribute('sparse_value', sparse));
          sparseBytes = attribute.length;
          applySparse = () => edits.replace(slot.attribute.field, attribute);
        } else {
          sparseBytes = nodes.length - fieldBytes(slot.node.field) + fieldBytes(slot.attribute.field);
          applySparse = () => edits.replace(slot.node.field, nodes);
        }
        break;
      case 'scatter':
        sparseBytes = nodes.length;
        applySparse = () => slot.nodes.forEach((node, i) => edits.replace(node.field, i === slot.nodes.length - 1 ? nodes : null));
        break;
    }
    const d = denseLayout();
    const nnz = form.positions.length;
    if (sparseBytes < d.bytes) {
      applySparse();
      entry(mode === 'constant' ? 'sparse-constant' : 'sparse-scatter',
        `${((1 - nnz / count) * 100).toFixed(1)}% zeros: ${sparseBytes} bytes sparse < ${d.bytes} dense`, sparseBytes, { nnz });
    } else {
      d.apply();
      entry(d.encoding, `${((1 - nnz / count) * 100).toFixed(1)}% zeros: sparse (${sparseBytes} bytes) is not smaller than dense (${d.bytes})`, d.bytes, { nnz, external: d.external });
    }
  });

  const model = edits.emit(doc.bytes, 0, doc.bytes.length);
  return {
    model, plan,
    ...(external && external.length ? { external: { location: external.location, parts: external.parts, length: external.length } } : {}),
  };
}

/** Re-encodes an AttributeProto with its `t` replaced (every other field kept in order). */
function rewriteAttributeTensor(doc: OnnxDocument, attribute: { message: { start: number; end: number }; tensorField?: FieldSpan }, tensor: Chunks): Chunks {
  const { bytes } = doc;
  const field = attribute.tensorField!;
  const w = new ProtoWriter();
  w.raw(bytes.subarray(attribute.message.start, field.start));
  w.messageField(A.t, tensor);
  w.raw(bytes.subarray(field.end, attribute.message.end));
  return w.finish();
}

/** The model as one byte array (no external data file). */
export function writeOnnxBytes(doc: OnnxDocument, target: OnnxTarget): Uint8Array {
  const layout = layoutOnnx(doc, target);
  if (layout.model.length > MAX_PROTOBUF_BYTES) {
    throw new PrunepackError('UNSUPPORTED', 'the ONNX model would be 2 GiB or larger, which protobuf cannot hold', {
      format: 'onnx', expected: `< ${MAX_PROTOBUF_BYTES + 1} bytes`, found: `${layout.model.length} bytes`,
      hint: 'Write it with external data: writeOnnxFiles(model, path, { externalData }) or --external-data',
    });
  }
  return concatChunks(layout.model);
}

