/**
 * The parsed TFLite document: the generated object-API tree for everything small
 * (operators, tensors, signatures, metadata) plus buffers kept as byte views, so reading
 * then writing never turns weight bytes into JavaScript arrays.
 */
import * as flatbuffers from 'flatbuffers';
import { ModelT } from '../../schemas/generated/tflite/tflite/model.js';
import { SparsityParametersT } from '../../schemas/generated/tflite/tflite/sparsity-parameters.js';
import { DimensionMetadata } from '../../schemas/generated/tflite/tflite/dimension-metadata.js';
import { DimensionType } from '../../schemas/generated/tflite/tflite/dimension-type.js';
import { SparseIndexVector } from '../../schemas/generated/tflite/tflite/sparse-index-vector.js';
import { SparsityParameters } from '../../schemas/generated/tflite/tflite/sparsity-parameters.js';
import { Int32Vector } from '../../schemas/generated/tflite/tflite/int32vector.js';
import { Uint16Vector } from '../../schemas/generated/tflite/tflite/uint16vector.js';
import { Uint8Vector } from '../../schemas/generated/tflite/tflite/uint8vector.js';
import type { IndexVector, SparsityParams } from '../../src/sparsity/types.js';

/** One entry of Model.buffers. */
export class TfliteBuffer {
  /**
   * @param inline bytes of the `data` vector (a view into the input), or null
   * @param offset Buffer.offset as stored (> 1 means data lives at that file offset)
   * @param size Buffer.size as stored
   * @param load reads `size` bytes at `offset` when they are not in memory (files over 2 GB)
   */
  constructor(
    private inline: Uint8Array | null,
    readonly offset: bigint = 0n,
    readonly size: bigint = 0n,
    private load?: () => Uint8Array,
  ) {}

  /** True when the buffer holds bytes (inline or at an offset). */
  get hasData(): boolean {
    return (this.inline !== null && this.inline.length > 0) || (this.offset > 1n && this.size > 0n);
  }

  get byteLength(): number {
    return this.inline ? this.inline.length : this.offset > 1n ? Number(this.size) : 0;
  }

  /** The buffer's bytes; loaded on first use when they live past the flatbuffer. */
  get bytes(): Uint8Array {
    if (this.inline) return this.inline;
    if (this.offset > 1n && this.load) {
      this.inline = this.load();
      this.load = undefined;
      return this.inline;
    }
    return new Uint8Array(0);
  }

  static of(bytes: Uint8Array): TfliteBuffer {
    return new TfliteBuffer(bytes);
  }
}

export interface TfliteDocument {
  /** Object-API model; its `buffers` list is empty and replaced by `buffers` below. */
  model: ModelT;
  buffers: TfliteBuffer[];
}

/**
 * Sparsity parameters held as typed arrays. Stands in for SparsityParametersT inside a
 * TensorT so the generated pack code writes it without converting index vectors.
 */
export class TypedSparsityT extends SparsityParametersT {
  constructor(readonly params: SparsityParams) {
    super(params.traversalOrder, params.blockMap, []);
  }

  override pack(builder: flatbuffers.Builder): flatbuffers.Offset {
    const p = this.params;
    const dims = p.dimMetadata.map((d) => {
      if (d.format === 'DENSE') {
        return DimensionMetadata.createDimensionMetadata(builder, DimensionType.DENSE, d.denseSize, SparseIndexVector.NONE, 0, SparseIndexVector.NONE, 0);
      }
      const [segmentsType, segments] = packIndexVector(builder, d.segments);
      const [indicesType, indices] = packIndexVector(builder, d.indices);
      return DimensionMetadata.createDimensionMetadata(builder, DimensionType.SPARSE_CSR, 0, segmentsType, segments, indicesType, indices);
    });
    const traversal = SparsityParameters.createTraversalOrderVector(builder, p.traversalOrder);
    const blockMap = SparsityParameters.createBlockMapVector(builder, p.blockMap);
    const dimVector = SparsityParameters.createDimMetadataVector(builder, dims);
    return SparsityParameters.createSparsityParameters(builder, traversal, blockMap, dimVector);
  }
}

function packIndexVector(builder: flatbuffers.Builder, v: IndexVector): [SparseIndexVector, flatbuffers.Offset] {
  if (v instanceof Uint8Array) {
    builder.startVector(1, v.length, 4); // Uint8/Uint16 index vectors must be 4-byte aligned
    for (let i = v.length - 1; i >= 0; i--) builder.addInt8(v[i]!);
    return [SparseIndexVector.Uint8Vector, Uint8Vector.createUint8Vector(builder, builder.endVector())];
  }
  if (v instanceof Uint16Array) {
    builder.startVector(2, v.length, 4);
    for (let i = v.length - 1; i >= 0; i--) builder.addInt16(v[i]!);
    return [SparseIndexVector.Uint16Vector, Uint16Vector.createUint16Vector(builder, builder.endVector())];
  }
  const values = Int32Vector.createValuesVector(builder, v);
  return [SparseIndexVector.Int32Vector, Int32Vector.createInt32Vector(builder, values)];
}
