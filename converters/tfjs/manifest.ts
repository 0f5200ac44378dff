/**
 * model.json parsing and validation, shared by the plugin's reader and the browser loader.
 * Browser-safe (no Node built-ins): it only parses JSON and checks it.
 *
 * Checked before anything is allocated or fetched: the JSON itself (UTF-8, syntax), the kind of
 * model, every manifest group (`paths` through paths.ts, `weights` entries), every entry's name,
 * shape (safe non-negative integers, dense size below 2^53), dtype and quantization (TF.js's own
 * rules: uint8/uint16 need `min` and `scale` and apply to float32/int32, float16 to float32), and
 * the prunepack sparse markers of docs/tfjs-sparse.md (runs complete, same storage dtype).
 */
import { PrunepackError } from '../../src/errors.js';
import { checkShardPath } from './paths.js';

/** Encoding name of sparse weights (and the dtype of the sentinel entry) that writers write; see docs/tfjs-sparse.md. */
export const SPARSE_ENCODING = 'prunepack-sparse/2';
/** Every version readers accept: 1 (no `shift`) and 2. */
export const SPARSE_ENCODINGS: readonly string[] = ['prunepack-sparse/1', SPARSE_ENCODING];
/** Name of the zero-size sentinel entry that makes standard TF.js loaders refuse a sparse model. */
export const SENTINEL_NAME = `${SPARSE_ENCODING} model: load it with the prunepack/tfjs IOHandler (docs/tfjs-sparse.md)`;

export type TfjsDType = 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
export type TfjsQuantizedDType = 'uint8' | 'uint16' | 'float16';
/** How an element is stored in the shards: the quantized dtype when quantized, else the dtype. */
export type TfjsStorage = TfjsDType | TfjsQuantizedDType;
export type TfjsKind = 'graph-model' | 'layers-model' | 'weights-manifest';

export interface TfjsQuantization {
  dtype: TfjsQuantizedDType;
  min?: number;
  scale?: number;
  original_dtype?: string;
}

/** A `prunepack` marker: a head covers `count` weights with one blob; followers have `part` >= 1. */
export interface SparseMarker {
  /** The marker's encoding (one of SPARSE_ENCODINGS). */
  encoding: string;
  byteLength: number;
  count: number;
  part: number;
  /**
   * Version 2, uint8/uint16 storage: the blob holds this weight's stored values minus `shift`,
   * modulo 2^8 or 2^16 (writers use the zero point, so that every weight's zero is 0). 0 otherwise.
   */
  shift: number;
}

export interface ManifestWeight {
  /** Manifest group, and position among the group's entries as written in the file. */
  group: number;
  entryIndex: number;
  name: string;
  shape: number[];
  dtype: TfjsDType;
  quantization?: TfjsQuantization;
  storage: TfjsStorage;
  elements: number;
  /** Bytes per stored element; 0 for strings. */
  elementBytes: number;
  /** Dense stored bytes; null for strings (known once the stream is scanned). */
  denseBytes: number | null;
  /** uint8/uint16 quantization: the stored value of 0.0, round(-min / scale) within the range. */
  zeroPoint?: number;
  sparse?: SparseMarker;
  /** The entry object exactly as parsed (unknown fields are kept by writers). */
  entry: Record<string, unknown>;
}

export interface ManifestGroup {
  /** `paths` as written in the file, and as checked and normalized. */
  paths: string[];
  checkedPaths: string[];
  entry: Record<string, unknown>;
  weights: ManifestWeight[];
}

export interface TfjsManifest {
  groups: ManifestGroup[];
  /** Every weight of every group, in manifest order (the sentinel is not a weight). */
  weights: ManifestWeight[];
  /** The sentinel entry is present (first entry of the first group). */
  sentinel: boolean;
  /** At least one weight carries a sparse marker. */
  sparse: boolean;
}

export interface ParsedModelJson {
  text: string;
  json: Record<string, unknown> | unknown[];
  kind: TfjsKind;
  manifest: TfjsManifest | null;
}

const STORAGE_BYTES: Record<TfjsStorage, number> = {
  float32: 4, int32: 4, bool: 1, complex64: 8, string: 0, uint8: 1, uint16: 2, float16: 2,
};
const DTYPES = new Set<string>(['float32', 'int32', 'bool', 'string', 'complex64']);

export function storageBytes(storage: TfjsStorage): number {
  return STORAGE_BYTES[storage];
}

function corrupt(what: string, where: string, expected?: string, found?: string): PrunepackError {
  return new PrunepackError('CORRUPT', what, { format: 'tfjs', location: where, expected, found });
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Decodes UTF-8 (strict), drops a BOM and parses JSON; errors say where the syntax breaks. */
export function parseJsonText(input: Uint8Array | string, where: string): { text: string; value: unknown } {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch (e) {
      throw new PrunepackError('CORRUPT', 'model.json is not valid UTF-8', { format: 'tfjs', location: where, cause: e });
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  checkJsonDepth(text, where);
  try {
    return { text, value: JSON.parse(text) };
  } catch (e) {
    const message = (e as Error).message;
    throw new PrunepackError('CORRUPT', `model.json is not valid JSON (${message})`, {
      format: 'tfjs', location: where, found: text.length === 0 ? 'an empty file' : `${text.length} characters`, cause: e,
      hint: text.trimEnd().length < text.length * 0.99 || !/[}\]]\s*$/.test(text) ? 'The file looks truncated' : undefined,
    });
  }
}

/** Parses and checks a model.json (or a bare weights manifest). */
export function parseModelJson(input: Uint8Array | string, where = 'model.json'): ParsedModelJson {
  const { text, value } = parseJsonText(input, where);
  if (Array.isArray(value)) {
    return { text, json: value, kind: 'weights-manifest', manifest: parseManifest(value, where) };
  }
  if (!isObject(value)) {
    throw corrupt('model.json is not a JSON object', where, 'an object with modelTopology and/or weightsManifest, or an array of manifest groups', show(value));
  }
  const topology = value.modelTopology;
  const manifestValue = value.weightsManifest;
  if (topology == null && manifestValue == null) {
    throw corrupt('model.json has neither modelTopology nor weightsManifest', where, 'at least one of them', `keys ${Object.keys(value).join(', ') || '(none)'}`);
  }
  const kind = kindOf(value, where);
  let manifest: TfjsManifest | null = null;
  if (manifestValue != null) {
    if (!Array.isArray(manifestValue)) throw corrupt('weightsManifest is not an array', `${where} weightsManifest`, 'an array of groups', show(manifestValue));
    manifest = parseManifest(manifestValue, where);
  }
  return { text, json: value, kind, manifest };
}

function kindOf(json: Record<string, unknown>, where: string): TfjsKind {
  const format = json.format;
  if (format === 'graph-model' || format === 'layers-model') return format;
  const topology = json.modelTopology;
  if (isObject(topology)) {
    if (Array.isArray(topology.node)) return 'graph-model';
    if ('class_name' in topology || 'model_config' in topology || 'config' in topology) return 'layers-model';
  }
  if (topology == null) return 'weights-manifest';
  throw new PrunepackError('UNSUPPORTED', 'cannot tell what kind of TF.js model this is', {
    format: 'tfjs', location: `${where} format`, expected: '"graph-model" or "layers-model" (or a topology with "node" or "class_name")', found: show(format),
  });
}

function parseManifest(groups: unknown[], where: string): TfjsManifest {
  const out: ManifestGroup[] = [];
  const weights: ManifestWeight[] = [];
  let sentinel: string | null = null;
  groups.forEach((group, g) => {
    const at = `${where} weightsManifest[${g}]`;
    if (!isObject(group)) throw corrupt('manifest group is not an object', at, '{"paths": [...], "weights": [...]}', show(group));
    if (!Array.isArray(group.paths)) throw corrupt('manifest group has no "paths" array', `${at}.paths`, 'an array of shard file names', show(group.paths));
    if (!Array.isArray(group.weights)) throw corrupt('manifest group has no "weights" array', `${at}.weights`, 'an array of weight entries', show(group.weights));
    const paths = group.paths as unknown[];
    const checkedPaths = paths.map((p, i) => checkShardPath(p, `${at}.paths[${i}]`));
    const parsed: ManifestWeight[] = [];
    (group.weights as unknown[]).forEach((entry, i) => {
      const entryWhere = `${at}.weights[${i}]`;
      if (isObject(entry) && typeof entry.dtype === 'string' && SPARSE_ENCODINGS.includes(entry.dtype)) {
        if (g !== 0 || i !== 0) throw corrupt(`the ${entry.dtype} sentinel entry is not the first entry of the first group`, entryWhere, 'weightsManifest[0].weights[0]', `weightsManifest[${g}].weights[${i}]`);
        if (!Array.isArray(entry.shape) || entry.shape.length !== 1 || entry.shape[0] !== 0) throw corrupt('the sentinel entry must have shape [0]', entryWhere, '[0]', show(entry.shape));
        sentinel = entry.dtype as string;
        return;
      }
      parsed.push(parseEntry(entry, g, i, entryWhere));
    });
    checkRuns(parsed, at);
    out.push({ paths: paths as string[], checkedPaths, entry: group, weights: parsed });
    weights.push(...parsed);
  });
  checkOneVersion(weights, sentinel, where);
  return { groups: out, weights, sentinel: sentinel !== null, sparse: weights.some((w) => w.sparse !== undefined) };
}

/** A manifest uses one version of the format: the sentinel's and every marker's encoding agree. */
function checkOneVersion(weights: readonly ManifestWeight[], sentinel: string | null, where: string): void {
  let version = sentinel;
  let first = sentinel === null ? '' : `${where} weightsManifest[0].weights[0] (sentinel)`;
  for (const w of weights) {
    if (!w.sparse) continue;
    if (version === null) {
      version = w.sparse.encoding;
      first = `${where} weightsManifest[${w.group}].weights[${w.entryIndex}] (${w.name})`;
    } else if (w.sparse.encoding !== version) {
      throw corrupt('the manifest mixes two versions of the sparse format', `${where} weightsManifest[${w.group}].weights[${w.entryIndex}] (${w.name}) prunepack.encoding`,
        `${version} (as ${first})`, w.sparse.encoding);
    }
  }
}

/** Adds `amount` to every element of `bytes` (uint8 or uint16 little-endian storage), modulo 2^8 or 2^16, in place. */
export function addModulo(bytes: Uint8Array, storage: TfjsStorage, amount: number): void {
  if (storage === 'uint8') {
    for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! + amount; // Uint8Array stores modulo 2^8
    return;
  }
  if (storage !== 'uint16') throw new Error(`addModulo: ${storage} is not uint8 or uint16`);
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const v = (bytes[i]! | (bytes[i + 1]! << 8)) + amount;
    bytes[i] = v;
    bytes[i + 1] = v >>> 8;
  }
}

function parseEntry(entry: unknown, group: number, entryIndex: number, where: string): ManifestWeight {
  if (!isObject(entry)) throw corrupt('weight entry is not an object', where, '{"name", "shape", "dtype"}', show(entry));
  const name = entry.name;
  if (typeof name !== 'string' || name === '') throw corrupt('weight entry has no name', `${where}.name`, 'a non-empty string', show(name));
  const at = `${where} (${name})`;
  const shape = entry.shape;
  if (!Array.isArray(shape)) throw corrupt('weight shape is not an array', `${at} shape`, 'an array of dimensions', show(shape));
  let elements = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw corrupt('weight shape has an invalid dimension', `${at} shape`, 'non-negative integers', show(shape));
    elements *= d;
    if (!Number.isSafeInteger(elements * 8)) throw corrupt('weight shape is too large', `${at} shape`, 'fewer than 2^50 elements', show(shape));
  }
  const dtype = entry.dtype;
  if (typeof dtype !== 'string' || !DTYPES.has(dtype)) {
    throw new PrunepackError('UNSUPPORTED', `weight dtype ${show(dtype)} is not a TF.js dtype`, {
      format: 'tfjs', location: `${at} dtype`, expected: 'float32, int32, bool, string or complex64', found: show(dtype),
    });
  }
  const weight: ManifestWeight = {
    group, entryIndex, name, shape: shape as number[], dtype: dtype as TfjsDType, storage: dtype as TfjsDType,
    elements, elementBytes: 0, denseBytes: null, entry,
  };
  if (entry.quantization !== undefined && entry.quantization !== null) parseQuantization(entry.quantization, weight, at);
  weight.elementBytes = STORAGE_BYTES[weight.storage];
  weight.denseBytes = weight.storage === 'string' ? null : elements * weight.elementBytes;
  if (entry.prunepack !== undefined) weight.sparse = parseMarker(entry.prunepack, weight, at);
  return weight;
}

function parseQuantization(q: unknown, weight: ManifestWeight, at: string): void {
  if (!isObject(q)) throw corrupt('quantization is not an object', `${at} quantization`, '{"dtype": ...}', show(q));
  const qdtype = q.dtype;
  if (qdtype !== 'uint8' && qdtype !== 'uint16' && qdtype !== 'float16') {
    throw new PrunepackError('UNSUPPORTED', `unknown quantization dtype ${show(qdtype)}`, {
      format: 'tfjs', location: `${at} quantization.dtype`, expected: 'uint8, uint16 or float16', found: show(qdtype),
    });
  }
  if (weight.dtype === 'string') throw corrupt('a string weight cannot be quantized', `${at} quantization`, 'no quantization', show(q));
  if (qdtype === 'float16' && weight.dtype !== 'float32') {
    throw corrupt('float16 quantization applies to float32 weights only', `${at} dtype`, 'float32', weight.dtype);
  }
  const quantization: TfjsQuantization = { dtype: qdtype };
  if (qdtype !== 'float16') {
    if (weight.dtype !== 'float32' && weight.dtype !== 'int32') {
      throw corrupt(`${qdtype} quantization applies to float32 and int32 weights only`, `${at} dtype`, 'float32 or int32', weight.dtype);
    }
    const { min, scale } = q;
    if (typeof min !== 'number' || !Number.isFinite(min)) throw corrupt(`${qdtype} quantization needs a finite "min"`, `${at} quantization.min`, 'a number', show(min));
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw corrupt(`${qdtype} quantization needs a finite "scale"`, `${at} quantization.scale`, 'a number', show(scale));
    quantization.min = min;
    quantization.scale = scale;
    const top = qdtype === 'uint8' ? 255 : 65535;
    weight.zeroPoint = scale > 0 ? Math.min(top, Math.max(0, Math.round(-min / scale))) : 0;
  }
  if (typeof q.original_dtype === 'string') quantization.original_dtype = q.original_dtype;
  weight.quantization = quantization;
  weight.storage = qdtype;
}

function parseMarker(marker: unknown, weight: ManifestWeight, at: string): SparseMarker {
  const where = `${at} prunepack`;
  if (!isObject(marker)) throw corrupt('prunepack marker is not an object', where, `{"encoding": "${SPARSE_ENCODING}", "byteLength": N}`, show(marker));
  const encoding = marker.encoding;
  if (typeof encoding !== 'string' || !SPARSE_ENCODINGS.includes(encoding)) {
    if (typeof encoding === 'string' && encoding.startsWith('prunepack-sparse/')) {
      throw new PrunepackError('UNSUPPORTED', `sparse weight encoding ${encoding}`, {
        format: 'tfjs', location: where, expected: SPARSE_ENCODINGS.join(' or '), found: encoding, hint: 'A newer prunepack wrote this model; update prunepack',
      });
    }
    throw corrupt('unknown prunepack encoding', `${where}.encoding`, JSON.stringify(SPARSE_ENCODING), show(encoding));
  }
  if (weight.storage === 'string') throw corrupt('string weights cannot be stored sparse', where, 'no prunepack marker on a string weight', 'a marker');
  const integer = (key: string, fallback: number | undefined, min: number): number => {
    const v = marker[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw corrupt(`prunepack ${key} is invalid`, `${where}.${key}`, `an integer >= ${min}`, show(v));
    return v;
  };
  const byteLength = integer('byteLength', undefined, 0);
  const count = integer('count', 1, 1);
  const part = integer('part', 0, 0);
  if (part > 0 && (count !== 1 || byteLength !== 0)) {
    throw corrupt('a weight that is part of an earlier blob must have byteLength 0 and no count', where, '{"byteLength": 0, "part": i}', show(marker));
  }
  if (part === 0 && byteLength === 0) throw corrupt('a sparse blob cannot be empty', `${where}.byteLength`, '> 0', '0');
  let shift = 0;
  if (encoding !== 'prunepack-sparse/1' && marker.shift !== undefined) {
    if (weight.storage !== 'uint8' && weight.storage !== 'uint16') {
      throw corrupt('only uint8/uint16-quantized weights can have a shift', `${where}.shift`, 'no shift', `a shift on ${weight.storage} storage`);
    }
    shift = integer('shift', 0, 0);
    const top = weight.storage === 'uint8' ? 255 : 65535;
    if (shift > top) throw corrupt('prunepack shift is out of range', `${where}.shift`, `0..${top}`, String(shift));
  }
  return { encoding, byteLength, count, part, shift };
}

/** Every head with count K is followed by parts 1..K-1 in the same group, all of one storage dtype. */
function checkRuns(weights: readonly ManifestWeight[], at: string): void {
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (!w.sparse) continue;
    const where = `${at}.weights[${w.entryIndex}] (${w.name}) prunepack`;
    if (w.sparse.part > 0) throw corrupt('a weight marked as part of a blob does not follow its blob\'s first weight', where, 'part 1 right after a head with count >= 2', `part ${w.sparse.part}`);
    for (let k = 1; k < w.sparse.count; k++) {
      const follower = weights[i + k];
      const fw = follower ? `${at}.weights[${follower.entryIndex}] (${follower.name}) prunepack` : `${at}.weights (end)`;
      if (!follower || follower.sparse?.part !== k) {
        throw corrupt(`a sparse blob covers ${w.sparse.count} weights but the next entries are not its parts`, fw, `part ${k}`, follower ? show(follower.entry.prunepack ?? 'no marker') : 'the end of the group');
      }
      if (follower.storage !== w.storage) {
        throw corrupt('the weights of one sparse blob have different storage dtypes', fw, w.storage, follower.storage);
      }
    }
    i += w.sparse.count - 1;
  }
}

/** Deepest nesting model.json may use; real models stay far below it (the fuzzer found 1M-deep files). */
const MAX_JSON_DEPTH = 512;

/**
 * Refuses deeply nested JSON before JSON.parse, whose memory grows with depth (a 2 MB file
 * nested a million deep made it peak at over 200 MiB).
 */
function checkJsonDepth(text: string, where: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw new PrunepackError('CORRUPT', 'model.json is nested too deeply', {
          format: 'tfjs', location: `${where}, character ${i}`, expected: `at most ${MAX_JSON_DEPTH} levels of nesting`, found: 'more',
        });
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}
