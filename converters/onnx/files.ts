/**
 * Writing an ONNX model to disk, with its weights in an external data file when asked or when
 * the protobuf would reach 2 GiB. Node-only (imported separately from the plugin so the plugin
 * itself needs no Node built-ins). Both files are written atomically: the data file first, then
 * the model (checked by `check` before it is renamed into place); a failure removes both.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PrunepackError } from '../../src/errors.js';
import { writeFileAtomic, type Chunk } from '../../src/io/files.js';
import type { Model } from '../../src/model/types.js';
import { checkExternalLocation } from './external-data.js';
import { onnxDocumentOf } from './model-view.js';
import { MAX_PROTOBUF_BYTES, type Chunks } from './protobuf.js';
import { layoutOnnx, type OnnxPlanEntry, type OnnxTarget, type OnnxWriteOptions } from './write.js';

export interface WriteOnnxFilesOptions extends OnnxWriteOptions {
  target: OnnxTarget;
  /** Called with the temporary model path before it is renamed (e.g. read back and compare). */
  check?: (tempModelPath: string) => void;
}

export interface WriteOnnxFilesResult {
  modelPath: string;
  modelBytes: number;
  externalPath?: string;
  externalBytes: number;
  plan: OnnxPlanEntry[];
}

function positioned(chunks: Chunks): Chunk[] {
  const out: Chunk[] = [];
  let position = 0;
  for (const bytes of chunks.parts) { out.push({ position, bytes }); position += bytes.length; }
  return out;
}

/** Default external data file name for an output model: `<model file name>.data`. */
export function defaultExternalLocation(outPath: string): string {
  return `${path.basename(outPath)}.data`;
}

export function writeOnnxFiles(model: Model, outPath: string, options: WriteOnnxFilesOptions): WriteOnnxFilesResult {
  const doc = onnxDocumentOf(model);
  let externalData = options.externalData;
  let layout = layoutOnnx(doc, options.target, { externalData });
  if (!externalData && layout.model.length > MAX_PROTOBUF_BYTES) {
    externalData = { location: defaultExternalLocation(outPath) };
    layout = layoutOnnx(doc, options.target, { externalData });
  }
  if (layout.model.length > MAX_PROTOBUF_BYTES) {
    throw new PrunepackError('UNSUPPORTED', 'the ONNX model is 2 GiB or larger even with its tensors in external data', {
      format: 'onnx', found: `${layout.model.length} bytes`, hint: 'Lower externalData.threshold so more tensors move to the data file',
    });
  }
  let externalPath: string | undefined;
  if (layout.external) {
    const relative = checkExternalLocation(layout.external.location, 'externalData.location');
    externalPath = path.join(path.dirname(path.resolve(outPath)), ...relative.split('/'));
    if (path.resolve(externalPath) === path.resolve(outPath)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'the external data file would replace the model file', { found: layout.external.location, hint: 'Choose another externalData.location' });
    }
    fs.mkdirSync(path.dirname(externalPath), { recursive: true });
    writeFileAtomic(externalPath, layout.external.chunks.length, positioned(layout.external.chunks));
  }
  try {
    writeFileAtomic(outPath, layout.model.length, positioned(layout.model), options.check);
  } catch (e) {
    if (externalPath) fs.rmSync(externalPath, { force: true });
    throw e;
  }
  return { modelPath: outPath, modelBytes: layout.model.length, externalPath, externalBytes: layout.external?.chunks.length ?? 0, plan: layout.plan };
}
