/**
 * Restoring with the platform's native raw DEFLATE decoder (`DecompressionStream('deflate-raw')`:
 * browsers, Node >= 18, Deno, Bun; zlib underneath), which is asynchronous. The PPSP streams of
 * the next large weight are inflated while the current one is decoded (at most two weights'
 * streams in memory: weights are still decoded one at a time); small streams, skeletons and the
 * pool keep the JavaScript decoders (a stream costs a few promise round trips). Without
 * DecompressionStream this is the synchronous restorer. Browser-safe.
 */
import { ppspDeflatedStreams } from '../../converters/tfjs/sparse-decode.js';
import { checkWholePack, PACK_HEADER_BYTES, PackRestorer, restorePack, WEIGHT_KIND_PPSP, type RestoredPack, type RestoreOptions } from './format.js';

/** Streams smaller than this are inflated in JavaScript (measured break-even in Node 20 is ~16 KB). */
export const NATIVE_INFLATE_MIN_BYTES = 32 * 1024;

/** Inflates into `into` (raw + 1 bytes, reused between weights) or a new buffer. */
type InflateAsync = (stored: Uint8Array, raw: number, into?: Uint8Array) => Promise<Uint8Array>;

interface DecompressionStreamLike {
  readonly writable: WritableStream<Uint8Array>;
  readonly readable: ReadableStream<Uint8Array>;
}

function decompressionStream(): (new (format: string) => DecompressionStreamLike) | null {
  const ctor = (globalThis as { DecompressionStream?: new (format: string) => DecompressionStreamLike }).DecompressionStream;
  if (!ctor) return null;
  try {
    new ctor('deflate-raw');
    return ctor;
  } catch {
    return null; // an older platform without the raw format
  }
}

/**
 * Raw DEFLATE through DecompressionStream into a buffer of raw + 1 bytes (an over-long stream
 * stops at raw + 1 and is reported by the caller's length check). Rejects on invalid data.
 */
export function nativeInflater(): InflateAsync | null {
  const Ctor = decompressionStream();
  if (!Ctor) return null;
  return async (stored, raw, into) => {
    const ds = new Ctor('deflate-raw');
    const writer = ds.writable.getWriter();
    const reader = ds.readable.getReader();
    const written = writer.write(stored).then(() => writer.close());
    written.catch(() => undefined); // the reader sees the same error
    const out = into && into.length === raw + 1 ? into : new Uint8Array(raw + 1);
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(value.length, out.length - n);
      out.set(take === value.length ? value : value.subarray(0, take), n);
      n += take;
      if (n > raw) { await reader.cancel(); break; }
    }
    return n === out.length ? out : out.subarray(0, n);
  };
}

/**
 * A PackRestorer fed asynchronously: each large PPSP weight's deflated streams are inflated
 * natively (the next weight's while the current one is decoded), then handed to the restorer.
 */
export class AsyncPackRestorer {
  private readonly restorer: PackRestorer;
  /** Inflated streams by their offset in the pack, for the weight being decoded. */
  private readonly ready = new Map<number, Uint8Array>();
  private plan: { start: number; blobEnd: number; end: number }[] | null = null;
  private next = 0;
  private prefetch: { weight: number; result: Promise<Array<[number, Uint8Array] | null>> } | null = null;
  private buffer: Uint8Array = new Uint8Array(0);
  /** Inflate buffers of decoded weights, reused for the next ones (fresh pages cost as much as the copy). */
  private spare: Uint8Array[] = [];

  constructor(options: RestoreOptions, private readonly inflateAsync: InflateAsync, dataCrcChecked = false, private readonly minBytes = NATIVE_INFLATE_MIN_BYTES) {
    this.restorer = new PackRestorer({
      ...options,
      inflate: (stored, raw) => {
        if (stored.buffer !== this.buffer.buffer) return null;
        const got = this.ready.get(stored.byteOffset - this.buffer.byteOffset);
        return got && got.length === raw ? got : null; // else the JavaScript decoder (it reports any error)
      },
    }, dataCrcChecked);
  }

  get totalBytes(): number | undefined { return this.restorer.totalBytes; }

  private streamsOf(weight: number): Promise<Array<[number, Uint8Array] | null>> {
    const { start, blobEnd } = this.plan![weight]!;
    const base = this.buffer.byteOffset;
    const list = ppspDeflatedStreams(this.buffer.subarray(start, blobEnd)).filter((s) => s.stored.length >= this.minBytes);
    return Promise.all(list.map((s) => this.inflateAsync(s.stored, s.raw, this.spareOf(s.raw + 1)).then(
      (bytes): [number, Uint8Array] => [s.stored.byteOffset - base, bytes],
      () => null, // invalid data: the JavaScript decoder reports it with the weight's name
    )));
  }

  private spareOf(size: number): Uint8Array | undefined {
    const i = this.spare.findIndex((b) => b.length >= size);
    if (i < 0) return undefined;
    return this.spare.splice(i, 1)[0]!.subarray(0, size);
  }

  /** Decodes what the first `available` bytes of `buffer` allow (see PackRestorer.feed). */
  async feed(buffer: Uint8Array, available: number): Promise<void> {
    this.buffer = buffer;
    if (!this.plan) {
      // The header, then the index only: the sections are decoded below, weight by weight.
      this.restorer.feed(buffer, Math.min(available, PACK_HEADER_BYTES));
      const header = this.restorer.packHeader;
      if (!header) return;
      this.restorer.feed(buffer, Math.min(available, header.dataStart));
      const index = this.restorer.packIndex;
      if (!index) return;
      const d = index.header.dataStart;
      this.plan = index.weights.filter((w) => w.kind === WEIGHT_KIND_PPSP).map((w) => {
        const start = d + w.dataAt;
        return { start, blobEnd: start + w.blobLength, end: start + w.blobLength + w.patchLength };
      });
    }
    const plan = this.plan;
    while (this.next < plan.length && plan[this.next]!.end <= available && !this.restorer.finished) {
      const i = this.next;
      const current = this.prefetch?.weight === i ? this.prefetch.result : this.streamsOf(i);
      this.prefetch = i + 1 < plan.length && plan[i + 1]!.end <= available ? { weight: i + 1, result: this.streamsOf(i + 1) } : null;
      for (const entry of await current) if (entry) this.ready.set(entry[0], entry[1]);
      this.buffer = buffer;
      // Up to the end of this weight's blob and patch: the restorer stops before the next weight.
      this.restorer.feed(buffer, Math.min(available, i + 1 < plan.length ? plan[i + 1]!.start : available));
      for (const bytes of this.ready.values()) if (this.spare.length < 4) this.spare.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.buffer.byteLength - bytes.byteOffset));
      this.ready.clear();
      this.next++;
    }
    this.restorer.feed(buffer, available);
  }

  finish(available: number): RestoredPack {
    return this.restorer.finish(available);
  }
}

/**
 * restorePack with the native inflater when the platform has one (same checks, same result),
 * else restorePack itself.
 */
export async function restorePackAsync(bytes: Uint8Array, options: RestoreOptions = {}, nativeMinBytes = NATIVE_INFLATE_MIN_BYTES): Promise<RestoredPack> {
  const inflateAsync = options.inflate ? null : nativeInflater();
  if (!inflateAsync) return restorePack(bytes, options);
  const r = new AsyncPackRestorer(options, inflateAsync, checkWholePack(bytes, options), nativeMinBytes);
  await r.feed(bytes, bytes.length);
  return r.finish(bytes.length);
}
