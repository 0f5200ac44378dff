/**
 * A weight's zero pattern for the sparse planner: a byte mask (1 = nonzero) and the counts the
 * layout search needs, computed once per weight and shared by every candidate layout.
 *
 * The size of a layout depends on how many distinct prefixes of its traversal hold a nonzero.
 * That number depends only on the SET of dimensions in the prefix, not on their order, so it is
 * the nonzero count of the mask OR-reduced over the other dimensions ("projection"). Projections
 * are memoized by their set of dimensions and each is reduced from a larger one, so a 4-D filter
 * costs 2^4 small reductions instead of one strided pass over the whole mask per traversal order.
 * Reductions and block masks run over 32-bit words where the layout allows it (mask bytes are 0
 * or 1, so OR of words and byte sums of words stay exact).
 */

export interface ZeroMask {
  shape: readonly number[];
  /** 1 where the element (or block) holds a nonzero; a fresh array (byteOffset 0). */
  mask: Uint8Array;
  nonzeros: number;
  /** Projections by bit set of kept dimensions (dimensions of size 1 left out of the key). */
  projections: Map<number, { mask: Uint8Array; count: number }>;
  /** Block masks by "dim:size". */
  blocks: Map<string, ZeroMask>;
  maxCoord?: number[];
}

export function makeZeroMask(mask: Uint8Array, shape: readonly number[], nonzeros = countOnes(mask)): ZeroMask {
  return { shape, mask, nonzeros, projections: new Map(), blocks: new Map() };
}

/** Bit set of the dimensions larger than 1. */
function activeDimensions(shape: readonly number[]): number {
  let bits = 0;
  shape.forEach((d, i) => { if (d > 1) bits |= 1 << i; });
  return bits;
}

/** Number of 1 bytes in a 0/1 byte array. */
export function countOnes(a: Uint8Array): number {
  let n = 0;
  let i = 0;
  if (a.byteOffset % 4 === 0) {
    const words = new Uint32Array(a.buffer, a.byteOffset, a.length >>> 2);
    // Each byte is 0 or 1: multiplying by 0x01010101 sums the four bytes into the top byte.
    for (let w = 0; w < words.length; w++) n += Math.imul(words[w]!, 0x01010101) >>> 24;
    i = words.length * 4;
  }
  for (; i < a.length; i++) n += a[i]!;
  return n;
}

/** Memory byte order: the pair trick in orRuns assumes little-endian (every platform Node ships on but s390x). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * out[(o * blocks + b) * inner + i] = OR over e < size of src[((o * blocks + b) * size + e) * inner + i]:
 * groups of `size` consecutive slices along one dimension (a block mask, or with blocks = 1 the
 * reduction of the whole dimension).
 */
function orGroups(src: Uint8Array, outer: number, blocks: number, size: number, inner: number): Uint8Array {
  const groups = outer * blocks;
  return inner === 1 ? orRuns(src, groups, size) : orSlices(src, groups, size, inner);
}

/** out[g] = OR of src[g * size .. g * size + size). */
function orRuns(src: Uint8Array, groups: number, size: number): Uint8Array {
  const out = new Uint8Array(groups);
  const wordsFit = src.byteOffset % 4 === 0 && src.length % 4 === 0;
  if (wordsFit && size === 2 && LITTLE_ENDIAN) {
    // Two pairs per word: pair k is byte 2k | byte 2k+1; out gets both as one 16-bit store.
    const s = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    const d = new Uint16Array(out.buffer, 0, groups >>> 1);
    for (let w = 0; w < s.length; w++) {
      const x = (s[w]! | (s[w]! >>> 8)) & 0x00010001;
      d[w] = x | (x >>> 8);
    }
  } else if (wordsFit && size % 4 === 0 && size <= 16) {
    // Short runs: OR the words, then fold the four bytes into bit 0 (bytes are 0 or 1).
    const words = size >>> 2;
    const s = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    for (let g = 0, w = 0; g < groups; g++) {
      let x = 0;
      for (let e = 0; e < words; e++, w++) x |= s[w]!;
      x |= x >>> 16;
      out[g] = (x | (x >>> 8)) & 1;
    }
  } else if (wordsFit && size % 4 === 0) {
    // Long runs (whole rows): stop at the first nonzero word.
    const words = size >>> 2;
    const s = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    for (let g = 0; g < groups; g++) {
      for (let w = g * words, end = w + words; w < end; w++) if (s[w] !== 0) { out[g] = 1; break; }
    }
  } else {
    for (let g = 0; g < groups; g++) {
      for (let e = g * size, end = e + size; e < end; e++) if (src[e]) { out[g] = 1; break; }
    }
  }
  return out;
}

/** out[g * inner + i] = OR over e of src[(g * size + e) * inner + i], four bytes at a time when aligned. */
function orSlices(src: Uint8Array, groups: number, size: number, inner: number): Uint8Array {
  const out = new Uint8Array(groups * inner);
  if (inner % 4 === 0 && src.byteOffset % 4 === 0) {
    const words = inner >>> 2;
    const s = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    const d = new Uint32Array(out.buffer, 0, out.length >>> 2);
    for (let g = 0; g < groups; g++) {
      const to = g * words;
      for (let e = 0; e < size; e++) {
        const from = (g * size + e) * words;
        for (let i = 0; i < words; i++) d[to + i]! |= s[from + i]!;
        // Long reductions (a whole dimension): once every byte of the group is 1, the rest of
        // its slices change nothing (pruned weights fill a projection within a few slices).
        if ((e & 15) === 15 && e + 1 < size && saturated(d, to, words)) break;
      }
    }
  } else {
    for (let g = 0; g < groups; g++) {
      const to = g * inner;
      for (let e = 0; e < size; e++) {
        const from = (g * size + e) * inner;
        for (let i = 0; i < inner; i++) out[to + i]! |= src[from + i]!;
      }
    }
  }
  return out;
}

/** True when d[from .. from + words) are all 0x01010101 (every byte of a 0/1 mask set). */
function saturated(d: Uint32Array, from: number, words: number): boolean {
  for (let i = from, end = from + words; i < end; i++) if (d[i] !== 0x01010101) return false;
  return true;
}

function product(shape: readonly number[], from: number, to: number): number {
  let p = 1;
  for (let d = from; d < to; d++) p *= shape[d]!;
  return p;
}

/** The mask OR-reduced over every dimension not in `keep`, and its nonzero count (memoized). */
export function projection(m: ZeroMask, keep: number): { mask: Uint8Array; count: number } {
  const active = activeDimensions(m.shape);
  const key = keep & active;
  if (key === active) return { mask: m.mask, count: m.nonzeros };
  const known = m.projections.get(key);
  if (known) return known;
  // Reduce from the projection that also keeps the lowest active dimension missing here.
  let d = 0;
  while (!((active & ~key) & (1 << d))) d++;
  const parent = projection(m, key | (1 << d));
  const shape = m.shape.map((size, i) => (((key | (1 << d)) & (1 << i)) ? size : 1));
  const mask = orGroups(parent.mask, product(shape, 0, d), 1, shape[d]!, product(shape, d + 1, shape.length));
  const result = { mask, count: countOnes(mask) };
  m.projections.set(key, result);
  return result;
}

/**
 * For the traversal `perm` of the mask's dimensions: counts[l] = number of distinct prefixes
 * (coordinates of levels 0..l) under which a nonzero lies.
 */
export function prefixCounts(m: ZeroMask, perm: readonly number[]): Float64Array {
  const counts = new Float64Array(perm.length);
  let keep = 0;
  for (let l = 0; l < perm.length - 1; l++) {
    keep |= 1 << perm[l]!;
    counts[l] = projection(m, keep).count;
  }
  counts[perm.length - 1] = m.nonzeros;
  return counts;
}

/** Per dimension: largest coordinate holding a nonzero (-1 when none). */
export function maxCoordinates(m: ZeroMask): number[] {
  if (!m.maxCoord) {
    m.maxCoord = m.shape.map((size, d) => {
      if (m.nonzeros === 0) return -1;
      if (size === 1) return 0;
      const line = projection(m, 1 << d).mask;
      let last = size - 1;
      while (!line[last]) last--;
      return last;
    });
  }
  return m.maxCoord;
}

/**
 * The mask of blocks of `size` along dimension `dim`: a block is nonzero when any element is.
 * Built from the largest memoized block mask along `dim` whose size divides `size`.
 */
export function blockMask(m: ZeroMask, dim: number, size: number): ZeroMask {
  const key = `${dim}:${size}`;
  const known = m.blocks.get(key);
  if (known) return known;
  let from = m;
  let fromSize = 1;
  for (const [k, b] of m.blocks) {
    const [d, s] = k.split(':').map(Number) as [number, number];
    if (d === dim && s < size && size % s === 0 && s > fromSize) { from = b; fromSize = s; }
  }
  const step = size / fromSize;
  const shape = [...m.shape];
  shape[dim] = shape[dim]! / size;
  const mask = orGroups(from.mask, product(m.shape, 0, dim), shape[dim]!, step, product(m.shape, dim + 1, m.shape.length));
  const result = makeZeroMask(mask, shape);
  m.blocks.set(key, result);
  return result;
}
