/**
 * TensorFlow.js format descriptor. A model is `model.json` (graph-model or layers-model) plus
 * binary weight shards; a bare weights manifest (a JSON array, as face-api ships) is read too.
 * Browser-safe.
 */
import type { FormatDescriptor } from '../../src/plugin.js';

const KEYS = ['"format"', '"modelTopology"', '"weightsManifest"', '"generatedBy"', '"convertedBy"'];
const ARRAY_KEYS = ['"paths"', '"weights"'];

/**
 * True when the head looks like a TF.js model.json: a JSON object naming one of its top-level
 * keys, or a JSON array of manifest groups, within the first bytes.
 */
export function sniffTfjs(head: Uint8Array): boolean {
  let i = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) i = 3; // UTF-8 BOM
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
  if (head[i] !== 0x7b /* { */ && head[i] !== 0x5b /* [ */) return false;
  let text = '';
  for (let k = i; k < head.length; k++) text += String.fromCharCode(head[k]!);
  return (head[i] === 0x7b ? KEYS : ARRAY_KEYS).some((key) => text.includes(key));
}

export const tfjsFormat: FormatDescriptor = {
  id: 'tfjs',
  name: 'TensorFlow.js model.json',
  extensions: ['.json'],
  sniff: sniffTfjs,
};
