/**
 * External data (TensorProto.data_location = EXTERNAL): tensor bytes stored in a file next to
 * the model. The `location` string comes from an untrusted file, so it is resolved with
 * containment checks before anything is opened, and every read re-checks the file it opens
 * (same device/inode, one link, same size), so a file swapped after the check is refused too.
 *
 * Refused, each with its own message: NUL bytes, onnxruntime's in-memory sentinel location,
 * absolute paths, a leading `..`, a path that leaves the folder after resolving `..`
 * (`a/../../b`), a symlink (or symlinked directory) that leads outside the folder, a file with
 * more than one hard link, something that is not a regular file, a non-numeric or negative
 * offset or length, and offset + length past the end of the file. Node-only (`node:fs`),
 * reached only for models that use external data.
 */
import type * as FS from 'node:fs';
import type * as Path from 'node:path';
import { PrunepackError } from '../../src/errors.js';
import { nodeBuiltins } from '../../src/io/node-builtins.js';

/**
 * node:fs and node:path, loaded only when a model really uses external data, so importing the
 * ONNX plugin stays free of Node built-ins (browser bundles).
 */
function node(): { fs: typeof FS; path: typeof Path } {
  return nodeBuiltins(() => new PrunepackError('UNSUPPORTED', 'external data files can only be read in Node.js (20.16 or later)', {
    format: 'onnx', hint: 'Embed the weights in the model (prunepack convert --to onnx in Node), or read it in Node',
  }));
}

export interface ExternalDataRef {
  location: string;
  offset: number;
  /** Absent: to the end of the file. */
  length?: number;
  checksum?: string;
}

/** A checked external range: the real path, the file's identity at check time, the byte range. */
export interface ResolvedExternalData {
  location: string;
  file: string;
  dev: number;
  ino: number;
  size: number;
  offset: number;
  length: number;
}

const HINT_PATH = 'External data must be a plain file inside the model folder, named by a relative path';

function unsafe(what: string, where: string, found: string, hint = HINT_PATH): PrunepackError {
  return new PrunepackError('UNSAFE_PATH', what, { format: 'onnx', location: where, found, hint });
}

function corrupt(what: string, where: string, expected: string, found: string): PrunepackError {
  return new PrunepackError('CORRUPT', what, { format: 'onnx', location: where, expected, found });
}

/** Parses an `offset` or `length` value: decimal digits only. */
function parseByteCount(key: string, value: string, where: string): number {
  if (/^\s*-/.test(value)) throw corrupt(`external data ${key} is negative`, where, `a non-negative byte ${key}`, JSON.stringify(value));
  if (!/^[0-9]+$/.test(value)) throw corrupt(`external data ${key} is not a number`, where, `decimal digits`, JSON.stringify(value));
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw corrupt(`external data ${key} is too large`, where, `<= ${Number.MAX_SAFE_INTEGER}`, value);
  return n;
}

/** Builds the reference from the `external_data` key/value entries of a TensorProto. */
export function parseExternalData(entries: ReadonlyArray<{ key: string; value: string }>, where: string): ExternalDataRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  let checksum: string | undefined;
  const seen = new Set<string>();
  for (const { key, value } of entries) {
    if (seen.has(key)) throw corrupt(`external data key "${key}" appears twice`, where, 'each key once', `"${key}" repeated`);
    seen.add(key);
    if (key === 'location') location = value;
    else if (key === 'offset') offset = parseByteCount('offset', value, where);
    else if (key === 'length') length = parseByteCount('length', value, where);
    else if (key === 'checksum') checksum = value;
  }
  if (location === undefined || location === '') throw corrupt('external data has no location', where, 'a "location" entry naming a file', location === '' ? 'an empty location' : 'none');
  return { location, offset, ...(length !== undefined ? { length } : {}), ...(checksum !== undefined ? { checksum } : {}) };
}

/**
 * Lexical checks on `location` alone (no file system access). Returns the normalized relative
 * path with '/' separators.
 */
export function checkExternalLocation(location: string, where: string): string {
  if (location.includes('\0')) throw unsafe('external data location contains a NUL byte', where, JSON.stringify(location));
  if (location.includes('_ORT_MEM_ADDR_')) {
    throw unsafe("external data location is onnxruntime's in-memory sentinel: the bytes lived in the memory of the process that saved the model, not in a file",
      where, location, 'Save the model again with its weights inline or in a real external data file');
  }
  if (location.startsWith('/') || location.startsWith('\\') || /^[A-Za-z]:/.test(location)) {
    throw unsafe('external data location is an absolute path', where, location);
  }
  const segments = location.split(/[\\/]+/);
  if (segments[0] === '..') throw unsafe("external data location climbs out of the model folder (it starts with '..')", where, location);
  const normal: string[] = [];
  segments.forEach((segment, i) => {
    if (segment === '' || segment === '.') return;
    if (segment !== '..') { normal.push(segment); return; }
    if (normal.length === 0) {
      const resolved = ['..', ...segments.slice(i + 1)].filter((s) => s !== '' && s !== '.').join('/');
      throw unsafe(`external data location leaves the model folder after resolving '..' (it resolves to '${resolved}')`, where, location);
    }
    normal.pop();
  });
  if (normal.length === 0) throw unsafe('external data location names the model folder itself, not a file', where, location);
  return normal.join('/');
}

/**
 * Resolves and checks one external range against the file system. `modelPath` is the model
 * file; its folder is the only place external data may come from.
 */
export function resolveExternalData(ref: ExternalDataRef, modelPath: string | undefined, where: string): ResolvedExternalData {
  const { fs, path } = node();
  const relative = checkExternalLocation(ref.location, where);
  if (!modelPath) {
    throw new PrunepackError('INVALID_ARGUMENT', 'the model uses external data but its path is unknown', {
      format: 'onnx', location: where, found: ref.location, hint: 'Read the model from a file (openModel) or pass ModelSource.path',
    });
  }
  let folder: string;
  try {
    folder = fs.realpathSync(path.dirname(path.resolve(modelPath)));
  } catch (e) {
    throw new PrunepackError('IO', `cannot resolve the model folder of ${modelPath}`, { format: 'onnx', cause: e });
  }
  const candidate = path.join(folder, ...relative.split('/'));
  let real: string;
  try {
    real = fs.realpathSync(candidate);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PrunepackError('IO', `external data file ${ref.location} cannot be opened: ${code ?? String(e)}`, {
      format: 'onnx', location: where, hint: 'Keep the external data file next to the model', cause: e,
    });
  }
  if (!isInside(folder, real)) {
    throw unsafe(`external data location is a symlink (or passes through one) that leads outside the model folder, to ${real}`, where, ref.location);
  }
  const fd = openNoFollow(real, ref.location, where);
  try {
    const stat = fs.fstatSync(fd);
    checkFileStat(stat, ref.location, where);
    const length = ref.length ?? stat.size - ref.offset;
    if (ref.offset > stat.size || length < 0 || ref.offset + length > stat.size) {
      throw corrupt(`external data range runs past the end of ${ref.location}`, where,
        `offset + length <= ${stat.size} (the file size)`, `offset ${ref.offset} + length ${ref.length ?? '(rest)'} = ${ref.offset + Math.max(length, 0)}`);
    }
    return { location: ref.location, file: real, dev: stat.dev, ino: stat.ino, size: stat.size, offset: ref.offset, length };
  } finally {
    fs.closeSync(fd);
  }
}

function isInside(folder: string, file: string): boolean {
  const { path } = node();
  const rel = path.relative(folder, file);
  return rel !== '' && !rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel);
}

function openNoFollow(file: string, location: string, where: string): number {
  const { fs } = node();
  try {
    return fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw unsafe('external data file became a symlink while it was being checked', where, location);
    throw new PrunepackError('IO', `external data file ${location} cannot be opened: ${code ?? String(e)}`, { format: 'onnx', location: where, cause: e });
  }
}

function checkFileStat(stat: FS.Stats, location: string, where: string): void {
  if (!stat.isFile()) throw unsafe('external data location is not a regular file', where, location);
  if (stat.nlink > 1) {
    throw unsafe(`external data file has ${stat.nlink} hard links, so it may be the same file as one outside the model folder`, where, location,
      'Copy the file (cp, not ln) so it has a single link, then try again');
  }
}

/**
 * Reads a checked range (or `length` bytes from `start` inside it, into `into` when given),
 * re-checking that the file is still the one that was checked.
 */
export function readExternalData(resolved: ResolvedExternalData, where: string, start = 0, length = resolved.length - start, into?: Uint8Array): Uint8Array {
  if (!(start >= 0 && length >= 0 && start + length <= resolved.length)) {
    throw new RangeError(`external data sub-range ${start}+${length} outside ${resolved.length} bytes`);
  }
  const { fs } = node();
  const fd = openNoFollow(resolved.file, resolved.location, where);
  try {
    const stat = fs.fstatSync(fd);
    checkFileStat(stat, resolved.location, where);
    if (stat.dev !== resolved.dev || stat.ino !== resolved.ino || stat.size !== resolved.size) {
      throw unsafe('external data file changed after it was checked', where, resolved.location, 'Do not modify the model folder while prunepack reads it');
    }
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, Math.min(out.length - done, 1 << 30), resolved.offset + start + done);
      if (n === 0) throw new PrunepackError('TRUNCATED', `external data file ${resolved.location} ended while reading`, { format: 'onnx', location: where });
      done += n;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
