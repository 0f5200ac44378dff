/**
 * A decode-only raw DEFLATE reader (RFC 1951) for the loader: stored, fixed and dynamic Huffman
 * blocks, lengths and distances, into a caller's buffer of known size. It replaces fflate's
 * inflate in the loader's import graph because the streams of packs are mostly literals (our
 * writer, entropy.ts, writes only literals; fflate's LZ on byte planes of floats finds 3-8 byte
 * copies): a bit buffer refilled without a branch, one table lookup per literal or pair of
 * literals, two 4-byte moves per short copy, tables built in scratch arrays; stored blocks are
 * one `set`. Any valid DEFLATE stream decodes (fflate's, zlib's); test/pack-decode.test.ts and
 * test/tfjs-entropy.test.ts compare it with zlib on many.
 *
 * Bad input throws InflateError (the caller reports it as CORRUPT with the blob's location):
 * over-subscribed codes, codes that were never assigned, distances before the start, and
 * streams that end early or produce more than `out` holds. Browser-safe.
 */

export class InflateError extends Error {}

const ENDS_EARLY = 'the stream ends early';
const TOO_LONG = 'the stream inflates to more bytes than expected';

/** The stream holds more bytes than `out` (callers report a wrong length rather than bad data). */
export function isTooLong(e: unknown): boolean {
  return e instanceof InflateError && e.message === TOO_LONG;
}

// Lengths and distances of the length and distance codes (RFC 1951, 3.2.5): base << 4 | extra bits.
const LENGTHS = new Int32Array(29);
const DISTANCES = new Int32Array(30);
for (let i = 0, base = 3; i < 29; i++) {
  const extra = i < 8 || i > 27 ? 0 : (i >> 2) - 1;
  LENGTHS[i] = ((i > 27 ? 258 : base) << 4) | extra;
  base += 1 << extra;
}
for (let i = 0, base = 1; i < 30; i++) {
  const extra = i < 4 ? 0 : (i >> 1) - 1;
  DISTANCES[i] = (base << 4) | extra;
  base += 1 << extra;
}
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/**
 * A two-level lookup table over the next input bits (LSB first). The first level has
 * `bits` = min(longest code, PRIMARY_BITS) bits (4 KiB: it stays in L1 cache, and a block's table
 * is quick to build); a longer code's first-level entry links to a second-level table indexed by
 * the code's remaining bits. Leaf entry (> 0): bits 0-3 the code length (of both codes for two
 * literals), bits 4-12 the symbol (bit 12 clear: a literal), bits 13-20 a second literal, bit 21
 * (PAIR) set when there is one. Link entry (< 0): -(offset << 4 | second-level bits). NO_CODE
 * where no code starts with these bits (symbol 511, one bit long).
 */
interface Table {
  entries: Int32Array;
  bits: number;
}

const PRIMARY_BITS = 10;
const PAIR = 1 << 21;
const NO_CODE = (511 << 4) | 1;

/** The `l`-bit code `code` bit-reversed (LSB-first streams): left-aligned in 16 bits, then the 16 bits reversed. */
function reverse(code: number, l: number): number {
  let x = code << (16 - l);
  x = ((x & 0x5555) << 1) | ((x >> 1) & 0x5555);
  x = ((x & 0x3333) << 2) | ((x >> 2) & 0x3333);
  x = ((x & 0x0f0f) << 4) | ((x >> 4) & 0x0f0f);
  return ((x & 0xff) << 8) | (x >> 8);
}

/** Canonical codes of code lengths (RFC 1951, 3.2.2), bit-reversed for LSB-first streams. For the writer (entropy.ts). */
export function canonicalCodes(lengths: Uint8Array): Uint16Array {
  const count = new Uint16Array(16);
  for (let s = 0; s < lengths.length; s++) count[lengths[s]!]!++;
  const next = new Uint16Array(16);
  for (let l = 1, code = 0; l < 16; l++) next[l] = code = (code + (l > 1 ? count[l - 1]! : 0)) << 1;
  return Uint16Array.from(lengths, (l) => (l ? reverse(next[l]!++, l) : 0));
}

/**
 * Builds the table of a canonical code; `pairs`: also decode a second literal where both codes fit
 * the first level.
 */
function buildTable(lengths: Uint8Array, pairs: boolean, entries: Int32Array): Table {
  const count = new Uint16Array(16);
  for (let s = 0; s < lengths.length; s++) count[lengths[s]!]!++;
  let longest = 15;
  while (longest > 1 && !count[longest]) longest--;
  let shortest = 1;
  while (shortest < longest && !count[shortest]) shortest++;
  const bits = Math.min(longest, PRIMARY_BITS);
  const size = 1 << bits;
  // The first code of each length (RFC 1951, 3.2.2); `left` counts the unassigned codes.
  const next = new Uint16Array(16);
  let left = 1;
  for (let l = 1, code = 0; l < 16; l++) {
    next[l] = code = (code + (l > 1 ? count[l - 1]! : 0)) << 1;
    left = (left << 1) - count[l]!;
    if (left < 0) throw new InflateError('over-subscribed Huffman code');
  }
  const codes = CODES;
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s]!;
    if (l) codes[s] = reverse(next[l]!++, l);
  }
  // Second-level tables: one per first-level prefix of the longer codes, as wide as its longest code.
  let total = size;
  const link = LINKS;
  if (longest > bits) {
    link.fill(0, 0, size);
    for (let s = 0; s < lengths.length; s++) {
      const l = lengths[s]!;
      if (l > bits) { const i = codes[s]! & (size - 1); if (l > link[i]!) link[i] = l; }
    }
    for (let i = 0; i < size; i++) {
      const l = link[i]!;
      if (l) { link[i] = (total << 4) | (l - bits); total += 1 << (l - bits); }
    }
  }
  // A complete code (left = 0) assigns every entry.
  if (left) entries.fill(NO_CODE, 0, total);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s]!;
    if (!l) continue;
    const entry = l | (s << 4);
    const code = codes[s]!;
    if (l <= bits) {
      for (let i = code; i < size; i += 1 << l) entries[i] = entry;
    } else {
      const to = link[code & (size - 1)]!;
      entries[code & (size - 1)] = -to;
      for (let i = code >>> bits; i < 1 << (to & 15); i += 1 << (l - bits)) entries[(to >> 4) + i] = entry;
    }
  }
  // Two literals per entry where they fit, in place from the top: the second code's entry
  // (i >>> l1, a lower index) is still a single one. No two codes fit when the shortest is
  // longer than half the first level (e.g. the middle planes of float values).
  if (pairs && 2 * shortest <= bits) {
    for (let i = size - 1; i >= 0; i--) {
      const first = entries[i]!;
      const second = entries[i >>> (first & 15)]!;
      const l = (first & 15) + (second & 15);
      if (first >= 0 && second >= 0 && !((first | second) & 4096) && l <= bits) entries[i] = l | (first & 0xff0) | ((second >> 4) << 13) | PAIR;
    }
  }
  return { entries, bits };
}

// Scratch space of the tables of a dynamic block (inflateInto is synchronous): typed arrays of
// more than 64 bytes live outside V8's heap, and allocating them per block cost ~1/4 of building.
// A table has 2^PRIMARY_BITS first-level entries and at most one 2^(15 - PRIMARY_BITS)-entry
// second level per code longer than that.
const CODES = new Uint16Array(288);
const LINKS = new Int32Array(1 << PRIMARY_BITS);
const LITERAL_TABLE = new Int32Array((1 << PRIMARY_BITS) + (286 << (15 - PRIMARY_BITS)));
const DISTANCE_TABLE = new Int32Array((1 << PRIMARY_BITS) + (30 << (15 - PRIMARY_BITS)));
const LENGTH_TABLE = new Int32Array(128);
const CODE_LENGTHS = new Uint8Array(286 + 30);

/** The fixed code's literal/length and distance tables (RFC 1951, 3.2.6), built on first use. */
let fixedTables: [Table, Table] | undefined;

/**
 * The symbols of one Huffman block, up to its end-of-block code; returns the new bit position
 * and output length. The hot loop keeps a bit buffer `b` of `n` (24-31 after a refill) bits and
 * refills it without a branch: one unaligned 32-bit read, `ip` advanced by the whole bytes that
 * fit (the bits past them are read again by the next refill, OR-ing the same values).
 */
function decodeHuffmanBlock(view: DataView, totalBits: number, pos: number, out: Uint8Array, outView: DataView, op: number, literals: Table, distances: Table): [number, number] {
  const outLength = out.length;
  const lt = literals.entries;
  const lbits = literals.bits;
  const lmask = (1 << lbits) - 1;
  const dt = distances.entries;
  const dbits = distances.bits;
  const dmask = (1 << dbits) - 1;
  // Past this input position the bits consumed exceed the stream (ip * 8 - 31 > totalBits).
  const last = (totalBits >> 3) + 3;
  let ip = pos >> 3;
  let b = (view.getUint32(ip, true) >>> (pos & 7)) | 0;
  let n = 24 - (pos & 7);
  ip += 3;
  let o = op;
  for (;;) {
    if (ip > last) throw new InflateError(ENDS_EARLY);
    b |= view.getUint32(ip, true) << n;
    ip += (31 - n) >> 3;
    n |= 24;
    let e = lt[b & lmask]!;
    if (e < 0) e = lt[(-e >> 4) + ((b >>> lbits) & ((1 << (-e & 15)) - 1))]!;
    const l = e & 15;
    if (!(e & 4096)) {
      // One or two literals (a Uint8Array store keeps the low 8 bits). Writes past the end are
      // dropped by the typed array; `o` is checked at the end of the block and before every copy.
      b = (b >>> l) | 0;
      n -= l;
      out[o++] = e >> 4;
      if (e & PAIR) out[o++] = e >> 13;
      continue;
    }
    const symbol = (e >> 4) & 511;
    if (symbol === 256) {
      const p = ip * 8 - n + l;
      if (p > totalBits) throw new InflateError(ENDS_EARLY);
      if (o > outLength) throw new InflateError(TOO_LONG);
      return [p, o];
    }
    if (symbol > 285) throw new InflateError('invalid literal/length code');
    // The length code and its extra bits (<= 15 + 5 of the >= 24 in the buffer).
    const lx = LENGTHS[symbol - 257]!;
    const length = (lx >> 4) + ((b >>> l) & ((1 << (lx & 15)) - 1));
    b = (b >>> (l + (lx & 15))) | 0;
    n -= l + (lx & 15);
    b |= view.getUint32(ip, true) << n;
    ip += (31 - n) >> 3;
    n |= 24;
    let d = dt[b & dmask]!;
    if (d < 0) d = dt[(-d >> 4) + ((b >>> dbits) & ((1 << (-d & 15)) - 1))]!;
    const di = d >> 4;
    if (di >= 30) throw new InflateError('invalid distance code');
    b = (b >>> (d & 15)) | 0;
    n -= d & 15;
    b |= view.getUint32(ip, true) << n;
    ip += (31 - n) >> 3;
    n |= 24;
    const dx = DISTANCES[di]!;
    const distance = (dx >> 4) + (b & ((1 << (dx & 15)) - 1));
    b = (b >>> (dx & 15)) | 0;
    n -= dx & 15;
    if (ip * 8 - n > totalBits) throw new InflateError(ENDS_EARLY);
    if (distance > o) throw new InflateError('a distance reaches before the start of the output');
    if (o + length > outLength) throw new InflateError(TOO_LONG);
    // Most copies are 3-8 bytes from far back: two 4-byte moves, one after the other (so a
    // distance of 4-7 reads bytes the first move wrote, as a byte loop would); the bytes past the
    // length are written again by what follows. Other short copies byte by byte (a copyWithin
    // call costs more than a few bytes); overlapping ones must.
    if (length <= 8 && distance >= 4 && o + 8 <= outLength) {
      outView.setInt32(o, outView.getInt32(o - distance, true), true);
      outView.setInt32(o + 4, outView.getInt32(o - distance + 4, true), true);
      o += length;
    } else if (length > 32 && distance >= length) {
      out.copyWithin(o, o - distance, o - distance + length);
      o += length;
    } else {
      for (const end = o + length; o < end; o++) out[o] = out[o - distance]!;
    }
  }
}

/**
 * Inflates `input` into `out` and returns the number of bytes written. Throws InflateError when
 * the stream is invalid or would write more than `out.length` bytes. Bytes of `out` past the
 * returned length may be overwritten (up to 5: short copies move 8 bytes).
 */
export function inflateInto(input: Uint8Array, out: Uint8Array): number {
  // Reads may run up to 16 bytes past the end: a copy with zero bytes after the end keeps every
  // read in bounds (an out-of-bounds read makes V8 compile the loop for `undefined`, ~25%
  // slower); positions past the end are refused.
  const data = new Uint8Array(input.length + 16);
  data.set(input);
  const view = new DataView(data.buffer);
  const outView = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const totalBits = input.length * 8;
  let pos = 0;
  let op = 0;
  // The next `n` (<= 16) bits, LSB first.
  const peek = (n: number): number => (view.getUint32(pos >> 3, true) >>> (pos & 7)) & ((1 << n) - 1);
  const take = (n: number): number => {
    const v = peek(n);
    pos += n;
    if (pos > totalBits) throw new InflateError(ENDS_EARLY);
    return v;
  };
  for (let final = 0; !final;) {
    final = take(1);
    const type = take(2);
    if (type === 0) {
      let at = (pos + 7) >> 3;
      if (at + 4 > input.length) throw new InflateError(ENDS_EARLY);
      const length = input[at]! | (input[at + 1]! << 8);
      const check = input[at + 2]! | (input[at + 3]! << 8);
      if ((length ^ 0xffff) !== check) throw new InflateError('stored block length check fails');
      at += 4;
      if (at + length > input.length) throw new InflateError(ENDS_EARLY);
      if (op + length > out.length) throw new InflateError(TOO_LONG);
      out.set(input.subarray(at, at + length), op);
      op += length;
      pos = (at + length) * 8;
      continue;
    }
    let literals: Table;
    let distances: Table;
    if (type === 1) {
      if (!fixedTables) {
        const lengths = new Uint8Array(288).fill(8);
        lengths.fill(9, 144, 256);
        lengths.fill(7, 256, 280);
        fixedTables = [buildTable(lengths, true, new Int32Array(512)), buildTable(new Uint8Array(30).fill(5), false, new Int32Array(32))];
      }
      [literals, distances] = fixedTables;
    } else if (type === 2) {
      const literalCount = take(5) + 257;
      const distanceCount = take(5) + 1;
      const codeLengthCount = take(4) + 4;
      if (literalCount > 286 || distanceCount > 30) throw new InflateError('too many length or distance codes');
      const clLengths = new Uint8Array(19);
      for (let i = 0; i < codeLengthCount; i++) clLengths[CODE_LENGTH_ORDER[i]!] = take(3);
      const cl = buildTable(clLengths, false, LENGTH_TABLE);
      const lengths = CODE_LENGTHS.subarray(0, literalCount + distanceCount);
      for (let i = 0; i < lengths.length;) {
        const e = cl.entries[peek(cl.bits)]!;
        const symbol = e >> 4;
        if (symbol > 18) throw new InflateError('invalid code length code');
        take(e & 15);
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
      if (lengths[256] === 0) throw new InflateError('no end-of-block code');
      literals = buildTable(lengths.subarray(0, literalCount), true, LITERAL_TABLE);
      distances = buildTable(lengths.subarray(literalCount), false, DISTANCE_TABLE);
    } else {
      throw new InflateError('invalid block type 3');
    }
    [pos, op] = decodeHuffmanBlock(view, totalBits, pos, out, outView, op, literals, distances);
  }
  return op;
}
