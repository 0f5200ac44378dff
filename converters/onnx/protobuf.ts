/**
 * A bounded, zero-copy protobuf wire reader and a chunked writer.
 *
 * Reading: every varint is capped at 10 bytes and every length is checked against the end of
 * the enclosing message (not the end of the file), so a field can never reach into its
 * neighbours. Length-delimited payloads are returned as offsets into the input; callers take
 * `subarray` views, never copies. Groups (wire types 3 and 4, deprecated since proto2 and
 * never written by ONNX tools) are refused as corrupt.
 *
 * Writing: a `ProtoWriter` collects small scalar bytes in a scratch buffer and appends large
 * byte ranges (tensor data, untouched original fields) as views, so re-emitting a model does
 * not copy its weights until the final concatenation.
 */
import { PrunepackError } from '../../src/errors.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** protobuf's hard limit for one serialized message: 2^31 - 1 bytes. */
export const MAX_PROTOBUF_BYTES = 2 ** 31 - 1;

const TRUNCATED = -1;
const TOO_LONG = -2;

/** Scratch results of the last `decodeVarint` (low and high 32 bits, unsigned). */
let lo = 0;
let hi = 0;

/** Decodes one varint at `pos` (at most 10 bytes, not past `end`); returns the next position. */
function decodeVarint(bytes: Uint8Array, pos: number, end: number): number {
  let b: number;
  lo = 0;
  hi = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) return TRUNCATED;
    b = bytes[pos++]!;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) { lo >>>= 0; return pos; }
  }
  if (pos >= end) return TRUNCATED;
  b = bytes[pos++]!;
  lo = (lo | ((b & 0x0f) << 28)) >>> 0;
  hi = (b & 0x7f) >> 4;
  if (b < 0x80) return pos;
  for (let shift = 3; shift < 32; shift += 7) {
    if (pos >= end) return TRUNCATED;
    b = bytes[pos++]!;
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) { hi >>>= 0; return pos; }
  }
  return TOO_LONG;
}

export function protoError(code: 'CORRUPT' | 'TRUNCATED', what: string, offset: number, where: string, expected?: string, found?: string): PrunepackError {
  return new PrunepackError(code, what, {
    format: 'onnx', location: `${where}, byte ${offset}`, expected, found,
    hint: code === 'TRUNCATED' ? 'The file is cut short; download or copy it again' : 'The file is damaged or not an ONNX model',
  });
}

/**
 * Walks the fields of one message `[start, end)` of `bytes`. After `next()` returns true,
 * `field`, `wire` and `fieldStart` describe the current field; read its value with exactly one
 * of the value methods (or `skip()`), which leave `pos` at the next field.
 */
export class ProtoReader {
  pos: number;
  field = 0;
  wire = 0;
  fieldStart = 0;

  constructor(readonly bytes: Uint8Array, readonly start: number, readonly end: number, public where: string) {
    this.pos = start;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    this.fieldStart = this.pos;
    const key = this.rawVarint('field key');
    if (hi !== 0 || key > 0xffffffff) throw protoError('CORRUPT', 'field key does not fit 32 bits', this.fieldStart, this.where);
    this.field = key >>> 3;
    this.wire = key & 7;
    if (this.field === 0) throw protoError('CORRUPT', 'field number 0 is invalid', this.fieldStart, this.where, 'field number >= 1', '0');
    if (this.wire !== WIRE_VARINT && this.wire !== WIRE_I64 && this.wire !== WIRE_LEN && this.wire !== WIRE_I32) {
      throw protoError('CORRUPT', `unsupported wire type ${this.wire} (groups are not used by ONNX)`, this.fieldStart, this.where, 'wire type 0, 1, 2 or 5', String(this.wire));
    }
    return true;
  }

  /** Fails unless the current field has wire type `wire` (name is the field name for the message). */
  expectWire(wire: number, name: string): void {
    if (this.wire !== wire) {
      throw protoError('CORRUPT', `field ${name} (${this.field}) has the wrong wire type`, this.fieldStart, this.where, `wire type ${wire}`, String(this.wire));
    }
  }

  private rawVarint(what: string): number {
    const at = this.pos;
    const next = decodeVarint(this.bytes, at, this.end);
    if (next === TRUNCATED) {
      throw protoError(this.end === this.bytes.length ? 'TRUNCATED' : 'CORRUPT', `${what} runs past the end of the message`, at, this.where, `end <= byte ${this.end}`, 'more');
    }
    if (next === TOO_LONG) throw protoError('CORRUPT', `${what} is longer than 10 bytes`, at, this.where, 'a varint of at most 10 bytes', 'more');
    this.pos = next;
    return hi * 4294967296 + lo;
  }

  /** A non-negative varint that must be a safe integer (lengths, counts, dims). */
  uint(what = 'varint'): number {
    const at = this.pos;
    const value = this.rawVarint(what);
    if (hi >= 0x200000) throw protoError('CORRUPT', `${what} is larger than 2^53`, at, this.where, `<= ${Number.MAX_SAFE_INTEGER}`, `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
    return value;
  }

  /** A signed int64 varint as a number; fails when it is not a safe integer. */
  int64(what = 'int64'): number {
    const at = this.pos;
    this.rawVarint(what);
    const value = (hi | 0) * 4294967296 + lo;
    if (!Number.isSafeInteger(value)) throw protoError('CORRUPT', `${what} is outside the safe integer range`, at, this.where, `|value| <= ${Number.MAX_SAFE_INTEGER}`, 'larger');
    return value;
  }

  /** An int32 / enum varint (protobuf truncates to the low 32 bits). */
  int32(what = 'int32'): number {
    this.rawVarint(what);
    return lo | 0;
  }

  /** The payload range of a length-delimited field, checked against this message's end. */
  len(what = 'length-delimited field'): [number, number] {
    const at = this.pos;
    const length = this.uint(`length of ${what}`);
    const start = this.pos;
    if (length > this.end - start) {
      throw protoError(this.end === this.bytes.length ? 'TRUNCATED' : 'CORRUPT', `${what} is longer than the bytes left in its message`, at, this.where,
        `length <= ${this.end - start}`, String(length));
    }
    this.pos = start + length;
    return [start, start + length];
  }

  string(what = 'string'): string {
    const [s, e] = this.len(what);
    return decodeUtf8(this.bytes.subarray(s, e));
  }

  float32(): number {
    this.need(4);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  private need(n: number): void {
    if (this.end - this.pos < n) {
      throw protoError(this.end === this.bytes.length ? 'TRUNCATED' : 'CORRUPT', `a ${n}-byte fixed field runs past the end of the message`, this.pos, this.where, `end <= byte ${this.end}`, String(this.pos + n));
    }
  }

  skip(): void {
    switch (this.wire) {
      case WIRE_VARINT: this.rawVarint('varint'); return;
      case WIRE_I64: this.need(8); this.pos += 8; return;
      case WIRE_I32: this.need(4); this.pos += 4; return;
      default: this.len(`field ${this.field}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8');
export function decodeUtf8(bytes: Uint8Array): string {
  return bytes.length === 0 ? '' : utf8.decode(bytes);
}
const utf8Encoder = new TextEncoder();
export function encodeUtf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/**
 * Counts the varints in `[start, end)` (a packed repeated field) without decoding values.
 * A truncated last varint is corrupt.
 */
export function countPackedVarints(bytes: Uint8Array, start: number, end: number, where: string): number {
  let count = 0;
  let continuation = false;
  let run = 0;
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b & 0x80) {
      if (++run >= 10) throw protoError('CORRUPT', 'a packed varint is longer than 10 bytes', i, where);
      continuation = true;
    } else {
      count++;
      run = 0;
      continuation = false;
    }
  }
  if (continuation) throw protoError('CORRUPT', 'a packed varint list ends inside a varint', end, where);
  return count;
}

/**
 * Decodes the varints of `[start, end)` into `out` as (lo, hi) pairs of 32-bit words, starting
 * at element `index` (out[2*i] = lo, out[2*i+1] = hi). Returns the next element index.
 */
export function decodePackedVarintWords(bytes: Uint8Array, start: number, end: number, out: Uint32Array, index: number, where: string): number {
  let pos = start;
  while (pos < end) {
    const next = decodeVarint(bytes, pos, end);
    if (next < 0) throw protoError('CORRUPT', 'bad varint in a packed list', pos, where);
    out[2 * index] = lo;
    out[2 * index + 1] = hi;
    index++;
    pos = next;
  }
  return index;
}

/** Decodes one varint at `pos` as (lo, hi) words into out[2*index..]; returns the next position. */
export function decodeVarintWords(bytes: Uint8Array, pos: number, end: number, out: Uint32Array, index: number, where: string): number {
  const next = decodeVarint(bytes, pos, end);
  if (next < 0) throw protoError('CORRUPT', 'bad varint', pos, where);
  out[2 * index] = lo;
  out[2 * index + 1] = hi;
  return next;
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** Output as a list of views plus their total length. */
export interface Chunks {
  parts: Uint8Array[];
  length: number;
}

/** Appends below this size are copied into the scratch buffer; larger ones are kept as views. */
const VIEW_THRESHOLD = 256;

export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private scratch = new Uint8Array(512);
  private used = 0;
  private flushed = 0;

  get length(): number {
    return this.flushed + this.used;
  }

  private room(n: number): void {
    if (this.used + n <= this.scratch.length) return;
    this.flush();
    if (n > this.scratch.length) this.scratch = new Uint8Array(Math.max(n, this.scratch.length * 2));
  }

  private flush(): void {
    if (this.used === 0) return;
    this.parts.push(this.scratch.subarray(0, this.used));
    this.flushed += this.used;
    this.scratch = new Uint8Array(this.scratch.length);
    this.used = 0;
  }

  /** A non-negative safe integer as a varint. */
  varint(value: number): this {
    if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`varint out of range: ${value}`);
    this.room(10);
    const s = this.scratch;
    while (value >= 0x80) {
      s[this.used++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    s[this.used++] = value;
    return this;
  }

  /** A signed int64 (negative values take 10 bytes, two's complement). */
  int64(value: number): this {
    if (value >= 0) return this.varint(value);
    if (!Number.isSafeInteger(value)) throw new RangeError(`int64 out of range: ${value}`);
    let v = BigInt.asUintN(64, BigInt(value));
    this.room(10);
    for (let i = 0; i < 9; i++) {
      this.scratch[this.used++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.scratch[this.used++] = Number(v);
    return this;
  }

  key(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  /** Appends bytes as they are (a view when large). */
  raw(bytes: Uint8Array): this {
    if (bytes.length >= VIEW_THRESHOLD) {
      this.flush();
      this.parts.push(bytes);
      this.flushed += bytes.length;
    } else if (bytes.length) {
      this.room(bytes.length);
      this.scratch.set(bytes, this.used);
      this.used += bytes.length;
    }
    return this;
  }

  appendChunks(chunks: Chunks): this {
    for (const part of chunks.parts) this.raw(part);
    return this;
  }

  uintField(field: number, value: number): this {
    return this.key(field, WIRE_VARINT).varint(value);
  }

  int64Field(field: number, value: number): this {
    return this.key(field, WIRE_VARINT).int64(value);
  }

  bytesField(field: number, bytes: Uint8Array): this {
    return this.key(field, WIRE_LEN).varint(bytes.length).raw(bytes);
  }

  stringField(field: number, value: string): this {
    return this.bytesField(field, encodeUtf8(value));
  }

  messageField(field: number, message: ProtoWriter | Chunks): this {
    const chunks = message instanceof ProtoWriter ? message.finish() : message;
    this.key(field, WIRE_LEN).varint(chunks.length);
    return this.appendChunks(chunks);
  }

  /** Length prefix + body (the key already written). */
  lengthPrefixed(message: ProtoWriter | Chunks): this {
    const chunks = message instanceof ProtoWriter ? message.finish() : message;
    this.varint(chunks.length);
    return this.appendChunks(chunks);
  }

  /** A packed repeated int64 field of non-negative safe integers. */
  packedUints(field: number, values: ArrayLike<number>): this {
    const body = encodeVarints(values);
    return this.bytesField(field, body);
  }

  finish(): Chunks {
    this.flush();
    return { parts: this.parts.slice(), length: this.flushed };
  }
}

/** Varint size of a non-negative safe integer. */
export function varintSize(value: number): number {
  let n = 1;
  while (value >= 0x80) { value = Math.floor(value / 0x80); n++; }
  return n;
}

/** Packed varints of non-negative safe integers (one pass for the size, one to write). */
export function encodeVarints(values: ArrayLike<number>): Uint8Array {
  let size = 0;
  for (let i = 0; i < values.length; i++) size += varintSize(values[i]!);
  const out = new Uint8Array(size);
  let p = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i]!;
    while (v >= 0x80) { out[p++] = (v % 0x80) | 0x80; v = Math.floor(v / 0x80); }
    out[p++] = v;
  }
  return out;
}

export function concatChunks(chunks: Chunks): Uint8Array {
  if (chunks.length > MAX_PROTOBUF_BYTES) {
    throw new PrunepackError('UNSUPPORTED', 'the ONNX model would be 2 GiB or larger, which protobuf cannot hold', {
      format: 'onnx', expected: `< ${MAX_PROTOBUF_BYTES + 1} bytes`, found: `${chunks.length} bytes`,
      hint: 'Write the weights as external data (writeOnnxFiles with externalData, or --external-data)',
    });
  }
  if (chunks.parts.length === 1 && chunks.parts[0]!.length === chunks.length) return chunks.parts[0]!;
  const out = new Uint8Array(chunks.length);
  let p = 0;
  for (const part of chunks.parts) { out.set(part, p); p += part.length; }
  return out;
}
