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
   * @param load reads the bytes when they are not in memory: `size` bytes at `offset` (files
   *   over 2 GB), or the `data` vector of a file read in pages (`lazyLength` bytes)
   * @param lazyLength length of a `data` vector left on disk (paged reading), with `load`
   */
  constructor(
    private inline: Uint8Array | null,
    readonly offset: bigint = 0n,
    readonly size: bigint = 0n,
    private readonly load?: () => Uint8Array,
    private readonly lazyLength?: number,
  ) {}

  /** True when the buffer holds bytes (inline or at an offset). */
  get hasData(): boolean {
    return this.byteLength > 0;
  }

  get byteLength(): number {
    if (this.inline) return this.inline.length;
    if (this.lazyLength !== undefined) return this.lazyLength;
    return this.offset > 1n ? Number(this.size) : 0;
  }

  /** The buffer's bytes; loaded on first use (and kept until `release`) when they are on disk. */
  get bytes(): Uint8Array {
    if (this.inline) return this.inline;
    if (this.load && (this.offset > 1n || this.lazyLength !== undefined)) {
      this.inline = this.load();
      return this.inline;
    }
    return new Uint8Array(0);
  }

  /** Drops bytes loaded from disk (they are read again on the next use); no effect on others. */
  release(): void {
    if (this.load) this.inline = null;
  }

  static of(bytes: Uint8Array): TfliteBuffer {
    return new TfliteBuffer(bytes);
  }

  /** A `data` vector of `length` bytes left on disk, read by `load` when used. */
  static lazy(length: number, load: () => Uint8Array): TfliteBuffer {
    return new TfliteBuffer(null, 0n, 0n, load, length);
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
  const type = v instanceof Uint8Array ? SparseIndexVector.Uint8Vector : v instanceof Uint16Array ? SparseIndexVector.Uint16Vector : SparseIndexVector.Int32Vector;
  // Uint8/Uint16 index vectors must be 4-byte aligned (as TFLite's exporter writes them).
  builder.startVector(v.BYTES_PER_ELEMENT, v.length, 4);
  if (LITTLE_ENDIAN) {
    // One copy of the whole vector (flatbuffers are little-endian, like this machine); index
    // vectors of big weights hold millions of entries.
    const space = (builder as unknown as { space: number }).space - v.byteLength;
    (builder as unknown as { space: number }).space = space;
    builder.dataBuffer().bytes().set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), space);
  } else {
    for (let i = v.length - 1; i >= 0; i--) {
      if (v instanceof Uint8Array) builder.addInt8(v[i]!); else if (v instanceof Uint16Array) builder.addInt16(v[i]!); else builder.addInt32(v[i]!);
    }
  }
  const vector = builder.endVector();
  const table = type === SparseIndexVector.Uint8Vector ? Uint8Vector.createUint8Vector(builder, vector)
    : type === SparseIndexVector.Uint16Vector ? Uint16Vector.createUint16Vector(builder, vector) : Int32Vector.createInt32Vector(builder, vector);
  return [type, table];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
