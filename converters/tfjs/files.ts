/**
 * Writing a TF.js model to disk, and a Node IOHandler for models on disk. Node-only (imported
 * apart from the plugin, like converters/onnx/files.ts).
 *
 * Output: a folder (or a model.json path in a folder) with model.json and its shards. Every file
 * is first written into a staging folder under its final name and `check` runs on that complete
 * copy; only then does anything move into place: a new folder is one rename of the staging
 * folder; into an existing folder, the shards are renamed first and model.json last. A failure
 * before the moves removes the staging folder and leaves the destination as it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PrunepackError } from '../../src/errors.js';
import type { Model } from '../../src/model/types.js';
import { tfjsSparseHandler, type TfjsLoadHandler, type TfjsLoadOptions } from './loader.js';
import { modelFolder, readShardFile } from './shard-files.js';
import { defaultShardName, layoutTfjs, type TfjsLayout, type TfjsTarget, type TfjsWriteOptions } from './write.js';

export interface WriteTfjsFilesOptions extends TfjsWriteOptions {
  target: TfjsTarget;
  /** Runs on the complete staged copy (its model.json path) before anything is moved into place. */
  check?: (stagedModelJson: string, layout: TfjsLayout) => void | Promise<void>;
  /** Replace an existing model.json of the same name. */
  force?: boolean;
  /** Files that must not be replaced (the input model's model.json); the shards the model was read from (Model.companionFiles) are always protected. */
  protect?: readonly string[];
}

export interface WriteTfjsFilesResult {
  modelJsonPath: string;
  folder: string;
  /** Every written file (model.json first) with its size. */
  files: Array<{ path: string; bytes: number }>;
  layout: TfjsLayout;
}

const STAGE_MARK = '.prunepack-';

function ioError(what: string, e: unknown): PrunepackError {
  if (e instanceof PrunepackError) return e;
  const err = e as NodeJS.ErrnoException;
  return new PrunepackError('IO', `${what}: ${err.code ?? err.message}`, { format: 'tfjs', cause: e });
}

/** Output folder and model.json file name for `out`: a `.json` path, or a folder (model.json inside). */
export function resolveTfjsOutput(out: string): { folder: string; modelJsonName: string } {
  const resolved = path.resolve(out);
  let isDir = false;
  try { isDir = fs.statSync(resolved).isDirectory(); } catch { /* does not exist yet */ }
  if (!isDir && resolved.toLowerCase().endsWith('.json')) return { folder: path.dirname(resolved), modelJsonName: path.basename(resolved) };
  return { folder: resolved, modelJsonName: 'model.json' };
}

/** Shard names for a model.json name: `group1-shard1of1.bin` beside model.json, else prefixed with its stem. */
export function shardNamesFor(modelJsonName: string): (group: number, shard: number, shards: number) => string {
  if (modelJsonName === 'model.json') return defaultShardName;
  const stem = modelJsonName.replace(/\.json$/i, '');
  return (g, i, n) => `${stem}-${defaultShardName(g, i, n)}`;
}

function writeWhole(file: string, chunks: readonly Uint8Array[]): void {
  const fd = fs.openSync(file, 'wx');
  try {
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Removes staging folders of dead earlier runs in `dir`. */
function removeStaleStages(dir: string): void {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const name of names) {
    const at = name.indexOf(STAGE_MARK);
    if (at < 0 || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(at + STAGE_MARK.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    try { fs.rmSync(path.join(dir, name), { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

/** Writes `model` for `target` to `out` (folder or model.json path); see the top of this file. */
export async function writeTfjsFiles(model: Model, out: string, options: WriteTfjsFilesOptions): Promise<WriteTfjsFilesResult> {
  const { folder, modelJsonName } = resolveTfjsOutput(out);
  const modelJsonPath = path.join(folder, modelJsonName);
  const layout = layoutTfjs(model, options.target, { shardName: shardNamesFor(modelJsonName), ...options });
  const files = [{ name: modelJsonName, chunks: [layout.modelJson], bytes: layout.modelJson.length },
    ...layout.shards.map((s) => ({ name: s.path, chunks: s.chunks, bytes: s.length }))];
  let folderExists = false;
  try {
    const stat = fs.statSync(folder);
    if (!stat.isDirectory()) throw new PrunepackError('INVALID_ARGUMENT', `${folder} exists and is not a folder`, { format: 'tfjs', hint: 'Name a folder, or a .json path inside one' });
    folderExists = true;
  } catch (e) {
    if (e instanceof PrunepackError) throw e;
  }
  if (folderExists && fs.existsSync(modelJsonPath) && !options.force) {
    throw new PrunepackError('INVALID_ARGUMENT', `${modelJsonPath} exists`, { format: 'tfjs', hint: 'Pass force (--force) to replace it, or choose another output' });
  }
  const protect = [...(options.protect ?? []), ...(model.companionFiles ?? [])];
  const protectedPaths = new Set(protect.map((p) => { try { return fs.realpathSync(p); } catch { return path.resolve(p); } }));
  // By identity too: a hard link to an input shard under another name is the same file.
  const identity = (file: string) => { try { const st = fs.statSync(file); return `${st.dev}:${st.ino}`; } catch { return null; } };
  const protectedIds = new Set(protect.map(identity).filter((id) => id !== null));
  for (const f of files) {
    const dest = path.join(folder, ...f.name.split('/'));
    let real = dest;
    try { real = fs.realpathSync(dest); } catch { /* new file */ }
    const id = identity(dest);
    if (protectedPaths.has(real) || protectedPaths.has(path.resolve(dest)) || (id !== null && protectedIds.has(id))) {
      throw new PrunepackError('INVALID_ARGUMENT', `writing ${f.name} would replace a file of the input model`, { format: 'tfjs', location: dest, hint: 'Write the output to another folder' });
    }
  }

  const parent = folderExists ? folder : path.dirname(folder);
  try { fs.mkdirSync(parent, { recursive: true }); } catch (e) { throw ioError(`cannot create ${parent}`, e); }
  removeStaleStages(parent);
  const stage = path.join(parent, `${folderExists ? '' : `.${path.basename(folder)}`}${STAGE_MARK}${process.pid}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}.tmp`);
  const moved: string[] = [];
  try {
    try {
      fs.mkdirSync(stage);
      for (const f of files) writeWhole(path.join(stage, f.name), f.chunks);
    } catch (e) {
      throw ioError(`cannot write the model into ${stage}`, e);
    }
    await options.check?.(path.join(stage, modelJsonName), layout);
    try {
      if (!folderExists) {
        fs.renameSync(stage, folder);
      } else {
        for (const f of [...files.slice(1), files[0]!]) {
          const dest = path.join(folder, f.name);
          fs.renameSync(path.join(stage, f.name), dest);
          moved.push(dest);
        }
        fs.rmdirSync(stage);
      }
    } catch (e) {
      throw ioError(`cannot move the model into ${folder}`, e);
    }
  } catch (e) {
    try { fs.rmSync(stage, { recursive: true, force: true }); } catch { /* best effort */ }
    if (!moved.includes(modelJsonPath)) for (const m of moved) { try { fs.rmSync(m, { force: true }); } catch { /* best effort */ } }
    throw e;
  }
  return { modelJsonPath, folder, files: files.map((f) => ({ path: path.join(folder, f.name), bytes: f.bytes })), layout };
}

/**
 * An IOHandler for a model.json on disk, plain or prunepack-sparse: shards are read with the
 * same containment checks as the plugin's reader (no symlinks out of the folder).
 */
export function tfjsFileHandler(modelJsonPath: string, options: Omit<TfjsLoadOptions, 'readFile' | 'fetch' | 'weightPathPrefix'> = {}): TfjsLoadHandler {
  const file = path.resolve(modelJsonPath);
  const prefix = `${file.slice(0, file.length - path.basename(file).length)}`;
  return tfjsSparseHandler(file, {
    ...options,
    weightPathPrefix: prefix,
    readFile: (p) => {
      if (p === file) return fs.readFileSync(file);
      if (!p.startsWith(prefix)) throw new PrunepackError('UNSAFE_PATH', 'shard outside the model folder', { format: 'tfjs', found: p });
      return readShardFile(modelFolder(file), p.slice(prefix.length), p.slice(prefix.length));
    },
  });
}

/** A fetch function serving model.json and its shards from disk (containment-checked), for TF.js's own http handler. */
export function tfjsFileFetch(modelJsonPath: string): (url: string) => Promise<Response> {
  const file = path.resolve(modelJsonPath);
  const prefix = file.slice(0, file.length - path.basename(file).length);
  return async (url: string) => {
    const plain = path.resolve(url.replace(/[?#].*$/, ''));
    if (plain === file) return new Response(fs.readFileSync(file));
    if (!plain.startsWith(prefix)) throw new PrunepackError('UNSAFE_PATH', 'request outside the model folder', { format: 'tfjs', found: url });
    const bytes = readShardFile(modelFolder(file), plain.slice(prefix.length), plain.slice(prefix.length));
    return new Response(bytes as Uint8Array<ArrayBuffer>);
  };
}
