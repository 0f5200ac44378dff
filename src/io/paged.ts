/**
 * Paged file reading: a model file opened without reading it whole. `image` is an array of the
 * file's size that is filled one page at a time when a reader touches it; the operating system
 * commits memory only for pages written, so the structure of a 1 GB TFLite file costs about its
 * tables' size, not 1 GB. Weight bytes are not paged in: plugins read them with `readRange` into
 * their own arrays, which the caller drops after use (`WeightTensor.release`). Node-only.
 */
import fs from 'node:fs';
import { PrunepackError } from '../errors.js';

/** Bytes read per page fault: the tables of a flatbuffer sit together, so larger pages read fewer times. */
export const PAGE_SIZE = 1 << 16;

/**
 * Largest image (one typed array). Flatbuffer offsets are 32-bit, so the tables of a bigger file
 * lie inside its first 2 GiB; its buffers beyond are read with `readRange`.
 */
export const MAX_IMAGE = 2 ** 31 - 1;

/** Piece size of range reads with a progress callback (readNextRangeInto): well inside a core's L2 cache. */
export const READ_PIECE = 1 << 19;

export class PagedFile {
  readonly image: Uint8Array;
  private readonly loaded: Uint8Array;
  /** Bytes read from the file so far (pages and ranges), for reports and tests. */
  bytesRead = 0;
  /** Set by `readNextRangeInto`: where the next range read of exactly its length goes. */
  private nextTarget: Uint8Array | null = null;
  private nextOnRead: ((bytesDone: number) => void) | null = null;
  private nextRing = 0;
  /** Set by `locateRange`: range reads are recorded instead of performed. */
  private located: { offset: number; length: number }[] | null = null;

  /**
   * @param size the whole file's size; the image covers its first MAX_IMAGE bytes
   * @param withImage false: range reads only (no image: `ensure` must not be called)
   */
  constructor(private readonly fd: number, readonly size: number, readonly file: string, withImage = true) {
    this.image = new Uint8Array(withImage ? Math.min(size, MAX_IMAGE) : 0);
    this.loaded = new Uint8Array(Math.ceil(this.image.length / PAGE_SIZE));
  }

  /** Makes image bytes [offset, offset + length) hold the file's bytes (the caller checked the range). */
  ensure(offset: number, length: number): void {
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / PAGE_SIZE);
    for (let p = first; p <= last && p < this.loaded.length; p++) {
      if (this.loaded[p]) continue;
      const start = p * PAGE_SIZE;
      this.readInto(this.image.subarray(start, Math.min(this.image.length, start + PAGE_SIZE)), start);
      this.loaded[p] = 1;
    }
  }

  /**
   * The next `readRange` of exactly `into.length` bytes reads into `into` (and returns it) instead
   * of a new array: the streaming audit reads each weight straight into its kernel's memory. The
   * caller owns `into` and must not reuse it while the returned view is in use; `null` cancels.
   * With `onRead`, the range is read in pieces of READ_PIECE bytes and `onRead(bytesDone)` is
   * called after each, so the caller can work on each piece while it is still in the CPU's cache.
   * With `ring` as well (a multiple of READ_PIECE, at most `into.length`), the pieces go round
   * the first `ring` bytes of `into` (see readInto): the returned array has the range's length,
   * but only onRead sees the range's bytes (the streaming audit's bits-only reads).
   */
  readNextRangeInto(into: Uint8Array | null, onRead?: (bytesDone: number) => void, ring = 0): void {
    if (ring !== 0 && !(onRead && ring % READ_PIECE === 0 && ring <= (into?.length ?? 0))) {
      throw new RangeError('a ring needs onRead and a multiple of READ_PIECE bytes inside the target');
    }
    this.nextTarget = into;
    this.nextOnRead = into !== null ? onRead ?? null : null;
    this.nextRing = into !== null ? ring : 0;
  }

  /**
   * Runs `load` with range reads recorded instead of performed, and returns the range it read
   * when it read exactly one (null otherwise): where a weight's bytes are in the file, found by
   * asking the reader for them. What `load` gets back is not the file's bytes (a view of the
   * image, or zeros): the caller must drop it (`WeightTensor.release`) before using the weight.
   */
  locateRange(load: () => unknown): { offset: number; length: number } | null {
    this.located = [];
    try {
      load();
      return this.located.length === 1 ? this.located[0]! : null;
    } finally {
      this.located = null;
    }
  }

  /** A new array with the file's bytes [offset, offset + length) (or the `readNextRangeInto` target). */
  readRange(offset: number, length: number): Uint8Array {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.size)) {
      throw new PrunepackError('TRUNCATED', 'read past the end of the file', {
        location: `${this.file} byte ${offset}`, expected: `end <= ${this.size}`, found: String(offset + length),
      });
    }
    if (this.located !== null) {
      this.located.push({ offset, length });
      return length <= this.image.length ? this.image.subarray(0, length) : new Uint8Array(length);
    }
    const target = this.nextTarget;
    const out = target !== null && target.length === length ? target : new Uint8Array(length);
    let onRead: ((bytesDone: number) => void) | null = null;
    let ring = 0;
    if (out === target) {
      onRead = this.nextOnRead;
      ring = this.nextRing;
      this.nextTarget = null;
      this.nextOnRead = null;
      this.nextRing = 0;
    }
    this.readInto(out, offset, onRead, ring);
    return out;
  }

  close(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }

  /**
   * With `ring` (> 0, a multiple of READ_PIECE, with onRead), byte i of the range lands at
   * `into[i % ring]`: only the first `ring` bytes of `into` are written, each piece is the
   * caller's to use in onRead before the ring comes round to it again (no read crosses the
   * ring's end), and the rest of `into` is left as it was.
   */
  private readInto(into: Uint8Array, position: number, onRead: ((bytesDone: number) => void) | null = null, ring = 0): void {
    let done = 0;
    const piece = onRead !== null ? READ_PIECE : 1 << 30;
    while (done < into.length) {
      let n: number;
      const at = ring > 0 ? done % ring : done;
      const want = Math.min(into.length - done, piece, ring > 0 ? ring - at : Infinity);
      try {
        n = fs.readSync(this.fd, into, at, want, position + done);
      } catch (e) {
        throw new PrunepackError('IO', `cannot read ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
      }
      if (n === 0) throw new PrunepackError('TRUNCATED', `${this.file} ended while reading (it shrank after it was opened)`, { location: `byte ${position + done}` });
      done += n;
      if (onRead !== null) onRead(done);
    }
    this.bytesRead += into.length;
  }
}
