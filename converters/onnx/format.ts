import type { FormatDescriptor } from '../../src/plugin.js';

/** Keys a ModelProto may put right after `ir_version`: fields 2-8, 14, 20, 25, 26 (length-delimited or varint). */
const SECOND_KEYS = new Set([0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0xa2, 0xca, 0xd2]);

/**
 * ONNX has no magic number. Every exporter writes `ir_version` (field 1, varint) first; we
 * accept key 0x08, a small version (1..63) and a plausible next key. Extension `.onnx` is the
 * fallback.
 */
export function sniffOnnx(head: Uint8Array): boolean {
  return head.length >= 3 && head[0] === 0x08 && head[1]! >= 1 && head[1]! < 0x40 && SECOND_KEYS.has(head[2]!);
}

export const onnxFormat: FormatDescriptor = {
  id: 'onnx',
  name: 'ONNX protobuf',
  extensions: ['.onnx'],
  sniff: sniffOnnx,
};
