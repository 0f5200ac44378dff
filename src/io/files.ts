/**
 * Bounded file reading and atomic writing. Node-only (kept out of the browser-safe core).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PrunepackError } from '../errors.js';
import type { ModelSource } from '../plugin.js';

/** Largest single read Node allows into one buffer. */
const MAX_SINGLE_READ = 2 ** 31 - 1;

export function readModelSource(file: string): ModelSource {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    throw ioError(`cannot open ${file}`, e);
  }
  if (!stat.isFile()) {
    throw new PrunepackError('INVALID_ARGUMENT', `${file} is not a regular file`, { hint: 'Pass the path of a model file' });
  }
  const fd = fs.openSync(file, 'r');
  try {
    const headLength = Math.min(stat.size, MAX_SINGLE_READ);
    const bytes = new Uint8Array(headLength);
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
        const out = new Uint8Array(length);
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
    const n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
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

/**
 * Writes `chunks` to a temporary file beside `dest`, calls `check` on the finished file, and
 * only then renames it over `dest`. On any failure the temporary file is removed and `dest`
 * is left as it was. Stale temporary files of dead earlier runs are removed first.
 */
export function writeFileAtomic(dest: string, totalSize: number, chunks: Iterable<Chunk>, check?: (tempPath: string) => void): void {
  const dir = path.dirname(path.resolve(dest));
  const base = path.basename(dest);
  removeStaleTemps(dir, base);
  const temp = path.join(dir, `.${base}${TEMP_MARK}${process.pid}-${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'wx');
    for (const { position, bytes } of chunks) {
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30), position + done);
    }
    if (fs.fstatSync(fd).size < totalSize) fs.ftruncateSync(fd, totalSize);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    check?.(temp);
    fs.renameSync(temp, dest);
  } catch (e) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.rmSync(temp, { force: true }); } catch { /* best effort */ }
    if (e instanceof PrunepackError) throw e;
    throw ioError(`cannot write ${dest}`, e);
  }
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
