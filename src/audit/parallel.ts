/**
 * A streaming audit on worker threads: each worker opens the model file in pages itself and
 * analyses its share of the weights (balanced by stored bytes, largest first); the main thread
 * opens the same file (tables only) and assembles the report from their results. Per weight the
 * work is the same function as on one thread (`streamWeight`), so the report is identical to a
 * single-threaded streaming audit. Node-only.
 */
import { Worker } from 'node:worker_threads';
import { openModel } from '../index.js';
import { defaultJobs } from '../parallel/pool.js';
import { PrunepackError, type ErrorCode } from '../errors.js';
import type { Model } from '../model/types.js';
import { auditModel, type AuditOptions, type StreamedWeight } from './audit.js';
import type { AuditReport } from './report.js';

/** Message from a worker: one weight done, or the worker's failure. */
export type WorkerMessage =
  | { kind: 'weight'; index: number; result: StreamedWeight; bytes: number }
  | { kind: 'error'; message: string; code?: string; details?: { format?: string; location?: string; expected?: string; found?: string; hint?: string } };

export interface WorkerTask {
  file: string;
  indices: number[];
  gzipLevel: 6 | 9;
  gzipWeights: number | null;
  zeroPatterns: boolean;
}

/** Stored bytes below which worker threads cost more than they save. */
export const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;


/** Splits weight indices into `jobs` lists of about equal stored bytes (largest first, to the lightest list). */
export function shareWeights(model: Model, jobs: number): number[][] {
  const lists: number[][] = Array.from({ length: jobs }, () => []);
  const load = new Float64Array(jobs);
  const order = model.weights.map((w, i) => ({ i, bytes: w.storedByteLength ?? w.bytes.length }))
    .sort((a, b) => b.bytes - a.bytes || a.i - b.i);
  for (const { i, bytes } of order) {
    let k = 0;
    for (let j = 1; j < jobs; j++) if (load[j]! < load[k]!) k = j;
    lists[k]!.push(i);
    load[k] += bytes;
  }
  for (const list of lists) list.sort((a, b) => a - b);
  return lists.filter((l) => l.length > 0);
}

/**
 * `audit --stream` of `file` with `jobs` threads (default: one per core; 1, or a model under
 * PARALLEL_MIN_BYTES of weights, runs on the calling thread).
 */
export async function auditFileStreaming(file: string, options: AuditOptions & { jobs?: number; parallelMinBytes?: number } = {}): Promise<{ report: AuditReport; model: Model; threads: number }> {
  const { model } = openModel(file, { paged: true });
  const jobs = Math.max(1, Math.floor(options.jobs ?? defaultJobs()));
  const total = model.weights.reduce((n, w) => n + (w.storedByteLength ?? w.bytes.length), 0);
  const { jobs: _j, parallelMinBytes: _p, ...auditOptions } = options;
  const base: AuditOptions = { ...auditOptions, file: options.file ?? file, streaming: true };
  if (jobs === 1 || total < (options.parallelMinBytes ?? PARALLEL_MIN_BYTES) || model.weights.length < 2) {
    return { report: auditModel(model, base), model, threads: 1 };
  }
  const shares = shareWeights(model, jobs);
  const streamed = new Map<number, StreamedWeight>();
  let done = 0;
  const gzipWeights = options.gzipWeights === undefined ? 0 : options.gzipWeights;
  const t0 = performance.now();
  await Promise.all(shares.map((indices) => new Promise<void>((resolve, reject) => {
    const task: WorkerTask = { file, indices, gzipLevel: options.gzipLevel ?? 6, gzipWeights, zeroPatterns: (options.zeroPatterns ?? 0) > 0 };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: task });
    let failed = false;
    worker.on('message', (m: WorkerMessage) => {
      if (m.kind === 'weight') {
        streamed.set(m.index, m.result);
        done += m.bytes;
        options.onProgress?.({ phase: 'analyzing weights', done, total, item: m.result.row.name });
      } else {
        failed = true;
        // The worker's PrunepackError, with its code; anything else is a bug, reported as one.
        // (The message is already complete: the details are kept as fields, not appended again.)
        reject(m.code ? Object.assign(new PrunepackError(m.code as ErrorCode, m.message), m.details) : new Error(`audit worker: ${m.message}`));
      }
    });
    worker.on('error', (e) => { failed = true; reject(e); });
    worker.on('exit', (code) => {
      if (failed) return;
      if (code !== 0) reject(new Error(`an audit worker thread exited with code ${code}`));
      else resolve();
    });
  })));
  const analyzeMs = Math.round(performance.now() - t0);
  const report = auditModel(model, { ...base, streamed });
  report.timings.analyze = analyzeMs;
  report.notes.push(`analysed on ${shares.length} worker threads (--jobs)`);
  return { report, model, threads: shares.length };
}
