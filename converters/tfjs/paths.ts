/**
 * Lexical checks on weight shard paths. `paths` entries of a manifest come from an untrusted
 * file: they must name a file inside the model's folder by a relative path. Refused, each with
 * its own message: NUL bytes, URLs (any scheme, or protocol-relative `//host`), absolute paths
 * (`/`, `\`, `C:`), `..` segments (also percent-encoded: browsers' URL parsers treat `%2e%2e`
 * as `..`), empty paths and paths that name the folder itself. Backslashes are separators, as
 * URL parsers treat them. Browser-safe: shared by the file reader and the loader.
 */
import { PrunepackError } from '../../src/errors.js';

const HINT = 'Weight shards must be files inside the model folder, named by a relative path (e.g. "group1-shard1of2.bin")';

function unsafe(what: string, where: string, found: string): PrunepackError {
  return new PrunepackError('UNSAFE_PATH', what, { format: 'tfjs', location: where, found: JSON.stringify(found), hint: HINT });
}

/** Checks one shard path; returns it normalized (`/` separators, no `.` or empty segments). */
export function checkShardPath(path: unknown, where: string): string {
  if (typeof path !== 'string') {
    throw new PrunepackError('CORRUPT', 'a shard path is not a string', { format: 'tfjs', location: where, expected: 'a string', found: JSON.stringify(path) ?? String(path) });
  }
  if (path.includes('\0')) throw unsafe('shard path contains a NUL byte', where, path);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(path) && !/^[A-Za-z]:([\\/]|$)/.test(path)) {
    throw unsafe('shard path is a URL: shards may only come from the model\'s own folder', where, path);
  }
  if (/^[\\/]{2}/.test(path)) throw unsafe('shard path is a protocol-relative URL (//host/...)', where, path);
  if (/^[\\/]/.test(path) || /^[A-Za-z]:/.test(path)) throw unsafe('shard path is an absolute path', where, path);
  const segments = path.split(/[\\/]+/);
  const normal: string[] = [];
  for (const segment of segments) {
    if (segment === '' || segment === '.' || /^%2e$/i.test(segment)) continue;
    if (segment === '..' || /^(\.|%2e){2}$/i.test(segment)) {
      throw unsafe("shard path contains a '..' segment, which could leave the model folder", where, path);
    }
    normal.push(segment);
  }
  if (normal.length === 0) throw unsafe('shard path names the model folder itself, not a file', where, path);
  return normal.join('/');
}
