/**
 * Decode-only reader of prunepack sparse blobs ("PPSP" version 1, docs/sparse-codec.md), for the
 * browser loader. The reference implementation is src/sparsity/codecs.ts (`decodeSparse`); this
 * one exists so that the loader's import graph stays small (no encoder, no zero analysis, only
 * fflate's inflate) and can decode straight into the caller's output buffer.
 * test/tfjs-loader.test.ts checks that both decoders agree, on valid and on corrupt blobs.
 *
 * Same checks as the reference, before anything is allocated or written: CRC-32, every length
 * against the bytes present, inflated lengths against the header, at most 1032:1 expansion, the
 * dense size against the caller's expectation; then every index entry while scattering.
 */
import { PrunepackError } from '../../src/errors.js';
import { inflateInto, isTooLong } from './inflate.js';
import { portableCrc32 as crc32 } from '../../src/sparsity/crc32.js';

const FORMAT = 'prunepack sparse blob';
const HEADER = 60;
const CRC = 4;
const MAX_RANK = 32;
const MAX_DEFLATE_RATIO = 1032;
const INDEX_DEFLATE = 1;
const VALUES_DEFLATE = 2;
const VALUES_SHUFFLE = 4;
const FILL_TABLE = 8;

/** Element byte width by PPSP dtype code (src/sparsity/codecs.ts DTYPE_CODES). */
const WIDTHS: readonly number[] = [0, 4, 2, 2, 8, 1, 1, 2, 2, 4, 4, 8, 8, 1, 8, 1, 1, 1, 1, 1];
/** PPSP dtype codes of the TF.js storage dtypes. */
export const PPSP_DTYPE_CODES: Readonly<Record<string, number>> = {
  float32: 1, float16: 2, uint8: 6, uint16: 8, int32: 9, bool: 13, complex64: 14,
};

export interface PpspExpectation {
  /** PPSP dtype code the blob must carry. */
  dtypeCode: number;
  /** Exact dense shape, or null to accept any shape with `elements` elements. */
  shape: readonly number[] | null;
  elements: number;
}

type Units = Uint8Array | Uint16Array | Uint32Array;

function corrupt(what: string, where: string, offset: number | string, expected: string, found: string, cause?: unknown): PrunepackError {
  return new PrunepackError('CORRUPT', what, {
    format: FORMAT, location: `${where} ${typeof offset === 'number' ? `byte ${offset}` : offset}`, expected, found, ...(cause === undefined ? {} : { cause }),
  });
}

/** CRC-32 as zlib computes it (plain JavaScript: the loaders reach for no Node module). */
export { portableCrc32 as crc32 } from '../../src/sparsity/crc32.js';

function u64(dv: DataView, at: number, field: string, where: string): number {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  if (hi > 0x1fffff) throw corrupt(`${field} is larger than 2^53 - 1`, where, at, '<= 2^53 - 1', `${hi} * 2^32 + ${lo}`);
  return hi * 0x100000000 + lo;
}

function unitsOf(bytes: Uint8Array, unit: number): Units {
  if (unit === 1) return bytes;
  if (unit === 2) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
}

/**
 * Reusable buffers (inflated index, inflated values, bitmap words): one load decodes many blobs,
 * and allocating (and zeroing) a fresh buffer for each stream costs as much as copying it (in
 * Chromium a fresh page costs ~1.3 us to fault in). Released by releaseScratch.
 */
const scratch: Array<Uint8Array | null> = [null, null, null];

/** Drops the inflate buffers (the loader calls it once a model is decoded). */
export function releaseScratch(): void {
  scratch.fill(null);
}

function scratchOf(slot: number, size: number): Uint8Array {
  const current = scratch[slot];
  if (current && current.length >= size) return current.subarray(0, size);
  const grown = new Uint8Array(Math.max(size, Math.min(2 * (current?.length ?? 0), size * 2)));
  scratch[slot] = grown;
  return grown.subarray(0, size);
}

/**
 * Another raw DEFLATE decoder for the blob's streams (a native one: Node's zlib, or streams a
 * caller inflated ahead with DecompressionStream). Returns the inflated bytes, or null to use the
 * built-in reader; throws on invalid data. The result's length is checked here.
 */
export type RawInflate = (stored: Uint8Array, raw: number) => Uint8Array | null;

export interface PpspDecodeOptions {
  /** `out` holds zeros already (a fresh buffer), which saves clearing it. */
  zeroed?: boolean;
  /** The caller checked these exact blob bytes already (a checksum over a larger section): skip the blob's CRC-32. */
  verified?: boolean;
  inflate?: RawInflate | undefined;
}

/** A stream of the blob, or its inflation (into scratch `slot`) checked to exactly `raw` bytes. */
function stream(blob: Uint8Array, at: number, stored: number, raw: number, deflated: boolean, slot: number, what: string, where: string, inflate?: RawInflate): Uint8Array {
  const bytes = blob.subarray(at, at + stored);
  if (!deflated) return bytes;
  let inflated: number;
  if (inflate) {
    let got: Uint8Array | null;
    try {
      got = inflate(bytes, raw);
    } catch (e) {
      throw corrupt(`${what} is not valid DEFLATE data (${(e as Error).message})`, where, at, 'a raw DEFLATE stream', `${stored} undecodable bytes`, e);
    }
    if (got) {
      if (got.length !== raw) throw corrupt(`${what} inflates to the wrong length`, where, at, `${raw} bytes`, got.length > raw ? `more than ${raw} bytes` : `${got.length} bytes`);
      return got;
    }
  }
  const out = scratchOf(slot, raw + 1); // one spare byte: an over-long stream shows as raw + 1 bytes
  try {
    inflated = inflateInto(bytes, out);
  } catch (e) {
    if (isTooLong(e)) throw corrupt(`${what} inflates to the wrong length`, where, at, `${raw} bytes`, `more than ${raw} bytes`);
    throw corrupt(`${what} is not valid DEFLATE data (${(e as Error).message})`, where, at, 'a raw DEFLATE stream', `${stored} undecodable bytes`, e);
  }
  if (inflated !== raw) throw corrupt(`${what} inflates to the wrong length`, where, at, `${raw} bytes`, inflated > raw ? `more than ${raw} bytes` : `${inflated} bytes`);
  return out.subarray(0, raw);
}

/**
 * The deflated streams of a blob (index and values, where flagged), for a caller that inflates
 * them ahead with another decoder (RawInflate). Reads only what locates them (the low words of
 * the u64 lengths); a header whose parts do not add up gives [] (decodePpspInto reports it; the
 * caller bounds what it inflates).
 */
export function ppspDeflatedStreams(blob: Uint8Array): { stored: Uint8Array; raw: number }[] {
  const len = blob.length;
  if (len < HEADER + CRC) return [];
  const dv = new DataView(blob.buffer, blob.byteOffset, len);
  const flags = blob[7]!;
  const width = WIDTHS[blob[6]!] ?? 0;
  let at = HEADER + 4 * blob[8]!;
  if (flags & FILL_TABLE) {
    if (at + 8 > len) return [];
    at += 8 + dv.getUint32(at + 4, true) * width;
  }
  const indexStored = dv.getUint32(28, true);
  const valuesStored = dv.getUint32(44, true);
  if (at + valuesStored + indexStored + CRC !== len) return [];
  const out: { stored: Uint8Array; raw: number }[] = [];
  if (flags & VALUES_DEFLATE) out.push({ stored: blob.subarray(at, at + valuesStored), raw: dv.getUint32(52, true) });
  if (flags & INDEX_DEFLATE) out.push({ stored: blob.subarray(at + valuesStored, at + valuesStored + indexStored), raw: dv.getUint32(36, true) });
  return out;
}

/**
 * Decodes `blob` into `out` (exactly the dense bytes: elements x element width), checking it
 * against `expect`. `where` names the weight in error messages; `zeroed` says `out` holds zeros
 * already (a fresh buffer), which saves clearing it.
 */
export function decodePpspInto(blob: Uint8Array, expect: PpspExpectation, out: Uint8Array, where: string, options: PpspDecodeOptions = {}): void {
  const len = blob.length;
  if (len < HEADER + CRC) throw corrupt('blob is shorter than the fixed header and checksum', where, len, `>= ${HEADER + CRC} bytes`, `${len} bytes`);
  if (blob[0] !== 0x50 || blob[1] !== 0x50 || blob[2] !== 0x53 || blob[3] !== 0x50) {
    throw corrupt('bad magic', where, 0, '"PPSP"', JSON.stringify(String.fromCharCode(...blob.subarray(0, 4))));
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, len);
  const end = len - CRC;
  const storedCrc = dv.getUint32(end, true);
  const actualCrc = options.verified ? storedCrc : crc32(blob.subarray(0, end));
  if (storedCrc !== actualCrc) throw corrupt('checksum mismatch', where, end, `CRC-32 0x${actualCrc.toString(16).padStart(8, '0')}`, `0x${storedCrc.toString(16).padStart(8, '0')}`);
  if (blob[4] !== 1) {
    throw new PrunepackError('UNSUPPORTED', `sparse blob version ${blob[4]}`, { format: FORMAT, location: `${where} byte 4`, expected: '1', found: String(blob[4]), hint: 'A newer prunepack wrote it' });
  }
  const bcsr = blob[5] === 1;
  if (!bcsr && blob[5] !== 2) throw corrupt('unknown codec id', where, 5, '1 (BCSR) or 2 (BITMAP)', String(blob[5]));
  const dtypeCode = blob[6]!;
  if (dtypeCode !== expect.dtypeCode) throw corrupt('blob dtype does not match the weight', where, 6, `dtype code ${expect.dtypeCode}`, `dtype code ${dtypeCode}`);
  const width = WIDTHS[dtypeCode]!;
  const flags = blob[7]!;
  if (flags & 0xf0) throw corrupt('reserved flag bits set', where, 7, 'bits 4-7 clear', `0x${flags.toString(16)}`);
  const rank = blob[8]!;
  if (rank > MAX_RANK) throw corrupt('rank out of range', where, 8, `<= ${MAX_RANK}`, String(rank));
  const rowAxis = blob[9]!;
  if (rank < 2 ? rowAxis !== 0 : rowAxis >= rank) throw corrupt('row axis out of range', where, 9, rank < 2 ? '0' : `< ${rank}`, String(rowAxis));
  const wp = blob[10]!;
  const wc = blob[11]!;
  if (bcsr ? (wp !== 1 && wp !== 2 && wp !== 4) : wp !== 0) throw corrupt('row-pointer width', where, 10, bcsr ? '1, 2 or 4' : '0', String(wp));
  if (bcsr ? (wc !== 1 && wc !== 2 && wc !== 4) : wc !== 0) throw corrupt('block-column index width', where, 11, bcsr ? '1, 2 or 4' : '0', String(wc));
  const r = dv.getUint32(12, true);
  const c = dv.getUint32(16, true);
  if (r === 0 || c === 0) throw corrupt('block shape', where, r === 0 ? 12 : 16, '>= 1', '0');
  const stored = u64(dv, 20, 'stored block count', where);
  const indexStored = u64(dv, 28, 'index stream length', where);
  const indexRaw = u64(dv, 36, 'inflated index length', where);
  const valuesStored = u64(dv, 44, 'values stream length', where);
  const valuesRaw = u64(dv, 52, 'inflated values length', where);

  if (HEADER + 4 * rank > end) throw corrupt('dims run past the end', where, HEADER, `${4 * rank} bytes of dims`, `${end - HEADER} bytes`);
  const shape: number[] = [];
  let count = 1;
  for (let a = 0; a < rank; a++) {
    const d = dv.getUint32(HEADER + 4 * a, true);
    shape.push(d);
    count *= d;
  }
  if (expect.shape ? (shape.length !== expect.shape.length || shape.some((d, a) => d !== expect.shape![a])) : count !== expect.elements) {
    throw corrupt('blob shape does not match the weight', where, HEADER, expect.shape ? `[${expect.shape.join(', ')}]` : `${expect.elements} elements`, `[${shape.join(', ')}]`);
  }
  if (out.length !== count * width) throw corrupt('output size does not match the blob', where, HEADER, `${count * width} bytes`, `${out.length} bytes`);
  // Matrix view (analysis.ts matrixViewOf).
  let outer = 1;
  let inner = count;
  let rows = 1;
  if (rank >= 2) {
    outer = 1;
    for (let a = 0; a < rowAxis; a++) outer *= shape[a]!;
    inner = 1;
    for (let a = rowAxis + 1; a < rank; a++) inner *= shape[a]!;
    rows = shape[rowAxis]!;
  }
  const cols = outer * inner;
  if (rows % r !== 0) throw corrupt('block rows do not divide the matrix rows', where, 12, `a divisor of ${rows}`, String(r));
  if (cols % c !== 0) throw corrupt('block cols do not divide the matrix cols', where, 16, `a divisor of ${cols}`, String(c));
  const blockRows = rows / r;
  const blockCols = cols / c;
  const blockCount = blockRows * blockCols;
  if (stored > blockCount) throw corrupt('more stored blocks than the grid has', where, 20, `<= ${blockCount}`, String(stored));

  let at = HEADER + 4 * rank;
  let fillAxis = -1;
  let fillCount = 0;
  let fillAt = 0;
  if (flags & FILL_TABLE) {
    if (at + 8 > end) throw corrupt('fill table header runs past the end', where, at, '8 bytes', `${end - at} bytes`);
    const axis = dv.getUint32(at, true);
    fillCount = dv.getUint32(at + 4, true);
    if (axis === 0xffffffff) {
      if (fillCount !== 1) throw corrupt('per-tensor fill table count', where, at + 4, '1', String(fillCount));
    } else {
      if (axis >= rank) throw corrupt('fill table axis out of range', where, at, `< ${rank} or 0xFFFFFFFF`, String(axis));
      if (fillCount !== shape[axis]) throw corrupt('fill table count', where, at + 4, `dims[${axis}] = ${shape[axis]}`, String(fillCount));
      fillAxis = axis;
    }
    if (at + 8 + fillCount * width > end) throw corrupt('fill table runs past the end', where, at + 8, `${fillCount * width} bytes`, `${end - at - 8} bytes`);
    fillAt = at + 8;
    at += 8 + fillCount * width;
  }
  const valuesAt = at;
  if (valuesStored > end - valuesAt) throw corrupt('values stream runs past the end', where, 44, `<= ${end - valuesAt} bytes`, `${valuesStored} bytes`);
  const indexAt = valuesAt + valuesStored;
  if (indexStored !== end - indexAt) throw corrupt('index stream length does not reach the checksum', where, 28, `${end - indexAt} bytes`, `${indexStored} bytes`);
  const expectedIndex = bcsr ? (blockRows + 1) * wp + stored * wc : Math.ceil(blockCount / 8);
  if (indexRaw !== expectedIndex) throw corrupt('inflated index length does not match the header', where, 36, `${expectedIndex} bytes`, `${indexRaw} bytes`);
  if (valuesRaw !== stored * r * c * width) throw corrupt('inflated values length does not match the header', where, 52, `${stored * r * c * width} bytes`, `${valuesRaw} bytes`);
  checkStoredLength(flags & INDEX_DEFLATE, indexStored, indexRaw, 28, 'index', where);
  checkStoredLength(flags & VALUES_DEFLATE, valuesStored, valuesRaw, 44, 'values', where);

  const index = stream(blob, indexAt, indexStored, indexRaw, (flags & INDEX_DEFLATE) !== 0, 0, 'index stream', where, options.inflate);
  let values = stream(blob, valuesAt, valuesStored, valuesRaw, (flags & VALUES_DEFLATE) !== 0, 1, 'values stream', where, options.inflate);
  const unit = width === 8 ? 4 : width;
  const perElement = width === 8 ? 2 : 1;
  // Decode in place when the caller's buffer is aligned for the element unit, else through a copy.
  const target = out.byteOffset % unit === 0 ? out : new Uint8Array(out.length);
  if (flags & FILL_TABLE) fill(blob, fillAt, fillAxis, fillCount, width, shape, target);
  else if (!(options.zeroed && target === out)) target.fill(0);
  const grid = { rows, cols, outer, inner, r, c, blockRows, blockCols, stored, perElement };
  const words = bcsr ? null : bitmapWords(index, grid, where);
  if (words && flags & VALUES_SHUFFLE && outer === 1 && width === 4) {
    // The common case: bitmaps of float32 (or 32-bit) elements or blocks, shuffled values: the
    // byte planes straight into the elements or blocks.
    expandShuffledBlocks(words, values, target, grid);
  } else {
    if (flags & VALUES_SHUFFLE) values = unshuffle(values, width);
    if (values.byteOffset % unit !== 0) values = values.slice();
    const src = unitsOf(values, unit);
    const dst = unitsOf(target, unit);
    if (words) scatterBitmap(words, grid, src, dst);
    else scatterBcsr(index, wp, wc, grid, src, dst, where, (flags & INDEX_DEFLATE) !== 0);
  }
  if (target !== out) out.set(target);
}

function checkStoredLength(deflated: number, storedLength: number, raw: number, offset: number, what: string, where: string): void {
  if (!deflated) {
    if (storedLength !== raw) throw corrupt(`${what} stream is not deflated, so its length must equal the inflated length`, where, offset, `${raw} bytes`, `${storedLength} bytes`);
  } else if (raw > storedLength * MAX_DEFLATE_RATIO + 64) {
    throw corrupt(`${what} stream cannot inflate that far`, where, offset, `>= ${Math.ceil((raw - 64) / MAX_DEFLATE_RATIO)} deflated bytes for ${raw} inflated`, `${storedLength} bytes`);
  }
}

function unshuffle(bytes: Uint8Array, width: number): Uint8Array {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  for (let j = 0; j < width; j++) {
    const base = j * n;
    for (let i = 0, d = j; i < n; i++, d += width) out[d] = bytes[base + i]!;
  }
  return out;
}

function fill(blob: Uint8Array, at: number, axis: number, count: number, width: number, shape: readonly number[], out: Uint8Array): void {
  let inner = 1;
  if (axis >= 0) for (let a = axis + 1; a < shape.length; a++) inner *= shape[a]!;
  const periodBytes = count * inner * width;
  if (periodBytes === 0 || out.length === 0) return;
  // One period (channel after channel), then the period doubled until the output is full.
  for (let ch = 0; ch < count; ch++) {
    const start = ch * inner * width;
    out.set(blob.subarray(at + ch * width, at + (ch + 1) * width), start);
    for (let filled = width; filled < inner * width;) {
      const n = Math.min(filled, inner * width - filled);
      out.copyWithin(start + filled, start, start + n);
      filled += n;
    }
  }
  for (let filled = periodBytes; filled < out.length;) {
    const n = Math.min(filled, out.length - filled);
    out.copyWithin(filled, 0, n);
    filled += n;
  }
}

interface Grid {
  rows: number; cols: number; outer: number; inner: number; r: number; c: number;
  blockRows: number; blockCols: number; stored: number; perElement: number;
}

/** Column c of the matrix view -> flat offset of (row 0, c); row r adds r * inner. */
function columnOffsets(g: Grid): Float64Array {
  const offsets = new Float64Array(g.cols);
  for (let o = 0, col = 0; o < g.outer; o++) for (let i = 0; i < g.inner; i++) offsets[col++] = o * g.rows * g.inner + i;
  return offsets;
}

function readIndex(bytes: Uint8Array, at: number, entries: number, width: number): Units {
  const region = bytes.subarray(at, at + entries * width);
  return unitsOf(region.byteOffset % width === 0 ? region : region.slice(), width);
}

function copyBlock(src: Units, dst: Units, from: number, g: Grid, offsets: Float64Array | null, row0: number, col0: number): number {
  const { r, c, perElement } = g;
  if (offsets === null) {
    const lineUnits = c * perElement;
    const rowUnits = g.cols * perElement;
    for (let rr = 0, to = (row0 * g.cols + col0) * perElement; rr < r; rr++, to += rowUnits) {
      for (let u = 0; u < lineUnits; u++) dst[to + u] = src[from++]!;
    }
    return from;
  }
  for (let rr = 0; rr < r; rr++) {
    const rowFlat = (row0 + rr) * g.inner;
    for (let cc = 0; cc < c; cc++) {
      const to = (offsets[col0 + cc]! + rowFlat) * perElement;
      for (let u = 0; u < perElement; u++) dst[to + u] = src[from++]!;
    }
  }
  return from;
}

function scatterBcsr(index: Uint8Array, wp: number, wc: number, g: Grid, src: Units, dst: Units, where: string, inflated: boolean): void {
  const { blockRows, blockCols, stored } = g;
  const pointerBytes = (blockRows + 1) * wp;
  const pointers = readIndex(index, 0, blockRows + 1, wp);
  const columns = readIndex(index, pointerBytes, stored, wc);
  const at = (entry: number, width: number, base: number) => `index stream byte ${base + entry * width}${inflated ? ' (inflated)' : ''}`;
  if (pointers[0] !== 0) throw corrupt('first row pointer', where, at(0, wp, 0), '0', String(pointers[0]));
  if (pointers[blockRows] !== stored) throw corrupt('last row pointer', where, at(blockRows, wp, 0), `${stored} (stored blocks)`, String(pointers[blockRows]));
  const offsets = g.outer === 1 ? null : columnOffsets(g);
  const elementCsr = offsets === null && g.r === 1 && g.c === 1 && g.perElement === 1;
  const blockUnits = g.r * g.c * g.perElement;
  for (let br = 0; br < blockRows; br++) {
    const start = pointers[br]!;
    const stop = pointers[br + 1]!;
    if (stop < start || stop > stored) throw corrupt('row pointers must be non-decreasing and <= stored blocks', where, at(br + 1, wp, 0), `${start}..${stored}`, String(stop));
    let previous = -1;
    const rowStart = br * g.cols;
    for (let k = start; k < stop; k++) {
      const bc = columns[k]!;
      if (bc <= previous || bc >= blockCols) {
        throw corrupt('block-column indices must increase within a row and stay below the block columns', where, at(k, wc, pointerBytes), `${previous + 1}..${blockCols - 1}`, String(bc));
      }
      previous = bc;
      if (elementCsr) dst[rowStart + bc] = src[k]!;
      else copyBlock(src, dst, k * blockUnits, g, offsets, br * g.r, bc * g.c);
    }
  }
}

/**
 * The bitmap as little-endian 32-bit words (a copy, so aligned and zero-padded: the walks need no
 * tail), checked: as many bits set as stored blocks, the padding bits after the last block clear.
 */
function bitmapWords(bits: Uint8Array, g: Grid, where: string): Int32Array {
  const blockCount = g.blockRows * g.blockCols;
  // In reused memory (a fresh copy per weight: 4-10% slower scatter in Chromium). Int32 words, read
  // with `| 0`: with Uint32 words V8 sometimes optimized the expander early into code 30% slower
  // for the whole process (Node 20, rec 80%).
  const n = (bits.length + 3) >>> 2;
  const bytes = scratchOf(2, 4 * n);
  bytes.set(bits);
  bytes.fill(0, bits.length);
  const words = new Int32Array(bytes.buffer, 0, n);
  let set = 0;
  for (let i = 0; i < words.length; i++) {
    // SWAR popcount.
    let x = words[i]!;
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    set += Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
  }
  if (set !== g.stored) throw corrupt('bitmap bit count does not match the stored blocks', where, 20, String(g.stored), `${set} bits set`);
  if (blockCount & 7 && bits[bits.length - 1]! >>> (blockCount & 7)) {
    throw corrupt('bitmap padding bits are set', where, `index stream byte ${bits.length - 1}`, '0', `0x${bits[bits.length - 1]!.toString(16)}`);
  }
  return words;
}

/**
 * Bitmap (outer = 1) of elements or blocks, 4-byte elements, byte-shuffled values: stored block s's element e
 * (row-major in the block) is value q = s * r * c + e, byte j of it at planes[j * n + q].
 */
function expandShuffledBlocks(words: Int32Array, planes: Uint8Array, target: Uint8Array, g: Grid): void {
  const n = planes.length >>> 2;
  const p0 = planes.subarray(0, n);
  const p1 = planes.subarray(n, 2 * n);
  const p2 = planes.subarray(2 * n, 3 * n);
  const p3 = planes.subarray(3 * n, 4 * n);
  const dst = new Uint32Array(target.buffer, target.byteOffset, target.length >>> 2);
  const { r, c, cols, blockCols } = g;
  const one = r === 1 && c === 1;
  let q = 0;
  for (let w = 0, base = 0; w < words.length; w++, base += 32) {
    let word = words[w]! | 0;
    while (word !== 0) {
      const low = word & -word;
      word ^= low;
      const k = base + 31 - Math.clz32(low);
      if (one) {
        dst[k] = p0[q]! | (p1[q]! << 8) | (p2[q]! << 16) | (p3[q]! << 24);
        q++;
        continue;
      }
      const br = (k / blockCols) | 0;
      let to = br * r * cols + (k - br * blockCols) * c;
      if (c === 1) {
        for (const stop = q + r; q < stop; q++, to += cols) dst[to] = p0[q]! | (p1[q]! << 8) | (p2[q]! << 16) | (p3[q]! << 24);
      } else {
        for (let rr = 0; rr < r; rr++, to += cols) {
          for (let cc = 0; cc < c; cc++, q++) dst[to + cc] = p0[q]! | (p1[q]! << 8) | (p2[q]! << 16) | (p3[q]! << 24);
        }
      }
    }
  }
}

/** Bitmap of elements or blocks (any width), values already in element order. */
function scatterBitmap(words: Int32Array, g: Grid, src: Units, dst: Units): void {
  const { blockCols, perElement: per } = g;
  const simple = g.outer === 1 && g.r === 1 && g.c === 1;
  const offsets = g.outer === 1 ? null : columnOffsets(g);
  let p = 0;
  for (let w = 0, base = 0; w < words.length; w++, base += 32) {
    let word = words[w]! | 0;
    while (word !== 0) {
      const low = word & -word;
      word ^= low;
      const k = base + 31 - Math.clz32(low);
      if (!simple) {
        const br = Math.floor(k / blockCols);
        p = copyBlock(src, dst, p, g, offsets, br * g.r, (k - br * blockCols) * g.c);
      } else if (per === 1) dst[k] = src[p++]!;
      else {
        dst[2 * k] = src[p++]!;
        dst[2 * k + 1] = src[p++]!;
      }
    }
  }
}
