import { PrunepackError } from '../../src/errors.js';
import type { Model } from '../../src/model/types.js';
import type { FormatPlugin } from '../../src/plugin.js';
import type { TfliteDocument } from './document.js';
import { tfliteFormat } from './format.js';
import { readTflite } from './read.js';
import { writeTflite } from './write.js';

export { readTflite, readTfliteDocument } from './read.js';
export { writeTflite, layoutTflite, assembleLayout } from './write.js';
export type { TfliteDocument } from './document.js';

export function tfliteDocumentOf(model: Model): TfliteDocument {
  if (model.format !== 'tflite') {
    throw new PrunepackError('INVALID_ARGUMENT', `expected a TFLite model, got ${model.format}`, { format: 'tflite' });
  }
  return model.document as TfliteDocument;
}

export const tflitePlugin: FormatPlugin = {
  ...tfliteFormat,
  read: (source) => readTflite(source.bytes, { fileSize: source.fileSize, readRange: source.readRange }),
  targets: {
    tflite: (model) => writeTflite(tfliteDocumentOf(model)),
  },
};
