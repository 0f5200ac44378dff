/**
 * Lossless re-emission: the output is the input's bytes with only the edited fields replaced.
 * An edit targets one field by its start offset (replace it, delete it, insert fields before
 * it); every message that contains an edit is re-emitted field by field with a new length
 * prefix, everything else is copied as one view per untouched run of fields. With no edits the
 * output is the input, byte for byte.
 */
import type { FieldSpan, MessageNode } from './document.js';
import { ProtoReader, ProtoWriter, WIRE_LEN, type Chunks } from './protobuf.js';

interface Edit {
  before: Chunks[];
  /** undefined: keep the field; null: delete it; chunks: the complete replacement field(s). */
  replace?: Chunks | null;
}

export class EditSet {
  private readonly edits = new Map<number, Edit>();
  private readonly dirty = new Set<number>();

  get size(): number {
    return this.edits.size;
  }

  private edit(field: FieldSpan): Edit {
    let edit = this.edits.get(field.start);
    if (!edit) {
      this.edits.set(field.start, (edit = { before: [] }));
      for (let m: MessageNode | undefined = field.owner; m; m = m.parent) this.dirty.add(m.start);
    }
    return edit;
  }

  /** Replaces the whole field (key included) with `fields`, or deletes it (null). */
  replace(field: FieldSpan, fields: Chunks | null): void {
    this.edit(field).replace = fields;
  }

  insertBefore(field: FieldSpan, fields: Chunks): void {
    this.edit(field).before.push(fields);
  }

  /** Emits message `[start, end)` of `bytes` with the edits applied. */
  emit(bytes: Uint8Array, start: number, end: number, where = 'ModelProto'): Chunks {
    const w = new ProtoWriter();
    this.emitInto(w, bytes, start, end, where);
    return w.finish();
  }

  private emitInto(w: ProtoWriter, bytes: Uint8Array, start: number, end: number, where: string): void {
    if (!this.dirty.has(start)) {
      w.raw(bytes.subarray(start, end));
      return;
    }
    const r = new ProtoReader(bytes, start, end, where);
    let run = start;
    const flush = (upTo: number) => {
      if (upTo > run) w.raw(bytes.subarray(run, upTo));
    };
    while (r.next()) {
      const fieldStart = r.fieldStart;
      const keyEnd = r.pos;
      const edit = this.edits.get(fieldStart);
      if (r.wire === WIRE_LEN) {
        const [s, e] = r.len();
        if (edit) {
          flush(fieldStart);
          for (const c of edit.before) w.appendChunks(c);
          if (edit.replace === undefined) this.emitField(w, bytes, fieldStart, keyEnd, s, e, where);
          else if (edit.replace !== null) w.appendChunks(edit.replace);
          run = r.pos;
        } else if (this.dirty.has(s)) {
          flush(fieldStart);
          this.emitField(w, bytes, fieldStart, keyEnd, s, e, where);
          run = r.pos;
        }
      } else {
        r.skip();
        if (edit) {
          flush(fieldStart);
          for (const c of edit.before) w.appendChunks(c);
          if (edit.replace === undefined) w.raw(bytes.subarray(fieldStart, r.pos));
          else if (edit.replace !== null) w.appendChunks(edit.replace);
          run = r.pos;
        }
      }
    }
    flush(end);
  }

  private emitField(w: ProtoWriter, bytes: Uint8Array, fieldStart: number, keyEnd: number, s: number, e: number, where: string): void {
    if (!this.dirty.has(s)) {
      w.raw(bytes.subarray(fieldStart, e));
      return;
    }
    const child = new ProtoWriter();
    this.emitInto(child, bytes, s, e, where);
    w.raw(bytes.subarray(fieldStart, keyEnd));
    w.lengthPrefixed(child);
  }
}
