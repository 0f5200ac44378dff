/**
 * The contract between the worker pool and the modules whose functions it runs. Browser-safe
 * (types only): a module exports `tasks: TaskRegistry` and works the same called directly.
 */

/** One task's input: byte arrays (shared when backed by a SharedArrayBuffer, else copied) and plain data. */
export interface TaskInput {
  bytes: Uint8Array[];
  params: unknown;
}

/**
 * A task: a pure function of its input. Its result crosses back by structured clone; byte arrays
 * in it whose memory is not shared are transferred, not copied.
 */
export type TaskFunction = (input: TaskInput) => unknown;

/** Tasks by name; names are namespaced by their module, e.g. "tflite-sparse/encode". */
export type TaskRegistry = Readonly<Record<string, TaskFunction>>;
