import type { FormatDescriptor } from '../../src/plugin.js';

/** TFLite flatbuffers carry the file identifier "TFL3" at bytes 4..7. */
export function sniffTflite(head: Uint8Array): boolean {
  return head.length >= 8 && head[4] === 0x54 && head[5] === 0x46 && head[6] === 0x4c && head[7] === 0x33;
}

export const tfliteFormat: FormatDescriptor = {
  id: 'tflite',
  name: 'TensorFlow Lite flatbuffer',
  extensions: ['.tflite'],
  sniff: sniffTflite,
};
