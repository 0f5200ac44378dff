/**
 * prunepack/pack: restores a pack (docs/pack-format.md) in the browser or in Node.
 *
 *   import { unpack, packTfjsHandler } from 'prunepack/pack';
 *   const { primary } = await unpack('/models/model.onnx.ppak');
 *   const session = await ort.InferenceSession.create(primary);           // ONNX (inline weights)
 *   const model = await tf.loadGraphModel(packTfjsHandler('/models/model.json.ppak'));
 *
 * Browser-safe and small: its import graph is src/pack/ (format.ts, restore-async.ts, pool.ts,
 * range-coder.ts, varint.ts), the decode-only PPSP reader (converters/tfjs/sparse-decode.ts,
 * inflate.ts: its own raw DEFLATE reader), errors.ts and TF.js manifest decoding; no package and no
 * node: imports. Large streams are inflated natively where the platform can
 * (src/pack/restore-async.ts): Node's zlib, found at run time; DecompressionStream('deflate-raw')
 * in browsers, in a worker for large packs. A URL is fetched as a stream and each section (a
 * file's skeleton, then one weight at a time) is decoded as soon as its bytes have arrived.
 */
import { PrunepackError } from '../errors.js';
import { PackRestorer, PACK_HEADER_BYTES, type RestoredPack, type RestoreOptions } from '../pack/format.js';
import { asyncPackRestorer, platformInflater, restorePackAsync, type PackFeeder } from '../pack/restore-async.js';
import { decodeTfjsArtifacts, type TfjsLoadHandler, type TfjsModelArtifacts } from '../../converters/tfjs/loader.js';
import { parseModelJson } from '../../converters/tfjs/manifest.js';

export type { RestoredPack } from '../pack/format.js';
export { PrunepackError } from '../errors.js';

/** The part of a fetch Response the loader uses. */
export interface PackResponse {
  ok: boolean;
  status: number;
  body?: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface UnpackOptions extends RestoreOptions {
  /** fetch-compatible function; default globalThis.fetch. */
  fetch?: (url: string, init?: RequestInit) => Promise<PackResponse>;
  requestInit?: RequestInit;
}

export interface UnpackResult extends RestoredPack {}

/** Restores every file of a pack given as bytes or a URL. `primary` is the model file. */
export async function unpack(source: Uint8Array | ArrayBuffer | string | URL, options: UnpackOptions = {}): Promise<UnpackResult> {
  if (source instanceof ArrayBuffer) return restorePackAsync(new Uint8Array(source), options);
  if (source instanceof Uint8Array) return restorePackAsync(source, options);
  const url = String(source);
  const fetchFn = options.fetch ?? (globalThis.fetch as unknown as UnpackOptions['fetch']);
  if (!fetchFn) throw new PrunepackError('UNSUPPORTED', 'no fetch function', { hint: 'Pass options.fetch, or the pack bytes' });
  let response: PackResponse;
  try {
    response = await fetchFn(url, options.requestInit);
  } catch (e) {
    throw new PrunepackError('IO', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e });
  }
  if (!response.ok) throw new PrunepackError('IO', `cannot fetch ${url}: HTTP ${response.status}`, { location: url });
  const reader = response.body?.getReader();
  if (!reader) return restorePackAsync(new Uint8Array(await response.arrayBuffer()), options);
  const native = options.inflate ? null : platformInflater();
  try {
    return await restoreStream(reader, native ? asyncPackRestorer(options, native.async, false, undefined, native.sync) : new PackRestorer(options));
  } finally {
    native?.end?.();
  }
}

/** Feeds the restorer the response's chunks as they arrive. */
async function restoreStream(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }, restorer: PackFeeder): Promise<RestoredPack> {
  let buffer = new Uint8Array(64 * 1024);
  let have = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!value || value.length === 0) continue;
    const total = restorer.totalBytes;
    if (total !== undefined && have + value.length > total) {
      throw new PrunepackError('CORRUPT', 'pack has trailing bytes', { format: 'prunepack pack', location: `byte ${total}`, expected: `${total} bytes`, found: `more` });
    }
    if (have + value.length > buffer.length) {
      const size = total ?? Math.max(buffer.length * 2, have + value.length);
      const grown = new Uint8Array(Math.max(size, have + value.length));
      grown.set(buffer.subarray(0, have));
      buffer = grown;
    }
    buffer.set(value, have);
    have += value.length;
    if (have >= PACK_HEADER_BYTES) await restorer.feed(buffer, have);
    const known = restorer.totalBytes;
    if (known !== undefined && buffer.length < known) {
      const grown = new Uint8Array(known);
      grown.set(buffer.subarray(0, have));
      buffer = grown;
    }
  }
  await restorer.feed(buffer, have);
  return restorer.finish(have);
}

/** ModelArtifacts of a packed TF.js model (model.json + shards restored, then decoded as TF.js does). */
export function tfjsArtifactsOf(restored: RestoredPack, options: { maxBytes?: number } = {}): TfjsModelArtifacts {
  const parsed = parseModelJson(restored.primary, restored.primaryName);
  const shards: Uint8Array[] = [];
  parsed.manifest?.groups.forEach((g) => g.checkedPaths.forEach((p) => {
    const bytes = restored.files.get(p);
    if (!bytes) throw new PrunepackError('CORRUPT', 'the pack lacks a weight shard named by model.json', { format: 'prunepack pack', location: p });
    shards.push(bytes);
  }));
  return decodeTfjsArtifacts(restored.primary, shards, options);
}

/** A tf.io.IOHandler (load only) for a packed TF.js model: `tf.loadGraphModel(packTfjsHandler(url))`. */
export function packTfjsHandler(source: Uint8Array | ArrayBuffer | string | URL, options: UnpackOptions = {}): TfjsLoadHandler {
  return {
    async load() {
      return tfjsArtifactsOf(await unpack(source, options), options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes });
    },
  };
}
