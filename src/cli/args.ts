import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PrunepackError } from '../errors.js';

/** node:util parseArgs, with its errors turned into usage errors (exit code 2). */
export function parseOptions<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new PrunepackError('INVALID_ARGUMENT', (e as Error).message, { hint: 'Run with --help for the options' });
  }
}
