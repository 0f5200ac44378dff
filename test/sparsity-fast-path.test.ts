/**
 * The fast path of sparsityFromDense / denseFromSparsity (the last original level SPARSE_CSR, every
 * other level dense, at most one block level) against the generic walk it specialises: random
 * masks and densities, every element type it takes, all three index widths, empty rows, first and
 * last element, leading dense levels in any traversal order, blocks along either dimension. Outputs
 * must be equal array for array (types included) and byte for byte. Layouts outside the fast path
 * must give the generic walk's output too (they take it). firstSparseMismatch (the writer's check
 * without decoding) finds exactly the first element a decode-and-compare finds.
 * Run: npx tsc -p . && node --test dist/test/sparsity-fast-path.test.js
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NumericArray } from '../src/model/dtype.js';
import {
  denseFromSparsity, denseFromSparsityGeneric, firstSparseMismatch, setOnePassScratchLimit, sparsityFromDense, sparsityFromDenseGeneric,
  type LevelFormat, type ZeroTest,
} from '../src/sparsity/format-converter.js';
import type { SparsityParams } from '../src/sparsity/types.js';
import { verifySparsity } from '../src/sparsity/verify-sparsity.js';
import { mulberry32 } from '../src/random.js';

const D = 'DENSE' as const;
const S = 'SPARSE_CSR' as const;

type Kind = 'float32' | 'float16' | 'int8' | 'uint8' | 'int16' | 'float8';

/** A dense array of `kind` with about `density` nonzeros; zeros of either sign where the type has them. */
function randomDense(kind: Kind, count: number, density: number, random: () => number): NumericArray {
  const nonzero = () => random() < density;
  switch (kind) {
    case 'float32': {
      const a = new Float32Array(count);
      for (let i = 0; i < count; i++) a[i] = nonzero() ? (random() - 0.5) * 10 : (random() < 0.1 ? -0 : 0);
      return a;
    }
    case 'float16': {
      const a = new Uint16Array(count);
      for (let i = 0; i < count; i++) a[i] = nonzero() ? 1 + Math.floor(random() * 0xfffe) : (random() < 0.1 ? 0x8000 : 0);
      return a;
    }
    case 'int8': {
      const a = new Int8Array(count);
      for (let i = 0; i < count; i++) a[i] = nonzero() ? (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 127)) : 0;
      return a;
    }
    case 'uint8': case 'float8': {
      const a = new Uint8Array(count);
      for (let i = 0; i < count; i++) a[i] = nonzero() ? 1 + Math.floor(random() * 255) : (kind === 'float8' && random() < 0.2 ? 0x80 : 0);
      return a;
    }
    case 'int16': {
      const a = new Int16Array(count);
      for (let i = 0; i < count; i++) a[i] = nonzero() ? (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 32000)) : 0;
      return a;
    }
  }
}

const ZERO_TEST: Record<Kind, ZeroTest | undefined> = { float32: undefined, float16: 'float16', int8: undefined, uint8: undefined, int16: undefined, float8: 'float8e4m3fn' };

function bytesOf(a: NumericArray): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Equal params (index vector types and contents) and byte-identical values. */
function assertSameEncoding(fast: { params: SparsityParams; values: NumericArray }, generic: { params: SparsityParams; values: NumericArray }, what: string): void {
  assert.deepStrictEqual(fast.params, generic.params, `${what}: params`);
  assert.equal(fast.values.constructor, generic.values.constructor, `${what}: values type`);
  assert.equal(fast.values.length, generic.values.length, `${what}: values length`);
  assert.ok(bytesOf(fast.values).equals(bytesOf(generic.values)), `${what}: values bytes`);
}

interface Layout { traversalOrder: number[]; blockMap: number[]; blockSize: number[]; formats: LevelFormat[] }

/** Every fast-path layout of a shape: each traversal order with its last original level sparse, with no block or one block that divides. */
function fastLayouts(shape: number[]): Layout[] {
  const n = shape.length;
  const perms = (items: number[]): number[][] => (items.length <= 1 ? [items]
    : items.flatMap((x, i) => perms([...items.slice(0, i), ...items.slice(i + 1)]).map((r) => [x, ...r])));
  const out: Layout[] = [];
  for (const perm of perms([...Array(n).keys()])) {
    const formats = new Array<LevelFormat>(n).fill(D);
    formats[perm[n - 1]!] = S;
    out.push({ traversalOrder: perm, blockMap: [], blockSize: [], formats });
    for (let d = 0; d < n; d++) {
      for (const size of [2, 4, 16]) {
        if (shape[d]! % size === 0 && shape[d]! > size) out.push({ traversalOrder: [...perm, n], blockMap: [d], blockSize: [size], formats: [...formats, D] });
      }
    }
  }
  return out;
}

function check(dense: NumericArray, shape: number[], layout: Layout, isZero: ZeroTest | undefined, what: string): { params: SparsityParams; values: NumericArray } {
  const args = [shape, layout.traversalOrder, layout.blockMap, layout.blockSize, layout.formats, isZero] as const;
  const fast = sparsityFromDense(dense, ...args);
  const generic = sparsityFromDenseGeneric(dense, ...args);
  assertSameEncoding(fast, generic, what);
  verifySparsity(fast.params, shape, fast.values.length);
  // Decoding: fast and generic decoders agree, from either encoding, also into a dirty output array.
  const back = denseFromSparsity(fast.values, shape, fast.params);
  const backGeneric = denseFromSparsityGeneric(generic.values, shape, generic.params);
  assert.ok(bytesOf(back).equals(bytesOf(backGeneric)), `${what}: decoded bytes`);
  const dirty = dense.slice() as NumericArray;
  (dirty as Uint8Array).fill(7);
  assert.equal(denseFromSparsity(fast.values, shape, fast.params, dirty), dirty);
  assert.ok(bytesOf(dirty).equals(bytesOf(back)), `${what}: decoded into a given array`);
  return fast;
}

test('fast path = generic walk: random masks, every element type, layout and density', () => {
  const random = mulberry32(11);
  const shapes = [[1, 1], [1, 8], [8, 1], [5, 12], [16, 16], [3, 4, 8], [2, 3, 4, 4], [7, 64]];
  let cases = 0;
  for (const kind of ['float32', 'float16', 'int8', 'uint8', 'int16', 'float8'] as Kind[]) {
    for (const shape of shapes) {
      const count = shape.reduce((a, b) => a * b, 1);
      for (const density of [0, 0.05, 0.2, 0.5, 0.8, 1]) {
        const dense = randomDense(kind, count, density, random);
        for (const layout of fastLayouts(shape)) {
          check(dense, shape, layout, ZERO_TEST[kind], `${kind} [${shape}] density ${density} ${JSON.stringify(layout)}`);
          cases++;
        }
      }
    }
  }
  assert.ok(cases > 1000, `${cases} cases`);
});

test('fast path: the two-pass fill (tensors too large for the scratch) gives the same output as the one-pass fill', () => {
  const random = mulberry32(23);
  const previous = setOnePassScratchLimit(0);
  let cases = 0;
  try {
    for (const kind of ['float32', 'float16', 'int8'] as Kind[]) {
      for (const shape of [[5, 12], [16, 16], [3, 4, 8], [7, 64]]) {
        const count = shape.reduce((a, b) => a * b, 1);
        for (const density of [0, 0.2, 0.8, 1]) {
          const dense = randomDense(kind, count, density, random);
          for (const layout of fastLayouts(shape)) {
            check(dense, shape, layout, ZERO_TEST[kind], `two-pass ${kind} [${shape}] density ${density} ${JSON.stringify(layout)}`);
            cases++;
          }
        }
      }
    }
  } finally {
    setOnePassScratchLimit(previous);
  }
  assert.ok(cases > 100, `${cases} cases`);
});

test('fast path: results never share the one-pass scratch (a later encoding leaves an earlier one intact)', () => {
  const random = mulberry32(29);
  const shape = [16, 16];
  const layout: Layout = { traversalOrder: [0, 1], blockMap: [], blockSize: [], formats: [D, S] };
  const first = randomDense('float32', 256, 0.5, random);
  const a = sparsityFromDense(first, shape, layout.traversalOrder, layout.blockMap, layout.blockSize, layout.formats);
  const before = bytesOf(a.values.slice() as NumericArray);
  const indicesBefore = Array.from((a.params.dimMetadata[1] as { indices: Uint8Array }).indices);
  sparsityFromDense(randomDense('float32', 256, 0.9, random), shape, layout.traversalOrder, layout.blockMap, layout.blockSize, layout.formats);
  assert.ok(bytesOf(a.values).equals(before), 'values of the first encoding');
  assert.deepEqual(Array.from((a.params.dimMetadata[1] as { indices: Uint8Array }).indices), indicesBefore, 'indices of the first encoding');
  assert.equal(firstSparseMismatch(a.values, shape, a.params, first), -1);
});

test('fast path: index widths u8 / u16 / i32, from the largest stored index and the stored count', () => {
  const random = mulberry32(5);
  const layout = (blocks: number): Layout => (blocks > 1
    ? { traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [blocks], formats: [D, S, D] }
    : { traversalOrder: [0, 1], blockMap: [], blockSize: [], formats: [D, S] });
  // [rows, cols, the column forced nonzero (the largest stored one), block size, expected index type]
  const cases: Array<[number, number, number, number, string]> = [
    [2, 256, 255, 1, 'Uint8Array'],        // largest index 255: u8
    [2, 300, 255, 1, 'Uint8Array'],        // 300 columns but nothing stored past 255: still u8
    [2, 300, 256, 1, 'Uint16Array'],
    [2, 65537, 65535, 1, 'Uint16Array'],
    [2, 65537, 65536, 1, 'Int32Array'],
    [2, 4 * 300, 4 * 256 + 3, 4, 'Uint16Array'], // block index 256
    [2, 16 * 256, 16 * 255, 16, 'Uint8Array'],   // block index 255
  ];
  for (const [rows, cols, column, b, indexType] of cases) {
    const dense = new Float32Array(rows * cols);
    for (let i = 0; i < dense.length; i++) if (random() < 0.1 && i % cols < (column - (column % b))) dense[i] = 1;
    dense[cols + column] = 2; // row 1
    const { params } = check(dense, [rows, cols], layout(b), undefined, `[${rows}, ${cols}] column ${column} block ${b}`);
    const level = params.dimMetadata[1]!;
    assert.ok(level.format === S);
    assert.equal(level.indices.constructor.name, indexType, `indices of [${rows}, ${cols}] column ${column}`);
  }
  // Segments by the stored count: > 255 -> u16, > 65535 -> i32.
  for (const [count, type] of [[255, 'Uint8Array'], [256, 'Uint16Array'], [65535, 'Uint16Array'], [65536, 'Int32Array']] as const) {
    const dense = new Int8Array(count + 5);
    dense.fill(1, 0, count);
    const { params } = check(dense, [1, count + 5], layout(1), undefined, `${count} stored`);
    assert.equal((params.dimMetadata[1] as { segments: object }).segments.constructor.name, type);
  }
});

test('fast path: empty rows, all-zero and full tensors, first and last element', () => {
  const layouts: Layout[] = [
    { traversalOrder: [0, 1], blockMap: [], blockSize: [], formats: [D, S] },
    { traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [4], formats: [D, S, D] },
    { traversalOrder: [1, 0, 2], blockMap: [1], blockSize: [4], formats: [S, D, D] },
  ];
  const shape = [6, 8];
  const variants: Array<[string, (a: Float32Array) => void]> = [
    ['all zero', () => {}],
    ['all -0.0', (a) => a.fill(-0)],
    ['full', (a) => a.fill(3)],
    ['first element only', (a) => { a[0] = 1; }],
    ['last element only', (a) => { a[a.length - 1] = -1; }],
    ['first and last', (a) => { a[0] = 1; a[a.length - 1] = 2; }],
    ['empty rows between', (a) => { a.fill(1, 0, 8); a.fill(1, 40, 48); }],
    ['one column', (a) => { for (let r = 0; r < 6; r++) a[r * 8 + 5] = r + 1; }],
    ['infinities and a NaN', (a) => { a[3] = Infinity; a[17] = -Infinity; a[30] = NaN; }],
  ];
  for (const [name, fill] of variants) {
    const dense = new Float32Array(48);
    fill(dense);
    for (const layout of layouts) {
      const { params, values } = check(dense, shape, layout, undefined, `${name} ${JSON.stringify(layout)}`);
      if (name === 'all zero' || name === 'all -0.0') {
        assert.equal(values.length, 0);
        assert.deepEqual(Array.from((params.dimMetadata.find((m) => m.format === S) as { segments: Uint8Array }).segments), new Array(params.dimMetadata[0]!.format === D ? (params.dimMetadata[0] as { denseSize: number }).denseSize + 1 : 0).fill(0));
      }
    }
  }
});

test('fast path copies float32 bit patterns exactly (a signaling NaN keeps its payload)', () => {
  const dense = new Float32Array(8);
  const bits = new Uint32Array(dense.buffer);
  bits[2] = 0x7f800001; // signaling NaN
  bits[5] = 0xffc12345; // quiet NaN with a payload
  bits[6] = 0x80000001; // negative denormal
  const { values, params } = sparsityFromDense(dense, [2, 4], [0, 1], [], [], [D, S]);
  assert.deepEqual(Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length)), [0x7f800001, 0xffc12345, 0x80000001]);
  const back = denseFromSparsity(values, [2, 4], params);
  assert.ok(bytesOf(back).equals(bytesOf(dense)));
});

test('layouts outside the fast path (sparse outer levels, two blocks, predicates, int32, float64) still give the generic output', () => {
  const random = mulberry32(3);
  const dense = new Float32Array(64);
  for (let i = 0; i < 64; i++) if (random() < 0.3) dense[i] = i + 1;
  const layouts: Layout[] = [
    { traversalOrder: [0, 1], blockMap: [], blockSize: [], formats: [S, S] },
    { traversalOrder: [0, 1], blockMap: [], blockSize: [], formats: [S, D] },
    { traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [4], formats: [S, D, D] },
    { traversalOrder: [0, 1, 2, 3], blockMap: [0, 1], blockSize: [2, 2], formats: [D, S, D, D] },
  ];
  for (const layout of layouts) check(dense, [8, 8], layout, undefined, JSON.stringify(layout));
  const csr: Layout = { traversalOrder: [0, 1], blockMap: [], blockSize: [], formats: [D, S] };
  check(Int32Array.from(dense), [8, 8], csr, undefined, 'int32');
  check(Float64Array.from(dense), [8, 8], csr, undefined, 'float64');
  check(dense, [8, 8], csr, (i) => i % 3 === 0, 'predicate');
});

/** Integer bits of each element (float32 as int32, 16-bit as uint16, 8-bit as uint8). */
function bitsOf(a: NumericArray): Int32Array | Uint16Array | Uint8Array {
  if (a.BYTES_PER_ELEMENT === 4) return new Int32Array(a.buffer, a.byteOffset, a.length);
  if (a.BYTES_PER_ELEMENT === 2) return new Uint16Array(a.buffer, a.byteOffset, a.length);
  return new Uint8Array(a.buffer, a.byteOffset, a.length);
}

/** First index where the (generic) decode differs from `dense` other than a zero of either sign: the reference for firstSparseMismatch. */
function decodeMismatch(values: NumericArray, shape: number[], params: SparsityParams, dense: NumericArray, mask: number): number {
  const x = bitsOf(dense);
  const y = bitsOf(denseFromSparsityGeneric(values, shape, params));
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && ((x[i]! & mask) !== 0 || (y[i]! & mask) !== 0)) return i;
  return -1;
}

test('firstSparseMismatch: -1 for every correct encoding, the decode-and-compare index for corrupted ones, null outside the fast path', () => {
  const random = mulberry32(21);
  const kinds: Array<[Kind, number]> = [['float32', 0x7fffffff], ['float16', 0x7fff], ['int8', 0xff]];
  let corrupted = 0;
  for (const [kind, mask] of kinds) {
    for (const shape of [[5, 12], [4, 16], [3, 4, 8]]) {
      const count = shape.reduce((a, b) => a * b, 1);
      for (const density of [0, 0.2, 0.8]) {
        const dense = randomDense(kind, count, density, random);
        for (const layout of fastLayouts(shape)) {
          const what = `${kind} [${shape}] ${density} ${JSON.stringify(layout)}`;
          const { params, values } = sparsityFromDense(dense, shape, layout.traversalOrder, layout.blockMap, layout.blockSize, layout.formats, ZERO_TEST[kind]);
          assert.equal(firstSparseMismatch(values, shape, params, dense, ZERO_TEST[kind]), -1, what);
          // A changed stored value, or a dense nonzero where nothing is stored.
          const badValues = values.slice() as NumericArray;
          if (badValues.length) {
            const bits = bitsOf(badValues);
            const at = Math.floor(random() * bits.length);
            bits[at] = (bits[at]! & mask) === 0 ? 3 : bits[at]! ^ 0x11;
            assert.equal(firstSparseMismatch(badValues, shape, params, dense, ZERO_TEST[kind]), decodeMismatch(badValues, shape, params, dense, mask), `${what}: value`);
            corrupted++;
          }
          const badDense = dense.slice() as NumericArray;
          const denseBits = bitsOf(badDense);
          const backBits = bitsOf(denseFromSparsity(values, shape, params));
          const zeroAt: number[] = [];
          for (let i = 0; i < count; i++) if ((backBits[i]! & mask) === 0 && (denseBits[i]! & mask) === 0) zeroAt.push(i);
          if (zeroAt.length) {
            denseBits[zeroAt[Math.floor(random() * zeroAt.length)]!] = 5;
            const got = firstSparseMismatch(values, shape, params, badDense, ZERO_TEST[kind]);
            assert.ok(got !== null && got >= 0, `${what}: unstored nonzero found`);
            assert.equal(got, decodeMismatch(values, shape, params, badDense, mask), `${what}: unstored nonzero index`);
            corrupted++;
          }
        }
      }
    }
  }
  assert.ok(corrupted > 200, `${corrupted} corruptions`);
  const dense = Float32Array.from({ length: 16 }, (_, i) => (i % 3 ? i : 0));
  const sparseRows = sparsityFromDense(dense, [4, 4], [0, 1], [], [], [S, S]);
  assert.equal(firstSparseMismatch(sparseRows.values, [4, 4], sparseRows.params, dense), null);
  const csr = sparsityFromDense(dense, [4, 4], [0, 1], [], [], [D, S]);
  assert.equal(firstSparseMismatch(csr.values, [4, 4], csr.params, dense, (i) => i === 0), null, 'predicates: decode instead');
  assert.equal(firstSparseMismatch(Float64Array.from(csr.values), [4, 4], csr.params, Float64Array.from(dense)), null, 'float64: decode instead');
});
