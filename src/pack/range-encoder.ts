/** Encoder of ./range-coder.ts (same model, same probabilities); used by the pack writer only. */
import { MOVE_BITS, PROB_BITS, PROB_INIT, PROB_ONE, TOP } from './range-coder.js';

const LOW_LIMIT = 2 ** 32;

/** Range-codes `bytes` (with optional per-byte context bytes); the result starts with a 0 byte. */
export function rangeEncodeBytes(bytes: Uint8Array, context: Uint8Array | null): Uint8Array {
  let out = new Uint8Array(Math.max(64, bytes.length + (bytes.length >>> 3) + 16));
  let outLen = 0;
  const push = (b: number) => {
    if (outLen === out.length) { const g = new Uint8Array(out.length * 2); g.set(out); out = g; }
    out[outLen++] = b;
  };
  let low = 0; // < 2^33, kept as a Number
  let range = 0xffffffff;
  let cache = 0;
  let cacheSize = 1;
  const shiftLow = () => {
    if (low < 0xff000000 || low >= LOW_LIMIT) {
      const carry = low >= LOW_LIMIT ? 1 : 0;
      let temp = cache;
      do { push((temp + carry) & 0xff); temp = 0xff; } while (--cacheSize !== 0);
      cache = Math.floor(low / TOP) & 0xff;
    }
    cacheSize++;
    low = (low % TOP) * 256;
  };
  const probs = new Uint16Array((context ? 256 : 1) * 256).fill(PROB_INIT);
  for (let i = 0; i < bytes.length; i++) {
    const base = context ? context[i]! << 8 : 0;
    const symbol = bytes[i]!;
    let node = 1;
    for (let b = 7; b >= 0; b--) {
      const bit = (symbol >>> b) & 1;
      const at = base + node;
      const p = probs[at]!;
      const bound = (range >>> PROB_BITS) * p;
      if (bit === 0) {
        range = bound;
        probs[at] = p + ((PROB_ONE - p) >>> MOVE_BITS);
      } else {
        low += bound;
        range -= bound;
        probs[at] = p - (p >>> MOVE_BITS);
      }
      node = (node << 1) | bit;
      while (range < TOP) {
        range = (range * 256) >>> 0;
        shiftLow();
      }
    }
  }
  for (let i = 0; i < 5; i++) shiftLow();
  return out.slice(0, outLen);
}
