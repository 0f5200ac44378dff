/**
 * A decode-only raw DEFLATE reader (RFC 1951) for the loader: stored, fixed and dynamic Huffman
 * blocks, lengths and distances, into a caller's buffer of known size. It replaces fflate's
 * inflate in the loader's import graph because the streams our writer makes (entropy.ts) are
 * mostly literals: a 32-bit bit buffer and one table lookup that yields up to two literals make
 * it ~2x faster there; stored blocks are one `set`. Any valid DEFLATE stream decodes (fflate's,
 * zlib's), test/tfjs-loader.test.ts compares it with zlib on many.
 *
 * Bad input throws InflateError (the caller reports it as CORRUPT with the blob's location):
 * over-subscribed codes, codes that were never assigned, distances before the start, and
 * streams that end early or produce more than `out` holds. Browser-safe.
 */

export class InflateError extends Error {}

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DISTANCE_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DISTANCE_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/**
 * A two-level lookup table over the next input bits (LSB first). The first level has
 * `bits` = min(longest code, PRIMARY_BITS) bits (4 KiB: it stays in L1 cache, and a block's table
 * is quick to build); a longer code's first-level entry links to a second-level table indexed by
 * the code's remaining bits. Leaf entry (> 0): bits 0-3 the code length, bit 4 set when two
 * literals are decoded, bits 5-13 the first symbol, bits 14-21 the second literal. Link entry
 * (< 0): -(offset << 4 | second-level bits). 0: no code starts with these bits.
 */
interface Table {
  entries: Int32Array;
  bits: number;
}

const PRIMARY_BITS = 10;
const PAIR_SHARE = 0.75;

/** Canonical codes of code lengths (RFC 1951, 3.2.2), bit-reversed for LSB-first streams. Shared with the writer (entropy.ts). */
export function canonicalCodes(lengths: Uint8Array): Uint16Array {
  const count = new Uint16Array(16);
  for (const l of lengths) if (l) count[l]!++;
  const next = new Uint16Array(16);
  for (let l = 1, code = 0; l < 16; l++) { code = (code + count[l - 1]!) << 1; next[l] = code; }
  const codes = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s]!;
    if (!l) continue;
    let code = next[l]!++;
    let reversed = 0;
    for (let b = 0; b < l; b++) { reversed = (reversed << 1) | (code & 1); code >>>= 1; }
    codes[s] = reversed;
  }
  return codes;
}

/** Builds the table of a canonical code; `pairs`: also decode a second literal when it fits. */
function buildTable(lengths: Uint8Array, pairs: boolean, what: string): Table {
  const count = new Uint16Array(16);
  let longest = 0;
  for (const l of lengths) { if (l) { count[l]!++; if (l > longest) longest = l; } }
  const bits = Math.max(1, Math.min(longest, PRIMARY_BITS));
  const size = 1 << bits;
  let left = 1;
  for (let l = 1; l <= 15; l++) {
    left = (left << 1) - count[l]!;
    if (left < 0) throw new InflateError(`over-subscribed ${what} code`);
  }
  const codes = canonicalCodes(lengths);
  // Second-level tables: one per first-level prefix of the longer codes, as wide as its longest code.
  const widest = new Uint8Array(size);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s]!;
    if (l > bits) { const i = codes[s]! & (size - 1); if (l > widest[i]!) widest[i] = l; }
  }
  let total = size;
  const link = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    if (widest[i]) { link[i] = total; total += 1 << (widest[i]! - bits); }
  }
  const entries = new Int32Array(total);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s]!;
    if (!l) continue;
    const entry = l | (s << 5);
    const code = codes[s]!;
    if (l <= bits) {
      for (let i = code; i < size; i += 1 << l) entries[i] = entry;
    } else {
      const prefix = code & (size - 1);
      const width = widest[prefix]! - bits;
      entries[prefix] = -((link[prefix]! << 4) | width);
      for (let i = code >>> bits; i < 1 << width; i += 1 << (l - bits)) entries[link[prefix]! + i] = entry;
    }
  }
  // No two codes fit the first level when the shortest is longer than half of it (e.g. the
  // planes of float values): then the pass is skipped.
  let shortest = 0;
  for (let l = 15; l > 0; l--) if (count[l]) shortest = l;
  if (pairs && 2 * shortest <= bits) {
    const paired = entries.slice();
    let hits = 0;
    for (let i = 0; i < size; i++) {
      const first = entries[i]!;
      const l1 = first & 15;
      if (first <= 0 || first >>> 5 >= 256) continue;
      const second = entries[i >>> l1]!;
      const l2 = second & 15;
      if (second <= 0 || second >>> 5 >= 256 || l1 + l2 > bits) continue;
      paired[i] = (l1 + l2) | 16 | ((first >>> 5) << 5) | ((second >>> 5) << 14);
      hits++;
    }
    // Every index is as likely as the code makes it, so `hits / size` is how often a lookup yields
    // two literals. Below PAIR_SHARE the branch between one and two mispredicts more than it saves.
    if (hits >= size * PAIR_SHARE) return { entries: paired, bits };
  }
  return { entries, bits };
}

/** The entry of a table for the bit window `w` (at least 15 valid bits): first level, then a link's second level. */
function lookup(t: Int32Array, bits: number, w: number): number {
  const e = t[w & ((1 << bits) - 1)]!;
  if (e >= 0) return e;
  return t[(-e >> 4) + ((w >>> bits) & ((1 << (-e & 15)) - 1))]!;
}

let fixedTables: { literals: Table; distances: Table } | null = null;

function fixed(): { literals: Table; distances: Table } {
  if (fixedTables) return fixedTables;
  const lengths = new Uint8Array(288);
  lengths.fill(8, 0, 144);
  lengths.fill(9, 144, 256);
  lengths.fill(7, 256, 280);
  lengths.fill(8, 280, 288);
  fixedTables = { literals: buildTable(lengths, true, 'literal/length'), distances: buildTable(new Uint8Array(30).fill(5), false, 'distance') };
  return fixedTables;
}

/** Reads `n` (<= 16) bits at bit position `pos` (LSB first) of `data` (bytes past its end read as 0). */
function bits(data: Uint8Array, pos: number, n: number): number {
  const i = pos >> 3;
  return ((data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16)) >> (pos & 7)) & ((1 << n) - 1);
}

/**
 * The symbols of one Huffman block, up to its end-of-block code; returns the new bit position
 * and output length. The hot loop: a 24-bit window at the bit position each symbol (as fflate
 * does), no refill branch, locals only.
 */
function decodeHuffmanBlock(data: Uint8Array, totalBits: number, pos: number, out: Uint8Array, op: number, literals: Table, distances: Table): [number, number] {
  const outLength = out.length;
  const lt = literals.entries;
  const lbits = literals.bits;
  const lmask = (1 << lbits) - 1;
  const dt = distances.entries;
  let p = pos;
  let o = op;
  for (;;) {
    const i = p >> 3;
    const w = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16)) >> (p & 7);
    let e = lt[w & lmask]!;
    if (e < 0) e = lt[(-e >> 4) + ((w >>> lbits) & ((1 << (-e & 15)) - 1))]!;
    if (e === 0) throw new InflateError('invalid literal/length code');
    p += e & 15;
    if (p > totalBits) throw new InflateError('the stream ends early');
    // Literals are written without a bounds check: a typed array drops writes past its end, and
    // `o` is checked at the end of the block and before every copy.
    if (e & 16) {
      out[o++] = (e >> 5) & 0xff;
      out[o++] = e >> 14;
      continue;
    }
    const symbol = e >> 5;
    if (symbol < 256) {
      out[o++] = symbol;
      continue;
    }
    if (symbol === 256) {
      if (o > outLength) throw new InflateError('the stream inflates to more bytes than expected');
      return [p, o];
    }
    const li = symbol - 257;
    if (li >= 29) throw new InflateError('invalid length code');
    const length = LENGTH_BASE[li]! + bits(data, p, LENGTH_EXTRA[li]!);
    p += LENGTH_EXTRA[li]!;
    const d = lookup(dt, distances.bits, bits(data, p, 15));
    if (d === 0) throw new InflateError('invalid distance code');
    p += d & 15;
    const di = d >> 5;
    if (di >= 30) throw new InflateError('invalid distance code');
    const distance = DISTANCE_BASE[di]! + bits(data, p, DISTANCE_EXTRA[di]!);
    p += DISTANCE_EXTRA[di]!;
    if (p > totalBits) throw new InflateError('the stream ends early');
    if (distance > o) throw new InflateError('a distance reaches before the start of the output');
    if (o + length > outLength) throw new InflateError('the stream inflates to more bytes than expected');
    // Short copies byte by byte (a copyWithin call costs more than a few bytes); overlapping ones must.
    if (length > 32 && distance >= length) {
      out.copyWithin(o, o - distance, o - distance + length);
      o += length;
    } else {
      for (let k = 0; k < length; k++, o++) out[o] = out[o - distance]!;
    }
  }
}

/**
 * Inflates `input` into `out` and returns the number of bytes written. Throws InflateError when
 * the stream is invalid or would write more than `out.length` bytes.
 */
export function inflateInto(input: Uint8Array, out: Uint8Array): number {
  // Reads take a 24-bit window and may run up to 3 bytes past the end: a copy with zero bytes
  // after the end keeps every read in bounds (an out-of-bounds read makes V8 compile the loop
  // for `undefined`, ~25% slower); positions past the end are refused.
  const data = new Uint8Array(input.length + 4);
  data.set(input);
  const totalBits = input.length * 8;
  let pos = 0;
  let op = 0;
  const take = (n: number): number => {
    const v = bits(data, pos, n);
    pos += n;
    if (pos > totalBits) throw new InflateError('the stream ends early');
    return v;
  };
  for (let final = 0; !final;) {
    final = take(1);
    const type = take(2);
    if (type === 0) {
      let at = (pos + 7) >> 3;
      if (at + 4 > input.length) throw new InflateError('the stream ends inside a stored block header');
      const length = input[at]! | (input[at + 1]! << 8);
      const check = input[at + 2]! | (input[at + 3]! << 8);
      if ((length ^ 0xffff) !== check) throw new InflateError('stored block length check fails');
      at += 4;
      if (at + length > input.length) throw new InflateError('the stream ends inside a stored block');
      if (op + length > out.length) throw new InflateError('the stream inflates to more bytes than expected');
      out.set(input.subarray(at, at + length), op);
      op += length;
      pos = (at + length) * 8;
      continue;
    }
    let literals: Table;
    let distances: Table;
    if (type === 1) {
      ({ literals, distances } = fixed());
    } else if (type === 2) {
      const literalCount = take(5) + 257;
      const distanceCount = take(5) + 1;
      const codeLengthCount = take(4) + 4;
      if (literalCount > 286 || distanceCount > 30) throw new InflateError('too many length or distance codes');
      const clLengths = new Uint8Array(19);
      for (let i = 0; i < codeLengthCount; i++) clLengths[CODE_LENGTH_ORDER[i]!] = take(3);
      const cl = buildTable(clLengths, false, 'code length');
      const lengths = new Uint8Array(literalCount + distanceCount);
      for (let i = 0; i < lengths.length;) {
        const e = cl.entries[bits(data, pos, cl.bits)]!;
        if (e === 0) throw new InflateError('invalid code length code');
        pos += e & 15;
        const symbol = e >> 5;
        if (symbol < 16) { lengths[i++] = symbol; continue; }
        let repeat: number;
        let value = 0;
        if (symbol === 16) {
          if (i === 0) throw new InflateError('a repeat code with no previous length');
          value = lengths[i - 1]!;
          repeat = 3 + take(2);
        } else if (symbol === 17) {
          repeat = 3 + take(3);
        } else {
          repeat = 11 + take(7);
        }
        if (i + repeat > lengths.length) throw new InflateError('code lengths run past their count');
        lengths.fill(value, i, i + repeat);
        i += repeat;
      }
      if (pos > totalBits) throw new InflateError('the stream ends early');
      if (lengths[256] === 0) throw new InflateError('no end-of-block code');
      literals = buildTable(lengths.subarray(0, literalCount), true, 'literal/length');
      distances = buildTable(lengths.subarray(literalCount), false, 'distance');
    } else {
      throw new InflateError('invalid block type 3');
    }
    [pos, op] = decodeHuffmanBlock(data, totalBits, pos, out, op, literals, distances);
  }
  return op;
}
