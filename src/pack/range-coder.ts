/**
 * Adaptive binary range coder for pack pool streams (docs/pack-format.md, "Range-coded streams"):
 * bytes are coded MSB first through a 255-node bit tree of 11-bit probabilities (start 1024,
 * adaptation shift 4), optionally one tree per context byte (the same element's byte in the
 * stream above). Decode side only; the encoder is ./range-encoder.ts. Browser-safe.
 */
export const PROB_BITS = 11;
export const PROB_ONE = 1 << PROB_BITS;
export const PROB_INIT = PROB_ONE >>> 1;
export const MOVE_BITS = 4;
export const TOP = 2 ** 24;

/**
 * Decodes `count` bytes from `src` into `out`. With `context` (same length as `out`), byte i is
 * coded with the tree of context[i]. Returns the number of source bytes consumed, or -1 when the
 * stream is malformed (first byte not 0, or it ends before the bytes it must hold).
 *
 * All arithmetic is on 32-bit integers (V8 keeps them in registers): `range` and `code` hold the
 * unsigned values' bits, compared unsigned by flipping the sign bit, and `bound` is the low 32
 * bits of the product (it is < 2^32). One normalization step per bit is the spec's "while": with
 * probabilities confined to 15..2033 by the update rule, a bit leaves range >= 2^24 * 15 / 2048,
 * so a single 8-bit shift brings it back above 2^24. The bit itself is decoded without a branch
 * (~17% faster on the pools of the PaddleOCR and mediapipe packs).
 */
export function rangeDecodeBytes(src: Uint8Array, out: Uint8Array, context: Uint8Array | null): number {
  const len = src.length;
  if (len < 5 || src[0] !== 0) return -1;
  let code = (src[1]! << 24) | (src[2]! << 16) | (src[3]! << 8) | src[4]!;
  let range = -1; // 0xFFFFFFFF
  let pos = 5;
  const probs = new Uint16Array((context ? 256 : 1) * 256).fill(PROB_INIT);
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const base = context === null ? 0 : context[i]! << 8;
    let node = 1;
    do {
      const at = base + node;
      const p = probs[at]!;
      const bound = Math.imul(range >>> PROB_BITS, p);
      // mask = -1 for a 0 bit (code < bound, unsigned), 0 for a 1 bit, without a branch (the bits
      // of a well-coded stream are unpredictable): the signed "less than" of the sign-flipped
      // values with the subtraction's overflow corrected (Hacker's Delight 2-12).
      const x = code ^ 0x80000000;
      const y = bound ^ 0x80000000;
      const d = (x - y) | 0;
      const mask = (d ^ ((x ^ y) & (d ^ x))) >> 31;
      const rest = (range - bound) | 0;
      range = rest ^ ((bound ^ rest) & mask);
      code = (code - (bound & ~mask)) | 0;
      probs[at] = p + (((PROB_ONE - p) >>> MOVE_BITS) & mask) - ((p >>> MOVE_BITS) & ~mask);
      node = (node << 1) + 1 + mask;
      if (range >>> 24 === 0) {
        range <<= 8;
        code = (code << 8) | (pos < len ? src[pos]! : 0);
        pos++;
      }
    } while (node < 256);
    out[i] = node;
  }
  return pos > len ? -1 : pos;
}
