/**
 * TFLite writer. The flatbuffer proper (operators, tensors, signatures, metadata) is built
 * with the generated object API; buffer bytes are never copied into the builder. They are
 * appended after the flatbuffer and referenced with forward offsets, each 16-byte aligned:
 *   - models under 2 GB: Buffer.data is an ordinary [ubyte] vector that happens to lie past
 *     the end of the flatbuffer tables (flatbuffer offsets only point forward, so this is a
 *     valid layout for every reader);
 *   - larger models: Buffer.offset / Buffer.size, counted from the start of the file, as the
 *     official converter writes them.
 * The result is a layout (small metadata + views of the weight bytes) that is either
 * assembled into one array or streamed to a file without a second full copy.
 */
import * as flatbuffers from 'flatbuffers';
import { Buffer as FbBuffer } from '../../schemas/generated/tflite/tflite/buffer.js';
import { Model as FbModel } from '../../schemas/generated/tflite/tflite/model.js';
import { Operator, OperatorT } from '../../schemas/generated/tflite/tflite/operator.js';
import { SubGraphT } from '../../schemas/generated/tflite/tflite/sub-graph.js';
import { Tensor, TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { QuantizationParameters, type QuantizationParametersT } from '../../schemas/generated/tflite/tflite/quantization-parameters.js';
import { PrunepackError } from '../../src/errors.js';
import { TypedSparsityT, type TfliteDocument } from './document.js';

/** Flatbuffers address space: offsets are signed 32-bit. */
const FLATBUFFER_LIMIT = 2 ** 31 - 1;
const DATA_ALIGNMENT = 16;

export interface TfliteLayout {
  /** The flatbuffer tables; its length is a multiple of 16. */
  head: Uint8Array;
  /** Weight bytes to place at absolute file positions after `head`, in ascending order. */
  pieces: Array<{ position: number; bytes: Uint8Array }>;
  totalSize: number;
  /** True when buffers are addressed with Buffer.offset/size (models over 2 GB). */
  offsetBuffers: boolean;
}

export interface TfliteWriteOptions {
  /** Address buffers with Buffer.offset/size even below 2 GB (tests, and runtimes that mmap). */
  forceOffsetBuffers?: boolean;
}

/** Bytes of the typed sparse index vectors (segments, indices) of every tensor, with their headers. */
function indexVectorBytes(doc: TfliteDocument): number {
  let bytes = 0;
  for (const sg of doc.model.subgraphs) {
    for (const t of sg.tensors) {
      if (!(t.sparsity instanceof TypedSparsityT)) continue;
      for (const d of t.sparsity.params.dimMetadata) {
        if (d.format === 'SPARSE_CSR') bytes += d.segments.byteLength + d.indices.byteLength + 64;
      }
    }
  }
  return bytes;
}

export function layoutTflite(doc: TfliteDocument, options: TfliteWriteOptions = {}): TfliteLayout {
  for (const [s, sg] of doc.model.subgraphs.entries()) {
    for (const [o, op] of sg.operators.entries()) {
      if (op.largeCustomOptionsSize > 0n) {
        throw new PrunepackError('UNSUPPORTED', 'operators with large custom options (stored past the flatbuffer) cannot be rewritten yet', {
          format: 'tflite', location: `subgraph ${s} operator ${o}`,
        });
      }
    }
  }
  const dataBytes = doc.buffers.reduce((sum, b) => sum + (b.hasData ? b.byteLength + DATA_ALIGNMENT + 4 : 0), 0);
  const offsetBuffers = options.forceOffsetBuffers === true || dataBytes > FLATBUFFER_LIMIT - (64 << 20);

  // Positions of each buffer's bytes relative to the end of the flatbuffer tables.
  // Inline vectors need a 4-byte length prefix right before the (aligned) data.
  const relative: number[] = new Array(doc.buffers.length).fill(-1);
  let cursor = 0;
  doc.buffers.forEach((b, i) => {
    if (!b.hasData) return;
    const prefix = offsetBuffers ? 0 : 4;
    cursor += (DATA_ALIGNMENT - ((cursor + prefix) % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    relative[i] = cursor + prefix; // where the data starts
    cursor += prefix + b.byteLength;
  });
  const appendedLength = cursor;

  // Sized for the sparse index vectors up front: the builder grows by doubling and copying, and
  // a large sparse model's index vectors are a good part of its size (same bytes either way).
  const builder = new flatbuffers.Builder(Math.min(FLATBUFFER_LIMIT, (1 << 16) + indexVectorBytes(doc)));
  builder.prep(DATA_ALIGNMENT, 0); // minalign 16: the finished head length is a multiple of 16
  const offsetFieldsFromEnd: Array<{ fromEnd: number; buffer: number }> = [];
  const bufferTables = doc.buffers.map((b, i) => {
    FbBuffer.startBuffer(builder);
    if (relative[i]! >= 0) {
      if (offsetBuffers) {
        FbBuffer.addSize(builder, BigInt(b.byteLength));
        FbBuffer.addOffset(builder, 2n); // patched below once the head's length is known
        offsetFieldsFromEnd.push({ fromEnd: builder.offset(), buffer: i });
      } else {
        // A negative builder offset names a position past the end of the finished buffer.
        FbBuffer.addData(builder, -(relative[i]! - 4));
      }
    }
    return FbBuffer.endBuffer(builder);
  });

  const m = doc.model;
  const operatorCodes = FbModel.createOperatorCodesVector(builder, builder.createObjectOffsetList(m.operatorCodes));
  const subgraphs = FbModel.createSubgraphsVector(builder, builder.createObjectOffsetList(m.subgraphs.map(withLeanTables)));
  const description = m.description !== null ? builder.createString(m.description) : 0;
  const buffers = FbModel.createBuffersVector(builder, bufferTables);
  // Empty optional vectors are left out (absent reads as empty), as the official converter does.
  const metadataBuffer = m.metadataBuffer.length ? FbModel.createMetadataBufferVector(builder, m.metadataBuffer) : 0;
  const metadata = m.metadata.length ? FbModel.createMetadataVector(builder, builder.createObjectOffsetList(m.metadata)) : 0;
  const signatureDefs = m.signatureDefs.length ? FbModel.createSignatureDefsVector(builder, builder.createObjectOffsetList(m.signatureDefs)) : 0;
  const externalBufferGroups = m.externalBufferGroups.length
    ? FbModel.createExternalBufferGroupsVector(builder, builder.createObjectOffsetList(m.externalBufferGroups)) : 0;
  const externalBuffers = m.externalBuffers.length ? FbModel.createExternalBuffersVector(builder, builder.createObjectOffsetList(m.externalBuffers)) : 0;
  const root = FbModel.createModel(builder, m.version, operatorCodes, subgraphs, description, buffers, metadataBuffer,
    metadata, signatureDefs, externalBufferGroups, externalBuffers);
  builder.finish(root, 'TFL3');
  const head = builder.asUint8Array();
  if (head.length % DATA_ALIGNMENT !== 0) throw new Error(`internal: flatbuffer head not aligned (${head.length})`);
  if (!offsetBuffers && head.length + appendedLength > FLATBUFFER_LIMIT) {
    throw new Error('internal: inline layout exceeds 2 GB');
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  for (const { fromEnd, buffer } of offsetFieldsFromEnd) {
    view.setBigUint64(head.length - fromEnd, BigInt(head.length + relative[buffer]!), true);
  }
  const pieces: TfliteLayout['pieces'] = [];
  doc.buffers.forEach((b, i) => {
    if (relative[i]! < 0) return;
    if (!offsetBuffers) {
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, b.byteLength, true);
      pieces.push({ position: head.length + relative[i]! - 4, bytes: prefix });
    }
    pieces.push({ position: head.length + relative[i]!, bytes: b.bytes });
  });
  return { head, pieces, totalSize: head.length + appendedLength, offsetBuffers };
}

/** Assemble a layout into one array (for models that fit in memory twice). */
export function assembleLayout(layout: Pick<TfliteLayout, 'head' | 'pieces' | 'totalSize'>): Uint8Array {
  const out = new Uint8Array(layout.totalSize);
  out.set(layout.head, 0);
  for (const piece of layout.pieces) out.set(piece.bytes, piece.position);
  return out;
}

export function writeTflite(doc: TfliteDocument, options: TfliteWriteOptions = {}): Uint8Array {
  return assembleLayout(layoutTflite(doc, options));
}

/**
 * OperatorT whose pack leaves out empty custom_options / mutating_variable_inputs /
 * intermediates vectors (the generated pack always writes them, and TFLite then logs
 * "Found builtin operator with custom options" for every builtin). Empty and absent mean
 * the same to every reader.
 */
class LeanOperatorT extends OperatorT {
  override pack(builder: flatbuffers.Builder): flatbuffers.Offset {
    const inputs = Operator.createInputsVector(builder, this.inputs);
    const outputs = Operator.createOutputsVector(builder, this.outputs);
    const builtinOptions = builder.createObjectOffset(this.builtinOptions);
    const customOptions = this.customOptions.length ? Operator.createCustomOptionsVector(builder, this.customOptions) : 0;
    const mutating = this.mutatingVariableInputs.length ? Operator.createMutatingVariableInputsVector(builder, this.mutatingVariableInputs) : 0;
    const intermediates = this.intermediates.length ? Operator.createIntermediatesVector(builder, this.intermediates) : 0;
    const builtinOptions2 = builder.createObjectOffset(this.builtinOptions2);
    return Operator.createOperator(builder, this.opcodeIndex, inputs, outputs, this.builtinOptionsType, builtinOptions,
      customOptions, this.customOptionsFormat, mutating, intermediates, this.largeCustomOptionsOffset,
      this.largeCustomOptionsSize, this.builtinOptions2Type, builtinOptions2, this.debugMetadataIndex);
  }
}

/**
 * TensorT whose pack leaves out empty shape_signature and variant_tensors vectors, and empty
 * min / max / scale / zero_point vectors of its quantization table (the generated pack always
 * writes them: about 60 bytes per tensor that the official converter does not write; TFLite reads
 * an absent vector as an empty one). Fields are added in the generated pack's order.
 */
class LeanTensorT extends TensorT {
  override pack(builder: flatbuffers.Builder): flatbuffers.Offset {
    const shape = Tensor.createShapeVector(builder, this.shape);
    const name = this.name !== null ? builder.createString(this.name) : 0;
    const quantization = this.quantization !== null ? packQuantization(builder, this.quantization) : 0;
    const sparsity = this.sparsity !== null ? this.sparsity.pack(builder) : 0;
    const shapeSignature = this.shapeSignature.length ? Tensor.createShapeSignatureVector(builder, this.shapeSignature) : 0;
    const variantTensors = this.variantTensors.length
      ? Tensor.createVariantTensorsVector(builder, builder.createObjectOffsetList(this.variantTensors)) : 0;
    Tensor.startTensor(builder);
    Tensor.addShape(builder, shape);
    Tensor.addType(builder, this.type);
    Tensor.addBuffer(builder, this.buffer);
    Tensor.addName(builder, name);
    Tensor.addQuantization(builder, quantization);
    Tensor.addIsVariable(builder, this.isVariable);
    Tensor.addSparsity(builder, sparsity);
    Tensor.addShapeSignature(builder, shapeSignature);
    Tensor.addHasRank(builder, this.hasRank);
    Tensor.addVariantTensors(builder, variantTensors);
    Tensor.addExternalBuffer(builder, this.externalBuffer);
    return Tensor.endTensor(builder);
  }
}

function packQuantization(builder: flatbuffers.Builder, q: QuantizationParametersT): flatbuffers.Offset {
  const min = q.min.length ? QuantizationParameters.createMinVector(builder, q.min) : 0;
  const max = q.max.length ? QuantizationParameters.createMaxVector(builder, q.max) : 0;
  const scale = q.scale.length ? QuantizationParameters.createScaleVector(builder, q.scale) : 0;
  const zeroPoint = q.zeroPoint.length ? QuantizationParameters.createZeroPointVector(builder, q.zeroPoint) : 0;
  const details = builder.createObjectOffset(q.details);
  return QuantizationParameters.createQuantizationParameters(builder, min, max, scale, zeroPoint, q.detailsType, details, q.quantizedDimension);
}

function withLeanTables(sg: SubGraphT): SubGraphT {
  const copy = Object.assign(new SubGraphT(), sg);
  copy.operators = sg.operators.map((op) => (op instanceof LeanOperatorT ? op : Object.assign(new LeanOperatorT(), op)));
  copy.tensors = sg.tensors.map((t) => (t instanceof LeanTensorT ? t : Object.assign(new LeanTensorT(), t)));
  return copy;
}
