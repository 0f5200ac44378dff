/**
 * The audit's zero-analysis kernel in WebAssembly, written out byte by byte by the small emitter
 * below (no toolchain, no download):
 *   - bits8 / bits16 / bits32 (SIMD): for 1-, 2- and 4-byte elements, 32 elements at a time, the
 *     word whose bit j is 1 when element j is nonzero, i.e. when (x & mask) !== ref (the zero test
 *     of analysis.ts's ZeroScanner; ref already masked). 16 bytes are compared per instruction,
 *     the per-lane results narrowed to bytes and gathered with i8x16.bitmask; bits32pos is the
 *     shorter float32 variant (mask below 2^31, ref 0).
 *   - stats / foldPass: the bit-row counts of analysis.ts's row loop with 64-bit popcounts
 *     (ZeroBitsKernel implements analysis.ts's BitStatsKernel).
 *
 * Weights are read from the file straight into the module's memory (`ZeroBitsKernel.input`,
 * PagedFile.readNextRangeInto), piece by piece with the bits of each piece computed right after it
 * arrives (`bitsUpTo`), so the bytes are touched by the read and once more while in cache, with
 * no copy. `ZeroBitsKernel.create()` returns null where WebAssembly SIMD is not available; the
 * caller then uses the JavaScript kernels of analysis.ts (same results).
 */
import type { BitStatsKernel } from '../sparsity/analysis.js';

// ---------------------------------------------------------------------------------------------
// A minimal module emitter: just the opcodes the kernel needs.

const I32 = 0x7f;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
}

/** Instruction builders (locals by index). */
const op = {
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  tee: (i: number) => [0x22, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v | 0)],
  add: [0x6a], sub: [0x6b], and: [0x71], or: [0x72], xor: [0x73], shl: [0x74], shrU: [0x76], eqz: [0x45],
  ne: [0x47], ltS: [0x48], eq: [0x46], popcnt: [0x69], select: [0x1b],
  load: (offset: number) => [0x28, 0x02, ...uleb(offset)],
  store: (offset: number) => [0x36, 0x02, ...uleb(offset)],
  simd: (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm],
};
const SIMD = {
  load: 0x00, i8splat: 0x0f, i16splat: 0x10, i32splat: 0x11,
  i8eq: 0x23, i16eq: 0x2d, i32eq: 0x37, and: 0x4e,
  i8bitmask: 0x64, i8narrow16: 0x65, i16narrow32: 0x85, i16narrow32u: 0x86,
};
const vload = (offset: number) => op.simd(SIMD.load, 0x04, ...uleb(offset));

/**
 * One kernel function (src, groups, dst, mask, ref): for each of `groups` groups of 32 elements
 * at src, stores the nonzero-bits word at dst (both advanced). Locals: 0 src, 1 groups, 2 dst,
 * 3 mask, 4 ref (params), 5 maskV, 6 refV (v128), 7 low half (i32).
 */
function kernelBody(width: 1 | 2 | 4, positive = false): number[] {
  const splat = width === 1 ? SIMD.i8splat : width === 2 ? SIMD.i16splat : SIMD.i32splat;
  const eq = width === 1 ? SIMD.i8eq : width === 2 ? SIMD.i16eq : SIMD.i32eq;
  // Zero flags (all-ones lanes) of the 16 bytes at src + offset.
  const zeroLanes = (offset: number) => [...op.get(0), ...vload(offset), ...op.get(5), ...op.simd(SIMD.and), ...op.get(6), ...op.simd(eq)];
  // 16 elements starting `offset` bytes after src, as a 16-bit mask of zero elements.
  const half = (offset: number): number[] => {
    if (width === 1) return [...zeroLanes(offset), ...op.simd(SIMD.i8bitmask)];
    if (width === 2) return [...zeroLanes(offset), ...zeroLanes(offset + 16), ...op.simd(SIMD.i8narrow16), ...op.simd(SIMD.i8bitmask)];
    if (positive) {
      // Masked values in [0, 2^31), reference 0: narrowing with unsigned saturation keeps zero
      // exactly zero and anything else nonzero (then signed to bytes: 32768..65535 become -128),
      // so one byte compare replaces four i32x4 compares.
      const masked = (o: number) => [...op.get(0), ...vload(o), ...op.get(5), ...op.simd(SIMD.and)];
      return [
        ...masked(offset), ...masked(offset + 16), ...op.simd(SIMD.i16narrow32u),
        ...masked(offset + 32), ...masked(offset + 48), ...op.simd(SIMD.i16narrow32u),
        ...op.simd(SIMD.i8narrow16), ...op.get(6), ...op.simd(SIMD.i8eq), ...op.simd(SIMD.i8bitmask),
      ];
    }
    return [
      ...zeroLanes(offset), ...zeroLanes(offset + 16), ...op.simd(SIMD.i16narrow32),
      ...zeroLanes(offset + 32), ...zeroLanes(offset + 48), ...op.simd(SIMD.i16narrow32),
      ...op.simd(SIMD.i8narrow16), ...op.simd(SIMD.i8bitmask),
    ];
  };
  const step = 32 * width;
  const body = [
    ...op.get(3), ...op.simd(splat), ...op.set(5),
    ...op.get(4), ...op.simd(splat), ...op.set(6),
    ...op.get(1), ...op.eqz, 0x0d, 0x00, // br_if 0 (function block): no groups
    0x03, 0x40, // loop
    ...op.get(2),
    ...half(0), ...op.set(7),
    ...half(16 * width), ...op.i32(16), ...op.shl, ...op.get(7), ...op.or,
    ...op.i32(-1), ...op.xor, // zero flags -> nonzero bits
    ...op.store(0),
    ...op.get(0), ...op.i32(step), ...op.add, ...op.set(0),
    ...op.get(2), ...op.i32(4), ...op.add, ...op.set(2),
    ...op.get(1), ...op.i32(1), ...op.sub, ...op.tee(1),
    0x0d, 0x00, // br_if 0 (loop)
    0x0b, // end loop
    0x0b, // end function
  ];
  const locals = vector([[2, V128], [1, I32]]);
  const code = [...locals, ...body];
  return [...uleb(code.length), ...code];
}

function sleb64(n: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

/** i64 instructions of the counting kernels. */
const op64 = {
  c: (v: bigint) => [0x42, ...sleb64(BigInt.asIntN(64, v))],
  load: [0x29, 0x03, 0x00], load32: [0x35, 0x02, 0x00],
  store: [0x37, 0x03, 0x00], store32: [0x3e, 0x02, 0x00],
  popcnt: [0x7b], add: [0x7c], sub: [0x7d], and: [0x83], or: [0x84], shrU: [0x88], eq: [0x51],
  load64At: (offset: number) => [0x29, 0x03, ...uleb(offset)],
};
const rep64 = (x: number) => BigInt(x >>> 0) | (BigInt(x >>> 0) << 32n);

/**
 * The bit-row counting kernels, over 64 bits at a time (an odd last word as 32):
 *   stats(ptr, n, colAny, fed, out): over the n words at ptr, out[0..5] = set bits, nonzero bit
 *     pairs, nibbles, bytes, 16-bit halves, 32-bit words (what analysis.ts's addRowStats takes
 *     from its byte tables, here with popcounts); out[6..8] = N:M violations of three patterns
 *     given as i64 at out + 40 (per slot: field width 2/4/8 (0: none), addend, test mask: a group
 *     with c set bits violates when c > n, i.e. when c + (T - n - 1) reaches the field's top bit
 *     T). Every word is ORed into colAny and (when fed >= 0) into fed.
 *   foldPass(ptr, n, target, _, out): out[0..5] as above, then each word is ORed into target (when
 *     target >= 0) and cleared.
 * Locals: 0 ptr, 1 n, 2 colAny / target, 3 fed, 4 out (i32 params), 5 w, 6..11 fold counts,
 * 12..14 N:M counts, 15 x2, 16 x4, 17 x8, 18 p, 19..27 N:M slots (i64), 28 pairs left (i32).
 */
function countBody(kind: 'stats' | 'foldPass'): number[] {
  const W = 5, X2 = 15, X4 = 16, X8 = 17, P = 18, PAIRS = 28;
  const stats = kind === 'stats';
  const addPop = (counter: number, value: number[]) => [...value, ...op64.popcnt, ...op.get(counter), ...op64.add, ...op.set(counter)];
  const fold = (counter: number, shift: number, mask: number) => [
    ...op.get(P), ...op.get(P), ...op64.c(BigInt(shift)), ...op64.shrU, ...op64.or, ...op64.c(rep64(mask)), ...op64.and, ...op.tee(P),
    ...op64.popcnt, ...op.get(counter), ...op64.add, ...op.set(counter),
  ];
  const nmSlot = (k: number) => {
    const level = 19 + 3 * k, addend = 20 + 3 * k, test = 21 + 3 * k;
    return addPop(12 + k, [
      ...op.get(X2), ...op.get(X4), ...op.get(X8), ...op.get(level), ...op64.c(4n), ...op64.eq, ...op.select,
      ...op.get(level), ...op64.c(2n), ...op64.eq, ...op.select,
      ...op.get(addend), ...op64.add, ...op.get(test), ...op64.and,
    ]);
  };
  const word = (wide: boolean): number[] => {
    const load = wide ? op64.load : op64.load32;
    const store = wide ? op64.store : op64.store32;
    const step = wide ? 8 : 4;
    // mem[ptr] |= w; ptr += step (when ptr >= 0)
    const orInto = (ptr: number) => [
      ...op.get(ptr), ...op.i32(0), ...op.ltS, ...op.eqz, 0x04, 0x40,
      ...op.get(ptr), ...op.get(ptr), ...load, ...op.get(W), ...op64.or, ...store,
      ...op.get(ptr), ...op.i32(step), ...op.add, ...op.set(ptr),
      0x0b,
    ];
    const out = [...op.get(0), ...load, ...op.set(W)];
    if (!stats) out.push(...op.get(0), ...op64.c(0n), ...store);
    out.push(...orInto(2));
    if (stats) out.push(...orInto(3));
    out.push(
      ...addPop(6, op.get(W)),
      ...op.get(W), ...op.set(P),
      ...fold(7, 1, 0x55555555), ...fold(8, 2, 0x11111111), ...fold(9, 4, 0x01010101), ...fold(10, 8, 0x00010001), ...fold(11, 16, 0x00000001),
    );
    if (stats) {
      out.push(
        ...op.get(W), ...op.get(W), ...op64.c(1n), ...op64.shrU, ...op64.c(rep64(0x55555555)), ...op64.and, ...op64.sub, ...op.set(X2),
        ...op.get(X2), ...op64.c(rep64(0x33333333)), ...op64.and, ...op.get(X2), ...op64.c(2n), ...op64.shrU, ...op64.c(rep64(0x33333333)), ...op64.and, ...op64.add, ...op.set(X4),
        ...op.get(X4), ...op.get(X4), ...op64.c(4n), ...op64.shrU, ...op64.add, ...op64.c(rep64(0x0f0f0f0f)), ...op64.and, ...op.set(X8),
        ...nmSlot(0), ...nmSlot(1), ...nmSlot(2),
      );
    }
    out.push(...op.get(0), ...op.i32(step), ...op.add, ...op.set(0));
    return out;
  };
  const body: number[] = [];
  if (stats) for (let k = 0; k < 9; k++) body.push(...op.get(4), ...op64.load64At(40 + 8 * k), ...op.set(19 + k));
  body.push(
    ...op.get(1), ...op.i32(1), 0x76, ...op.set(PAIRS), // pairs = n >>> 1
    0x02, 0x40, // block
    ...op.get(PAIRS), ...op.eqz, 0x0d, 0x00, // br_if block: no pairs
    0x03, 0x40, // loop
    ...word(true),
    ...op.get(PAIRS), ...op.i32(1), ...op.sub, ...op.tee(PAIRS),
    0x0d, 0x00, // br_if loop
    0x0b, // end loop
    0x0b, // end block
    ...op.get(1), ...op.i32(1), ...op.and, 0x04, 0x40, // if n is odd: the last word as 32 bits
    ...word(false),
    0x0b,
  );
  // i64 counts stored as i32 (a call counts at most 64 bits per word of one row).
  for (let k = 0; k < (stats ? 9 : 6); k++) body.push(...op.get(4), ...op.get(6 + k), 0xa7, ...op.store(4 * k));
  body.push(0x0b);
  const locals = vector([[23, 0x7e], [1, I32]]);
  const code = [...locals, ...body];
  return [...uleb(code.length), ...code];
}

// ---------------------------------------------------------------------------------------------
// SIMD counting and the row loop (scanRows): one call per weight instead of one per row.

const V = {
  store: 0x0b, i64splat: 0x12, i32extract: 0x1b, i8ne: 0x24, i16ne: 0x2e, i32ne: 0x38, i32gtS: 0x3b,
  or: 0x50, popcnt: 0x62, i8add: 0x6e, i8sub: 0x71, i16sub: 0x91, i32add: 0xae, i32sub: 0xb1, i64shrU: 0xcd,
  ext16: 0x7d, ext32: 0x7f, swizzle: 0x0e, i8gtU: 0x28, i16shrU: 0x8d,
};
const vstore = (offset: number) => op.simd(V.store, 0x04, ...uleb(offset));
const vconst = (bytes: number[]) => op.simd(0x0c, ...bytes);
const vrep32 = (x: number) => vconst(Array.from({ length: 16 }, (_, i) => (x >>> (8 * (i & 3))) & 0xff));
const vzero = () => vconst(new Array<number>(16).fill(0));
const vop = (code: number) => op.simd(code);

/**
 * The SIMD bit-row counts, 128 bits at a time, into i32x4 running totals in memory (`out`, nine
 * v128 slots: nonzero bits, bit pairs, nibbles, bytes, 16-bit halves, 32-bit words, then the
 * three N:M violation counts); returns the row's nonzero bits.
 *   rowStats(ptr, n, colAny, fed, out, nm): the n bit words (32-bit) at ptr, a row read in place
 *     (the last partial v128 masked to the row); each word ORed into colAny and fed (fed may be
 *     colAny: ORing twice changes nothing). nm: per N:M slot two v128: a 16-byte table of the
 *     violating groups in each nibble value (m = 2, 4; zeros otherwise) and a byte threshold
 *     (m = 8: a byte with more set bits violates; 255 otherwise).
 *   foldRow(ptr, n, target, levels, out, _): an accumulator (word array padded to 16 bytes,
 *     padding clear), counted (only the levels whose bit is set in `levels`), ORed into target
 *     (when >= 0) and cleared; no N:M counts.
 * Bits, pairs and nibbles are counted per nibble with i8x16.swizzle table lookups. Counts go
 * through byte accumulators flushed every 31 vectors, so no lane overflows (at most 8 per vector).
 */
function simdCountBody(kind: 'row' | 'fold'): number[] {
  const row = kind === 'row';
  // i32 locals
  const PTR = 0, N = 1, A = 2, B = 3, OUT = 4, NMP = 5, FULL = 6, CHUNK = 7, TAIL = 8, BSTEP = 9;
  // v128 locals
  const W = 13, X8 = 17, AC = 18; // AC..AC+7: A1 A2 A4 A8 A16 N0 N1 N2
  const T = 26; // T..T+8: T1 T2 T4 T8 T16 T32 TN0 TN1 TN2
  const PRM = 35; // PRM..PRM+5: per N:M slot its nibble table and its byte threshold
  const CZ = 44; // zero (as locals start)
  const TP1 = 45, TP2 = 46, TP4 = 47, C0F = 48, LO = 49, HI = 50; // nibble tables, 0x0f bytes, the nibbles
  // A fold counts only the levels its caller reads (bit k of B: level k), each behind a branch
  // that goes the same way for the whole call.
  const need = (bits: number, code: number[]) => (row ? code : [...op.get(B), ...op.i32(bits), ...op.and, 0x04, 0x40, ...code, 0x0b]);
  const byteAccs = row ? [0, 1, 2, 3, 5, 6, 7] : [0, 1, 2, 3];
  const addTo = (local: number, value: number[], add: number) => [...op.get(local), ...value, ...vop(add), ...op.set(local)];
  // Per nibble (i8x16.swizzle of a 16-byte table by the low and the high nibble of every byte):
  // set bits, nonzero bit pairs, nonzero nibbles; per N:M slot the violating groups of a nibble
  // (m = 2 or 4) or, for m = 8, the bytes whose set bits exceed the slot's threshold.
  const nib = (table: number) => [
    ...op.get(table), ...op.get(LO), ...vop(V.swizzle), ...op.get(table), ...op.get(HI), ...vop(V.swizzle), ...vop(V.i8add),
  ];
  const body = (): number[] => {
    const out: number[] = [];
    // ORs (and, for a fold, the clearing)
    if (row) {
      out.push(...op.get(A), ...op.get(A), ...vload(0), ...op.get(W), ...vop(V.or), ...vstore(0));
      out.push(...op.get(B), ...op.get(B), ...vload(0), ...op.get(W), ...vop(V.or), ...vstore(0));
    } else {
      out.push(...op.get(PTR), ...op.get(CZ), ...vstore(0));
      out.push(...op.get(A), ...op.get(A), ...vload(0), ...op.get(W), ...vop(V.or), ...vstore(0));
    }
    out.push(
      ...need(7, [
        ...op.get(W), ...op.get(C0F), ...op.simd(SIMD.and), ...op.set(LO),
        ...op.get(W), ...op.i32(4), ...vop(V.i16shrU), ...op.get(C0F), ...op.simd(SIMD.and), ...op.set(HI),
      ]),
      ...need(1, [...nib(TP1), ...op.tee(X8), ...op.get(AC), ...vop(V.i8add), ...op.set(AC)]),
      ...need(2, [...nib(TP2), ...op.get(AC + 1), ...vop(V.i8add), ...op.set(AC + 1)]),
      ...need(4, [...nib(TP4), ...op.get(AC + 2), ...vop(V.i8add), ...op.set(AC + 2)]),
      ...need(8, [...op.get(AC + 3), ...op.get(W), ...op.get(CZ), ...vop(V.i8ne), ...vop(V.i8sub), ...op.set(AC + 3)]),
      ...need(16, [...op.get(AC + 4), ...op.get(W), ...op.get(CZ), ...vop(V.i16ne), ...vop(V.i16sub), ...op.set(AC + 4)]),
      ...need(32, [...op.get(T + 5), ...op.get(W), ...op.get(CZ), ...vop(V.i32ne), ...vop(V.i32sub), ...op.set(T + 5)]),
    );
    if (row) {
      for (let k = 0; k < 3; k++) {
        out.push(
          ...op.get(AC + 5 + k), ...nib(PRM + 2 * k), ...vop(V.i8add),
          ...op.get(X8), ...op.get(PRM + 2 * k + 1), ...vop(V.i8gtU), ...vop(V.i8sub), ...op.set(AC + 5 + k),
        );
      }
    }
    return out;
  };
  const advance = [
    ...op.get(PTR), ...op.i32(16), ...op.add, ...op.set(PTR),
    ...op.get(A), ...op.get(BSTEP), ...op.add, ...op.set(A),
    ...(row ? [...op.get(B), ...op.i32(16), ...op.add, ...op.set(B)] : []),
  ];
  const clearAccs = [...byteAccs, 4].flatMap((k) => [...vzero(), ...op.set(AC + k)]);
  const flush = [
    ...byteAccs.flatMap((k) => addTo(T + (k < 4 ? k : k + 1), [...op.get(AC + k), ...vop(V.ext16), ...vop(V.ext32)], V.i32add)),
    ...addTo(T + 4, [...op.get(AC + 4), ...vop(V.ext32)], V.i32add),
  ];
  const table = (f: (v: number) => number) => vconst(Array.from({ length: 16 }, (_, v) => f(v)));
  const pop4 = (v: number) => (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1) + ((v >> 3) & 1);
  const code: number[] = [
    ...table(pop4), ...op.set(TP1),
    ...table((v) => (v & 3 ? 1 : 0) + (v & 12 ? 1 : 0)), ...op.set(TP2),
    ...table((v) => (v ? 1 : 0)), ...op.set(TP4),
    ...vrep32(0x0f0f0f0f), ...op.set(C0F),
  ];
  // A's step: a fold without a target ORs into a scratch vector that stays put.
  code.push(...op.i32(16), ...op.set(BSTEP));
  if (!row) {
    code.push(...op.get(A), ...op.i32(0), ...op.ltS, 0x04, 0x40, ...op.get(OUT), ...op.i32(16 * 6), ...op.add, ...op.set(A), ...op.i32(0), ...op.set(BSTEP), 0x0b);
  }
  if (row) {
    for (let k = 0; k < 6; k++) code.push(...op.get(NMP), ...vload(16 * k), ...op.set(PRM + k));
    code.push(...op.get(N), ...op.i32(2), ...op.shrU, ...op.set(FULL), ...op.get(N), ...op.i32(3), ...op.and, ...op.set(TAIL));
  } else {
    code.push(...op.get(N), ...op.i32(3), ...op.add, ...op.i32(2), ...op.shrU, ...op.set(FULL));
  }
  code.push(
    0x02, 0x40, // block $done
    0x03, 0x40, // loop $chunks
    ...op.get(FULL), ...op.eqz, 0x0d, 0x01, // br_if $done
    // chunk = min(full, 31)
    ...op.get(FULL), ...op.i32(31), ...op.get(FULL), ...op.i32(31), ...op.ltS, ...op.select, ...op.set(CHUNK),
  );
  // full -= chunk
  code.push(...op.get(FULL), ...op.get(CHUNK), ...op.sub, ...op.set(FULL));
  code.push(...clearAccs);
  code.push(
    0x03, 0x40, // loop $vectors
    ...op.get(PTR), ...vload(0), ...op.set(W),
    ...body(), ...advance,
    ...op.get(CHUNK), ...op.i32(1), ...op.sub, ...op.tee(CHUNK), 0x0d, 0x00,
    0x0b,
    ...flush,
    0x0c, 0x00, // br $chunks
    0x0b, 0x0b,
  );
  if (row) {
    // The row's last 1-3 words: masked to the row.
    code.push(
      ...op.get(TAIL), 0x04, 0x40,
      ...clearAccs,
      ...op.get(PTR), ...vload(0), ...op.get(TAIL), ...op.simd(SIMD.i32splat), ...vconst([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]),
      ...vop(V.i32gtS), ...op.simd(SIMD.and), ...op.set(W),
      ...body(),
      ...flush,
      0x0b,
    );
  }
  const slots = row ? 9 : 6;
  for (let k = 0; k < slots; k++) code.push(...op.get(OUT), ...op.get(OUT), ...vload(16 * k), ...op.get(T + k), ...vop(V.i32add), ...vstore(16 * k));
  const lane = (i: number) => [...op.get(T), ...op.simd(V.i32extract, i)];
  code.push(...lane(0), ...lane(1), ...op.add, ...lane(2), ...op.add, ...lane(3), ...op.add, 0x0b);
  // locals after the 6 params: i32 x7 (6..12), v128 x38 (13..50)
  const locals = vector([[7, I32], [38, V128]]);
  const all = [...locals, ...code];
  return [...uleb(all.length), ...all];
}

/**
 * scanRows(desc): the row loop of analysis.ts's scanRows for rows read in place. desc (i32s):
 * flat, rows, wordsPerRow, colAny, fed (colAny when none), nnzOut (one i32 per row), rowOut (nine
 * v128 totals, rowStats), nm (rowStats's parameters), H, then per height above 1 (in order):
 * height, accumulator, target (-1: none), out (six v128 totals), the fold levels to count (bit k:
 * level k; foldRow leaves the others at zero).
 * Calls rowStats (function ROW) and foldRow (function FOLD).
 */
function scanRowsBody(ROW: number, FOLD: number): number[] {
  const D = 0, R = 1, ROWS = 2, WPR = 3, PTR = 4, K = 5, H = 6, E = 7;
  const field = (i: number) => [...op.get(D), ...op.load(4 * i)];
  const code: number[] = [
    ...field(1), ...op.set(ROWS), ...field(2), ...op.set(WPR), ...field(0), ...op.set(PTR), ...field(8), ...op.set(H),
    ...op.get(ROWS), ...op.eqz, 0x0d, 0x00,
    0x03, 0x40, // loop rows
    // nnzOut[r] = rowStats(ptr, wpr, colAny, fed, rowOut, nm)
    ...field(5), ...op.get(R), ...op.i32(2), ...op.shl, ...op.add,
    ...op.get(PTR), ...op.get(WPR), ...field(3), ...field(4), ...field(6), ...field(7), 0x10, ...uleb(ROW),
    ...op.store(0),
    ...op.get(PTR), ...op.get(WPR), ...op.i32(2), ...op.shl, ...op.add, ...op.set(PTR),
    ...op.get(R), ...op.i32(1), ...op.add, ...op.set(R),
    // heights whose accumulator is complete
    ...op.i32(0), ...op.set(K),
    0x02, 0x40, 0x03, 0x40,
    ...op.get(K), ...op.get(H), ...op.ltS, ...op.eqz, 0x0d, 0x01,
    ...op.get(D), ...op.get(K), ...op.i32(20), 0x6c /* i32.mul */, ...op.add, ...op.i32(36), ...op.add, ...op.set(E),
    ...op.get(R), ...op.get(E), ...op.load(0), 0x70 /* i32.rem_u */, ...op.eqz, 0x04, 0x40,
    ...op.get(E), ...op.load(4), ...op.get(WPR), ...op.get(E), ...op.load(8), ...op.get(E), ...op.load(16), ...op.get(E), ...op.load(12), ...op.i32(0),
    0x10, ...uleb(FOLD), 0x1a /* drop */,
    0x0b,
    ...op.get(K), ...op.i32(1), ...op.add, ...op.set(K),
    0x0c, 0x00,
    0x0b, 0x0b,
    ...op.get(R), ...op.get(ROWS), ...op.ltS, 0x0d, 0x00,
    0x0b,
    0x0b,
  ];
  const locals = vector([[7, I32]]);
  const all = [...locals, ...code];
  return [...uleb(all.length), ...all];
}

/** The module: memory "memory" (exported, grown by the caller), bits8 / bits16 / bits32 / bits32pos, stats, foldPass, scanRows. */
export function zeroBitsModuleBytes(): Uint8Array<ArrayBuffer> {
  const type = section(1, vector([
    [0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), 0x00],
    [0x60, ...vector([[I32], [I32], [I32], [I32], [I32], [I32]]), 0x01, I32],
    [0x60, ...vector([[I32]]), 0x00],
  ]));
  // Functions: 0 bits8, 1 bits16, 2 bits32, 3 stats, 4 foldPass, 5 bits32pos, 6 rowStats, 7 foldRow, 8 scanRows.
  const funcs = section(3, vector([[0x00], [0x00], [0x00], [0x00], [0x00], [0x00], [0x01], [0x01], [0x02]]));
  const memory = section(5, vector([[0x00, ...uleb(1)]]));
  const exports = section(7, vector([
    [...name('memory'), 0x02, 0x00],
    [...name('bits8'), 0x00, 0x00],
    [...name('bits16'), 0x00, 0x01],
    [...name('bits32'), 0x00, 0x02],
    [...name('stats'), 0x00, 0x03],
    [...name('foldPass'), 0x00, 0x04],
    [...name('bits32pos'), 0x00, 0x05],
    [...name('scanRows'), 0x00, 0x08],
  ]));
  const code = section(10, [
    ...uleb(9), ...kernelBody(1), ...kernelBody(2), ...kernelBody(4), ...countBody('stats'), ...countBody('foldPass'), ...kernelBody(4, true),
    ...simdCountBody('row'), ...simdCountBody('fold'), ...scanRowsBody(6, 7),
  ]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...funcs, ...memory, ...exports, ...code]);
}

// ---------------------------------------------------------------------------------------------
// The kernel instance

type KernelFn = (src: number, groups: number, dst: number, mask: number, ref: number) => void;
type StatsFn = (ptr: number, n: number, colAny: number, fed: number, out: number) => void;
type FoldPassFn = (ptr: number, n: number, target: number, unused: number, out: number) => void;
type ScanRowsFn = (desc: number) => void;

const PAGE = 65536;
// The scratch area (offsets from its start): stats()'s counts and N:M parameters (0..112),
// rowStats's N:M parameters (128), its nine v128 totals (256), scanRows's descriptor (416) and
// the six v128 totals (+ one spare vector) of each height's foldRow (768).
const SCRATCH_BYTES = 2304;
const NM_SIMD = 128;
const ROW_OUT = 256;
const DESC = 416;
const FOLD_OUT = 768;
const FOLD_STRIDE = 112;
/** Block heights above 1 that scanRows takes (more: the per-row loop). */
const MAX_HEIGHTS = 12;

/**
 * One instance per thread. Memory: the input area (`capacity` bytes at 0), the bit words, a
 * scratch area for stats() and an arena for the analysis' word arrays (`wordArrays`). `reserve`
 * before reading: growing the memory detaches every earlier view.
 */
export class ZeroBitsKernel implements BitStatsKernel {
  private capacity = 0;
  private bitsAt = 0;
  private scratchAt = 0;
  private arenaAt = 0;
  private arenaEnd = 0;
  private scratch = new Int32Array(0);
  private nmParams = new BigInt64Array(0);
  /** Bytes of the arena handed out by the last wordArrays. */
  private arenaUsed = 0;
  private constructor(private readonly memory: WebAssembly.Memory, private readonly fns: Record<1 | 2 | 4, KernelFn>,
    private readonly statsFn: StatsFn, private readonly foldPassFn: FoldPassFn, private readonly bits32pos: KernelFn,
    private readonly scanRowsFn: ScanRowsFn) {}

  /** The compiled module, shared by this thread's instances and sent to worker threads (compiled code included). */
  private static compiled: WebAssembly.Module | null | undefined;

  /** The compiled module (compiling it once per process), or null without WebAssembly SIMD. */
  static module(): WebAssembly.Module | null {
    if (ZeroBitsKernel.compiled === undefined) {
      ZeroBitsKernel.compiled = null;
      if (typeof WebAssembly !== 'undefined') {
        const bytes = zeroBitsModuleBytes();
        try {
          if (WebAssembly.validate(bytes)) ZeroBitsKernel.compiled = new WebAssembly.Module(bytes);
        } catch { /* no SIMD: null */ }
      }
    }
    return ZeroBitsKernel.compiled;
  }

  /** Uses `module` (from another thread's ZeroBitsKernel.module(): its optimized code comes along) for create(). */
  static useModule(module: WebAssembly.Module): void {
    ZeroBitsKernel.compiled = module;
  }

  static create(): ZeroBitsKernel | null {
    const module = ZeroBitsKernel.module();
    if (!module) return null;
    try {
      const instance = new WebAssembly.Instance(module, {});
      const e = instance.exports as {
        memory: WebAssembly.Memory; bits8: KernelFn; bits16: KernelFn; bits32: KernelFn; stats: StatsFn; foldPass: FoldPassFn; bits32pos: KernelFn;
        scanRows: ScanRowsFn;
      };
      const kernel = new ZeroBitsKernel(e.memory, { 1: e.bits8, 2: e.bits16, 4: e.bits32 }, e.stats, e.foldPass, e.bits32pos, e.scanRows);
      kernel.reserve(PAGE);
      return kernel;
    } catch {
      return null;
    }
  }

  /** Largest input the kernel takes (its memory stays well inside WebAssembly's 4 GiB); larger weights use the JavaScript path. */
  static readonly MAX_INPUT = 1 << 30;

  /** Makes room for inputs of up to `bytes` bytes, their bits and the analysis arrays; false when it cannot. */
  reserve(bytes: number): boolean {
    if (bytes <= this.capacity) return true;
    if (bytes > ZeroBitsKernel.MAX_INPUT) return false;
    const capacity = Math.ceil(bytes / 128) * 128;
    const bitsAt = capacity;
    const scratchAt = bitsAt + capacity / 8 + 128;
    const arenaAt = scratchAt + SCRATCH_BYTES;
    // Word arrays: a few bit rows (of a matrix with 4 or more rows, or 4-byte elements, they fit
    // in capacity / 4; wordArrays returns null, and the analysis uses its own arrays, otherwise).
    const arenaEnd = arenaAt + capacity / 4 + PAGE;
    const pages = Math.ceil(arenaEnd / PAGE) - this.memory.buffer.byteLength / PAGE;
    try {
      if (pages > 0) this.memory.grow(pages);
    } catch {
      return false; // out of memory: the caller takes the JavaScript path
    }
    Object.assign(this, { capacity, bitsAt, scratchAt, arenaAt, arenaEnd });
    this.scratch = new Int32Array(this.memory.buffer, scratchAt, 10);
    this.nmParams = new BigInt64Array(this.memory.buffer, scratchAt + 40, 9);
    return true;
  }

  /** Groups of 32 elements whose bits `bitsUpTo` has written, and the zero test they used. */
  private cursor = 0;
  private cursorTest = '';

  /**
   * The input area's first `length` bytes (valid until a `reserve` that grows), or null when
   * the kernel cannot take that much; forgets earlier bits.
   */
  input(length: number): Uint8Array | null {
    if (!this.reserve(length)) return null;
    this.cursor = 0;
    return new Uint8Array(this.memory.buffer, 0, length);
  }

  /**
   * Writes the bits of every whole group of 32 elements in the input area's first `bytes` bytes
   * not written yet (the input is arriving piece by piece: PagedFile.readNextRangeInto's onRead);
   * `bits` with the same zero test then only finishes the rest.
   */
  bitsUpTo(bytes: number, width: 1 | 2 | 4, mask: number, ref: number): void {
    const key = `${width} ${mask | 0} ${(ref & mask) | 0}`;
    if (key !== this.cursorTest) { this.cursor = 0; this.cursorTest = key; }
    const groups = Math.floor(Math.min(bytes, this.capacity) / (32 * width));
    if (groups > this.cursor) this.run(this.cursor, groups, width, mask, ref);
    this.cursor = Math.max(this.cursor, groups);
  }

  /**
   * As bitsUpTo, for an input arriving through a ring (PagedFile.readNextRangeInto's `ring`):
   * element group g is read at input offset (g * 32 * width) % ring. `ring` must be a multiple of
   * 32 * width, and the caller calls this after every piece (before the ring overwrites it).
   */
  ringBitsUpTo(bytes: number, ring: number, width: 1 | 2 | 4, mask: number, ref: number): void {
    const key = `${width} ${mask | 0} ${(ref & mask) | 0}`;
    if (key !== this.cursorTest) { this.cursor = 0; this.cursorTest = key; }
    const groupBytes = 32 * width;
    const groups = Math.floor(Math.min(bytes, this.capacity) / groupBytes);
    while (this.cursor < groups) {
      const at = (this.cursor * groupBytes) % ring;
      const n = Math.min(groups - this.cursor, (ring - at) / groupBytes);
      this.run(this.cursor, this.cursor + n, width, mask, ref, at);
      this.cursor += n;
    }
  }

  private run(from: number, to: number, width: 1 | 2 | 4, mask: number, ref: number, src = from * 32 * width): void {
    const r = (ref & mask) | 0;
    // 4-byte elements with a mask below 2^31 and reference 0 (float32 zeros): the shorter kernel.
    const fn = width === 4 && (mask | 0) >= 0 && r === 0 ? this.bits32pos : this.fns[width];
    fn(src, to - from, this.bitsAt + 4 * from, mask | 0, r);
  }

  /** True when `bytes` is this kernel's input area (starting at its first byte). */
  holds(bytes: Uint8Array): boolean {
    return bytes.buffer === this.memory.buffer && bytes.byteOffset === 0 && bytes.byteLength <= this.capacity;
  }

  /**
   * Nonzero bits of `count` elements of `width` bytes at the start of the input area: word i holds
   * elements 32i .. 32i + 31, bit j = element 32i + j (LSB first), padding bits clear. The view is
   * valid until the next call.
   */
  bits(count: number, width: 1 | 2 | 4, mask: number, ref: number): Int32Array {
    if (count * width > this.capacity) throw new RangeError(`${count} elements of ${width} bytes exceed the kernel's ${this.capacity}-byte input area`);
    const words = Math.ceil(count / 32);
    const out = new Int32Array(this.memory.buffer, this.bitsAt, words);
    const groups = Math.floor(count / 32);
    const r = (ref & mask) | 0;
    const key = `${width} ${mask | 0} ${r}`;
    const from = key === this.cursorTest ? Math.min(this.cursor, groups) : 0;
    if (groups > from) this.run(from, groups, width, mask, ref);
    this.cursor = 0;
    this.cursorTest = '';
    if (groups < words) {
      // The tail: fewer than 32 elements, one at a time.
      const view = width === 1 ? new Uint8Array(this.memory.buffer, 0, count)
        : width === 2 ? new Uint16Array(this.memory.buffer, 0, count) : new Int32Array(this.memory.buffer, 0, count);
      let w = 0;
      for (let k = groups * 32, j = 0; k < count; k++, j++) if (((view[k]! & mask) ^ r) !== 0) w |= 1 << j;
      out[groups] = w;
    }
    return out;
  }

  wordArrays(count: number, words: number): Int32Array[] | null {
    const stride = Math.ceil(words / 4) * 16;
    if (this.arenaAt + count * stride > this.arenaEnd) return null;
    this.arenaUsed = count * stride;
    new Uint8Array(this.memory.buffer, this.arenaAt, count * stride).fill(0);
    return Array.from({ length: count }, (_, k) => new Int32Array(this.memory.buffer, this.arenaAt + k * stride, words));
  }

  nmPatterns(patterns: readonly { n: number; m: number }[]): boolean {
    if (patterns.length > 3) return false;
    for (let k = 0; k < 3; k++) {
      const p = patterns[k];
      let level = 0, addend = 0, test = 0;
      if (p) {
        // Field top bit T and the per-field repeat of (T - n - 1) and T.
        const spec = p.m === 2 ? [2, 0x55555555] : p.m === 4 ? [8, 0x11111111] : p.m === 8 ? [128, 0x01010101] : null;
        if (!spec || !(p.n >= 0 && p.n < p.m)) return false;
        const [top, repeat] = spec as [number, number];
        level = p.m;
        addend = Math.imul(top - p.n - 1, repeat);
        test = Math.imul(top, repeat);
      }
      const wide = (x: number) => BigInt(x >>> 0) | (BigInt(x >>> 0) << 32n);
      this.nmParams[3 * k] = BigInt(level);
      this.nmParams[3 * k + 1] = wide(addend);
      this.nmParams[3 * k + 2] = wide(test);
      // rowStats: per slot a nibble table of violating groups (m = 2, 4) and a byte threshold (m = 8).
      const simd = new Uint8Array(this.memory.buffer, this.scratchAt + NM_SIMD, 96);
      const bitsOf = (x: number) => (x & 1) + ((x >> 1) & 1) + ((x >> 2) & 1) + ((x >> 3) & 1);
      for (let v = 0; v < 16; v++) {
        simd[32 * k + v] = !p || p.m === 8 ? 0 : p.m === 4 ? (bitsOf(v) > p.n ? 1 : 0) : (bitsOf(v & 3) > p.n ? 1 : 0) + (bitsOf(v >> 2) > p.n ? 1 : 0);
      }
      simd.fill(p && p.m === 8 ? p.n : 255, 32 * k + 16, 32 * k + 32);
    }
    return true;
  }

  /**
   * The whole row loop in one call (rows read in place from `flat`, as stats() with `start`
   * r * wordsPerRow): the counts of every row into rowFolds / nmOut, then, in height order, each
   * height's completed accumulator counted into its folds, ORed into its target and cleared (as
   * foldPass). Returns each row's nonzero count (a view valid until the next call), or null,
   * having changed nothing, when it cannot take this analysis (too many heights, no room).
   */
  scanRows(flat: Int32Array, rows: number, wordsPerRow: number, colAny: Int32Array, fed: Int32Array | null,
    heights: readonly { height: number; acc: Int32Array; target: Int32Array | null; folds: Float64Array; levels?: number }[],
    rowFolds: Float64Array, nmOut: Float64Array | null): Int32Array | null {
    const nnzAt = this.arenaAt + Math.ceil(this.arenaUsed / 16) * 16;
    if (heights.length > MAX_HEIGHTS || nnzAt + 4 * rows > this.arenaEnd) return null;
    const s = new Int32Array(this.memory.buffer, this.scratchAt, SCRATCH_BYTES / 4);
    const base = this.scratchAt;
    s.fill(0, ROW_OUT / 4, ROW_OUT / 4 + 36);
    s.fill(0, FOLD_OUT / 4, (FOLD_OUT + FOLD_STRIDE * heights.length) / 4);
    const d = DESC / 4;
    s[d] = flat.byteOffset; s[d + 1] = rows; s[d + 2] = wordsPerRow; s[d + 3] = colAny.byteOffset;
    s[d + 4] = (fed ?? colAny).byteOffset; s[d + 5] = nnzAt; s[d + 6] = base + ROW_OUT; s[d + 7] = base + NM_SIMD;
    s[d + 8] = heights.length;
    heights.forEach((h, k) => {
      const e = d + 9 + 5 * k;
      s[e] = h.height; s[e + 1] = h.acc.byteOffset; s[e + 2] = h.target ? h.target.byteOffset : -1; s[e + 3] = base + FOLD_OUT + FOLD_STRIDE * k;
      s[e + 4] = h.levels ?? 63;
    });
    this.scanRowsFn(base + DESC);
    const lanes = (at: number) => s[at]! + s[at + 1]! + s[at + 2]! + s[at + 3]!;
    for (let k = 0; k < 6; k++) rowFolds[k] += lanes(ROW_OUT / 4 + 4 * k);
    if (nmOut) for (let k = 0; k < 3; k++) nmOut[k] += lanes(ROW_OUT / 4 + 24 + 4 * k);
    heights.forEach((h, i) => {
      for (let k = 0; k < 6; k++) h.folds[k] += lanes((FOLD_OUT + FOLD_STRIDE * i) / 4 + 4 * k);
    });
    return new Int32Array(this.memory.buffer, nnzAt, rows);
  }

  owns(words: Int32Array): boolean {
    return words.buffer === this.memory.buffer;
  }

  // The arrays passed below come from wordArrays or bits (the caller checked with owns); only
  // their offsets are used.
  stats(words: Int32Array, start: number, length: number, colAny: Int32Array, fed: Int32Array | null, folds: Float64Array, nmOut: Float64Array | null): void {
    this.statsFn(words.byteOffset + 4 * start, length, colAny.byteOffset, fed ? fed.byteOffset : -1, this.scratchAt);
    const s = this.scratch;
    folds[0] += s[0]!; folds[1] += s[1]!; folds[2] += s[2]!; folds[3] += s[3]!; folds[4] += s[4]!; folds[5] += s[5]!;
    if (nmOut) { nmOut[0] += s[6]!; nmOut[1] += s[7]!; nmOut[2] += s[8]!; }
  }

  foldPass(words: Int32Array, target: Int32Array | null, folds: Float64Array): void {
    this.foldPassFn(words.byteOffset, words.length, target ? target.byteOffset : -1, -1, this.scratchAt);
    const s = this.scratch;
    folds[0] += s[0]!; folds[1] += s[1]!; folds[2] += s[2]!; folds[3] += s[3]!; folds[4] += s[4]!; folds[5] += s[5]!;
  }
}
