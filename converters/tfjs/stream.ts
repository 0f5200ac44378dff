/**
 * The weights stream: the concatenation of every shard of every manifest group, in manifest
 * order, with no padding (a tensor may span shards). Weights are placed by walking the manifest:
 * each entry takes its dense stored size, strings their scanned size, sparse entries their
 * marker's byteLength. Browser-safe.
 */
import { PrunepackError } from '../../src/errors.js';
import type { ManifestWeight } from './manifest.js';

export class ShardStream {
  readonly shards: readonly Uint8Array[];
  /** starts[i]: stream offset of shard i; starts[shards.length] = length. */
  readonly starts: Float64Array;
  readonly length: number;

  constructor(shards: readonly Uint8Array[]) {
    this.shards = shards;
    this.starts = new Float64Array(shards.length + 1);
    for (let i = 0; i < shards.length; i++) this.starts[i + 1] = this.starts[i]! + shards[i]!.length;
    this.length = this.starts[shards.length]!;
  }

  /** Index of the shard holding stream offset `offset` (< length). */
  private shardAt(offset: number): number {
    let lo = 0;
    let hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= offset) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  /** Bytes [offset, offset + length): a view when they lie in one shard, else one copy. */
  bytes(offset: number, length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    const s = this.shardAt(offset);
    const local = offset - this.starts[s]!;
    const shard = this.shards[s]!;
    if (local + length <= shard.length) return shard.subarray(local, local + length);
    const out = new Uint8Array(length);
    this.copyTo(offset, length, out, 0);
    return out;
  }

  /** Views of [offset, offset + length), one per shard it touches (no copy). */
  pieces(offset: number, length: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (length === 0) return out;
    let s = this.shardAt(offset);
    let local = offset - this.starts[s]!;
    for (let done = 0; done < length; s++, local = 0) {
      const shard = this.shards[s]!;
      const n = Math.min(shard.length - local, length - done);
      out.push(shard.subarray(local, local + n));
      done += n;
    }
    return out;
  }

  /** Copies [offset, offset + length) into out at `at`. */
  copyTo(offset: number, length: number, out: Uint8Array, at: number): void {
    if (length === 0) return;
    let s = this.shardAt(offset);
    let local = offset - this.starts[s]!;
    let done = 0;
    while (done < length) {
      const shard = this.shards[s]!;
      const n = Math.min(shard.length - local, length - done);
      out.set(shard.subarray(local, local + n), at + done);
      done += n;
      s++;
      local = 0;
    }
  }

  /** Little-endian u32 at `offset` (may span shards). */
  u32(offset: number): number {
    const b = this.bytes(offset, 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }
}

export interface WeightPlacement {
  /** Stream offset and length of the bytes this entry occupies (0 for parts of a blob). */
  offset: number;
  length: number;
}

/**
 * Places every weight in the stream; throws TRUNCATED when the shards end early and CORRUPT
 * when they hold more bytes than the manifest describes.
 */
export function placeWeights(weights: readonly ManifestWeight[], stream: ShardStream, where = 'weights'): WeightPlacement[] {
  const out: WeightPlacement[] = [];
  let offset = 0;
  for (const w of weights) {
    let length: number;
    if (w.sparse) length = w.sparse.byteLength;
    else if (w.storage === 'string') length = stringBytes(w, stream, offset);
    else length = w.denseBytes!;
    if (offset + length > stream.length) {
      throw new PrunepackError('TRUNCATED', 'the weight shards end inside a weight', {
        format: 'tfjs', location: `${w.name} (stream byte ${offset})`,
        expected: `${length} bytes${w.sparse ? ' of sparse blob' : ''} (shards totalling >= ${offset + length} bytes)`,
        found: `${Math.max(0, stream.length - offset)} bytes left (shards total ${stream.length})`,
        hint: 'A shard file is missing or was cut short',
      });
    }
    out.push({ offset, length });
    offset += length;
  }
  if (offset !== stream.length) {
    throw new PrunepackError('CORRUPT', 'the weight shards hold more bytes than the manifest describes', {
      format: 'tfjs', location: `${where} (stream byte ${offset})`, expected: `${offset} bytes in all shards`, found: `${stream.length} bytes`,
      hint: 'A shard belongs to another model, or the manifest lost entries',
    });
  }
  return out;
}

/** Bytes of a string tensor at `offset`: per element a u32-LE length and that many UTF-8 bytes. */
function stringBytes(w: ManifestWeight, stream: ShardStream, offset: number): number {
  const left = stream.length - offset;
  if (w.elements * 4 > left) {
    throw new PrunepackError('TRUNCATED', 'the weight shards end inside a string tensor', {
      format: 'tfjs', location: `${w.name} (stream byte ${offset})`, expected: `>= ${w.elements * 4} bytes of length prefixes`, found: `${left} bytes left`,
    });
  }
  let at = offset;
  for (let i = 0; i < w.elements; i++) {
    if (at + 4 > stream.length) {
      throw new PrunepackError('TRUNCATED', 'the weight shards end inside a string tensor', {
        format: 'tfjs', location: `${w.name} element ${i} (stream byte ${at})`, expected: '4 bytes of length', found: `${stream.length - at} bytes left`,
      });
    }
    const n = stream.u32(at);
    if (at + 4 + n > stream.length) {
      throw new PrunepackError('TRUNCATED', 'a string element runs past the end of the weight shards', {
        format: 'tfjs', location: `${w.name} element ${i} (stream byte ${at})`, expected: `${n} bytes of UTF-8`, found: `${stream.length - at - 4} bytes left`,
      });
    }
    at += 4 + n;
  }
  return at - offset;
}
