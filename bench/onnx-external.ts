/**
 * Benchmark: an ONNX model whose weights live in an external data file (a chain of MatMul with
 * float32 weights, about 80% zeros), generated at the requested size. Measured:
 *  - `onnx` read + write (openModel, writeOnnxFiles with external data): time against a plain
 *    copy of the same two files to new files (64 MiB reads and writes, fsync, like
 *    writeFileAtomic), in the same process; peak RSS in a fresh child process as a ratio to the
 *    model size;
 *  - `onnx-sparse` of it (no target: sparse encoding reads every weight and encodes it).
 * `node dist/bench/onnx-external.js [--size BYTES] [--rounds N] [--json]` runs it alone (the >2 GB check of
 * issue 8); bench/run.ts runs it so, in its own process, so that no child inherits a large peak RSS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeOnnxModel, type TensorSpec } from '../converters/onnx/builder.js';
import { writeOnnxFiles, type WriteOnnxFilesResult } from '../converters/onnx/files.js';
import { openModel } from '../src/index.js';
import { mulberry32 } from '../src/random.js';

export interface BenchRow { benchmark: string; metric: string; value: number; target?: string }

const WIDTH = 4096;
const PIECE = 64 * 2 ** 20;
const here = fileURLToPath(import.meta.url);

interface Paths { dir: string; model: string; data: string; out: string; sparse: string; copy: string }

function pathsIn(dir: string): Paths {
  return {
    dir, model: path.join(dir, 'model.onnx'), data: path.join(dir, 'model.onnx.data'),
    out: path.join(dir, 'out', 'model.onnx'), sparse: path.join(dir, 'sparse', 'model.onnx'), copy: path.join(dir, 'copy'),
  };
}

/**
 * Writes model.onnx + model.onnx.data: MatMul layers of [rows, 4096] float32 weights (~80% zeros)
 * adding up to about `sizeBytes`, the data file written one layer at a time. Returns the bytes of both files.
 */
export function generateOnnxExternal(dir: string, sizeBytes: number): number {
  const p = pathsIn(dir);
  const layerBytes = WIDTH * WIDTH * 4;
  const layers = Math.max(1, Math.floor(sizeBytes / layerBytes));
  const lastCols = Math.round((sizeBytes - layers * layerBytes) / (WIDTH * 4));
  const shapes: number[][] = Array.from({ length: layers }, () => [WIDTH, WIDTH]);
  if (lastCols > 0) shapes.push([WIDTH, lastCols]);
  const rand = mulberry32(20261127);
  const initializers: TensorSpec[] = [];
  const fd = fs.openSync(p.data, 'w');
  let offset = 0;
  try {
    shapes.forEach(([rows, cols], l) => {
      const w = new Float32Array(rows! * cols!);
      for (let i = 0; i < w.length; i++) w[i] = rand() < 0.8 ? 0 : rand() - 0.5;
      const bytes = new Uint8Array(w.buffer);
      for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, Math.min(PIECE, bytes.length - done), offset + done);
      initializers.push({ name: `w${l}`, dtype: 'float32', dims: [rows!, cols!], data: new Uint8Array(0), storage: { external: { location: 'model.onnx.data', offset, length: bytes.length } } });
      offset += bytes.length;
    });
  } finally {
    fs.closeSync(fd);
  }
  // x[1, 4096] -> MatMul w0 -> ... ; a last [4096, r] layer narrows the output.
  const nodes = initializers.map((t, l) => ({ opType: 'MatMul', inputs: [l === 0 ? 'x' : `h${l - 1}`, t.name!], outputs: [`h${l}`] }));
  const bytes = encodeOnnxModel({
    irVersion: 8, opsets: [{ domain: '', version: 13 }], producerName: 'prunepack benchmark (synthetic)',
    graph: {
      name: 'chain', nodes, initializers,
      inputs: [{ name: 'x', dtype: 'float32', dims: [1, WIDTH] }],
      outputs: [{ name: `h${shapes.length - 1}`, dtype: 'float32', dims: [1, shapes[shapes.length - 1]![1]!] }],
    },
  });
  fs.writeFileSync(p.model, bytes);
  return bytes.length + offset;
}

/** The baseline: both files copied through 64 MiB reads and writes, then fsynced (as writeFileAtomic does). */
export function plainCopy(files: string[], destDir: string): void {
  fs.mkdirSync(destDir, { recursive: true });
  const buffer = new Uint8Array(PIECE);
  for (const file of files) {
    const input = fs.openSync(file, 'r');
    const output = fs.openSync(path.join(destDir, path.basename(file)), 'w');
    try {
      for (let position = 0; ;) {
        const n = fs.readSync(input, buffer, 0, buffer.length, position);
        if (n === 0) break;
        for (let done = 0; done < n;) done += fs.writeSync(output, buffer, done, n - done, position + done);
        position += n;
      }
      fs.fsyncSync(output);
    } finally {
      fs.closeSync(input);
      fs.closeSync(output);
    }
  }
}

/** prunepack's path: open the model, write it (dense or sparse) with its large tensors in an external data file. */
export function prunepackWrite(model: string, out: string, target: 'onnx' | 'onnx-sparse'): WriteOnnxFilesResult {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const opened = openModel(model).model;
  return writeOnnxFiles(opened, out, { target, externalData: { location: `${path.basename(out)}.data` } });
}

/** Checks an output against the input: same weights (dtype, shape, bytes), compared one at a time. */
function assertSameWeights(a: string, b: string): void {
  const left = openModel(a).model.weights;
  const right = new Map(openModel(b).model.weights.map((w) => [w.name, w]));
  for (const w of left) {
    const o = right.get(w.name);
    if (!o || o.dtype !== w.dtype || o.shape.join() !== w.shape.join() || Buffer.compare(w.denseBytes(), o.denseBytes()) !== 0) {
      throw new Error(`benchmark output differs from the input at weight ${w.name}`);
    }
  }
}

function peakRss(caseName: string, ...args: string[]): { maxRss: number; result?: unknown } {
  const r = spawnSync(process.execPath, [here, '--child', caseName, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`child ${caseName} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { maxRss: number; result?: unknown };
}

function child(caseName: string, args: string[]): void {
  let result: unknown;
  if (caseName === 'generate') result = generateOnnxExternal(args[0]!, Number(args[1]));
  else if (caseName === 'copy') plainCopy([args[0]!, args[1]!], args[2]!);
  else if (caseName === 'onnx' || caseName === 'onnx-sparse') {
    const r = prunepackWrite(args[0]!, args[1]!, caseName);
    result = { modelBytes: r.modelBytes, externalBytes: r.externalBytes };
  } else if (caseName === 'check') assertSameWeights(args[0]!, args[1]!);
  else if (caseName !== 'idle') throw new Error(`unknown case ${caseName}`);
  console.log(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024, result }));
}

function seconds(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

/**
 * Generates a model of about `sizeBytes`, then measures. Children first (peak RSS), timing in
 * this process last: baseline and prunepack alternate, `rounds` times, the best of each kept.
 */
export function benchOnnxExternal(sizeBytes: number, options: { rounds?: number; log?: (line: string) => void } = {}): BenchRow[] {
  const rounds = options.rounds ?? 3;
  const log = options.log ?? (() => {});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunepack-bench-onnx-'));
  const p = pathsIn(dir);
  const name = `onnx external data ${(sizeBytes / 1e9).toFixed(sizeBytes < 1e9 ? 2 : 1)} GB`;
  try {
    const size = peakRss('generate', dir, String(sizeBytes)).result as number;
    log(`${name}: generated ${size} bytes in ${dir}`);
    const idle = peakRss('idle').maxRss;
    const copyRss = peakRss('copy', p.model, p.data, p.copy).maxRss;
    const dense = peakRss('onnx', p.model, p.out);
    const sparse = peakRss('onnx-sparse', p.model, p.sparse);
    const sparseResult = sparse.result as { modelBytes: number; externalBytes: number };
    // The outputs hold the input's weights (read back weight by weight, in a child).
    peakRss('check', p.model, p.out);
    peakRss('check', p.model, p.sparse);
    log(`${name}: peak RSS idle ${idle}, copy ${copyRss}, onnx ${dense.maxRss}, onnx-sparse ${sparse.maxRss}; outputs checked`);
    let copy = Infinity;
    let ours = Infinity;
    let oursSparse = Infinity;
    // Every timed write goes to new files (the previous ones removed untimed): on this ext4 disk,
    // rewriting a just-truncated file was up to 10x faster than writing a new one.
    const fresh = (folder: string) => fs.rmSync(folder, { recursive: true, force: true });
    for (let r = 0; r < rounds; r++) {
      fresh(p.copy);
      copy = Math.min(copy, seconds(() => plainCopy([p.model, p.data], p.copy)));
      fresh(path.dirname(p.out));
      ours = Math.min(ours, seconds(() => prunepackWrite(p.model, p.out, 'onnx')));
      fresh(path.dirname(p.sparse));
      oursSparse = Math.min(oursSparse, seconds(() => prunepackWrite(p.model, p.sparse, 'onnx-sparse')));
      log(`${name}: round ${r + 1}: copy ${copy.toFixed(2)} s, onnx ${ours.toFixed(2)} s, onnx-sparse ${oursSparse.toFixed(2)} s (best so far)`);
    }
    return [
      { benchmark: name, metric: 'model bytes (protobuf + data file)', value: size },
      { benchmark: name, metric: 'onnx read+write time / plain copy', value: ours / copy, target: '<= 3' },
      { benchmark: name, metric: 'onnx read+write peak RSS / model size', value: dense.maxRss / size, target: '<= 1.5' },
      { benchmark: name, metric: 'onnx read+write peak RSS above idle node / model size', value: (dense.maxRss - idle) / size },
      { benchmark: name, metric: 'plain copy seconds', value: copy },
      { benchmark: name, metric: 'plain copy peak RSS / model size', value: copyRss / size },
      { benchmark: name, metric: 'idle node peak RSS / model size', value: idle / size },
      { benchmark: name, metric: 'onnx-sparse time / plain copy', value: oursSparse / copy },
      { benchmark: name, metric: 'onnx-sparse peak RSS / model size', value: sparse.maxRss / size },
      { benchmark: name, metric: 'onnx-sparse output bytes / model size', value: (sparseResult.modelBytes + sparseResult.externalBytes) / size },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === here) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') child(argv[1]!, argv.slice(2));
  else {
    const at = argv.indexOf('--size');
    const size = at >= 0 ? Number(argv[at + 1]) : 1e9;
    const roundsAt = argv.indexOf('--rounds');
    const rows = benchOnnxExternal(size, { log: (line) => console.error(line), ...(roundsAt >= 0 ? { rounds: Number(argv[roundsAt + 1]) } : {}) });
    if (argv.includes('--json')) console.log(JSON.stringify(rows));
    else for (const r of rows) console.log(`${r.benchmark}: ${r.metric}  ${Number.isInteger(r.value) ? r.value : r.value.toFixed(3)}${r.target ? `  (target ${r.target})` : ''}`);
  }
}
