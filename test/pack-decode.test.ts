/**
 * The pack decoder's fast paths against plain references: the JavaScript inflater's two-level
 * tables (codes longer than the first level, literal and distance) and its fast paths (bit buffer,
 * one to two literals per lookup, 8-byte match copies) against zlib on the streams the packs hold
 * (byte planes of float32 values: our Huffman-only writer, fflate's LZ, zlib's fixed codes),
 * ending exactly at the input's and the output's ends, truncated, over-long and corrupted; the branch-free
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
import { huffmanDeflate } from '../converters/tfjs/entropy.js';
import { deflateSync } from 'fflate';
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

/**
 * PPSP-like values: float32 weights (a few distinct magnitudes, some repeats, zeros), byte-shuffled
 * into 4 planes: two near-random low planes, a mantissa/exponent plane coded in 6-9 bits, a sign
 * and exponent plane in 1-3 bits (two literals per lookup), and repeated runs for LZ matches.
 */
function floatPlanes(n: number): Uint8Array {
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.3) values[i] = 0;
    else if (r < 0.4 && i >= 64) values[i] = values[i - 1 - Math.floor(rand() * 64)]!;
    else values[i] = (rand() - 0.5) * 0.1 * (rand() < 0.1 ? 8 : 1);
  }
  const bytes = new Uint8Array(values.buffer);
  const planes = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < 4; j++) planes[j * n + i] = bytes[4 * i + j]!;
  return planes;
}

/** The streams of `bytes` every writer of packs and of other tools makes: ours, fflate's, zlib's (dynamic, fixed, Huffman-only). */
function streamsOf(bytes: Uint8Array): Array<[string, Uint8Array]> {
  return [
    ['huffmanDeflate', huffmanDeflate(bytes)],
    ['fflate -6', deflateSync(bytes, { level: 6 })],
    ['fflate -9', deflateSync(bytes, { level: 9 })],
    ['zlib -1', zlib.deflateRawSync(bytes, { level: 1 })],
    ['zlib -9', zlib.deflateRawSync(bytes, { level: 9 })],
    ['zlib fixed', zlib.deflateRawSync(bytes, { strategy: zlib.constants.Z_FIXED })],
    ['zlib huffman-only', zlib.deflateRawSync(bytes, { strategy: zlib.constants.Z_HUFFMAN_ONLY })],
  ];
}

describe('inflateInto fast paths against zlib', () => {
  test('float planes and literal-heavy data: every writer, exact and spare output, input ending at its buffer end', () => {
    const inputs = [floatPlanes(60_000), floatPlanes(3_001), Uint8Array.from({ length: 50_000 }, () => Math.floor(rand() ** 3 * 256))];
    for (const bytes of inputs) {
      for (const [label, stream] of streamsOf(bytes)) {
        const want = zlib.inflateRawSync(stream);
        assert.ok(want.equals(Buffer.from(bytes)), label);
        // Output exactly as long as the data (the last copies and literals end at its last byte) and one byte longer.
        for (const spare of [0, 1, 9]) {
          const out = new Uint8Array(bytes.length + spare).fill(0x5a);
          assert.equal(inflateInto(stream, out), bytes.length, `${label} +${spare}`);
          assert.ok(Buffer.from(out.subarray(0, bytes.length)).equals(want), `${label} +${spare}`);
        }
        // The stream as the last bytes of its ArrayBuffer, and followed by 0xff bytes that must not be read.
        const ending = new Uint8Array(new ArrayBuffer(stream.length + 7), 7);
        ending.set(stream);
        const followed = new Uint8Array(stream.length + 40).fill(0xff).subarray(0, stream.length);
        followed.set(stream);
        for (const input of [ending, followed]) {
          const out = new Uint8Array(bytes.length);
          assert.equal(inflateInto(input, out), bytes.length, label);
          assert.ok(Buffer.from(out).equals(want), label);
        }
        // The output as a view inside a larger buffer: nothing around it is written.
        const around = new Uint8Array(bytes.length + 24).fill(0xc3);
        assert.equal(inflateInto(stream, around.subarray(8, 8 + bytes.length)), bytes.length, label);
        assert.ok(Buffer.from(around.subarray(8, 8 + bytes.length)).equals(want), label);
        assert.ok(around.subarray(0, 8).every((v) => v === 0xc3) && around.subarray(8 + bytes.length).every((v) => v === 0xc3), `${label}: bytes around the output`);
        // One byte too few in the output: refused as over-long, whatever the last symbol was.
        assert.throws(() => inflateInto(stream, new Uint8Array(bytes.length - 1)), (e: unknown) => e instanceof InflateError && /more bytes than expected/.test(e.message), label);
      }
    }
  });

  test('every truncation of small streams is refused; bytes after the final block are ignored', () => {
    for (const bytes of [floatPlanes(700), Uint8Array.from({ length: 3000 }, () => Math.floor(rand() ** 4 * 256))]) {
      for (const [label, stream] of streamsOf(bytes)) {
        for (let cut = 0; cut < stream.length; cut++) {
          assert.throws(() => inflateInto(stream.subarray(0, cut), new Uint8Array(bytes.length + 1)), InflateError, `${label} cut at ${cut}`);
        }
        const extended = new Uint8Array(stream.length + 3).fill(0xee);
        extended.set(stream);
        const out = new Uint8Array(bytes.length + 1);
        assert.equal(inflateInto(extended, out), bytes.length, label);
        assert.ok(Buffer.from(out.subarray(0, bytes.length)).equals(Buffer.from(bytes)), label);
      }
    }
  });

  test('an incomplete code: its assigned codes decode, an unassigned one is refused (after tables that filled the scratch)', () => {
    // One dynamic block: literal 'A' (65) 1 bit, end-of-block 2 bits ('10'); '11' is assigned to nothing.
    const streamOf = (data: Array<[number, number]>): Uint8Array => {
      const bits: number[] = [];
      const field = (v: number, n: number): void => { for (let i = 0; i < n; i++) bits.push((v >> i) & 1); };
      const code = (c: number, n: number): void => { for (let i = n - 1; i >= 0; i--) bits.push((c >> i) & 1); };
      field(1, 1); field(2, 2); field(0, 5); field(0, 5); field(15, 4);
      // Code-length code: symbols 0, 1, 2 and 18 with 2 bits each (00, 01, 10, 11), in the RFC's order.
      for (const s of [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]) field(s === 0 || s === 1 || s === 2 || s === 18 ? 2 : 0, 3);
      code(3, 2); field(65 - 11, 7); // 65 zero lengths
      code(1, 2); // 'A': 1
      code(3, 2); field(138 - 11, 7); code(3, 2); field(52 - 11, 7); // 190 zero lengths
      code(2, 2); // end-of-block: 2
      code(0, 2); // the one distance code: unused
      for (const [c, n] of data) code(c, n);
      const out = new Uint8Array(Math.ceil(bits.length / 8) + 1);
      bits.forEach((b, i) => { out[i >> 3]! |= b << (i & 7); });
      return out;
    };
    for (const [, stream] of streamsOf(floatPlanes(2000))) inflateInto(stream, new Uint8Array(8001));
    const out = new Uint8Array(10);
    assert.equal(inflateInto(streamOf([[0, 1], [0, 1], [2, 2]]), out), 2);
    assert.deepEqual([...out.subarray(0, 2)], [65, 65]);
    assert.throws(() => inflateInto(streamOf([[0, 1], [3, 2], [2, 2]]), new Uint8Array(10)), (e: unknown) => e instanceof InflateError && /invalid literal/.test(e.message));
  });

  test('corrupted float-plane streams: InflateError or the same bytes as zlib, never another exception', () => {
    const bytes = floatPlanes(8_000);
    const sources = streamsOf(bytes).map(([, s]) => s);
    let refused = 0;
    for (let k = 0; k < 1400; k++) {
      const stream = sources[k % sources.length]!.slice();
      for (let j = 0; j < 1 + (k % 3); j++) stream[Math.floor(rand() * stream.length)]! ^= 1 << Math.floor(rand() * 8);
      const out = new Uint8Array(bytes.length + 1);
      let got: number;
      try {
        got = inflateInto(stream, out);
      } catch (e) {
        assert.ok(e instanceof InflateError, String(e));
        refused++;
        continue;
      }
      // Accepted: zlib must accept it too (within our limit) and agree byte for byte.
      let want: Buffer | null = null;
      try { want = zlib.inflateRawSync(stream, { maxOutputLength: bytes.length + 1 }); } catch { /* zlib refuses more (e.g. incomplete codes, trailing data) */ }
      if (want) assert.ok(Buffer.from(out.subarray(0, got)).equals(want.subarray(0, got)), `flip ${k}`);
    }
    assert.ok(refused > 700, `refused ${refused} of 1400`);
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
