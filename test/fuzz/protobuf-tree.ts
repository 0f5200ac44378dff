/**
 * A schema-less protobuf tree for structure-aware mutations: length-delimited fields that parse
 * as messages become subtrees, and edits re-encode only the lengths of the edited field's
 * ancestors, so a changed dim or a nested copy lands inside a message that is otherwise valid.
 */

export interface PbField {
  num: number;
  wire: number;
  /** Encoded field: [start, end) including key. */
  start: number;
  end: number;
  /** After the key (where a varint value or a length prefix starts). */
  keyEnd: number;
  /** Length-delimited payload (wire 2 only). */
  payloadStart: number;
  /** Varint value (wire 0), as an unsigned 64-bit integer. */
  value?: bigint;
  /** Sub-fields when the payload parses as a message. */
  children?: PbField[];
  parent?: PbField;
}

export interface PbTree {
  bytes: Uint8Array;
  fields: PbField[];
  /** Every field, depth first. */
  all: PbField[];
}

const MAX_DEPTH = 24;

function readVarint(bytes: Uint8Array, pos: number, end: number): [bigint, number] | null {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) return null;
    const b = bytes[pos++]!;
    value |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) return [value, pos];
  }
  return null;
}

function parseMessage(bytes: Uint8Array, start: number, end: number, depth: number, parent: PbField | undefined, all: PbField[]): PbField[] | null {
  const fields: PbField[] = [];
  const mark = all.length;
  let pos = start;
  while (pos < end) {
    const key = readVarint(bytes, pos, end);
    if (!key || key[0] > 0xffffffffn) { all.length = mark; return null; }
    const num = Number(key[0] >> 3n);
    const wire = Number(key[0] & 7n);
    const keyEnd = key[1];
    if (num === 0) { all.length = mark; return null; }
    const field: PbField = { num, wire, start: pos, end: 0, keyEnd, payloadStart: 0, parent };
    if (wire === 0) {
      const v = readVarint(bytes, keyEnd, end);
      if (!v) { all.length = mark; return null; }
      field.value = v[0];
      pos = v[1];
    } else if (wire === 1 || wire === 5) {
      pos = keyEnd + (wire === 1 ? 8 : 4);
      if (pos > end) { all.length = mark; return null; }
    } else if (wire === 2) {
      const l = readVarint(bytes, keyEnd, end);
      if (!l || l[0] > BigInt(end - l[1])) { all.length = mark; return null; }
      field.payloadStart = l[1];
      pos = l[1] + Number(l[0]);
    } else {
      all.length = mark;
      return null;
    }
    field.end = pos;
    all.push(field);
    if (wire === 2 && depth < MAX_DEPTH && field.end > field.payloadStart) {
      field.children = parseMessage(bytes, field.payloadStart, field.end, depth + 1, field, all) ?? undefined;
    }
    fields.push(field);
  }
  return fields;
}

export function parseTree(bytes: Uint8Array): PbTree | null {
  const all: PbField[] = [];
  const fields = parseMessage(bytes, 0, bytes.length, 0, undefined, all);
  return fields ? { bytes, fields, all } : null;
}

export function encodeVarint(value: bigint | number): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function encodeKey(num: number, wire: number): Uint8Array {
  return encodeVarint((BigInt(num) << 3n) | BigInt(wire));
}

export function encodeLenField(num: number, payload: Uint8Array): Uint8Array {
  return concat([encodeKey(num, 2), encodeVarint(payload.length), payload]);
}

export function encodeVarintField(num: number, value: bigint | number): Uint8Array {
  return concat([encodeKey(num, 0), encodeVarint(value)]);
}

/** The original encoding of a field. */
export function rawField(tree: PbTree, f: PbField): Uint8Array {
  return tree.bytes.subarray(f.start, f.end);
}

export function payload(tree: PbTree, f: PbField): Uint8Array {
  return tree.bytes.subarray(f.payloadStart, f.end);
}

/**
 * Re-encodes the tree with `edits` (field -> its new full encoding; empty removes it). Ancestors
 * of edited fields get new length prefixes; everything else is copied as it was.
 */
export function serialize(tree: PbTree, edits: ReadonlyMap<PbField, Uint8Array>): Uint8Array {
  const dirty = new Set<PbField>();
  for (const f of edits.keys()) for (let p = f.parent; p && !dirty.has(p); p = p.parent) dirty.add(p);
  const parts: Uint8Array[] = [];
  const emit = (fields: PbField[]): number => {
    let n = 0;
    for (const f of fields) {
      const edit = edits.get(f);
      if (edit) { parts.push(edit); n += edit.length; continue; }
      if (dirty.has(f) && f.children) {
        const key = tree.bytes.subarray(f.start, f.keyEnd);
        parts.push(key);
        const lengthSlot = parts.length;
        parts.push(new Uint8Array(0));
        const inner = emit(f.children);
        const prefix = encodeVarint(inner);
        parts[lengthSlot] = prefix;
        n += key.length + prefix.length + inner;
        continue;
      }
      const raw = tree.bytes.subarray(f.start, f.end);
      parts.push(raw);
      n += raw.length;
    }
    return n;
  };
  emit(tree.fields);
  return concat(parts);
}

/** Fields of `f`'s message (or the top level) with number `num`. */
export function childrenNumbered(f: PbField | undefined, tree: PbTree, num: number): PbField[] {
  return (f ? f.children ?? [] : tree.fields).filter((c) => c.num === num);
}
