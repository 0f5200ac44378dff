/**
 * Tasks for the worker pool tests (test/convert-scale.test.ts): which thread ran a task, and the
 * order in which this thread started its tasks.
 */
import { threadId } from 'node:worker_threads';
import type { TaskInput, TaskRegistry } from '../src/parallel/types.js';

/** Sizes of the inputs of the tasks this thread ran, in the order it started them. */
export const startedHere: number[] = [];

let lastResult: Uint8Array | null = null;

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
  /** A fresh array of `n` bytes (byte k = k & 0xff), kept here to see afterwards whether it was transferred. */
  'test/bytes': ({ params }: TaskInput) => {
    const n = (params as { n: number }).n;
    lastResult = Uint8Array.from({ length: n }, (_, k) => k & 0xff);
    return { bytes: lastResult };
  },
  /** Whether the array of the last test/bytes went away with its result (detached). */
  'test/last-detached': () => ({ detached: lastResult !== null && lastResult.byteLength === 0 }),
  /** Ends the thread it runs in (the pool must notice). */
  'test/exit': () => process.exit(3),
};
