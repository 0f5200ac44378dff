/**
 * The fuzz child process: loads one format's seeds, then runs the inputs the parent sends and
 * reports each outcome with its time and memory. Runs under --expose-gc so every input starts
 * from a collected heap; the parent kills it when an input runs too long.
 *
 * Memory per input: heapUsed + arrayBuffers growth from the start of the input (after a minor
 * collection; a full one whenever more than 192 MiB of old garbage piled up) to its end with
 * everything it produced still alive, and the growth of peak RSS over the RSS at the start (only
 * when this input raised the peak).
 */
import { findFormat } from './formats.js';
import { buildInput, exercise, loadFormat, type LoadedFormat, type Outcome } from './exercise.js';

export interface RunnerInit {
  type: 'init';
  format: string;
  files: string[];
  modelDir: string;
}

export interface RunnerRun {
  type: 'run';
  index: number;
  seed: number;
}

export interface RunnerResult extends Outcome {
  type: 'result';
  index: number;
  seed: number;
  inputBytes: number;
  seedFile: string;
  steps: string[];
  ms: number;
  /** heapUsed + arrayBuffers growth, bytes. */
  allocated: number;
  /** Peak RSS above the RSS at the start of the input, bytes (0 when the peak did not rise). */
  peakRssGrowth: number;
}

export type RunnerMessage =
  | { type: 'ready'; seeds: Array<{ path: string; bytes: number; structureBytes: number }> }
  | { type: 'init-error'; error: string }
  | RunnerResult;

const gc = (globalThis as { gc?: (options?: { type: 'major' | 'minor'; execution: 'sync' }) => void }).gc;

/** Heap + ArrayBuffer bytes after the seeds were loaded and collected. */
let baseline = 0;
/** Old garbage allowed to pile up before a full collection (a full one per input costs more than the input). */
const GARBAGE_BEFORE_FULL_GC = 192 * 2 ** 20;

function collect(): NodeJS.MemoryUsage {
  gc?.({ type: 'minor', execution: 'sync' });
  let usage = process.memoryUsage();
  if (usage.heapUsed + usage.arrayBuffers > baseline + GARBAGE_BEFORE_FULL_GC) {
    gc?.();
    usage = process.memoryUsage();
  }
  return usage;
}

function send(message: RunnerMessage): void {
  process.send!(message);
}

function runOne(loaded: LoadedFormat, index: number, seed: number): RunnerResult {
  const input = buildInput(loaded, seed);
  const before = collect();
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const keep: unknown[] = [];
  const t0 = performance.now();
  const outcome = exercise(loaded, input, keep);
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  const peakAfter = process.resourceUsage().maxRSS * 1024;
  keep.length = 0;
  return {
    type: 'result', index, seed, ...outcome, inputBytes: input.bytes.length, seedFile: input.seedFile, steps: input.steps, ms,
    allocated: after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers),
    peakRssGrowth: peakAfter > peakBefore ? peakAfter - before.rss : 0,
  };
}

function main(): void {
  let loaded: LoadedFormat | undefined;
  process.on('message', async (message: RunnerInit | RunnerRun) => {
    if (message.type === 'init') {
      try {
        const format = findFormat(message.format);
        if (!format) throw new Error(`unknown format ${message.format}`);
        await format.load?.();
        loaded = loadFormat(format, message.files, message.modelDir);
        gc?.();
        const usage = process.memoryUsage();
        baseline = usage.heapUsed + usage.arrayBuffers;
        send({
          type: 'ready',
          seeds: loaded.seeds.map((s) => ({ path: s.path, bytes: s.bytes.length, structureBytes: s.structureCumulative[s.structureCumulative.length - 1] ?? 0 })),
        });
      } catch (e) {
        send({ type: 'init-error', error: (e as Error).stack ?? String(e) });
      }
      return;
    }
    if (message.type === 'run' && loaded) send(runOne(loaded, message.index, message.seed));
  });
  process.on('disconnect', () => process.exit(0));
}

// Only as a forked child: `node --test dist/test/` also runs every file under test/.
if (process.argv.includes('--prunepack-fuzz-runner') && process.send) main();
