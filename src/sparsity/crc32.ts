/**
 * CRC-32 as zlib computes it, in plain JavaScript (a table loop, slicing by 16 over aligned 32-bit
 * words), shared by the sparse blobs' encoder (src/sparsity/codecs.ts, which uses Node's native
 * zlib.crc32 when present) and their decode-only reader (converters/tfjs/sparse-decode.ts, used by
 * both loaders, which reach for no Node module).
 */
const CRC_SLICES = 16;
const CRC_TABLES = (() => {
  const t = new Int32Array(CRC_SLICES * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let s = 1; s < CRC_SLICES; s++) t[s * 256 + n] = (t[(s - 1) * 256 + n] >>> 8) ^ t[t[(s - 1) * 256 + n] & 0xff];
  }
  return t;
})();
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** crc32 in plain JavaScript: what browsers and older Node versions run. */
export function portableCrc32(bytes: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc;
  let i = 0;
  const n = bytes.length;
  if (LITTLE_ENDIAN && n >= 64) {
    const head = (4 - (bytes.byteOffset & 3)) & 3;
    for (; i < head; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    const words = new Int32Array(bytes.buffer, bytes.byteOffset + i, ((n - i) >>> 4) << 2);
    for (let w = 0; w < words.length; w += 4) {
      c ^= words[w];
      const d = words[w + 1];
      const e = words[w + 2];
      const f = words[w + 3];
      c = t[3840 + (c & 0xff)] ^ t[3584 + ((c >>> 8) & 0xff)] ^ t[3328 + ((c >>> 16) & 0xff)] ^ t[3072 + (c >>> 24)]
        ^ t[2816 + (d & 0xff)] ^ t[2560 + ((d >>> 8) & 0xff)] ^ t[2304 + ((d >>> 16) & 0xff)] ^ t[2048 + (d >>> 24)]
        ^ t[1792 + (e & 0xff)] ^ t[1536 + ((e >>> 8) & 0xff)] ^ t[1280 + ((e >>> 16) & 0xff)] ^ t[1024 + (e >>> 24)]
        ^ t[768 + (f & 0xff)] ^ t[512 + ((f >>> 8) & 0xff)] ^ t[256 + ((f >>> 16) & 0xff)] ^ t[f >>> 24];
    }
    i += words.length * 4;
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
