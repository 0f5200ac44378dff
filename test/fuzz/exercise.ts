/**
 * One fuzz input, start to end: build it from its seed number, read it with the plugin, touch
 * every weight (stored and dense bytes, the inspect report), write it back with the format's
 * dense target and read that back. Every error must be a PrunepackError with a known code.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PrunepackError } from '../../src/errors.js';
import { inspectModel } from '../../src/inspect.js';
import { dtypeBits } from '../../src/model/dtype.js';
import type { FormatPlugin } from '../../src/plugin.js';
import type { Model } from '../../src/model/types.js';
import { corpusFiles, mapSeed, pluginFor, type FuzzFormat } from './formats.js';
import { makeSeed, mutateGeneric, type Seed } from './mutate.js';
import { Random } from './random.js';

export const ERROR_CODES = new Set([
  'UNKNOWN_FORMAT', 'TRUNCATED', 'CORRUPT', 'UNSUPPORTED', 'INVALID_SPARSITY', 'INVALID_ARGUMENT', 'IO',
  'UNSAFE_PATH', 'VERIFY_FAILED', 'RUNTIME',
]);

export type Stage = 'read' | 'weights' | 'inspect' | 'write' | 'reread';

export interface Outcome {
  /** accepted: every stage passed; rejected: a PrunepackError; escape: anything else. */
  kind: 'accepted' | 'rejected' | 'escape';
  stage: Stage | 'done';
  code?: string;
  /** Error class and first line of the message (escapes, and rejections of our own output). */
  error?: string;
  stack?: string;
  /** Weights the read model has (accepted inputs). */
  weights?: number;
  /** Dense bytes the model's stored-sparse weights declare (their shapes), 0 when none. */
  expansion: number;
}

export interface FuzzInput {
  bytes: Uint8Array;
  seed: Seed;
  seedFile: string;
  steps: string[];
  /** A companion file (shard) replaced for this input. */
  companionEdit?: { name: string; bytes: Uint8Array };
}

export interface LoadedFormat {
  format: FuzzFormat;
  plugin: FormatPlugin;
  seeds: Seed[];
  /** An empty folder standing in for the model's folder (external data, shard paths). */
  modelDir: string;
}

/** Reads and maps the seeds; `modelDir` is an empty folder passed as the model's folder. */
export function loadFormat(format: FuzzFormat, files: string[], modelDir: string): LoadedFormat {
  const plugin = pluginFor(format.id);
  if (!plugin) throw new Error(`format ${format.id} has no registered plugin`);
  const seeds = files.map((file, i) => {
    const bytes = new Uint8Array(fs.readFileSync(file));
    const seed = makeSeed(file, bytes, mapSeed(format, plugin, bytes, file));
    // Each seed reads from a folder of its own, holding copies of its companions (shards).
    seed.dir = path.join(modelDir, `seed-${i}`);
    fs.mkdirSync(seed.dir, { recursive: true });
    seed.companions = format.companions?.(file, bytes) ?? [];
    for (const name of seed.companions) {
      const to = path.join(seed.dir, name);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      if (fs.existsSync(to)) continue;
      // Runners start together: copy under a private name, then rename into place.
      const temp = `${to}.${process.pid}.tmp`;
      fs.copyFileSync(path.join(path.dirname(file), name), temp);
      fs.renameSync(temp, to);
    }
    return seed;
  });
  if (!seeds.length) throw new Error(`no seed files for ${format.id}`);
  return { format, plugin, seeds, modelDir };
}

export function defaultFiles(format: FuzzFormat, corpus: string[] | undefined, set: 'all' | 'ci'): string[] {
  return corpus?.length ? corpus.map((f) => path.resolve(f)) : corpusFiles(format, set);
}

/** The input for `seed`: a seed file, then structure-aware and/or generic mutations. */
export function buildInput(loaded: LoadedFormat, seed: number): FuzzInput {
  const rng = new Random(seed);
  const start = rng.pick(loaded.seeds);
  const steps: string[] = [];
  let bytes: Uint8Array | undefined;
  const { format } = loaded;
  if (format.mutate && rng.chance(format.structuralShare ?? 0.5)) {
    const mutant = format.mutate(start, rng);
    if (mutant) {
      bytes = mutant.bytes;
      steps.push(...mutant.steps);
    }
  }
  if (!bytes) bytes = mutateGeneric(start.bytes.slice(), start, rng, steps, rng.weighted([[1, 5], [2, 3], [3, 2]] as const));
  else if (rng.chance(0.3)) bytes = mutateGeneric(bytes, start, rng, steps, 1);
  const input: FuzzInput = { bytes, seed: start, seedFile: start.path, steps };
  // Formats with companion files: sometimes one of them is cut short, extended or emptied.
  if (start.companions.length && rng.chance(0.15)) {
    const name = rng.pick(start.companions);
    const original = fs.readFileSync(path.join(start.dir!, name));
    const kind = rng.int(3);
    const edited = kind === 0 ? original.subarray(0, rng.int(original.length))
      : kind === 1 ? Buffer.concat([original, Buffer.alloc(rng.range(1, 64))]) : Buffer.alloc(0);
    input.companionEdit = { name, bytes: new Uint8Array(edited) };
    steps.push(`companion ${name}: ${original.length} -> ${edited.length} bytes`);
  }
  return input;
}

/** The folder an input is read from: its seed's, or a fresh one when a companion was edited. */
function inputFolder(loaded: LoadedFormat, input: FuzzInput): { dir: string; cleanup?: () => void } {
  const seedDir = input.seed.dir ?? loaded.modelDir;
  if (!input.companionEdit) return { dir: seedDir };
  const dir = fs.mkdtempSync(path.join(loaded.modelDir, 'input-'));
  for (const name of input.seed.companions) {
    const to = path.join(dir, name);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (name === input.companionEdit.name) fs.writeFileSync(to, input.companionEdit.bytes);
    else fs.linkSync(path.join(seedDir, name), to);
  }
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Runs every stage; `keep` receives what the stages produced (alive until memory is measured). */
export function exercise(loaded: LoadedFormat, input: FuzzInput, keep: unknown[]): Outcome {
  const folder = inputFolder(loaded, input);
  try {
    return stages(loaded, input.bytes, path.join(folder.dir, path.basename(input.seedFile)), keep);
  } finally {
    folder.cleanup?.();
  }
}

function stages(loaded: LoadedFormat, bytes: Uint8Array, modelPath: string, keep: unknown[]): Outcome {
  const { plugin, format } = loaded;
  let stage: Stage = 'read';
  let expansion = 0;
  try {
    const model: Model = plugin.read({ bytes, path: modelPath, fileSize: bytes.length });
    keep.push(model);
    expansion = declaredExpansion(model);
    stage = 'weights';
    for (const w of model.weights) {
      keep.push(w.bytes, w.denseBytes());
    }
    stage = 'inspect';
    keep.push(inspectModel(model));
    stage = 'write';
    let reread: () => Model;
    if (format.writeBack) {
      reread = format.writeBack(model);
    } else {
      const written = plugin.targets[format.denseTarget]!(model);
      reread = () => plugin.read({ bytes: written, fileSize: written.length });
    }
    keep.push(reread);
    stage = 'reread';
    try {
      const again = reread();
      for (const w of again.weights) keep.push(w.denseBytes());
    } catch (e) {
      // Our writer produced bytes our reader refuses: report it as an escape with the details.
      if (e instanceof PrunepackError) {
        return { kind: 'escape', stage, expansion, code: e.code, error: `output of the ${format.denseTarget} writer is rejected by the reader: ${e.message}`, stack: e.stack };
      }
      throw e;
    }
    return { kind: 'accepted', stage: 'done', expansion, weights: model.weights.length };
  } catch (e) {
    if (e instanceof PrunepackError && ERROR_CODES.has(e.code)) return { kind: 'rejected', stage, expansion, code: e.code };
    const err = e as Error;
    return {
      kind: 'escape', stage, expansion,
      error: `${err?.constructor?.name ?? typeof e}: ${String(err?.message ?? e).split('\n')[0]!.slice(0, 300)}`,
      stack: err?.stack?.split('\n').slice(0, 12).join('\n'),
    };
  }
}

/** Dense bytes the stored-sparse weights declare through their shapes. */
function declaredExpansion(model: Model): number {
  let total = 0;
  for (const w of model.weights) {
    if (w.sparsity === undefined) continue;
    let count = 1;
    for (const d of w.shape) count = d >= 0 ? count * d : 0;
    total += Math.ceil((count * dtypeBits(w.dtype)) / 8);
  }
  return total;
}
