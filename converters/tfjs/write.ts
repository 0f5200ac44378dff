/**
 * Writers: `tfjs` (dense, re-sharded) and `tfjs-sparse` (docs/tfjs-sparse.md). Both return the
 * new model.json and the shards as lists of byte views (nothing is copied that need not be), for
 * files.ts to write or for callers that keep them in memory. model.json keeps every byte outside
 * the `weightsManifest` value (key order, spacing, number spellings); the manifest keeps every
 * field of every group and entry except `paths` (new shards) and the `prunepack` markers.
 *
 * tfjs-sparse planning, per manifest group in order: weights of at least `runBytes` dense bytes
 * are planned one by one; smaller neighbours with the same storage dtype share one blob (up to
 * `runLimit` dense bytes), since a blob's header and DEFLATE tables cost ~100 bytes and small
 * tensors compress better together. Quantized weights are stored minus their zero point (the
 * marker's `shift`), so their zero is 0 and different zero points share a blob. Each unit goes
 * to the cost model of the sparsity core, which sizes dense, BCSR and bitmap with their block
 * shapes, raw and with our entropy stage (entropy.ts), and picks the smallest; a blob is kept
 * only when it saves at least MIN_GAIN bytes. Strings, empty tensors and `keepDense` weights stay
 * dense. Zeros are bitwise (a -0.0 is stored), so decoding gives back every byte.
 */
import { PrunepackError } from '../../src/errors.js';
import type { Model } from '../../src/model/types.js';
import { encodeSparse, type DeflateLevel, type SparseCodec } from '../../src/sparsity/codecs.js';
import { parseEncoding, planWeightEncoding, type ExternalEncoding } from '../../src/sparsity/cost.js';
import { withEntropyStage } from './entropy.js';
import { topLevelValueSpan } from './json-span.js';
import { addModulo, SENTINEL_NAME, SPARSE_ENCODING, type TfjsStorage } from './manifest.js';
import { tfjsDocumentOf, type TfjsWeight } from './model-view.js';

export type TfjsTarget = 'tfjs' | 'tfjs-sparse';
export const TFJS_TARGETS: readonly TfjsTarget[] = ['tfjs', 'tfjs-sparse'];

export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;
export const DEFAULT_RUN_BYTES = 64 * 1024;
export const DEFAULT_RUN_LIMIT = 1024 * 1024;
/** A blob must save at least this many bytes over the dense bytes to be worth decoding. */
const MIN_GAIN = 64;
/** Encodings sized by the cost model itself (raw streams); the '+deflate' ones come from entropyCandidates. */
const RAW_ENCODINGS = ['dense', 'bitmap', 'bcsr'];

export interface TfjsWriteOptions {
  /** Shard size in bytes (default 4 MiB, as the TF.js converter). */
  shardSize?: number;
  /** Shard file name; default `group{g+1}-shard{i+1}of{n}.bin` (1-based, as the TF.js converter). */
  shardName?: (group: number, shard: number, shards: number) => string;
  /** tfjs-sparse: weights below this many dense bytes share blobs with neighbours (default 64 KiB; 0: never). */
  runBytes?: number;
  /** tfjs-sparse: largest dense size of a shared blob (default 1 MiB). */
  runLimit?: number;
  /** tfjs-sparse: level of fflate's LZ77 DEFLATE, tried against Huffman-only in the entropy stage (default 6; 0: Huffman-only). */
  level?: DeflateLevel;
  /** tfjs-sparse: weights kept dense by name. */
  keepDense?: readonly string[];
}

export interface TfjsPlanEntry {
  /** The weights of one unit: one weight, or neighbours sharing a blob. */
  tensors: string[];
  storage: TfjsStorage;
  encoding: string;
  bytesBefore: number;
  bytesAfter: number;
  reason: string;
}

export interface TfjsShardFile {
  path: string;
  length: number;
  chunks: Uint8Array[];
}

export interface TfjsLayout {
  target: TfjsTarget;
  modelJson: Uint8Array;
  shards: TfjsShardFile[];
  /** One entry per unit (tfjs-sparse), or per weight (tfjs: all dense). */
  plan: TfjsPlanEntry[];
  /** Bytes of all shards. */
  weightBytes: number;
  /** Weights stored in sparse blobs. */
  sparseWeights: number;
}

export function defaultShardName(group: number, shard: number, shards: number): string {
  return `group${group + 1}-shard${shard + 1}of${shards}.bin`;
}

function invalid(what: string, expected: string, found: string): PrunepackError {
  return new PrunepackError('INVALID_ARGUMENT', what, { format: 'tfjs', expected, found });
}

/** The manifest entry of `w` as written: every field of the input entry but the prunepack marker. */
function entryJson(w: TfjsWeight): Record<string, unknown> {
  const { prunepack: _marker, ...rest } = w.entry.entry;
  return rest;
}

interface GroupOutput {
  pieces: Uint8Array[];
  entries: Record<string, unknown>[];
}

/** Stored bytes of the unit's weights, back to back; quantized ones minus their zero point (the marker's `shift`). */
function unitValues(members: readonly TfjsWeight[], denses: readonly Uint8Array[], length: number): Uint8Array {
  const shifted = members.some((w) => w.entry.zeroPoint);
  if (denses.length === 1 && !shifted) return denses[0]!;
  const values = new Uint8Array(length);
  let at = 0;
  members.forEach((w, i) => {
    const bytes = denses[i]!;
    values.set(bytes, at);
    const zero = w.entry.zeroPoint;
    if (zero) addModulo(values.subarray(at, at + bytes.length), w.entry.storage, (w.entry.storage === 'uint8' ? 256 : 65536) - zero);
    at += bytes.length;
  });
  return values;
}

interface EntropyBlob {
  /** Without DEFLATE, and with the Huffman-only entropy stage (the size the cost model saw). */
  raw: Uint8Array;
  blob: Uint8Array;
  name: string;
}

/**
 * The candidates of the cost model with our entropy stage (entropy.ts), sized by encoding for
 * real with Huffman-only DEFLATE (fast); encodeUnit then tries fflate's LZ77 DEFLATE on the chosen
 * one only. Names follow cost.ts ('+deflate': DEFLATE streams); 'best' is the analysis' best block.
 */
function entropyCandidates(blobs: Map<string, EntropyBlob>): ExternalEncoding[] {
  const candidate = (codec: SparseCodec, best: boolean): ExternalEncoding => ({
    name: `${codec}:${best ? 'best' : '1x1'}+deflate`,
    size: (weight, analysis) => {
      const shape: [number, number] = best ? [analysis.bestBlock?.rows ?? 1, analysis.bestBlock?.cols ?? 1] : [1, 1];
      if (best && shape[0] * shape[1] === 1) return null;
      if (analysis.matrix.rows % shape[0] !== 0 || analysis.matrix.cols % shape[1] !== 0) return null;
      const raw = encodeSparse(weight, { codec, blockShape: shape, zeroRule: 'bitwise', shuffleValues: true });
      const blob = withEntropyStage(raw, 0);
      blobs.set(`${codec}:${best ? 'best' : '1x1'}+deflate`, { raw, blob, name: `${codec}:${shape[0]}x${shape[1]}+deflate` });
      return blob.length;
    },
  });
  return [candidate('bitmap', false), candidate('bcsr', false), candidate('bitmap', true), candidate('bcsr', true)];
}

/** Plans and encodes one unit: a single weight, or a run of small neighbours. */
function encodeUnit(members: TfjsWeight[], options: TfjsWriteOptions, out: GroupOutput, plan: TfjsPlanEntry[]): number {
  const head = members[0]!;
  const storage = head.entry.storage;
  const denses = members.map((w) => w.denseBytes());
  const denseLength = denses.reduce((n, b) => n + b.length, 0);
  const tensors = members.map((w) => w.name);
  const label = members.length === 1 ? head.name : `${head.name} and ${members.length - 1} more`;
  const keepDense = (reason: string) => {
    for (let i = 0; i < members.length; i++) { out.pieces.push(denses[i]!); out.entries.push(entryJson(members[i]!)); }
    plan.push({ tensors, storage, encoding: 'dense', bytesBefore: denseLength, bytesAfter: denseLength, reason });
    return 0;
  };
  if (denseLength < 128) return keepDense('dense: too small for a blob');
  const values = unitValues(members, denses, denseLength);
  const elements = members.reduce((n, w) => n + w.entry.elements, 0);
  const weight = { name: label, values, dtype: storage, shape: members.length === 1 ? head.entry.shape : [elements] };
  const level = options.level ?? 6;
  const blobs = new Map<string, EntropyBlob>();
  const choice = planWeightEncoding(weight, [...RAW_ENCODINGS, ...entropyCandidates(blobs)], { zeroRule: 'bitwise', compareWithGzip: false, level });
  if (choice.encoding === 'dense' || choice.bytesAfter > denseLength - MIN_GAIN) {
    return keepDense(choice.encoding === 'dense' ? `dense: ${choice.reason}` : `dense: a blob would save less than ${MIN_GAIN} bytes (${choice.reason})`);
  }
  const encoded = blobs.get(choice.encoding);
  let blob: Uint8Array;
  let encoding = choice.encoding;
  if (encoded) {
    const withLz = level > 0 ? withEntropyStage(encoded.raw, level) : encoded.blob;
    blob = withLz.length < encoded.blob.length ? withLz : encoded.blob;
    encoding = encoded.name;
  } else {
    const parsed = parseEncoding(choice.encoding);
    blob = encodeSparse(weight, { codec: parsed.kind as SparseCodec, blockShape: parsed.blockShape, zeroRule: 'bitwise' });
  }
  out.pieces.push(blob);
  members.forEach((w, i) => {
    const shift = w.entry.zeroPoint ? { shift: w.entry.zeroPoint } : {};
    const marker = i === 0
      ? { encoding: SPARSE_ENCODING, byteLength: blob.length, ...(members.length > 1 ? { count: members.length } : {}), ...shift }
      : { encoding: SPARSE_ENCODING, byteLength: 0, part: i, ...shift };
    out.entries.push({ ...entryJson(w), prunepack: marker });
  });
  plan.push({ tensors, storage, encoding, bytesBefore: denseLength, bytesAfter: blob.length, reason: choice.reason.replace(/(bitmap|bcsr):best\+deflate/g, encoding) });
  return members.length;
}

function encodeGroupSparse(weights: TfjsWeight[], options: TfjsWriteOptions, plan: TfjsPlanEntry[]): GroupOutput & { sparse: number } {
  const out: GroupOutput = { pieces: [], entries: [] };
  const runBytes = options.runBytes ?? DEFAULT_RUN_BYTES;
  const runLimit = options.runLimit ?? DEFAULT_RUN_LIMIT;
  const keep = new Set(options.keepDense ?? []);
  let sparse = 0;
  let run: TfjsWeight[] = [];
  let runLength = 0;
  const flush = () => {
    if (run.length) sparse += encodeUnit(run, options, out, plan);
    run = [];
    runLength = 0;
  };
  for (const w of weights) {
    const e = w.entry;
    if (e.storage === 'string' || e.elements === 0 || keep.has(w.name)) {
      flush();
      out.pieces.push(w.denseBytes());
      out.entries.push(entryJson(w));
      plan.push({ tensors: [w.name], storage: e.storage, encoding: 'dense', bytesBefore: w.denseBytes().length, bytesAfter: w.denseBytes().length,
        reason: e.storage === 'string' ? 'dense: strings are never sparse' : keep.has(w.name) ? 'dense: kept dense on request' : 'dense: empty' });
      continue;
    }
    const length = e.denseBytes!;
    if (length >= runBytes) {
      flush();
      sparse += encodeUnit([w], options, out, plan);
      continue;
    }
    const last = run[run.length - 1];
    if (last && (last.entry.storage !== e.storage || runLength + length > runLimit)) flush();
    run.push(w);
    runLength += length;
  }
  flush();
  return { ...out, sparse };
}

/** Cuts the pieces into shards of `size` bytes (the last one shorter); pieces may span shards. */
function shardPieces(pieces: readonly Uint8Array[], size: number): Uint8Array[][] {
  const shards: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let room = size;
  for (const piece of pieces) {
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(room, piece.length - at);
      current.push(piece.subarray(at, at + n));
      at += n;
      room -= n;
      if (room === 0) { shards.push(current); current = []; room = size; }
    }
  }
  if (current.length) shards.push(current);
  return shards;
}

/** Lays out `model` (read by the tfjs plugin) for `target`. */
export function layoutTfjs(model: Model, target: TfjsTarget, options: TfjsWriteOptions = {}): TfjsLayout {
  if (!TFJS_TARGETS.includes(target)) throw invalid('unknown TF.js target', TFJS_TARGETS.join(' or '), String(target));
  const doc = tfjsDocumentOf(model);
  const shardSize = options.shardSize ?? DEFAULT_SHARD_BYTES;
  if (!Number.isSafeInteger(shardSize) || shardSize < 1) throw invalid('shard size must be a positive whole number of bytes', 'e.g. 4194304 (4 MiB)', String(shardSize));
  const shardName = options.shardName ?? defaultShardName;
  const { parsed } = doc;
  const manifest = parsed.manifest;
  const plan: TfjsPlanEntry[] = [];
  const shards: TfjsShardFile[] = [];
  let sparseWeights = 0;
  let newManifest: Record<string, unknown>[] | null = null;
  if (manifest) {
    let next = 0;
    newManifest = manifest.groups.map((group, g) => {
      const weights = doc.weights.slice(next, next + group.weights.length);
      next += group.weights.length;
      let out: GroupOutput;
      if (target === 'tfjs-sparse') {
        const encoded = encodeGroupSparse(weights, options, plan);
        sparseWeights += encoded.sparse;
        out = encoded;
      } else {
        // Views of the input shards (a weight spanning shards stays in pieces): nothing is copied.
        out = { pieces: weights.flatMap((w) => (w.sparsity ? [w.denseBytes()] : w.storedPieces())), entries: weights.map(entryJson) };
        for (const w of weights) {
          const stored = w.sparsity ? w.bytes.length : w.storedPieces().reduce((n, p) => n + p.length, 0);
          plan.push({ tensors: [w.name], storage: w.entry.storage, encoding: 'dense', bytesBefore: stored, bytesAfter: w.entry.denseBytes ?? stored, reason: 'dense' });
        }
      }
      const cut = shardPieces(out.pieces, shardSize);
      const paths = cut.map((_, i) => shardName(g, i, cut.length));
      cut.forEach((chunks, i) => shards.push({ path: paths[i]!, length: chunks.reduce((n, c) => n + c.length, 0), chunks }));
      return { ...group.entry, paths, weights: out.entries };
    });
    if (sparseWeights > 0) {
      const first = newManifest[0]!;
      first.weights = [{ name: SENTINEL_NAME, shape: [0], dtype: SPARSE_ENCODING }, ...(first.weights as unknown[])];
    }
  }
  const names = new Set<string>();
  for (const s of shards) {
    if (names.has(s.path)) throw invalid('two shards would have the same file name', 'a shardName function that gives unique names', s.path);
    names.add(s.path);
  }
  let text = parsed.text;
  if (newManifest) {
    const json = JSON.stringify(newManifest);
    if (Array.isArray(parsed.json)) {
      text = json;
    } else {
      const span = topLevelValueSpan(text, 'weightsManifest');
      if (!span) throw new PrunepackError('CORRUPT', 'cannot find weightsManifest in model.json text', { format: 'tfjs' });
      text = text.slice(0, span.start) + json + text.slice(span.end);
    }
  }
  return {
    target, modelJson: new TextEncoder().encode(text), shards, plan,
    weightBytes: shards.reduce((n, s) => n + s.length, 0), sparseWeights,
  };
}
