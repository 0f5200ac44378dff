/** Encoder of the pool section (./pool.ts, docs/pack-format.md "Pool"). Writer side only. */
import { deflateSync } from 'fflate';
import type { DeflateLevel } from '../sparsity/codecs.js';
import {
  CODING_DEFLATE, CODING_RANGE, CODING_RANGE_CONTEXT, CODING_STORED, MODE_DENSE, MODE_MASK_FILL, MODE_MASK_ZERO, POOL_WIDTHS,
} from './pool.js';
import { rangeEncodeBytes } from './range-encoder.js';
import { ByteWriter } from './varint.js';

export interface PoolItem {
  bytes: Uint8Array;
  width: number;
}

/** The most frequent element of a 1- or 2-byte weight (else zero), and how often it occurs. */
function fillOf(bytes: Uint8Array, width: number): { fill: number; count: number } {
  const n = bytes.length / width;
  if (width > 2) {
    let zeros = 0;
    for (let k = 0; k < n; k++) {
      let z = true;
      for (let j = 0; j < width; j++) if (bytes[k * width + j] !== 0) { z = false; break; }
      if (z) zeros++;
    }
    return { fill: 0, count: zeros };
  }
  const counts = new Uint32Array(width === 1 ? 256 : 65536);
  for (let k = 0; k < n; k++) counts[width === 1 ? bytes[k]! : bytes[2 * k]! | (bytes[2 * k + 1]! << 8)]!++;
  let fill = 0;
  for (let v = 1; v < counts.length; v++) if (counts[v]! > counts[fill]!) fill = v;
  return { fill, count: counts[fill]! };
}

/**
 * A range-coded stream is chosen only when it is at most this share of the best stored or DEFLATE
 * coding. The range decoder takes ~7 ns per bit (~55 ns per byte, the same on every stream of the
 * bench packs), far slower than inflating: a plane that it shrinks by a few percent costs decode
 * time out of proportion (the float32 plane below the exponent, coded with context, saved 4.7% of
 * that plane in PaddleOCR rec and 5.8% in det, 0.1-0.2% of their packs). With this share the
 * masks of the bench packs are deflated (range coding was 0-6% smaller) and the exponent planes
 * stay range-coded (deflated, the pools would be 2.5-6 KB larger); pool decoding took 0.55-0.86x
 * the time, for packs 0.1-4% larger.
 */
export const RANGE_MAX_SHARE = 0.92;

/**
 * The smallest coding of one stream (`context` is the stream above, for planes below the top),
 * except that the slow range coder must save at least 1 - RANGE_MAX_SHARE of the fast codings.
 */
function writeStream(w: ByteWriter, raw: Uint8Array, context: Uint8Array | null, level: DeflateLevel): void {
  let coding = CODING_STORED;
  let best = raw;
  const consider = (c: number, bytes: Uint8Array) => { if (bytes.length < best.length) { coding = c; best = bytes; } };
  if (raw.length > 0) {
    consider(CODING_DEFLATE, deflateSync(raw, { level }));
    const slowLimit = best.length * RANGE_MAX_SHARE;
    const considerSlow = (c: number, bytes: Uint8Array) => { if (bytes.length <= slowLimit) consider(c, bytes); };
    considerSlow(CODING_RANGE, rangeEncodeBytes(raw, null));
    if (context) considerSlow(CODING_RANGE_CONTEXT, rangeEncodeBytes(raw, context));
  }
  w.u8(coding).varint(raw.length).varint(best.length).bytes(best);
}

/** Encodes the pool: each item becomes dense values or a mask of non-fill elements plus their values. */
export function encodePool(items: readonly PoolItem[], level: DeflateLevel): Uint8Array {
  const modes = new ByteWriter();
  const masks = new ByteWriter();
  const values = new Map<number, ByteWriter>();
  for (const { bytes, width } of items) {
    const n = bytes.length / width;
    const { fill, count } = fillOf(bytes, width);
    // A mask costs about n/8 bytes (less after coding); it pays when it drops more value bytes.
    const masked = count * width > n / 8 + 2 * width;
    const out = values.get(width) ?? new ByteWriter();
    values.set(width, out);
    if (!masked) {
      modes.u8(MODE_DENSE);
      out.bytes(bytes);
      continue;
    }
    const fillBytes = new Uint8Array(width);
    for (let j = 0; j < width; j++) fillBytes[j] = (fill >>> (8 * j)) & 0xff;
    if (fill === 0) modes.u8(MODE_MASK_ZERO);
    else modes.u8(MODE_MASK_FILL).bytes(fillBytes);
    const mask = new Uint8Array(Math.ceil(n / 8));
    for (let k = 0; k < n; k++) {
      let isFill = true;
      for (let j = 0; j < width; j++) if (bytes[k * width + j] !== fillBytes[j]) { isFill = false; break; }
      if (isFill) continue;
      mask[k >>> 3]! |= 1 << (k & 7);
      out.bytes(bytes.subarray(k * width, (k + 1) * width));
    }
    masks.bytes(mask);
  }
  const w = new ByteWriter();
  writeStream(w, modes.finish(), null, level);
  writeStream(w, masks.finish(), null, level);
  for (const width of POOL_WIDTHS) {
    const v = values.get(width)?.finish();
    if (!v || v.length === 0) continue;
    const n = v.length / width;
    let above: Uint8Array | null = null;
    for (let j = width - 1; j >= 0; j--) {
      const plane = new Uint8Array(n);
      for (let k = 0, s = j; k < n; k++, s += width) plane[k] = v[s]!;
      writeStream(w, plane, above, level);
      above = plane;
    }
  }
  return w.finish();
}
