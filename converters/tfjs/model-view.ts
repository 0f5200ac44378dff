/**
 * The format-neutral view of a TF.js model: one WeightTensor per manifest entry (the sentinel
 * excluded), in manifest order. `bytes` is the stored form: a view into its shard (one copy when
 * the tensor spans shards), the u32-length-prefixed UTF-8 of a string tensor, the uint8/uint16/
 * float16 values of a quantized tensor (with the zero point in `quantization`), or the sparse
 * blob of a prunepack-sparse weight (`denseBytes()` decodes it; the other weights of a shared
 * blob hold no bytes of their own). Browser-safe except for reading shards from disk, which is
 * done through shard-files.ts only when a path is given.
 */
import { decodeSparse } from '../../src/sparsity/codecs.js';
import { PrunepackError } from '../../src/errors.js';
import type { DType } from '../../src/model/dtype.js';
import type { Model, Quantization, WeightTensor } from '../../src/model/types.js';
import { graphConsumers, layersConsumers, type TfjsConsumer } from './consumers.js';
import { addModulo, parseModelJson, type ManifestWeight, type ParsedModelJson } from './manifest.js';
import { readShards } from './shard-files.js';
import { placeWeights, ShardStream } from './stream.js';

/** One blob shared by `members` (a run of consecutive weights, or a single weight). */
export interface TfjsSparseBlob {
  /** The encoding the model was written with (docs/tfjs-sparse.md: prunepack-sparse/1 or /2). */
  encoding: string;
  blob: Uint8Array;
  members: ManifestWeight[];
  /** The run's decoded bytes, kept once decoded (runs are small: a writer packs weights below 64 KiB). */
  decoded?: Uint8Array;
}

export interface TfjsSparsity {
  encoding: string;
  /** The blob holding this weight, its position among the blob's weights, and byte offset in the dense run. */
  shared: TfjsSparseBlob;
  part: number;
  denseOffset: number;
}

export interface TfjsWeight extends WeightTensor {
  /**
   * The stored bytes as views into the shards, one per shard they touch. `bytes` is the same
   * bytes in one array: a view when they lie in one shard, else a copy made on first use, so
   * that writing a model of many shards copies nothing (docs/tfjs-sparse.md, section 7).
   */
  storedPieces(): Uint8Array[];
  dtype: DType;
  consumers: TfjsConsumer[];
  /** The manifest entry this weight came from (name, shape, dtype, quantization, raw JSON). */
  entry: ManifestWeight;
  sparsity?: TfjsSparsity;
}

export interface TfjsDocument {
  parsed: ParsedModelJson;
  weights: TfjsWeight[];
  /** Path of model.json when it was read from disk. */
  path?: string;
}

export interface ReadTfjsOptions {
  /** Path of model.json: shards are read from its folder (Node only). */
  path?: string;
  /** Shard bytes by manifest path, for callers that hold the files already (takes precedence over `path`). */
  shards?: (path: string, group: number, index: number) => Uint8Array;
}

/** Bytes of `w`'s dense stored form when decoded from a shared blob. */
function decodeShared(shared: TfjsSparseBlob): Uint8Array {
  if (shared.decoded) return shared.decoded;
  const head = shared.members[0]!;
  const decoded = decodeSparse(shared.blob, { maxDenseBytes: shared.members.reduce((n, m) => n + m.denseBytes!, 0) });
  const elements = shared.members.reduce((n, m) => n + m.elements, 0);
  const expectedShape = shared.members.length === 1 ? head.shape : [elements];
  if (decoded.dtype !== head.storage || decoded.shape.length !== expectedShape.length || decoded.shape.some((d, i) => d !== expectedShape[i])) {
    throw new PrunepackError('CORRUPT', 'sparse blob does not match its manifest entry', {
      format: 'tfjs', location: head.name, expected: `${head.storage} [${expectedShape.join(', ')}]`, found: `${decoded.dtype} [${decoded.shape.join(', ')}]`,
    });
  }
  let at = 0;
  for (const m of shared.members) {
    if (m.sparse!.shift) addModulo(decoded.values.subarray(at, at + m.denseBytes!), m.storage, m.sparse!.shift);
    at += m.denseBytes!;
  }
  if (shared.members.length > 1) shared.decoded = decoded.values;
  return decoded.values;
}

function quantizationOf(w: ManifestWeight): Quantization | undefined {
  const q = w.quantization;
  if (!q || q.dtype === 'float16' || w.zeroPoint === undefined) return undefined;
  return { scale: [q.scale!], zeroPoint: [w.zeroPoint], min: [q.min!] };
}

function uniqueNames(weights: readonly ManifestWeight[]): string[] {
  const seen = new Map<string, number>();
  return weights.map((w) => {
    const n = (seen.get(w.name) ?? 0) + 1;
    seen.set(w.name, n);
    return n === 1 ? w.name : `${w.name}#${n}`;
  });
}

/** Reads model.json bytes (and its shards) into a Model. */
export function readTfjs(bytes: Uint8Array | string, options: ReadTfjsOptions = {}): Model {
  const parsed = parseModelJson(bytes, options.path ?? 'model.json');
  const manifest = parsed.manifest;
  const entries = manifest?.weights ?? [];
  const weights: TfjsWeight[] = [];
  const topology = Array.isArray(parsed.json) ? undefined : parsed.json.modelTopology;
  const entryNames = entries.map((w) => w.name);
  const found = parsed.kind === 'graph-model' ? graphConsumers(topology, entryNames)
    : parsed.kind === 'layers-model' ? layersConsumers(topology, entryNames) : null;
  let companionFiles: string[] | undefined;
  if (manifest) {
    let shardBytes: Uint8Array[];
    if (options.shards) {
      shardBytes = manifest.groups.flatMap((g, gi) => g.paths.map((p, i) => options.shards!(p, gi, i)));
    } else if (options.path) {
      const read = manifest.groups.some((g) => g.paths.length) ? readShards(options.path, manifest.groups) : { shards: [], files: [] };
      shardBytes = read.shards;
      companionFiles = read.files;
    } else if (manifest.groups.some((g) => g.paths.length)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'the model has weight shards but its path is unknown', {
        format: 'tfjs', hint: 'Read it from a file (openModel), or pass ModelSource.path or a shards callback',
      });
    } else {
      shardBytes = [];
    }
    const stream = new ShardStream(shardBytes);
    const placements = placeWeights(entries, stream);
    const names = uniqueNames(entries);
    let shared: TfjsSparseBlob | undefined;
    let denseOffset = 0;
    entries.forEach((entry, i) => {
      const placement = placements[i]!;
      const pieces = stream.pieces(placement.offset, placement.length);
      const quantization = quantizationOf(entry);
      const base = {
        name: names[i]!, dtype: entry.storage as DType, shape: entry.shape, entry,
        consumers: found?.consumers.get(entry.name) ?? [],
        storedPieces: () => pieces,
        ...(quantization ? { quantization } : {}),
      };
      if (!entry.sparse) {
        const weight = { ...base, bytes: pieces[0] ?? new Uint8Array(0), denseBytes: () => weight.bytes };
        if (pieces.length > 1) {
          // Spans shards: one copy, made when (and if) someone asks for the contiguous bytes.
          let joined: Uint8Array | undefined;
          Object.defineProperty(weight, 'bytes', { enumerable: true, configurable: true, get: () => (joined ??= stream.bytes(placement.offset, placement.length)) });
        }
        weights.push(weight);
        return;
      }
      const stored = stream.bytes(placement.offset, placement.length);
      if (entry.sparse.part === 0) {
        shared = { encoding: entry.sparse.encoding, blob: stored, members: entries.slice(i, i + entry.sparse.count) };
        denseOffset = 0;
      }
      const blob = shared!;
      const sparsity: TfjsSparsity = { encoding: blob.encoding, shared: blob, part: entry.sparse.part, denseOffset };
      const offset = denseOffset;
      const length = entry.denseBytes!;
      denseOffset += length;
      weights.push({
        ...base, bytes: stored, sparsity,
        denseBytes: () => {
          const all = decodeShared(blob);
          return blob.members.length === 1 ? all : all.subarray(offset, offset + length);
        },
      });
    });
  }
  const operatorCounts = found?.operatorCounts ?? new Map<string, number>();
  const document: TfjsDocument = { parsed, weights, ...(options.path ? { path: options.path } : {}) };
  return { format: 'tfjs', version: parsed.kind, operatorCounts, weights, document, ...(companionFiles ? { companionFiles } : {}) };
}

/** The TF.js document of a model read by this plugin; throws when another plugin read it. */
export function tfjsDocumentOf(model: Model): TfjsDocument {
  const doc = model.document as TfjsDocument | undefined;
  if (model.format !== 'tfjs' || !doc || !doc.parsed || !Array.isArray(doc.weights)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'not a TF.js model read by prunepack', { expected: 'format tfjs', found: model.format });
  }
  return doc;
}

/**
 * A copy of `model` whose named weights hold new dense stored bytes (same storage dtype and
 * shape: quantized weights get quantized values, float16-quantized ones float16 bits). A replaced
 * weight is dense; the other weights of a blob it shared stay readable from that blob.
 */
export function tfjsWithWeights(model: Model, replacements: ReadonlyMap<string, Uint8Array>): Model {
  const doc = tfjsDocumentOf(model);
  const known = new Set(doc.weights.map((w) => w.name));
  for (const name of replacements.keys()) {
    if (!known.has(name)) throw new PrunepackError('INVALID_ARGUMENT', 'no weight of that name', { format: 'tfjs', location: name });
  }
  const weights = doc.weights.map((w): TfjsWeight => {
    const bytes = replacements.get(w.name);
    if (!bytes) return w;
    if (w.entry.storage === 'string') throw new PrunepackError('UNSUPPORTED', 'string weights cannot be replaced', { format: 'tfjs', location: w.name });
    if (bytes.length !== w.entry.denseBytes) {
      throw new PrunepackError('INVALID_ARGUMENT', 'replacement has the wrong size', {
        format: 'tfjs', location: w.name, expected: `${w.entry.denseBytes} bytes of ${w.entry.storage}`, found: `${bytes.length} bytes`,
      });
    }
    const { sparsity: _dropped, ...rest } = w;
    return { ...rest, bytes, denseBytes: () => bytes, storedPieces: () => [bytes] };
  });
  return { ...model, weights, document: { ...doc, weights } satisfies TfjsDocument };
}

