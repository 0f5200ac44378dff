/**
 * `npm run bench`: every benchmark prints ratios against a baseline measured in the same
 * process on the same data. Peak memory is measured in a fresh child process per case
 * (process.resourceUsage().maxRSS), as a ratio to the model size. Results go to
 * bench/results.json. Environment: BENCH_SCALE=0.1 shrinks every input (quick runs). The convert
 * benchmark (bench/convert-scale.ts) generates a 1 GB model at scale 1.
 * `npm run bench -- latency [--calibrate] [--engine E] [--quick]`: inference latency of
 * tflite-sparse outputs instead (bench/latency.ts). `npm run bench -- pack`: pack sizes against
 * gzip -9 and xz -9 of the dense files (bench/pack.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { generateTfliteModel, plainReadWrite, prunepackReadWrite, scratchPaths } from './tflite-io.js';
import { convertRuntimeCheckTime, convertScaleMemory, convertScaleTime, type Row as ConvertRow } from './convert-scale.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const scale = Number(process.env.BENCH_SCALE ?? '1');
const MB = 1024 * 1024;

function time(fn: () => void, repeats = 3): number {
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** Runs one case in a fresh process and returns its peak RSS in bytes. */
function peakRss(caseName: string, ...args: string[]): number {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', caseName, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child ${caseName} failed: ${r.stderr}`);
  return Number(JSON.parse(r.stdout.trim().split('\n').pop()!).maxRss);
}

async function child(caseName: string, args: string[]): Promise<void> {
  if (caseName === 'baseline') plainReadWrite(args[0]!, args[1]!);
  else if (caseName === 'tflite-rw') prunepackReadWrite(args[0]!, args[1]!);
  else if (caseName === 'generate') { console.log(JSON.stringify({ size: generateTfliteModel(args[0]!, Number(args[1])) })); return; }
  else if (caseName === 'idle') { /* Node's own footprint */ }
  else throw new Error(`unknown case ${caseName}`);
  console.log(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024 }));
}

type Row = ConvertRow;

async function main(): Promise<void> {
  const rows: Row[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunepack-bench-'));
  try {
    // 0. convert --to tflite-sparse of a generated ~1 GB model (bench/convert-scale.ts): its
    // memory cases first, while this process is small; its timing last.
    const convertScale = convertScaleMemory(dir, Math.round(1024 * MB * scale));

    // 1. TFLite read + write of a generated ~200 MB model.
    // Children inherit the parent's peak RSS on Linux (fork copies it), so every child runs
    // before this process holds anything large: generation and memory cases first, timing last.
    const paths = scratchPaths(dir);
    const generated = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', 'generate', paths.model, String(200 * MB * scale)], { encoding: 'utf8' });
    if (generated.status !== 0) throw new Error(generated.stderr);
    const size = Number(JSON.parse(generated.stdout.trim()).size);
    const idle = peakRss('idle');
    const baseRss = peakRss('baseline', paths.model, paths.copy);
    const ourRss = peakRss('tflite-rw', paths.model, paths.out);
    const baseline = time(() => plainReadWrite(paths.model, paths.copy));
    const ours = time(() => prunepackReadWrite(paths.model, paths.out));
    rows.push(
      { benchmark: 'tflite read+write', metric: 'model bytes', value: size },
      { benchmark: 'tflite read+write', metric: 'time / fs read+write', value: ours / baseline, target: '<= 3' },
      { benchmark: 'tflite read+write', metric: 'peak RSS / model size', value: ourRss / size, target: '<= 2' },
      { benchmark: 'tflite read+write', metric: 'peak RSS above idle node / model size', value: (ourRss - idle) / size },
      { benchmark: 'tflite read+write', metric: 'baseline peak RSS / model size', value: baseRss / size },
    );

    // 2. Sparsity analysis and codecs (when built).
    const sparsityModule = './sparsity.js';
    const sparsity = await import(sparsityModule).catch(() => null);
    if (sparsity?.benchSparsity) {
      const result = await sparsity.benchSparsity(Math.round(256 * MB * scale));
      for (const [metric, value] of Object.entries(result)) rows.push({ benchmark: 'sparsity 256 MB float32, 80% zeros', metric, value: value as number });
    }
    // 3. Streaming audit of a generated 1 GB model (bench/audit-stream.ts).
    // In its own process, so that its children's peak RSS does not start at this one's.
    {
      const modelFile = path.join(dir, 'audit-stream.tflite');
      const run = spawnSync(process.execPath, [path.join(here, 'audit-stream.js'), '--bench', modelFile, String(Math.round(1024 * MB * scale))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (run.status !== 0) throw new Error(`bench/audit-stream failed (exit ${run.status})`);
      rows.push(...(JSON.parse(run.stdout.trim().split('\n').pop()!) as Row[]));
      fs.rmSync(modelFile, { force: true });
    }
    // 4. tflite-sparse against the official converter on the same pruned inputs (emulated with its
    // rules, bench/official-comparison.ts), and against its published outputs normalized by the
    // dense sizes.
    const { officialComparison, comparisonRatios } = await import('./official-comparison.js');
    const comparison = officialComparison();
    for (const r of comparison) {
      const q = comparisonRatios(r);
      const name = `vs official converter: ${r.model}`;
      rows.push(
        { benchmark: name, metric: 'our dense bytes', value: r.dense, target: `official dense ${r.officialDense.toLocaleString('en-US')}` },
        { benchmark: name, metric: 'our tflite-sparse bytes', value: r.ours },
        { benchmark: name, metric: 'official emulated on the same input, bytes', value: r.emulated },
        { benchmark: name, metric: 'ours / official emulated', value: q.vsEmulated, target: '<= 1' },
        { benchmark: name, metric: 'ours (--optimize balanced) / official emulated', value: r.oursBalanced / r.emulated, target: '<= 1' },
        { benchmark: name, metric: 'official published bytes', value: r.official },
        { benchmark: name, metric: 'ours / official published, normalized by dense', value: q.vsPublishedNormalized },
        { benchmark: name, metric: 'ours / information bound', value: q.vsBound },
      );
    }
    const sum = (f: (r: typeof comparison[number]) => number) => comparison.reduce((a, r) => a + f(r), 0);
    const total = comparisonRatios({ model: 'total', dense: sum((r) => r.dense), ours: sum((r) => r.ours), oursBalanced: sum((r) => r.oursBalanced), emulated: sum((r) => r.emulated), officialDense: sum((r) => r.officialDense), official: sum((r) => r.official), bound: sum((r) => r.bound) });
    rows.push(
      { benchmark: 'vs official converter: all four', metric: 'ours / official emulated, total bytes', value: total.vsEmulated, target: '<= 0.9' },
      { benchmark: 'vs official converter: all four', metric: 'ours / official published, total bytes', value: sum((r) => r.ours) / sum((r) => r.official) },
      { benchmark: 'vs official converter: all four', metric: 'ours / official published, total, normalized by dense', value: total.vsPublishedNormalized },
    );
    // 4. ONNX with external data, ~1 GB (bench/onnx-external.ts), in its own process so that its
    // children do not inherit this process's peak RSS.
    const onnx = spawnSync(process.execPath, [path.join(here, 'onnx-external.js'), '--size', String(Math.round(1e9 * scale)), '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (onnx.status !== 0) throw new Error(`bench/onnx-external failed (exit ${onnx.status})`);
    rows.push(...(JSON.parse(onnx.stdout.trim().split('\n').pop()!) as Row[]));
    // 5. convert --to tflite-sparse at scale: time, threads, and what the runtime check costs.
    rows.push(...await convertScaleTime(convertScale), ...await convertRuntimeCheckTime(dir, Math.round(256 * MB * scale)));
    // 6. TF.js: peak RSS of read + write of a ~200 MB model in 200 shards (fresh processes), and
    // the prunepack/tfjs loader decoding a 100 MB sparse model against allocate + copy.
    const { benchTfjsShards, benchTfjsDecode } = await import('./tfjs-decode.js');
    rows.push(...benchTfjsShards(dir, 200 * MB * scale, Math.max(2, Math.round(200 * scale))), ...benchTfjsDecode(100 * MB * scale));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const width = Math.max(...rows.map((r) => `${r.benchmark}: ${r.metric}`.length));
  // The table shows the sparsity benchmark's ratios only; bench/results.json keeps every figure.
  const shown = (r: Row) => !r.benchmark.startsWith('sparsity ') || /Ratio$/.test(r.metric);
  for (const r of rows) {
    if (!shown(r)) continue;
    const v = Number.isInteger(r.value) ? r.value.toLocaleString('en-US') : r.value.toFixed(3);
    console.log(`${`${r.benchmark}: ${r.metric}`.padEnd(width)}  ${v.padStart(14)}${r.target ? `  (target ${r.target})` : ''}`);
  }
  // Keep the latency benchmark's results (`npm run bench -- latency` writes them separately).
  const resultsFile = path.join(root, 'bench', 'results.json');
  const previous = fs.existsSync(resultsFile) ? JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as { rows?: Row[]; latency?: unknown } : {};
  const latencyRows = (previous.rows ?? []).filter((r) => r.benchmark.startsWith('latency ') || r.benchmark.startsWith('pack '));
  const results = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, scale, rows: [...rows, ...latencyRows], ...(previous.latency ? { latency: previous.latency } : {}) };
  fs.writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log('written bench/results.json');
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(argv[1]!, argv.slice(2));
else if (argv[0] === 'latency') await (await import('./latency.js')).runLatencyBench(argv.slice(1)); // npm run bench -- latency
else if (argv[0] === 'pack') await (await import('./pack.js')).runPackBenchmark(); // npm run bench -- pack
else await main();
