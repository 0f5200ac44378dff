/**
 * Worker thread entry of pool.ts: imports the registered task modules, then runs one task per
 * message and replies with its result or its error.
 *
 * Byte arrays in a result are copied back (structured clone) unless they add up to more than
 * `transferMinBytes` (PoolOptions; 64 MiB by default), then transferred. Transferring looks free
 * but is not: the worker's next result then needs fresh memory while the transferred one lives
 * on in the calling thread, and every task of the TFLite encode ran ~25% slower in a worker than
 * the same task in the main thread (user time, not page faults); copied, they run at the same
 * speed, and the copy (the encoded values, ~1/5 of the weight at 80% zeros) costs ~1% of the
 * task. Results above the limit are transferred, so that a huge one is never held twice.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError, type WorkerReply } from './pool.js';
import type { TaskRegistry } from './types.js';

const { modules, transferMinBytes } = workerData as { modules: string[]; transferMinBytes: number };
const tasks: Record<string, TaskRegistry[string]> = {};
for (const url of modules) Object.assign(tasks, ((await import(url)) as { tasks: TaskRegistry }).tasks);

parentPort!.on('message', (message: { id: number; task: string; bytes: Uint8Array[]; params: unknown }) => {
  let reply: WorkerReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const fn = tasks[message.task];
    if (!fn) throw new Error(`unknown task ${message.task}`);
    const result = fn({ bytes: message.bytes, params: message.params });
    const own = ownBuffers(result, new Set(message.bytes.map((b) => b.buffer)));
    if (own.reduce((n, b) => n + b.byteLength, 0) > transferMinBytes) transfer = own;
    reply = { id: message.id, ok: true, result };
  } catch (e) {
    reply = { id: message.id, ok: false, error: serializeError(e) };
  }
  parentPort!.postMessage(reply, transfer);
});

/** ArrayBuffers of the byte arrays in a result (not shared, not the task's inputs), each once. */
function ownBuffers(value: unknown, inputs: Set<ArrayBufferLike>, found = new Set<ArrayBuffer>(), depth = 0): ArrayBuffer[] {
  if (depth > 8 || value === null || typeof value !== 'object') return [...found];
  if (ArrayBuffer.isView(value)) {
    const b = value.buffer;
    if (b instanceof ArrayBuffer && !inputs.has(b)) found.add(b);
  } else {
    for (const v of Array.isArray(value) ? value : Object.values(value)) ownBuffers(v, inputs, found, depth + 1);
  }
  return [...found];
}
