/**
 * Benchmark: `convert --to tflite-sparse` of a generated FULLY_CONNECTED model (~1 GB at
 * BENCH_SCALE=1, float32, 80% zeros at random positions), against reading and writing the same
 * bytes with plain `fs` in the same process; peak RSS of a fresh process as a ratio to the model
 * size; and the encode stage (analysis + encoding of every weight) with 2 threads against 1.
 * Rows are returned to bench/run.ts. Usable alone for one-off sizes:
 *   node dist/bench/convert-scale.js generate FILE BYTES [--offset-buffers]
 *   node dist/bench/convert-scale.js convert-rss CONVERT-ARGS...   (prints the peak RSS)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { layoutTflite } from '../converters/tflite/write.js';
import { readTfliteDocument } from '../converters/tflite/read.js';
import { sparsifyTfliteAsync } from '../converters/tflite/sparse-write.js';
import { readModelSource, writeFileAtomic } from '../src/io/files.js';
import { closeSharedPools } from '../src/parallel/pool.js';
import { RUNTIME_CHECK_MAX_BYTES } from '../src/cli/convert.js';
import { mulberry32 } from '../src/random.js';
import { bestOf } from './timing.js';

export interface Row { benchmark: string; metric: string; value: number; target?: string }

const MB = 1024 * 1024;
const WIDTH = 2048;

/**
 * Writes a chain of WIDTH x WIDTH FULLY_CONNECTED layers holding about `sizeBytes` of float32
 * weights, `zeros` of them zero at random positions (what magnitude pruning leaves). Returns the
 * file size. `offsetBuffers` addresses the weights with Buffer.offset/size as files over 2 GB do.
 */
export function generateSparseFcModel(file: string, sizeBytes: number, options: { zeros?: number; seed?: number; offsetBuffers?: boolean } = {}): number {
  const zeros = options.zeros ?? 0.8;
  const random = mulberry32(options.seed ?? 1);
  const g = new TfliteGraphBuilder();
  const layers = Math.max(2, Math.round(sizeBytes / (WIDTH * WIDTH * 4)));
  let x = g.tensor('input', TensorType.FLOAT32, [1, WIDTH]);
  const input = x;
  for (let l = 0; l < layers; l++) {
    const w = new Float32Array(WIDTH * WIDTH);
    for (let i = 0; i < w.length; i++) {
      const r = random();
      // Nonzeros in +-[0.01, 0.06): never rounded to zero.
      if (r >= zeros) w[i] = (r - zeros < (1 - zeros) / 2 ? -1 : 1) * (0.01 + 0.05 * random());
    }
    const wt = g.constant(`dense${l}/weights`, TensorType.FLOAT32, [WIDTH, WIDTH], new Uint8Array(w.buffer));
    const y = g.tensor(`dense${l}/out`, TensorType.FLOAT32, [1, WIDTH]);
    g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, wt, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    x = y;
  }
  const layout = layoutTflite(g.finish([input], [x], 'prunepack convert benchmark model (synthetic, 80% zeros)'), { forceOffsetBuffers: options.offsetBuffers });
  writeFileAtomic(file, layout.totalSize, [{ position: 0, bytes: layout.head }, ...layout.pieces]);
  return layout.totalSize;
}

/** Best wall time and best CPU time (user + system of every thread, ms) of `repeats` runs. */
async function bestOfWithCpu(repeats: number, fn: () => Promise<void>): Promise<{ wall: number; cpu: number }> {
  let wall = Infinity;
  let cpu = Infinity;
  for (let i = 0; i < repeats; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall = Math.min(wall, performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu = Math.min(cpu, (c.user + c.system) / 1000);
  }
  return { wall, cpu };
}

/** `prunepack convert ...` in this process, its summary printed to nowhere. */
async function convertInProcess(args: string[]): Promise<void> {
  const { runConvert } = await import('../src/cli/convert.js');
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    const code = await runConvert(args);
    if (code !== 0) throw new Error(`convert exited with ${code}`);
  } finally {
    process.stdout.write = write;
  }
}

/** Peak RSS of `prunepack convert ARGS` in a fresh process (bytes). */
function convertPeakRss(args: string[]): number {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'convert-rss', ...args], { encoding: 'utf8' });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`convert ${args.join(' ')} failed: ${r.stderr}`);
  return Number((JSON.parse(last) as { maxRss: number }).maxRss);
}

export interface ConvertScaleCase {
  name: string;
  model: string;
  out: string;
  size: number;
  rows: Row[];
}

/**
 * Part 1, to run while this process is small (a child's peak RSS starts at its parent's on Linux,
 * fork copies it): generates the model in a child, then peak RSS of `convert` in fresh processes.
 */
export function convertScaleMemory(dir: string, sizeBytes: number): ConvertScaleCase {
  const model = path.join(dir, 'convert-scale.tflite');
  const out = path.join(dir, 'convert-scale.sparse.tflite');
  const generated = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'generate', model, String(sizeBytes)], { encoding: 'utf8' });
  if (generated.status !== 0) throw new Error(`generating the convert benchmark model failed: ${generated.stderr}`);
  const size = Number(generated.stdout.trim());
  const name = `convert tflite-sparse ${Math.round(size / MB)} MB, 80% zeros`;
  const rows: Row[] = [{ benchmark: name, metric: 'model bytes', value: size }];
  const args = (...extra: string[]) => [model, '--to', 'tflite-sparse', '-o', out, '--force', ...extra];
  rows.push({ benchmark: name, metric: 'peak RSS / model size, --no-verify (fresh process)', value: convertPeakRss(args('--no-verify')) / size, target: '<= 2' });
  rows.push({ benchmark: name, metric: 'peak RSS / model size, default (verified)', value: convertPeakRss(args()) / size, target: '<= 2' });
  return { name, model, out, size, rows };
}

/**
 * Part 2, in this process: time against plain fs read + write of the same bytes, with and without
 * the verification, with 2 threads and 1; then the encode stage alone with 2 threads against 1.
 */
export async function convertScaleTime(c: ConvertScaleCase): Promise<Row[]> {
  const { name, model, out, size } = c;
  const rows = [...c.rows];
  const args = (...extra: string[]) => [model, '--to', 'tflite-sparse', '-o', out, '--force', ...extra];
  const copy = `${model}.copy`;
  const baseline = await bestOf(2, () => fs.writeFileSync(copy, fs.readFileSync(model)));
  fs.rmSync(copy, { force: true });
  const noVerify = await bestOf(2, () => convertInProcess(args('--no-verify')));
  const noVerify1 = await bestOf(1, () => convertInProcess(args('--no-verify', '--jobs', '1')));
  const verified = await bestOf(1, () => convertInProcess(args()));
  const runtimeChecked = size <= RUNTIME_CHECK_MAX_BYTES;
  rows.push(
    { benchmark: name, metric: 'baseline: fs read + write of the same bytes (ms)', value: Math.round(baseline) },
    { benchmark: name, metric: 'time / baseline, --no-verify (default --jobs)', value: noVerify / baseline, target: '<= 3' },
    { benchmark: name, metric: 'time / baseline, --no-verify --jobs 1', value: noVerify1 / baseline },
    { benchmark: name, metric: `time / baseline, default (read-back check${runtimeChecked ? ' + runtime check' : '; no runtime check above 512 MiB'})`, value: verified / baseline },
    { benchmark: name, metric: 'verification cost: time default / time --no-verify', value: verified / noVerify },
  );

  // The encode stage alone (densify, plan, encode, lay out), weights shared with the workers.
  // CPU time (user + system, every thread of this process) alongside: on a loaded machine the
  // wall-time ratio of 2 threads to 1 says little, the extra CPU the second thread costs does.
  const source = readModelSource(model, { shared: true });
  const doc = readTfliteDocument(source.bytes, { fileSize: source.fileSize, readRange: source.readRange });
  // --jobs 2 runs on the process's shared pool (src/parallel/pool.ts sharedPool), its worker
  // started by the convert runs above: warm, as in a pipeline converting model after model or
  // when `convert` starts it while reading the model. The same with a pool started inside the
  // stage (one call, cold worker) is reported beside it.
  const one = await bestOfWithCpu(3, async () => { await sparsifyTfliteAsync(doc, { jobs: 1 }); });
  const two = await bestOfWithCpu(3, async () => { await sparsifyTfliteAsync(doc, { jobs: 2 }); });
  await closeSharedPools();
  const cold = await bestOfWithCpu(1, async () => { await sparsifyTfliteAsync(doc, { jobs: 2 }); });
  rows.push(
    { benchmark: name, metric: 'encode stage, --jobs 1 (ms)', value: Math.round(one.wall) },
    { benchmark: name, metric: 'encode stage speed-up, --jobs 2 vs --jobs 1', value: one.wall / two.wall, target: '>= 1.6' },
    { benchmark: name, metric: 'encode stage speed-up, --jobs 2 with its worker started inside the stage (one call)', value: one.wall / cold.wall },
    { benchmark: name, metric: 'encode stage CPU ms (all threads), --jobs 1', value: Math.round(one.cpu) },
    { benchmark: name, metric: 'encode stage CPU ms (all threads), --jobs 2', value: Math.round(two.cpu) },
    { benchmark: name, metric: 'load average (1 min) after the encode stage', value: os.loadavg()[0]! },
  );
  for (const f of [model, out]) fs.rmSync(f, { force: true });
  return rows;
}

/** `convert` with the runtime check, on a model small enough for the WASM runtime (what the check costs). */
export async function convertRuntimeCheckTime(dir: string, sizeBytes: number): Promise<Row[]> {
  const model = path.join(dir, 'convert-check.tflite');
  const out = path.join(dir, 'convert-check.sparse.tflite');
  const size = generateSparseFcModel(model, Math.min(sizeBytes, RUNTIME_CHECK_MAX_BYTES / 2));
  const name = `convert tflite-sparse ${Math.round(size / MB)} MB, 80% zeros`;
  const baseline = await bestOf(2, () => fs.writeFileSync(`${model}.copy`, fs.readFileSync(model)));
  const noVerify = await bestOf(2, () => convertInProcess([model, '--to', 'tflite-sparse', '-o', out, '--force', '--no-verify']));
  const checked = await bestOf(1, () => convertInProcess([model, '--to', 'tflite-sparse', '-o', out, '--force']));
  for (const f of [model, out, `${model}.copy`]) fs.rmSync(f, { force: true });
  return [
    { benchmark: name, metric: 'model bytes', value: size },
    { benchmark: name, metric: 'time / baseline, --no-verify', value: noVerify / baseline },
    { benchmark: name, metric: 'time / baseline, default (read-back check + LiteRT runtime check)', value: checked / baseline },
  ];
}

const argv = process.argv.slice(2);
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (argv[0] === 'generate') {
    console.log(generateSparseFcModel(argv[1]!, Number(argv[2]), { offsetBuffers: argv.includes('--offset-buffers') }));
  } else if (argv[0] === 'convert-rss') {
    await convertInProcess(argv.slice(1));
    console.log(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024 }));
  }
}
