/**
 * Benchmark: a streaming `audit` of a generated float32 TFLite model (80% zeros), against reading
 * the same file once in the same process (16 MiB reads into one reused buffer, the cheapest way
 * to see every byte: the baseline the targets are judged against). Also reported: CPU time (all
 * threads, less sensitive to other load than wall time) against the same read's, and a second,
 * slower baseline, fs.readFileSync of the whole file (not a target). Peak RSS of the audit runs
 * in a fresh child process and is compared with the bound: 1.5 x the largest weight +
 * 200 MB.
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { auditFileStreaming } from '../src/audit/parallel.js';
import { defaultJobs } from '../src/parallel/pool.js';
import { bestOf } from './timing.js';
import { generateTfliteModel } from './tflite-io.js';

const MB = 1024 * 1024;

export interface BenchRow { benchmark: string; metric: string; value: number; target?: string }

/** Reads `file` once, front to back, into one reused 16 MiB buffer; returns a checksum. */
export function readOnce(file: string): number {
  const fd = fs.openSync(file, 'r');
  const buffer = new Uint8Array(16 * MB);
  let sum = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      sum = (sum + buffer[n - 1]!) | 0;
    }
  } finally {
    fs.closeSync(fd);
  }
  return sum;
}

/** The library call behind `prunepack audit FILE --stream --jobs N --json`. */
export async function streamingAudit(file: string, jobs: number): Promise<{ zeros: number; largestWeight: number; weights: number }> {
  const { report } = await auditFileStreaming(file, { top: null, jobs });
  const largestWeight = Math.max(...report.weights.map((w) => w.storedBytes));
  return { zeros: report.totals.zeros, largestWeight, weights: report.weights.length };
}

/** Child entry: `node audit-stream.js --child FILE JOBS` prints the audit's peak RSS (worker threads included). */
async function child(file: string, jobs: number): Promise<void> {
  const r = await streamingAudit(file, jobs);
  console.log(JSON.stringify({ ...r, maxRss: process.resourceUsage().maxRSS * 1024 }));
}

export async function benchAuditStream(file: string, sizeBytes: number, repeats = 5): Promise<BenchRow[]> {
  // Generated in a child: on Linux a child's peak RSS starts at its parent's size when it is
  // spawned, so this process must stay small until the memory cases below have run.
  if (!fs.existsSync(file)) {
    const generated = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--generate', file, String(sizeBytes)], { encoding: 'utf8' });
    if (generated.status !== 0) throw new Error(`generating the model failed: ${generated.stderr}`);
  }
  const size = fs.statSync(file).size;
  const name = `audit --stream, ${Math.round(size / MB)} MB float32 TFLite, 80% zeros`;
  const jobs = defaultJobs();
  const rssOf = (j: number) => {
    const measured = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', file, String(j)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (measured.status !== 0) throw new Error(`audit child failed: ${measured.stderr}`);
    return JSON.parse(measured.stdout.trim().split('\n').pop()!) as { maxRss: number; largestWeight: number; weights: number };
  };
  const { maxRss, largestWeight, weights } = rssOf(jobs);
  const maxRssOne = jobs === 1 ? maxRss : rssOf(1).maxRss;
  readOnce(file); // warm the page cache for both
  // CPU time of this process (every thread) per run, best of the runs.
  let readCpu = Infinity;
  let auditCpu = Infinity;
  let oneCpu = Infinity;
  const cpu = async (fn: () => unknown): Promise<number> => {
    const c = process.cpuUsage();
    await fn();
    const d = process.cpuUsage(c);
    return (d.user + d.system) / 1000;
  };
  // Interleaved: the baseline before and after the audits, the best of each.
  let readMs = await bestOf(repeats, async () => { readCpu = Math.min(readCpu, await cpu(() => readOnce(file))); });
  const oneMs = await bestOf(repeats, async () => { oneCpu = Math.min(oneCpu, await cpu(() => streamingAudit(file, 1))); });
  const auditMs = await bestOf(repeats, async () => { auditCpu = Math.min(auditCpu, await cpu(() => streamingAudit(file, jobs))); });
  readMs = Math.min(readMs, await bestOf(repeats, async () => { readCpu = Math.min(readCpu, await cpu(() => readOnce(file))); }));
  const wholeMs = await bestOf(repeats, () => fs.readFileSync(file).length);
  const bound = 1.5 * largestWeight + 200 * MB;
  return [
    { benchmark: name, metric: 'model bytes', value: size },
    { benchmark: name, metric: 'weights', value: weights },
    { benchmark: name, metric: `time / reading the file once (--jobs ${jobs})`, value: auditMs / readMs, target: '<= 1.5 (issue 8), <= 2 (issue 7)' },
    { benchmark: name, metric: 'time / reading the file once (--jobs 1)', value: oneMs / readMs },
    { benchmark: name, metric: `speed-up --jobs ${jobs} over --jobs 1`, value: oneMs / auditMs },
    { benchmark: name, metric: 'audit ms', value: Math.round(auditMs) },
    { benchmark: name, metric: 'read ms', value: Math.round(readMs) },
    { benchmark: name, metric: `CPU time (all threads) / CPU time of reading the file once (--jobs ${jobs})`, value: auditCpu / readCpu },
    { benchmark: name, metric: 'CPU time / CPU time of reading the file once (--jobs 1)', value: oneCpu / readCpu },
    { benchmark: name, metric: 'time / fs.readFileSync of the whole file (second baseline, not a target)', value: auditMs / wholeMs },
    { benchmark: name, metric: `peak RSS bytes (--jobs ${jobs})`, value: maxRss },
    { benchmark: name, metric: `peak RSS / (1.5 x largest weight + 200 MB) (--jobs ${jobs})`, value: maxRss / bound, target: '<= 1' },
    { benchmark: name, metric: 'peak RSS / (1.5 x largest weight + 200 MB) (--jobs 1)', value: maxRssOne / bound, target: '<= 1' },
    { benchmark: name, metric: 'peak RSS / model size', value: maxRss / size },
  ];
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(argv[1]!, Number(argv[2] ?? '1'));
else if (argv[0] === '--generate') generateTfliteModel(argv[1]!, Number(argv[2]));
// `node audit-stream.js --bench FILE SIZE`: the benchmark in a fresh process, rows as JSON (bench/run.ts).
else if (argv[0] === '--bench') console.log(JSON.stringify(await benchAuditStream(argv[1]!, Number(argv[2]))));
