/**
 * prunepack pack file ("PPAK"), version 2: the byte layout, its parser and the restoring decoder.
 * Browser-safe and decode-only (converters/tfjs/inflate.ts, converters/tfjs/sparse-decode.ts, ./pool.ts,
 * errors.ts). The layout is documented in docs/pack-format.md; change both together.
 *
 *   header (40 bytes) | index (raw DEFLATE, I bytes) | u32 CRC-32 of the stored index | data
 *   data = pool section | for each file: skeleton, then its PPSP weights (blob [+ patch])
 *
 * A pack holds the model's original file(s) with the weight byte ranges cut out ("skeleton",
 * raw DEFLATE). Small weights share one pool section (masks and byte planes, range-coded or
 * deflated); large sparse ones are PPSP blobs (docs/sparse-codec.md), optionally followed by a
 * patch (the elements the blob does not restore bit for bit, i.e. -0.0 under the numeric zero
 * rule). Restoring = decode the pool into the files, then per file inflate the skeleton around
 * its weights and decode each blob in place. Every restored weight and skeleton is checked
 * against its CRC-32, and the stored data against one CRC-32.
 */
import { PrunepackError } from '../errors.js';
import { crc32 as portableCrc32, decodePpspInto, releaseScratch, type RawInflate } from '../../converters/tfjs/sparse-decode.js';
import { decodePool, inflateExact, type PoolTarget } from './pool.js';
import { ByteReader } from './varint.js';

/** Node's zlib.crc32 (Node >= 20.16), looked up at run time so that the loader imports no Node module. */
const nodeCrc32 = (globalThis as { process?: { getBuiltinModule?: (id: string) => { crc32?: (b: Uint8Array, crc: number) => number } } }).process?.getBuiltinModule?.('zlib').crc32;

/**
 * CRC-32 as zlib computes it: Node's native one where there is one (~10x the JavaScript table
 * loop; the data CRC was ~6% of restoring the generated 100 MB pack), else the JavaScript one.
 * zlib returns 0 for no bytes whatever the start value, and takes a 32-bit length.
 */
function crc32(bytes: Uint8Array, crc = 0): number {
  return nodeCrc32 && bytes.length && bytes.length <= 0xffffffff ? nodeCrc32(bytes, crc) : portableCrc32(bytes, crc);
}

export const PACK_MAGIC = 'PPAK';
export const PACK_VERSION = 2;
export const PACK_HEADER_BYTES = 40;
export const PACK_EXTENSION = '.ppak';

/** Header flags. */
export const FLAG_EXACT = 1;          // --exact: every difference from the original is patched
export const FLAG_BYTE_IDENTICAL = 2; // the restored files are byte-identical to the packed originals

export const WEIGHT_KIND_PPSP = 1;
export const WEIGHT_KIND_POOL = 2;

export type PackModelFormat = 'unknown' | 'tflite' | 'onnx' | 'tfjs';
export const FORMAT_CODES: Record<PackModelFormat, number> = { unknown: 0, tflite: 1, onnx: 2, tfjs: 3 };
const FORMAT_BY_CODE = new Map(Object.entries(FORMAT_CODES).map(([k, v]) => [v, k as PackModelFormat]));

export const MAX_FILES = 0xffff;
export const MAX_NAME_BYTES = 1024;
/** Largest index record sizes (for the bound on the inflated index). */
const MAX_FILE_RECORD = 5 * 9 + 4 + MAX_NAME_BYTES;
const MAX_WEIGHT_RECORD = 4 * 9 + 3 + 4;
/** Default limit of the restored bytes (all files together). */
export const DEFAULT_MAX_RESTORED_BYTES = 2 ** 32;

const FORMAT = 'prunepack pack';

export interface PackFileRecord {
  name: string;
  size: number;
  /** CRC-32 of the skeleton's inflated bytes (the file without its weights). */
  skeletonCrc: number;
  skeletonAt: number;      // relative to the data start
  skeletonStored: number;
  skeletonRaw: number;
  firstWeight: number;
  weightCount: number;
}

export interface PackWeightRecord {
  file: number;
  offset: number;          // in the restored file
  length: number;          // restored bytes
  kind: number;            // WEIGHT_KIND_PPSP or WEIGHT_KIND_POOL
  elementBytes: number;
  crc: number;             // of the restored range
  /** PPSP only: */
  dtypeCode: number;
  dataAt: number;          // relative to the data start
  blobLength: number;
  patchLength: number;
}

export interface PackHeader {
  version: number;
  flags: number;
  format: PackModelFormat;
  fileCount: number;
  weightCount: number;
  indexStored: number;
  indexRaw: number;
  totalBytes: number;
  /** Byte offset of the data sections in the pack. */
  dataStart: number;
  /** CRC-32 of every data byte. */
  dataCrc: number;
}

export interface PackIndex {
  header: PackHeader;
  /** Pool section: bytes at data offset 0 (0 = no pool). */
  poolStored: number;
  files: PackFileRecord[];
  weights: PackWeightRecord[];
}

export function corrupt(what: string, location: string, expected?: string, found?: string, cause?: unknown): PrunepackError {
  return new PrunepackError('CORRUPT', what, { format: FORMAT, location, expected, found, cause });
}

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
    throw new PrunepackError('UNSUPPORTED', `pack version ${version}`, {
      format: FORMAT, location: 'byte 4', expected: String(PACK_VERSION), found: String(version),
      hint: version < PACK_VERSION ? 'Packs of version 1 are read by prunepack before the version 2 format; re-pack the model' : 'A newer prunepack wrote it',
    });
  }
  const flags = bytes[5]!;
  if (flags & ~(FLAG_EXACT | FLAG_BYTE_IDENTICAL)) throw corrupt('reserved header flags are set', 'byte 5', 'bits 2-7 zero', String(flags));
  const format = FORMAT_BY_CODE.get(bytes[6]!);
  if (format === undefined) throw corrupt('unknown model format code', 'byte 6', '0..3', String(bytes[6]));
  if (bytes[7] !== 0) throw corrupt('reserved header byte is set', 'byte 7', '0', String(bytes[7]));
  const fileCount = view.getUint32(8, true);
  const weightCount = view.getUint32(12, true);
  const indexStored = view.getUint32(16, true);
  const indexRaw = view.getUint32(20, true);
  const totalBytes = u64(view, 24, 'byte 24');
  if (fileCount < 1 || fileCount > MAX_FILES) throw corrupt('file count out of range', 'byte 8', `1..${MAX_FILES}`, String(fileCount));
  const maxIndex = 9 + fileCount * MAX_FILE_RECORD + weightCount * MAX_WEIGHT_RECORD;
  if (indexRaw > maxIndex) throw corrupt('inflated index length does not fit the file and weight counts', 'byte 20', `<= ${maxIndex}`, String(indexRaw));
  const dataStart = PACK_HEADER_BYTES + indexStored + 4;
  if (totalBytes < dataStart) throw corrupt('total length is shorter than header and index', 'byte 24', `>= ${dataStart}`, String(totalBytes));
  const dataCrc = view.getUint32(32, true);
  return { version, flags, format, fileCount, weightCount, indexStored, indexRaw, totalBytes, dataStart, dataCrc };
}

/** Parses and checks the index; `bytes` must hold at least `header.dataStart` bytes. */
export function parseIndex(bytes: Uint8Array, header: PackHeader, maxRestoredBytes = DEFAULT_MAX_RESTORED_BYTES): PackIndex {
  const end = header.dataStart;
  if (bytes.length < end) throw corrupt('pack ends inside its index', `byte ${bytes.length}`, `>= ${end} bytes`, `${bytes.length} bytes`);
  const stored = bytes.subarray(PACK_HEADER_BYTES, PACK_HEADER_BYTES + header.indexStored);
  const storedCrc = new DataView(bytes.buffer, bytes.byteOffset + end - 4, 4).getUint32(0, true);
  const actual = crc32(stored);
  if (storedCrc !== actual) throw corrupt('pack index checksum mismatch', `byte ${end - 4}`, `crc32 ${actual.toString(16)}`, storedCrc.toString(16));
  const r = new ByteReader(inflateExact(stored, header.indexRaw, 'pack index'), 'pack index');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const poolStored = r.varint();
  let data = poolStored;
  const files: PackFileRecord[] = [];
  const names = new Set<string>();
  let restored = 0;
  let firstWeight = 0;
  for (let f = 0; f < header.fileCount; f++) {
    const nameLength = r.varint();
    if (nameLength === 0 || nameLength > MAX_NAME_BYTES) throw r.fail(`file ${f}: name length out of range`, `1..${MAX_NAME_BYTES}`, String(nameLength));
    let name: string;
    try { name = decoder.decode(r.take(nameLength)); } catch (e) { throw corrupt('file name is not UTF-8', `file record ${f}`, undefined, undefined, e); }
    checkPackName(name, `file record ${f}`);
    if (names.has(name)) throw corrupt('file name appears twice', `file record ${f}`, 'unique names', name);
    names.add(name);
    const rec: PackFileRecord = {
      name, size: r.varint(), skeletonCrc: r.u32(), skeletonAt: 0, skeletonStored: r.varint(), skeletonRaw: r.varint(),
      firstWeight, weightCount: r.varint(),
    };
    restored += rec.size;
    if (restored > maxRestoredBytes) {
      throw new PrunepackError('UNSUPPORTED', 'restored files exceed the size limit', { format: FORMAT, location: `file ${name}`, expected: `<= ${maxRestoredBytes} bytes`, found: `>= ${restored} bytes`, hint: 'pass a larger maxBytes if the pack is trusted' });
    }
    if (rec.skeletonRaw > rec.size) throw corrupt('skeleton is larger than its file', `file ${name}`, `<= ${rec.size}`, String(rec.skeletonRaw));
    firstWeight += rec.weightCount;
    if (firstWeight > header.weightCount) throw corrupt('files own more weights than the header counts', `file record ${f}`, `<= ${header.weightCount}`, String(firstWeight));
    files.push(rec);
  }
  if (firstWeight !== header.weightCount) throw corrupt('weights not owned by any file', 'pack index', String(header.weightCount), String(firstWeight));
  // Weights in file order; data sections contiguous: pool, then per file its skeleton and PPSP weights.
  const weights: PackWeightRecord[] = [];
  files.forEach((f, fi) => {
    f.skeletonAt = data;
    data += f.skeletonStored;
    let pos = 0;
    let cut = 0;
    for (let i = 0; i < f.weightCount; i++) {
      const where = `weight ${f.firstWeight + i} of ${f.name}`;
      const offset = pos + r.varint();
      const length = r.varint();
      const kind = r.u8();
      const elementBytes = r.u8();
      const crc = r.u32();
      if (kind !== WEIGHT_KIND_PPSP && kind !== WEIGHT_KIND_POOL) throw corrupt('unknown weight encoding kind', where, `${WEIGHT_KIND_PPSP} or ${WEIGHT_KIND_POOL}`, String(kind));
      if (elementBytes !== 1 && elementBytes !== 2 && elementBytes !== 4 && elementBytes !== 8) throw corrupt('element width out of range', where, '1, 2, 4 or 8', String(elementBytes));
      if (length === 0 || length % elementBytes !== 0) throw corrupt('weight length is not a positive whole number of elements', where, `multiple of ${elementBytes}`, String(length));
      if (offset + length > f.size) throw corrupt('weight range runs past its file', where, `end <= ${f.size}`, `${offset}+${length}`);
      const rec: PackWeightRecord = { file: fi, offset, length, kind, elementBytes, crc, dtypeCode: 0, dataAt: 0, blobLength: 0, patchLength: 0 };
      if (kind === WEIGHT_KIND_PPSP) {
        rec.dtypeCode = r.u8();
        rec.blobLength = r.varint();
        rec.patchLength = r.varint();
        rec.dataAt = data;
        data += rec.blobLength + rec.patchLength;
      }
      weights.push(rec);
      pos = offset + length;
      cut += length;
    }
    if (f.size - cut !== f.skeletonRaw) throw corrupt('skeleton length does not match the file minus its weights', `file ${f.name}`, String(f.size - cut), String(f.skeletonRaw));
  });
  if (r.remaining !== 0) throw r.fail('has trailing bytes', '0', String(r.remaining));
  if (poolStored === 0 && weights.some((w) => w.kind === WEIGHT_KIND_POOL)) throw corrupt('pooled weights but no pool section', 'pack index', 'a pool', '0 bytes');
  if (header.dataStart + data !== header.totalBytes) {
    throw corrupt('total length does not match the sections', 'byte 24', String(header.dataStart + data), String(header.totalBytes));
  }
  return { header, poolStored, files, weights };
}

// ---------------------------------------------------------------------------------------------
// Patches

/** Applies a patch section (see docs/pack-format.md) to the restored range `out`. */
export function applyPatch(stored: Uint8Array, out: Uint8Array, elementBytes: number, where: string): void {
  const elements = out.length / elementBytes;
  // Bound before inflating: a count varint, then at most `elements` positions and element bytes.
  const bound = 8 + elements * (8 + elementBytes);
  const raw = inflateExact(stored, bound, where, undefined, true);
  const r = new ByteReader(raw, where);
  const count = r.varint();
  if (count > elements) throw corrupt('patch has more entries than the weight has elements', where, `<= ${elements}`, String(count));
  const positions = new Float64Array(count);
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const delta = r.varint();
    const p = i === 0 ? delta : prev + delta;
    if ((i > 0 && delta === 0) || p >= elements) throw corrupt('patch position out of order or range', where, `< ${elements}, increasing`, String(p));
    positions[i] = p;
    prev = p;
  }
  if (r.remaining !== count * elementBytes) throw corrupt('patch values have the wrong length', where, String(count * elementBytes), String(r.remaining));
  for (let i = 0; i < count; i++) out.set(r.take(elementBytes), positions[i]! * elementBytes);
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
  /**
   * 'once' (default): every stored data byte is checked once, by the pack's data CRC-32; the
   * per-section checksums (each restored weight, each skeleton, each PPSP blob) are checked only
   * when that fails, to name the damaged weight. 'full': all of them are checked as well (what
   * the writer's self-check does: it tests the encoder, not the bytes).
   */
  verify?: 'once' | 'full';
  /**
   * Another raw DEFLATE decoder for the PPSP streams, skeletons and pool streams (Node's zlib,
   * or streams inflated ahead natively); null falls back to the built-in one.
   */
  inflate?: RawInflate;
}

function checkCrc(bytes: Uint8Array, expected: number, what: string, where: string): void {
  const crc = crc32(bytes);
  if (crc !== expected) throw corrupt(`${what}: checksum mismatch`, where, `crc32 ${expected.toString(16)}`, crc.toString(16));
}

/**
 * Incremental restorer: feed it the pack's bytes as they arrive (`available` = how many leading
 * bytes of `buffer` are valid); it decodes every section that is complete, one weight at a time.
 * The data CRC is checked once all bytes are present (restorePack checks it before decoding).
 */
export class PackRestorer {
  /** The parsed index and header, once their bytes have been fed (read-only outside). */
  index: PackIndex | null = null;
  header: PackHeader | null = null;
  private out: Uint8Array[] = [];
  private poolDone = false;
  private file = 0;
  private weight = -1; // -1: the file's skeleton is next
  private skeleton: Uint8Array | null = null;
  private skeletonPos = 0;
  private filePos = 0;
  /** All sections decoded and checked (read-only outside). */
  done = false;
  /** Every per-section checksum is checked (verify 'full', or finding which section is damaged). */
  private readonly full: boolean;
  /** The running CRC-32 of the data bytes fed so far, up to crcAt (unless the caller checked it). */
  private crc = 0;
  private crcAt = -1;

  constructor(private readonly options: RestoreOptions = {}, private dataCrcChecked = false) {
    this.full = options.verify === 'full';
  }

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
    if (!this.dataCrcChecked && available > h.dataStart) {
      // The data CRC as the bytes arrive (each byte read once, while it is still in cache).
      if (this.crcAt < 0) this.crcAt = h.dataStart;
      const until = Math.min(available, h.totalBytes);
      if (until > this.crcAt) {
        this.crc = crc32(buffer.subarray(this.crcAt, until), this.crc);
        this.crcAt = until;
      }
    }
    if (!this.index) {
      if (available < h.dataStart) return;
      this.index = parseIndex(buffer.subarray(0, h.dataStart), h, this.options.maxBytes ?? DEFAULT_MAX_RESTORED_BYTES);
      for (const f of this.index.files) this.out.push(new Uint8Array(f.size));
    }
    const { files, weights, poolStored } = this.index;
    if (!this.poolDone) {
      if (available < h.dataStart + poolStored) return;
      const pooled = weights.filter((w) => w.kind === WEIGHT_KIND_POOL);
      if (pooled.length > 0) {
        const targets: PoolTarget[] = pooled.map((w) => ({
          out: this.out[w.file]!.subarray(w.offset, w.offset + w.length), width: w.elementBytes, where: `weight at ${files[w.file]!.name} byte ${w.offset}`,
        }));
        decodePool(buffer.subarray(h.dataStart, h.dataStart + poolStored), targets, this.options.inflate);
        if (this.full) pooled.forEach((w, i) => checkCrc(targets[i]!.out, w.crc, targets[i]!.where, targets[i]!.where));
      } else if (poolStored !== 0) {
        throw corrupt('pool section without pooled weights', 'pack index', '0 bytes', `${poolStored} bytes`);
      }
      this.poolDone = true;
    }
    while (this.file < files.length) {
      const f = files[this.file]!;
      const out = this.out[this.file]!;
      if (this.weight === -1) {
        const start = h.dataStart + f.skeletonAt;
        if (available < start + f.skeletonStored) return;
        this.skeleton = inflateExact(buffer.subarray(start, start + f.skeletonStored), f.skeletonRaw, `skeleton of ${f.name}`, this.options.inflate);
        if (this.full) checkCrc(this.skeleton, f.skeletonCrc, `skeleton of ${f.name}`, `file ${f.name}`);
        this.skeletonPos = 0;
        this.filePos = 0;
        this.weight = 0;
      }
      while (this.weight < f.weightCount) {
        const i = f.firstWeight + this.weight;
        const w = weights[i]!;
        const start = h.dataStart + w.dataAt;
        // Nothing moves before the weight's bytes are all present (feed is called again then).
        if (w.kind === WEIGHT_KIND_PPSP && available < start + w.blobLength + w.patchLength) return;
        this.copySkeleton(out, w.offset);
        this.filePos = w.offset + w.length;
        if (w.kind === WEIGHT_KIND_PPSP) {
          const target = out.subarray(w.offset, w.offset + w.length);
          const where = `weight ${i} of ${f.name}`;
          decodePpspInto(buffer.subarray(start, start + w.blobLength), { dtypeCode: w.dtypeCode, shape: null, elements: w.length / w.elementBytes }, target, where, {
            zeroed: true, verified: !this.full, inflate: this.options.inflate,
          });
          if (w.patchLength > 0) {
            const at = start + w.blobLength;
            applyPatch(buffer.subarray(at, at + w.patchLength), target, w.elementBytes, `patch of ${where}`);
          }
          if (this.full) checkCrc(target, w.crc, where, where);
        }
        this.weight++;
      }
      this.copySkeleton(out, f.size);
      if (this.skeletonPos !== f.skeletonRaw) throw corrupt('skeleton length mismatch', `file ${f.name}`, String(f.skeletonRaw), String(this.skeletonPos));
      this.skeleton = null;
      this.file++;
      this.weight = -1;
    }
    if (available !== h.totalBytes) throw corrupt('pack has trailing bytes', `byte ${h.totalBytes}`, `${h.totalBytes} bytes`, `${available} bytes`);
    releaseScratch();
    if (!this.dataCrcChecked && this.crc !== h.dataCrc) {
      // Damaged: find the section (its own checksum names the weight or file), else the whole.
      if (!this.full) restoreFully(buffer.subarray(0, available), this.options);
      throw dataCrcMismatch(h, this.crc);
    }
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

function dataCrcMismatch(h: PackHeader, crc: number): PrunepackError {
  return corrupt('pack data checksum mismatch', 'byte 32', `crc32 ${h.dataCrc.toString(16)}`, crc.toString(16));
}

/**
 * A pack whose data CRC failed, restored with every per-section checksum: throws the error that
 * names the damaged weight, skeleton or pool stream; returns when each section checks out.
 */
function restoreFully(bytes: Uint8Array, options: RestoreOptions): void {
  const r = new PackRestorer({ ...options, verify: 'full' }, true);
  r.feed(bytes, bytes.length);
}

/**
 * The checks of a complete pack before decoding: header, length, data CRC (on a mismatch, the
 * error of the damaged section). Returns whether the data CRC was checked (false: too short to
 * have a header, which the restorer reports).
 */
export function checkWholePack(bytes: Uint8Array, options: RestoreOptions = {}): boolean {
  if (!(bytes instanceof Uint8Array)) throw new PrunepackError('INVALID_ARGUMENT', 'restorePack needs a Uint8Array', { found: typeof bytes });
  let checked = false;
  if (bytes.length >= PACK_HEADER_BYTES) {
    const h = parseHeader(bytes);
    if (bytes.length < h.totalBytes) throw corrupt('pack is truncated', `byte ${bytes.length}`, `${h.totalBytes} bytes`, `${bytes.length} bytes`);
    if (bytes.length > h.totalBytes) throw corrupt('pack has trailing bytes', `byte ${h.totalBytes}`, `${h.totalBytes} bytes`, `${bytes.length} bytes`);
    const crc = crc32(bytes.subarray(h.dataStart, h.totalBytes));
    if (crc !== h.dataCrc) {
      if (options.verify !== 'full') restoreFully(bytes, options);
      throw dataCrcMismatch(h, crc);
    }
    checked = true;
  }
  return checked;
}

/** Restores every file of a complete pack held in memory (data CRC checked before decoding). */
export function restorePack(bytes: Uint8Array, options: RestoreOptions = {}): RestoredPack {
  const r = new PackRestorer(options, checkWholePack(bytes, options));
  r.feed(bytes, bytes.length);
  return r.finish(bytes.length);
}

/** Reads the header and index only (for `inspect`-like reports). */
export function readPackIndex(bytes: Uint8Array): PackIndex {
  const h = parseHeader(bytes);
  return parseIndex(bytes, h);
}
