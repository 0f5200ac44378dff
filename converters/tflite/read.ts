/**
 * TFLite reader: bounds-checked flatbuffer parsing into a TfliteDocument plus the
 * format-neutral Model (weights as views into the input bytes).
 */
import { Model as FbModel } from '../../schemas/generated/tflite/tflite/model.js';
import { ModelT } from '../../schemas/generated/tflite/tflite/model.js';
import { SubGraphT } from '../../schemas/generated/tflite/tflite/sub-graph.js';
import { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import type { Tensor } from '../../schemas/generated/tflite/tflite/tensor.js';
import type { SubGraph } from '../../schemas/generated/tflite/tflite/sub-graph.js';
import type { SparsityParameters } from '../../schemas/generated/tflite/tflite/sparsity-parameters.js';
import { DimensionType } from '../../schemas/generated/tflite/tflite/dimension-type.js';
import { SparseIndexVector } from '../../schemas/generated/tflite/tflite/sparse-index-vector.js';
import { Int32Vector } from '../../schemas/generated/tflite/tflite/int32vector.js';
import { Uint16Vector } from '../../schemas/generated/tflite/tflite/uint16vector.js';
import { Uint8Vector } from '../../schemas/generated/tflite/tflite/uint8vector.js';
import { PrunepackError } from '../../src/errors.js';
import type { DimensionMetadata as NeutralDim, IndexVector, SparsityParams } from '../../src/sparsity/types.js';
import { CheckedByteBuffer } from './checked-byte-buffer.js';
import { TfliteBuffer, TypedSparsityT, type TfliteDocument } from './document.js';
import { buildModel, tensorDType } from './model-view.js';
import { dtypeBits } from '../../src/model/dtype.js';
import type { Model } from '../../src/model/types.js';

export interface TfliteReadOptions {
  /**
   * Reads bytes past the end of `bytes` (buffers stored at Buffer.offset in files over
   * 2 GB, when only the flatbuffer part is in memory). Must throw when out of range.
   */
  readRange?: (offset: number, length: number) => Uint8Array;
  /** Size of the whole file when `bytes` is only its beginning. */
  fileSize?: number;
  /**
   * Paged reading (files read without loading their weights: `audit` of big models): `bytes` is
   * an image of the whole file whose pages `ensure` fills on demand; buffer `data` vectors are
   * not paged in but read by `readRange` when a weight is used (and dropped by `release`).
   */
  paged?: { ensure(offset: number, length: number): void; readRange(offset: number, length: number): Uint8Array };
}

const MIN_TFLITE = 16;

export function readTfliteDocument(bytes: Uint8Array, options: TfliteReadOptions = {}): TfliteDocument {
  if (bytes.length < MIN_TFLITE) {
    throw new PrunepackError('TRUNCATED', 'file too short to be a TFLite model', {
      format: 'tflite', location: 'byte 0', expected: `at least ${MIN_TFLITE} bytes`, found: `${bytes.length} bytes`,
    });
  }
  const paged = options.paged;
  const bb = new CheckedByteBuffer(bytes, undefined, paged ? (o, n) => paged.ensure(o, n) : undefined);
  const root = bb.readUint32(0);
  if (root < 8 || root >= bytes.length) {
    throw new PrunepackError('CORRUPT', 'root table offset points outside the file', {
      format: 'tflite', location: 'byte 0', expected: `8..${bytes.length - 1}`, found: String(root),
      hint: 'The file is truncated or is not a TFLite flatbuffer',
    });
  }
  const fb = FbModel.getRootAsModel(bb);
  const fileSize = options.fileSize ?? bytes.length;

  try {
    const model = new ModelT(
      fb.version(),
      bb.createObjList(fb.operatorCodes.bind(fb), fb.operatorCodesLength()),
      readSubgraphs(fb, bb),
      fb.description() as string | null,
      [],
      bb.createScalarList(fb.metadataBuffer.bind(fb), fb.metadataBufferLength()),
      bb.createObjList(fb.metadata.bind(fb), fb.metadataLength()),
      bb.createObjList(fb.signatureDefs.bind(fb), fb.signatureDefsLength()),
      bb.createObjList(fb.externalBufferGroups.bind(fb), fb.externalBufferGroupsLength()),
      bb.createObjList(fb.externalBuffers.bind(fb), fb.externalBuffersLength()),
    );
    const buffers: TfliteBuffer[] = [];
    const count = fb.buffersLength();
    for (let i = 0; i < count; i++) {
      const b = fb.buffers(i)!;
      const field = bb.__offset(b.bb_pos, 4);
      let inline: Uint8Array | null = null;
      let lazy: TfliteBuffer | null = null;
      if (field) {
        const start = bb.__vector(b.bb_pos + field);
        const length = bb.__vector_len(b.bb_pos + field);
        if (paged && length > 0) lazy = TfliteBuffer.lazy(length, () => paged.readRange(start, length));
        else inline = bb.byteVector(start, length);
      }
      const offset = b.offset();
      const size = b.size();
      let load: (() => Uint8Array) | undefined;
      if (offset > 1n) {
        const end = offset + size;
        if (end > BigInt(fileSize)) {
          throw new PrunepackError('TRUNCATED', `buffer ${i} lies past the end of the file`, {
            format: 'tflite', location: `buffer ${i} (Buffer.offset ${offset})`,
            expected: `offset + size <= ${fileSize}`, found: String(end),
          });
        }
        const start = Number(offset);
        const length = Number(size);
        if (paged) load = () => paged.readRange(start, length);
        else if (start + length <= bytes.length) inline = bytes.subarray(start, start + length);
        else if (options.readRange) { const read = options.readRange; load = () => read(start, length); }
        else {
          throw new PrunepackError('TRUNCATED', `buffer ${i} lies past the bytes given to the reader`, {
            format: 'tflite', location: `buffer ${i}`, expected: `offset + size <= ${bytes.length}`, found: String(end),
          });
        }
      }
      buffers.push(lazy && !(offset > 1n) ? lazy : new TfliteBuffer(inline, offset, size, load));
    }
    checkReferences(model, buffers.length);
    checkSparseExpansion(model, buffers, fileSize);
    return { model, buffers };
  } catch (e) {
    if (e instanceof PrunepackError) throw e;
    throw new PrunepackError('CORRUPT', `cannot parse the flatbuffer: ${(e as Error).message}`, { format: 'tflite', cause: e });
  }
}

/**
 * Every index that points into another table must land inside it (what TFLite's verifier checks),
 * so code walking the graph never meets an undefined tensor, buffer or operator code. Operator
 * inputs and outputs may be -1 (an omitted optional operand).
 */
function checkReferences(model: ModelT, bufferCount: number): void {
  const bad = (location: string, expected: string, found: number) => new PrunepackError('CORRUPT', 'an index points outside its table', {
    format: 'tflite', location, expected, found: String(found), hint: 'The file is damaged; re-export it from the original model',
  });
  const codes = model.operatorCodes.length;
  model.subgraphs.forEach((sg, s) => {
    const tensors = sg.tensors.length;
    const tensorRange = `a tensor index in 0..${tensors - 1}`;
    sg.tensors.forEach((tensor, t) => {
      if (tensor.buffer !== 0 && !(tensor.buffer > 0 && tensor.buffer < bufferCount)) {
        throw bad(`subgraph ${s} tensor ${t} buffer`, `a buffer index in 0..${bufferCount - 1}`, tensor.buffer);
      }
    });
    for (const [list, name] of [[sg.inputs, 'inputs'], [sg.outputs, 'outputs']] as const) {
      list.forEach((i, k) => { if (!(i >= 0 && i < tensors)) throw bad(`subgraph ${s} ${name}[${k}]`, tensorRange, i); });
    }
    sg.operators.forEach((op, o) => {
      if (!(op.opcodeIndex >= 0 && op.opcodeIndex < codes)) {
        throw bad(`subgraph ${s} operator ${o} opcode_index`, `an operator code index in 0..${codes - 1}`, op.opcodeIndex);
      }
      for (const [list, name] of [[op.inputs, 'inputs'], [op.outputs, 'outputs'], [op.intermediates, 'intermediates']] as const) {
        list.forEach((i, k) => { if (!(i >= -1 && i < tensors)) throw bad(`subgraph ${s} operator ${o} ${name}[${k}]`, `-1 or ${tensorRange}`, i); });
      }
    });
  });
  model.signatureDefs.forEach((sig, g) => {
    const sg = model.subgraphs[sig.subgraphIndex];
    if (!sg) throw bad(`signature_defs[${g}] subgraph_index`, `a subgraph index in 0..${model.subgraphs.length - 1}`, sig.subgraphIndex);
    for (const [list, name] of [[sig.inputs, 'inputs'], [sig.outputs, 'outputs']] as const) {
      list.forEach((m, k) => {
        if (!(m.tensorIndex >= 0 && m.tensorIndex < sg.tensors.length)) {
          throw bad(`signature_defs[${g}] ${name}[${k}] tensor_index`, `a tensor index in 0..${sg.tensors.length - 1}`, m.tensorIndex);
        }
      });
    }
  });
}

/**
 * Dense bytes the sparse tensors of one file may expand to, in total: 64 MiB plus 64 times the
 * file size (a 98%-sparse float32 tensor in CSR with uint8 indices expands about 40 times).
 */
export function maxSparseExpansion(fileSize: number): number {
  return 64 * 2 ** 20 + 64 * fileSize;
}

/** Largest dense tensor a sparse one may expand to (one typed array, one TFLite buffer). */
export const MAX_DENSE_TENSOR_BYTES = 2 ** 31 - 1;

/**
 * A sparse tensor declares its dense size in its shape, not in stored bytes: refuse a file whose
 * sparse tensors declare more than the limits before anything (reader or writer) densifies them.
 * Invalid shapes and types are left to the sparsity verifier, which names the field at fault.
 */
function checkSparseExpansion(model: ModelT, buffers: TfliteBuffer[], fileSize: number): void {
  const limit = maxSparseExpansion(fileSize);
  let total = 0;
  model.subgraphs.forEach((sg, s) => sg.tensors.forEach((tensor, t) => {
    if (!tensor.sparsity || !buffers[tensor.buffer]?.hasData) return;
    let bits: number;
    try { bits = dtypeBits(tensorDType(tensor.type, '')); } catch { return; }
    let count = 1;
    for (const d of tensor.shape) {
      if (d < 0) return;
      count *= d;
    }
    const bytes = Math.ceil((count * bits) / 8);
    const where = `subgraph ${s} tensor ${t} "${typeof tensor.name === 'string' ? tensor.name : ''}"`;
    if (bytes > MAX_DENSE_TENSOR_BYTES) {
      throw new PrunepackError('UNSUPPORTED', 'a sparse tensor declares a dense size over 2 GiB', {
        format: 'tflite', location: where, expected: `at most ${MAX_DENSE_TENSOR_BYTES} dense bytes`, found: `${bytes} bytes for shape [${tensor.shape.join(',')}]`,
        hint: 'The file is damaged, or holds a tensor too large to expand in memory',
      });
    }
    total += bytes;
    if (total > limit) {
      throw new PrunepackError('UNSUPPORTED', 'the sparse tensors declare more dense data than prunepack expands for a file this size', {
        format: 'tflite', location: where, expected: `at most ${limit} dense bytes in total (64 MiB + 64 x ${fileSize} file bytes)`, found: `${total} bytes so far`,
        hint: 'The file is damaged or hostile: its sparse tensors would expand far beyond what it stores',
      });
    }
  }));
}

function readSubgraphs(fb: FbModel, bb: CheckedByteBuffer): SubGraphT[] {
  const out: SubGraphT[] = [];
  for (let s = 0; s < fb.subgraphsLength(); s++) {
    const sg = fb.subgraphs(s)!;
    out.push(new SubGraphT(
      readTensors(sg, bb, s),
      bb.createScalarList(sg.inputs.bind(sg), sg.inputsLength()),
      bb.createScalarList(sg.outputs.bind(sg), sg.outputsLength()),
      bb.createObjList(sg.operators.bind(sg), sg.operatorsLength()),
      sg.name() as string | null,
      sg.debugMetadataIndex(),
    ));
  }
  return out;
}

function readTensors(sg: SubGraph, bb: CheckedByteBuffer, subgraph: number): TensorT[] {
  const tensors: TensorT[] = [];
  for (let t = 0; t < sg.tensorsLength(); t++) {
    const tensor: Tensor = sg.tensors(t)!;
    const sparsity = tensor.sparsity();
    tensors.push(new TensorT(
      bb.createScalarList(tensor.shape.bind(tensor), tensor.shapeLength()),
      tensor.type(),
      tensor.buffer(),
      tensor.name() as string | null,
      tensor.quantization()?.unpack() ?? null,
      tensor.isVariable(),
      sparsity ? new TypedSparsityT(readSparsity(sparsity, bb, `subgraph ${subgraph} tensor ${t}`)) : null,
      bb.createScalarList(tensor.shapeSignature.bind(tensor), tensor.shapeSignatureLength()),
      tensor.hasRank(),
      bb.createObjList(tensor.variantTensors.bind(tensor), tensor.variantTensorsLength()),
      tensor.externalBuffer(),
    ));
  }
  return tensors;
}

function readSparsity(sp: SparsityParameters, bb: CheckedByteBuffer, where: string): SparsityParams {
  const traversalOrder = bb.createScalarList<number>(sp.traversalOrder.bind(sp), sp.traversalOrderLength());
  const blockMap = bb.createScalarList<number>(sp.blockMap.bind(sp), sp.blockMapLength());
  const dimMetadata: NeutralDim[] = [];
  for (let i = 0; i < sp.dimMetadataLength(); i++) {
    const d = sp.dimMetadata(i)!;
    if (d.format() === DimensionType.DENSE) {
      dimMetadata.push({ format: 'DENSE', denseSize: d.denseSize() });
    } else {
      const segments = readIndexVector(bb, d.arraySegmentsType(), (o) => d.arraySegments(o), `${where} dim_metadata[${i}].array_segments`);
      const indices = readIndexVector(bb, d.arrayIndicesType(), (o) => d.arrayIndices(o), `${where} dim_metadata[${i}].array_indices`);
      dimMetadata.push({ format: 'SPARSE_CSR', segments, indices });
    }
  }
  return { traversalOrder, blockMap, dimMetadata };
}

type IndexTable = Int32Vector | Uint16Vector | Uint8Vector;

function readIndexVector(bb: CheckedByteBuffer, type: SparseIndexVector, get: (o: IndexTable) => unknown, where: string): IndexVector {
  let table: IndexTable;
  let width: number;
  switch (type) {
    case SparseIndexVector.Int32Vector: table = get(new Int32Vector()) as IndexTable; width = 4; break;
    case SparseIndexVector.Uint16Vector: table = get(new Uint16Vector()) as IndexTable; width = 2; break;
    case SparseIndexVector.Uint8Vector: table = get(new Uint8Vector()) as IndexTable; width = 1; break;
    default:
      throw new PrunepackError('CORRUPT', 'sparse index vector has no or an unknown type', {
        format: 'tflite', location: where, expected: 'Int32Vector, Uint16Vector or Uint8Vector', found: `union type ${type}`,
      });
  }
  if (!table) return new Uint8Array(0);
  const field = bb.__offset(table.bb_pos, 4);
  if (!field) return width === 4 ? new Int32Array(0) : width === 2 ? new Uint16Array(0) : new Uint8Array(0);
  const start = bb.__vector(table.bb_pos + field);
  const length = bb.__vector_len(table.bb_pos + field);
  const raw = bb.byteVector(start, length * width);
  const aligned = raw.byteOffset % width === 0 ? raw : raw.slice();
  if (width === 4) return new Int32Array(aligned.buffer, aligned.byteOffset, length);
  if (width === 2) return new Uint16Array(aligned.buffer, aligned.byteOffset, length);
  return aligned;
}

/** Parse TFLite bytes into the format-neutral model. */
export function readTflite(bytes: Uint8Array, options: TfliteReadOptions = {}): Model {
  return buildModel(readTfliteDocument(bytes, options));
}
