/**
 * The ONNX plugin: reads every weight of a ModelProto (initializers, sparse initializers,
 * Constant nodes, subgraphs, functions, external data) and writes `onnx` (dense) and
 * `onnx-sparse`. Node-only file output with external data is in ./files.ts.
 */
import { PrunepackError } from '../../src/errors.js';
import type { Model } from '../../src/model/types.js';
import type { FormatPlugin, ModelSource } from '../../src/plugin.js';
import { parseOnnxDocument, type ReadOnnxOptions } from './document.js';
import { onnxFormat } from './format.js';
import { buildOnnxModel, onnxDocumentOf, onnxWithWeights } from './model-view.js';
import { MAX_PROTOBUF_BYTES } from './protobuf.js';
import { layoutOnnx, writeOnnxBytes, type OnnxLayout, type OnnxTarget, type OnnxWriteOptions } from './write.js';

export { parseOnnxDocument, type OnnxDocument, type OnnxGraph, type OnnxNode, type WeightSlot, type ReadOnnxOptions } from './document.js';
export { buildOnnxModel, onnxDocumentOf, onnxWithWeights, type OnnxWeight, type OnnxWeightRef, type OnnxSparsity } from './model-view.js';
export { layoutOnnx, sparseModeFor, type OnnxLayout, type OnnxPlanEntry, type OnnxTarget, type OnnxWriteOptions, type ExternalDataOptions, type OnnxEncoding } from './write.js';
export { onnxBreakEvenSparsity, onnxSparseBytes } from './cost.js';
export { onnxFormat, sniffOnnx } from './format.js';

/** Reads an ONNX model from bytes; `options.path` locates external data. */
export function readOnnx(bytes: Uint8Array, options: ReadOnnxOptions & { fileSize?: number } = {}): Model {
  if ((options.fileSize ?? bytes.length) > MAX_PROTOBUF_BYTES) {
    throw new PrunepackError('UNSUPPORTED', 'a single ONNX protobuf file must be smaller than 2 GiB', {
      format: 'onnx', location: options.path, expected: `< ${MAX_PROTOBUF_BYTES + 1} bytes`, found: `${options.fileSize ?? bytes.length} bytes`,
      hint: 'Models this large keep their weights in external data files (onnx.save_model(..., save_as_external_data=True)); protobuf cannot represent them in one file',
    });
  }
  return buildOnnxModel(parseOnnxDocument(bytes, options));
}

/**
 * Writes `model` (read by this plugin) for `target` as one protobuf, below 2 GiB. When nothing
 * changes the result is a view of the input bytes (no copy): copy it before mutating it.
 */
export function writeOnnx(model: Model, target: OnnxTarget): Uint8Array {
  return writeOnnxBytes(onnxDocumentOf(model), target);
}

/** The write plan and chunked output, for reports and for writers that stream to files. */
export function planOnnx(model: Model, target: OnnxTarget, options: OnnxWriteOptions = {}): OnnxLayout {
  return layoutOnnx(onnxDocumentOf(model), target, options);
}

export const onnxPlugin: FormatPlugin = {
  ...onnxFormat,
  read: (source: ModelSource) => readOnnx(source.bytes, { path: source.path, fileSize: source.fileSize }),
  withWeights: onnxWithWeights,
  targets: {
    onnx: (model) => writeOnnx(model, 'onnx'),
    'onnx-sparse': (model) => writeOnnx(model, 'onnx-sparse'),
  },
};
