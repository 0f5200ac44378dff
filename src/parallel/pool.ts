/**
 * A small pool of worker threads running named tasks (types.ts) from registered modules. Node-only.
 *
 * - Byte arrays backed by a SharedArrayBuffer reach the worker as views of the same memory (no
 *   copy); other byte arrays are copied once into shared memory (only their own bytes, never the
 *   whole buffer they are a view of). Byte arrays in a result are copied back, or transferred when
 *   they are large (worker.ts says why).
 * - Tasks are handed out largest input first (tasks submitted in the same tick are ordered
 *   together), one per worker at a time and one more in reserve while the queue is long; with
 *   `mainThread` this thread runs tasks too. Results resolve per task, so callers that need a
 *   deterministic output order keep their own order (e.g. Promise.all).
 * - Results: return fresh arrays (large ones are transferred, i.e. detached in the worker).
 * - Idle workers do not keep the process alive; `close()` ends them.
 * - A task that throws rejects with the same error (PrunepackError with its code and details).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { PrunepackError, type ErrorCode } from '../errors.js';
import type { TaskRunner } from './runner.js';
import type { TaskInput, TaskRegistry } from './types.js';

export interface PoolOptions {
  /** Number of threads (>= 1), this one included when `mainThread`. */
  size: number;
  /** Modules exporting `tasks: TaskRegistry`, as file URLs. */
  modules: ReadonlyArray<URL | string>;
  /**
   * This thread runs tasks too, as one of the `size` threads (so `size - 1` workers): between two
   * of its tasks it hands out work and takes results (each worker's task in reserve keeps it busy
   * meanwhile).
   */
  mainThread?: boolean;
  /**
   * Results whose own byte arrays add up to more than this are transferred from the worker, smaller
   * ones copied (default 64 MiB; worker.ts says why).
   */
  transferMinBytes?: number;
}

/** Default of PoolOptions.transferMinBytes. */
export const TRANSFER_MIN_BYTES = 64 << 20;

interface Pending {
  id: number;
  task: string;
  input: TaskInput;
  /** Bytes of the input: the queue hands out the largest first. */
  cost: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  /** Tasks sent to the worker and not answered yet, by id (a worker runs them in order). */
  busy: Map<number, Pending>;
}

/** Threads the machine offers (os.availableParallelism where Node has it). */
export function defaultJobs(): number {
  const available = (os as { availableParallelism?: () => number }).availableParallelism?.() ?? os.cpus().length;
  return Math.max(1, available);
}

export class WorkerPool implements TaskRunner {
  private readonly slots: Slot[] = [];
  /** Waiting tasks, largest input first (ties: submission order). */
  private readonly queue: Pending[] = [];
  private readonly modules: string[];
  private readonly mainThread: boolean;
  private mainTasks: Promise<TaskRegistry> | null = null;
  private mainBusy = false;
  private dispatchScheduled = false;
  private nextId = 1;
  private failure: Error | null = null;
  private closed = false;

  constructor(options: PoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new PrunepackError('INVALID_ARGUMENT', 'invalid worker pool size', { expected: 'an integer >= 1', found: String(options.size) });
    }
    this.modules = options.modules.map((m) => String(m));
    this.mainThread = options.mainThread ?? false;
    const workers = this.mainThread ? options.size - 1 : options.size;
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { modules: this.modules, transferMinBytes: options.transferMinBytes ?? TRANSFER_MIN_BYTES } });
      const slot: Slot = { worker, busy: new Map() };
      worker.on('message', (message: WorkerReply) => this.onReply(slot, message));
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => { if (!this.closed) this.fail(new Error(`worker thread exited with code ${code}`)); });
      worker.unref();
      this.slots.push(slot);
    }
  }

  /** True once a worker failed: the pool runs nothing more. */
  get failed(): boolean {
    return this.failure !== null;
  }

  get size(): number {
    return this.slots.length + (this.mainThread ? 1 : 0);
  }

  run<T>(task: string, input: TaskInput): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    return new Promise<T>((resolve, reject) => {
      const cost = input.bytes.reduce((n, b) => n + b.byteLength, 0);
      // Binary insertion after every task at least as large: largest first, FIFO among equals.
      let lo = 0;
      let hi = this.queue.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.queue[mid]!.cost >= cost) lo = mid + 1; else hi = mid;
      }
      this.queue.splice(lo, 0, { id: this.nextId++, task, input, cost, resolve: resolve as (value: unknown) => void, reject });
      // Tasks submitted together (e.g. in one map) are ordered before the first is handed out.
      if (!this.dispatchScheduled) {
        this.dispatchScheduled = true;
        queueMicrotask(() => { this.dispatchScheduled = false; this.dispatch(); });
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('worker pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    if (this.failure) return;
    // One task each first, then a second one in reserve per worker while the queue holds more
    // than one task per thread: a worker never waits for this thread (busy with its own task, a
    // result or a collection) to hand it the next one.
    for (const depth of [1, 2]) {
      for (const slot of this.slots) {
        if (slot.busy.size >= depth || !this.queue.length) continue;
        if (depth > 1 && this.queue.length <= this.size) continue;
        this.send(slot, this.queue.shift()!);
      }
      if (this.mainThread && !this.mainBusy && this.queue.length) this.runHere(this.queue.shift()!);
    }
  }

  private send(slot: Slot, next: Pending): void {
    slot.busy.set(next.id, next);
    slot.worker.ref();
    slot.worker.postMessage({ id: next.id, task: next.task, bytes: next.input.bytes.map(shareOrCopy), params: next.input.params });
  }

  /** Runs a task in this thread in its own macrotask, so that worker replies are taken between two tasks. */
  private runHere(next: Pending): void {
    this.mainBusy = true;
    this.mainTasks ??= Promise.all(this.modules.map(async (url) => ((await import(url)) as { tasks: TaskRegistry }).tasks))
      .then((registries) => Object.assign({}, ...registries) as TaskRegistry);
    void this.mainTasks.then((tasks) => new Promise<void>((done) => setImmediate(() => {
      try {
        const fn = tasks[next.task];
        if (!fn) throw new Error(`unknown task ${next.task}`);
        next.resolve(fn({ bytes: next.input.bytes, params: next.input.params }));
      } catch (e) {
        next.reject(e);
      }
      done();
    }))).catch((e: unknown) => next.reject(e)).finally(() => {
      this.mainBusy = false;
      this.dispatch();
    });
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    const pending = slot.busy.get(reply.id);
    slot.busy.delete(reply.id);
    if (!slot.busy.size) slot.worker.unref();
    if (pending) {
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(reviveError(reply.error));
    }
    this.dispatch();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const slot of this.slots) {
      for (const p of slot.busy.values()) p.reject(error);
      slot.busy.clear();
    }
    for (const p of this.queue.splice(0)) p.reject(error);
    for (const slot of this.slots) void slot.worker.terminate();
  }
}

interface SharedEntry {
  pool: WorkerPool;
  /** Tasks submitted through sharedPool runners and not settled yet. */
  active: number;
  idleTimer: ReturnType<typeof setTimeout> | null;
}

const sharedPools = new Map<string, SharedEntry>();

/** A shared pool idle this long (no task of any caller running or waiting) is closed. */
export const SHARED_POOL_IDLE_MS = 2000;

/**
 * A pool shared by every caller with the same options: its workers start once and stay warm
 * (their code compiled, their scratch buffers allocated) from one call to the next, as a pipeline
 * converting model after model wants. Idle workers do not keep the process alive; a pool idle for
 * SHARED_POOL_IDLE_MS is closed (workers keep the shared memory of the inputs they saw alive until
 * their next garbage collection, so an idle pool must not outlive its callers for long), and the
 * next task starts a new one. `close()` on the returned runner does nothing (closeSharedPools ends
 * every pool now); a pool whose worker failed is replaced on the next task.
 *
 * Why: a worker needs 55-65 ms to start and runs its first tasks with cold code, which a single
 * call pays in full (the TFLite encode stage of a 1 GB model with 2 workers: 1.5x faster than one
 * thread with workers started for the call, 1.7-1.8x with warm ones).
 */
export function sharedPool(options: PoolOptions): TaskRunner {
  const key = JSON.stringify([options.modules.map((m) => String(m)), options.size, options.mainThread ?? false, options.transferMinBytes ?? TRANSFER_MIN_BYTES]);
  const scheduleClose = (entry: SharedEntry) => {
    entry.idleTimer = setTimeout(() => {
      if (entry.active > 0 || sharedPools.get(key) !== entry) return;
      sharedPools.delete(key);
      void entry.pool.close();
    }, SHARED_POOL_IDLE_MS);
    entry.idleTimer.unref();
  };
  const acquire = (): SharedEntry => {
    let entry = sharedPools.get(key);
    if (!entry || entry.pool.failed) {
      entry = { pool: new WorkerPool(options), active: 0, idleTimer: null };
      sharedPools.set(key, entry);
      scheduleClose(entry); // a pool started ahead (prestart) and never used closes too
    }
    return entry;
  };
  const size = acquire().pool.size;
  return {
    size,
    run<T>(task: string, input: TaskInput): Promise<T> {
      const entry = acquire();
      entry.active++;
      if (entry.idleTimer) { clearTimeout(entry.idleTimer); entry.idleTimer = null; }
      const settled = () => {
        if (--entry.active === 0 && sharedPools.get(key) === entry) scheduleClose(entry);
      };
      const result = entry.pool.run<T>(task, input);
      result.then(settled, settled);
      return result;
    },
    async close() { /* shared: stays for the next caller until it is idle */ },
  };
}

/** Ends every pool made by sharedPool now (e.g. in tests). */
export async function closeSharedPools(): Promise<void> {
  const entries = [...sharedPools.values()];
  sharedPools.clear();
  for (const e of entries) if (e.idleTimer) clearTimeout(e.idleTimer);
  await Promise.all(entries.map((e) => e.pool.close()));
}

/**
 * A view of shared memory as is; anything else copied once into shared memory of its own size
 * (not sliced and transferred: detaching a buffer would slow this thread's typed-array code for
 * good, see worker.ts).
 */
function shareOrCopy(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer instanceof SharedArrayBuffer) return bytes;
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  shared.set(bytes);
  return shared;
}

export interface SerializedError {
  message: string;
  stack?: string;
  code?: ErrorCode;
  format?: string;
  location?: string;
  expected?: string;
  found?: string;
  hint?: string;
}

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: SerializedError };

export function serializeError(e: unknown): SerializedError {
  if (e instanceof PrunepackError) {
    return { message: e.message, stack: e.stack, code: e.code, format: e.format, location: e.location, expected: e.expected, found: e.found, hint: e.hint };
  }
  const error = e instanceof Error ? e : new Error(String(e));
  return { message: error.message, stack: error.stack };
}

function reviveError(s: SerializedError): Error {
  if (s.code) {
    const e = new PrunepackError(s.code, '', { format: s.format, location: s.location, expected: s.expected, found: s.found, hint: s.hint });
    e.message = s.message;
    if (s.stack) e.stack = s.stack;
    return e;
  }
  const e = new Error(s.message);
  if (s.stack) e.stack = s.stack;
  return e;
}
