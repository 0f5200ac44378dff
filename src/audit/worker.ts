/**
 * Worker thread of a parallel streaming audit (src/audit/parallel.ts): waits for the weights'
 * descriptions and byte ranges (queue.ts WorkerJobs), then takes weights from the shared queue,
 * reading each range itself. Imports the analysis only, not the format readers.
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PagedFile } from '../io/paged.js';
import { PrunepackError } from '../errors.js';
import { ZeroBitsKernel } from './zero-bits-wasm.js';
import { drainQueue, modelOfSpecs, QUEUE_STOP, type WorkerJobs, type WorkerMessage, type WorkerTask } from './queue.js';

const task = workerData as WorkerTask;
if (task.kernelModule) ZeroBitsKernel.useModule(task.kernelModule);
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
parentPort!.once('message', (jobs: WorkerJobs) => {
  let reader: PagedFile | null = null;
  try {
    let fd: number;
    try {
      fd = fs.openSync(task.file, 'r');
    } catch (e) {
      throw new PrunepackError('IO', `cannot open ${task.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    reader = new PagedFile(fd, jobs.fileSize, task.file, false);
    const model = modelOfSpecs(jobs, reader);
    drainQueue(model, task, jobs.order, reader, (index, result, bytes) => post({ kind: 'weight', index, bytes, result }));
    post({ kind: 'done' });
  } catch (e) {
    // Nobody takes further weights: the audit fails with this error.
    Atomics.store(new Int32Array(task.next), 0, QUEUE_STOP);
    if (e instanceof PrunepackError) {
      const { format, location, expected, found, hint } = e;
      post({ kind: 'error', message: e.message, code: e.code, details: { format, location, expected, found, hint } });
    } else {
      post({ kind: 'error', message: (e as Error)?.stack ?? String(e) });
    }
  } finally {
    reader?.close();
  }
});
