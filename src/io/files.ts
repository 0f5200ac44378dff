/**
 * Bounded file reading and atomic writing. Node-only (kept out of the browser-safe core).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PrunepackError } from '../errors.js';
import type { ModelSource } from '../plugin.js';
import { PAGE_SIZE, PagedFile } from './paged.js';

/** Largest single read Node allows into one buffer. */
const MAX_SINGLE_READ = 2 ** 31 - 1;

/**
 * Files opened as model inputs in this process, by device and inode: writeFileAtomic refuses to
 * replace them under any name (the same path, a symlink, a hard link, a path through a linked folder).
 */
const inputFiles = new Map<string, string>();

function fileKey(stat: fs.Stats): string {
  return `${stat.dev}:${stat.ino}`;
}

/**
 * Marks a file read as part of a model (ONNX external data, a TF.js shard) so that no output of
 * this process replaces it. Commands mark their inputs; the library does not, so a program may
 * read a file and later replace it on purpose.
 */
export function protectInputFile(file: string): void {
  try { inputFiles.set(fileKey(fs.statSync(file)), file); } catch { /* a file that does not exist cannot be replaced */ }
}

/**
 * Reads a model file (whole under 2 GB; above, the first 2 GB and the rest on demand).
 * `shared`: the bytes live in SharedArrayBuffers, so worker threads see them without a copy.
 */
/** Opens a model file for reading (opened first, then fstat'ed: no race); refuses anything but a regular file. */
function openRegularFile(file: string): { fd: number; stat: fs.Stats } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw ioError(`cannot open ${file}`, e);
  }
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw ioError(`cannot open ${file}`, e);
  }
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw new PrunepackError('INVALID_ARGUMENT', `${file} is not a regular file`, { hint: 'Pass the path of a model file' });
  }
  return { fd, stat };
}

export function readModelSource(file: string, options: { shared?: boolean } = {}): ModelSource {
  const allocate = (length: number) => (options.shared ? new Uint8Array(new SharedArrayBuffer(length)) : new Uint8Array(length));
  const { fd, stat } = openRegularFile(file);
  try {
    const headLength = Math.min(stat.size, MAX_SINGLE_READ);
    const bytes = allocate(headLength);
    readFully(fd, bytes, 0, file);
    if (stat.size <= headLength) return { bytes, path: file, fileSize: stat.size };
    // Files over 2 GB: the flatbuffer/protobuf part is in `bytes`; the rest is read on demand.
    const lateFd = fs.openSync(file, 'r');
    return {
      bytes, path: file, fileSize: stat.size,
      readRange(offset, length) {
        if (offset < 0 || length < 0 || offset + length > stat.size) {
          throw new PrunepackError('TRUNCATED', 'read past the end of the file', { location: `${file} byte ${offset}`, expected: `end <= ${stat.size}`, found: String(offset + length) });
        }
        const out = allocate(length);
        readFully(lateFd, out, offset, file);
        return out;
      },
    };
  } finally {
    fs.closeSync(fd);
  }
}

function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.length) {
    let n: number;
    try {
      n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    } catch (e) {
      throw ioError(`cannot read ${file}`, e);
    }
    if (n === 0) throw new PrunepackError('TRUNCATED', `${file} ended while reading`, { location: `byte ${position + done}` });
    done += n;
  }
}

function ioError(what: string, e: unknown): PrunepackError {
  const err = e as NodeJS.ErrnoException;
  const hints: Record<string, string> = {
    ENOENT: 'Check the path', EACCES: 'Check the file permissions', EROFS: 'The destination is on a read-only file system',
    ENOSPC: 'The disk is full; free space or choose another destination', EISDIR: 'The path is a directory',
  };
  return new PrunepackError('IO', `${what}: ${err.code ?? err.message}`, { hint: hints[err.code ?? ''], cause: e });
}

export interface Chunk { position: number; bytes: Uint8Array }

const TEMP_MARK = '.prunepack-';

/** Test hooks: pause a write so a test can kill the process at a known point (see docs/robustness.md). */
const PAUSE_AFTER_BYTES = 'PRUNEPACK_TEST_PAUSE_AFTER_BYTES';
const PAUSE_BEFORE_RENAME = 'PRUNEPACK_TEST_PAUSE_BEFORE_RENAME';

/**
 * Writes `chunks` to a temporary file beside `dest`, calls `check` on the finished file, and
 * only then renames it over `dest`. On any failure the temporary file is removed and `dest`
 * is left as it was. Stale temporary files of dead earlier runs are removed first. A file this
 * process read as a model input is never replaced, whatever name `dest` gives it.
 */
export function writeFileAtomic(dest: string, totalSize: number, chunks: Iterable<Chunk>, check?: (tempPath: string) => void): void {
  const dir = path.dirname(path.resolve(dest));
  const base = path.basename(dest);
  refuseInput(dest);
  removeStaleTemps(dir, base);
  const temp = path.join(dir, `.${base}${TEMP_MARK}${process.pid}-${Date.now().toString(36)}.tmp`);
  const pauseAfter = process.env[PAUSE_AFTER_BYTES] ? Number(process.env[PAUSE_AFTER_BYTES]) : undefined;
  // Small pieces only when a test asks to pause part-way.
  const piece = pauseAfter === undefined ? 1 << 30 : 1 << 16;
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'wx');
    let written = 0;
    let paused = false;
    const maybePause = () => {
      if (pauseAfter !== undefined && !paused && written >= pauseAfter) { paused = true; testPause(`after ${written} bytes`, temp); }
    };
    maybePause();
    for (const { position, bytes } of chunks) {
      let done = 0;
      while (done < bytes.length) {
        const n = fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, piece), position + done);
        done += n;
        written = Math.max(written, position + done); // the extent: chunks may leave gaps (alignment padding)
        maybePause();
      }
    }
    if (fs.fstatSync(fd).size < totalSize) fs.ftruncateSync(fd, totalSize);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    check?.(temp);
    if (process.env[PAUSE_BEFORE_RENAME]) testPause('before rename', temp);
    refuseInput(dest);
    fs.renameSync(temp, dest);
  } catch (e) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.rmSync(temp, { force: true }); } catch { /* best effort */ }
    if (e instanceof PrunepackError) throw e;
    throw ioError(`cannot write ${dest}`, e);
  }
  syncDirectory(dir);
}

/** Refuses a destination that is (a link to) a file this process read as a model input. */
function refuseInput(dest: string): void {
  let stat: fs.Stats;
  try { stat = fs.statSync(dest); } catch { return; }
  const input = inputFiles.get(fileKey(stat));
  if (input === undefined) return;
  throw new PrunepackError('INVALID_ARGUMENT', 'the output would replace the input', {
    location: dest, expected: 'an output path that is not the input file',
    found: `${dest} is the input ${input}${path.resolve(dest) === path.resolve(input) ? '' : ' under another name (a symlink, a hard link or a linked folder)'}`,
    hint: 'Choose another path with -o',
  });
}

/** Makes the rename itself durable (best effort: not every file system lets a folder be fsynced). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch { /* best effort */ } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* best effort */ }
  }
}

/** Announces the pause on stderr (synchronously), then blocks this thread; the test kills us. */
function testPause(point: string, temp: string): void {
  fs.writeSync(2, `prunepack test pause: ${point} (${temp})\n`);
  const ms = Number(process.env.PRUNEPACK_TEST_PAUSE_MS ?? 30000);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function removeStaleTemps(dir: string, base: string): void {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  const prefix = `.${base}${TEMP_MARK}`;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) continue;
    try { fs.rmSync(path.join(dir, name), { force: true }); } catch { /* best effort */ }
  }
}

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * Opens `file` in pages (src/io/paged.ts): `bytes` is its first page (for format detection),
 * `paged` the on-demand image and range reader. The file stays open for the life of the process.
 */
export function openPagedSource(file: string): ModelSource {
  const { fd, stat } = openRegularFile(file);
  const paged = new PagedFile(fd, stat.size, file);
  const head = Math.min(stat.size, PAGE_SIZE);
  paged.ensure(0, head);
  return {
    bytes: paged.image.subarray(0, head), path: file, fileSize: stat.size, paged,
    readRange: (offset, length) => paged.readRange(offset, length),
  };
}
