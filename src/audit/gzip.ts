/**
 * gzip sizes without holding the compressed output (fflate; large outputs streamed, only
 * counting bytes). Level 6 by default (fflate's level 9 is several times slower for well under 1% fewer
 * bytes on weights); level 9 matches `gzip -9` and what convert prints.
 */
import { Gzip, gzipSync } from 'fflate';

export type GzipLevel = 6 | 9;

/**
 * Input is regrouped into pieces of exactly this many bytes before it reaches the compressor, so
 * the result does not depend on how the caller split the bytes (fflate's stream output does), and
 * an input up to this size gives the same bytes as gzipSync.
 */
const PIECE_BYTES = 1 << 22;

export class GzipCounter {
  private readonly gzip: Gzip;
  private readonly piece = new Uint8Array(PIECE_BYTES);
  private used = 0;
  private total = 0;
  private finished = false;

  constructor(level: GzipLevel = 6) {
    this.gzip = new Gzip({ level }, (chunk) => { this.total += chunk.length; });
  }

  push(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, PIECE_BYTES - this.used);
      this.piece.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === PIECE_BYTES) {
        // The compressor may keep a view of what it was given: hand it a copy.
        this.gzip.push(this.piece.slice());
        this.used = 0;
      }
    }
  }

  /** Finishes the stream and returns the gzip size in bytes. */
  finish(): number {
    if (!this.finished) {
      this.gzip.push(this.piece.slice(0, this.used), true);
      this.finished = true;
    }
    return this.total;
  }
}

/** Outputs up to this size are gzipped in one call (gzipSync's exact bytes); larger ones are streamed. */
export const ONE_SHOT_GZIP_BYTES = 64 * 1024 * 1024;

/**
 * gzip size of the concatenation of `chunks`: exactly gzipSync's up to ONE_SHOT_GZIP_BYTES, a
 * streamed gzip above (a few bytes per 4 MiB larger: fflate ends each streamed piece's block).
 * `onBytes` is called with the input bytes consumed so far.
 */
export function gzipSizeOf(chunks: Iterable<Uint8Array>, level: GzipLevel = 6, onBytes?: (done: number) => void): number {
  const list = Array.isArray(chunks) ? chunks as Uint8Array[] : [...chunks];
  const size = list.reduce((n, c) => n + c.length, 0);
  if (size <= ONE_SHOT_GZIP_BYTES) {
    let whole: Uint8Array;
    if (list.length === 1) {
      whole = list[0]!;
    } else {
      whole = new Uint8Array(size);
      let at = 0;
      for (const c of list) { whole.set(c, at); at += c.length; }
    }
    const n = gzipSync(whole, { level }).length;
    onBytes?.(size);
    return n;
  }
  const counter = new GzipCounter(level);
  let done = 0;
  for (const chunk of list) {
    counter.push(chunk);
    done += chunk.length;
    onBytes?.(done);
  }
  return counter.finish();
}
