/**
 * Byte-level mutations of real model files. A seed's structure map (from the format's analyser,
 * or a scan) tells the mutations where the reader's offsets, lengths, counts, strings and shapes
 * are, so most mutations hit structure rather than weight bytes (which a reader never checks).
 */
import type { Random } from './random.js';

/** Where a seed keeps its structure: positions are byte offsets into the seed. */
export interface SeedMap {
  /** Ranges holding weight data, found through the plugin's weight views. */
  weightRanges: Array<[number, number]>;
  /** 32-bit words the reader reads (offsets, lengths, counts, indices, enums). */
  words: number[];
  /** 32-bit forward offsets (the word is the distance to its target). */
  offsets: number[];
  /** 32-bit element counts of vectors (the word before the elements). */
  lengths: number[];
  /** 32-bit byte lengths of strings. */
  strings: number[];
  /** 32-bit shape vectors: position of the first dimension, and the rank. */
  shapes: Array<{ pos: number; rank: number }>;
  /** Shapes of tensors stored sparse (their dense size is declared, not stored). */
  sparseShapes: Array<{ pos: number; rank: number }>;
  /** 64-bit words the reader reads (TFLite Buffer.offset and Buffer.size). */
  words64: number[];
  /** Table starts (32-bit signed offsets to their vtables). */
  tables: number[];
}

export interface Seed {
  path: string;
  bytes: Uint8Array;
  /** Files the seed needs beside it (weight shards): names relative to its folder. */
  companions: string[];
  /** Folder holding copies of the companions: inputs are read as if they lived there. */
  dir?: string;
  map: SeedMap;
  /** Complement of the weight ranges, with prefix sums for uniform picks. */
  structure: Array<[number, number]>;
  structureCumulative: number[];
}

export interface Mutant {
  bytes: Uint8Array;
  /** One line per mutation step, enough to understand a failure without a debugger. */
  steps: string[];
}

export function emptySeedMap(): SeedMap {
  return { weightRanges: [], words: [], offsets: [], lengths: [], strings: [], shapes: [], sparseShapes: [], words64: [], tables: [] };
}

export function makeSeed(path: string, bytes: Uint8Array, map: SeedMap): Seed {
  const ranges = mergeRanges(map.weightRanges);
  const structure: Array<[number, number]> = [];
  let at = 0;
  for (const [s, e] of ranges) {
    if (s > at) structure.push([at, s]);
    at = Math.max(at, e);
  }
  if (at < bytes.length) structure.push([at, bytes.length]);
  const structureCumulative: number[] = [];
  let total = 0;
  for (const [s, e] of structure) structureCumulative.push((total += e - s));
  if (map.words.length === 0) map.words = scanWords(bytes, structure);
  for (const key of ['words', 'offsets', 'lengths', 'strings', 'words64', 'tables'] as const) {
    map[key] = [...new Set(map[key])].filter((p) => p >= 0 && p < bytes.length).sort((a, b) => a - b);
  }
  return { path, bytes, companions: [], map: { ...map, weightRanges: ranges }, structure, structureCumulative };
}

function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = ranges.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** Fallback word map: aligned 32-bit values in the structure that could be offsets or counts. */
function scanWords(bytes: Uint8Array, structure: Array<[number, number]>): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (const [s, e] of structure) {
    for (let p = (s + 3) & ~3; p + 4 <= e && out.length < 200_000; p += 4) {
      const v = view.getUint32(p, true);
      if (v > 0 && v < bytes.length) out.push(p);
    }
  }
  return out;
}

/** A position inside the structure (weights excluded), or anywhere when there is none. */
function structurePosition(seed: Seed, length: number, rng: Random): number {
  const total = seed.structureCumulative[seed.structureCumulative.length - 1] ?? 0;
  if (total === 0 || rng.chance(0.1)) return rng.int(Math.max(1, length));
  const x = rng.int(total);
  let lo = 0;
  let hi = seed.structureCumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (seed.structureCumulative[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  const [s] = seed.structure[lo]!;
  const before = lo > 0 ? seed.structureCumulative[lo - 1]! : 0;
  return Math.min(length - 1, s + (x - before));
}

const INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x40000000, 0x3fffffff];
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40];

/** What one mutation may do to the bytes: edit in place, or return new (shorter or longer) bytes. */
type Mutation = (bytes: Uint8Array, seed: Seed, rng: Random) => { bytes: Uint8Array; step: string } | null;

function u32(bytes: Uint8Array, pos: number): number {
  return (bytes[pos]! | (bytes[pos + 1]! << 8) | (bytes[pos + 2]! << 16) | (bytes[pos + 3]! << 24)) >>> 0;
}

function setU32(bytes: Uint8Array, pos: number, value: number): void {
  const v = value >>> 0;
  bytes[pos] = v & 0xff;
  bytes[pos + 1] = (v >>> 8) & 0xff;
  bytes[pos + 2] = (v >>> 16) & 0xff;
  bytes[pos + 3] = (v >>> 24) & 0xff;
}

function pickWord(list: number[], bytes: Uint8Array, rng: Random): number | undefined {
  for (let tries = 0; tries < 8 && list.length; tries++) {
    const p = rng.pick(list);
    if (p + 4 <= bytes.length) return p;
  }
  return undefined;
}

const bitFlip: Mutation = (bytes, seed, rng) => {
  const flips = rng.weighted([[1, 6], [2, 2], [4, 1], [16, 1]] as const);
  const where: string[] = [];
  for (let i = 0; i < flips; i++) {
    const p = structurePosition(seed, bytes.length, rng);
    const bit = rng.int(8);
    bytes[p]! ^= 1 << bit;
    if (i < 4) where.push(`${p}.${bit}`);
  }
  return { bytes, step: `bit flip x${flips} at ${where.join(' ')}${flips > 4 ? ' ...' : ''}` };
};

const byteSet: Mutation = (bytes, seed, rng) => {
  const count = rng.range(1, 4);
  const where: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = structurePosition(seed, bytes.length, rng);
    const v = rng.chance(0.7) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
    bytes[p] = v;
    where.push(`${p}=0x${v.toString(16)}`);
  }
  return { bytes, step: `set bytes ${where.join(' ')}` };
};

const truncate: Mutation = (bytes, seed, rng) => {
  const mode = rng.int(3);
  const at = mode === 0 ? structurePosition(seed, bytes.length, rng)
    : mode === 1 ? Math.max(0, bytes.length - rng.range(1, 64))
      : rng.int(Math.min(bytes.length, 4096));
  return { bytes: bytes.slice(0, at), step: `truncate to ${at} of ${bytes.length} bytes` };
};

/** Scales a length, count or other word the reader reads. */
const inflateWord: Mutation = (bytes, seed, rng) => {
  const list = rng.chance(0.5) && seed.map.lengths.length ? seed.map.lengths : seed.map.words;
  const p = pickWord(list, bytes, rng);
  if (p === undefined) return null;
  const old = u32(bytes, p);
  const value = rng.weighted<number>([
    [old * 2, 2], [old * 16, 2], [old * 1024, 1], [old + 1, 2], [old - 1, 1], [old + rng.range(2, 64), 1],
    [bytes.length, 1], [bytes.length * 2, 1], [rng.pick(INTERESTING_U32), 3],
  ]);
  setU32(bytes, p, value);
  return { bytes, step: `word at ${p}: ${old} -> ${value >>> 0}` };
};

/** Points an offset just past the end of the file, far away, or backwards. */
const offsetOutside: Mutation = (bytes, seed, rng) => {
  const p = pickWord(seed.map.offsets.length ? seed.map.offsets : seed.map.words, bytes, rng);
  if (p === undefined) return null;
  const old = u32(bytes, p);
  const kind = rng.int(5);
  const value = kind === 0 ? bytes.length - p + rng.int(16)
    : kind === 1 ? bytes.length - p - rng.range(1, 3)
      : kind === 2 ? 0x7ffffff0 + rng.int(16)
        : kind === 3 ? -rng.range(1, Math.max(1, p))
          : 0;
  setU32(bytes, p, value);
  const label = ['past the end', 'into the last bytes', 'far away', 'backwards', 'to itself'][kind];
  return { bytes, step: `offset at ${p}: ${old} -> ${value >>> 0} (${label})` };
};

/** Makes two offsets share a target, or an offset point at the table that holds it (a cycle). */
const shareTarget: Mutation = (bytes, seed, rng) => {
  const offsets = seed.map.offsets;
  const p = pickWord(offsets, bytes, rng);
  if (p === undefined) return null;
  const old = u32(bytes, p);
  if (rng.chance(0.5)) {
    const q = pickWord(offsets, bytes, rng);
    if (q === undefined) return null;
    const target = q + u32(bytes, q);
    setU32(bytes, p, target - p);
    return { bytes, step: `offset at ${p}: ${old} -> ${(target - p) >>> 0} (same target as the offset at ${q}: ${target})` };
  }
  // A table that starts before p: pointing p at it makes a table reachable from itself.
  const tables = seed.map.tables.filter((t) => t < p);
  const t = tables.length ? tables[tables.length - 1 - rng.int(Math.min(tables.length, 4))]! : rng.int(Math.max(1, p));
  setU32(bytes, p, t - p);
  return { bytes, step: `offset at ${p}: ${old} -> ${(t - p) >>> 0} (back to the table at ${t}: a cycle)` };
};

/** Every offset of a vector of tables (or strings) redirected to one target: shared tables, fan-in. */
const fanIn: Mutation = (bytes, seed, rng) => {
  const offsets = seed.map.offsets;
  if (offsets.length < 2) return null;
  const i = rng.int(offsets.length - 1);
  const p = offsets[i]!;
  if (p + 4 > bytes.length) return null;
  const target = p + u32(bytes, p);
  let count = 0;
  // Neighbouring offsets 4 bytes apart are elements of one vector.
  for (let j = i + 1, q = p + 4; j < offsets.length && offsets[j] === q && q + 4 <= bytes.length; j++, q += 4) {
    setU32(bytes, q, target - q);
    count++;
  }
  if (!count) return null;
  return { bytes, step: `${count} offsets after ${p} redirected to its target ${target}` };
};

/** Points a table at another table's vtable, or at garbage. */
const vtableSwap: Mutation = (bytes, seed, rng) => {
  const p = pickWord(seed.map.tables, bytes, rng);
  if (p === undefined) return null;
  const old = u32(bytes, p) | 0;
  const q = pickWord(seed.map.tables, bytes, rng);
  const value = q !== undefined && rng.chance(0.6) ? p - (q - (u32(bytes, q) | 0)) : rng.pick([0, 2, -4, 0x7fffffff, -0x80000000, p + 1]);
  setU32(bytes, p, value);
  return { bytes, step: `vtable offset of the table at ${p}: ${old} -> ${value | 0}` };
};

const SHAPE_VALUES = [0, -1, -2, 0x7fffffff, -0x80000000, 0x40000000, 65536, 1 << 20, 1000003];

/** Shape dimensions set huge, negative, zero, or so their product overflows. */
const shapeDims: Mutation = (bytes, seed, rng) => {
  const list = seed.map.sparseShapes.length && rng.chance(0.3) ? seed.map.sparseShapes : seed.map.shapes;
  const shapes = list.filter((s) => s.pos + 4 * s.rank <= bytes.length && s.rank > 0);
  if (!shapes.length) return null;
  const s = rng.pick(shapes);
  const old: number[] = [];
  for (let i = 0; i < s.rank; i++) old.push(u32(bytes, s.pos + 4 * i) | 0);
  const mode = rng.int(3);
  if (mode === 0) {
    const i = rng.int(s.rank);
    const value = rng.pick(SHAPE_VALUES);
    setU32(bytes, s.pos + 4 * i, value);
    return { bytes, step: `shape at ${s.pos} [${old}]: dim ${i} -> ${value}` };
  }
  // Every dim large: the product passes 2^31, 2^32 or 2^53.
  const big = mode === 1 ? rng.pick([65536, 0x7fffffff, 1 << 24, 3037000500]) : rng.range(2, 1 << 16);
  for (let i = 0; i < s.rank; i++) setU32(bytes, s.pos + 4 * i, big);
  return { bytes, step: `shape at ${s.pos} [${old}]: every dim -> ${big | 0}` };
};

/** A string whose declared length is far beyond the file. */
const hugeString: Mutation = (bytes, seed, rng) => {
  const p = pickWord(seed.map.strings.length ? seed.map.strings : seed.map.lengths, bytes, rng);
  if (p === undefined) return null;
  const old = u32(bytes, p);
  const value = rng.pick([0x7fffffff, 0xffffffff, 0x80000000, bytes.length, bytes.length - p, 1 << 28]);
  setU32(bytes, p, value);
  return { bytes, step: `string length at ${p}: ${old} -> ${value >>> 0}` };
};

/** 64-bit fields (TFLite Buffer.offset/size): past the end, huge, negative, overlapping. */
const word64: Mutation = (bytes, seed, rng) => {
  const list = seed.map.words64.filter((p) => p + 8 <= bytes.length);
  if (!list.length) return null;
  const p = rng.pick(list);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const old = view.getBigUint64(p, true);
  const value = rng.pick([
    BigInt(bytes.length), BigInt(bytes.length) + 1n, BigInt(bytes.length) - 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n,
    2n ** 63n - 1n, 2n ** 64n - 1n, 1n, 2n, old * 2n, old + 1n, 0n,
  ]);
  view.setBigUint64(p, BigInt.asUintN(64, value), true);
  return { bytes, step: `64-bit word at ${p}: ${old} -> ${BigInt.asUintN(64, value)}` };
};

/** Copies a piece of structure over another: duplicated tables, crossed offsets. */
const splice: Mutation = (bytes, seed, rng) => {
  const n = rng.pick([4, 8, 12, 16, 32, 64, 256]);
  if (bytes.length < 2 * n) return null;
  const from = Math.min(bytes.length - n, structurePosition(seed, bytes.length, rng));
  const to = Math.min(bytes.length - n, structurePosition(seed, bytes.length, rng));
  bytes.copyWithin(to, from, from + n);
  return { bytes, step: `copy ${n} bytes from ${from} to ${to}` };
};

/** Inserts or removes bytes: everything after shifts. */
const shift: Mutation = (bytes, seed, rng) => {
  const n = rng.range(1, 16);
  const at = Math.min(structurePosition(seed, bytes.length, rng), Math.max(0, bytes.length - n));
  if (rng.chance(0.5)) {
    const out = new Uint8Array(bytes.length + n);
    out.set(bytes.subarray(0, at));
    out.set(bytes.subarray(at), at + n);
    return { bytes: out, step: `insert ${n} zero bytes at ${at}` };
  }
  const out = new Uint8Array(Math.max(0, bytes.length - n));
  out.set(bytes.subarray(0, at));
  out.set(bytes.subarray(at + n), at);
  return { bytes: out, step: `remove ${n} bytes at ${at}` };
};

export const GENERIC_MUTATIONS: ReadonlyArray<readonly [Mutation, number]> = [
  [bitFlip, 6], [byteSet, 4], [truncate, 2], [inflateWord, 6], [offsetOutside, 4], [shareTarget, 3], [fanIn, 2],
  [vtableSwap, 2], [shapeDims, 4], [hugeString, 2], [word64, 2], [splice, 2], [shift, 1],
];

/** Applies 1-3 generic mutations to a copy of `start`. */
export function mutateGeneric(start: Uint8Array, seed: Seed, rng: Random, steps: string[], count: number): Uint8Array {
  let bytes = start;
  for (let i = 0, tries = 0; i < count && tries < 20; tries++) {
    if (bytes.length === 0) break;
    const mutation = rng.weighted(GENERIC_MUTATIONS);
    const result = mutation(bytes, seed, rng);
    if (!result) continue;
    bytes = result.bytes;
    steps.push(result.step);
    i++;
  }
  return bytes;
}
