/**
 * The pack decoder's fast paths against plain references: the JavaScript inflater's two-level
 * tables (codes longer than the first level, literal and distance) against zlib; the branch-free
 * range decoder against a decoder written straight from docs/pack-format.md, on valid and on
 * arbitrary bytes; Node's zlib on the loader's thread-pool path, including over-long and invalid
 * streams.
 * Run: npx tsc -p . && node --test dist/test/pack-decode.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { inflateInto, InflateError } from '../converters/tfjs/inflate.js';
import { rangeDecodeBytes } from '../src/pack/range-coder.js';
import { rangeEncodeBytes } from '../src/pack/range-encoder.js';
import { nodeZlibInflater } from '../src/pack/restore-async.js';
import { mulberry32 } from '../src/random.js';

const rand = mulberry32(0x5eed);

/**
 * Bytes whose DEFLATE needs long codes: literals with a geometric histogram (code lengths up to
 * the 15-bit limit) and copies whose distances are spread geometrically over the 30 distance
 * codes (long distance codes), so both tables get second levels.
 */
function longCodes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  let i = 0;
  while (i < n) {
    if (i > 40_000 && rand() < 0.3) {
      const distance = 1 + Math.floor(2 ** (rand() ** 3 * 15));
      const length = 3 + Math.floor(rand() * 30);
      for (let k = 0; k < length && i < n; k++, i++) out[i] = out[i - distance]!;
    } else {
      let s = 0;
      while (rand() < 0.5 && s < 255) s++;
      out[i++] = s;
    }
  }
  return out;
}

describe('inflateInto (two-level tables) against zlib', () => {
  test('long literal and distance codes, every level and strategy, fresh and reused output', () => {
    const inputs = [longCodes(300_000), longCodes(5_000), Uint8Array.from({ length: 200_000 }, () => Math.floor(rand() * 256))];
    for (const bytes of inputs) {
      for (const options of [{ level: 1 }, { level: 6 }, { level: 9 }, { level: 9, strategy: zlib.constants.Z_HUFFMAN_ONLY }, { level: 6, strategy: zlib.constants.Z_FIXED }]) {
        const stream = zlib.deflateRawSync(bytes, options);
        const out = new Uint8Array(bytes.length + 1);
        assert.equal(inflateInto(stream, out), bytes.length, JSON.stringify(options));
        assert.ok(Buffer.from(out.subarray(0, bytes.length)).equals(Buffer.from(bytes)), JSON.stringify(options));
        // Reused (dirty) output, and a view at an offset of a larger input buffer.
        const padded = new Uint8Array(stream.length + 13);
        padded.set(stream, 5);
        out.fill(0xa5);
        assert.equal(inflateInto(padded.subarray(5, 5 + stream.length), out), bytes.length);
        assert.ok(Buffer.from(out.subarray(0, bytes.length)).equals(Buffer.from(bytes)));
        // Every truncation point of the last 64 bytes is refused.
        for (let cut = Math.max(0, stream.length - 64); cut < stream.length; cut++) {
          assert.throws(() => inflateInto(stream.subarray(0, cut), new Uint8Array(bytes.length + 1)), InflateError, `cut at ${cut}`);
        }
      }
    }
  });
});

/** The range decoder as docs/pack-format.md states it: unsigned arithmetic in doubles, the "while" loop. */
function referenceRangeDecode(src: Uint8Array, out: Uint8Array, context: Uint8Array | null): number {
  if (src.length < 5 || src[0] !== 0) return -1;
  let range = 0xffffffff;
  let code = ((src[1]! << 24) >>> 0) + (src[2]! << 16) + (src[3]! << 8) + src[4]!;
  let pos = 5;
  const probs = new Array<number>((context ? 256 : 1) * 256).fill(1024);
  for (let i = 0; i < out.length; i++) {
    const base = context ? context[i]! * 256 : 0;
    let node = 1;
    while (node < 256) {
      const p = probs[base + node]!;
      const bound = Math.floor(range / 2048) * p;
      if (code < bound) {
        range = bound;
        probs[base + node] = p + ((2048 - p) >> 4);
        node = 2 * node;
      } else {
        code -= bound;
        range -= bound;
        probs[base + node] = p - (p >> 4);
        node = 2 * node + 1;
      }
      while (range < 2 ** 24) {
        range = (range * 256) % 2 ** 32;
        code = (code * 256 + (pos < src.length ? src[pos]! : 0)) % 2 ** 32;
        pos++;
      }
    }
    out[i] = node - 256;
  }
  return pos > src.length ? -1 : pos;
}

describe('rangeDecodeBytes (branch-free bits) against the reference decoder', () => {
  test('coded streams, with and without context, and arbitrary bytes', () => {
    for (const n of [1, 7, 300, 5000]) {
      for (const share of [0.02, 0.3, 1]) {
        const bytes = Uint8Array.from({ length: n }, () => (rand() < share ? Math.floor(rand() * 256) : 0));
        const context = Uint8Array.from({ length: n }, () => Math.floor(rand() * 4));
        for (const ctx of [null, context]) {
          const coded = rangeEncodeBytes(bytes, ctx);
          const got = new Uint8Array(n);
          const want = new Uint8Array(n);
          assert.equal(rangeDecodeBytes(coded, got, ctx), referenceRangeDecode(coded, want, ctx));
          assert.deepEqual(got, want);
          assert.deepEqual(got, bytes);
        }
      }
    }
    // Arbitrary bytes (code may start at or above range): both decoders still agree byte for byte.
    for (let k = 0; k < 200; k++) {
      const src = Uint8Array.from({ length: 5 + Math.floor(rand() * 60) }, () => Math.floor(rand() * 256));
      src[0] = 0;
      if (k % 2) src[1] = 0xff;
      const ctx = k % 3 === 0 ? Uint8Array.from({ length: 40 }, () => Math.floor(rand() * 256)) : null;
      const got = new Uint8Array(40);
      const want = new Uint8Array(40);
      assert.equal(rangeDecodeBytes(src, got, ctx), referenceRangeDecode(src, want, ctx), `input ${k}`);
      assert.deepEqual(got, want, `input ${k}`);
    }
  });
});

describe("the loader's Node zlib inflater (process.getBuiltinModule)", () => {
  test('inflates on the thread pool and synchronously, capped one byte past the declared length', async () => {
    const z = nodeZlibInflater();
    assert.ok(z, 'Node >= 20.16 has process.getBuiltinModule');
    const bytes = longCodes(100_000);
    const stream = zlib.deflateRawSync(bytes);
    for (const inflate of [z.async, async (s: Uint8Array, raw: number) => z.sync(s, raw)!]) {
      assert.ok(Buffer.from(await inflate(stream, bytes.length)).equals(Buffer.from(bytes)));
      // Declared too short: at most raw + 1 bytes come back (async: rejected; sync: raw + 1 bytes), never the whole stream.
      const short = await inflate(stream, 1000).then((b) => b.length, () => -1);
      assert.ok(short === -1 || short === 1001, `declared 1000 bytes: got ${short}`);
      await assert.rejects(async () => inflate(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 10));
    }
  });
});
