/**
 * The tfjs-sparse writer's entropy stage and the loader's DEFLATE reader: Huffman-only DEFLATE
 * (entropy.ts) inflates to its input in zlib and fflate, stays within a few bytes of zlib's own
 * Huffman-only mode, and never exceeds the block limits other inflaters rely on; the loader's
 * reader (inflate.ts) decodes every kind of stream zlib and fflate write, and refuses truncated,
 * over-long and corrupted streams with InflateError only; blobs re-compressed by
 * withEntropyStage decode byte-identically in the sparsity core's reference decoder.
 * Run: npx tsc -p . && node --test dist/test/tfjs-entropy.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { deflateSync, inflateSync } from 'fflate';
import { compressStream, huffmanDeflate, huffmanLengths, withEntropyStage } from '../converters/tfjs/entropy.js';
import { inflateInto, InflateError } from '../converters/tfjs/inflate.js';
import { decodeSparse, encodeSparse } from '../src/sparsity/codecs.js';
import { mulberry32 } from '../src/random.js';
import { randomFloats } from './tfjs-fixtures.js';

const rand = mulberry32(42);
/** Inputs with very different statistics: empty, one byte, constant, skewed, uniform, mixed halves, text, and a Fibonacci histogram (forces the code-length limit). */
function inputs(): Array<{ name: string; bytes: Uint8Array }> {
  const fib: number[] = [];
  for (let s = 0, a = 1, b = 1; s < 26; s++, [a, b] = [b, a + b]) for (let k = 0; k < Math.min(a, 60_000); k++) fib.push(s);
  return [
    { name: 'empty', bytes: new Uint8Array(0) },
    { name: 'one byte', bytes: Uint8Array.of(7) },
    { name: 'constant 200 KB', bytes: new Uint8Array(200_000) },
    { name: 'skewed 300 KB', bytes: Uint8Array.from({ length: 300_000 }, () => Math.floor(rand() ** 5 * 256)) },
    { name: 'uniform 100 KB', bytes: Uint8Array.from({ length: 100_000 }, () => Math.floor(rand() * 256)) },
    { name: 'two halves', bytes: Uint8Array.from({ length: 140_000 }, (_, i) => (i < 70_000 ? Math.floor(rand() * 4) : Math.floor(rand() * 256))) },
    { name: 'text', bytes: new TextEncoder().encode('the quick brown fox jumps over the lazy dog; '.repeat(3000)) },
    { name: 'fibonacci histogram', bytes: Uint8Array.from(fib) },
  ];
}

function inflated(stream: Uint8Array, capacity: number): Uint8Array {
  const out = new Uint8Array(capacity);
  return out.subarray(0, inflateInto(stream, out));
}

describe('Huffman-only DEFLATE (writer)', () => {
  for (const { name, bytes } of inputs()) {
    test(`${name}: zlib, fflate and the loader's reader give the input back; size close to zlib's Huffman-only`, () => {
      const stream = huffmanDeflate(bytes);
      assert.ok(Buffer.from(zlib.inflateRawSync(stream)).equals(Buffer.from(bytes)), 'zlib');
      assert.ok(Buffer.from(inflateSync(stream)).equals(Buffer.from(bytes)), 'fflate without an output buffer');
      assert.ok(Buffer.from(inflated(stream, bytes.length)).equals(Buffer.from(bytes)), 'inflate.ts');
      const zlibHuffman = zlib.deflateRawSync(bytes, { strategy: zlib.constants.Z_HUFFMAN_ONLY }).length;
      assert.ok(stream.length <= Math.max(zlibHuffman * 1.01, bytes.length + 16), `${stream.length} B against zlib's ${zlibHuffman} B`);
    });
  }

  test('code lengths are complete, limited, and never zero for a used symbol', () => {
    for (const limit of [8, 12, 15]) {
      const freq = Array.from({ length: 257 }, (_, s) => (s % 3 === 0 ? 0 : Math.floor(2 ** (s % 40))));
      const lengths = huffmanLengths(freq, limit);
      let kraft = 0;
      freq.forEach((f, s) => {
        if (f > 0) assert.ok(lengths[s]! >= 1 && lengths[s]! <= limit, `symbol ${s}: ${lengths[s]}`);
        if (lengths[s]) kraft += 2 ** -lengths[s]!;
      });
      assert.equal(kraft, 1);
    }
    assert.throws(() => huffmanLengths(new Array(257).fill(1), 7), /cannot have codes/);
    // One used symbol still gets a complete code of two one-bit codes.
    const single = huffmanLengths([0, 0, 5], 15);
    assert.deepEqual([...single], [1, 0, 1]);
  });

  test('compressStream keeps the raw bytes when DEFLATE does not help, and uses LZ77 when it does', () => {
    const noise = Uint8Array.from({ length: 5000 }, () => Math.floor(rand() * 256));
    assert.deepEqual(compressStream(noise, 6), { bytes: noise, deflated: false });
    const repeated = new TextEncoder().encode('abcdefgh'.repeat(2000));
    const lz = compressStream(repeated, 6);
    assert.ok(lz.deflated && lz.bytes.length < huffmanDeflate(repeated).length / 10);
  });
});

describe('DEFLATE reader (loader)', () => {
  for (const { name, bytes } of inputs()) {
    test(`${name}: every zlib and fflate stream decodes; truncated and over-long streams are refused`, () => {
      const streams: Array<[string, Uint8Array]> = [
        ...[0, 1, 6, 9].map((level): [string, Uint8Array] => [`zlib -${level}`, zlib.deflateRawSync(bytes, { level })]),
        ...(['Z_HUFFMAN_ONLY', 'Z_FIXED', 'Z_RLE', 'Z_FILTERED'] as const).map((s): [string, Uint8Array] => [s, zlib.deflateRawSync(bytes, { strategy: zlib.constants[s] })]),
        ...([1, 6, 9] as const).map((level): [string, Uint8Array] => [`fflate -${level}`, deflateSync(bytes, { level })]),
        ['ours', huffmanDeflate(bytes)],
      ];
      for (const [label, stream] of streams) {
        assert.ok(Buffer.from(inflated(stream, bytes.length + 1)).equals(Buffer.from(bytes)), label);
        if (bytes.length < 2) continue;
        assert.throws(() => inflateInto(stream, new Uint8Array(bytes.length - 1)), (e: unknown) => e instanceof InflateError && /more bytes than expected/.test(e.message), `${label}: output too small`);
        assert.throws(() => inflateInto(stream.subarray(0, stream.length >> 1), new Uint8Array(bytes.length + 1)), InflateError, `${label}: cut in half`);
      }
    });
  }

  test('corrupted streams: InflateError or a wrong result, never another exception or a hang', () => {
    const sources = [huffmanDeflate(inputs()[3]!.bytes), deflateSync(inputs()[6]!.bytes, { level: 6 }), zlib.deflateRawSync(inputs()[5]!.bytes)];
    let refused = 0;
    for (let k = 0; k < 1500; k++) {
      const stream = sources[k % sources.length]!.slice();
      for (let j = 0; j < 1 + (k % 4); j++) stream[Math.floor(rand() * stream.length)]! ^= 1 << Math.floor(rand() * 8);
      try {
        inflateInto(stream, new Uint8Array(400_000));
      } catch (e) {
        assert.ok(e instanceof InflateError, String(e));
        refused++;
      }
    }
    assert.ok(refused > 300, `${refused} of 1500 refused`);
  });
});

describe('withEntropyStage', () => {
  test('re-compressed blobs decode byte-identically in the reference decoder, every codec and dtype', () => {
    const f32 = randomFloats(96 * 64, 3);
    const q8 = Uint8Array.from({ length: 80 * 40 }, () => (rand() < 0.8 ? 0 : Math.floor(rand() * 256)));
    const weights = [
      { values: new Uint8Array(f32.buffer), dtype: 'float32' as const, shape: [96, 64] },
      { values: q8, dtype: 'uint8' as const, shape: [80, 40] },
    ];
    for (const weight of weights) {
      for (const codec of ['bitmap', 'bcsr'] as const) {
        for (const blockShape of [[1, 1], [2, 4]] as const) {
          const raw = encodeSparse(weight, { codec, blockShape, zeroRule: 'bitwise', shuffleValues: true });
          for (const level of [0, 6] as const) {
            const blob = withEntropyStage(raw, level);
            assert.ok(blob.length <= raw.length, `${codec} ${blockShape}: ${blob.length} > ${raw.length}`);
            const decoded = decodeSparse(blob);
            assert.ok(Buffer.from(decoded.values).equals(Buffer.from(weight.values)), `${weight.dtype} ${codec} ${blockShape.join('x')} level ${level}`);
          }
        }
      }
    }
    assert.throws(() => withEntropyStage(encodeSparse(weights[0]!, { codec: 'bitmap', deflateIndex: true }), 6), /without DEFLATE/);
  });
});
