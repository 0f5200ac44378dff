/**
 * Node-only side of packs: collect a model's file(s) from disk (TFLite, ONNX with external data,
 * TF.js model.json + shards), pack them, and restore a pack to disk (atomic writes).
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { readModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { protectInputFile, readModelSource, writeFileAtomic } from '../io/files.js';
import type { Model } from '../model/types.js';
import { onnxDocumentOf, type OnnxWeight } from '../../converters/onnx/index.js';
import { checkExternalLocation } from '../../converters/onnx/external-data.js';
import { readTfjs } from '../../converters/tfjs/model-view.js';
import { parseModelJson } from '../../converters/tfjs/manifest.js';
import { modelFolder, readShardFile } from '../../converters/tfjs/shard-files.js';
import { checkPackName, restorePack, type PackModelFormat, type RestoreOptions, type RestoredPack } from './format.js';
import { locateWeights, type ExternalRangeRef } from './locate.js';
import { buildPack, type PackInputFile, type PackOptions, type PackReport } from './write.js';
import { zlibInflaters } from './restore-async.js';
import type { RawInflate } from '../../converters/tfjs/sparse-decode.js';

export interface ModelFiles {
  format: PackModelFormat;
  /** The primary file first, then external data files / shards, by relative name. */
  files: PackInputFile[];
  model: Model;
  external?: (w: Model['weights'][number]) => ExternalRangeRef | undefined;
}

/** Reads a model and every file it consists of. */
export function readModelFiles(modelPath: string): ModelFiles {
  const source = readModelSource(modelPath);
  if (source.readRange) throw new PrunepackError('UNSUPPORTED', 'models over 2 GB cannot be packed yet', { location: modelPath });
  const primaryName = path.basename(modelPath);
  const primary: PackInputFile = { name: primaryName, bytes: source.bytes };
  const { model } = readModel({ bytes: source.bytes, path: modelPath, fileSize: source.fileSize });
  if (model.format === 'tfjs') return readTfjsFiles(modelPath, primary);
  if (model.format === 'onnx') return readOnnxFiles(modelPath, primary, model);
  return { format: model.format === 'tflite' ? 'tflite' : 'unknown', files: [primary], model };
}

function readOnnxFiles(modelPath: string, primary: PackInputFile, model: Model): ModelFiles {
  const doc = onnxDocumentOf(model);
  const files: PackInputFile[] = [primary];
  const byLocation = new Map<string, string>();
  const external = new Map<string, ExternalRangeRef>();
  for (const w of model.weights as OnnxWeight[]) {
    const slot = doc.slots[w.onnx.slot];
    if (!slot || !('tensor' in slot) || slot.tensor.storage !== 'external') continue;
    const resolved = slot.tensor.resolved;
    if (!resolved) continue;
    let name = byLocation.get(resolved.location);
    if (name === undefined) {
      name = checkExternalLocation(resolved.location, w.name);
      checkPackName(name, w.name);
      byLocation.set(resolved.location, name);
      if (!files.some((f) => f.name === name)) {
        const file = path.join(path.dirname(path.resolve(modelPath)), ...name.split('/'));
        protectInputFile(file);
        files.push({ name, bytes: new Uint8Array(fs.readFileSync(file)) });
      }
    }
    external.set(w.name, { file: name, offset: resolved.offset, length: resolved.length });
  }
  return { format: 'onnx', files, model, external: (w) => external.get(w.name) };
}

function readTfjsFiles(modelPath: string, primary: PackInputFile): ModelFiles {
  const parsed = parseModelJson(primary.bytes, modelPath);
  const files: PackInputFile[] = [primary];
  const byPath = new Map<string, Uint8Array>();
  const folder = modelFolder(modelPath);
  parsed.manifest?.groups.forEach((g, gi) => g.paths.forEach((p, i) => {
    const name = g.checkedPaths[i]!;
    checkPackName(name, `weightsManifest[${gi}].paths[${i}]`);
    let bytes = files.find((f) => f.name === name)?.bytes;
    if (!bytes) {
      bytes = readShardFile(folder, p, `weightsManifest[${gi}].paths[${i}]`);
      files.push({ name, bytes });
    }
    byPath.set(`${gi}/${i}`, bytes);
  }));
  // Read again through our own shard buffers so every weight is a view into them.
  const model = readTfjs(primary.bytes, { path: modelPath, shards: (_p, group, index) => byPath.get(`${group}/${index}`)! });
  return { format: 'tfjs', files, model };
}

/** Packs files already in memory (any format): `model` is read from them for the weight ranges. */
export function packFiles(mf: ModelFiles, options: PackOptions = {}): { bytes: Uint8Array; report: PackReport } {
  const ranges = locateWeights(mf.model, mf.files, mf.external ? { external: mf.external } : {});
  return buildPack(mf.files, ranges, { format: mf.format, ...options });
}

/** Packs the model at `modelPath` (a .tflite, an .onnx with its external data, a TF.js model.json). */
export function packModelFile(modelPath: string, options: PackOptions = {}): { bytes: Uint8Array; report: PackReport } {
  return packFiles(readModelFiles(modelPath), options);
}

/**
 * Pack size of a model on disk, for `audit`: the bytes a pack would take, and its parts.
 * (Packing is the measurement: the cost model's exact sizes need the real DEFLATE output.)
 */
export function packSize(modelPath: string, options: PackOptions = {}): { packBytes: number; inputBytes: number; byteIdentical: boolean; report: PackReport } {
  const { report } = packModelFile(modelPath, { skipSelfCheck: true, ...options });
  return { packBytes: report.packBytes, inputBytes: report.inputBytes, byteIdentical: report.byteIdentical, report };
}

/** Default output path of a pack: MODEL + '.ppak' (for model.json: the folder name + '.ppak' beside it). */
export function defaultPackPath(modelPath: string): string {
  return `${modelPath}.ppak`;
}

/**
 * Node's native zlib as the restorer's raw DEFLATE decoder (~2.5x the JavaScript one on the
 * values streams of float weights): the loader's synchronous zlib decoder (zlibInflaters), output
 * capped one byte past the declared length.
 */
export const nodeInflate: RawInflate = zlibInflaters(zlib).sync;

/** restorePack with Node's zlib (what `prunepack unpack` runs). */
export function restorePackNode(bytes: Uint8Array, options: RestoreOptions = {}): RestoredPack {
  return restorePack(bytes, { inflate: nodeInflate, ...options });
}

/** Writes a pack atomically; refuses to replace an existing file without `force`. */
export function writePackFile(out: string, bytes: Uint8Array, force = false): void {
  if (fs.existsSync(out) && !force) {
    throw new PrunepackError('INVALID_ARGUMENT', `${out} exists`, { hint: 'Pass --force to replace it, or choose another path with -o' });
  }
  writeFileAtomic(out, bytes.length, [{ position: 0, bytes }], (temp) => { restorePackNode(new Uint8Array(fs.readFileSync(temp))); });
}

export interface UnpackToDiskResult {
  restored: RestoredPack;
  /** Written paths, the primary file first. */
  written: string[];
}

/**
 * Restores a pack: the primary file to `out` (default: its packed name in the pack's folder),
 * the other files at their relative names beside it. Refuses to replace files without `force`.
 */
export function unpackToDisk(packPath: string, out?: string, options: { force?: boolean } = {}): UnpackToDiskResult {
  const source = readModelSource(packPath);
  const restored = restorePackNode(source.bytes);
  const primaryPath = out ?? path.join(path.dirname(packPath), path.basename(restored.primaryName));
  const folder = path.dirname(path.resolve(primaryPath));
  const targets: { dest: string; bytes: Uint8Array }[] = [];
  for (const [name, bytes] of restored.files) {
    const dest = name === restored.primaryName ? primaryPath : path.join(folder, ...checkPackName(name).split('/'));
    if (path.relative(folder, path.resolve(dest)).startsWith('..')) {
      throw new PrunepackError('UNSAFE_PATH', 'pack file name leaves the output folder', { location: name });
    }
    targets.push({ dest, bytes });
  }
  if (!options.force) {
    const existing = targets.filter((t) => fs.existsSync(t.dest)).map((t) => t.dest);
    if (existing.length) throw new PrunepackError('INVALID_ARGUMENT', `${existing.join(', ')} exist${existing.length === 1 ? 's' : ''}`, { hint: 'Pass --force to replace, or choose another path with -o' });
  }
  // Secondary files first, the primary last: a model file never points at missing data.
  const ordered = [...targets.slice(1), targets[0]!];
  for (const t of ordered) {
    fs.mkdirSync(path.dirname(path.resolve(t.dest)), { recursive: true });
    writeFileAtomic(t.dest, t.bytes.length, [{ position: 0, bytes: t.bytes }]);
  }
  return { restored, written: targets.map((t) => t.dest) };
}
