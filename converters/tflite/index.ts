import { PrunepackError } from '../../src/errors.js';
import type { Model } from '../../src/model/types.js';
import type { FormatPlugin } from '../../src/plugin.js';
import type { TfliteDocument } from './document.js';
import { tfliteFormat } from './format.js';
import { TfliteBuffer } from './document.js';
import { buildModel, type TfliteWeightRef } from './model-view.js';
import { readTflite } from './read.js';
import { writeDenseTflite } from './densify.js';
import { sparsifyTflite } from './sparse-write.js';

export { readTflite, readTfliteDocument } from './read.js';
export { writeTflite, layoutTflite, assembleLayout } from './write.js';
export type { TfliteDocument } from './document.js';
export { densifyTfliteDocument, writeDenseTflite, type DensifyReport } from './densify.js';
export { planSparseTflite, xnnpackReport, type SparsePlan, type SparsePlanEntry, type SparsePlanOptions, type BlockChoice, type XnnpackReport } from './sparse-plan.js';
export {
  applySparsePlan, sparsifyTflite, sparsifyTfliteChecked, createRuntimeCheck,
  type SparsifyResult, type CandidateCheck, type RuntimeCheck, type RuntimeComparison,
} from './sparse-write.js';

export function tfliteDocumentOf(model: Model): TfliteDocument {
  if (model.format !== 'tflite') {
    throw new PrunepackError('INVALID_ARGUMENT', `expected a TFLite model, got ${model.format}`, { format: 'tflite' });
  }
  return model.document as TfliteDocument;
}

export const tflitePlugin: FormatPlugin = {
  ...tfliteFormat,
  read: (source) => source.paged
    ? readTflite(source.paged.image, { fileSize: source.fileSize, paged: source.paged })
    : readTflite(source.bytes, { fileSize: source.fileSize, readRange: source.readRange }),
  withWeights: tfliteWithWeights,
  targets: {
    // Plain dense TFLite: sparse tensors expanded, DENSIFY removed, FULLY_CONNECTED versions restored.
    tflite: (model) => writeDenseTflite(tfliteDocumentOf(model)),
    // Sparse TFLite with default options and no runtime check (the CLI adds both).
    'tflite-sparse': (model) => sparsifyTflite(tfliteDocumentOf(model)).bytes,
  },
};

/** New document sharing the tables, with the named weights' buffers replaced. */
export function tfliteWithWeights(model: Model, replacements: ReadonlyMap<string, Uint8Array>): Model {
  const doc = tfliteDocumentOf(model);
  const buffers = doc.buffers.slice();
  for (const w of model.weights) {
    const bytes = replacements.get(w.name);
    if (!bytes) continue;
    const ref = (w as typeof w & { tflite: TfliteWeightRef }).tflite;
    if (w.sparsity !== undefined) {
      throw new PrunepackError('UNSUPPORTED', 'cannot replace the values of a weight stored sparse', { format: 'tflite', location: w.name, hint: 'Convert the model with --to tflite first' });
    }
    if (bytes.length !== w.bytes.length) {
      throw new PrunepackError('INVALID_ARGUMENT', 'replacement bytes have the wrong size', { format: 'tflite', location: w.name, expected: String(w.bytes.length), found: String(bytes.length) });
    }
    buffers[ref.buffer] = TfliteBuffer.of(bytes);
  }
  return buildModel({ model: doc.model, buffers });
}
