import type { Model } from '../../src/model/types.js';

/** Byte ranges of `bytes` that hold weight data: the weights' views into the input. */
export function weightRanges(model: Model, bytes: Uint8Array): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const w of model.weights) {
    let stored: Uint8Array;
    try { stored = w.bytes; } catch { continue; }
    if (stored.buffer !== bytes.buffer || stored.length < 64) continue;
    const start = stored.byteOffset - bytes.byteOffset;
    if (start >= 0 && start + stored.length <= bytes.length) ranges.push([start, start + stored.length]);
  }
  return ranges;
}
