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
import { byteLengthOf } from '../../src/model/dtype.js';
import type { Model } from '../../src/model/types.js';
import type { OnnxDocument } from './document.js';
import { checkExternalLocation, readExternalData } from './external-data.js';
import { onnxDocumentOf } from './model-view.js';
import { MAX_PROTOBUF_BYTES, type Chunks } from './protobuf.js';
import { layoutOnnx, type ExternalPart, type OnnxPlanEntry, type OnnxTarget, type OnnxWriteOptions } from './write.js';

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

/** Bytes copied from an input data file per read: memory stays flat whatever the tensor size. */
const COPY_PIECE = 64 * 2 ** 20;

function positioned(chunks: Chunks): Chunk[] {
  const out: Chunk[] = [];
  let position = 0;
  for (const bytes of chunks.parts) { out.push({ position, bytes }); position += bytes.length; }
  return out;
}

/**
 * The external data file's pieces; ranges of input files are read one piece at a time into one
 * reused buffer (writeFileAtomic writes each chunk before it asks for the next).
 */
function* externalChunks(parts: readonly ExternalPart[]): Generator<Chunk> {
  let buffer: Uint8Array | undefined;
  let position = 0;
  for (const part of parts) {
    if (part instanceof Uint8Array) {
      yield { position, bytes: part };
    } else {
      buffer ??= new Uint8Array(COPY_PIECE);
      for (let done = 0; done < part.length; done += COPY_PIECE) {
        yield { position: position + done, bytes: readExternalData(part.source, part.where, done, Math.min(COPY_PIECE, part.length - done), buffer) };
      }
    }
    position += part.length;
  }
}

/** Default external data file name for an output model: `<model file name>.data`. */
export function defaultExternalLocation(outPath: string): string {
  return `${path.basename(outPath)}.data`;
}

/**
 * At least the size of the protobuf written without external data (inline external tensors,
 * expanded sparse ones), computed without reading any tensor: above 2 GiB the writer goes
 * straight to external data instead of first laying out (and reading) everything inline.
 */
function inlineSizeBound(doc: OnnxDocument, target: OnnxTarget): number {
  let size = doc.bytes.length;
  for (const slot of doc.slots) {
    if (slot.kind === 'initializer' || slot.kind === 'constant') size += (slot.tensor.resolved?.length ?? 0) + 16;
    else if (target === 'onnx') size += byteLengthOf(slot.sparse.dtype, slot.sparse.count) + 16;
  }
  return size;
}

/**
 * True when `model` written for `target` needs an external data file: the input reads one (its
 * weights stay external), or the protobuf would reach 2 GiB with every tensor inline.
 */
export function onnxNeedsExternalData(model: Model, target: OnnxTarget): boolean {
  const doc = onnxDocumentOf(model);
  return doc.externalFiles.size > 0 || inlineSizeBound(doc, target) > MAX_PROTOBUF_BYTES;
}

/** Refuses a destination that is one of the external data files the model reads (by device and inode). */
function refuseInputData(doc: OnnxDocument, dest: string, what: string): void {
  let target: fs.Stats;
  try { target = fs.statSync(dest); } catch { return; }
  for (const file of doc.externalFiles) {
    let stat: fs.Stats;
    try { stat = fs.statSync(file); } catch { continue; }
    if (stat.dev === target.dev && stat.ino === target.ino) {
      throw new PrunepackError('INVALID_ARGUMENT', `the ${what} would replace an external data file the input model reads`, {
        format: 'onnx', location: dest, expected: 'an output that is not one of the input\'s data files', found: `${dest} is ${file}`,
        hint: what === 'model file' ? 'Choose another output path' : 'Choose another output name, or another externalData.location',
      });
    }
  }
}

export function writeOnnxFiles(model: Model, outPath: string, options: WriteOnnxFilesOptions): WriteOnnxFilesResult {
  const doc = onnxDocumentOf(model);
  let externalData = options.externalData;
  if (!externalData && inlineSizeBound(doc, options.target) > MAX_PROTOBUF_BYTES) externalData = { location: defaultExternalLocation(outPath) };
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
  refuseInputData(doc, outPath, 'model file');
  let externalPath: string | undefined;
  if (layout.external) {
    const relative = checkExternalLocation(layout.external.location, 'externalData.location');
    externalPath = path.join(path.dirname(path.resolve(outPath)), ...relative.split('/'));
    if (path.resolve(externalPath) === path.resolve(outPath)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'the external data file would replace the model file', { found: layout.external.location, hint: 'Choose another externalData.location' });
    }
    // The data file is streamed from the input's data files: it must not be one of them.
    refuseInputData(doc, externalPath, 'external data file');
    fs.mkdirSync(path.dirname(externalPath), { recursive: true });
    writeFileAtomic(externalPath, layout.external.length, externalChunks(layout.external.parts));
  }
  try {
    writeFileAtomic(outPath, layout.model.length, positioned(layout.model), options.check);
  } catch (e) {
    if (externalPath) fs.rmSync(externalPath, { force: true });
    throw e;
  }
  return { modelPath: outPath, modelBytes: layout.model.length, externalPath, externalBytes: layout.external?.length ?? 0, plan: layout.plan };
}
