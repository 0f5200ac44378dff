/** Worker thread of a parallel streaming audit (src/audit/parallel.ts): takes weights from the shared queue. */
import { parentPort, workerData } from 'node:worker_threads';
import { openModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { drainQueue, QUEUE_STOP, rangeTargetOf, type WorkerMessage, type WorkerTask } from './parallel.js';

const task = workerData as WorkerTask;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
try {
  const { model, source } = openModel(task.file, { paged: true });
  drainQueue(model, task, rangeTargetOf(source), (index, result, bytes) => post({ kind: 'weight', index, bytes, result }));
} catch (e) {
  // Nobody takes further weights: the audit fails with this error.
  Atomics.store(new Int32Array(task.next), 0, QUEUE_STOP);
  if (e instanceof PrunepackError) {
    const { format, location, expected, found, hint } = e;
    post({ kind: 'error', message: e.message, code: e.code, details: { format, location, expected, found, hint } });
  } else {
    post({ kind: 'error', message: (e as Error)?.stack ?? String(e) });
  }
}
