/**
 * The pack's pool section (docs/pack-format.md, "Pool"): every small weight of a pack in one
 * set of shared streams (element masks, then byte planes of the values per element width), so
 * that they share entropy-coder statistics instead of paying a blob header and DEFLATE tables
 * each. Decode side; the encoder is ./pool-encode.ts. Browser-safe.
 */
import { PrunepackError } from '../errors.js';
import { rangeDecodeBytes } from './range-coder.js';
import { ByteReader } from './varint.js';
import type { RawInflate } from '../../converters/tfjs/sparse-decode.js';
import { inflateInto, isTooLong } from '../../converters/tfjs/inflate.js';

export const CODING_STORED = 0;
export const CODING_DEFLATE = 1;
export const CODING_RANGE = 2;
/** Range coder with one model per value of the same element's byte in the previous stream. */
export const CODING_RANGE_CONTEXT = 3;

export const MODE_DENSE = 0;
export const MODE_MASK_ZERO = 1;
export const MODE_MASK_FILL = 2;

export const POOL_WIDTHS = [1, 2, 4, 8] as const;

/** One pooled weight: its restored range (zero-filled on entry) and element width. */
export interface PoolTarget {
  out: Uint8Array;
  width: number;
  where: string;
}

/**
 * Raw DEFLATE that must inflate to exactly `raw` bytes: `inflate` when given (one spare byte
 * shows an over-long stream), else the loader's own decoder into `raw + 1` bytes (`bound`: the
 * stream may be shorter, up to `raw` bytes).
 */
export function inflateExact(stored: Uint8Array, raw: number, where: string, inflate?: RawInflate, bound = false): Uint8Array {
  let got: Uint8Array | null = null;
  try {
    got = inflate?.(stored, raw) ?? null;
    if (!got) {
      got = new Uint8Array(raw + 1);
      got = got.subarray(0, inflateInto(stored, got));
    }
  } catch (e) {
    if (!isTooLong(e)) {
      throw new PrunepackError('CORRUPT', `${where} is not valid DEFLATE data (${(e as Error).message})`, {
        format: 'prunepack pack', location: where, expected: 'a raw DEFLATE stream', found: `${stored.length} undecodable bytes`, cause: e,
      });
    }
    got = null;
  }
  const length = got?.length ?? raw + 1;
  if (length === raw || (bound && length < raw)) return got!;
  throw new PrunepackError('CORRUPT', `${where} inflates to the wrong length`, {
    format: 'prunepack pack', location: where, expected: `${bound ? '<= ' : ''}${raw} bytes`, found: length > raw ? `more than ${raw}` : `${length}`,
  });
}

/** Reads one stream record (coding, raw length, stored length, payload) and decodes it. */
function readStream(reader: ByteReader, expectedRaw: number | null, maxRaw: number, previous: Uint8Array | null, name: string, inflate?: RawInflate): Uint8Array {
  const coding = reader.u8();
  const raw = reader.varint();
  const stored = reader.varint();
  if (expectedRaw !== null ? raw !== expectedRaw : raw > maxRaw) {
    throw reader.fail(`${name} stream has the wrong length`, expectedRaw !== null ? `${expectedRaw} bytes` : `<= ${maxRaw} bytes`, `${raw} bytes`);
  }
  const payload = reader.take(stored);
  const where = `${reader.what} ${name} stream`;
  switch (coding) {
    case CODING_STORED:
      if (stored !== raw) throw reader.fail(`${name} stream is stored, so its two lengths must agree`, String(raw), String(stored));
      return payload;
    case CODING_DEFLATE:
      return inflateExact(payload, raw, where, inflate);
    case CODING_RANGE:
    case CODING_RANGE_CONTEXT: {
      const context = coding === CODING_RANGE_CONTEXT ? previous : null;
      if (coding === CODING_RANGE_CONTEXT && (!previous || previous.length !== raw)) {
        throw reader.fail(`${name} stream needs the stream above it as context`, 'a plane below the top plane', name);
      }
      const out = new Uint8Array(raw);
      if (rangeDecodeBytes(payload, out, context) !== stored) throw reader.fail(`${name} stream is not a valid range-coded stream of ${stored} bytes`);
      return out;
    }
    default:
      throw reader.fail(`${name} stream has an unknown coding`, '0..3', String(coding));
  }
}

const POPCOUNT = (() => {
  const t = new Uint8Array(256);
  for (let b = 1; b < 256; b++) t[b] = (b & 1) + t[b >>> 1]!;
  return t;
})();

/** Decodes a pool section into its targets (in index order). Throws CORRUPT on any inconsistency. */
export function decodePool(section: Uint8Array, targets: readonly PoolTarget[], inflate?: RawInflate): void {
  const reader = new ByteReader(section, 'pool');
  const maxModes = targets.reduce((n, t) => n + 1 + t.width, 0);
  const modes = new ByteReader(readStream(reader, null, maxModes, null, 'modes', inflate), 'pool modes');
  // Modes, fill elements and mask lengths.
  const mode: number[] = [];
  const fills: (Uint8Array | null)[] = [];
  let maskBytes = 0;
  for (const t of targets) {
    const m = modes.u8();
    if (m > MODE_MASK_FILL) throw modes.fail(`unknown mode of ${t.where}`, '0..2', String(m));
    mode.push(m);
    fills.push(m === MODE_MASK_FILL ? modes.take(t.width) : null);
    if (m !== MODE_DENSE) maskBytes += Math.ceil(t.out.length / t.width / 8);
  }
  if (modes.remaining !== 0) throw modes.fail('has trailing bytes', '0', String(modes.remaining));
  const mask = readStream(reader, maskBytes, maskBytes, null, 'mask', inflate);
  // Value counts per width.
  const counts = new Map<number, number>();
  let maskAt = 0;
  targets.forEach((t, i) => {
    const n = t.out.length / t.width;
    let values = n;
    if (mode[i] !== MODE_DENSE) {
      const bytes = Math.ceil(n / 8);
      values = 0;
      for (let b = maskAt; b < maskAt + bytes; b++) values += POPCOUNT[mask[b]!]!;
      if (n & 7 && mask[maskAt + bytes - 1]! >>> (n & 7)) throw reader.fail(`mask padding bits of ${t.where} are set`);
      maskAt += bytes;
    }
    counts.set(t.width, (counts.get(t.width) ?? 0) + values);
  });
  const planes = new Map<number, Uint8Array[]>();
  for (const w of POOL_WIDTHS) {
    const count = counts.get(w) ?? 0;
    if (count === 0) continue;
    const list: Uint8Array[] = [];
    let previous: Uint8Array | null = null;
    for (let j = w - 1; j >= 0; j--) {
      previous = readStream(reader, count, count, previous, `width ${w} plane ${j}`, inflate);
      list[j] = previous;
    }
    planes.set(w, list);
  }
  if (reader.remaining !== 0) throw reader.fail('has trailing bytes', '0', String(reader.remaining));
  // Scatter.
  const cursor = new Map<number, number>();
  maskAt = 0;
  targets.forEach((t, i) => {
    const w = t.width;
    const n = t.out.length / w;
    const list = planes.get(w) ?? [];
    let p = cursor.get(w) ?? 0;
    const out = t.out;
    if (mode[i] === MODE_DENSE) {
      for (let j = 0; j < w; j++) {
        const plane = list[j]!;
        for (let k = 0, d = j; k < n; k++, d += w) out[d] = plane[p + k]!;
      }
      p += n;
    } else {
      const fill = fills[i];
      if (fill) {
        // One element, then doubled until the range is full.
        out.set(fill, 0);
        for (let filled = w; filled < out.length; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, out.length - filled));
      } else {
        out.fill(0);
      }
      // Only the set bits are visited (lowest first); the padding bits were checked to be 0.
      const bytes = Math.ceil(n / 8);
      const p0 = list[0]!;
      const p1 = list[1]!;
      const p2 = list[2]!;
      const p3 = list[3]!;
      for (let b = 0; b < bytes; b++) {
        let bits = mask[maskAt + b]!;
        while (bits !== 0) {
          const low = bits & -bits;
          bits ^= low;
          const k = (b << 3) + 31 - Math.clz32(low);
          if (w === 1) out[k] = p0[p]!;
          else if (w === 4) { const d = k << 2; out[d] = p0[p]!; out[d + 1] = p1[p]!; out[d + 2] = p2[p]!; out[d + 3] = p3[p]!; }
          else for (let j = 0; j < w; j++) out[k * w + j] = list[j]![p]!;
          p++;
        }
      }
      maskAt += bytes;
    }
    cursor.set(w, p);
  });
}
