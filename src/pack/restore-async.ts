/**
 * Restoring with the platform's native raw DEFLATE decoder, asynchronously: in Node zlib (found at
 * run time through process.getBuiltinModule: large streams on the thread pool, the rest
 * synchronously), elsewhere `DecompressionStream('deflate-raw')` (browsers, Deno, Bun), in a worker
 * when enough PPSP data follow. The large PPSP streams of the next weights (up to
 * NATIVE_AHEAD_BYTES inflated) are inflated while the current weight is decoded; weights are still
 * decoded into the files one at a time. With DecompressionStream, small streams, skeletons and the
 * pool keep the JavaScript decoders (a stream costs a few promise round trips). Without a native
 * decoder this is the synchronous restorer. Browser-safe (imports no Node module).
 */
import { ppspDeflatedStreams, type RawInflate } from '../../converters/tfjs/sparse-decode.js';
import { checkWholePack, PACK_HEADER_BYTES, PackRestorer, restorePack, WEIGHT_KIND_PPSP, type RestoredPack, type RestoreOptions } from './format.js';

/**
 * With DecompressionStream, streams smaller than this are inflated in JavaScript. Since the
 * JavaScript decoder got ~1.6x faster (docs/performance.md, "JavaScript inflate"), it beats
 * DecompressionStream on the page for every stream of the PaddleOCR packs (headless Chromium 156,
 * 3 thresholds in one page, both orders: 1 MiB against 32 KiB 8-9% faster on rec/det 80%, 11-27%
 * on 50%); the generated 100 MB pack's 2.8 MB value streams still gain from the worker (2.5x a
 * copy at 1 MiB and at 32 KiB, 3.1x with JavaScript only).
 */
export const NATIVE_INFLATE_MIN_BYTES = 1024 * 1024;

/**
 * With Node's zlib, streams from this size on go to the thread pool, where they inflate while
 * this thread decodes the pool and the previous weights (smaller ones: inflateRawSync). PaddleOCR
 * rec/det packs, Node 20, 2 cores, against 32 KiB: this thread's CPU time 4-13% lower, restores 2-15%
 * faster when a core is free (docs/performance.md, issue 10 third round).
 */
export const NODE_ASYNC_MIN_BYTES = 4 * 1024;

/** Inflates `stored` (`raw` bytes); `later`: the PPSP bytes after this stream's weight. */
type InflateAsync = (stored: Uint8Array, raw: number, later?: number) => Promise<Uint8Array>;

/**
 * Raw DEFLATE through DecompressionStream into a buffer of raw + 1 bytes (an over-long stream
 * stops at raw + 1 and is reported by the caller's length check). Rejects on invalid data.
 * Self-contained (no outer names): its source text is also the inflate worker's code.
 */
async function inflateStream(stored: Uint8Array, raw: number): Promise<Uint8Array> {
  const ds = new DecompressionStream('deflate-raw');
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  writer.write(stored as BufferSource).then(() => writer.close()).catch(() => undefined); // the reader sees the same error
  const out = new Uint8Array(raw + 1);
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const part = value.subarray(0, out.length - n);
    out.set(part, n);
    n += part.length;
    if (n > raw) { await reader.cancel(); break; }
  }
  return n === out.length ? out : out.subarray(0, n);
}

/** DecompressionStream('deflate-raw') on this thread; null without it or its 'deflate-raw' format (older platforms). */
export function nativeInflater(): InflateAsync | null {
  try {
    return new DecompressionStream('deflate-raw') && inflateStream;
  } catch {
    return null;
  }
}

let workerUrl: string | undefined;

/**
 * inflateStream in a worker (its source as a Blob URL): a browser runs DecompressionStream on the
 * thread that reads it, so without a worker the native inflate and the decoding of the weights
 * take turns. Each stream is copied (a view would send its whole buffer) and transferred; the
 * result comes back transferred. (Transferring detaches the copy, which disables V8's
 * ArrayBufferDetaching protector in this thread, see src/parallel/worker.ts; cloning instead was
 * ~10% slower on the 100 MB pack in Chromium, 152 against 139 ms, the decode did not slow.)
 * Null where there are no workers or Blob URLs; a worker that fails (e.g. refused by a
 * Content-Security-Policy) rejects its streams, which the JavaScript decoder then inflates.
 */
export function workerInflater(): { async: InflateAsync; end: () => void } | null {
  let w: Worker;
  try {
    workerUrl ??= URL.createObjectURL(new Blob([`const f=${inflateStream};onmessage=async({data:[i,s,r]})=>{let o=null;try{o=await f(s,r)}catch{}postMessage([i,o],o?[o.buffer]:[])}`], { type: 'text/javascript' }));
    w = new Worker(workerUrl);
  } catch {
    return null;
  }
  const pending: Array<((out: Uint8Array | null) => void) | undefined> = [];
  let failed = false;
  const settle = (i: number, out: Uint8Array | null) => { pending[i]?.(out); pending[i] = undefined; };
  w.onmessage = ({ data }: MessageEvent<[number, Uint8Array | null]>) => settle(data[0], data[1]);
  w.onerror = () => { failed = true; pending.forEach((_, i) => settle(i, null)); };
  return {
    async: (stored, raw) => new Promise((resolve, reject) => {
      if (failed) return reject();
      const copy = stored.slice();
      pending.push((out) => (out ? resolve(out) : reject()));
      w.postMessage([pending.length - 1, copy, raw], [copy.buffer]);
    }),
    end: () => w.terminate(),
  };
}

interface NodeZlib {
  inflateRawSync(stored: Uint8Array, options: object): Uint8Array;
  inflateRaw(stored: Uint8Array, options: object, done: (error: Error | null, out: Uint8Array) => void): void;
}

/**
 * Node's zlib, looked up at run time (`process.getBuiltinModule`, Node >= 20.16) so that the
 * loader imports no Node module (zlibInflaters). Undefined elsewhere.
 */
export function nodeZlibInflater(): { async: InflateAsync; sync: RawInflate } | undefined {
  const zlib = (globalThis as { process?: { getBuiltinModule?: (id: string) => NodeZlib } }).process?.getBuiltinModule?.('zlib');
  return zlib && zlibInflaters(zlib);
}

/**
 * Raw DEFLATE through `zlib`: the large streams are inflated in one call each on libuv's thread
 * pool (while this thread decodes the previous weight: DecompressionStream in Node inflates one
 * 16 KiB chunk per event-loop turn, so it stalls while the decoding runs), the rest with
 * inflateRawSync (also `prunepack unpack`'s decoder, src/pack/node.ts). The output is one chunk
 * (the default 16 KiB chunks are concatenated: 6-17% slower on 20-500 KB streams), capped one byte
 * past the declared length (a longer stream is then reported by the length check, and never
 * allocates more).
 */
export function zlibInflaters(zlib: NodeZlib): { async: InflateAsync; sync: RawInflate } {
  return {
    async: (stored, raw) => new Promise((resolve, reject) => zlib.inflateRaw(stored, { chunkSize: raw + 64, maxOutputLength: raw + 1 }, (e, out) => (e ? reject(e) : resolve(out)))),
    sync: (stored, raw) => {
      try {
        return zlib.inflateRawSync(stored, { chunkSize: raw + 64, maxOutputLength: raw + 1 });
      } catch (e) {
        if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return new Uint8Array(raw + 1);
        throw e;
      }
    },
  };
}

/** The platform's raw DEFLATE decoders. */
export interface PlatformInflater {
  async: InflateAsync;
  sync?: RawInflate;
  /** Ends what the restore started (the inflate worker). */
  end?: () => void;
}

/**
 * The inflate worker starts when this many PPSP bytes follow the weight being inflated: it pays
 * off only when inflating the next weights overlaps decoding this one (start-up ~15 ms; measured
 * in Chromium: the 100 MB generated pack gains, a 16 MB one-weight pack and 1-2 MB packs lose).
 */
export const WORKER_MIN_BYTES = 4 * 1024 * 1024;

/**
 * Node's zlib; else DecompressionStream, in a worker once WORKER_MIN_BYTES of PPSP data follow
 * (ended with the restore), on this thread before that or where there are no workers; else null.
 */
export function platformInflater(): PlatformInflater | null {
  const z = nodeZlibInflater();
  if (z) return z;
  const ds = nativeInflater();
  let worker: ReturnType<typeof workerInflater> | undefined;
  return ds && {
    async: (stored, raw, later = 0) => (worker === undefined && later >= WORKER_MIN_BYTES ? (worker = workerInflater()) : worker)?.async(stored, raw) ?? ds(stored, raw),
    end: () => worker?.end(),
  };
}

/** The restorer interface the loader drives (PackRestorer, or the one below). */
export interface PackFeeder {
  readonly totalBytes: number | undefined;
  feed(buffer: Uint8Array, available: number): void | Promise<void>;
  finish(available: number): RestoredPack;
}

/**
 * Inflated bytes kept ahead of the weight being decoded (always at least the next weight's): the
 * native decoder works while JavaScript scatters, and in Node its thread-pool round trips overlap.
 */
export const NATIVE_AHEAD_BYTES = 8 * 1024 * 1024;

/**
 * A PackRestorer fed asynchronously: the large PPSP streams of the next weights (up to
 * NATIVE_AHEAD_BYTES inflated) are inflated natively while the current weight is decoded into its
 * file; then each weight is handed to the restorer with its streams, one at a time.
 */
export function asyncPackRestorer(options: RestoreOptions, inflateAsync: InflateAsync, dataCrcChecked = false, minBytes?: number, inflateSync?: RawInflate): PackFeeder {
  const min = minBytes ?? (inflateSync ? NODE_ASYNC_MIN_BYTES : NATIVE_INFLATE_MIN_BYTES);
  /** Inflated streams by their offset in the pack, for the weight being decoded. */
  const ready = new Map<number, Uint8Array>();
  const ahead: { bytes: number; result: Promise<Array<[number, Uint8Array] | null>> }[] = [];
  let aheadBytes = 0;
  let buffer: Uint8Array = new Uint8Array(0);
  let plan: { start: number; blobEnd: number; end: number }[] | null = null;
  let next = 0;
  let queued = 0;
  const restorer = new PackRestorer({
    ...options,
    inflate: (stored, raw) => {
      const got = stored.buffer === buffer.buffer ? ready.get(stored.byteOffset - buffer.byteOffset) : undefined;
      // Else the synchronous native decoder or the JavaScript one (either reports any error).
      return got && got.length === raw ? got : inflateSync ? inflateSync(stored, raw) : null;
    },
  }, dataCrcChecked);

  const startWeight = (weight: number) => {
    const { start, blobEnd } = plan![weight]!;
    const base = buffer.byteOffset;
    // Not before the data CRC is known (streaming): at most the PPSP reader's 1032:1 bound is allocated.
    const list = ppspDeflatedStreams(buffer.subarray(start, blobEnd)).filter((s) => s.stored.length >= min && s.raw <= s.stored.length * 1032 + 64);
    const bytes = list.reduce((n, s) => n + s.raw, 0);
    return {
      bytes,
      result: Promise.all(list.map((s) => inflateAsync(s.stored, s.raw, plan!.at(-1)!.end - blobEnd).then(
        (out): [number, Uint8Array] => [s.stored.byteOffset - base, out],
        () => null, // invalid data: the JavaScript decoder reports it with the weight's name
      ))),
    };
  };

  return {
    get totalBytes() { return restorer.totalBytes; },
    finish: (available) => restorer.finish(available),
    async feed(input, available) {
      buffer = input;
      if (!plan) {
        // The header, then the index only: the sections are decoded below, weight by weight.
        restorer.feed(input, Math.min(available, PACK_HEADER_BYTES));
        const header = restorer.header;
        if (!header) return;
        restorer.feed(input, Math.min(available, header.dataStart));
        const index = restorer.index;
        if (!index) return;
        plan = index.weights.filter((w) => w.kind === WEIGHT_KIND_PPSP).map((w) => {
          const start = header.dataStart + w.dataAt;
          return { start, blobEnd: start + w.blobLength, end: start + w.blobLength + w.patchLength };
        });
      }
      while (next < plan.length && plan[next]!.end <= available && !restorer.done) {
        while (queued < plan.length && plan[queued]!.end <= available && (queued === next || aheadBytes < NATIVE_AHEAD_BYTES)) {
          const started = startWeight(queued++);
          ahead.push(started);
          aheadBytes += started.bytes;
        }
        // What comes before this weight (pool, skeleton, pooled weights) while its streams inflate.
        restorer.feed(input, plan[next]!.start);
        const current = ahead.shift()!;
        for (const entry of await current.result) if (entry) ready.set(entry[0], entry[1]);
        buffer = input;
        // Up to the end of this weight's blob and patch: the restorer stops before the next weight.
        restorer.feed(input, next + 1 < plan.length ? Math.min(available, plan[next + 1]!.start) : available);
        ready.clear();
        aheadBytes -= current.bytes;
        next++;
      }
      restorer.feed(input, available);
    },
  };
}

/**
 * restorePack with the native inflater when the platform has one (same checks, same result),
 * else restorePack itself. `nativeMinBytes`: the smallest stream inflated asynchronously (default
 * NODE_ASYNC_MIN_BYTES with a synchronous native decoder, else NATIVE_INFLATE_MIN_BYTES).
 */
export async function restorePackAsync(bytes: Uint8Array, options: RestoreOptions = {}, nativeMinBytes?: number, native = platformInflater()): Promise<RestoredPack> {
  if (options.inflate || !native) return restorePack(bytes, options);
  try {
    const r = asyncPackRestorer(options, native.async, checkWholePack(bytes, options), nativeMinBytes, native.sync);
    await r.feed(bytes, bytes.length);
    return r.finish(bytes.length);
  } finally {
    native.end?.();
  }
}
