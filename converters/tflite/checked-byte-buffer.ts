import * as flatbuffers from 'flatbuffers';
import { PrunepackError } from '../../src/errors.js';

/**
 * Budget units per file byte: a unit is one field read, or about 8 bytes of what the reader
 * builds from it (a 64-bit read makes a BigInt: 4 units; a string costs a unit per 4 bytes).
 * Honest files use at most about one unit per byte of structure (their weights cost nothing: they
 * stay views), so 4 leaves a wide margin while a file whose tables all share one table, vector
 * or string cannot unpack into more than ~32 bytes of objects per file byte.
 */
export const READ_BUDGET_PER_BYTE = 4;
/** Every file may spend at least this much (small files with much structure). */
export const MIN_READ_BUDGET = 1 << 20;

/**
 * A flatbuffers ByteBuffer that checks every read against the real bytes, so generated
 * accessors cannot read past the end, follow a negative offset, or loop over a vector
 * longer than the file. A read budget proportional to the input size bounds the total
 * work (a small hostile file whose tables all point at one large vector or string cannot
 * make the reader allocate gigabytes).
 */
export class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private readonly size: number;
  private reads = 0;
  private readonly readBudget: number;

  /**
   * @param bytes the file (or, with `ensure`, an image of it whose pages are filled on demand)
   * @param ensure makes bytes [offset, offset + length) of `bytes` valid before they are read
   *   (a paged image: src/io/paged.ts); called after the bounds check
   */
  constructor(bytes: Uint8Array, readBudgetPerByte = READ_BUDGET_PER_BYTE, private readonly ensure?: (offset: number, length: number) => void) {
    super(bytes);
    this.size = bytes.length;
    this.readBudget = Math.max(MIN_READ_BUDGET, bytes.length * readBudgetPerByte);
  }

  private check(offset: number, width: number, cost = 1): void {
    if (!(offset >= 0 && offset + width <= this.size)) {
      throw corrupt(`a ${width}-byte field lies outside the file`, offset, `offset + ${width} <= ${this.size}`, String(offset));
    }
    this.reads += cost;
    if (this.reads > this.readBudget) {
      throw corrupt('the flatbuffer references far more data than the file holds (shared or cyclic tables)', offset,
        `at most ${this.readBudget} budget units (field reads) for a ${this.size}-byte file`, 'more');
    }
    this.ensure?.(offset, width);
  }

  override readUint8(offset: number): number {
    this.check(offset, 1);
    return super.readUint8(offset);
  }
  override readInt8(offset: number): number {
    return (this.readUint8(offset) << 24) >> 24;
  }
  override readUint16(offset: number): number {
    this.check(offset, 2);
    return super.readUint16(offset);
  }
  override readInt16(offset: number): number {
    return (this.readUint16(offset) << 16) >> 16;
  }
  override readInt32(offset: number): number {
    this.check(offset, 4);
    return super.readInt32(offset);
  }
  override readUint32(offset: number): number {
    return this.readInt32(offset) >>> 0;
  }
  override readInt64(offset: number): bigint {
    this.check(offset, 8, 4);
    return super.readInt64(offset);
  }
  override readUint64(offset: number): bigint {
    this.check(offset, 8, 4);
    return super.readUint64(offset);
  }
  override readFloat32(offset: number): number {
    this.check(offset, 4);
    return super.readFloat32(offset);
  }
  override readFloat64(offset: number): number {
    this.check(offset, 8);
    return super.readFloat64(offset);
  }

  /** Target of an unsigned forward offset stored at `offset`. */
  private target(offset: number): number {
    const relative = this.readInt32(offset);
    const target = offset + relative;
    if (relative < 0 || target >= this.size) {
      throw corrupt('an offset points outside the file', offset, `a target inside 0..${this.size - 1}`, String(target));
    }
    return target;
  }

  override __offset(bbPos: number, vtableOffset: number): number {
    const vtable = bbPos - this.readInt32(bbPos);
    const vtableSize = this.readInt16(vtable);
    if (vtableSize < 4 || (vtableSize & 1)) {
      throw corrupt('a table has an invalid vtable', vtable, 'an even vtable size >= 4', String(vtableSize));
    }
    if (vtableOffset >= vtableSize) return 0;
    const field = this.readInt16(vtable + vtableOffset);
    if (field < 0) throw corrupt('a table field has a negative offset', vtable + vtableOffset, '>= 0', String(field));
    return field;
  }

  override __indirect(offset: number): number {
    return this.target(offset);
  }

  override __union(t: flatbuffers.Table, offset: number): flatbuffers.Table {
    t.bb_pos = this.target(offset);
    t.bb = this;
    return t;
  }

  override __string(offset: number, encoding?: flatbuffers.Encoding): string | Uint8Array {
    const start = this.target(offset);
    const length = this.readUint32(start);
    if (start + 4 + length > this.size) {
      throw corrupt('a string runs past the end of the file', start, `length <= ${this.size - start - 4}`, String(length));
    }
    // Decoding allocates the whole string: charge it, or one string shared by every table would not count.
    this.check(start, 4, Math.ceil(length / 4));
    this.ensure?.(start + 4, length);
    return super.__string(offset, encoding);
  }

  override __vector(offset: number): number {
    return this.target(offset) + 4;
  }

  override __vector_len(offset: number): number {
    const start = this.target(offset);
    const length = this.readUint32(start);
    // Every element takes at least one byte: a longer vector cannot fit in the file.
    if (start + 4 + length > this.size) {
      throw corrupt('a vector is longer than the rest of the file', start, `at most ${this.size - start - 4} elements`, String(length));
    }
    return length;
  }

  /** Bounds-checked byte view of a [u8] vector field (no copy). */
  byteVector(vectorStart: number, length: number): Uint8Array {
    if (vectorStart < 0 || vectorStart + length > this.size) {
      throw corrupt('a byte vector runs past the end of the file', vectorStart, `end <= ${this.size}`, String(vectorStart + length));
    }
    this.ensure?.(vectorStart, length);
    return this.bytes().subarray(vectorStart, vectorStart + length);
  }
}

function corrupt(what: string, offset: number, expected: string, found: string): PrunepackError {
  return new PrunepackError('CORRUPT', what, {
    format: 'tflite',
    location: `byte ${offset}`,
    expected,
    found,
    hint: 'The file is truncated or damaged; re-export it from the original model',
  });
}
