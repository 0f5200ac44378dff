/**
 * The entropy stage of the tfjs-sparse writer: re-compresses the index and values streams of a
 * PPSP blob (docs/sparse-codec.md) with whichever raw DEFLATE is smallest, a literal-only
 * ("Huffman-only") stream or fflate's LZ77 stream, or leaves a stream uncompressed when neither
 * helps. The blob stays a standard PPSP version 1 blob: only its flags, stored stream lengths and
 * CRC change, so every PPSP reader decodes it.
 *
 * Why a second DEFLATE encoder: the streams of a pruned tensor (bitmap bytes, byte-shuffled
 * values) are close to memoryless, so LZ77 matches buy nothing and fflate's match search and
 * block layout cost 5-15% over the order-0 entropy (measured on face-api's uint8 weights: values
 * 72,921 B with fflate -6, 63,214 B Huffman-only, 63,584 B entropy of the byte histogram).
 * The encoder below writes dynamic-Huffman blocks with literals only, and splits the input into
 * blocks where the byte statistics change (e.g. between the byte planes of shuffled floats).
 * Browser-safe (no Node built-ins).
 */
import { deflateSync } from 'fflate';
import type { DeflateLevel } from '../../src/sparsity/codecs.js';
import { canonicalCodes } from './inflate.js';
import { crc32 } from './sparse-decode.js';

/**
 * Longest literal code. DEFLATE allows 15 bits, but fflate's inflate builds a lookup table of
 * 2^(longest code) entries for every block: 12 bits keeps it at 8 KiB (in cache, quick to build)
 * and costs well under 0.1% (only symbols rarer than 1 in 4096 get longer codes than optimal).
 */
const MAX_LITERAL_BITS = 12;
const MAX_CODE_LENGTH_BITS = 7;
/** Order in which the code-length code's lengths are sent (RFC 1951, 3.2.7). */
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const END_OF_BLOCK = 256;
const LITERALS = 257;
/** Blocks are built from chunks of this many bytes, merged while one block costs less than two. */
const CHUNK = 8192;
/**
 * Longest block: a stored block holds at most 65,535 bytes; and fflate's inflate, called without
 * an output buffer, grows its buffer by 128 KiB per block and silently drops literals past that.
 */
const MAX_BLOCK = 65535;
/**
 * A block is Huffman-coded only when that saves at least 1/32 of its stored size: decoding a
 * Huffman literal costs ~50x a stored byte (a copy), and the low mantissa bytes of float weights
 * compress by a fraction of a percent; they are better stored.
 */
const MIN_HUFFMAN_SAVING = 1 / 32;

/**
 * Huffman code lengths for `freq` (no length above `limit`). Symbols of frequency 0 get 0; at
 * least two symbols get a length, so the code is complete (inflaters refuse incomplete codes).
 */
export function huffmanLengths(freq: ArrayLike<number>, limit: number): Uint8Array {
  const n = freq.length;
  const weights = Float64Array.from(freq);
  let used = 0;
  for (let s = 0; s < n; s++) if (weights[s]! > 0) used++;
  for (let s = 0; used < 2 && s < n; s++) if (weights[s] === 0) { weights[s] = 1; used++; }
  if (used > 2 ** limit) throw new Error(`huffmanLengths: ${used} symbols cannot have codes of at most ${limit} bits`);
  for (;;) {
    const lengths = treeLengths(weights);
    let longest = 0;
    for (let s = 0; s < n; s++) if (lengths[s]! > longest) longest = lengths[s]!;
    if (longest <= limit) return lengths;
    // Flatten the distribution and retry: rare symbols get shorter codes, frequent ones barely change.
    for (let s = 0; s < n; s++) if (weights[s]! > 0) weights[s] = Math.floor(weights[s]! / 2) + 1;
  }
}

/** Depth of every leaf of a Huffman tree (two-queue construction over the sorted leaves). */
function treeLengths(weights: Float64Array): Uint8Array {
  const leaves: number[] = [];
  for (let s = 0; s < weights.length; s++) if (weights[s]! > 0) leaves.push(s);
  leaves.sort((a, b) => weights[a]! - weights[b]! || a - b);
  const m = leaves.length;
  const nodes = 2 * m - 1;
  const weight = new Float64Array(nodes);
  const parent = new Int32Array(nodes);
  for (let i = 0; i < m; i++) weight[i] = weights[leaves[i]!]!;
  let leaf = 0;
  let inner = m;
  const smallest = (next: number) => (leaf < m && (inner >= next || weight[leaf]! <= weight[inner]!) ? leaf++ : inner++);
  for (let next = m; next < nodes; next++) {
    const a = smallest(next);
    const b = smallest(next);
    weight[next] = weight[a]! + weight[b]!;
    parent[a] = next;
    parent[b] = next;
  }
  const depth = new Uint8Array(nodes);
  for (let i = nodes - 2; i >= 0; i--) depth[i] = depth[parent[i]!]! + 1;
  const lengths = new Uint8Array(weights.length);
  for (let i = 0; i < m; i++) lengths[leaves[i]!] = depth[i]!;
  return lengths;
}

class BitWriter {
  private out: Uint8Array;
  private pos = 0;
  private bits = 0;
  private count = 0;

  constructor(capacity: number) {
    this.out = new Uint8Array(Math.max(64, capacity));
  }

  write(value: number, length: number): void {
    this.bits |= value << this.count;
    this.count += length;
    while (this.count >= 8) {
      if (this.pos === this.out.length) {
        const grown = new Uint8Array(this.out.length * 2);
        grown.set(this.out);
        this.out = grown;
      }
      this.out[this.pos++] = this.bits & 0xff;
      this.bits >>>= 8;
      this.count -= 8;
    }
  }

  /** Pads to a byte boundary, then copies `data` (stored blocks). */
  bytes(data: Uint8Array): void {
    if (this.count > 0) this.write(0, 8 - this.count);
    if (this.pos + data.length > this.out.length) {
      const grown = new Uint8Array(Math.max(this.out.length * 2, this.pos + data.length));
      grown.set(this.out.subarray(0, this.pos));
      this.out = grown;
    }
    this.out.set(data, this.pos);
    this.pos += data.length;
  }

  finish(): Uint8Array {
    if (this.count > 0) this.write(0, 8 - this.count);
    return this.out.subarray(0, this.pos);
  }
}

/** The code-length sequence run-length coded (symbols 0-18 with their extra bits). */
function runLengths(lengths: Uint8Array): { symbols: number[]; extra: number[] } {
  const symbols: number[] = [];
  const extra: number[] = [];
  for (let i = 0; i < lengths.length;) {
    const l = lengths[i]!;
    let run = 1;
    while (i + run < lengths.length && lengths[i + run] === l) run++;
    i += run;
    if (l === 0) {
      while (run >= 11) { const r = Math.min(run, 138); symbols.push(18); extra.push(r - 11); run -= r; }
      if (run >= 3) { symbols.push(17); extra.push(run - 3); run = 0; }
    } else {
      symbols.push(l); extra.push(0); run--;
      while (run >= 3) { const r = Math.min(run, 6); symbols.push(16); extra.push(r - 3); run -= r; }
    }
    for (; run > 0; run--) { symbols.push(l); extra.push(0); }
  }
  return { symbols, extra };
}

const EXTRA_BITS = (symbol: number) => (symbol === 16 ? 2 : symbol === 17 ? 3 : symbol === 18 ? 7 : 0);

/** One literal-only block's code: literal lengths, the header's pieces, its size in bits, and whether it is better stored. */
interface BlockCode {
  lengths: Uint8Array;
  header: { symbols: number[]; extra: number[]; clLengths: Uint8Array; hclen: number };
  bits: number;
  stored: boolean;
}

function blockCode(histogram: Float64Array, length: number): BlockCode {
  histogram[END_OF_BLOCK] = 1;
  const lengths = huffmanLengths(histogram, MAX_LITERAL_BITS);
  // Two distance codes of one bit: a complete (unused) distance code.
  const all = new Uint8Array(LITERALS + 2);
  all.set(lengths);
  all[LITERALS] = 1;
  all[LITERALS + 1] = 1;
  const { symbols, extra } = runLengths(all);
  const clFreq = new Float64Array(19);
  for (const s of symbols) clFreq[s]!++;
  const clLengths = huffmanLengths(clFreq, MAX_CODE_LENGTH_BITS);
  let hclen = 19;
  while (hclen > 4 && clLengths[CODE_LENGTH_ORDER[hclen - 1]!] === 0) hclen--;
  let bits = 3 + 5 + 5 + 4 + 3 * hclen;
  for (const s of symbols) bits += clLengths[s]! + EXTRA_BITS(s);
  for (let s = 0; s < LITERALS; s++) bits += histogram[s]! * lengths[s]!;
  // Stored: 3 header bits, up to 7 bits of padding, LEN and NLEN, the bytes.
  const storedBits = 3 + 7 + 32 + 8 * length;
  const stored = bits > storedBits * (1 - MIN_HUFFMAN_SAVING);
  return { lengths, header: { symbols, extra, clLengths, hclen }, bits: stored ? storedBits : bits, stored };
}

function histogramOf(bytes: Uint8Array, start: number, end: number): Float64Array {
  const h = new Float64Array(LITERALS);
  for (let i = start; i < end; i++) h[bytes[i]!]!++;
  return h;
}

/**
 * Raw DEFLATE (RFC 1951) of `bytes` with literals only: dynamic-Huffman blocks, a new block
 * where the byte statistics change enough to pay for another code table.
 */
export function huffmanDeflate(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) return Uint8Array.of(0x03, 0x00); // one fixed-Huffman block holding only end-of-block
  const blocks: Array<{ start: number; end: number; histogram: Float64Array; code: BlockCode }> = [];
  for (let start = 0; start < bytes.length; start += CHUNK) {
    const end = Math.min(bytes.length, start + CHUNK);
    const histogram = histogramOf(bytes, start, end);
    const code = blockCode(histogram.slice(), end - start);
    const last = blocks[blocks.length - 1];
    if (last && end - last.start <= MAX_BLOCK) {
      const merged = last.histogram.map((v, s) => v + histogram[s]!);
      const mergedCode = blockCode(merged.slice(), end - last.start);
      if (mergedCode.bits <= last.code.bits + code.bits) {
        last.end = end;
        last.histogram = merged;
        last.code = mergedCode;
        continue;
      }
    }
    blocks.push({ start, end, histogram, code });
  }
  const writer = new BitWriter(Math.ceil(blocks.reduce((n, b) => n + b.code.bits, 0) / 8) + 8);
  blocks.forEach((block, k) => {
    const final = k === blocks.length - 1 ? 1 : 0;
    if (block.code.stored) {
      const length = block.end - block.start;
      writer.write(final, 1);
      writer.write(0, 2); // stored
      writer.bytes(Uint8Array.of(length & 0xff, length >>> 8, ~length & 0xff, (~length >>> 8) & 0xff));
      writer.bytes(bytes.subarray(block.start, block.end));
      return;
    }
    const { lengths, header } = block.code;
    const codes = canonicalCodes(lengths);
    const clCodes = canonicalCodes(header.clLengths);
    writer.write(final, 1);
    writer.write(2, 2); // dynamic Huffman
    writer.write(LITERALS - 257, 5);
    writer.write(2 - 1, 5);
    writer.write(header.hclen - 4, 4);
    for (let i = 0; i < header.hclen; i++) writer.write(header.clLengths[CODE_LENGTH_ORDER[i]!]!, 3);
    header.symbols.forEach((s, i) => {
      writer.write(clCodes[s]!, header.clLengths[s]!);
      const extraBits = EXTRA_BITS(s);
      if (extraBits) writer.write(header.extra[i]!, extraBits);
    });
    for (let i = block.start; i < block.end; i++) {
      const b = bytes[i]!;
      writer.write(codes[b]!, lengths[b]!);
    }
    writer.write(codes[END_OF_BLOCK]!, lengths[END_OF_BLOCK]!);
  });
  return writer.finish();
}

/**
 * The smallest form of one stream: Huffman-only DEFLATE, fflate's DEFLATE at `lzLevel` (0: not
 * tried; it is the slow part of encoding), or the raw bytes.
 */
export function compressStream(raw: Uint8Array, lzLevel: DeflateLevel): { bytes: Uint8Array; deflated: boolean } {
  let best = raw;
  let deflated = false;
  if (raw.length === 0) return { bytes: raw, deflated };
  for (const candidate of [huffmanDeflate(raw), ...(lzLevel > 0 ? [deflateSync(raw, { level: lzLevel })] : [])]) {
    if (candidate.length < best.length) { best = candidate; deflated = true; }
  }
  return { bytes: best, deflated };
}

const FLAG_INDEX_DEFLATE = 1;
const FLAG_VALUES_DEFLATE = 2;
const CRC_BYTES = 4;

function readU64(dv: DataView, at: number): number {
  return dv.getUint32(at + 4, true) * 0x100000000 + dv.getUint32(at, true);
}

function writeU64(dv: DataView, at: number, value: number): void {
  dv.setUint32(at, value >>> 0, true);
  dv.setUint32(at + 4, Math.floor(value / 0x100000000), true);
}

/**
 * A PPSP blob written without DEFLATE (its values may be byte-shuffled) with each stream
 * compressed by compressStream: header, dims and fill table are kept; the stored lengths, the
 * two DEFLATE flags and the CRC-32 are rewritten.
 */
export function withEntropyStage(rawBlob: Uint8Array, lzLevel: DeflateLevel): Uint8Array {
  const dv = new DataView(rawBlob.buffer, rawBlob.byteOffset, rawBlob.byteLength);
  const flags = rawBlob[7]!;
  if (flags & (FLAG_INDEX_DEFLATE | FLAG_VALUES_DEFLATE)) throw new Error('withEntropyStage expects a blob without DEFLATE');
  const indexLength = readU64(dv, 28);
  const valuesLength = readU64(dv, 44);
  const valuesAt = rawBlob.length - CRC_BYTES - indexLength - valuesLength;
  const values = compressStream(rawBlob.subarray(valuesAt, valuesAt + valuesLength), lzLevel);
  const index = compressStream(rawBlob.subarray(valuesAt + valuesLength, valuesAt + valuesLength + indexLength), lzLevel);
  const total = valuesAt + values.bytes.length + index.bytes.length + CRC_BYTES;
  const out = new Uint8Array(total);
  out.set(rawBlob.subarray(0, valuesAt));
  out.set(values.bytes, valuesAt);
  out.set(index.bytes, valuesAt + values.bytes.length);
  const header = new DataView(out.buffer);
  out[7] = flags | (index.deflated ? FLAG_INDEX_DEFLATE : 0) | (values.deflated ? FLAG_VALUES_DEFLATE : 0);
  writeU64(header, 28, index.bytes.length);
  writeU64(header, 44, values.bytes.length);
  header.setUint32(total - CRC_BYTES, crc32(out.subarray(0, total - CRC_BYTES)), true);
  return out;
}
