/**
 * The audit's zero-bitmap kernel in WebAssembly SIMD, written out byte by byte here (no
 * toolchain, no download): for 1-, 2- and 4-byte elements, 32 elements at a time, the word whose
 * bit j is 1 when element j is nonzero, i.e. when (x & mask) !== ref (the zero test of
 * analysis.ts's ZeroScanner; ref already masked). Elements are compared 16 bytes at a time, the
 * per-lane results narrowed to bytes and gathered with i8x16.bitmask.
 *
 * Weights are read from the file straight into the module's memory (`ZeroBitsKernel.input`), so
 * the bytes are touched once by the read and once by the kernel, with no copy in between.
 * `createZeroBitsKernel` returns null where WebAssembly SIMD is not available; the caller then
 * uses the JavaScript kernels of analysis.ts (same bits).
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
  i8bitmask: 0x64, i8narrow16: 0x65, i16narrow32: 0x85,
};
const vload = (offset: number) => op.simd(SIMD.load, 0x04, ...uleb(offset));

/**
 * One kernel function (src, groups, dst, mask, ref): for each of `groups` groups of 32 elements
 * at src, stores the nonzero-bits word at dst (both advanced). Locals: 0 src, 1 groups, 2 dst,
 * 3 mask, 4 ref (params), 5 maskV, 6 refV (v128), 7 low half (i32).
 */
function kernelBody(width: 1 | 2 | 4): number[] {
  const splat = width === 1 ? SIMD.i8splat : width === 2 ? SIMD.i16splat : SIMD.i32splat;
  const eq = width === 1 ? SIMD.i8eq : width === 2 ? SIMD.i16eq : SIMD.i32eq;
  // Zero flags (all-ones lanes) of the 16 bytes at src + offset.
  const zeroLanes = (offset: number) => [...op.get(0), ...vload(offset), ...op.get(5), ...op.simd(SIMD.and), ...op.get(6), ...op.simd(eq)];
  // 16 elements starting `offset` bytes after src, as a 16-bit mask of zero elements.
  const half = (offset: number): number[] => {
    if (width === 1) return [...zeroLanes(offset), ...op.simd(SIMD.i8bitmask)];
    if (width === 2) return [...zeroLanes(offset), ...zeroLanes(offset + 16), ...op.simd(SIMD.i8narrow16), ...op.simd(SIMD.i8bitmask)];
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

/**
 * stats(ptr, n, colAny, fed, out): over the n bit words at ptr, the counts analysis.ts's addRowStats
 * takes from its byte tables, with popcounts instead: out[0..5] = set bits, nonzero bit pairs,
 * nibbles, bytes, 16-bit halves, words; out[6..8] = N:M violations of three patterns described at
 * out[9..17] (per slot: field width 2/4/8 (0: none), the addend and the test mask; a group
 * violates when its bit count c > n, i.e. when c + (T - n - 1) reaches the field's top bit T).
 * colAny and fed (when >= 0) get every word ORed in. Locals: 0 ptr, 1 n, 2 colAny, 3 fed, 4 out,
 * 5 w, 6..11 fold counts, 12..14 N:M counts, 15 x2, 16 x4, 17 x8, 18 p, 19..27 N:M slots.
 */
function statsBody(): number[] {
  const W = 5, X2 = 15, X4 = 16, X8 = 17, P = 18;
  const addPop = (counter: number, value: number[]) => [...value, ...op.popcnt, ...op.get(counter), ...op.add, ...op.set(counter)];
  const orInto = (ptr: number) => [
    ...op.get(ptr), ...op.i32(0), ...op.ltS, ...op.eqz, 0x04, 0x40, // if ptr >= 0
    ...op.get(ptr), ...op.get(ptr), ...op.load(0), ...op.get(W), ...op.or, ...op.store(0),
    ...op.get(ptr), ...op.i32(4), ...op.add, ...op.set(ptr),
    0x0b,
  ];
  // p = (p | p >>> s) & m; counter += popcnt(p)
  const fold = (counter: number, shift: number, mask: number) => [
    ...op.get(P), ...op.get(P), ...op.i32(shift), ...op.shrU, ...op.or, ...op.i32(mask), ...op.and, ...op.tee(P),
    ...op.popcnt, ...op.get(counter), ...op.add, ...op.set(counter),
  ];
  const nmSlot = (k: number) => {
    const level = 19 + 3 * k, addend = 20 + 3 * k, test = 21 + 3 * k;
    return addPop(12 + k, [
      ...op.get(X2), ...op.get(X4), ...op.get(X8), ...op.get(level), ...op.i32(4), ...op.eq, ...op.select,
      ...op.get(level), ...op.i32(2), ...op.eq, ...op.select,
      ...op.get(addend), ...op.add, ...op.get(test), ...op.and,
    ]);
  };
  const body: number[] = [];
  for (let k = 0; k < 9; k++) body.push(...op.get(4), ...op.load(36 + 4 * k), ...op.set(19 + k));
  body.push(
    ...op.get(1), ...op.eqz, 0x04, 0x40, 0x05, // if n == 0 (nothing) else
    0x03, 0x40, // loop
    ...op.get(0), ...op.load(0), ...op.set(W),
    ...orInto(2), ...orInto(3),
    ...addPop(6, op.get(W)),
    ...op.get(W), ...op.set(P),
    ...fold(7, 1, 0x55555555), ...fold(8, 2, 0x11111111), ...fold(9, 4, 0x01010101), ...fold(10, 8, 0x00010001),
    ...op.get(W), ...op.i32(0), ...op.ne, ...op.get(11), ...op.add, ...op.set(11),
    // x2: bit counts of pairs, x4 of nibbles, x8 of bytes
    ...op.get(W), ...op.get(W), ...op.i32(1), ...op.shrU, ...op.i32(0x55555555), ...op.and, ...op.sub, ...op.set(X2),
    ...op.get(X2), ...op.i32(0x33333333), ...op.and, ...op.get(X2), ...op.i32(2), ...op.shrU, ...op.i32(0x33333333), ...op.and, ...op.add, ...op.set(X4),
    ...op.get(X4), ...op.get(X4), ...op.i32(4), ...op.shrU, ...op.add, ...op.i32(0x0f0f0f0f), ...op.and, ...op.set(X8),
    ...nmSlot(0), ...nmSlot(1), ...nmSlot(2),
    ...op.get(0), ...op.i32(4), ...op.add, ...op.set(0),
    ...op.get(1), ...op.i32(1), ...op.sub, ...op.tee(1),
    0x0d, 0x00, // br_if loop
    0x0b, // end loop
    0x0b, // end if
  );
  for (let k = 0; k < 9; k++) body.push(...op.get(4), ...op.get(6 + k), ...op.store(4 * k));
  body.push(0x0b);
  const locals = vector([[23, I32]]);
  const code = [...locals, ...body];
  return [...uleb(code.length), ...code];
}

/** The module: memory "memory" (exported, grown by the caller) and bits8 / bits16 / bits32. */
export function zeroBitsModuleBytes(): Uint8Array<ArrayBuffer> {
  const type = section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), 0x00]]));
  const funcs = section(3, vector([[0x00], [0x00], [0x00], [0x00]]));
  const memory = section(5, vector([[0x00, ...uleb(1)]]));
  const exports = section(7, vector([
    [...name('memory'), 0x02, 0x00],
    [...name('bits8'), 0x00, 0x00],
    [...name('bits16'), 0x00, 0x01],
    [...name('bits32'), 0x00, 0x02],
    [...name('stats'), 0x00, 0x03],
  ]));
  const code = section(10, [...uleb(4), ...kernelBody(1), ...kernelBody(2), ...kernelBody(4), ...statsBody()]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...type, ...funcs, ...memory, ...exports, ...code]);
}

// ---------------------------------------------------------------------------------------------
// The kernel instance

type KernelFn = (src: number, groups: number, dst: number, mask: number, ref: number) => void;
type StatsFn = (ptr: number, n: number, colAny: number, fed: number, out: number) => void;

const PAGE = 65536;
const SCRATCH_BYTES = 128;

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
  private constructor(private readonly memory: WebAssembly.Memory, private readonly fns: Record<1 | 2 | 4, KernelFn>, private readonly statsFn: StatsFn) {}

  static create(): ZeroBitsKernel | null {
    if (typeof WebAssembly === 'undefined') return null;
    const bytes = zeroBitsModuleBytes();
    try {
      if (!WebAssembly.validate(bytes)) return null;
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
      const e = instance.exports as { memory: WebAssembly.Memory; bits8: KernelFn; bits16: KernelFn; bits32: KernelFn; stats: StatsFn };
      const kernel = new ZeroBitsKernel(e.memory, { 1: e.bits8, 2: e.bits16, 4: e.bits32 }, e.stats);
      kernel.reserve(PAGE);
      return kernel;
    } catch {
      return null;
    }
  }

  /** Makes room for inputs of up to `bytes` bytes, their bits and the analysis arrays. */
  reserve(bytes: number): void {
    if (bytes <= this.capacity) return;
    const capacity = Math.ceil(bytes / 128) * 128;
    const bitsAt = capacity;
    const scratchAt = bitsAt + capacity / 8 + 128;
    const arenaAt = scratchAt + SCRATCH_BYTES;
    // Word arrays: a few bit rows; for a one-row weight of bytes each row is capacity / 8 bytes.
    const arenaEnd = arenaAt + 2 * capacity + PAGE;
    const pages = Math.ceil(arenaEnd / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    Object.assign(this, { capacity, bitsAt, scratchAt, arenaAt, arenaEnd });
    this.scratch = new Int32Array(this.memory.buffer, scratchAt, SCRATCH_BYTES / 4);
  }

  /** Bytes of memory the instance has (reserved; the system commits only pages touched). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** The input area's first `length` bytes (valid until a `reserve` that grows). */
  input(length: number): Uint8Array {
    this.reserve(length);
    return new Uint8Array(this.memory.buffer, 0, length);
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
    this.fns[width](0, groups, this.bitsAt, mask | 0, r);
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
        level = p.m === 8 ? 8 : p.m;
        addend = Math.imul(top - p.n - 1, repeat);
        test = Math.imul(top, repeat);
      }
      this.scratch[9 + 3 * k] = level;
      this.scratch[10 + 3 * k] = addend;
      this.scratch[11 + 3 * k] = test;
    }
    return true;
  }

  stats(words: Int32Array, colAny: Int32Array | null, fed: Int32Array | null, folds: Float64Array, nmOut: Float64Array | null): void {
    const own = (a: Int32Array) => a.buffer === this.memory.buffer;
    if (!own(words) || (colAny && !own(colAny)) || (fed && !own(fed))) throw new RangeError('stats() needs word arrays from this kernel (wordArrays)');
    this.statsFn(words.byteOffset, words.length, colAny ? colAny.byteOffset : -1, fed ? fed.byteOffset : -1, this.scratchAt);
    const s = this.scratch;
    for (let k = 0; k < 6; k++) folds[k] += s[k]!;
    if (nmOut) for (let k = 0; k < 3; k++) nmOut[k] += s[6 + k]!;
  }
}
