/**
 * Writing a pack (docs/pack-format.md) from the original file(s) and the byte ranges of their
 * weights. No file system access (the Node side is in ./node.ts). The restored bytes are always
 * taken from the files themselves, so a wrongly located range costs size, never correctness; the
 * finished pack is decoded once and compared with the inputs before it is returned.
 */
import { deflateSync } from 'fflate';
import { PrunepackError } from '../errors.js';
import type { DType } from '../model/dtype.js';
import { isSparseDType, sparseElementBytes, type ZeroPoints } from '../sparsity/analysis.js';
import { crc32, decodeSparse, encodeSparse, type DeflateLevel } from '../sparsity/codecs.js';
import { parseEncoding, planWeightEncoding } from '../sparsity/cost.js';
import {
  checkPackName, FLAG_BYTE_IDENTICAL, FLAG_EXACT, FORMAT_CODES, MAX_FILES, MAX_NAME_BYTES, PACK_HEADER_BYTES, PACK_MAGIC,
  PACK_VERSION, putU64, restorePack, WEIGHT_KIND_POOL, WEIGHT_KIND_PPSP, type PackModelFormat,
} from './format.js';
import { elementWidth } from './locate.js';
import { encodePool, type PoolItem } from './pool-encode.js';
import { ByteWriter } from './varint.js';

export interface PackInputFile {
  /** Relative name ('/'-separated); the first file is the primary (model) file. */
  name: string;
  bytes: Uint8Array;
}

/** A weight's byte range in one of the files, with how to read it. */
export interface PackRange {
  file: number;
  offset: number;
  length: number;
  name: string;
  dtype: DType;
  shape: readonly number[];
  quantization?: ZeroPoints;
}

export interface PackOptions {
  /** Store every bit (signs of zeros): the restored files are byte-identical in every case. */
  exact?: boolean;
  /** DEFLATE level of the final encoding (default 9). */
  level?: DeflateLevel;
  format?: PackModelFormat;
  /** Skip the final decode-and-compare self check (default false). */
  skipSelfCheck?: boolean;
  /** Weights below this many bytes go into the shared pool section (default 64 KiB). */
  poolWeightBytes?: number;
}

/** Defaults: weights under 64 KiB share the pool, up to 32 MiB of them (the pool is decoded at once). */
export const POOL_WEIGHT_BYTES = 64 * 1024;
export const POOL_TOTAL_BYTES = 32 * 1024 * 1024;

export interface PackWeightReport {
  name: string;
  file: string;
  offset: number;
  bytes: number;
  encoding: string;
  packedBytes: number;
  /** Elements the sparse blob restores differently (-0.0 as +0.0); patched with --exact. */
  differingElements: number;
}

export interface PackReport {
  format: PackModelFormat;
  exact: boolean;
  byteIdentical: boolean;
  inputBytes: number;
  packBytes: number;
  skeletonBytes: number;
  skeletonRawBytes: number;
  /** The pool section (all small weights together) and how many weights it holds. */
  poolBytes: number;
  pooledWeights: number;
  weights: PackWeightReport[];
  /** Ranges left in the skeleton because they cannot be encoded (overlapping, unsupported dtype, size mismatch). */
  skipped: { name: string; why: string }[];
  /** Weights left in the skeleton on purpose: their blob was no smaller than plain DEFLATE. */
  kept: { name: string; why: string }[];
}

const ENCODINGS = ['bitmap+deflate', 'bcsr+deflate'];

function encodeVarint(out: number[], v: number): void {
  while (v >= 0x80) { out.push((v % 128) | 0x80); v = Math.floor(v / 128); }
  out.push(v);
}

/** Positions (elements) where `a` and `b` differ, as a patch section (raw DEFLATE), or null. */
function patchFor(original: Uint8Array, restored: Uint8Array, width: number, level: DeflateLevel): { stored: Uint8Array; count: number } | null {
  const positions: number[] = [];
  const n = original.length / width;
  for (let i = 0; i < n; i++) {
    const at = i * width;
    for (let j = 0; j < width; j++) {
      if (original[at + j] !== restored[at + j]) { positions.push(i); break; }
    }
  }
  if (positions.length === 0) return null;
  const head: number[] = [];
  encodeVarint(head, positions.length);
  positions.forEach((p, i) => encodeVarint(head, i === 0 ? p : p - positions[i - 1]!));
  const raw = new Uint8Array(head.length + positions.length * width);
  raw.set(head);
  positions.forEach((p, i) => raw.set(original.subarray(p * width, (p + 1) * width), head.length + i * width));
  return { stored: deflateSync(raw, { level }), count: positions.length };
}

function count(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new PrunepackError('INVALID_ARGUMENT', `bad ${what}`, { found: String(n) });
  return n;
}

interface Planned {
  r: PackRange;
  width: number;
  kind: number;
  blob?: Uint8Array;
  encoding: string;
}

/** Builds a pack. Ranges may come in any order; overlapping or unusable ones stay in the skeleton. */
export function buildPack(files: readonly PackInputFile[], ranges: readonly PackRange[], options: PackOptions = {}): { bytes: Uint8Array; report: PackReport } {
  if (files.length === 0 || files.length > MAX_FILES) throw new PrunepackError('INVALID_ARGUMENT', 'a pack holds 1..65535 files', { found: String(files.length) });
  const encoder = new TextEncoder();
  const names = files.map((f) => {
    checkPackName(f.name);
    const b = encoder.encode(f.name);
    if (b.length > MAX_NAME_BYTES) throw new PrunepackError('INVALID_ARGUMENT', 'file name too long for a pack', { found: f.name, expected: `<= ${MAX_NAME_BYTES} bytes` });
    return b;
  });
  if (new Set(files.map((f) => f.name)).size !== files.length) throw new PrunepackError('INVALID_ARGUMENT', 'file names must be unique');
  const level = options.level ?? 9;
  const exact = options.exact ?? false;
  const poolWeightBytes = options.poolWeightBytes ?? POOL_WEIGHT_BYTES;
  const skipped: PackReport['skipped'] = [];
  const kept: PackReport['kept'] = [];

  // Usable ranges per file, sorted, without overlaps.
  const perFile: PackRange[][] = files.map(() => []);
  for (const r of ranges) {
    const f = files[r.file];
    if (!f) { skipped.push({ name: r.name, why: 'unknown file' }); continue; }
    count(r.offset, 'offset'); count(r.length, 'length');
    if (r.length === 0) continue;
    if (r.offset + r.length > f.bytes.length) { skipped.push({ name: r.name, why: 'range past the end of its file' }); continue; }
    const width = elementWidth(r.dtype);
    if (width === 0) { skipped.push({ name: r.name, why: `dtype ${r.dtype} has no fixed element width` }); continue; }
    const elements = r.shape.reduce((a, b) => a * b, 1);
    if (elements * width !== r.length) { skipped.push({ name: r.name, why: `shape [${r.shape.join(',')}] does not match ${r.length} bytes` }); continue; }
    perFile[r.file]!.push(r);
  }
  for (const list of perFile) {
    list.sort((a, b) => a.offset - b.offset || b.length - a.length);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      const cur = list[i]!;
      if (cur.offset < prev.offset + prev.length) {
        if (!(cur.offset === prev.offset && cur.length === prev.length)) skipped.push({ name: cur.name, why: 'overlaps another weight' });
        list.splice(i, 1);
        i--;
      }
    }
  }

  // Encoding per range: small ones into the pool, large sparse ones as PPSP blobs, the rest stays.
  let pooledTotal = 0;
  const planned: Planned[][] = perFile.map((list, fi) => {
    const out: Planned[] = [];
    for (const r of list) {
      const width = elementWidth(r.dtype);
      const original = files[fi]!.bytes.subarray(r.offset, r.offset + r.length);
      if (r.length < poolWeightBytes && pooledTotal + r.length <= POOL_TOTAL_BYTES) {
        pooledTotal += r.length;
        out.push({ r, width, kind: WEIGHT_KIND_POOL, encoding: 'pool' });
        continue;
      }
      if (!isSparseDType(r.dtype)) { kept.push({ name: r.name, why: `kept in the skeleton (dtype ${r.dtype} has no sparse codec)` }); continue; }
      const e = encodeRange(original, r, level);
      if (typeof e === 'string') (e.startsWith('kept in the skeleton') ? kept : skipped).push({ name: r.name, why: e });
      else out.push({ r, width, kind: WEIGHT_KIND_PPSP, ...e });
    }
    return out;
  });

  const poolItems: PoolItem[] = [];
  for (const [fi, list] of planned.entries()) {
    for (const p of list) if (p.kind === WEIGHT_KIND_POOL) poolItems.push({ bytes: files[fi]!.bytes.subarray(p.r.offset, p.r.offset + p.r.length), width: p.width });
  }
  const pool = poolItems.length > 0 ? encodePool(poolItems, level) : new Uint8Array(0);

  const index = new ByteWriter().varint(pool.length);
  const weightIndex = new ByteWriter();
  const sections: Uint8Array[] = [pool];
  const reports: PackWeightReport[] = [];
  let byteIdentical = true;
  let skeletonBytes = 0;
  let skeletonRawBytes = 0;
  files.forEach((file, fi) => {
    const list = planned[fi]!;
    const cut = list.reduce((n, p) => n + p.r.length, 0);
    const skeletonRaw = new Uint8Array(file.bytes.length - cut);
    let pos = 0;
    let s = 0;
    for (const { r } of list) {
      skeletonRaw.set(file.bytes.subarray(pos, r.offset), s);
      s += r.offset - pos;
      pos = r.offset + r.length;
    }
    skeletonRaw.set(file.bytes.subarray(pos), s);
    const skeleton = deflateSync(skeletonRaw, { level });
    skeletonBytes += skeleton.length;
    skeletonRawBytes += skeletonRaw.length;
    index.varint(names[fi]!.length).bytes(names[fi]!).varint(file.bytes.length).u32(crc32(skeletonRaw))
      .varint(skeleton.length).varint(skeletonRaw.length).varint(list.length);
    sections.push(skeleton);
    let end = 0;
    for (const { r, width, kind, blob, encoding } of list) {
      const original = file.bytes.subarray(r.offset, r.offset + r.length);
      weightIndex.varint(r.offset - end).varint(r.length).u8(kind).u8(width);
      end = r.offset + r.length;
      if (kind === WEIGHT_KIND_POOL) {
        weightIndex.u32(crc32(original));
        reports.push({ name: r.name, file: file.name, offset: r.offset, bytes: r.length, encoding, packedBytes: 0, differingElements: 0 });
        continue;
      }
      const decoded = decodeSparse(blob!, { maxDenseBytes: r.length }).values;
      const patch = patchFor(original, decoded, width, level);
      let restored = decoded;
      if (patch && exact) restored = original;
      else if (patch) byteIdentical = false;
      const patchStored = patch && exact ? patch.stored : null;
      weightIndex.u32(crc32(restored)).u8(blob![6]!).varint(blob!.length).varint(patchStored?.length ?? 0);
      sections.push(blob!);
      if (patchStored) sections.push(patchStored);
      const packed = blob!.length + (patchStored?.length ?? 0);
      reports.push({ name: r.name, file: file.name, offset: r.offset, bytes: r.length, encoding, packedBytes: packed, differingElements: patch?.count ?? 0 });
    }
  });
  // File records first, then every weight record (in file order).
  index.bytes(weightIndex.finish());
  const indexRaw = index.finish();
  const indexStored = deflateSync(indexRaw, { level });
  const weightCount = planned.reduce((n, l) => n + l.length, 0);

  const dataStart = PACK_HEADER_BYTES + indexStored.length + 4;
  const total = dataStart + sections.reduce((n, s) => n + s.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = PACK_MAGIC.charCodeAt(i);
  out[4] = PACK_VERSION;
  const identical = exact || byteIdentical;
  out[5] = (exact ? FLAG_EXACT : 0) | (identical ? FLAG_BYTE_IDENTICAL : 0);
  out[6] = FORMAT_CODES[options.format ?? 'unknown'];
  view.setUint32(8, files.length, true);
  view.setUint32(12, weightCount, true);
  view.setUint32(16, indexStored.length, true);
  view.setUint32(20, indexRaw.length, true);
  putU64(view, 24, total);
  let at = PACK_HEADER_BYTES;
  out.set(indexStored, at);
  at += indexStored.length;
  view.setUint32(at, crc32(indexStored), true);
  at += 4;
  for (const s of sections) { out.set(s, at); at += s.length; }
  view.setUint32(32, crc32(out.subarray(dataStart)), true);
  view.setUint32(36, crc32(out.subarray(0, 36)), true);

  if (!options.skipSelfCheck) {
    const restored = restorePack(out, { verify: 'full' });
    files.forEach((f) => {
      const got = restored.files.get(f.name)!;
      if (identical && !bytesEqual(got, f.bytes)) {
        throw new PrunepackError('VERIFY_FAILED', 'the pack does not restore the input byte for byte', { location: f.name });
      }
    });
  }
  return {
    bytes: out,
    report: {
      format: options.format ?? 'unknown', exact, byteIdentical: identical,
      inputBytes: files.reduce((n, f) => n + f.bytes.length, 0), packBytes: total,
      skeletonBytes, skeletonRawBytes, poolBytes: pool.length, pooledWeights: poolItems.length,
      weights: reports, skipped, kept,
    },
  };
}

/** The smallest PPSP blob for one range, or why it cannot be encoded. */
function encodeRange(original: Uint8Array, r: PackRange, level: DeflateLevel): { blob: Uint8Array; encoding: string } | string {
  const values = original.slice(); // aligned copy: the codecs read typed views
  const attempt = (quantization: ZeroPoints | undefined) => {
    const weight = { values, dtype: r.dtype, shape: r.shape, ...(quantization ? { quantization } : {}) };
    const plan = planWeightEncoding({ ...weight, name: r.name }, ENCODINGS, { compareWithGzip: false });
    const parsed = parseEncoding(plan.encoding);
    const encode = (shuffleValues: boolean) => encodeSparse(weight, {
      codec: parsed.kind as 'bcsr' | 'bitmap', blockShape: parsed.blockShape ?? [1, 1],
      deflateIndex: true, deflateValues: true, shuffleValues, level,
    });
    const shuffled = encode(true);
    // Byte shuffle helps most weights; a few (small, or 1-byte-like data) deflate better unshuffled.
    const plain = sparseElementBytes(r.dtype) > 1 ? encode(false) : shuffled;
    return plain.length < shuffled.length ? { blob: plain, encoding: plan.encoding.replace('+deflate', '+deflate(unshuffled)') } : { blob: shuffled, encoding: plan.encoding };
  };
  let result: { blob: Uint8Array; encoding: string };
  try {
    result = attempt(r.quantization);
  } catch (e) {
    if (!r.quantization) return (e as Error).message;
    try { result = attempt(undefined); } catch (e2) { return (e2 as Error).message; }
  }
  // A weight that its own blob does not shrink below plain DEFLATE stays in the skeleton (where it
  // shares one DEFLATE stream with its neighbours and costs no blob header). The comparison uses
  // level 6 at most: on the dense bytes of a pruned weight level 9 is ~5x slower for the same size
  // (a 4 MB float32 weight at 80% zeros: 866 against 166 ms, 1,069,326 against 1,068,605 bytes),
  // and it was most of a pack's writing time.
  if (result.blob.length >= deflateSync(original, { level: Math.min(level, 6) as DeflateLevel }).length) return 'kept in the skeleton (plain DEFLATE is as small)';
  return result;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
