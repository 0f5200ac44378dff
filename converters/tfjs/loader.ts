/**
 * prunepack/tfjs: a TF.js IOHandler that loads plain and prunepack-sparse models (model.json +
 * shards, docs/tfjs-sparse.md) and hands TF.js dense ModelArtifacts, for `tf.loadGraphModel` and
 * `tf.loadLayersModel`:
 *
 *   import { tfjsSparseHandler } from 'prunepack/tfjs';
 *   const model = await tf.loadGraphModel(tfjsSparseHandler('https://cdn.example/model/model.json'));
 *
 * Browser-safe and small: its import graph is this file, manifest/paths/stream/sparse-decode,
 * inflate.ts and src/errors.ts, no package (test/tfjs-loader.test.ts walks it and fails on any Node
 * built-in). Files come from `fetch` (the browser's, or one passed in), or from a `readFile`
 * function (Node, tests). Shard paths are checked like every other reader of ours: no URLs,
 * absolute paths or `..`, so a model.json cannot send requests anywhere but its own folder.
 */
import { PrunepackError } from '../../src/errors.js';
import { addModulo, parseModelJson, type ManifestWeight, type TfjsManifest } from './manifest.js';
import { decodePpspInto, PPSP_DTYPE_CODES, releaseScratch } from './sparse-decode.js';
import { placeWeights, ShardStream } from './stream.js';

/** The TF.js weight spec (tf.io.WeightsManifestEntry), typed here so the loader needs no TF.js import. */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; min?: number; scale?: number; original_dtype?: 'float32' | 'int32' | 'bool' | 'string' | 'complex64' };
  group?: 'model' | 'optimizer';
}

/** tf.io.ModelArtifacts, structurally. */
export interface TfjsModelArtifacts {
  modelTopology?: {} | ArrayBuffer;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  // tf.io.TrainingConfig; `any` so that TF.js's own type accepts these artifacts.
  trainingConfig?: any;
  signature?: {};
  userDefinedMetadata?: { [key: string]: {} };
  modelInitializer?: {};
  initializerSignature?: {};
  weightSpecs?: TfjsWeightSpec[];
  weightData?: ArrayBuffer;
}

/** tf.io.IOHandler with only `load`. */
export interface TfjsLoadHandler {
  load(): Promise<TfjsModelArtifacts>;
}

/** The part of a fetch Response the loader uses. */
export interface FetchedResponse {
  ok: boolean;
  status: number;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface TfjsLoadOptions {
  /** fetch-compatible function; default globalThis.fetch. */
  fetch?: (url: string, init?: RequestInit) => Promise<FetchedResponse>;
  requestInit?: RequestInit;
  /** Reads files instead of fetching (Node, tests): called with model.json's path, then with each shard path joined to its folder. */
  readFile?: (path: string) => Promise<Uint8Array | ArrayBuffer> | Uint8Array | ArrayBuffer;
  /** Where shards are fetched from (default: model.json's folder). */
  weightPathPrefix?: string;
  /** Called with the fraction loaded, 0..1: shards as they arrive, 1 once decoded. */
  onProgress?: (fraction: number) => void;
  /** Largest dense weight data to allocate (default 2 GiB - 1). */
  maxBytes?: number;
}

export interface DecodedWeights {
  weightSpecs: TfjsWeightSpec[];
  weightData: ArrayBuffer;
}

const DEFAULT_MAX_BYTES = 2 ** 31 - 1;
/** Fields of model.json that TF.js copies into ModelArtifacts (tf.io.getModelArtifactsForJSONSync). */
const ARTIFACT_FIELDS = [
  'modelTopology', 'format', 'generatedBy', 'convertedBy', 'trainingConfig', 'signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature',
] as const;

function specOf(w: ManifestWeight): TfjsWeightSpec {
  const { prunepack: _marker, ...spec } = w.entry;
  return spec as unknown as TfjsWeightSpec;
}

/**
 * Decodes the weights of a parsed manifest from its shards (in manifest order) into one dense
 * buffer, as TF.js lays it out: plain entries copied, sparse blobs decoded in place.
 */
export function decodeManifestWeights(manifest: TfjsManifest, shards: readonly Uint8Array[], options: Pick<TfjsLoadOptions, 'maxBytes'> = {}): DecodedWeights {
  const stream = new ShardStream(shards);
  const placements = placeWeights(manifest.weights, stream);
  const weights = manifest.weights;
  let total = 0;
  weights.forEach((w, i) => { total += w.denseBytes ?? placements[i]!.length; });
  const limit = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (total > limit) {
    throw new PrunepackError('UNSUPPORTED', 'the dense weights are larger than the load limit', {
      format: 'tfjs', expected: `<= ${limit} bytes`, found: `${total} bytes`, hint: 'Pass a larger maxBytes if the model is trusted',
    });
  }
  const out = new Uint8Array(total);
  let at = 0;
  try {
    for (let i = 0; i < weights.length;) {
      const w = weights[i]!;
      const placement = placements[i]!;
      if (!w.sparse) {
        stream.copyTo(placement.offset, placement.length, out, at);
        at += placement.length;
        i++;
        continue;
      }
      const members = weights.slice(i, i + w.sparse.count);
      const elements = members.reduce((n, m) => n + m.elements, 0);
      const length = members.reduce((n, m) => n + m.denseBytes!, 0);
      const at0 = at;
      const blob = stream.bytes(placement.offset, placement.length);
      const where = members.length === 1 ? w.name : `${w.name} (+${members.length - 1} weights)`;
      const expect = { dtypeCode: PPSP_DTYPE_CODES[w.storage]!, shape: members.length === 1 ? w.shape : null, elements };
      decodePpspInto(blob, expect, out.subarray(at0, at0 + length), where, { zeroed: true });
      for (const m of members) {
        if (m.sparse!.shift) addModulo(out.subarray(at, at + m.denseBytes!), m.storage, m.sparse!.shift);
        at += m.denseBytes!;
      }
      i += members.length;
    }
  } finally {
    releaseScratch();
  }
  return { weightSpecs: weights.map(specOf), weightData: out.buffer };
}

/** Dense ModelArtifacts from model.json bytes (or text) and its shards, in manifest order. */
export function decodeTfjsArtifacts(modelJson: Uint8Array | string, shards: readonly Uint8Array[], options: Pick<TfjsLoadOptions, 'maxBytes'> = {}): TfjsModelArtifacts {
  const parsed = parseModelJson(modelJson);
  if (Array.isArray(parsed.json)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'a bare weights manifest has no model topology', {
      format: 'tfjs', hint: 'Use decodeTfjsWeights / loadTfjsWeights for weights-only manifests',
    });
  }
  const artifacts: Record<string, unknown> = {};
  for (const key of ARTIFACT_FIELDS) if (parsed.json[key] != null) artifacts[key] = parsed.json[key];
  if (parsed.manifest) Object.assign(artifacts, decodeManifestWeights(parsed.manifest, shards, options));
  return artifacts as TfjsModelArtifacts;
}

/** Weight specs and dense data of a bare weights manifest (face-api's *-weights_manifest.json). */
export function decodeTfjsWeights(manifestJson: Uint8Array | string, shards: readonly Uint8Array[], options: Pick<TfjsLoadOptions, 'maxBytes'> = {}): DecodedWeights {
  const parsed = parseModelJson(manifestJson);
  if (!parsed.manifest) return { weightSpecs: [], weightData: new ArrayBuffer(0) };
  return decodeManifestWeights(parsed.manifest, shards, options);
}

/** Splits a URL or path into the folder prefix (ending in '/') and its query suffix. */
function splitUrl(url: string): { prefix: string; suffix: string } {
  const q = url.search(/[?#]/);
  const base = q >= 0 ? url.slice(0, q) : url;
  const suffix = q >= 0 && url[q] === '?' ? url.slice(q).replace(/#.*$/, '') : '';
  const slash = Math.max(base.lastIndexOf('/'), base.lastIndexOf('\\'));
  return { prefix: slash >= 0 ? base.slice(0, slash + 1) : '', suffix };
}

async function fetchBytes(url: string, options: TfjsLoadOptions): Promise<Uint8Array> {
  if (options.readFile) {
    let data: Uint8Array | ArrayBuffer;
    try {
      data = await options.readFile(url);
    } catch (e) {
      if (e instanceof PrunepackError) throw e;
      throw new PrunepackError('IO', `cannot read ${url}: ${(e as Error).message ?? String(e)}`, { format: 'tfjs', cause: e });
    }
    return data instanceof Uint8Array ? data : new Uint8Array(data);
  }
  const fetchFn = options.fetch ?? (globalThis.fetch as unknown as TfjsLoadOptions['fetch']);
  if (!fetchFn) throw new PrunepackError('UNSUPPORTED', 'no fetch function', { format: 'tfjs', hint: 'Pass options.fetch or options.readFile' });
  let response: FetchedResponse;
  try {
    response = await fetchFn(url, options.requestInit);
  } catch (e) {
    throw new PrunepackError('IO', `request for ${url} failed: ${(e as Error).message ?? String(e)}`, { format: 'tfjs', cause: e });
  }
  if (!response.ok) throw new PrunepackError('IO', `request for ${url} failed with status ${response.status}`, { format: 'tfjs', hint: 'Check that every file of the model is served next to model.json' });
  return new Uint8Array(await response.arrayBuffer());
}

/** Fetches model.json and its shards (in parallel, reporting progress). */
async function fetchModel(modelUrl: string, options: TfjsLoadOptions): Promise<{ json: Uint8Array; shards: Uint8Array[]; manifest: TfjsManifest | null }> {
  const json = await fetchBytes(modelUrl, options);
  const parsed = parseModelJson(json, modelUrl);
  const manifest = parsed.manifest;
  if (!manifest) return { json, shards: [], manifest };
  const { prefix, suffix } = splitUrl(modelUrl);
  const base = options.weightPathPrefix ?? prefix;
  const urls = manifest.groups.flatMap((g) => g.checkedPaths.map((p) => `${base}${p}${options.readFile ? '' : suffix}`));
  let done = 0;
  const total = urls.length + 1;
  const shards = await Promise.all(urls.map(async (url) => {
    const bytes = await fetchBytes(url, options);
    options.onProgress?.(++done / total);
    return bytes;
  }));
  return { json, shards, manifest };
}

/** Loads model.json and its shards and returns dense ModelArtifacts (sparse weights decoded). */
export async function loadTfjsArtifacts(modelUrl: string, options: TfjsLoadOptions = {}): Promise<TfjsModelArtifacts> {
  const { json, shards } = await fetchModel(modelUrl, options);
  const artifacts = decodeTfjsArtifacts(json, shards, options);
  options.onProgress?.(1);
  return artifacts;
}

/** Loads a bare weights manifest (face-api style) and its shards: dense specs and data for tf.io.decodeWeights. */
export async function loadTfjsWeights(manifestUrl: string, options: TfjsLoadOptions = {}): Promise<DecodedWeights> {
  const { shards, manifest } = await fetchModel(manifestUrl, options);
  const decoded = manifest ? decodeManifestWeights(manifest, shards, options) : { weightSpecs: [], weightData: new ArrayBuffer(0) };
  options.onProgress?.(1);
  return decoded;
}

/**
 * An IOHandler for tf.loadGraphModel / tf.loadLayersModel that loads `modelUrl` (model.json) and
 * its shards, plain or prunepack-sparse.
 */
export function tfjsSparseHandler(modelUrl: string, options: TfjsLoadOptions = {}): TfjsLoadHandler {
  return { load: () => loadTfjsArtifacts(modelUrl, options) };
}

export { SPARSE_ENCODING } from './manifest.js';
export { PrunepackError } from '../../src/errors.js';
