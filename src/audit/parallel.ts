/**
 * A streaming audit on several threads: the calling thread and jobs - 1 worker threads each open
 * the model file in pages and take weights from one shared queue (largest first, an atomic
 * counter in a SharedArrayBuffer), so a thread slowed down by other load simply takes fewer; the
 * calling thread then assembles the report. Each thread reads one weight at a time straight into
 * its own kernel's memory (src/audit/zero-bits-wasm.ts), so jobs threads hold about jobs weights.
 * Per weight the work is the same function as on one thread (`streamWeight`), so the report is
 * identical to a single-threaded streaming audit. Node-only.
 */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { openModel } from '../index.js';
import { defaultJobs } from '../parallel/pool.js';
import { PrunepackError, type ErrorCode } from '../errors.js';
import type { Model } from '../model/types.js';
import { auditModel, streamWeight, type AuditOptions, type RangeTarget, type StreamedWeight } from './audit.js';
import type { AuditReport } from './report.js';

/** Message from a worker: one weight done, or the worker's failure. */
export type WorkerMessage =
  | { kind: 'weight'; index: number; result: StreamedWeight; bytes: number }
  | { kind: 'error'; message: string; code?: string; details?: { format?: string; location?: string; expected?: string; found?: string; hint?: string } };

export interface WorkerTask {
  file: string;
  /** Int32Array(1) over a SharedArrayBuffer: the next position in queueOrder(model) to take. */
  next: SharedArrayBuffer;
  gzipLevel: 6 | 9;
  gzipWeights: number | null;
  zeroPatterns: boolean;
  pruneCost: boolean;
}

/** Stored bytes below which worker threads cost more than they save. */
export const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;


/** Weight indices, largest stored bytes first (ties by index): the order threads take them in. */
export function queueOrder(model: Model): number[] {
  return model.weights.map((w, i) => ({ i, bytes: w.storedByteLength ?? w.bytes.length }))
    .sort((a, b) => b.bytes - a.bytes || a.i - b.i).map((x) => x.i);
}

/** The paged file of a source opened with `{ paged: true }` as a RangeTarget (PagedFile has readNextRangeInto). */
export function rangeTargetOf(source: { paged?: object }): RangeTarget | undefined {
  const p = source.paged as Partial<RangeTarget> | undefined;
  return p && typeof p.readNextRangeInto === 'function' ? p as RangeTarget : undefined;
}

/** Takes weights from the shared queue until it is empty; `done` gets each result. */
export function drainQueue(model: Model, task: Omit<WorkerTask, 'file'>, paged: RangeTarget | undefined,
  done: (index: number, result: StreamedWeight, bytes: number) => void): void {
  const next = new Int32Array(task.next);
  const order = queueOrder(model);
  for (;;) {
    const k = Atomics.add(next, 0, 1);
    if (k >= order.length) return;
    const index = order[k]!;
    const weight = model.weights[index]!;
    const bytes = weight.storedByteLength ?? weight.bytes.length;
    const deep = task.gzipWeights === null || index < task.gzipWeights;
    done(index, streamWeight(model, index, {
      gzipLevel: task.gzipLevel, deep, zeroPattern: task.zeroPatterns, pruneCost: task.pruneCost, ...(paged ? { paged } : {}),
    }), bytes);
  }
}

/** Stored into the queue counter to stop every thread after its current weight. */
export const QUEUE_STOP = 0x3fffffff;

/**
 * `audit --stream` of `file` with `jobs` threads (default: one per core; 1, or a model under
 * PARALLEL_MIN_BYTES of weights, runs on the calling thread). The worker threads are started
 * first (starting one takes about as long as reading 1 GB from the page cache), and open the
 * file and order the weights themselves while this thread does the same.
 */
export async function auditFileStreaming(file: string, options: AuditOptions & { jobs?: number; parallelMinBytes?: number } = {}): Promise<{ report: AuditReport; model: Model; threads: number }> {
  const jobs = Math.max(1, Math.floor(options.jobs ?? defaultJobs()));
  const minBytes = options.parallelMinBytes ?? PARALLEL_MIN_BYTES;
  let fileSize = 0;
  try { fileSize = fs.statSync(file).size; } catch { /* openModel reports it */ }
  const gzipWeights = options.gzipWeights === undefined ? 0 : options.gzipWeights;
  const task: WorkerTask = {
    file, next: new SharedArrayBuffer(4), gzipLevel: options.gzipLevel ?? 6, gzipWeights,
    zeroPatterns: (options.zeroPatterns ?? 0) > 0, pruneCost: options.pruneCost ?? false,
  };
  const t0 = performance.now();
  const streamed = new Map<number, StreamedWeight>();
  let done = 0;
  let total = 0;
  const record = (index: number, result: StreamedWeight, bytes: number) => {
    streamed.set(index, result);
    done += bytes;
    options.onProgress?.({ phase: 'analyzing weights', done, total, item: result.row.name });
  };
  const workers: Worker[] = [];
  const finished = Promise.all(Array.from({ length: jobs > 1 && fileSize >= minBytes ? jobs - 1 : 0 }, () => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: task });
    workers.push(worker);
    let failed = false;
    worker.on('message', (m: WorkerMessage) => {
      if (m.kind === 'weight') {
        record(m.index, m.result, m.bytes);
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
  const stopWorkers = async () => {
    Atomics.store(new Int32Array(task.next), 0, QUEUE_STOP);
    finished.catch(() => { /* the error reported is this thread's */ });
    await Promise.allSettled(workers.map((w) => w.terminate()));
  };

  let model: Model;
  let paged: RangeTarget | undefined;
  try {
    const opened = openModel(file, { paged: true });
    model = opened.model;
    paged = rangeTargetOf(opened.source);
  } catch (e) {
    await stopWorkers();
    throw e;
  }
  total = model.weights.reduce((n, w) => n + (w.storedByteLength ?? w.bytes.length), 0);
  const { jobs: _j, parallelMinBytes: _p, ...auditOptions } = options;
  const base: AuditOptions = { ...auditOptions, file: options.file ?? file, streaming: true, ...(paged ? { paged } : {}) };
  if (workers.length === 0 || total < minBytes || model.weights.length < 2) {
    if (workers.length > 0) await stopWorkers();
    return { report: auditModel(model, base), model, threads: 1 };
  }
  // This thread takes weights from the same queue while the workers start and run.
  try {
    drainQueue(model, task, paged, record);
  } catch (e) {
    await stopWorkers();
    throw e;
  }
  await finished;
  const threads = 1 + workers.length;
  const analyzeMs = Math.round(performance.now() - t0);
  const report = auditModel(model, { ...base, streamed });
  report.timings.analyze = analyzeMs;
  report.notes.push(`analysed on ${threads} threads (--jobs)`);
  return { report, model, threads };
}
