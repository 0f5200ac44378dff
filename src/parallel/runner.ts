/**
 * What callers of parallel work depend on: something that runs a named task. The worker pool
 * (pool.ts, Node-only, loaded on demand) and the in-thread runner below both implement it, so the
 * same code path serves --jobs 1 and --jobs N. Browser-safe.
 */
import type { TaskInput, TaskRegistry } from './types.js';

export interface TaskRunner {
  /** Threads the tasks run on (1 for the in-thread runner). */
  readonly size: number;
  run<T>(task: string, input: TaskInput): Promise<T>;
  close(): Promise<void>;
}

/** Runs the registries' tasks in this thread: the same functions, no copies. */
export function inThreadRunner(...registries: TaskRegistry[]): TaskRunner {
  const tasks: TaskRegistry = Object.assign({}, ...registries);
  return {
    size: 1,
    async run<T>(task: string, input: TaskInput): Promise<T> {
      const fn = tasks[task];
      if (!fn) throw new Error(`unknown task ${task}`);
      return fn(input) as T;
    },
    async close() { /* nothing to end */ },
  };
}
