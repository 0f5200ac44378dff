/** LEB128 unsigned varints (<= 2^53 - 1) and little-endian u32s of the pack index and pool. */
import { PrunepackError } from '../errors.js';

/** A cursor over bytes that throws CORRUPT (with `what` and the offset) when a read runs out. */
export class ByteReader {
  at = 0;
  constructor(readonly bytes: Uint8Array, readonly what: string) {}

  fail(message: string, expected?: string, found?: string): PrunepackError {
    return new PrunepackError('CORRUPT', `${this.what}: ${message}`, {
      format: 'prunepack pack', location: `${this.what} byte ${this.at}`,
      ...(expected === undefined ? {} : { expected }), ...(found === undefined ? {} : { found }),
    });
  }

  get remaining(): number { return this.bytes.length - this.at; }

  u8(): number {
    if (this.at >= this.bytes.length) throw this.fail('ends early', '1 more byte', '0');
    return this.bytes[this.at++]!;
  }

  u32(): number {
    if (this.at + 4 > this.bytes.length) throw this.fail('ends early', '4 more bytes', String(this.remaining));
    const b = this.bytes;
    const v = (b[this.at]! | (b[this.at + 1]! << 8) | (b[this.at + 2]! << 16) | (b[this.at + 3]! << 24)) >>> 0;
    this.at += 4;
    return v;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      value += (b & 0x7f) * scale;
      if (!(b & 0x80)) {
        if (i > 0 && b === 0) throw this.fail('number has a redundant trailing byte');
        if (value > Number.MAX_SAFE_INTEGER) throw this.fail('number exceeds 2^53 - 1');
        return value;
      }
      scale *= 128;
    }
    throw this.fail('number is longer than 8 bytes');
  }

  take(n: number): Uint8Array {
    if (n > this.remaining) throw this.fail('ends early', `${n} more bytes`, String(this.remaining));
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
}

/** Appends bytes to a growing buffer (writer side). */
export class ByteWriter {
  private buf = new Uint8Array(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const g = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    g.set(this.buf.subarray(0, this.length));
    this.buf = g;
  }

  u8(v: number): this { this.room(1); this.buf[this.length++] = v; return this; }

  u32(v: number): this {
    this.room(4);
    for (let i = 0; i < 4; i++) this.buf[this.length++] = (v >>> (8 * i)) & 0xff;
    return this;
  }

  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new PrunepackError('INVALID_ARGUMENT', 'varint out of range', { found: String(v) });
    while (v >= 0x80) { this.u8((v % 128) | 0x80); v = Math.floor(v / 128); }
    return this.u8(v);
  }

  bytes(b: Uint8Array): this { this.room(b.length); this.buf.set(b, this.length); this.length += b.length; return this; }

  finish(): Uint8Array { return this.buf.slice(0, this.length); }
}
