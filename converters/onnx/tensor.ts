/**
 * TensorProto: parse (metadata plus where the data is), decode the data to dense
 * little-endian bytes, and encode new or rewritten tensors.
 *
 * Dense bytes follow raw_data's layout for every type: fixed-width little-endian elements,
 * sub-byte types packed low bits first, bool one byte per element. String tensors (which
 * cannot use raw_data) are exposed as uint32-LE length + UTF-8 bytes per element.
 */
import { TensorProtoField as F, StringStringEntryProtoField, TensorProto_DataLocation } from '../../schemas/generated/onnx/onnx-descriptor.js';
import { PrunepackError } from '../../src/errors.js';
import { byteLengthOf, elementCount, type DType } from '../../src/model/dtype.js';
import { DATA_FIELDS, TYPED_FIELD_NAMES, int32EntryWidth, onnxDType, typedEntryCount, typedFieldOf } from './dtypes.js';
import { parseExternalData, readExternalData, resolveExternalData, type ExternalDataRef, type ResolvedExternalData } from './external-data.js';
import {
  ProtoReader, ProtoWriter, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, countPackedVarints, decodeVarintWords,
  type Chunks,
} from './protobuf.js';

export type TensorStorage = 'raw' | 'typed' | 'external' | 'empty';

export interface TensorInfo {
  /** The TensorProto body `[start, end)` in the model bytes. */
  start: number;
  end: number;
  where: string;
  name: string;
  dataType: number;
  dtype: DType;
  dims: number[];
  count: number;
  storage: TensorStorage;
  /** Field number holding typed data (storage 'typed'). */
  typedField?: number;
  /** raw_data payload (storage 'raw'), or the single packed payload of float_data/double_data. */
  payload?: [number, number];
  external?: ExternalDataRef;
  resolved?: ResolvedExternalData;
  /** Byte size of the data as stored in the protobuf (0 for external). */
  storedBytes: number;
}

export interface TensorParseOptions {
  /** Model file path, for external data. */
  modelPath?: string;
  /** Check external data files now (weights); false leaves them unresolved (non-weight tensors). */
  resolveExternal: boolean;
  /** Collects the real path of every external data file resolved. */
  externalFiles?: Set<string>;
}

function corrupt(what: string, where: string, expected?: string, found?: string): PrunepackError {
  return new PrunepackError('CORRUPT', what, { format: 'onnx', location: where, expected, found });
}

/** Parses a TensorProto body and checks that its data matches its dims and type. */
export function parseTensor(bytes: Uint8Array, start: number, end: number, where: string, options: TensorParseOptions): TensorInfo {
  const r = new ProtoReader(bytes, start, end, where);
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let raw: [number, number] | undefined;
  let location = TensorProto_DataLocation.DEFAULT as number;
  let hasSegment = false;
  const externalEntries: { key: string; value: string }[] = [];
  let typedField = 0;
  let typedEntries = 0;
  let typedOccurrences = 0;
  let packedSingle: [number, number] | undefined;
  let typedBytes = 0;
  while (r.next()) {
    switch (r.field) {
      case F.dims:
        if (r.wire === WIRE_LEN) {
          const [s, e] = r.len('dims');
          const sub = new ProtoReader(bytes, s, e, where);
          while (sub.pos < e) dims.push(sub.int64('dim'));
        } else {
          r.expectWire(WIRE_VARINT, 'dims');
          dims.push(r.int64('dim'));
        }
        break;
      case F.data_type: r.expectWire(WIRE_VARINT, 'data_type'); dataType = r.int32('data_type'); break;
      case F.name: r.expectWire(WIRE_LEN, 'name'); name = r.string('name'); break;
      case F.raw_data: r.expectWire(WIRE_LEN, 'raw_data'); raw = r.len('raw_data'); break;
      case F.segment: r.expectWire(WIRE_LEN, 'segment'); r.skip(); hasSegment = true; break;
      case F.data_location: r.expectWire(WIRE_VARINT, 'data_location'); location = r.int32('data_location'); break;
      case F.external_data: {
        r.expectWire(WIRE_LEN, 'external_data');
        const [s, e] = r.len('external_data');
        externalEntries.push(parseStringEntry(bytes, s, e, where));
        break;
      }
      case F.float_data: case F.int32_data: case F.string_data: case F.int64_data: case F.double_data: case F.uint64_data: {
        if (typedField && typedField !== r.field) {
          throw corrupt('tensor stores data in two typed fields', where, 'one of float_data, int32_data, ...', `${TYPED_FIELD_NAMES[typedField]} and ${TYPED_FIELD_NAMES[r.field]}`);
        }
        typedField = r.field;
        typedOccurrences++;
        const fieldStart = r.fieldStart;
        const fixed = r.field === F.float_data ? 4 : r.field === F.double_data ? 8 : 0;
        if (r.field === F.string_data) {
          r.expectWire(WIRE_LEN, 'string_data');
          r.skip();
          typedEntries++;
        } else if (r.wire === WIRE_LEN) {
          const [s, e] = r.len(TYPED_FIELD_NAMES[r.field]);
          if (fixed) {
            if ((e - s) % fixed !== 0) throw corrupt(`packed ${TYPED_FIELD_NAMES[r.field]} is not a whole number of elements`, where, `a multiple of ${fixed} bytes`, `${e - s} bytes`);
            typedEntries += (e - s) / fixed;
            packedSingle = [s, e];
          } else {
            typedEntries += countPackedVarints(bytes, s, e, where);
          }
        } else {
          const wire = fixed === 4 ? WIRE_I32 : fixed === 8 ? WIRE_I64 : WIRE_VARINT;
          r.expectWire(wire, TYPED_FIELD_NAMES[r.field]!);
          r.skip();
          typedEntries++;
        }
        typedBytes += r.pos - fieldStart;
        break;
      }
      default: r.skip();
    }
  }
  const dtype = onnxDType(dataType, where);
  for (const d of dims) if (d < 0) throw corrupt('tensor has a negative dimension', where, 'dims >= 0', `[${dims.join(', ')}]`);
  let count: number;
  try {
    count = elementCount(dims);
  } catch {
    throw corrupt('tensor shape has more than 2^53 elements', where, 'a product of dims <= 2^53', `[${dims.join(', ')}]`);
  }
  if (hasSegment) {
    throw new PrunepackError('UNSUPPORTED', 'segmented tensors (TensorProto.segment) are not supported', { format: 'onnx', location: where, hint: 'Re-export the model without tensor segments' });
  }
  const base = { start, end, where, name, dataType, dtype, dims, count };
  if (location === TensorProto_DataLocation.EXTERNAL) {
    const external = parseExternalData(externalEntries, where);
    const expected = byteLengthOf(dtype, count);
    if (dtype === 'string') throw corrupt('a string tensor cannot use external data', where, 'string_data', 'external data');
    if (external.length !== undefined && external.length !== expected) {
      throw corrupt('external data length does not match the tensor shape', where, `${expected} bytes for ${dtype}[${dims.join(',')}]`, `${external.length} bytes`);
    }
    const info: TensorInfo = { ...base, storage: 'external', external, storedBytes: 0 };
    if (options.resolveExternal) {
      info.resolved = resolveExternalData(external, options.modelPath, where);
      options.externalFiles?.add(info.resolved.file);
      if (info.resolved.length !== expected) {
        throw corrupt('external data length does not match the tensor shape', where, `${expected} bytes for ${dtype}[${dims.join(',')}]`, `${info.resolved.length} bytes (to the end of ${external.location})`);
      }
    }
    return info;
  }
  if (location !== TensorProto_DataLocation.DEFAULT) throw corrupt('unknown data_location', where, '0 (DEFAULT) or 1 (EXTERNAL)', String(location));
  if (raw) {
    if (dtype === 'string') throw corrupt('a string tensor cannot use raw_data', where, 'string_data', 'raw_data');
    const expected = byteLengthOf(dtype, count);
    if (raw[1] - raw[0] !== expected) {
      throw corrupt('raw_data size does not match the tensor shape', where, `${expected} bytes for ${dtype}[${dims.join(',')}]`, `${raw[1] - raw[0]} bytes`);
    }
    return { ...base, storage: 'raw', payload: raw, storedBytes: expected };
  }
  if (typedField) {
    const wanted = typedFieldOf(dtype);
    if (typedField !== wanted) throw corrupt(`${TYPED_FIELD_NAMES[typedField]} cannot hold ${dtype} elements`, where, TYPED_FIELD_NAMES[wanted], TYPED_FIELD_NAMES[typedField]);
    const expected = typedEntryCount(dtype, count);
    if (typedEntries !== expected) {
      throw corrupt(`${TYPED_FIELD_NAMES[typedField]} has the wrong number of entries`, where, `${expected} for ${dtype}[${dims.join(',')}]`, String(typedEntries));
    }
    return {
      ...base, storage: 'typed', typedField, storedBytes: typedBytes,
      ...(packedSingle && typedOccurrences === 1 ? { payload: packedSingle } : {}),
    };
  }
  if (count !== 0) throw corrupt('tensor has no data', where, `${count} elements in raw_data, a typed field or external data`, 'none');
  return { ...base, storage: 'empty', storedBytes: 0 };
}

export function parseStringEntry(bytes: Uint8Array, start: number, end: number, where: string): { key: string; value: string } {
  const r = new ProtoReader(bytes, start, end, where);
  let key = '';
  let value = '';
  while (r.next()) {
    if (r.field === StringStringEntryProtoField.key) { r.expectWire(WIRE_LEN, 'key'); key = r.string('key'); }
    else if (r.field === StringStringEntryProtoField.value) { r.expectWire(WIRE_LEN, 'value'); value = r.string('value'); }
    else r.skip();
  }
  return { key, value };
}

/** Dense little-endian bytes of a tensor: a view for raw_data and single packed float/double lists. */
export function tensorDenseBytes(bytes: Uint8Array, info: TensorInfo): Uint8Array {
  switch (info.storage) {
    case 'raw': return bytes.subarray(info.payload![0], info.payload![1]);
    case 'empty': return new Uint8Array(0);
    case 'external': {
      const resolved = info.resolved ?? resolveExternalData(info.external!, undefined, info.where);
      return readExternalData(resolved, info.where);
    }
    default:
      if (info.payload) return bytes.subarray(info.payload[0], info.payload[1]);
      return decodeTypedData(bytes, info);
  }
}

function decodeTypedData(bytes: Uint8Array, info: TensorInfo): Uint8Array {
  const { dtype, where } = info;
  const field = info.typedField!;
  if (field === F.string_data) return decodeStrings(bytes, info);
  const out = new Uint8Array(byteLengthOf(dtype, info.count));
  const view = new DataView(out.buffer);
  const words = new Uint32Array(2);
  const width = field === F.int32_data ? int32EntryWidth(dtype) : field === F.uint64_data && dtype === 'uint32' ? 4 : field === F.float_data ? 4 : 8;
  let p = 0;
  const r = new ProtoReader(bytes, info.start, info.end, where);
  while (r.next()) {
    if (r.field !== field) { r.skip(); continue; }
    if (field === F.float_data || field === F.double_data) {
      if (r.wire === WIRE_LEN) {
        const [s, e] = r.len();
        out.set(bytes.subarray(s, e), p);
        p += e - s;
      } else {
        const s = r.pos;
        r.skip();
        out.set(bytes.subarray(s, r.pos), p);
        p += r.pos - s;
      }
      continue;
    }
    let s: number;
    let e: number;
    if (r.wire === WIRE_LEN) [s, e] = r.len();
    else { s = r.pos; r.skip(); e = r.pos; }
    let pos = s;
    while (pos < e) {
      pos = decodeVarintWords(bytes, pos, e, words, 0, where);
      if (width === 1) out[p] = words[0]! & 0xff;
      else if (width === 2) view.setUint16(p, words[0]! & 0xffff, true);
      else if (width === 4) view.setUint32(p, words[0]!, true);
      else { view.setUint32(p, words[0]!, true); view.setUint32(p + 4, words[1]!, true); }
      p += width;
    }
  }
  if (p !== out.length) throw corrupt('typed data does not fill the tensor', where, `${out.length} bytes`, `${p} bytes`);
  return out;
}

function decodeStrings(bytes: Uint8Array, info: TensorInfo): Uint8Array {
  const ranges: number[] = [];
  let total = 0;
  const r = new ProtoReader(bytes, info.start, info.end, info.where);
  while (r.next()) {
    if (r.field !== F.string_data) { r.skip(); continue; }
    const [s, e] = r.len('string_data');
    ranges.push(s, e);
    total += 4 + e - s;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let p = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    const s = ranges[i]!;
    const e = ranges[i + 1]!;
    view.setUint32(p, e - s, true);
    out.set(bytes.subarray(s, e), p + 4);
    p += 4 + e - s;
  }
  return out;
}

/** Splits prunepack's string layout (uint32-LE length + bytes, per element) back into elements. */
export function splitStrings(dense: Uint8Array, count: number, where: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(dense.buffer, dense.byteOffset, dense.byteLength);
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 4 > dense.length) throw corrupt('string tensor bytes end early', where, `${count} elements`, `${i}`);
    const n = view.getUint32(p, true);
    if (p + 4 + n > dense.length) throw corrupt('string tensor element runs past the end', where, `<= ${dense.length - p - 4} bytes`, String(n));
    out.push(dense.subarray(p + 4, p + 4 + n));
    p += 4 + n;
  }
  if (p !== dense.length) throw corrupt('string tensor bytes have trailing data', where, `${p} bytes`, `${dense.length} bytes`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

export interface ExternalPlacement {
  location: string;
  offset: number;
  length: number;
}

/** New data for a tensor: dense bytes stored as raw_data (string_data for strings), or a pointer into an external file. */
export type TensorData =
  | { kind: 'dense'; dtype: DType; count: number; bytes: Uint8Array }
  | { kind: 'external'; placement: ExternalPlacement }
  | { kind: 'int64'; values: ArrayLike<number> };

function writeData(w: ProtoWriter, data: TensorData, where: string): void {
  if (data.kind === 'external') {
    for (const [key, value] of [['location', data.placement.location], ['offset', String(data.placement.offset)], ['length', String(data.placement.length)]] as const) {
      const entry = new ProtoWriter().stringField(StringStringEntryProtoField.key, key).stringField(StringStringEntryProtoField.value, value);
      w.messageField(F.external_data, entry);
    }
    w.uintField(F.data_location, TensorProto_DataLocation.EXTERNAL);
  } else if (data.kind === 'int64') {
    if (data.values.length) w.packedUints(F.int64_data, data.values);
  } else if (data.dtype === 'string') {
    for (const s of splitStrings(data.bytes, data.count, where)) w.bytesField(F.string_data, s);
  } else {
    w.bytesField(F.raw_data, data.bytes);
  }
}

/** Encodes a new TensorProto (fields in declaration order, as onnx's own writers do). */
export function encodeTensor(spec: { name?: string; dims: readonly number[]; dataType: number; data: TensorData }): Chunks {
  const w = new ProtoWriter();
  for (const d of spec.dims) w.int64Field(F.dims, d);
  w.uintField(F.data_type, spec.dataType);
  if (spec.name) w.stringField(F.name, spec.name);
  writeData(w, spec.data, spec.name ?? 'tensor');
  return w.finish();
}

/**
 * Re-encodes an existing TensorProto with new data: every non-data field is copied in its
 * original order (name, dims, doc_string, metadata_props, unknown fields); the new data goes
 * where the first data field was. `dims` replaces the dims when given.
 */
export function rewriteTensor(bytes: Uint8Array, info: { start: number; end: number; where: string }, data: TensorData, dims?: readonly number[]): Chunks {
  const w = new ProtoWriter();
  const r = new ProtoReader(bytes, info.start, info.end, info.where);
  let placed = false;
  let dimsWritten = false;
  while (r.next()) {
    const fieldStart = r.fieldStart;
    r.skip();
    if (DATA_FIELDS.has(r.field)) {
      if (!placed) { writeData(w, data, info.where); placed = true; }
      continue;
    }
    if (dims && r.field === F.dims) {
      if (!dimsWritten) { for (const d of dims) w.int64Field(F.dims, d); dimsWritten = true; }
      continue;
    }
    w.raw(bytes.subarray(fieldStart, r.pos));
  }
  if (dims && !dimsWritten) for (const d of dims) w.int64Field(F.dims, d);
  if (!placed) writeData(w, data, info.where);
  return w.finish();
}
