/**
 * Tasks for the worker pool tests (test/convert-scale.test.ts): which thread ran a task, and the
 * order in which this thread started its tasks.
 */
import { threadId } from 'node:worker_threads';
import type { TaskInput, TaskRegistry } from '../src/parallel/types.js';

/** Sizes of the inputs of the tasks this thread ran, in the order it started them. */
export const startedHere: number[] = [];

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy: the thread is working */ }
}

export const tasks: TaskRegistry = {
  'test/where': ({ bytes, params }: TaskInput) => {
    startedHere.push(bytes[0]?.length ?? 0);
    spin((params as { ms: number }).ms);
    let sum = 0;
    for (const b of bytes[0] ?? []) sum += b;
    return { threadId, sum };
  },
  'test/fail': () => { throw new Error('failed on purpose'); },
};
