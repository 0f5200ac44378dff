/**
 * Worker thread entry of pool.ts: imports the registered task modules, then runs one task per
 * message and replies with its result or its error.
 *
 * Byte arrays in a result are copied back (structured clone) unless they add up to more than
 * `transferMinBytes` (PoolOptions; 64 MiB by default), then transferred. Transferring looks free
 * but is not: detaching one ArrayBuffer invalidates V8's ArrayBufferDetaching protector for the
 * whole thread, for good, and from then on its optimized typed-array code checks for detached
 * buffers on every access. Every TFLite encode task ran ~25-30% slower in a worker that had
 * transferred one result (the same slowdown appears in any thread after detaching a single 8-byte
 * buffer; `node --trace-protector-invalidation` shows it). Copied, worker tasks run as fast as in
 * the main thread, copies included: the encode stage of a 1 GB model took 2,824 ms of CPU on two
 * workers against 2,905 ms on one thread. Results above the limit are still transferred, so that
 * a huge one is never held two or three times while it is cloned: that worker is slower
 * afterwards.
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
