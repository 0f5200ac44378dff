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
 */
export function rangeDecodeBytes(src: Uint8Array, out: Uint8Array, context: Uint8Array | null): number {
  const len = src.length;
  if (len < 5 || src[0] !== 0) return -1;
  let code = ((src[1]! << 24) | (src[2]! << 16) | (src[3]! << 8) | src[4]!) >>> 0;
  let range = 0xffffffff;
  let pos = 5;
  const probs = new Uint16Array((context ? 256 : 1) * 256).fill(PROB_INIT);
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const base = context ? context[i]! << 8 : 0;
    let node = 1;
    while (node < 256) {
      const at = base + node;
      const p = probs[at]!;
      const bound = (range >>> PROB_BITS) * p;
      if (code < bound) {
        range = bound;
        probs[at] = p + ((PROB_ONE - p) >>> MOVE_BITS);
        node <<= 1;
      } else {
        code -= bound;
        range -= bound;
        probs[at] = p - (p >>> MOVE_BITS);
        node = (node << 1) | 1;
      }
      while (range < TOP) {
        range = (range << 8) >>> 0;
        code = ((code << 8) | (pos < len ? src[pos]! : 0)) >>> 0;
        pos++;
      }
    }
    out[i] = node & 0xff;
  }
  return pos > len ? -1 : pos;
}
