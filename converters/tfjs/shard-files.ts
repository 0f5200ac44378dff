/**
 * Reading weight shards from the model's folder, with containment checks: the lexical checks of
 * paths.ts first, then the real path (symlinks resolved) must stay inside the real model folder,
 * the file is opened without following a final symlink, and it must be a regular file. Node
 * built-ins are loaded only when a model is read from disk, so importing the plugin needs none
 * (browser bundles).
 *
 * Hard links are not refused (package managers such as pnpm hard-link every file of a package):
 * making one needs write access to the model folder, where the files could be replaced anyway.
 */
import type * as FS from 'node:fs';
import type * as Path from 'node:path';
import { PrunepackError } from '../../src/errors.js';
import { nodeBuiltins } from '../../src/io/node-builtins.js';
import { checkShardPath } from './paths.js';

/** Largest shard read into one buffer. */
const MAX_SHARD_BYTES = 2 ** 31 - 1;

function node(): { fs: typeof FS; path: typeof Path } {
  return nodeBuiltins(() => new PrunepackError('UNSUPPORTED', 'weight shards can only be read from files in Node.js (20.16 or later)', {
    format: 'tfjs', hint: 'In a browser, load the model with the prunepack/tfjs IOHandler (fetch)',
  }));
}

function unsafe(what: string, where: string, found: string): PrunepackError {
  return new PrunepackError('UNSAFE_PATH', what, {
    format: 'tfjs', location: where, found: JSON.stringify(found),
    hint: 'Weight shards must be plain files inside the model folder; copy the file there instead of linking it',
  });
}

/** The real path of the folder holding `modelPath`. */
export function modelFolder(modelPath: string): string {
  const { fs, path } = node();
  try {
    return fs.realpathSync(path.dirname(path.resolve(modelPath)));
  } catch (e) {
    throw new PrunepackError('IO', `cannot resolve the folder of ${modelPath}`, { format: 'tfjs', cause: e });
  }
}

function isInside(folder: string, file: string): boolean {
  const { path } = node();
  const rel = path.relative(folder, file);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/**
 * Reads the shard `shardPath` (as written in the manifest) of the model in `folder` (a real
 * path, see modelFolder). `where` names the manifest entry in errors.
 */
export function readShardFile(folder: string, shardPath: string, where: string): Uint8Array {
  return openShardFile(folder, shardPath, where).bytes;
}

/** readShardFile, also returning the real path of the file that was read. */
export function openShardFile(folder: string, shardPath: string, where: string): { bytes: Uint8Array; file: string } {
  const { fs, path } = node();
  const relative = checkShardPath(shardPath, where);
  const candidate = path.join(folder, ...relative.split('/'));
  let real: string;
  try {
    real = fs.realpathSync(candidate);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    let dangling = false;
    try { dangling = fs.lstatSync(candidate).isSymbolicLink(); } catch { /* missing */ }
    if (dangling) throw unsafe('shard path is a symlink to a file that does not exist', where, shardPath);
    throw new PrunepackError('IO', `weight shard ${shardPath} cannot be opened: ${code ?? String(e)}`, {
      format: 'tfjs', location: where, hint: code === 'ENOENT' ? 'Keep every shard listed in weightsManifest next to model.json' : undefined, cause: e,
    });
  }
  if (!isInside(folder, real)) {
    throw unsafe(`shard path is a symlink (or passes through one) that leads outside the model folder, to ${real}`, where, shardPath);
  }
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw unsafe('shard file became a symlink while it was being checked', where, shardPath);
    throw new PrunepackError('IO', `weight shard ${shardPath} cannot be opened: ${code ?? String(e)}`, { format: 'tfjs', location: where, cause: e });
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw unsafe('shard path is not a regular file', where, shardPath);
    if (stat.size > MAX_SHARD_BYTES) {
      throw new PrunepackError('UNSUPPORTED', 'weight shard is larger than 2 GiB', {
        format: 'tfjs', location: where, expected: `<= ${MAX_SHARD_BYTES} bytes`, found: `${stat.size} bytes`, hint: 'Re-shard the model (prunepack convert --to tfjs --shard-size 4MiB)',
      });
    }
    const out = new Uint8Array(stat.size);
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, out.length - done, done);
      if (n === 0) throw new PrunepackError('TRUNCATED', `weight shard ${shardPath} ended while reading`, { format: 'tfjs', location: `${where} byte ${done}` });
      done += n;
    }
    return { bytes: out, file: real };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads every shard of the manifest groups, in order, each into its own buffer (never one buffer
 * for the whole model); `files` are the real paths read, without repeats.
 */
export function readShards(modelPath: string, groups: ReadonlyArray<{ paths: readonly string[] }>): { shards: Uint8Array[]; files: string[] } {
  const folder = modelFolder(modelPath);
  const shards: Uint8Array[] = [];
  const files = new Set<string>();
  groups.forEach((group, g) => {
    group.paths.forEach((p, i) => {
      const read = openShardFile(folder, p, `weightsManifest[${g}].paths[${i}]`);
      shards.push(read.bytes);
      files.add(read.file);
    });
  });
  return { shards, files: [...files] };
}
