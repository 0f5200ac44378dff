/**
 * TF.js benchmarks (called from bench/run.ts; `node dist/bench/tfjs-decode.js` runs them alone,
 * `node dist/bench/tfjs-decode.js sizes` prints the size table of docs/tfjs-sparse.md section 9).
 *
 * - benchTfjsDecode: the prunepack/tfjs loader decoding a generated float32 model with 80% zeros
 *   (decodeTfjsArtifacts, all shards in memory), against allocating one buffer and copying the
 *   dense shards into it, which is what TF.js does for a dense model. Best of 3, interleaved.
 * - benchTfjsShards: peak RSS of reading a model of many shards with the plugin and writing it
 *   back (`--to tfjs`), in a fresh process, against reading and writing the same files with fs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'fflate';
import { writeTfjsFiles } from '../converters/tfjs/files.js';
import { layoutTfjs, readTfjs } from '../converters/tfjs/index.js';
import { decodeTfjsArtifacts } from '../converters/tfjs/loader.js';
import { openModel, pruneModel } from '../src/index.js';
import { mulberry32 } from '../src/random.js';

export interface BenchRow { benchmark: string; metric: string; value: number; target?: string }

const MB = 1024 * 1024;
const TENSOR = 1024 * 1024; // elements of one generated weight (4 MiB of float32)
const self = fileURLToPath(import.meta.url);

/** A graph-model model.json and its dense shards: float32 [1024, 1024] weights with `zeros` exact zeros, about `sizeBytes` in all. */
export function generateTfjsModel(sizeBytes: number, shardCount: number, zeros = 0.8): { json: string; shards: Map<string, Uint8Array> } {
  const tensors = Math.max(1, Math.round(sizeBytes / (TENSOR * 4)));
  const rand = mulberry32(7);
  const data = new Uint8Array(tensors * TENSOR * 4);
  const values = new Float32Array(data.buffer);
  for (let i = 0; i < values.length; i++) if (rand() >= zeros) values[i] = (rand() - 0.5) * (rand() + 0.01);
  const shardBytes = Math.ceil(data.length / shardCount);
  const shards = new Map<string, Uint8Array>();
  const count = Math.ceil(data.length / shardBytes);
  for (let s = 0; s < count; s++) shards.set(`group1-shard${s + 1}of${count}.bin`, data.subarray(s * shardBytes, Math.min(data.length, (s + 1) * shardBytes)));
  const weights = Array.from({ length: tensors }, (_, t) => ({ name: `dense_${t}/kernel`, shape: [1024, 1024], dtype: 'float32' }));
  const json = JSON.stringify({
    format: 'graph-model', generatedBy: 'prunepack benchmark', convertedBy: null,
    modelTopology: { node: weights.map((w) => ({ name: w.name, op: 'Const', attr: {} })), versions: { producer: 1 } },
    weightsManifest: [{ paths: [...shards.keys()], weights }],
  });
  return { json, shards };
}

function best(fn: () => void, into: { ms: number }): void {
  const start = performance.now();
  fn();
  into.ms = Math.min(into.ms, performance.now() - start);
}

/** Loader decode speed against allocate + copy of the same dense bytes (target: within 3x). */
export function benchTfjsDecode(sizeBytes = 100 * MB): BenchRow[] {
  const { json, shards } = generateTfjsModel(sizeBytes, Math.ceil(sizeBytes / (4 * MB)));
  const dense = [...shards.values()];
  const denseBytes = dense.reduce((n, s) => n + s.length, 0);
  const model = readTfjs(json, { shards: (p) => shards.get(p)! });
  let start = performance.now();
  const layout = layoutTfjs(model, 'tfjs-sparse');
  const encodeMs = performance.now() - start;
  // The shard files as a browser fetches them: one buffer each.
  const files = layout.shards.map((s) => {
    const file = new Uint8Array(s.length);
    let at = 0;
    for (const c of s.chunks) { file.set(c, at); at += c.length; }
    return file;
  });
  const first = new Uint8Array(decodeTfjsArtifacts(layout.modelJson, files).weightData!);
  let offset = 0;
  for (const s of dense) {
    if (!Buffer.from(first.buffer, offset, s.length).equals(s)) throw new Error('decoded weights differ from the dense model');
    offset += s.length;
  }
  const decode = { ms: Infinity };
  const copy = { ms: Infinity };
  for (let rep = 0; rep < 3; rep++) {
    best(() => decodeTfjsArtifacts(layout.modelJson, files), decode);
    best(() => {
      const out = new Uint8Array(denseBytes);
      let at = 0;
      for (const s of dense) { out.set(s, at); at += s.length; }
    }, copy);
  }
  const name = `tfjs-sparse decode ${Math.round(denseBytes / MB)} MB float32 80% zeros`;
  return [
    { benchmark: name, metric: 'dense bytes', value: denseBytes },
    { benchmark: name, metric: 'tfjs-sparse bytes / dense', value: layout.weightBytes / denseBytes },
    { benchmark: name, metric: 'decode ms', value: decode.ms },
    { benchmark: name, metric: 'allocate + copy dense ms', value: copy.ms },
    { benchmark: name, metric: 'decode / allocate + copy', value: decode.ms / copy.ms, target: '<= 3' },
    { benchmark: name, metric: 'decode MB/s of dense weights', value: denseBytes / MB / (decode.ms / 1000) },
    { benchmark: name, metric: 'encode ms (cost model + entropy stage)', value: encodeMs },
  ];
}

/**
 * Runs `case` in a fresh process and returns its peak RSS. Through an intermediate process: on
 * Linux a child's peak RSS starts at its parent's RSS at fork time, and the benchmark parent may
 * be large; the intermediate is small when it forks the measured process.
 */
function peakRss(caseName: string, ...args: string[]): number {
  const r = spawnSync(process.execPath, [self, '--launch', caseName, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`tfjs bench child ${caseName} failed: ${r.stderr}`);
  return Number(JSON.parse(r.stdout.trim().split('\n').pop()!).maxRss);
}

function listFiles(folder: string): string[] {
  return fs.readdirSync(folder).map((n) => path.join(folder, n)).sort();
}

async function child(caseName: string, args: string[]): Promise<void> {
  if (caseName === 'generate') {
    const [folder, size, count] = args as [string, string, string];
    const { json, shards } = generateTfjsModel(Number(size), Number(count));
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, 'model.json'), json);
    for (const [name, bytes] of shards) fs.writeFileSync(path.join(folder, name), bytes);
  } else if (caseName === 'fs-copy') {
    // The baseline: every file read whole and written to another folder.
    const [from, to] = args as [string, string];
    fs.mkdirSync(to, { recursive: true });
    const read = listFiles(from).map((f) => ({ name: path.basename(f), bytes: fs.readFileSync(f) }));
    for (const f of read) fs.writeFileSync(path.join(to, f.name), f.bytes);
  } else if (caseName === 'tfjs-rw') {
    const [from, to, shardSize] = args as [string, string, string];
    const { model } = openModel(path.join(from, 'model.json'));
    await writeTfjsFiles(model, to, { target: 'tfjs', shardSize: Number(shardSize), force: true });
  } else if (caseName !== 'idle') {
    throw new Error(`unknown case ${caseName}`);
  }
  console.log(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024 }));
}

/** Peak RSS of plugin read + `--to tfjs` write of a model of `shardCount` shards (issue: hundreds of shards). */
export function benchTfjsShards(workDir: string, sizeBytes = 200 * MB, shardCount = 200): BenchRow[] {
  const source = path.join(workDir, 'tfjs-shards-in');
  peakRss('generate', source, String(sizeBytes), String(shardCount));
  const size = listFiles(source).filter((f) => f.endsWith('.bin')).reduce((n, f) => n + fs.statSync(f).size, 0);
  const shards = listFiles(source).length - 1;
  const shardSize = Math.ceil(size / shards);
  const idle = peakRss('idle');
  const baseline = peakRss('fs-copy', source, path.join(workDir, 'tfjs-shards-copy'));
  const ours = peakRss('tfjs-rw', source, path.join(workDir, 'tfjs-shards-out'), String(shardSize));
  const written = listFiles(path.join(workDir, 'tfjs-shards-out')).length - 1;
  const name = `tfjs read+write ${Math.round(size / MB)} MB in ${shards} shards`;
  for (const f of ['tfjs-shards-in', 'tfjs-shards-copy', 'tfjs-shards-out']) fs.rmSync(path.join(workDir, f), { recursive: true, force: true });
  return [
    { benchmark: name, metric: 'weight bytes', value: size },
    { benchmark: name, metric: 'shards written', value: written },
    { benchmark: name, metric: 'peak RSS / model size', value: ours / size, target: '<= 2' },
    { benchmark: name, metric: 'peak RSS above idle node / model size', value: (ours - idle) / size },
    { benchmark: name, metric: 'baseline (fs read all + write) peak RSS / model size', value: baseline / size },
  ];
}

function xz(bytes: Uint8Array): number | null {
  try {
    return execFileSync('xz', ['-9e', '-c', '-T1'], { input: bytes, maxBuffer: 1 << 30 }).length;
  } catch {
    return null;
  }
}

/** The size table of docs/tfjs-sparse.md section 9, as markdown rows. */
export function tfjsSizeTable(models: Array<{ label: string; file: string; sparsities: number[] }>): string[] {
  const lines = ['| model | zeros | dense | gzip -9 | xz -9e | tfjs-sparse | vs gzip | vs xz |', '|---|---|---|---|---|---|---|---|'];
  const n = (v: number) => v.toLocaleString('en-US');
  for (const m of models) {
    const { model } = openModel(m.file);
    m.sparsities.forEach((sparsity, i) => {
      const pruned = pruneModel(model, { sparsity }).model;
      const chunks = layoutTfjs(pruned, 'tfjs').shards.flatMap((s) => s.chunks);
      const dense = new Uint8Array(chunks.reduce((k, c) => k + c.length, 0));
      let at = 0;
      for (const c of chunks) { dense.set(c, at); at += c.length; }
      const sparse = layoutTfjs(pruned, 'tfjs-sparse').weightBytes;
      const gzip = gzipSync(dense, { level: 9 }).length;
      const x = xz(dense);
      lines.push(`| ${i === 0 ? m.label : ''} | ${Math.round(sparsity * 100)}% | ${n(dense.length)} | ${n(gzip)} | ${x === null ? 'n/a' : n(x)} | ${n(sparse)} | ${(sparse / gzip).toFixed(3)} | ${x === null ? 'n/a' : (sparse / x).toFixed(3)} |`);
    });
  }
  return lines;
}

function sizeTableModels(): Array<{ label: string; file: string; sparsities: number[] }> {
  const root = path.resolve(path.dirname(self), '../..', 'node_modules', '@vladmandic');
  const human = (name: string, kind: string) => ({ label: `${name} (${kind})`, file: path.join(root, 'human', 'models', `${name}.json`), sparsities: [0.5, 0.8, 0.9] });
  const faceApi = (name: string) => ({ label: `face-api ${name} (uint8)`, file: path.join(root, 'face-api', 'model', `${name}_model-weights_manifest.json`), sparsities: [0.5, 0.8] });
  return [
    human('blazeface', 'float32'), human('emotion', 'float32'), human('antispoof', 'float16'), human('handtrack', 'uint8'),
    faceApi('tiny_face_detector'), faceApi('face_landmark_68_tiny'), faceApi('face_recognition'), faceApi('ssd_mobilenetv1'),
  ];
}

const argv = process.argv.slice(2);
if (process.argv[1] && path.resolve(process.argv[1]) === self) {
  if (argv[0] === '--launch') {
    const r = spawnSync(process.execPath, [self, '--child', ...argv.slice(1)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.status ?? 1;
  } else if (argv[0] === '--child') {
    await child(argv[1]!, argv.slice(2));
  } else if (argv[0] === 'sizes') {
    for (const line of tfjsSizeTable(sizeTableModels())) console.log(line);
  } else {
    const scale = Number(process.env.BENCH_SCALE ?? '1');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunepack-tfjs-bench-'));
    try {
      const rows = [...benchTfjsShards(dir, 200 * MB * scale, Math.max(2, Math.round(200 * scale))), ...benchTfjsDecode(100 * MB * scale)];
      for (const r of rows) console.log(`${r.benchmark}: ${r.metric}  ${Number.isInteger(r.value) ? r.value : r.value.toFixed(3)}${r.target ? `  (target ${r.target})` : ''}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
