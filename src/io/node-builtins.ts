/**
 * node:fs and node:path for code that browser bundles also import (format plugins reading
 * companion files: ONNX external data, TF.js shards). They are reached through
 * process.getBuiltinModule when a file is really read, so importing the plugin stays free of Node
 * built-ins; elsewhere `unavailable` is thrown.
 */
import type * as FS from 'node:fs';
import type * as Path from 'node:path';
import type { PrunepackError } from '../errors.js';

export function nodeBuiltins(unavailable: () => PrunepackError): { fs: typeof FS; path: typeof Path } {
  const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  if (!get) throw unavailable();
  return { fs: get('node:fs') as typeof FS, path: get('node:path') as typeof Path };
}
