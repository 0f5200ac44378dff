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
  checkPackName, FLAG_BYTE_IDENTICAL, FLAG_EXACT, FORMAT_CODES, MAX_FILES, MAX_NAME_BYTES, PACK_FILE_RECORD_FIXED,
  PACK_HEADER_BYTES, PACK_MAGIC, PACK_VERSION, PACK_WEIGHT_RECORD_BYTES, putU64, restorePack, WEIGHT_KIND_PPSP,
  type PackModelFormat,
} from './format.js';

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
}

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
    if (!isSparseDType(r.dtype)) { skipped.push({ name: r.name, why: `dtype ${r.dtype} has no sparse codec` }); continue; }
    const width = sparseElementBytes(r.dtype);
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

  const sections: Uint8Array[] = [];
  const fileRecords: Uint8Array[] = [];
  const weightRecords: Uint8Array[] = [];
  const reports: PackWeightReport[] = [];
  let data = 0;
  let weightIndex = 0;
  let byteIdentical = true;
  let skeletonBytes = 0;
  let skeletonRawBytes = 0;
  files.forEach((file, fi) => {
    const encoded: { r: PackRange; blob: Uint8Array; encoding: string }[] = [];
    for (const r of perFile[fi]!) {
      const e = encodeRange(file.bytes.subarray(r.offset, r.offset + r.length), r, level);
      if (typeof e === 'string') (e.startsWith('kept in the skeleton') ? kept : skipped).push({ name: r.name, why: e });
      else encoded.push({ r, ...e });
    }
    const list = encoded.map((e) => e.r);
    const cut = list.reduce((n, r) => n + r.length, 0);
    const skeletonRaw = new Uint8Array(file.bytes.length - cut);
    let pos = 0;
    let s = 0;
    for (const r of list) {
      skeletonRaw.set(file.bytes.subarray(pos, r.offset), s);
      s += r.offset - pos;
      pos = r.offset + r.length;
    }
    skeletonRaw.set(file.bytes.subarray(pos), s);
    const skeleton = deflateSync(skeletonRaw, { level });
    skeletonBytes += skeleton.length;
    skeletonRawBytes += skeletonRaw.length;
    const rec = new Uint8Array(2 + names[fi]!.length + PACK_FILE_RECORD_FIXED - 2);
    const rv = new DataView(rec.buffer);
    rv.setUint16(0, names[fi]!.length, true);
    rec.set(names[fi]!, 2);
    const at = 2 + names[fi]!.length;
    putU64(rv, at, file.bytes.length);
    // CRC of the restored file is filled in below (it depends on the patches).
    putU64(rv, at + 12, data);
    putU64(rv, at + 20, skeleton.length);
    putU64(rv, at + 28, skeletonRaw.length);
    rv.setUint32(at + 36, weightIndex, true);
    rv.setUint32(at + 40, list.length, true);
    sections.push(skeleton);
    data += skeleton.length;
    const restoredFile = file.bytes.slice();
    for (const { r, blob, encoding } of encoded) {
      const original = file.bytes.subarray(r.offset, r.offset + r.length);
      const decoded = decodeSparse(blob, { maxDenseBytes: r.length }).values;
      const width = sparseElementBytes(r.dtype);
      const patch = patchFor(original, decoded, width, level);
      let restored = decoded;
      if (patch && exact) restored = original;
      else if (patch) byteIdentical = false;
      restoredFile.set(restored, r.offset);
      const wrec = new Uint8Array(PACK_WEIGHT_RECORD_BYTES);
      const wv = new DataView(wrec.buffer);
      putU64(wv, 0, r.offset);
      putU64(wv, 8, r.length);
      putU64(wv, 16, data);
      wv.setUint32(24, blob.length, true);
      const patchStored = patch && exact ? patch.stored : null;
      wv.setUint32(28, patchStored?.length ?? 0, true);
      wv.setUint32(32, crc32(restored), true);
      wrec[36] = WEIGHT_KIND_PPSP;
      wrec[37] = width;
      weightRecords.push(wrec);
      sections.push(blob);
      if (patchStored) sections.push(patchStored);
      const packed = blob.length + (patchStored?.length ?? 0);
      data += packed;
      reports.push({ name: r.name, file: file.name, offset: r.offset, bytes: r.length, encoding, packedBytes: packed, differingElements: patch?.count ?? 0 });
      weightIndex++;
    }
    rv.setUint32(at + 8, crc32(restoredFile), true);
    fileRecords.push(rec);
  });

  const indexBytes = fileRecords.reduce((n, r) => n + r.length, 0) + weightRecords.length * PACK_WEIGHT_RECORD_BYTES;
  const dataStart = PACK_HEADER_BYTES + indexBytes + 4;
  const total = dataStart + data;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = PACK_MAGIC.charCodeAt(i);
  out[4] = PACK_VERSION;
  const identical = exact || byteIdentical;
  out[5] = (exact ? FLAG_EXACT : 0) | (identical ? FLAG_BYTE_IDENTICAL : 0);
  out[6] = FORMAT_CODES[options.format ?? 'unknown'];
  view.setUint32(8, files.length, true);
  view.setUint32(12, weightRecords.length, true);
  putU64(view, 16, indexBytes);
  putU64(view, 24, total);
  // Data CRC and header CRC are written once the sections are in place (below).
  let at = PACK_HEADER_BYTES;
  for (const r of [...fileRecords, ...weightRecords]) { out.set(r, at); at += r.length; }
  view.setUint32(at, crc32(out.subarray(PACK_HEADER_BYTES, at)), true);
  at += 4;
  for (const s of sections) { out.set(s, at); at += s.length; }
  view.setUint32(32, crc32(out.subarray(dataStart)), true);
  view.setUint32(36, crc32(out.subarray(0, 36)), true);

  if (!options.skipSelfCheck) {
    const restored = restorePack(out);
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
      skeletonBytes, skeletonRawBytes, weights: reports, skipped, kept,
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
  // shares one DEFLATE stream with its neighbours and costs no blob header).
  if (result.blob.length >= deflateSync(original, { level }).length) return 'kept in the skeleton (plain DEFLATE is as small)';
  return result;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
