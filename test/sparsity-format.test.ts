/**
 * TFLite sparsity format converter and verifier:
 *  - golden vectors: every case of TFLite's sparsity_format_converter_test.cc and the
 *    sparse_tensor.json example (tensorflow/lite/testdata), transcribed as data;
 *  - seeded property tests against a naive recursive model of the reference semantics;
 *  - one-field corruptions that the verifier must reject.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrunepackError } from '../src/errors.js';
import type { NumericArray } from '../src/model/dtype.js';
import {
  denseFromSparsity, narrowestIndexVector, sparsityFromDense, type LevelFormat, type ZeroTest,
} from '../src/sparsity/format-converter.js';
import { verifySparsity } from '../src/sparsity/verify-sparsity.js';
import type { DimensionMetadata, SparsityParams } from '../src/sparsity/types.js';
import { mulberry32 } from '../src/random.js';

const D = 'DENSE' as const;
const S = 'SPARSE_CSR' as const;

/** Expected level metadata: a dense size, or [segments, indices]. */
type ExpectedLevel = number | [number[], number[]];

interface GoldenCase {
  name: string;
  dense: number[];
  shape: number[];
  traversalOrder: number[];
  /** As in the reference: one format per ORIGINAL dimension. */
  formats: LevelFormat[];
  blockSize?: number[];
  blockMap?: number[];
  levels: ExpectedLevel[];
  values: number[];
}

const M12 = [6, 0, 9, 8, 0, 0, 0, 0, 5, 0, 0, 7];
const B16 = [1, 0, 2, 3, 0, 4, 0, 0, 0, 0, 5, 0, 0, 0, 0, 6];

// tensorflow/lite/kernels/internal/utils/sparsity_format_converter_test.cc, all 18 cases.
const GOLDEN: GoldenCase[] = [
  { name: 'SimpleTestD0D1', dense: M12, shape: [3, 4], traversalOrder: [0, 1], formats: [D, D],
    levels: [3, 4], values: M12 },
  { name: 'SimpleTestS0D1', dense: M12, shape: [3, 4], traversalOrder: [0, 1], formats: [S, D],
    levels: [[[0, 2], [0, 2]], 4], values: [6, 0, 9, 8, 5, 0, 0, 7] },
  { name: 'SimpleTestD0S1', dense: M12, shape: [3, 4], traversalOrder: [0, 1], formats: [D, S],
    levels: [3, [[0, 3, 3, 5], [0, 2, 3, 0, 3]]], values: [6, 9, 8, 5, 7] },
  { name: 'SimpleTestS0S1', dense: M12, shape: [3, 4], traversalOrder: [0, 1], formats: [S, S],
    levels: [[[0, 2], [0, 2]], [[0, 3, 5], [0, 2, 3, 0, 3]]], values: [6, 9, 8, 5, 7] },
  { name: 'SimpleTestD1D0', dense: M12, shape: [3, 4], traversalOrder: [1, 0], formats: [D, D],
    levels: [4, 3], values: [6, 0, 5, 0, 0, 0, 9, 0, 0, 8, 0, 7] },
  { name: 'SimpleTestS1D0', dense: M12, shape: [3, 4], traversalOrder: [1, 0], formats: [D, S],
    levels: [[[0, 3], [0, 2, 3]], 3], values: [6, 0, 5, 9, 0, 0, 8, 0, 7] },
  { name: 'SimpleTestD1S0', dense: M12, shape: [3, 4], traversalOrder: [1, 0], formats: [S, D],
    levels: [4, [[0, 2, 2, 3, 5], [0, 2, 0, 0, 2]]], values: [6, 5, 9, 8, 7] },
  { name: 'SimpleTestS1S0', dense: M12, shape: [3, 4], traversalOrder: [1, 0], formats: [S, S],
    levels: [[[0, 3], [0, 2, 3]], [[0, 2, 3, 5], [0, 2, 0, 0, 2]]], values: [6, 5, 9, 8, 7] },
  { name: '3DTestS0D1S2', dense: M12, shape: [3, 2, 2], traversalOrder: [0, 1, 2], formats: [S, D, S],
    levels: [[[0, 2], [0, 2]], 2, [[0, 1, 3, 4, 5], [0, 0, 1, 0, 1]]], values: [6, 9, 8, 5, 7] },
  { name: '3DTestD0D1S2', dense: M12, shape: [3, 2, 2], traversalOrder: [0, 1, 2], formats: [D, D, S],
    levels: [3, 2, [[0, 1, 3, 3, 3, 4, 5], [0, 0, 1, 0, 1]]], values: [6, 9, 8, 5, 7] },
  { name: '3DTestS0S1S2',
    dense: [1, 7, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 4, 8, 3, 9],
    shape: [3, 4, 2], traversalOrder: [0, 1, 2], formats: [S, S, S],
    levels: [[[0, 2], [0, 2]], [[0, 2, 5], [0, 2, 0, 2, 3]], [[0, 2, 3, 4, 6, 8], [0, 1, 1, 1, 0, 1, 0, 1]]],
    values: [1, 7, 5, 2, 4, 8, 3, 9] },
  { name: '3DTestS0S2S1',
    dense: [1, 0, 0, 0, 7, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 3, 2, 0, 8, 9],
    shape: [3, 2, 4], traversalOrder: [0, 2, 1], formats: [S, S, S],
    levels: [[[0, 2], [0, 2]], [[0, 2, 5], [0, 2, 0, 2, 3]], [[0, 2, 3, 4, 6, 8], [0, 1, 1, 1, 0, 1, 0, 1]]],
    values: [1, 7, 5, 2, 4, 8, 3, 9] },
  { name: 'BlockTestD0D1', dense: B16, shape: [4, 4], traversalOrder: [0, 1, 2, 3], formats: [D, D],
    blockSize: [2, 2], blockMap: [0, 1], levels: [2, 2, 2, 2],
    values: [1, 0, 0, 4, 2, 3, 0, 0, 0, 0, 0, 0, 5, 0, 0, 6] },
  { name: 'BlockTestD0S11DBlock', dense: B16, shape: [4, 4], traversalOrder: [0, 1, 2], formats: [D, S],
    blockSize: [2], blockMap: [1], levels: [4, [[0, 2, 3, 4, 5], [0, 1, 0, 1, 1]], 2],
    values: [1, 0, 2, 3, 0, 4, 5, 0, 0, 6] },
  { name: 'BlockTestD0S12DBlock', dense: B16, shape: [4, 4], traversalOrder: [0, 1, 2, 3], formats: [D, S],
    blockSize: [2, 2], blockMap: [0, 1], levels: [2, [[0, 2, 3], [0, 1, 1]], 2, 2],
    values: [1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6] },
  { name: 'BlockTestD1S0', dense: B16, shape: [4, 4], traversalOrder: [1, 0, 3, 2], formats: [S, D],
    blockSize: [2, 2], blockMap: [0, 1], levels: [2, [[0, 1, 3], [0, 0, 1]], 2, 2],
    values: [1, 0, 0, 4, 2, 0, 3, 0, 5, 0, 0, 6] },
  { name: 'BlockTestD0S1LastBlockEmpty', dense: [1, 0, 2, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    shape: [4, 4], traversalOrder: [0, 1, 2, 3], formats: [D, S], blockSize: [2, 2], blockMap: [0, 1],
    levels: [2, [[0, 2, 2], [0, 1]], 2, 2], values: [1, 0, 0, 4, 2, 3, 0, 0] },
  { name: 'BlockTestD0S1ColMajorBlock',
    dense: [1, 0, 2, 3, 0, 4, 0, 0, 1, 0, 2, 3, 0, 4, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    shape: [4, 8], traversalOrder: [0, 1, 3, 2], formats: [D, S], blockSize: [2, 2], blockMap: [0, 1],
    levels: [2, [[0, 3, 4], [0, 1, 2, 1]], 2, 2], values: [1, 1, 0, 0, 2, 2, 3, 3, 0, 0, 4, 4, 5, 0, 0, 0] },
];

function toPlainLevels(meta: DimensionMetadata[]): ExpectedLevel[] {
  return meta.map((m) => (m.format === 'DENSE' ? m.denseSize : [Array.from(m.segments), Array.from(m.indices)]));
}

function toParams(c: { traversalOrder: number[]; blockMap?: number[]; levels: ExpectedLevel[] }): SparsityParams {
  return {
    traversalOrder: c.traversalOrder,
    blockMap: c.blockMap ?? [],
    dimMetadata: c.levels.map((l): DimensionMetadata => (typeof l === 'number'
      ? { format: 'DENSE', denseSize: l }
      : { format: 'SPARSE_CSR', segments: narrowestIndexVector(l[0]), indices: narrowestIndexVector(l[1]) })),
  };
}

for (const c of GOLDEN) {
  test(`golden: TFLite FormatConverterTest.${c.name}`, () => {
    const dense = Int32Array.from(c.dense);
    const { params, values } = sparsityFromDense(dense, c.shape, c.traversalOrder, c.blockMap ?? [], c.blockSize ?? [], c.formats);
    assert.deepEqual(params.traversalOrder, c.traversalOrder);
    assert.deepEqual(params.blockMap, c.blockMap ?? []);
    assert.deepEqual(toPlainLevels(params.dimMetadata), c.levels);
    assert.ok(values instanceof Int32Array);
    assert.deepEqual(Array.from(values), c.values);
    for (const m of params.dimMetadata) {
      if (m.format === 'SPARSE_CSR') {
        assert.ok(m.segments instanceof Uint8Array && m.indices instanceof Uint8Array, 'narrowest index vectors');
      }
    }
    assert.equal(verifySparsity(params, c.shape, values.length), c.values.length);
    // Sparse -> dense from the expected (transcribed) metadata, not from our own encoding.
    const back = denseFromSparsity(Int32Array.from(c.values), c.shape, toParams(c));
    assert.deepEqual(Array.from(back), c.dense);
    // ... and into a caller-provided (dirty) output array.
    const out = new Int32Array(dense.length).fill(99);
    assert.equal(denseFromSparsity(Int32Array.from(c.values), c.shape, toParams(c), out), out);
    assert.deepEqual(Array.from(out), c.dense);
  });
}

test('golden: tensorflow/lite/testdata/sparse_tensor.json (4x4 int8, 2x2 blocks) byte-exact', () => {
  const dense = Int8Array.from([1, 0, 2, 3, 0, 4, 0, 0, 0, 0, 5, 0, 0, 0, 0, 6]);
  const { params, values } = sparsityFromDense(dense, [4, 4], [0, 1, 2, 3], [0, 1], [2, 2], [D, S]);
  assert.deepEqual(params.traversalOrder, [0, 1, 2, 3]);
  assert.deepEqual(params.blockMap, [0, 1]);
  assert.equal(params.dimMetadata.length, 4);
  assert.deepEqual(params.dimMetadata[0], { format: 'DENSE', denseSize: 2 });
  const csr = params.dimMetadata[1]!;
  assert.equal(csr.format, 'SPARSE_CSR');
  if (csr.format !== 'SPARSE_CSR') return;
  assert.ok(csr.segments instanceof Uint8Array);
  assert.ok(csr.indices instanceof Uint8Array);
  assert.deepEqual([...csr.segments], [0, 2, 3]);
  assert.deepEqual([...csr.indices], [0, 1, 1]);
  assert.deepEqual(params.dimMetadata[2], { format: 'DENSE', denseSize: 2 });
  assert.deepEqual(params.dimMetadata[3], { format: 'DENSE', denseSize: 2 });
  assert.ok(values instanceof Int8Array);
  assert.deepEqual(new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    Uint8Array.from([1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6]));
  assert.equal(verifySparsity(params, [4, 4], 12, 1), 12);
  assert.equal(verifySparsity(params, [4, 4], { bufferBytes: 12, elementSize: 1 }), 12);
  assert.deepEqual(Array.from(denseFromSparsity(values, [4, 4], params)), Array.from(dense));
});

test('narrowestIndexVector picks the width by the largest value', () => {
  assert.ok(narrowestIndexVector([0, 255]) instanceof Uint8Array);
  assert.ok(narrowestIndexVector([0, 256]) instanceof Uint16Array);
  assert.ok(narrowestIndexVector([65535, 3]) instanceof Uint16Array);
  assert.ok(narrowestIndexVector(Int32Array.from([0, 65536])) instanceof Int32Array);
  assert.ok(narrowestIndexVector([]) instanceof Uint8Array);
  assert.deepEqual([...narrowestIndexVector(Int32Array.from([0, 300, 70000]))], [0, 300, 70000]);
  // Segments by their last value: a long row pointer array whose values stay small is still Uint8.
  const { params } = sparsityFromDense(new Float32Array(600).fill(0).map((_, i) => (i % 300 === 0 ? 1 : 0)),
    [600, 1], [0, 1], [], [], [D, S]);
  const level = params.dimMetadata[1]!;
  assert.ok(level.format === 'SPARSE_CSR' && level.segments instanceof Uint8Array && level.segments.length === 601);
  const wide = sparsityFromDense(Float32Array.from({ length: 70000 }, (_, i) => (i === 69999 ? 1 : 0)), [70000], [0], [], [], [S]);
  const w = wide.params.dimMetadata[0]!;
  assert.ok(w.format === 'SPARSE_CSR' && w.segments instanceof Uint8Array && w.indices instanceof Int32Array);
});

test('zero handling: -0.0 is zero, NaN is not, float16 bit patterns, predicate', () => {
  const x = Float32Array.from([-0, 1, 0, NaN, -0, 0]);
  // Last level sparse: -0.0 is dropped (decodes to +0), NaN is stored.
  const sparse = sparsityFromDense(x, [6], [0], [], [], [S]);
  assert.deepEqual(Array.from(sparse.values).map(String), ['1', 'NaN']);
  const back = denseFromSparsity(sparse.values, [6], sparse.params);
  assert.ok(Object.is(back[0], 0) && Object.is(back[4], 0) && Number.isNaN(back[3]));
  // Inside a stored dense block the bit pattern survives: -0.0 stays -0.0.
  const blocked = sparsityFromDense(x, [6], [0, 1], [0], [3], [S]);
  assert.equal(blocked.values.length, 6);
  assert.ok(Object.is(blocked.values[0], -0) && Object.is(blocked.values[4], -0));
  const blockedBack = denseFromSparsity(blocked.values, [6], blocked.params);
  assert.ok(Object.is(blockedBack[0], -0) && Object.is(blockedBack[4], -0));
  // A block of -0.0 only is not stored at all.
  const allNegZero = sparsityFromDense(Float32Array.from([-0, -0, 1, 2]), [4], [0, 1], [0], [2], [S]);
  assert.deepEqual(Array.from(allNegZero.values), [1, 2]);

  // float16 bits: 0x8000 (-0) is zero only when told the dtype.
  const h = Uint16Array.from([0x8000, 0x3c00, 0x0000, 0x7e00]);
  assert.deepEqual(Array.from(sparsityFromDense(h, [4], [0], [], [], [S], 'float16').values), [0x3c00, 0x7e00]);
  assert.deepEqual(Array.from(sparsityFromDense(h, [4], [0], [], [], [S]).values), [0x8000, 0x3c00, 0x7e00]);
  // Caller predicate gets the flat dense index.
  const seen: number[] = [];
  const byPredicate = sparsityFromDense(Int8Array.from([5, 5, 7, 5]), [2, 2], [1, 0], [], [], [S, S], (i) => {
    seen.push(i);
    return i !== 2;
  });
  assert.deepEqual(Array.from(byPredicate.values), [7]);
  assert.deepEqual([...new Set(seen)].sort(), [0, 1, 2, 3]); // called once per pass
  // BigInt arrays compare with 0n.
  const big = sparsityFromDense(BigInt64Array.from([0n, 3n, 0n, -1n]), [4], [0], [], [], [S]);
  assert.deepEqual(Array.from(big.values), [3n, -1n]);
  assert.deepEqual(Array.from(denseFromSparsity(big.values, [4], big.params)), [0n, 3n, 0n, -1n]);
});

function assertCode(fn: () => unknown, code: string, locationPart?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PrunepackError, `expected PrunepackError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (locationPart !== undefined) assert.ok(e.location?.includes(locationPart), `location ${e.location} lacks ${locationPart}`);
    return true;
  });
}

test('encoder rejects block sizes that do not divide their dimension, and other bad arguments', () => {
  const x = new Float32Array(12);
  assertCode(() => sparsityFromDense(x, [3, 4], [0, 1, 2], [1], [3], [D, S]), 'INVALID_ARGUMENT', 'block_size[0]');
  assertCode(() => sparsityFromDense(x, [3, 4], [0, 1, 2], [0], [2], [D, S]), 'INVALID_ARGUMENT', 'block_size[0]');
  assertCode(() => sparsityFromDense(x, [3, 4], [0, 0], [], [], [D, S]), 'INVALID_ARGUMENT', 'traversal_order');
  assertCode(() => sparsityFromDense(x, [3, 4], [0, 1, 2, 3], [1, 0], [2, 1], [D, S]), 'INVALID_ARGUMENT', 'block_map[1]');
  assertCode(() => sparsityFromDense(x, [3, 5], [0, 1], [], [], [D, S]), 'INVALID_ARGUMENT', 'dense.length');
  assertCode(() => sparsityFromDense(x, [3, 4], [0, 1, 2], [1], [2], [D, S, S]), 'UNSUPPORTED');
});

test('encodes block-sparse weights the way TFLite FULLY_CONNECTED reads them (1x4 blocks)', () => {
  const w = new Float32Array(2 * 8);
  w.set([1, 2, 3, 4], 4); // row 0, block 1
  w.set([0, 0, 0, 5], 8); // row 1, block 0
  const { params, values } = sparsityFromDense(w, [2, 8], [0, 1, 2], [1], [4], [D, S]);
  assert.deepEqual(toPlainLevels(params.dimMetadata), [2, [[0, 1, 2], [1, 0]], 4]);
  assert.deepEqual(Array.from(values), [1, 2, 3, 4, 0, 0, 0, 5]);
});

// ---------------------------------------------------------------------------------------------
// Property tests


type Kind = 'float32' | 'float16' | 'int8' | 'uint8' | 'int32' | 'float64';
const KINDS: Kind[] = ['float32', 'float16', 'int8', 'uint8', 'int32', 'float64'];

interface RandomCase {
  kind: Kind;
  dense: NumericArray;
  zero: (i: number) => boolean;
  zeroTest: ZeroTest | undefined;
  shape: number[];
  traversalOrder: number[];
  blockMap: number[];
  blockSize: number[];
  formats: LevelFormat[];
}

function shuffle<T>(rand: () => number, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function randomCase(rand: () => number): RandomCase {
  const kind = KINDS[Math.floor(rand() * KINDS.length)]!;
  const rank = 1 + Math.floor(rand() * 5);
  const shape: number[] = [];
  let total = 1;
  for (let d = 0; d < rank; d++) {
    const choices = [1, 2, 3, 4, 5, 6, 8];
    let dim = choices[Math.floor(rand() * choices.length)]!;
    while (total * dim > 3000 && dim > 1) dim = Math.ceil(dim / 2);
    shape.push(dim);
    total *= dim;
  }
  const blockMap: number[] = [];
  const blockSize: number[] = [];
  const blockChance = rand() * 0.8;
  for (let d = 0; d < rank; d++) {
    if (rand() < blockChance) {
      const divisors = [];
      for (let b = 1; b <= shape[d]!; b++) if (shape[d]! % b === 0) divisors.push(b);
      blockMap.push(d);
      blockSize.push(divisors[Math.floor(rand() * divisors.length)]!);
    }
  }
  const k = blockMap.length;
  const traversalOrder = [
    ...shuffle(rand, Array.from({ length: rank }, (_, i) => i)),
    ...shuffle(rand, Array.from({ length: k }, (_, i) => rank + i)),
  ];
  const sparseChance = rand();
  const formats: LevelFormat[] = Array.from({ length: rank }, () => (rand() < sparseChance ? S : D));
  if (k > 0 && rand() < 0.3) for (let j = 0; j < k; j++) formats.push(D);

  const r = rand();
  const zeroFraction = r < 0.1 ? 1 : r < 0.2 ? 0 : rand();
  const isZeroSlot = (): boolean => rand() < zeroFraction;
  let dense: NumericArray;
  let zero: (i: number) => boolean;
  let zeroTest: ZeroTest | undefined;
  switch (kind) {
    case 'float32': case 'float64': {
      const a = kind === 'float32' ? new Float32Array(total) : new Float64Array(total);
      for (let i = 0; i < total; i++) {
        if (isZeroSlot()) a[i] = rand() < 0.3 ? -0 : 0;
        else a[i] = rand() < 0.02 ? NaN : (rand() - 0.5) * 10 || 1;
      }
      dense = a;
      zero = (i) => a[i] === 0;
      break;
    }
    case 'float16': {
      const a = new Uint16Array(total);
      for (let i = 0; i < total; i++) {
        if (isZeroSlot()) a[i] = rand() < 0.3 ? 0x8000 : 0;
        else { let v = Math.floor(rand() * 0x10000); if ((v & 0x7fff) === 0) v |= 1; a[i] = v; }
      }
      dense = a;
      zero = (i) => (a[i]! & 0x7fff) === 0;
      zeroTest = 'float16';
      break;
    }
    default: {
      const a = kind === 'int8' ? new Int8Array(total) : kind === 'uint8' ? new Uint8Array(total) : new Int32Array(total);
      for (let i = 0; i < total; i++) {
        if (isZeroSlot()) a[i] = 0;
        else { let v = kind === 'int32' ? Math.floor((rand() - 0.5) * 2 ** 32) : Math.floor(rand() * 256) - (kind === 'int8' ? 128 : 0); if (v === 0) v = 1; a[i] = v; }
      }
      dense = a;
      zero = (i) => a[i] === 0;
      break;
    }
  }
  if (kind !== 'float16' && rand() < 0.15) {
    // Same semantics through a caller predicate.
    const z = zero;
    zeroTest = (i) => z(i);
  }
  return { kind, dense, zero, zeroTest, shape, traversalOrder, blockMap, blockSize, formats };
}

/**
 * Naive model of TFLite's DenseToSparse: a child is stored when its level is dense or its subtree
 * holds a nonzero; values are the stored leaves. Recursive and slow on purpose.
 */
function naiveEncode(c: RandomCase): { levels: ExpectedLevel[]; valueIndices: number[] } {
  const n = c.shape.length;
  const k = c.blockMap.length;
  const L = n + k;
  const esize: number[] = [...c.shape];
  const estride: number[] = [];
  let s = 1;
  for (let d = n - 1; d >= 0; d--) { estride[d] = s; s *= c.shape[d]!; }
  for (let j = 0; j < k; j++) {
    const d = c.blockMap[j]!;
    esize[n + j] = c.blockSize[j]!;
    estride[n + j] = estride[d]!;
    esize[d] = esize[d]! / c.blockSize[j]!;
    estride[d] = estride[d]! * c.blockSize[j]!;
  }
  const size = c.traversalOrder.map((e) => esize[e]!);
  const stride = c.traversalOrder.map((e) => estride[e]!);
  const isSparse = c.traversalOrder.map((e, l) => l < n && c.formats[e] === S);
  const segs: number[][] = isSparse.map(() => [0]);
  const idx: number[][] = isSparse.map(() => []);
  const valueIndices: number[] = [];
  const hasNonzero = (level: number, offset: number): boolean => {
    if (level === L) return !c.zero(offset);
    for (let i = 0; i < size[level]!; i++) if (hasNonzero(level + 1, offset + i * stride[level]!)) return true;
    return false;
  };
  const visit = (level: number, offset: number): void => {
    if (level === L) { valueIndices.push(offset); return; }
    for (let i = 0; i < size[level]!; i++) {
      const child = offset + i * stride[level]!;
      if (isSparse[level]) {
        if (!hasNonzero(level + 1, child)) continue;
        idx[level]!.push(i);
      }
      visit(level + 1, child);
    }
    if (isSparse[level]) segs[level]!.push(idx[level]!.length);
  };
  visit(0, 0);
  const levels = size.map((sz, l): ExpectedLevel => (isSparse[l] ? [segs[l]!, idx[l]!] : sz));
  return { levels, valueIndices };
}

function bitsEqual(kind: Kind, a: NumericArray, i: number, b: NumericArray, j: number): boolean {
  const x = a[i]!;
  const y = b[j]!;
  if (kind === 'float32' || kind === 'float64') return Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
  return x === y;
}

/** TFLite reads block dim i's size from dim_metadata[n + i]; true when that agrees with the block order. */
function blockOrderReadable(c: RandomCase): boolean {
  const n = c.shape.length;
  return c.blockSize.every((b, j) => c.blockSize[c.traversalOrder[n + j]! - n] === b);
}

const PROPERTY_CASES = 600;

test(`property: ${PROPERTY_CASES} random tensors round-trip, match the naive reference model and verify`, () => {
  const rand = mulberry32(0x5eed);
  const seenKinds = new Set<Kind>();
  let allZero = 0;
  let noZero = 0;
  let unreadable = 0;
  for (let iter = 0; iter < PROPERTY_CASES; iter++) {
    const c = randomCase(rand);
    seenKinds.add(c.kind);
    const label = `case ${iter}: ${c.kind} shape [${c.shape}] traversal [${c.traversalOrder}] block_map [${c.blockMap}] block [${c.blockSize}] formats [${c.formats}]`;
    let zeros = 0;
    for (let i = 0; i < c.dense.length; i++) if (c.zero(i)) zeros++;
    if (zeros === c.dense.length) allZero++;
    if (zeros === 0) noZero++;

    const { params, values } = sparsityFromDense(c.dense, c.shape, c.traversalOrder, c.blockMap, c.blockSize, c.formats, c.zeroTest);
    assert.equal(values.constructor, c.dense.constructor, label);

    // Exactly what the reference algorithm produces (modelled naively).
    const model = naiveEncode(c);
    assert.deepEqual(toPlainLevels(params.dimMetadata), model.levels, label);
    assert.equal(values.length, model.valueIndices.length, label);
    for (let v = 0; v < values.length; v++) {
      if (!bitsEqual(c.kind, values, v, c.dense, model.valueIndices[v]!)) assert.fail(`${label}: value ${v}`);
    }
    for (const m of params.dimMetadata) {
      if (m.format !== 'SPARSE_CSR') continue;
      const lastSegment = m.segments[m.segments.length - 1]!;
      assert.equal(m.segments.constructor, lastSegment <= 255 ? Uint8Array : lastSegment <= 65535 ? Uint16Array : Int32Array, label);
      let maxIndex = 0;
      for (const v of m.indices) if (v > maxIndex) maxIndex = v;
      assert.equal(m.indices.constructor, maxIndex <= 255 ? Uint8Array : maxIndex <= 65535 ? Uint16Array : Int32Array, label);
    }

    if (!blockOrderReadable(c)) {
      unreadable++;
      assertCode(() => verifySparsity(params, c.shape, values.length), 'INVALID_SPARSITY');
      continue;
    }
    assert.equal(verifySparsity(params, c.shape, values.length, { requireSortedIndices: true }), values.length, label);
    assert.equal(verifySparsity(params, c.shape, values.byteLength, values.BYTES_PER_ELEMENT), values.length, label);

    const back = denseFromSparsity(values, c.shape, params);
    assert.equal(back.length, c.dense.length, label);
    for (let i = 0; i < back.length; i++) {
      // Bit-exact, except zeros that were not stored come back as +0.
      if (bitsEqual(c.kind, back, i, c.dense, i)) continue;
      if (c.zero(i) && Object.is(back[i], 0)) continue;
      assert.fail(`${label}: element ${i} decoded as ${back[i]}, was ${c.dense[i]}`);
    }
  }
  assert.equal(seenKinds.size, KINDS.length);
  assert.ok(allZero > 10 && noZero > 10, `all-zero ${allZero}, no-zero ${noZero}`);
  assert.ok(unreadable < PROPERTY_CASES / 4, `unreadable block orders ${unreadable}`);
});

function cloneParams(p: SparsityParams): SparsityParams {
  return {
    traversalOrder: [...p.traversalOrder],
    blockMap: [...p.blockMap],
    dimMetadata: p.dimMetadata.map((m): DimensionMetadata => (m.format === 'DENSE'
      ? { format: 'DENSE', denseSize: m.denseSize }
      : { format: 'SPARSE_CSR', segments: Int32Array.from(m.segments), indices: Int32Array.from(m.indices) })),
  };
}

function expandedLevelSize(c: RandomCase, level: number): number {
  const n = c.shape.length;
  const e = c.traversalOrder[level]!;
  if (e >= n) return c.blockSize[e - n]!;
  const j = c.blockMap.indexOf(e);
  return j < 0 ? c.shape[e]! : c.shape[e]! / c.blockSize[j]!;
}

test('property: every one-field corruption is rejected with INVALID_SPARSITY', () => {
  const rand = mulberry32(0xc0ffee);
  const tried = new Map<string, number>();
  let encodings = 0;
  while (encodings < 250) {
    const c = randomCase(rand);
    if (!blockOrderReadable(c)) continue;
    const { params, values } = sparsityFromDense(c.dense, c.shape, c.traversalOrder, c.blockMap, c.blockSize, c.formats, c.zeroTest);
    encodings++;
    const n = c.shape.length;
    const k = c.blockMap.length;
    const count = values.length;
    const reject = (what: string, mutate: (p: SparsityParams) => void, stored = count, locationPart?: string): void => {
      const p = cloneParams(params);
      mutate(p);
      tried.set(what, (tried.get(what) ?? 0) + 1);
      assertCode(() => verifySparsity(p, c.shape, stored), 'INVALID_SPARSITY', locationPart);
      if (stored === count) assertCode(() => denseFromSparsity(values, c.shape, p), 'INVALID_SPARSITY', locationPart);
    };
    assert.equal(verifySparsity(cloneParams(params), c.shape, count), count);

    // Wrong values length, and wrong buffer size.
    reject('values length +1', () => {}, count + 1, 'values');
    if (count > 0) reject('values length -1', () => {}, count - 1, 'values');
    assertCode(() => verifySparsity(params, c.shape, (count + 1) * values.BYTES_PER_ELEMENT, values.BYTES_PER_ELEMENT), 'INVALID_SPARSITY', 'buffer');

    // Traversal order not a permutation (repeat, out of range), dim_metadata count.
    if (n >= 2) reject('traversal repeated', (p) => { p.traversalOrder[1] = p.traversalOrder[0]!; }, count, 'traversal_order[1]');
    reject('traversal out of range', (p) => { p.traversalOrder[0] = n + k; }, count, 'traversal_order[0]');
    reject('dim_metadata missing', (p) => { p.dimMetadata.pop(); }, count, 'dim_metadata');
    if (k > 0) {
      reject('block_map out of range', (p) => { p.blockMap[0] = n; }, count, 'block_map[0]');
      reject('block_map negative', (p) => { p.blockMap[k - 1] = -1; }, count, 'block_map');
      reject('block_map missing', (p) => { p.blockMap.pop(); }, count, 'block_map');
    } else {
      reject('block_map extra', (p) => { p.blockMap.push(0); }, count, 'block_map');
    }

    for (let l = 0; l < n + k; l++) {
      const m = params.dimMetadata[l]!;
      const levelSize = expandedLevelSize(c, l);
      if (m.format === 'DENSE') {
        // A wrong block size is caught where it conflicts (outer level, divisibility or value count).
        // With nothing stored, another dividing block size can describe the same all-zero tensor.
        if (l < n || count > 0) reject('dense_size wrong', (p) => { (p.dimMetadata[l] as { denseSize: number }).denseSize = m.denseSize + 1; }, count,
          l < n ? `dim_metadata[${l}]` : undefined);
        if (l < n && m.denseSize > 1) reject('dense_size smaller', (p) => { (p.dimMetadata[l] as { denseSize: number }).denseSize = m.denseSize - 1; }, count, `dim_metadata[${l}]`);
        continue;
      }
      const csr = (p: SparsityParams) => p.dimMetadata[l] as { segments: Int32Array; indices: Int32Array };
      const segs = m.segments;
      if (m.indices.length > 0) {
        const at = Math.floor(rand() * m.indices.length);
        reject('index past level size', (p) => { csr(p).indices[at] = levelSize; }, count, `array_indices[${at}]`);
        reject('index negative', (p) => { csr(p).indices[at] = -1; }, count, `array_indices[${at}]`);
      }
      const at = Math.floor(rand() * segs.length);
      reject('segment value changed', (p) => { csr(p).segments[at] = segs[segs.length - 1]! + 1 + at; }, count, `dim_metadata[${l}]`);
      reject('segments not starting at 0', (p) => { csr(p).segments = Int32Array.from(segs, (v) => v + 1); }, count, 'array_segments[0]');
      reject('segments too long', (p) => { const s = csr(p).segments; csr(p).segments = Int32Array.from([...s, s[s.length - 1]!]); }, count, 'array_segments');
      reject('segments too short', (p) => { csr(p).segments = csr(p).segments.slice(0, -1); }, count, 'array_segments');
      if (segs.length >= 3) {
        const i = 1 + Math.floor(rand() * (segs.length - 2));
        reject('segments decreasing', (p) => { csr(p).segments[i] = segs[i + 1]! + 1; }, count, `array_segments[${i + 1}]`);
      }
      reject('indices extra', (p) => { csr(p).indices = Int32Array.from([...csr(p).indices, 0]); }, count, 'array_segments');
      reject('format unknown', (p) => { (p.dimMetadata[l] as { format: string }).format = 'SPARSE_COO'; }, count, `dim_metadata[${l}]`);
    }
  }
  for (const what of ['values length +1', 'traversal repeated', 'traversal out of range', 'block_map out of range',
    'dense_size wrong', 'index past level size', 'segment value changed', 'segments not starting at 0', 'segments decreasing']) {
    assert.ok((tried.get(what) ?? 0) >= 20, `only ${tried.get(what) ?? 0} corruptions of kind '${what}'`);
  }
});

test('verifier: hand-written corruptions name the field and carry expected/found', () => {
  const good: SparsityParams = toParams({ traversalOrder: [0, 1, 2, 3], blockMap: [0, 1], levels: [2, [[0, 2, 3], [0, 1, 1]], 2, 2] });
  assert.equal(verifySparsity(good, [4, 4], 12), 12);
  const bad = cloneParams(good);
  (bad.dimMetadata[1] as { indices: Int32Array }).indices[2] = 2;
  assert.throws(() => verifySparsity(bad, [4, 4], 12), (e: unknown) => e instanceof PrunepackError
    && e.code === 'INVALID_SPARSITY' && e.location === 'dim_metadata[1] (level 1, expanded dim 1 of size 2).array_indices[2]'
    && e.expected === 'an index in [0, 2)' && e.found === '2');
  // Block sizes that do not divide the dimension are rejected, although TFLite's verifier floors.
  const undivided = toParams({ traversalOrder: [0, 1, 2], blockMap: [1], levels: [4, [[0, 0, 0, 0, 0], []], 3] });
  assertCode(() => verifySparsity(undivided, [4, 4], 0), 'INVALID_SPARSITY', 'dim_metadata[2]');
  // Block levels must be dense.
  const sparseBlock = toParams({ traversalOrder: [0, 1, 2], blockMap: [1], levels: [4, 2, [[0, 0, 0, 0, 0, 0, 0, 0, 0], []]] });
  assertCode(() => verifySparsity(sparseBlock, [4, 4], 0), 'INVALID_SPARSITY', 'dim_metadata[2]');
  // Unsorted block_map.
  const unsorted = toParams({ traversalOrder: [0, 1, 2, 3], blockMap: [1, 0], levels: [2, 2, 2, 2] });
  assertCode(() => verifySparsity(unsorted, [4, 4], 16), 'INVALID_SPARSITY', 'block_map[1]');
  // Indices out of order only with requireSortedIndices.
  const unordered = toParams({ traversalOrder: [0, 1], levels: [1, [[0, 2], [3, 1]]] });
  assert.equal(verifySparsity(unordered, [1, 4], 2), 2);
  assertCode(() => verifySparsity(unordered, [1, 4], 2, { requireSortedIndices: true }), 'INVALID_SPARSITY', 'array_indices[1]');
});

// Correctness at scale only: speed is measured by `npm run bench`, never asserted in tests.
test('large tensor: 8M float32 elements encode and decode exactly', () => {
  const rows = 2048;
  const cols = 4096;
  const w = new Float32Array(rows * cols);
  const rand = mulberry32(7);
  for (let i = 0; i < w.length; i++) if (rand() < 0.1) w[i] = rand() - 0.5;
  const csr = sparsityFromDense(w, [rows, cols], [0, 1], [], [], [D, S]);
  const blocked = sparsityFromDense(w, [rows, cols], [0, 1, 2], [1], [4], [D, S]);
  const back = denseFromSparsity(csr.values, [rows, cols], csr.params);
  const backBlocked = denseFromSparsity(blocked.values, [rows, cols], blocked.params);
  assert.deepEqual(back, w);
  assert.deepEqual(backBlocked, w);
});
