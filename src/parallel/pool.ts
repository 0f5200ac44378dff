/**
 * A small pool of worker threads running named tasks (types.ts) from registered modules. Node-only.
 *
 * - Byte arrays backed by a SharedArrayBuffer reach the worker as views of the same memory (no
 *   copy); other byte arrays are copied once (only their own bytes, never the whole buffer they
 *   are a view of). Byte arrays in a result are transferred back, not copied.
 * - One task per worker at a time, handed out in submission order; results resolve per task, so
 *   callers that need a deterministic output order keep their own order (e.g. Promise.all).
 * - Results: return fresh arrays (their buffers are transferred, i.e. detached in the worker).
 * - Idle workers do not keep the process alive; `close()` ends them.
 * - A task that throws rejects with the same error (PrunepackError with its code and details).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { PrunepackError, type ErrorCode } from '../errors.js';
import type { TaskRunner } from './runner.js';
import type { TaskInput } from './types.js';

export interface PoolOptions {
  /** Number of threads (>= 1). */
  size: number;
  /** Modules exporting `tasks: TaskRegistry`, as file URLs. */
  modules: ReadonlyArray<URL | string>;
}

interface Pending {
  id: number;
  task: string;
  input: TaskInput;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending | null;
}

/** Threads the machine offers (os.availableParallelism where Node has it). */
export function defaultJobs(): number {
  const available = (os as { availableParallelism?: () => number }).availableParallelism?.() ?? os.cpus().length;
  return Math.max(1, available);
}

export class WorkerPool implements TaskRunner {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private failure: Error | null = null;
  private closed = false;

  constructor(options: PoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new PrunepackError('INVALID_ARGUMENT', 'invalid worker pool size', { expected: 'an integer >= 1', found: String(options.size) });
    }
    const modules = options.modules.map((m) => String(m));
    for (let i = 0; i < options.size; i++) {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { modules } });
      const slot: Slot = { worker, busy: null };
      worker.on('message', (message: WorkerReply) => this.onReply(slot, message));
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => { if (!this.closed) this.fail(new Error(`worker thread exited with code ${code}`)); });
      worker.unref();
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  run<T>(task: string, input: TaskInput): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, input, resolve: resolve as (value: unknown) => void, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('worker pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy) continue;
      const next = this.queue.shift();
      if (!next) return;
      slot.busy = next;
      slot.worker.ref();
      const bytes = next.input.bytes.map(shareOrCopy);
      const transfer = bytes.filter((b, i) => b !== next.input.bytes[i]).map((b) => b.buffer as ArrayBuffer);
      slot.worker.postMessage({ id: next.id, task: next.task, bytes, params: next.input.params }, transfer);
    }
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    const pending = slot.busy;
    slot.busy = null;
    slot.worker.unref();
    if (pending && pending.id === reply.id) {
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(reviveError(reply.error));
    }
    this.dispatch();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const slot of this.slots) {
      slot.busy?.reject(error);
      slot.busy = null;
    }
    for (const p of this.queue.splice(0)) p.reject(error);
    for (const slot of this.slots) void slot.worker.terminate();
  }
}

/** A view of shared memory as is; anything else copied into its own buffer (transferred to the worker). */
function shareOrCopy(bytes: Uint8Array): Uint8Array {
  return bytes.buffer instanceof SharedArrayBuffer ? bytes : bytes.slice();
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
