/** Worker thread of a parallel streaming audit (src/audit/parallel.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { openModel } from '../index.js';
import { streamWeight } from './audit.js';
import { PrunepackError } from '../errors.js';
import type { WorkerMessage, WorkerTask } from './parallel.js';

const task = workerData as WorkerTask;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
try {
  const { model } = openModel(task.file, { paged: true });
  for (const index of task.indices) {
    const weight = model.weights[index]!;
    const bytes = weight.storedByteLength ?? weight.bytes.length;
    const deep = task.gzipWeights === null || index < task.gzipWeights;
    post({ kind: 'weight', index, bytes, result: streamWeight(model, index, { gzipLevel: task.gzipLevel, deep, zeroPattern: task.zeroPatterns }) });
  }
} catch (e) {
  if (e instanceof PrunepackError) {
    const { format, location, expected, found, hint } = e;
    post({ kind: 'error', message: e.message, code: e.code, details: { format, location, expected, found, hint } });
  } else {
    post({ kind: 'error', message: (e as Error)?.stack ?? String(e) });
  }
}
