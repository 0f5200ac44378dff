/**
 * prunepack pack file ("PPAK"), version 1: the byte layout, its parser and the restoring decoder.
 * Browser-safe (fflate, codecs.ts, errors.ts only). The layout is documented in docs/pack-format.md;
 * change both together.
 *
 *   header (40 bytes) | index (I bytes) | u32 CRC-32 of the index | data sections
 *
 * A pack holds the model's original file(s) with the weight byte ranges cut out ("skeleton",
 * raw DEFLATE) and every cut range as a PPSP sparse blob (codecs.ts), optionally followed by a
 * patch (raw DEFLATE: the element positions and original bytes the sparse blob does not restore
 * bit for bit, i.e. -0.0 under the numeric zero rule). Restoring = inflate the skeleton and put
 * each decoded range back at its offset. Every restored weight and file is checked against its
 * CRC-32.
 */
import { inflateSync } from 'fflate';
import { PrunepackError } from '../errors.js';
import { crc32, decodeSparse } from '../sparsity/codecs.js';

export const PACK_MAGIC = 'PPAK';
export const PACK_VERSION = 1;
export const PACK_HEADER_BYTES = 40;
export const PACK_FILE_RECORD_FIXED = 2 + 8 + 4 + 8 + 8 + 8 + 4 + 4; // + name bytes
export const PACK_WEIGHT_RECORD_BYTES = 40;
export const PACK_EXTENSION = '.ppak';

/** Header flags. */
export const FLAG_EXACT = 1;          // --exact: every difference from the original is patched
export const FLAG_BYTE_IDENTICAL = 2; // the restored files are byte-identical to the packed originals

export const WEIGHT_KIND_PPSP = 1;

export type PackModelFormat = 'unknown' | 'tflite' | 'onnx' | 'tfjs';
export const FORMAT_CODES: Record<PackModelFormat, number> = { unknown: 0, tflite: 1, onnx: 2, tfjs: 3 };
const FORMAT_BY_CODE = new Map(Object.entries(FORMAT_CODES).map(([k, v]) => [v, k as PackModelFormat]));

export const MAX_FILES = 0xffff;
export const MAX_NAME_BYTES = 1024;
/** Default limit of the restored bytes (all files together). */
export const DEFAULT_MAX_RESTORED_BYTES = 2 ** 32;

const FORMAT = 'prunepack pack';

export interface PackFileRecord {
  name: string;
  size: number;
  crc: number;
  skeletonAt: number;      // relative to the data start
  skeletonStored: number;
  skeletonRaw: number;
  firstWeight: number;
  weightCount: number;
}

export interface PackWeightRecord {
  offset: number;          // in the restored file
  length: number;          // restored bytes
  dataAt: number;          // relative to the data start
  blobLength: number;
  patchLength: number;
  crc: number;
  kind: number;
  elementBytes: number;
}

export interface PackHeader {
  version: number;
  flags: number;
  format: PackModelFormat;
  fileCount: number;
  weightCount: number;
  indexBytes: number;
  totalBytes: number;
  /** Byte offset of the data sections in the pack. */
  dataStart: number;
  /** CRC-32 of every data byte (checked once the last section is decoded). */
  dataCrc: number;
}

export interface PackIndex {
  header: PackHeader;
  files: PackFileRecord[];
  weights: PackWeightRecord[];
}

export function corrupt(what: string, location: string, expected?: string, found?: string, cause?: unknown): PrunepackError {
  return new PrunepackError('CORRUPT', what, {
    format: FORMAT, location,
    ...(expected === undefined ? {} : { expected }),
    ...(found === undefined ? {} : { found }),
    ...(cause === undefined ? {} : { cause }),
  });
}

// ---------------------------------------------------------------------------------------------
// Little-endian helpers

export function u64(view: DataView, at: number, where: string): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  if (hi > 0x1fffff) throw corrupt('64-bit field exceeds 2^53 - 1', where, '<= 2^53 - 1', `high word ${hi}`);
  return hi * 0x100000000 + lo;
}

export function putU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / 0x100000000), true);
}

// ---------------------------------------------------------------------------------------------
// Relative file names

/** Checks a relative file name from a pack (or for one): '/'-separated, no absolute path, no '..', no NUL. */
export function checkPackName(name: string, where = 'file name'): string {
  const bad = (why: string): never => {
    throw new PrunepackError('UNSAFE_PATH', `unsafe file name in pack: ${why}`, { format: FORMAT, location: where, found: JSON.stringify(name) });
  };
  if (name.length === 0) bad('empty');
  if (name.includes('\0')) bad('contains a NUL byte');
  if (name.includes('\\')) bad('contains a backslash');
  if (name.startsWith('/')) bad('absolute path');
  if (/^[A-Za-z]:/.test(name)) bad('drive letter');
  for (const segment of name.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') bad(`segment '${segment}' (empty, '.' or '..')`);
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// Header and index

export function parseHeader(bytes: Uint8Array): PackHeader {
  if (bytes.length < PACK_HEADER_BYTES) {
    throw corrupt('pack is shorter than its header', `byte ${bytes.length}`, `>= ${PACK_HEADER_BYTES} bytes`, `${bytes.length} bytes`);
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== PACK_MAGIC.charCodeAt(i)) throw corrupt('not a prunepack pack (bad magic)', `byte ${i}`, `'${PACK_MAGIC}'`, `byte ${bytes[i]}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, PACK_HEADER_BYTES);
  const crc = view.getUint32(36, true);
  const actual = crc32(bytes.subarray(0, 36));
  if (crc !== actual) throw corrupt('pack header checksum mismatch', 'byte 36', `crc32 ${actual.toString(16)}`, crc.toString(16));
  const version = bytes[4]!;
  if (version !== PACK_VERSION) {
    throw new PrunepackError('UNSUPPORTED', `pack version ${version}`, { format: FORMAT, location: 'byte 4', expected: String(PACK_VERSION), found: String(version) });
  }
  const flags = bytes[5]!;
  if (flags & ~(FLAG_EXACT | FLAG_BYTE_IDENTICAL)) throw corrupt('reserved header flags are set', 'byte 5', 'bits 2-7 zero', String(flags));
  const format = FORMAT_BY_CODE.get(bytes[6]!);
  if (format === undefined) throw corrupt('unknown model format code', 'byte 6', '0..3', String(bytes[6]));
  if (bytes[7] !== 0) throw corrupt('reserved header byte is set', 'byte 7', '0', String(bytes[7]));
  const fileCount = view.getUint32(8, true);
  const weightCount = view.getUint32(12, true);
  const indexBytes = u64(view, 16, 'byte 16');
  const totalBytes = u64(view, 24, 'byte 24');
  if (fileCount < 1 || fileCount > MAX_FILES) throw corrupt('file count out of range', 'byte 8', `1..${MAX_FILES}`, String(fileCount));
  const minIndex = fileCount * PACK_FILE_RECORD_FIXED + weightCount * PACK_WEIGHT_RECORD_BYTES;
  if (indexBytes < minIndex || indexBytes > minIndex + fileCount * MAX_NAME_BYTES) {
    throw corrupt('index length does not fit the file and weight counts', 'byte 16', `${minIndex}..${minIndex + fileCount * MAX_NAME_BYTES}`, String(indexBytes));
  }
  const dataStart = PACK_HEADER_BYTES + indexBytes + 4;
  if (totalBytes < dataStart) throw corrupt('total length is shorter than header and index', 'byte 24', `>= ${dataStart}`, String(totalBytes));
  const dataCrc = view.getUint32(32, true);
  return { version, flags, format, fileCount, weightCount, indexBytes, totalBytes, dataStart, dataCrc };
}

/** Parses and checks the index; `bytes` must hold at least `header.dataStart` bytes. */
export function parseIndex(bytes: Uint8Array, header: PackHeader, maxRestoredBytes = DEFAULT_MAX_RESTORED_BYTES): PackIndex {
  const end = header.dataStart;
  if (bytes.length < end) throw corrupt('pack ends inside its index', `byte ${bytes.length}`, `>= ${end} bytes`, `${bytes.length} bytes`);
  const index = bytes.subarray(PACK_HEADER_BYTES, PACK_HEADER_BYTES + header.indexBytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, end);
  const stored = view.getUint32(end - 4, true);
  const actual = crc32(index);
  if (stored !== actual) throw corrupt('pack index checksum mismatch', `byte ${end - 4}`, `crc32 ${actual.toString(16)}`, stored.toString(16));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let at = PACK_HEADER_BYTES;
  const need = (n: number, what: string) => {
    if (at + n > end - 4) throw corrupt(`index ends inside ${what}`, `byte ${at}`, `${n} more bytes`, `${end - 4 - at}`);
  };
  const files: PackFileRecord[] = [];
  const names = new Set<string>();
  let restored = 0;
  for (let f = 0; f < header.fileCount; f++) {
    need(2, `file record ${f}`);
    const nameLength = view.getUint16(at, true);
    if (nameLength === 0 || nameLength > MAX_NAME_BYTES) throw corrupt('file name length out of range', `byte ${at}`, `1..${MAX_NAME_BYTES}`, String(nameLength));
    at += 2;
    need(nameLength + PACK_FILE_RECORD_FIXED - 2, `file record ${f}`);
    let name: string;
    try { name = decoder.decode(bytes.subarray(at, at + nameLength)); } catch (e) { throw corrupt('file name is not UTF-8', `byte ${at}`, undefined, undefined, e); }
    checkPackName(name, `file record ${f}`);
    if (names.has(name)) throw corrupt('file name appears twice', `file record ${f}`, 'unique names', name);
    names.add(name);
    at += nameLength;
    const rec: PackFileRecord = {
      name,
      size: u64(view, at, `byte ${at}`),
      crc: view.getUint32(at + 8, true),
      skeletonAt: u64(view, at + 12, `byte ${at + 12}`),
      skeletonStored: u64(view, at + 20, `byte ${at + 20}`),
      skeletonRaw: u64(view, at + 28, `byte ${at + 28}`),
      firstWeight: view.getUint32(at + 36, true),
      weightCount: view.getUint32(at + 40, true),
    };
    at += 44;
    restored += rec.size;
    if (restored > maxRestoredBytes) {
      throw new PrunepackError('UNSUPPORTED', 'restored files exceed the size limit', { format: FORMAT, location: `file ${name}`, expected: `<= ${maxRestoredBytes} bytes`, found: `>= ${restored} bytes`, hint: 'pass a larger maxBytes if the pack is trusted' });
    }
    if (rec.skeletonRaw > rec.size) throw corrupt('skeleton is larger than its file', `file ${name}`, `<= ${rec.size}`, String(rec.skeletonRaw));
    files.push(rec);
  }
  const weights: PackWeightRecord[] = [];
  for (let w = 0; w < header.weightCount; w++) {
    need(PACK_WEIGHT_RECORD_BYTES, `weight record ${w}`);
    const rec: PackWeightRecord = {
      offset: u64(view, at, `byte ${at}`),
      length: u64(view, at + 8, `byte ${at + 8}`),
      dataAt: u64(view, at + 16, `byte ${at + 16}`),
      blobLength: view.getUint32(at + 24, true),
      patchLength: view.getUint32(at + 28, true),
      crc: view.getUint32(at + 32, true),
      kind: bytes[at + 36]!,
      elementBytes: bytes[at + 37]!,
    };
    if (rec.kind !== WEIGHT_KIND_PPSP) throw corrupt('unknown weight encoding kind', `byte ${at + 36}`, String(WEIGHT_KIND_PPSP), String(rec.kind));
    if (![1, 2, 4, 8].includes(rec.elementBytes)) throw corrupt('element width out of range', `byte ${at + 37}`, '1, 2, 4 or 8', String(rec.elementBytes));
    if (view.getUint16(at + 38, true) !== 0) throw corrupt('reserved weight record bytes are set', `byte ${at + 38}`, '0', String(view.getUint16(at + 38, true)));
    if (rec.length % rec.elementBytes !== 0) throw corrupt('weight length is not a whole number of elements', `weight record ${w}`, `multiple of ${rec.elementBytes}`, String(rec.length));
    weights.push(rec);
    at += PACK_WEIGHT_RECORD_BYTES;
  }
  if (at !== end - 4) throw corrupt('index has trailing bytes', `byte ${at}`, `${end - 4}`, String(at));
  // Layout: files in order, each its skeleton then its weights (sorted, non-overlapping), sections contiguous.
  let data = 0;
  let nextWeight = 0;
  for (const f of files) {
    if (f.firstWeight !== nextWeight || f.weightCount > header.weightCount - nextWeight) {
      throw corrupt('file weight range is not contiguous', `file ${f.name}`, `first weight ${nextWeight}`, `${f.firstWeight} (+${f.weightCount})`);
    }
    if (f.skeletonAt !== data) throw corrupt('skeleton section is not where the layout puts it', `file ${f.name}`, `data offset ${data}`, String(f.skeletonAt));
    data += f.skeletonStored;
    let pos = 0;
    let cut = 0;
    for (let i = f.firstWeight; i < f.firstWeight + f.weightCount; i++) {
      const w = weights[i]!;
      if (w.offset < pos || w.offset + w.length > f.size) {
        throw corrupt('weight range overlaps another or runs past its file', `weight record ${i}`, `offset >= ${pos}, end <= ${f.size}`, `${w.offset}+${w.length}`);
      }
      if (w.dataAt !== data) throw corrupt('weight section is not where the layout puts it', `weight record ${i}`, `data offset ${data}`, String(w.dataAt));
      data += w.blobLength + w.patchLength;
      pos = w.offset + w.length;
      cut += w.length;
    }
    if (f.size - cut !== f.skeletonRaw) throw corrupt('skeleton length does not match the file minus its weights', `file ${f.name}`, String(f.size - cut), String(f.skeletonRaw));
    nextWeight += f.weightCount;
  }
  if (nextWeight !== header.weightCount) throw corrupt('weights not owned by any file', 'index', String(header.weightCount), String(nextWeight));
  if (header.dataStart + data !== header.totalBytes) {
    throw corrupt('total length does not match the sections', 'byte 24', String(header.dataStart + data), String(header.totalBytes));
  }
  return { header, files, weights };
}

// ---------------------------------------------------------------------------------------------
// Sections

export function inflateExact(stored: Uint8Array, raw: number, where: string): Uint8Array {
  const out = new Uint8Array(raw + 1);
  let got: Uint8Array;
  try {
    got = inflateSync(stored, { out });
  } catch (e) {
    throw corrupt(`${where} is not valid DEFLATE data (${(e as Error).message})`, where, 'a raw DEFLATE stream', `${stored.length} undecodable bytes`, e);
  }
  if (got.length !== raw) throw corrupt(`${where} inflates to the wrong length`, where, `${raw} bytes`, got.length > raw ? `more than ${raw}` : `${got.length}`);
  return out.subarray(0, raw);
}

function readVarint(bytes: Uint8Array, state: { at: number }, where: string): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (state.at >= bytes.length) throw corrupt('patch ends inside a number', where);
    const b = bytes[state.at++]!;
    value += (b & 0x7f) * scale;
    if (!(b & 0x80)) return value;
    scale *= 128;
  }
  throw corrupt('patch number is too long', where);
}

/** Applies a patch section (see docs/pack-format.md) to the restored range `out`. */
export function applyPatch(stored: Uint8Array, out: Uint8Array, elementBytes: number, where: string): void {
  const elements = out.length / elementBytes;
  // Bound before inflating: a count varint, then at most `elements` positions and element bytes.
  const bound = 8 + elements * (8 + elementBytes);
  const raw = inflateBounded(stored, bound, where);
  const state = { at: 0 };
  const count = readVarint(raw, state, where);
  if (count > elements) throw corrupt('patch has more entries than the weight has elements', where, `<= ${elements}`, String(count));
  const positions = new Float64Array(count);
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const delta = readVarint(raw, state, where);
    const p = i === 0 ? delta : prev + delta;
    if ((i > 0 && delta === 0) || p >= elements) throw corrupt('patch position out of order or range', where, `< ${elements}, increasing`, String(p));
    positions[i] = p;
    prev = p;
  }
  if (raw.length - state.at !== count * elementBytes) throw corrupt('patch values have the wrong length', where, String(count * elementBytes), String(raw.length - state.at));
  for (let i = 0; i < count; i++) {
    const src = state.at + i * elementBytes;
    out.set(raw.subarray(src, src + elementBytes), positions[i]! * elementBytes);
  }
}

function inflateBounded(stored: Uint8Array, bound: number, where: string): Uint8Array {
  const out = new Uint8Array(bound + 1);
  let got: Uint8Array;
  try {
    got = inflateSync(stored, { out });
  } catch (e) {
    throw corrupt(`${where} is not valid DEFLATE data (${(e as Error).message})`, where, undefined, undefined, e);
  }
  if (got.length > bound) throw corrupt(`${where} inflates past its bound`, where, `<= ${bound} bytes`, `more`);
  return got;
}

// ---------------------------------------------------------------------------------------------
// Restoring (streaming: a section is decoded as soon as its bytes are present)

export interface RestoredPack {
  format: PackModelFormat;
  /** Restored files by relative name, in pack order (the first is the primary file). */
  files: Map<string, Uint8Array>;
  primary: Uint8Array;
  primaryName: string;
  /** The pack was written with --exact. */
  exact: boolean;
  /** The restored files are byte-identical to the files that were packed. */
  byteIdentical: boolean;
}

export interface RestoreOptions {
  /** Largest total of restored bytes (default 2^32). */
  maxBytes?: number;
}

/**
 * Incremental restorer: feed it the pack's bytes as they arrive (`available` = how many leading
 * bytes of `buffer` are valid); it decodes every section that is complete, one weight at a time.
 */
export class PackRestorer {
  private index: PackIndex | null = null;
  private header: PackHeader | null = null;
  private out: Uint8Array[] = [];
  private file = 0;
  private weight = -1; // -1: the file's skeleton is next
  private skeleton: Uint8Array | null = null;
  private skeletonPos = 0;
  private filePos = 0;
  private done = false;
  private dataCrc = 0;

  constructor(private readonly options: RestoreOptions = {}) {}

  /** The total pack length, once the header is known. */
  get totalBytes(): number | undefined { return this.header?.totalBytes; }

  /** Processes what can be processed with the first `available` bytes of `buffer`. */
  feed(buffer: Uint8Array, available: number): void {
    if (this.done) return;
    if (!this.header) {
      if (available < PACK_HEADER_BYTES) return;
      this.header = parseHeader(buffer.subarray(0, PACK_HEADER_BYTES));
    }
    const h = this.header;
    if (!this.index) {
      if (available < h.dataStart) return;
      this.index = parseIndex(buffer.subarray(0, h.dataStart), h, this.options.maxBytes ?? DEFAULT_MAX_RESTORED_BYTES);
      for (const f of this.index.files) this.out.push(new Uint8Array(f.size));
    }
    const { files, weights } = this.index;
    while (this.file < files.length) {
      const f = files[this.file]!;
      const out = this.out[this.file]!;
      if (this.weight === -1) {
        const start = h.dataStart + f.skeletonAt;
        if (available < start + f.skeletonStored) return;
        this.dataCrc = crc32(buffer.subarray(start, start + f.skeletonStored), this.dataCrc);
        this.skeleton = inflateExact(buffer.subarray(start, start + f.skeletonStored), f.skeletonRaw, `skeleton of ${f.name}`);
        this.skeletonPos = 0;
        this.filePos = 0;
        this.weight = 0;
      }
      while (this.weight < f.weightCount) {
        const i = f.firstWeight + this.weight;
        const w = weights[i]!;
        const start = h.dataStart + w.dataAt;
        if (available < start + w.blobLength + w.patchLength) return;
        this.dataCrc = crc32(buffer.subarray(start, start + w.blobLength + w.patchLength), this.dataCrc);
        this.copySkeleton(out, w.offset);
        const target = out.subarray(w.offset, w.offset + w.length);
        const where = `weight ${i} of ${f.name}`;
        let decoded;
        try {
          decoded = decodeSparse(buffer.subarray(start, start + w.blobLength), { maxDenseBytes: w.length });
        } catch (e) {
          if (e instanceof PrunepackError && e.code === 'UNSUPPORTED') throw corrupt(`${where}: sparse blob larger than its range`, where, `${w.length} bytes`, undefined, e);
          throw e;
        }
        if (decoded.values.length !== w.length) throw corrupt(`${where}: sparse blob has the wrong size`, where, `${w.length} bytes`, `${decoded.values.length} bytes`);
        target.set(decoded.values);
        if (w.patchLength > 0) {
          const at = start + w.blobLength;
          applyPatch(buffer.subarray(at, at + w.patchLength), target, w.elementBytes, `patch of ${where}`);
        }
        const crc = crc32(target);
        if (crc !== w.crc) throw corrupt(`${where}: checksum mismatch`, where, `crc32 ${w.crc.toString(16)}`, crc.toString(16));
        this.filePos = w.offset + w.length;
        this.weight++;
      }
      this.copySkeleton(out, f.size);
      if (this.skeletonPos !== f.skeletonRaw) throw corrupt('skeleton length mismatch', `file ${f.name}`, String(f.skeletonRaw), String(this.skeletonPos));
      const crc = crc32(out);
      if (crc !== f.crc) throw corrupt(`restored ${f.name}: checksum mismatch`, `file ${f.name}`, `crc32 ${f.crc.toString(16)}`, crc.toString(16));
      this.skeleton = null;
      this.file++;
      this.weight = -1;
    }
    if (available !== h.totalBytes) throw corrupt('pack has trailing bytes', `byte ${h.totalBytes}`, `${h.totalBytes} bytes`, `${available} bytes`);
    if (this.dataCrc !== h.dataCrc) throw corrupt('pack data checksum mismatch', 'byte 32', `crc32 ${h.dataCrc.toString(16)}`, this.dataCrc.toString(16));
    this.done = true;
  }

  private copySkeleton(out: Uint8Array, until: number): void {
    const n = until - this.filePos;
    const sk = this.skeleton!;
    if (this.skeletonPos + n > sk.length) throw corrupt('skeleton is shorter than its file needs', 'skeleton', `${this.skeletonPos + n} bytes`, `${sk.length}`);
    out.set(sk.subarray(this.skeletonPos, this.skeletonPos + n), this.filePos);
    this.skeletonPos += n;
    this.filePos = until;
  }

  /** The restored files; throws CORRUPT when the pack ended early. */
  finish(available: number): RestoredPack {
    if (!this.done) {
      const need = this.header?.totalBytes ?? PACK_HEADER_BYTES;
      throw corrupt('pack is truncated', `byte ${available}`, `${Math.max(need, available + 1)} bytes`, `${available} bytes`);
    }
    const h = this.header!;
    const files = new Map<string, Uint8Array>();
    this.index!.files.forEach((f, i) => files.set(f.name, this.out[i]!));
    const primaryName = this.index!.files[0]!.name;
    return {
      format: h.format, files, primary: files.get(primaryName)!, primaryName,
      exact: (h.flags & FLAG_EXACT) !== 0, byteIdentical: (h.flags & FLAG_BYTE_IDENTICAL) !== 0,
    };
  }
}

/** Restores every file of a complete pack held in memory. */
export function restorePack(bytes: Uint8Array, options: RestoreOptions = {}): RestoredPack {
  if (!(bytes instanceof Uint8Array)) throw new PrunepackError('INVALID_ARGUMENT', 'restorePack needs a Uint8Array', { found: typeof bytes });
  const r = new PackRestorer(options);
  if (bytes.length >= PACK_HEADER_BYTES) {
    const h = parseHeader(bytes);
    if (bytes.length < h.totalBytes) throw corrupt('pack is truncated', `byte ${bytes.length}`, `${h.totalBytes} bytes`, `${bytes.length} bytes`);
    if (bytes.length > h.totalBytes) throw corrupt('pack has trailing bytes', `byte ${h.totalBytes}`, `${h.totalBytes} bytes`, `${bytes.length} bytes`);
  }
  r.feed(bytes, bytes.length);
  return r.finish(bytes.length);
}

/** Reads the header and index only (for `inspect`-like reports). */
export function readPackIndex(bytes: Uint8Array): PackIndex {
  const h = parseHeader(bytes);
  return parseIndex(bytes, h);
}
