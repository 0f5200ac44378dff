/**
 * A streaming audit on several threads: the calling thread and jobs - 1 worker threads take
 * weights from one shared queue (largest first, an atomic counter in a SharedArrayBuffer), so a
 * thread slowed down by other load simply takes fewer; the calling thread then assembles the
 * report. Workers do not parse the model: the calling thread locates each weight's bytes in the
 * file and sends their descriptions (queue.ts); each thread reads one weight at a time straight
 * into its own kernel's memory (src/audit/zero-bits-wasm.ts), so jobs threads hold about jobs
 * weights. Per weight the work is the same function as on one thread (`streamWeight`), so the
 * report is identical to a single-threaded streaming audit. Node-only.
 */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { openModel } from '../index.js';
import { defaultJobs } from '../parallel/pool.js';
import { PrunepackError, type ErrorCode } from '../errors.js';
import type { Model } from '../model/types.js';
import { PagedFile } from '../io/paged.js';
import { ZeroBitsKernel } from './zero-bits-wasm.js';
import { auditModel, type AuditOptions, type RangeTarget, type StreamedWeight } from './audit.js';
import type { AuditReport } from './report.js';
import {
  drainQueue, locateWeights, queueOrder, QUEUE_STOP, runWeight, type WeightSpec, type WorkerJobs, type WorkerMessage, type WorkerTask,
} from './queue.js';

export { queueOrder } from './queue.js';

/** Stored bytes below which worker threads cost more than they save. */
export const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;

/** The paged file of a source opened with `{ paged: true }` (a PagedFile), or undefined. */
export function rangeTargetOf(source: { paged?: object }): PagedFile | undefined {
  return source.paged instanceof PagedFile ? source.paged : undefined;
}

/**
 * `audit --stream` of `file` with `jobs` threads (default: one per core; 1, or a file under
 * PARALLEL_MIN_BYTES, runs on the calling thread). The worker threads are started first, so they
 * load their modules while this thread opens the model; this thread then locates each weight
 * stored dense in the file, sends the workers the list, and takes weights from the queue too.
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
  const kernelModule = ZeroBitsKernel.module();
  if (kernelModule) task.kernelModule = kernelModule;
  const t0 = performance.now();
  const streamed = new Map<number, StreamedWeight>();
  let done = 0;
  let total = 0;
  const record = (index: number, result: StreamedWeight, bytes: number) => {
    streamed.set(index, result);
    done += bytes;
    options.onProgress?.({ phase: 'analyzing weights', done, total, item: result.row.name });
  };
  // Workers are started before the model is opened: starting one (a V8 isolate loading modules)
  // takes about as long as reading a few hundred MB.
  const workers: Worker[] = [];
  const finished = Promise.all(Array.from({ length: jobs > 1 && fileSize >= minBytes ? jobs - 1 : 0 }, () => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: task });
    workers.push(worker);
    let failed = false;
    let finishedOne = false;
    worker.on('message', (m: WorkerMessage) => {
      if (m.kind === 'weight') {
        record(m.index, m.result, m.bytes);
      } else if (m.kind === 'done') {
        // Its queue is empty: no need to wait for the thread to exit (tearing down an isolate
        // takes tens of ms); it exits on its own and does not keep the process alive.
        finishedOne = true;
        worker.unref();
        resolve();
      } else {
        failed = true;
        // The worker's PrunepackError, with its code; anything else is a bug, reported as one.
        // (The message is already complete: the details are kept as fields, not appended again.)
        reject(m.code ? Object.assign(new PrunepackError(m.code as ErrorCode, m.message), m.details) : new Error(`audit worker: ${m.message}`));
      }
    });
    worker.on('error', (e) => { failed = true; reject(e); });
    worker.on('exit', (code) => {
      if (failed || finishedOne) return;
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
  let paged: PagedFile | undefined;
  let specs: (WeightSpec | null)[] = [];
  try {
    const opened = openModel(file, { paged: true });
    model = opened.model;
    paged = rangeTargetOf(opened.source);
    total = model.weights.reduce((n, w) => n + (w.storedByteLength ?? w.bytes.length), 0);
    // Where each weight stored dense is in the file: those go to the shared queue.
    if (paged && workers.length > 0 && total >= minBytes && model.weights.length >= 2) specs = locateWeights(model, paged);
  } catch (e) {
    await stopWorkers();
    throw e;
  }
  const target: RangeTarget | undefined = paged;
  const { jobs: _j, parallelMinBytes: _p, ...auditOptions } = options;
  const base: AuditOptions = { ...auditOptions, file: options.file ?? file, streaming: true, ...(target ? { paged: target } : {}) };
  const order = queueOrder(model).filter((i) => specs[i] != null);
  if (!paged || order.length === 0) {
    if (workers.length > 0) await stopWorkers();
    return { report: auditModel(model, base), model, threads: 1 };
  }
  const jobsMessage: WorkerJobs = { format: model.format, fileSize: paged.size, order, weights: specs };
  for (const w of workers) w.postMessage(jobsMessage);
  // This thread analyses the weights the workers cannot read by range (stored sparse) first,
  // then takes from the queue with them.
  try {
    specs.forEach((spec, index) => {
      if (spec === null) record(index, runWeight(model, index, task, target), model.weights[index]!.storedByteLength ?? 0);
    });
    drainQueue(model, task, order, target, record);
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
