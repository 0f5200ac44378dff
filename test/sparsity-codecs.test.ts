/**
 * PPSP sparse blobs (BCSR and bitmap) and the cost model: a golden byte layout, seeded round trips
 * over every codec / dtype / block / flag combination, exact size functions, corruption and
 * truncation (always PrunepackError CORRUPT), and bitmap + shuffle + deflate against gzip -9.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { deflateSync, gzipSync } from 'fflate';
import { analyzeZeros, sparseElementBytes, type DenseWeight } from '../src/sparsity/analysis.js';
import {
  DTYPE_CODES, crc32, decodeSparse, encodeSparse, portableCrc32, sparseEncodedSize, sparseEncodedSizeWithEntropy,
  type SparseCodec, type SparseEncodeOptions,
} from '../src/sparsity/codecs.js';
import { gzipSize, informationBound, parseEncoding, planWeightEncoding } from '../src/sparsity/cost.js';
import { PrunepackError } from '../src/errors.js';
import { float32ToFloat16, float32ToBfloat16, type DType } from '../src/model/dtype.js';
import { mulberry32 } from '../src/random.js';


function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Fails with the first differing bytes listed, not just "not equal". */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  if (actual.length === expected.length && actual.every((b, i) => b === expected[i])) return;
  const diffs: string[] = [];
  for (let i = 0; i < Math.max(actual.length, expected.length) && diffs.length < 8; i++) {
    if (actual[i] !== expected[i]) diffs.push(`@${i}: ${actual[i]} != ${expected[i]}`);
  }
  assert.fail(`${label}: ${actual.length} vs ${expected.length} bytes; ${diffs.join(', ')}`);
}

const isCorrupt = (e: unknown) => e instanceof PrunepackError && e.code === 'CORRUPT';

function withCrc(blob: Uint8Array): Uint8Array {
  new DataView(blob.buffer, blob.byteOffset).setUint32(blob.length - 4, crc32(blob.subarray(0, blob.length - 4)), true);
  return blob;
}

// ---------------------------------------------------------------------------------------------

test('crc32 matches zlib', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  const random = mulberry32(7);
  for (const n of [0, 1, 3, 15, 16, 17, 63, 64, 65, 1000, 4099]) {
    for (const offset of [0, 1, 2, 3]) {
      const b = new Uint8Array(n + offset).map(() => Math.floor(random() * 256)).subarray(offset);
      assert.equal(crc32(b), zlib.crc32(b), `n=${n} offset=${offset}`);
    }
  }
  assert.equal(crc32(new Uint8Array([4, 5, 6]), crc32(new Uint8Array([1, 2, 3]))), zlib.crc32(new Uint8Array([1, 2, 3, 4, 5, 6])));
});

test('the portable crc32 (browsers, older Node) matches zlib', () => {
  assert.equal(portableCrc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  const random = mulberry32(8);
  for (const n of [0, 1, 3, 15, 16, 17, 63, 64, 65, 1000, 4099, 70001]) {
    for (const offset of [0, 1, 2, 3]) {
      const b = new Uint8Array(n + offset).map(() => Math.floor(random() * 256)).subarray(offset);
      assert.equal(portableCrc32(b), zlib.crc32(b), `n=${n} offset=${offset}`);
      if (n > 0) assert.equal(portableCrc32(b, 0x12345678), zlib.crc32(b, 0x12345678), `n=${n} offset=${offset}, continued`);
    }
  }
  // Continuing over no bytes keeps the checksum (zlib itself returns 0 there).
  assert.equal(portableCrc32(new Uint8Array(0), 0x89abcdef), 0x89abcdef);
  assert.equal(crc32(new Uint8Array(0), 0x89abcdef), 0x89abcdef);
});

test('golden layout: 2x4 float32 as BCSR 1x1, no entropy stage', () => {
  // [[0, 1.5, 0, 0], [0, 0, 0, -2]] -> row pointers 0, 1, 2 (u8), columns 1, 3 (u8), values 1.5, -2.
  const values = new Float32Array([0, 1.5, 0, 0, 0, 0, 0, -2]);
  const blob = encodeSparse({ values, dtype: 'float32', shape: [2, 4] }, { codec: 'bcsr' });
  const expected = new Uint8Array(60 + 8 + 5 + 8 + 4);
  const dv = new DataView(expected.buffer);
  expected.set([0x50, 0x50, 0x53, 0x50, 1, 1, 1, 0, 2, 0, 1, 1]); // magic, version, BCSR, float32, flags, rank, axis, wp, wc
  dv.setUint32(12, 1, true); // block rows
  dv.setUint32(16, 1, true); // block cols
  dv.setUint32(20, 2, true); // stored blocks
  dv.setUint32(28, 5, true); // index bytes
  dv.setUint32(36, 5, true);
  dv.setUint32(44, 8, true); // value bytes
  dv.setUint32(52, 8, true);
  dv.setUint32(60, 2, true); // dims
  dv.setUint32(64, 4, true);
  dv.setFloat32(68, 1.5, true); // values first
  dv.setFloat32(72, -2, true);
  expected.set([0, 1, 2, 1, 3], 76); // then the index
  dv.setUint32(81, zlib.crc32(expected.subarray(0, 81)), true);
  assertSameBytes(blob, expected, 'golden BCSR blob');

  // The same matrix as a bitmap: the values, then one byte 0b1000_0010 (bits 1 and 7).
  const bitmap = encodeSparse({ values, dtype: 'float32', shape: [2, 4] }, { codec: 'bitmap' });
  assert.equal(bitmap[5], 2);
  assert.deepEqual([bitmap[10], bitmap[11]], [0, 0]);
  assert.equal(bitmap[76], 0b1000_0010);
  assert.equal(bitmap.length, 60 + 8 + 1 + 8 + 4);
});

// ---------------------------------------------------------------------------------------------
// Round trips

const DTYPES: { dtype: DType; width: number }[] = [
  { dtype: 'float32', width: 4 }, { dtype: 'float16', width: 2 }, { dtype: 'bfloat16', width: 2 },
  { dtype: 'float64', width: 8 }, { dtype: 'int8', width: 1 }, { dtype: 'uint8', width: 1 },
  { dtype: 'int16', width: 2 }, { dtype: 'int32', width: 4 }, { dtype: 'int64', width: 8 },
  { dtype: 'bool', width: 1 }, { dtype: 'complex64', width: 8 }, { dtype: 'float8e4m3fn', width: 1 },
];

/** Random dense bytes: zeros are all-zero bytes, other elements random bit patterns that are not zero. */
function randomWeight(random: () => number, dtype: DType, width: number, shape: number[], zeroShare: number): DenseWeight {
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(count * width);
  for (let i = 0; i < count; i++) {
    if (random() < zeroShare) continue;
    let allZero = true;
    while (allZero) {
      for (let b = 0; b < width; b++) bytes[i * width + b] = dtype === 'bool' ? (b === 0 ? 1 : 0) : Math.floor(random() * 256);
      // Reject numeric zeros of the float kinds (-0 would come back as +0 under the numeric rule).
      const signless = bytes.slice(i * width, (i + 1) * width);
      if (dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64') signless[width - 1] &= 0x7f;
      if (dtype === 'complex64') { signless[3] &= 0x7f; signless[7] &= 0x7f; }
      if (dtype === 'float8e4m3fn') signless[0] &= 0x7f;
      allZero = signless.every((b) => b === 0);
    }
  }
  return { values: bytes, dtype, shape };
}

const FLAG_SETS: Pick<SparseEncodeOptions, 'deflateIndex' | 'deflateValues' | 'shuffleValues'>[] = [];
for (let f = 0; f < 8; f++) FLAG_SETS.push({ deflateIndex: !!(f & 1), deflateValues: !!(f & 2), shuffleValues: !!(f & 4) });

test('property: decode(encode(x)) is byte-exact for every codec, dtype, block, flag set and sparsity', () => {
  const random = mulberry32(42);
  const layouts: { shape: number[]; rowAxis: number; blocks: [number, number][] }[] = [
    { shape: [8, 12], rowAxis: 0, blocks: [[1, 1], [1, 4], [2, 2], [4, 1], [8, 12]] },
    { shape: [4, 2, 2, 6], rowAxis: 0, blocks: [[1, 1], [1, 4], [2, 8]] },
    { shape: [4, 2, 2, 6], rowAxis: 3, blocks: [[1, 1], [2, 4], [3, 1]] },
    { shape: [30], rowAxis: 0, blocks: [[1, 1], [1, 5]] },
  ];
  let checked = 0;
  for (const { dtype, width } of DTYPES) {
    for (const layout of layouts) {
      for (const share of [0, 0.5, 0.8, 0.95, 1]) {
        const weight = randomWeight(random, dtype, width, layout.shape, share);
        const dense = bytesOf(weight.values);
        const analysis = analyzeZeros(weight, { rowAxis: layout.rowAxis, blockShapes: layout.blocks });
        for (const codec of ['bcsr', 'bitmap'] as SparseCodec[]) {
          for (const blockShape of layout.blocks) {
            for (const flags of FLAG_SETS) {
              const options: SparseEncodeOptions = { codec, blockShape, rowAxis: layout.rowAxis, level: 6, ...flags };
              const blob = encodeSparse(weight, options);
              const label = `${dtype} [${layout.shape}] axis ${layout.rowAxis} ${codec} ${blockShape.join('x')} ${JSON.stringify(flags)} at ${share}`;
              const back = decodeSparse(blob);
              assert.equal(back.dtype, dtype, label);
              assert.deepEqual(back.shape, layout.shape, label);
              assert.deepEqual(back.blockShape, blockShape, label);
              assertSameBytes(back.values, dense, label);
              if (!flags.deflateIndex && !flags.deflateValues) {
                assert.equal(sparseEncodedSize(analysis, { codec, blockShape }), blob.length, `${label}: size from counts`);
              }
              checked++;
            }
          }
        }
      }
    }
  }
  assert.ok(checked > 10000, `${checked} round trips`);
});

/**
 * The PPSP layout written from its documentation, element by element, with no shared code: what
 * encodeSparse must produce byte for byte (no entropy stage). Zero test: all bytes equal to the
 * fill bytes after masking the float sign bits (numeric rule) or not (bitwise rule).
 */
function referenceBlob(weight: DenseWeight, codec: SparseCodec, [r, c]: [number, number], rowAxis: number, bitwise: boolean,
  fill: { axis: number | null; bytes: Uint8Array } | null): Uint8Array {
  const { dtype, shape } = weight;
  const w = sparseElementBytes(dtype);
  const bytes = bytesOf(weight.values);
  const count = shape.reduce((a, b) => a * b, 1);
  const rows = shape.length < 2 ? 1 : shape[rowAxis];
  const cols = count / rows;
  let inner = 1;
  for (let a = rowAxis + 1; a < shape.length; a++) inner *= shape[a];
  if (shape.length < 2) inner = count;
  const flatOf = (row: number, col: number) => Math.floor(col / inner) * rows * inner + row * inner + (col % inner);
  const signBytes = dtype === 'complex64' ? [3, 7] : ['float32', 'float16', 'bfloat16', 'float64'].includes(dtype) ? [w - 1] : [];
  let fillInner = 1;
  if (fill?.axis != null) for (let a = fill.axis + 1; a < shape.length; a++) fillInner *= shape[a];
  const isZero = (flat: number) => {
    const channel = fill === null ? 0 : fill.axis === null ? 0 : Math.floor(flat / fillInner) % shape[fill.axis];
    for (let b = 0; b < w; b++) {
      const mask = !bitwise && signBytes.includes(b) ? 0x7f : 0xff;
      const zero = fill === null ? 0 : fill.bytes[channel * w + b];
      if ((bytes[flat * w + b] & mask) !== zero) return false;
    }
    return true;
  };
  const blockRows = rows / r;
  const blockCols = cols / c;
  const values: number[] = [];
  const pointers = [0];
  const columns: number[] = [];
  const bits = new Uint8Array(Math.ceil((blockRows * blockCols) / 8));
  for (let br = 0; br < blockRows; br++) {
    for (let bc = 0; bc < blockCols; bc++) {
      const flats: number[] = [];
      for (let rr = 0; rr < r; rr++) for (let cc = 0; cc < c; cc++) flats.push(flatOf(br * r + rr, bc * c + cc));
      if (flats.every(isZero)) continue;
      for (const f of flats) for (let b = 0; b < w; b++) values.push(bytes[f * w + b]);
      columns.push(bc);
      const k = br * blockCols + bc;
      bits[k >>> 3] |= 1 << (k & 7);
    }
    pointers.push(columns.length);
  }
  const stored = columns.length;
  const narrow = (max: number) => (max <= 0xff ? 1 : max <= 0xffff ? 2 : 4);
  const wp = codec === 'bcsr' ? narrow(stored) : 0;
  const wc = codec === 'bcsr' ? narrow(blockCols - 1) : 0;
  const index: number[] = [];
  const push = (value: number, width: number) => { for (let b = 0; b < width; b++) index.push((value >>> (8 * b)) & 0xff); };
  if (codec === 'bcsr') {
    pointers.forEach((v) => push(v, wp));
    columns.forEach((v) => push(v, wc));
  } else {
    index.push(...bits);
  }
  const fillBytes = fill === null ? 0 : 8 + fill.bytes.length;
  const valuesAt = 60 + 4 * shape.length + fillBytes;
  const out = new Uint8Array(valuesAt + values.length + index.length + 4);
  const dv = new DataView(out.buffer);
  out.set([0x50, 0x50, 0x53, 0x50, 1, codec === 'bcsr' ? 1 : 2, DTYPE_CODES[dtype]!, fill === null ? 0 : 8, shape.length, rowAxis, wp, wc]);
  dv.setUint32(12, r, true);
  dv.setUint32(16, c, true);
  dv.setUint32(20, stored, true);
  dv.setUint32(28, index.length, true);
  dv.setUint32(36, index.length, true);
  dv.setUint32(44, values.length, true);
  dv.setUint32(52, values.length, true);
  shape.forEach((d, a) => dv.setUint32(60 + 4 * a, d, true));
  if (fill !== null) {
    dv.setUint32(60 + 4 * shape.length, fill.axis === null ? 0xffffffff : fill.axis, true);
    dv.setUint32(64 + 4 * shape.length, fill.bytes.length / w, true);
    out.set(fill.bytes, 68 + 4 * shape.length);
  }
  out.set(values, valuesAt);
  out.set(index, valuesAt + values.length);
  dv.setUint32(out.length - 4, zlib.crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

test('encodeSparse writes exactly the documented layout (reference encoder, long rows, every block-width class)', () => {
  const random = mulberry32(77);
  // Rows of whole 32-bit words and not, widths that are powers of two (folded) and not (ranges),
  // blocks taller than one row, strided views (row axis > 0), rank 1.
  const layouts: { shape: number[]; rowAxis: number; blocks: [number, number][] }[] = [
    { shape: [6, 96], rowAxis: 0, blocks: [[1, 1], [1, 2], [1, 4], [1, 32], [2, 8], [3, 16], [1, 96], [2, 3], [1, 12]] },
    { shape: [4, 100], rowAxis: 0, blocks: [[1, 1], [1, 4], [2, 20], [4, 5], [1, 25]] },
    { shape: [3, 4, 24], rowAxis: 1, blocks: [[1, 1], [2, 4], [4, 3], [1, 8]] },
    { shape: [257], rowAxis: 0, blocks: [[1, 1], [1, 257]] },
  ];
  const cases: { dtype: DType; bitwise: boolean; zp?: number[]; axis?: number }[] = [
    { dtype: 'float32', bitwise: false }, { dtype: 'float32', bitwise: true }, { dtype: 'float16', bitwise: false },
    { dtype: 'float64', bitwise: false }, { dtype: 'complex64', bitwise: false }, { dtype: 'int32', bitwise: false },
    { dtype: 'int8', bitwise: false, zp: [-3] }, { dtype: 'uint8', bitwise: false, zp: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24], axis: -1 },
  ];
  let checked = 0;
  for (const layout of layouts) {
    for (const k of cases) {
      const w = sparseElementBytes(k.dtype);
      const count = layout.shape.reduce((a, b) => a * b, 1);
      const axis = k.axis === -1 ? layout.shape.length - 1 : k.axis;
      if (k.zp && k.zp.length > 1 && (axis === undefined || layout.shape[axis] !== k.zp.length)) continue;
      for (const share of [0.5, 0.9, 1]) {
        const weight = randomWeight(random, k.dtype, w, layout.shape, share);
        const bytes = bytesOf(weight.values);
        let fill: { axis: number | null; bytes: Uint8Array } | null = null;
        if (k.zp) {
          // Zeros hold the zero point of their channel; a few negative zeros where floats are tested.
          let inner = 1;
          if (axis !== undefined) for (let a = axis + 1; a < layout.shape.length; a++) inner *= layout.shape[a];
          fill = { axis: k.zp.length === 1 ? null : axis!, bytes: new Uint8Array(k.zp.map((z) => z & 0xff)) };
          for (let i = 0; i < count; i++) {
            const channel = k.zp.length === 1 ? 0 : Math.floor(i / inner) % k.zp.length;
            if (random() < share) bytes[i] = fill.bytes[channel];
          }
          weight.quantization = { zeroPoint: k.zp, ...(k.zp.length > 1 ? { axis } : {}) };
        } else if (k.dtype === 'float32') {
          const u = new Uint32Array(bytes.buffer, bytes.byteOffset, count);
          for (let i = 0; i < count; i++) if (u[i] === 0 && random() < 0.3) u[i] = 0x80000000;
        }
        for (const blockShape of layout.blocks) {
          for (const codec of ['bcsr', 'bitmap'] as SparseCodec[]) {
            const blob = encodeSparse(weight, { codec, blockShape, rowAxis: layout.rowAxis, zeroRule: k.bitwise ? 'bitwise' : 'numeric' });
            const expected = referenceBlob(weight, codec, blockShape, layout.rowAxis, k.bitwise, fill);
            assertSameBytes(blob, expected, `${k.dtype}${k.bitwise ? ' bitwise' : ''} [${layout.shape}] axis ${layout.rowAxis} ${codec} ${blockShape.join('x')} at ${share}`);
            checked++;
          }
        }
      }
    }
  }
  assert.ok(checked > 500, `${checked} blobs compared`);
});

test('signed zeros: numeric rule decodes -0.0 as +0.0, bitwise rule keeps it', () => {
  const values = new Float32Array([-0, 1, 0, -0, NaN, -3, -0, 0]);
  const weight = { values, dtype: 'float32' as const, shape: [2, 4] };
  const numeric = decodeSparse(encodeSparse(weight, { codec: 'bcsr' }));
  assert.deepEqual(Array.from(new Float32Array(numeric.values.slice().buffer)).map((x) => Object.is(x, -0) ? '-0' : String(x)),
    ['0', '1', '0', '0', 'NaN', '-3', '0', '0']);
  for (const codec of ['bcsr', 'bitmap'] as SparseCodec[]) {
    const exact = decodeSparse(encodeSparse(weight, { codec, zeroRule: 'bitwise' }));
    assertSameBytes(exact.values, bytesOf(values), `${codec} bitwise`);
    // Size from an analysis with the same rule is exact.
    const a = analyzeZeros(weight, { zeroRule: 'bitwise' });
    assert.equal(sparseEncodedSize(a, { codec }), encodeSparse(weight, { codec, zeroRule: 'bitwise' }).length);
  }
  // float16 -0 (0x8000) under the bitwise rule.
  const f16 = new Uint16Array([0x8000, 0x3c00, 0, 0x8000]);
  assertSameBytes(decodeSparse(encodeSparse({ values: f16, dtype: 'float16', shape: [4] }, { codec: 'bitmap', zeroRule: 'bitwise' })).values,
    bytesOf(f16), 'float16 bitwise');
});

test('quantized weights: zero points come back from the fill table', () => {
  const random = mulberry32(3);
  // int8 [6, 8] per output channel (axis 0), uint8 [4, 3, 3, 8] per input channel (axis 3), per tensor.
  const cases: { dtype: DType; shape: number[]; zp: number[]; axis?: number; rowAxis?: number }[] = [
    { dtype: 'int8', shape: [6, 8], zp: [0, -128, 5, 127, -1, 3], axis: 0 },
    { dtype: 'uint8', shape: [4, 3, 3, 8], zp: [1, 2, 3, 4, 5, 6, 7, 8], axis: 3 },
    { dtype: 'uint8', shape: [4, 3, 3, 8], zp: [1, 2, 3, 4, 5, 6, 7, 8], axis: 3, rowAxis: 3 },
    { dtype: 'uint8', shape: [16, 4], zp: [128] },
    { dtype: 'int16', shape: [4, 4], zp: [-300, 0, 7, 1000], axis: 1 },
  ];
  for (const c of cases) {
    const count = c.shape.reduce((a, b) => a * b, 1);
    const width = c.dtype === 'int16' ? 2 : 1;
    const bytes = new Uint8Array(count * width);
    const dv = new DataView(bytes.buffer);
    let inner = 1;
    if (c.axis !== undefined) for (let a = c.axis + 1; a < c.shape.length; a++) inner *= c.shape[a];
    for (let i = 0; i < count; i++) {
      const zp = c.zp.length === 1 ? c.zp[0] : c.zp[Math.floor(i / inner) % c.shape[c.axis!]];
      const v = random() < 0.8 ? zp : Math.floor(random() * 200) - (c.dtype === 'uint8' ? 0 : 100);
      if (c.dtype === 'int16') dv.setInt16(2 * i, v, true);
      else if (c.dtype === 'int8') dv.setInt8(i, v);
      else dv.setUint8(i, v);
    }
    const weight: DenseWeight = { values: bytes, dtype: c.dtype, shape: c.shape, quantization: { zeroPoint: c.zp, axis: c.axis } };
    const analysis = analyzeZeros(weight, { rowAxis: c.rowAxis ?? 0 });
    assert.ok(analysis.zeros > count / 2, 'zero points are counted as zeros');
    const blocked = analyzeZeros(weight, { rowAxis: c.rowAxis ?? 0, blockShapes: [[2, 2]] });
    for (const codec of ['bcsr', 'bitmap'] as SparseCodec[]) {
      for (const blockShape of [[1, 1], [2, 2]] as [number, number][]) {
        for (const deflate of [false, true]) {
          const blob = encodeSparse(weight, {
            codec, blockShape, rowAxis: c.rowAxis ?? 0, deflateIndex: deflate, deflateValues: deflate, shuffleValues: deflate,
          });
          assert.equal(blob[7] & 8, 8, 'fill table flag');
          assertSameBytes(decodeSparse(blob).values, bytes, `${c.dtype} [${c.shape}] ${codec} ${blockShape.join('x')} deflate=${deflate}`);
          if (!deflate) assert.equal(sparseEncodedSize(blockShape[0] === 1 ? analysis : blocked, { codec, blockShape }), blob.length);
        }
      }
    }
  }
});

test('sizes: without entropy from the counts, with entropy by encoding', () => {
  const random = mulberry32(11);
  const weight = randomWeight(random, 'float32', 4, [64, 64], 0.9);
  const a = analyzeZeros(weight);
  for (const codec of ['bcsr', 'bitmap'] as SparseCodec[]) {
    for (const b of a.blocks.filter((x) => x.applicable)) {
      const blockShape: [number, number] = [b.rows, b.cols];
      assert.equal(sparseEncodedSize(a, { codec, blockShape }), encodeSparse(weight, { codec, blockShape }).length);
    }
    const options = { codec, deflateIndex: true, deflateValues: true, shuffleValues: true } as const;
    assert.equal(sparseEncodedSizeWithEntropy(weight, options), encodeSparse(weight, options).length);
  }
  assert.throws(() => sparseEncodedSize(a, { codec: 'bcsr', blockShape: [2, 8] }), (e) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
  assert.throws(() => encodeSparse(weight, { codec: 'bcsr', blockShape: [3, 3] }), (e) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
});

// ---------------------------------------------------------------------------------------------
// Corruption

function sampleBlobs(): { name: string; blob: Uint8Array }[] {
  const random = mulberry32(99);
  const f32 = randomWeight(random, 'float32', 4, [6, 8], 0.7);
  const q: DenseWeight = {
    values: new Int8Array([3, 3, 1, 3, -2, -2, -2, 9, 0, 0, 0, 0]), dtype: 'int8', shape: [3, 4],
    quantization: { zeroPoint: [3, -2, 0], axis: 0 },
  };
  const f16 = randomWeight(random, 'float16', 2, [4, 2, 2, 3], 0.6);
  return [
    { name: 'bcsr 1x1 raw', blob: encodeSparse(f32, { codec: 'bcsr' }) },
    { name: 'bcsr 2x4 deflated', blob: encodeSparse(f32, { codec: 'bcsr', blockShape: [2, 4], deflateIndex: true, deflateValues: true, shuffleValues: true }) },
    { name: 'bitmap 1x1 raw', blob: encodeSparse(f32, { codec: 'bitmap' }) },
    { name: 'bitmap 1x2 shuffled', blob: encodeSparse(f16, { codec: 'bitmap', blockShape: [1, 2], rowAxis: 3, shuffleValues: true, deflateIndex: true }) },
    { name: 'bcsr int8 fill table', blob: encodeSparse(q, { codec: 'bcsr' }) },
  ];
}

test('every single-byte corruption throws CORRUPT', () => {
  for (const { name, blob } of sampleBlobs()) {
    assert.doesNotThrow(() => decodeSparse(blob), name);
    for (let i = 0; i < blob.length; i++) {
      for (const delta of [0x01, 0x80, 0xff]) {
        const bad = blob.slice();
        bad[i] ^= delta;
        assert.throws(() => decodeSparse(bad), isCorrupt, `${name}: byte ${i} ^ 0x${delta.toString(16)}`);
      }
    }
  }
});

test('every truncation and every extension throws CORRUPT', () => {
  for (const { name, blob } of sampleBlobs()) {
    for (let n = 0; n < blob.length; n++) {
      assert.throws(() => decodeSparse(blob.subarray(0, n)), isCorrupt, `${name}: first ${n} of ${blob.length} bytes`);
    }
    const longer = new Uint8Array(blob.length + 1);
    longer.set(blob);
    assert.throws(() => decodeSparse(longer), isCorrupt, `${name}: one byte appended`);
    // A truncated blob says so.
    assert.throws(() => decodeSparse(blob.subarray(0, blob.length - 3)), /truncated or extended/, name);
  }
});

test('corruption behind a valid checksum: CORRUPT, UNSUPPORTED or a well-formed tensor, never anything else', () => {
  const random = mulberry32(5);
  for (const { name, blob } of sampleBlobs()) {
    for (let i = 0; i < blob.length - 4; i++) {
      for (let trial = 0; trial < 4; trial++) {
        const bad = blob.slice();
        bad[i] ^= 1 + Math.floor(random() * 255);
        withCrc(bad);
        try {
          const out = decodeSparse(bad, { maxDenseBytes: 1 << 20 });
          const count = out.shape.reduce((a, b) => a * b, 1);
          assert.equal(out.values.length, count * sparseElementBytes(out.dtype), `${name}: byte ${i} decoded to a mis-sized tensor`);
        } catch (e) {
          assert.ok(e instanceof PrunepackError && (e.code === 'CORRUPT' || e.code === 'UNSUPPORTED'),
            `${name}: byte ${i} threw ${(e as Error).stack}`);
        }
      }
    }
  }
});

test('targeted header and index corruption with a valid checksum', () => {
  const values = new Float32Array([0, 1.5, 0, 0, 0, 0, 0, -2]);
  const weight = { values, dtype: 'float32' as const, shape: [2, 4] };
  const base = encodeSparse(weight, { codec: 'bcsr' });
  const mutate = (fn: (b: Uint8Array, dv: DataView) => void) => {
    const b = base.slice();
    fn(b, new DataView(b.buffer));
    return withCrc(b);
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['codec id', mutate((b) => { b[5] = 9; }), /unknown codec id/],
    ['dtype code', mutate((b) => { b[6] = 200; }), /unknown dtype code/],
    ['reserved flags', mutate((b) => { b[7] = 0x10; }), /reserved flag bits/],
    ['row axis', mutate((b) => { b[9] = 2; }), /row axis out of range/],
    ['index width', mutate((b) => { b[11] = 3; }), /block-column index width/],
    ['block rows 0', mutate((_, dv) => dv.setUint32(12, 0, true)), /block rows/],
    ['block cols 3', mutate((_, dv) => dv.setUint32(16, 3, true)), /do not divide the matrix cols/],
    ['stored count', mutate((_, dv) => dv.setUint32(20, 3, true)), /inflated index length|inflated values length/],
    ['stored > grid', mutate((_, dv) => dv.setUint32(20, 9, true)), /more stored blocks than the grid/],
    ['u64 above 2^53', mutate((_, dv) => dv.setUint32(24, 0x00400000, true)), /larger than 2\^53/],
    ['index length', mutate((_, dv) => dv.setUint32(28, 4, true)), /index stream length does not reach the checksum/],
    ['values length', mutate((_, dv) => dv.setUint32(44, 99, true)), /values stream runs past the end/],
    ['dim', mutate((_, dv) => dv.setUint32(60, 3, true)), /inflated index length/],
    ['first row pointer', mutate((b) => { b[76] = 1; }), /first row pointer/],
    ['decreasing row pointers', mutate((b) => { b[77] = 2; b[78] = 1; }), /last row pointer|non-decreasing/],
    ['column out of range', mutate((b) => { b[80] = 4; }), /block-column indices/],
    ['columns not increasing', mutate((b) => { b[77] = 2; b[79] = 3; b[80] = 1; }), /block-column indices/],
  ];
  for (const [name, blob, message] of cases) {
    assert.throws(() => decodeSparse(blob), (e) => isCorrupt(e) && message.test((e as Error).message), name);
  }
  assert.throws(() => decodeSparse(mutate((b) => { b[4] = 2; })), (e) => e instanceof PrunepackError && e.code === 'UNSUPPORTED');
  // Errors carry evidence: where, expected, found.
  try {
    decodeSparse(mutate((b) => { b[80] = 4; }));
    assert.fail('no error');
  } catch (e) {
    const err = e as PrunepackError;
    assert.match(err.location ?? '', /index stream byte 4/);
    assert.equal(err.found, '4');
  }
  // Bitmap: a padding bit past the grid, and a bit count that disagrees with the stored blocks.
  const bitmap = encodeSparse({ values: new Float32Array([1, 0, 0, 0, 0, 2]), dtype: 'float32', shape: [6] }, { codec: 'bitmap' });
  const padded = bitmap.slice();
  padded[72] |= 0x80;
  assert.throws(() => decodeSparse(withCrc(padded)), (e) => isCorrupt(e) && /bit count|padding/.test((e as Error).message));
  // Index streams that inflate to more than the header declares, or not at all.
  const withIndexStream = (stream: Uint8Array) => {
    const blob = new Uint8Array(68 + 8 + stream.length + 4);
    blob.set(base.subarray(0, 76)); // header, dims, values
    blob[7] |= 1;
    new DataView(blob.buffer).setUint32(28, stream.length, true);
    blob.set(stream, 76);
    return withCrc(blob);
  };
  assertSameBytes(decodeSparse(withIndexStream(deflateSync(new Uint8Array([0, 1, 2, 1, 3])))).values, bytesOf(values), 'rebuilt blob');
  assert.throws(() => decodeSparse(withIndexStream(deflateSync(new Uint8Array([0, 1, 2, 1, 3, 9])))),
    (e) => isCorrupt(e) && /inflates to the wrong length/.test((e as Error).message));
  assert.throws(() => decodeSparse(withIndexStream(deflateSync(new Uint8Array([0, 1, 2, 1])))),
    (e) => isCorrupt(e) && /inflates to the wrong length/.test((e as Error).message));
  assert.throws(() => decodeSparse(withIndexStream(new Uint8Array([0xff, 0xff, 0xff]))),
    (e) => isCorrupt(e) && /not valid DEFLATE/.test((e as Error).message));
  const stream = deflateSync(new Uint8Array([0, 1, 2, 1, 3]), { level: 0 });
  assert.throws(() => decodeSparse(withIndexStream(stream.subarray(0, stream.length - 1))), isCorrupt);
  // The dense-size limit.
  assert.throws(() => decodeSparse(base, { maxDenseBytes: 16 }), (e) => e instanceof PrunepackError && e.code === 'UNSUPPORTED');
});

// ---------------------------------------------------------------------------------------------
// Compression against gzip, and the cost model

function normalWeights(random: () => number, count: number, zeroShare: number): Float32Array {
  const v = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (random() < zeroShare) continue;
    const u = 1 - random();
    v[i] = 0.05 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return v;
}

test('bitmap + byte shuffle + deflate beats gzip -9 of the dense bytes at 80% random zeros', () => {
  const values = normalWeights(mulberry32(2024), 512 * 512, 0.8);
  const weight = { values, dtype: 'float32' as const, shape: [512, 512] };
  const gzip = gzipSync(bytesOf(values), { level: 9 }).length;
  const blob = encodeSparse(weight, { codec: 'bitmap', deflateIndex: true, deflateValues: true, shuffleValues: true, level: 9 });
  const ratio = blob.length / gzip;
  const a = analyzeZeros(weight);
  const bound = informationBound(a.count, a.zeros, 4);
  console.log(`# bitmap+shuffle+deflate ${blob.length} B / gzip -9 ${gzip} B = ${ratio.toFixed(3)}x `
    + `(information bound with raw values ${Math.round(bound)} B, gzip/bound ${(gzip / bound).toFixed(3)})`);
  assert.ok(ratio < 1, `ratio ${ratio}`);
  assertSameBytes(decodeSparse(blob).values, bytesOf(values), 'round trip');
});

test('informationBound: 4.5x at 80% and 8.7x at 90% zeros for float32 (FORMATS.md)', () => {
  const n = 1_000_000;
  assert.equal((4 * n / informationBound(n, 0.8 * n, 4)).toFixed(1), '4.5');
  assert.equal((4 * n / informationBound(n, 0.9 * n, 4)).toFixed(1), '8.7');
  assert.equal(informationBound(n, 0, 4), 4 * n);
  assert.equal(informationBound(n, n, 4), 0);
  assert.equal(informationBound(0, 0, 4), 0);
  assert.equal(gzipSize(new Uint8Array(1000)), gzipSync(new Uint8Array(1000), { level: 9 }).length);
});

test('cost model: picks the fewest bytes, explains it, takes caller encodings', () => {
  const random = mulberry32(8);
  // 1x4-block pruned: 90% of the 1x4 blocks zero, the rest dense normal values.
  const values = new Float32Array(128 * 256);
  for (let b = 0; b < values.length / 4; b++) {
    if (random() < 0.9) continue;
    for (let k = 0; k < 4; k++) values[4 * b + k] = 0.05 * (random() - 0.5) + 0.001;
  }
  const weight = { name: 'dense_1/kernel', values, dtype: 'float32' as const, shape: [128, 256] };
  const entry = planWeightEncoding(weight, ['dense', 'dense+gzip', 'bcsr', 'bitmap+deflate',
    { name: 'tflite:csr', size: (_, a) => 8 * (a.matrix.rows + 1) + a.nonzeros * 8 },
    { name: 'tflite:int8-1x16', size: () => null },
  ]);
  assert.equal(entry.tensor, 'dense_1/kernel');
  assert.equal(entry.bytesBefore, values.length * 4);
  const min = Math.min(...entry.candidates.map((c) => c.bytes));
  assert.equal(entry.bytesAfter, min);
  assert.equal(entry.candidates.find((c) => c.encoding === entry.encoding)!.bytes, min);
  // bcsr expands to 1x1 and every block of the analysis; 1x4 beats CSR on 1x4-pruned weights.
  const bcsr1x1 = entry.candidates.find((c) => c.encoding === 'bcsr:1x1')!;
  const bcsr1x4 = entry.candidates.find((c) => c.encoding === 'bcsr:1x4')!;
  assert.ok(bcsr1x4.bytes < bcsr1x1.bytes);
  assert.ok(entry.candidates.some((c) => c.encoding === 'tflite:csr'));
  assert.deepEqual(entry.skipped.map((s) => s.encoding), ['tflite:int8-1x16']);
  assert.match(entry.reason, new RegExp(`^${entry.encoding.replace('+', '\\+')}: [\\d,]+ B, \\d\\.\\d\\dx of dense gzip -9 \\([\\d,]+ B\\); \\S+ would be [\\d,]+ B; \\d+\\.\\d% zeros$`));
  console.log(`# plan: ${entry.reason}`);
  // Explicit shapes, including one that does not divide; ties keep the first listed.
  const explicit = planWeightEncoding(weight, ['bcsr:1x4', 'bitmap:3x3', 'bcsr:1x4+deflate'], { compareWithGzip: false });
  assert.deepEqual(explicit.skipped.map((s) => s.encoding), ['bitmap:3x3']);
  assert.match(explicit.reason, /x of dense \(131,072 B\)/);
  const tie = planWeightEncoding(weight, [{ name: 'a', size: () => 10 }, { name: 'b', size: () => 10 }], { compareWithGzip: false });
  assert.equal(tie.encoding, 'a');
  assert.throws(() => parseEncoding('csr'), (e) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
  assert.deepEqual(parseEncoding('bitmap:2x8+deflate'), { kind: 'bitmap', blockShape: [2, 8], deflate: true });
  assert.throws(() => planWeightEncoding(weight, [{ name: 'x', size: () => -1 }]), (e) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
});

test('float16 and bfloat16 weights round-trip through the cost model sizes', () => {
  const random = mulberry32(13);
  const f32 = normalWeights(random, 64 * 64, 0.85);
  for (const [dtype, convert] of [['float16', float32ToFloat16], ['bfloat16', float32ToBfloat16]] as const) {
    const bits = Uint16Array.from(f32, (x) => convert(x));
    const weight = { name: dtype, values: bits, dtype, shape: [64, 64] };
    const entry = planWeightEncoding(weight, ['dense', 'bcsr', 'bitmap', 'bitmap+deflate']);
    for (const c of entry.candidates.filter((x) => !x.encoding.endsWith('+deflate') && x.encoding !== 'dense')) {
      const [codec, shape] = c.encoding.split(':');
      const [r, cc] = shape.split('x').map(Number);
      assert.equal(c.bytes, encodeSparse(weight, { codec: codec as SparseCodec, blockShape: [r, cc] }).length, `${dtype} ${c.encoding}`);
    }
  }
});
