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

/** `--jobs N`: threads, 1 to 256 (undefined when not given). */
export function parseJobs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const jobs = Number(text);
  if (text.trim() === '' || !Number.isInteger(jobs) || jobs < 1 || jobs > 256) {
    throw new PrunepackError('INVALID_ARGUMENT', 'invalid --jobs', { expected: 'an integer from 1 to 256', found: text });
  }
  return jobs;
}
