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
import { buildModel } from './model-view.js';
import type { Model } from '../../src/model/types.js';

export interface TfliteReadOptions {
  /**
   * Reads bytes past the end of `bytes` (buffers stored at Buffer.offset in files over
   * 2 GB, when only the flatbuffer part is in memory). Must throw when out of range.
   */
  readRange?: (offset: number, length: number) => Uint8Array;
  /** Size of the whole file when `bytes` is only its beginning. */
  fileSize?: number;
}

const MIN_TFLITE = 16;

export function readTfliteDocument(bytes: Uint8Array, options: TfliteReadOptions = {}): TfliteDocument {
  if (bytes.length < MIN_TFLITE) {
    throw new PrunepackError('TRUNCATED', 'file too short to be a TFLite model', {
      format: 'tflite', location: 'byte 0', expected: `at least ${MIN_TFLITE} bytes`, found: `${bytes.length} bytes`,
    });
  }
  const bb = new CheckedByteBuffer(bytes);
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
      if (field) {
        const start = bb.__vector(b.bb_pos + field);
        inline = bb.byteVector(start, bb.__vector_len(b.bb_pos + field));
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
        if (start + length <= bytes.length) inline = bytes.subarray(start, start + length);
        else if (options.readRange) { const read = options.readRange; load = () => read(start, length); }
        else {
          throw new PrunepackError('TRUNCATED', `buffer ${i} lies past the bytes given to the reader`, {
            format: 'tflite', location: `buffer ${i}`, expected: `offset + size <= ${bytes.length}`, found: String(end),
          });
        }
      }
      buffers.push(new TfliteBuffer(inline, offset, size, load));
    }
    return { model, buffers };
  } catch (e) {
    if (e instanceof PrunepackError) throw e;
    throw new PrunepackError('CORRUPT', `cannot parse the flatbuffer: ${(e as Error).message}`, { format: 'tflite', cause: e });
  }
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
