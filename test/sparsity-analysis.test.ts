/**
 * Zero-structure analysis: hand-made matrices whose statistics are counted by hand in the
 * comments, float edge cases (-0.0, NaN), quantized zero points, and a seeded property test
 * against a brute-force reference written independently of the bit tricks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeZeros, matrixViewOf, type DenseWeight, type ZeroAnalysis } from '../src/sparsity/analysis.js';
import { PrunepackError } from '../src/errors.js';
import { float16ToFloat32, bfloat16ToFloat32, type DType } from '../src/model/dtype.js';
import { mulberry32 } from '../src/random.js';


function block(a: ZeroAnalysis, rows: number, cols: number) {
  const b = a.blocks.find((x) => x.rows === rows && x.cols === cols);
  assert.ok(b, `block ${rows}x${cols} listed`);
  return b;
}

function nm(a: ZeroAnalysis, n: number, m: number) {
  const p = a.nm.find((x) => x.n === n && x.m === m);
  assert.ok(p, `pattern ${n}:${m} listed`);
  return p;
}

// 4 x 8 float32, FULLY_CONNECTED [out, in]:
//   r0: 1 2 0 0 | 0 0 0 0
//   r1: 0 0 0 0 | 0 0 0 0
//   r2: 0 0 3 0 | 0 0 0 4
//   r3: 5 0 0 0 | 0 0 0 6
const FC = new Float32Array([
  1, 2, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 3, 0, 0, 0, 0, 4,
  5, 0, 0, 0, 0, 0, 0, 6,
]);

test('hand-made 4x8 matrix: counts, rows, columns, row histogram', () => {
  const a = analyzeZeros({ values: FC, dtype: 'float32', shape: [4, 8] });
  // 32 elements, 6 nonzeros.
  assert.equal(a.count, 32);
  assert.equal(a.nonzeros, 6);
  assert.equal(a.zeros, 26);
  assert.equal(a.zeroShare, 26 / 32);
  assert.deepEqual({ rows: a.matrix.rows, cols: a.matrix.cols, rowAxis: a.matrix.rowAxis }, { rows: 4, cols: 8, rowAxis: 0 });
  // Row 1 is empty; columns 3, 4, 5, 6 are empty; the last axis is the column axis here.
  assert.equal(a.zeroRows, 1);
  assert.equal(a.zeroColumns, 4);
  assert.equal(a.zeroInputChannels, 4);
  // Row nnz 2, 0, 2, 2: min 0, max 2, mean 1.5; densities 0.25 -> bin floor(2.5) = 2, 0 -> bin 0.
  assert.equal(a.rowNnz.min, 0);
  assert.equal(a.rowNnz.max, 2);
  assert.equal(a.rowNnz.mean, 1.5);
  assert.deepEqual(a.rowNnz.histogram.counts, [1, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(a.rowNnz.histogram.binEdges.length, 11);
  assert.equal(a.zeroPoints, null);
});

test('hand-made 4x8 matrix: block shapes and the best block', () => {
  const a = analyzeZeros({ values: FC, dtype: 'float32', shape: [4, 8] });
  // 1x2: 16 pairs; nonzero pairs: r0 (1,2); r2 (0,3) (0,4); r3 (5,0) (0,6) -> 5 -> 11 zero.
  assert.deepEqual([block(a, 1, 2).blockCount, block(a, 1, 2).zeroBlocks], [16, 11]);
  assert.equal(block(a, 1, 2).zerosCovered, 22);
  // 1x4: 8 quads; nonzero: r0 q0, r2 q0 q1, r3 q0 q1 -> 5 -> 3 zero.
  assert.deepEqual([block(a, 1, 4).blockCount, block(a, 1, 4).zeroBlocks], [8, 3]);
  // 1x8: whole rows; only r1 is zero.
  assert.deepEqual([block(a, 1, 8).blockCount, block(a, 1, 8).zeroBlocks], [4, 1]);
  // 1x16 does not divide 8 columns.
  assert.equal(block(a, 1, 16).applicable, false);
  assert.match(block(a, 1, 16).reason!, /8 columns are not divisible by 16/);
  // 2x2: 8 blocks; rows 0-1: only cols 0-1 nonzero; rows 2-3: cols 0-1 (5), 2-3 (3), 6-7 (4, 6) -> 4 nonzero.
  assert.deepEqual([block(a, 2, 2).blockCount, block(a, 2, 2).zeroBlocks], [8, 4]);
  // 4x1: whole columns; 4 of 8 are zero. 4x4: both halves hold a nonzero.
  assert.deepEqual([block(a, 4, 1).blockCount, block(a, 4, 1).zeroBlocks], [8, 4]);
  assert.deepEqual([block(a, 4, 4).blockCount, block(a, 4, 4).zeroBlocks], [2, 0]);
  // 8x1 and 16x1 need 8 and 16 rows.
  assert.equal(block(a, 8, 1).applicable, false);
  assert.match(block(a, 16, 1).reason!, /4 rows are not divisible by 16/);
  // Zeros covered: 1x2 22, 1x4 12, 1x8 8, 2x2 16, 4x1 16, 4x4 0 -> 1x2 wins.
  assert.deepEqual(a.bestBlock && [a.bestBlock.rows, a.bestBlock.cols, a.bestBlock.zerosCovered], [1, 2, 22]);
  assert.equal(block(a, 1, 2).zerosCoveredShare, 22 / 26);
});

test('hand-made 4x8 matrix: N:M along the input dimension', () => {
  const a = analyzeZeros({ values: FC, dtype: 'float32', shape: [4, 8] });
  // 2:4: 8 groups of 4, the fullest (r0 q0) has 2 nonzeros -> every group satisfies.
  assert.deepEqual([nm(a, 2, 4).groups, nm(a, 2, 4).satisfyingGroups, nm(a, 2, 4).satisfied], [8, 8, true]);
  // 1:4: r0 q0 holds 2 -> 7 of 8.
  assert.deepEqual([nm(a, 1, 4).satisfyingGroups, nm(a, 1, 4).share, nm(a, 1, 4).satisfied], [7, 7 / 8, false]);
  // 2:8: groups are whole rows with 2, 0, 2, 2 nonzeros -> all satisfy.
  assert.deepEqual([nm(a, 2, 8).groups, nm(a, 2, 8).satisfyingGroups, nm(a, 2, 8).satisfied], [4, 4, true]);
  // Custom patterns: 3:16 does not divide 8 columns; 0:2 counts all-zero pairs (11 of 16).
  const b = analyzeZeros({ values: FC, dtype: 'float32', shape: [4, 8] }, { nmPatterns: [[3, 16], [0, 2]] });
  assert.equal(nm(b, 3, 16).applicable, false);
  assert.equal(nm(b, 0, 2).satisfyingGroups, 11);
});

test('conv OHWI [2, 2, 2, 3]: input channel 1 all zero; row axis 0 and 3', () => {
  // value(o, h, w, i) is nonzero when i != 1 and o + h + w is even (then o+h+w+i is even too).
  const shape = [2, 2, 2, 3];
  const values = new Float32Array(24);
  for (let o = 0; o < 2; o++) for (let h = 0; h < 2; h++) for (let w = 0; w < 2; w++) for (let i = 0; i < 3; i++) {
    values[((o * 2 + h) * 2 + w) * 3 + i] = i !== 1 && (o + h + w) % 2 === 0 ? 1 + i + 10 * o : 0;
  }
  const a = analyzeZeros({ values, dtype: 'float32', shape });
  // Even (o, h, w): 4 of 8, times i in {0, 2} -> 8 nonzeros; every row (o) has 4.
  assert.equal(a.nonzeros, 8);
  assert.deepEqual([a.matrix.rows, a.matrix.cols], [2, 12]);
  assert.deepEqual([a.rowNnz.min, a.rowNnz.max], [4, 4]);
  // Columns (h, w, i): for i in {0, 2} one of o = 0/1 makes the sum even -> 8 nonzero, 4 zero (i = 1).
  assert.equal(a.zeroColumns, 4);
  assert.equal(a.zeroInputChannels, 1);
  assert.equal(a.zeroRows, 0);
  assert.match(a.matrix.description, /rows = dim 0 \(2\), cols = product of d1=2 x d2=2 x d3=3 \(12\)/);

  // Row axis 3: rows are input channels (3), cols (o, h, w) = 8; channel 1 is an empty row.
  const b = analyzeZeros({ values, dtype: 'float32', shape }, { rowAxis: 3 });
  assert.deepEqual([b.matrix.rows, b.matrix.cols, b.matrix.outer, b.matrix.inner], [3, 8, 8, 1]);
  assert.equal(b.zeroRows, 1);
  assert.deepEqual([b.rowNnz.min, b.rowNnz.max], [0, 4]);
  assert.equal(b.zeroInputChannels, null);
  // Columns (o, h, w) with odd o + h + w are empty: 4 of 8.
  assert.equal(b.zeroColumns, 4);
});

test('matrix view of rank 0 and 1, and row-axis errors', () => {
  assert.deepEqual(matrixViewOf([]), { rows: 1, cols: 1, rowAxis: 0, outer: 1, inner: 1 });
  assert.deepEqual(matrixViewOf([6]), { rows: 1, cols: 6, rowAxis: 0, outer: 1, inner: 6 });
  assert.deepEqual(matrixViewOf([2, 3, 4], 1), { rows: 3, cols: 8, rowAxis: 1, outer: 2, inner: 4 });
  assert.throws(() => matrixViewOf([6], 1), (e) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
  assert.throws(() => matrixViewOf([2, 3], 2), (e) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
  const a = analyzeZeros({ values: new Float32Array([0, 1, 0, 0, 2, 0]), dtype: 'float32', shape: [6] });
  assert.deepEqual([a.matrix.rows, a.matrix.cols, a.zeros, a.zeroColumns, a.zeroInputChannels], [1, 6, 4, 4, null]);
  const scalar = analyzeZeros({ values: new Float32Array([0]), dtype: 'float32', shape: [] });
  assert.deepEqual([scalar.count, scalar.zeros, scalar.zeroRows], [1, 1, 1]);
  const empty = analyzeZeros({ values: new Float32Array(0), dtype: 'float32', shape: [0, 4] });
  assert.deepEqual([empty.count, empty.zeros, empty.zeroShare, empty.rowNnz.mean], [0, 0, 0, 0]);
});

test('the result is plain JSON data', () => {
  const a = analyzeZeros({ values: FC, dtype: 'float32', shape: [4, 8] });
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
});

test('-0.0 is zero, NaN never is, in every float dtype', () => {
  // float32: -0, +0, NaN, 1, -0, smallest subnormal, +Inf, +0 -> 4 numeric zeros, 2 bitwise (+0 only).
  const f32 = new Float32Array([-0, 0, NaN, 1, -0, 1e-45, Infinity, 0]);
  assert.equal(analyzeZeros({ values: f32, dtype: 'float32', shape: [8] }).zeros, 4);
  assert.equal(analyzeZeros({ values: f32, dtype: 'float32', shape: [8] }, { zeroRule: 'bitwise' }).zeros, 2);
  // A negative-NaN pattern with a zero mantissa above the sign is still NaN, not zero.
  const negNan = new Uint32Array([0xffc00000, 0x80000000]);
  assert.equal(analyzeZeros({ values: negNan, dtype: 'float32', shape: [2] }).zeros, 1);
  // float16 bits: -0, +0, NaN, smallest subnormal, -Inf -> 2 zeros.
  const f16 = new Uint16Array([0x8000, 0x0000, 0x7e00, 0x0001, 0xfc00]);
  assert.equal(analyzeZeros({ values: f16, dtype: 'float16', shape: [5] }).zeros, 2);
  // bfloat16 bits: -0, +0, NaN, 1.0 -> 2 zeros.
  const bf16 = new Uint16Array([0x8000, 0x0000, 0x7fc0, 0x3f80]);
  assert.equal(analyzeZeros({ values: bf16, dtype: 'bfloat16', shape: [4] }).zeros, 2);
  // float64: -0, NaN, +0, smallest subnormal -> 2 zeros; bitwise 1.
  const f64 = new Float64Array([-0, NaN, 0, 5e-324]);
  assert.equal(analyzeZeros({ values: f64, dtype: 'float64', shape: [4] }).zeros, 2);
  assert.equal(analyzeZeros({ values: f64, dtype: 'float64', shape: [4] }, { zeroRule: 'bitwise' }).zeros, 1);
  // float8 e4m3fn: 0x80 (-0) and 0x00 are zero, 0x7f is NaN; the fnuz kinds: 0x80 is NaN.
  const f8 = new Uint8Array([0x80, 0x00, 0x7f, 0x01]);
  assert.equal(analyzeZeros({ values: f8, dtype: 'float8e4m3fn', shape: [4] }).zeros, 2);
  assert.equal(analyzeZeros({ values: f8, dtype: 'float8e4m3fnuz', shape: [4] }).zeros, 1);
  // float8e8m0 has no zero at all.
  assert.equal(analyzeZeros({ values: new Uint8Array([0, 0]), dtype: 'float8e8m0', shape: [2] }).zeros, 0);
  // complex64: zero only when both parts are (numerically) zero.
  const c64 = new Float32Array([0, -0, 0, 1, NaN, 0]);
  assert.equal(analyzeZeros({ values: c64, dtype: 'complex64', shape: [3] }).zeros, 1);
});

test('quantized zero points: per tensor, per channel along axis 0 and axis 1', () => {
  // int8 [3, 4], zero points per row (axis 0): 0, -128, 5.
  //   r0: 0 1 0 -128  -> zeros: two 0s                    (2)
  //   r1: -128 -128 0 3 -> zeros: the two -128s            (2)
  //   r2: 5 5 5 0     -> zeros: the three 5s               (3)
  const int8 = new Int8Array([0, 1, 0, -128, -128, -128, 0, 3, 5, 5, 5, 0]);
  const a = analyzeZeros({ values: int8, dtype: 'int8', shape: [3, 4], quantization: { zeroPoint: [0, -128, 5], axis: 0 } });
  assert.equal(a.zeros, 7);
  assert.deepEqual([a.rowNnz.min, a.rowNnz.max], [1, 2]);
  assert.deepEqual(a.zeroPoints, { axis: 0, count: 3 });
  // Without the zero points only the literal 0s count: 4.
  assert.equal(analyzeZeros({ values: int8, dtype: 'int8', shape: [3, 4] }).zeros, 4);

  // uint8 [2, 3], zero points per column (axis 1): 1, 2, 3.
  //   r0: 1 2 3 -> all zero; r1: 0 2 4 -> only the 2 is zero. Column 1 is zero throughout.
  const u8 = new Uint8Array([1, 2, 3, 0, 2, 4]);
  const b = analyzeZeros({ values: u8, dtype: 'uint8', shape: [2, 3], quantization: { zeroPoint: [1, 2, 3], axis: 1 } });
  assert.deepEqual([b.zeros, b.zeroRows, b.zeroColumns], [4, 1, 1]);

  // Per-tensor zero point as a number, and as a one-element list with an axis (still per tensor).
  const q = new Uint8Array([128, 0, 128, 255]);
  assert.equal(analyzeZeros({ values: q, dtype: 'uint8', shape: [4], quantization: { zeroPoint: 128 } }).zeros, 2);
  const one = analyzeZeros({ values: q, dtype: 'uint8', shape: [2, 2], quantization: { zeroPoint: [128], axis: 1 } });
  assert.deepEqual([one.zeros, one.zeroPoints], [2, { axis: null, count: 1 }]);
  // int64 zero points from a BigInt64Array.
  const i64 = new BigInt64Array([7n, 0n, 7n, -1n]);
  assert.equal(analyzeZeros({ values: i64, dtype: 'int64', shape: [4], quantization: { zeroPoint: new BigInt64Array([7n]) } }).zeros, 2);
  // Zero point 0 everywhere: no fill table is needed.
  assert.equal(analyzeZeros({ values: q, dtype: 'uint8', shape: [4], quantization: { zeroPoint: [0] } }).zeroPoints, null);
});

test('bad zero points and bad values are INVALID_ARGUMENT', () => {
  const invalid = (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT';
  const v = new Int8Array(6);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 3], quantization: { zeroPoint: [200] } }), invalid);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 3], quantization: { zeroPoint: [0, 1], axis: 1 } }), invalid);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 3], quantization: { zeroPoint: [0, 1] } }), invalid);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 3], quantization: { zeroPoint: [1.5] } }), invalid);
  assert.throws(() => analyzeZeros({ values: new Float32Array(6), dtype: 'float32', shape: [2, 3], quantization: { zeroPoint: [3] } }), invalid);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 4] }), invalid);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 3] }, { blockShapes: [[0, 2]] }), invalid);
  assert.throws(() => analyzeZeros({ values: v, dtype: 'int8', shape: [2, 3] }, { nmPatterns: [[2, 3]] }), invalid);
  assert.throws(() => analyzeZeros({ values: new Uint8Array(3), dtype: 'int4', shape: [6] }),
    (e) => e instanceof PrunepackError && e.code === 'UNSUPPORTED');
});

// ---------------------------------------------------------------------------------------------
// Property test against a brute-force reference.

interface Case { dtype: DType; shape: number[]; rowAxis: number; zeroPoint?: { values: number[]; axis?: number } }

const WIDTH: Partial<Record<DType, number>> = { float32: 4, float16: 2, bfloat16: 2, float64: 8, int8: 1, uint8: 1, int16: 2, int32: 4 };

/** Numeric zero, read through DataView and the dtype helpers rather than bit masks. */
function referenceIsZero(dv: DataView, dtype: DType, index: number, zp: number): boolean {
  switch (dtype) {
    case 'float32': return dv.getFloat32(4 * index, true) === 0;
    case 'float64': return dv.getFloat64(8 * index, true) === 0;
    case 'float16': return float16ToFloat32(dv.getUint16(2 * index, true)) === 0;
    case 'bfloat16': return bfloat16ToFloat32(dv.getUint16(2 * index, true)) === 0;
    case 'int8': return dv.getInt8(index) === zp;
    case 'uint8': return dv.getUint8(index) === zp;
    case 'int16': return dv.getInt16(2 * index, true) === zp;
    case 'int32': return dv.getInt32(4 * index, true) === zp;
    default: throw new Error(dtype);
  }
}

function makeCase(random: () => number, c: Case, zeroShare: number): DenseWeight {
  const count = c.shape.reduce((a, b) => a * b, 1);
  const w = WIDTH[c.dtype]!;
  const bytes = new Uint8Array(count * w);
  const dv = new DataView(bytes.buffer);
  const zpOf = (flat: number) => {
    if (!c.zeroPoint) return 0;
    if (c.zeroPoint.values.length === 1) return c.zeroPoint.values[0];
    let inner = 1;
    for (let a = c.zeroPoint.axis! + 1; a < c.shape.length; a++) inner *= c.shape[a];
    return c.zeroPoint.values[Math.floor(flat / inner) % c.shape[c.zeroPoint.axis!]];
  };
  // Random zeros (signed zeros for floats); at 0.95 and 1 even 4x4 and 16x1 blocks are often empty.
  for (let i = 0; i < count; i++) {
    const zero = random() < zeroShare;
    const zp = zpOf(i);
    if (zero) {
      if (c.dtype === 'float32') dv.setFloat32(4 * i, random() < 0.5 ? -0 : 0, true);
      else if (c.dtype === 'float64') dv.setFloat64(8 * i, random() < 0.5 ? -0 : 0, true);
      else if (c.dtype === 'float16' || c.dtype === 'bfloat16') dv.setUint16(2 * i, random() < 0.5 ? 0x8000 : 0, true);
      else if (c.dtype === 'int8') dv.setInt8(i, zp);
      else if (c.dtype === 'uint8') dv.setUint8(i, zp);
      else if (c.dtype === 'int16') dv.setInt16(2 * i, zp, true);
      else dv.setInt32(4 * i, zp, true);
    } else {
      // Random bytes, rerolled until nonzero by the reference (NaNs included).
      do {
        for (let b = 0; b < w; b++) bytes[i * w + b] = Math.floor(random() * 256);
      } while (referenceIsZero(dv, c.dtype, i, zp));
    }
  }
  const values = c.dtype === 'float32' ? new Float32Array(bytes.buffer) : bytes;
  return {
    values, dtype: c.dtype, shape: c.shape,
    ...(c.zeroPoint ? { quantization: { zeroPoint: c.zeroPoint.values, axis: c.zeroPoint.axis } } : {}),
  };
}

function reference(weight: DenseWeight, rowAxis: number, shapes: [number, number][], patterns: [number, number][], zp?: Case['zeroPoint']) {
  const shape = weight.shape;
  const count = shape.reduce((a, b) => a * b, 1);
  const rank = shape.length;
  const rows = rank < 2 ? 1 : shape[rowAxis];
  const cols = count / (rows || 1) || 0;
  const v = weight.values;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const zero: boolean[][] = Array.from({ length: rows }, () => new Array<boolean>(cols).fill(true));
  for (let flat = 0; flat < count; flat++) {
    // Unravel, then row = coordinate on the row axis, column = ravel of the others in order.
    const coords: number[] = [];
    for (let a = rank - 1, rest = flat; a >= 0; a--) { coords[a] = rest % shape[a]; rest = Math.floor(rest / shape[a]); }
    let r = 0;
    let c = 0;
    if (rank < 2) c = flat;
    else for (let a = 0; a < rank; a++) if (a === rowAxis) r = coords[a]; else c = c * shape[a] + coords[a];
    let zpValue = 0;
    if (zp) zpValue = zp.values.length === 1 ? zp.values[0] : zp.values[coords[zp.axis!]];
    zero[r][c] = referenceIsZero(dv, weight.dtype, flat, zpValue);
  }
  const zeros = zero.flat().filter(Boolean).length;
  const blocks = shapes.map(([br, bc]) => {
    if (rows % br || cols % bc) return null;
    let zeroBlocks = 0;
    for (let i = 0; i < rows; i += br) for (let j = 0; j < cols; j += bc) {
      let all = true;
      for (let a = 0; a < br; a++) for (let b = 0; b < bc; b++) all &&= zero[i + a][j + b];
      if (all) zeroBlocks++;
    }
    return zeroBlocks;
  });
  const nmCounts = patterns.map(([n, m]) => {
    if (cols % m) return null;
    let ok = 0;
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j += m) {
      let nz = 0;
      for (let b = 0; b < m; b++) if (!zero[i][j + b]) nz++;
      if (nz <= n) ok++;
    }
    return ok;
  });
  const rowNnz = zero.map((row) => row.filter((z) => !z).length);
  let zeroColumns = 0;
  for (let j = 0; j < cols; j++) if (zero.every((row) => row[j])) zeroColumns++;
  return { zeros, blocks, nmCounts, rowNnz, zeroColumns, zeroRows: rowNnz.filter((n) => n === 0).length };
}

test('property: analysis matches a brute-force reference (seeded)', () => {
  const random = mulberry32(20240601);
  const shapes: [number, number][] = [[1, 2], [1, 4], [1, 8], [1, 16], [2, 2], [4, 1], [4, 4], [8, 1], [16, 1], [1, 32], [3, 5], [2, 3], [1, 64]];
  const patterns: [number, number][] = [[2, 4], [1, 4], [2, 8], [0, 2], [5, 16], [9, 32], [3, 8]];
  const cases: Case[] = [
    { dtype: 'float32', shape: [16, 64], rowAxis: 0 },
    { dtype: 'float32', shape: [48, 96], rowAxis: 0 },
    { dtype: 'float32', shape: [6, 10], rowAxis: 0 },
    { dtype: 'float32', shape: [8, 3, 3, 16], rowAxis: 0 },
    { dtype: 'float32', shape: [4, 6, 8], rowAxis: 1 },
    { dtype: 'float32', shape: [3, 5, 32], rowAxis: 2 },
    { dtype: 'float16', shape: [32, 40], rowAxis: 0 },
    { dtype: 'bfloat16', shape: [20, 33], rowAxis: 1 },
    { dtype: 'float64', shape: [12, 16], rowAxis: 0 },
    { dtype: 'int8', shape: [16, 48], rowAxis: 0, zeroPoint: { values: [-3] } },
    { dtype: 'int8', shape: [8, 2, 2, 12], rowAxis: 0, zeroPoint: { values: [0, 1, -1, 2, -2, 3, -3, 4], axis: 0 } },
    { dtype: 'uint8', shape: [12, 8], rowAxis: 0, zeroPoint: { values: [10, 20, 30, 40, 50, 60, 70, 80], axis: 1 } },
    { dtype: 'uint8', shape: [4, 6, 8], rowAxis: 1, zeroPoint: { values: [5, 6, 7, 8], axis: 0 } },
    { dtype: 'int16', shape: [64], rowAxis: 0 },
    { dtype: 'int32', shape: [32, 16], rowAxis: 1, zeroPoint: { values: [-7] } },
  ];
  let checked = 0;
  for (const c of cases) {
    for (const share of [0, 0.5, 0.8, 0.95, 1]) {
      const weight = makeCase(random, c, share);
      const a = analyzeZeros(weight, { rowAxis: c.rowAxis, blockShapes: shapes, nmPatterns: patterns });
      const ref = reference(weight, c.rowAxis, shapes, patterns, c.zeroPoint);
      const label = `${c.dtype} [${c.shape}] axis ${c.rowAxis} at ${share}`;
      assert.equal(a.zeros, ref.zeros, `${label}: zeros`);
      assert.deepEqual(a.blocks.map((b) => (b.applicable ? b.zeroBlocks : null)), ref.blocks, `${label}: zero blocks`);
      assert.deepEqual(a.nm.map((p) => (p.applicable ? p.satisfyingGroups : null)), ref.nmCounts, `${label}: N:M`);
      assert.equal(a.zeroRows, ref.zeroRows, `${label}: zero rows`);
      assert.equal(a.zeroColumns, ref.zeroColumns, `${label}: zero columns`);
      assert.equal(a.rowNnz.min, Math.min(...ref.rowNnz), `${label}: min row nnz`);
      assert.equal(a.rowNnz.max, Math.max(...ref.rowNnz), `${label}: max row nnz`);
      assert.equal(a.rowNnz.histogram.counts.reduce((x, y) => x + y, 0), ref.rowNnz.length, `${label}: histogram total`);
      checked++;
    }
  }
  assert.equal(checked, cases.length * 5);
});
