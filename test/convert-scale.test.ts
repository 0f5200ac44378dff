/**
 * `convert --to tflite-sparse` at scale: the planner's zero-mask counts against a direct count,
 * the worker pool (src/parallel), byte-identical output for any number of jobs (pruned MediaPipe
 * models and a generated FULLY_CONNECTED model), the command line's --jobs, and the >2 GB code
 * path (Buffer.offset/size, weights read on demand) on a small model forced into that layout.
 * Run: npx tsc -p . && node --test dist/test/convert-scale.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { readTfliteDocument } from '../converters/tflite/read.js';
import { layoutTflite, writeTflite } from '../converters/tflite/write.js';
import { tfliteDocumentOf } from '../converters/tflite/index.js';
import { createRuntimeCheck, sparsifyTflite, sparsifyTfliteAsync, type SparsifyOptions } from '../converters/tflite/sparse-write.js';
import { ANALYZE_TASK, ENCODE_TASK, analyzeWeight, type WeightSpec } from '../converters/tflite/sparse-weight.js';
import { blockMask, makeZeroMask, maxCoordinates, prefixCounts } from '../converters/tflite/zero-mask.js';
import { closeSharedPools, SHARED_POOL_IDLE_MS, sharedPool, WorkerPool } from '../src/parallel/pool.js';
import { PrunepackError } from '../src/errors.js';
import { openModel, pruneModel, readModel } from '../src/index.js';
import { readModelSource } from '../src/io/files.js';
import { verifyWeightsEqual } from '../src/cli/convert.js';
import { mulberry32 } from '../src/random.js';
import { canonicalJson, mediapipeModels, repoPath, tempDir } from './helpers.js';

const exec = promisify(execFile);
const CLI = repoPath('dist', 'src', 'cli', 'bin.js');
const WEIGHT_TASKS = new URL('../converters/tflite/sparse-weight.js', import.meta.url);
const POOL_TASKS = new URL('./pool-tasks.js', import.meta.url);

/** A chain of FULLY_CONNECTED layers (float32, `zeros` of the weights zero at random positions). */
function fullyConnectedModel(widths: number[], zeros: number, seed = 7): Uint8Array {
  const random = mulberry32(seed);
  const g = new TfliteGraphBuilder();
  let x = g.tensor('input', TensorType.FLOAT32, [1, widths[0]!]);
  const input = x;
  for (let l = 1; l < widths.length; l++) {
    const w = new Float32Array(widths[l]! * widths[l - 1]!);
    for (let i = 0; i < w.length; i++) if (random() >= zeros) w[i] = random() - 0.5;
    const wt = g.constant(`fc${l}/weights`, TensorType.FLOAT32, [widths[l]!, widths[l - 1]!], new Uint8Array(w.buffer));
    const y = g.tensor(`fc${l}/out`, TensorType.FLOAT32, [1, widths[l]!]);
    g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, wt, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    x = y;
  }
  return writeTflite(g.finish([input], [x], 'fully connected test model'));
}

function pruned(file: string, sparsity: number, block?: [number, number]): Uint8Array {
  const { model } = openModel(file);
  return writeTflite(tfliteDocumentOf(pruneModel(model, { sparsity, ...(block ? { block } : {}) }).model));
}

// ---------------------------------------------------------------------------------------------

describe('zero masks', () => {
  /** Every permutation of 0..n-1. */
  const permutations = (n: number): number[][] => (n === 0 ? [[]] : permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])));

  test('prefix counts, largest coordinates and block masks agree with a direct count', () => {
    const random = mulberry32(3);
    const shapes = [[37], [8, 12], [1, 16, 3], [4, 1, 6, 8], [3, 5, 2, 4], [16, 16], [2, 4, 4, 16]];
    for (const shape of shapes) {
      for (const density of [0, 0.05, 0.3, 0.9]) {
        const count = shape.reduce((a, b) => a * b, 1);
        const mask = new Uint8Array(count);
        for (let i = 0; i < count; i++) mask[i] = random() < density ? 1 : 0;
        const coords = (i: number) => { const c: number[] = []; for (let d = shape.length - 1; d >= 0; d--) { c[d] = i % shape[d]!; i = Math.floor(i / shape[d]!); } return c; };
        const nonzero = [...mask.keys()].filter((i) => mask[i]).map(coords);
        const m = makeZeroMask(mask, shape);
        const label = `[${shape}] at ${density}`;
        for (const perm of permutations(shape.length)) {
          const expected = perm.map((_, l) => new Set(nonzero.map((c) => perm.slice(0, l + 1).map((d) => c[d]).join())).size);
          assert.deepEqual([...prefixCounts(m, perm)], expected, `${label} order ${perm}`);
        }
        assert.deepEqual(maxCoordinates(m), shape.map((_, d) => Math.max(-1, ...nonzero.map((c) => c[d]!))), label);
        // Block masks, each size built from the one before (2 -> 4 -> 8) and checked directly.
        for (let d = 0; d < shape.length; d++) {
          for (const size of [2, 4, 8]) {
            if (shape[d]! % size !== 0) continue;
            const b = blockMask(m, d, size);
            const blocked = new Set(nonzero.map((c) => c.map((x, k) => (k === d ? Math.floor(x / size) : x)).join()));
            const got = new Set([...b.mask.keys()].filter((i) => b.mask[i]).map((i) => {
              const c: number[] = []; let r = i;
              for (let k = b.shape.length - 1; k >= 0; k--) { c[k] = r % b.shape[k]!; r = Math.floor(r / b.shape[k]!); }
              return c.join();
            }));
            assert.deepEqual(got, blocked, `${label} block ${size} along ${d}`);
            assert.equal(b.nonzeros, blocked.size);
          }
        }
      }
    }
  });
});

describe('worker pool', () => {
  const bytes = fullyConnectedModel([64, 256, 32], 0.8);
  const doc = readTfliteDocument(bytes);
  const weight = doc.buffers[doc.model.subgraphs[0]!.tensors.find((t) => t.name === 'fc1/weights')!.buffer]!.bytes;
  const spec: WeightSpec = {
    dtype: 'float32', shape: [256, 64], zeroPoints: [], quantizedDimension: 0, search: true, minSparsity: 0.3, block: 'auto',
    native: true, densifyPrefix: 'DENSIFY', densifyOverhead: 100,
  };

  test('runs tasks on shared and on copied bytes with the in-thread result, and passes errors with their code', async () => {
    const pool = new WorkerPool({ size: 2, modules: [WEIGHT_TASKS] });
    try {
      const shared = new Uint8Array(new SharedArrayBuffer(weight.length));
      shared.set(weight);
      const expected = canonicalJson(analyzeWeight(weight, spec));
      const [fromShared, fromCopy] = await Promise.all([
        pool.run(ANALYZE_TASK, { bytes: [shared], params: spec }),
        pool.run(ANALYZE_TASK, { bytes: [weight], params: spec }),
      ]);
      assert.equal(canonicalJson(fromShared), expected);
      assert.equal(canonicalJson(fromCopy), expected);
      assert.equal(weight.buffer.byteLength, bytes.buffer.byteLength, 'a copied input is not detached in this thread');
      // An impossible layout: the encoder's own PrunepackError, code and all, crosses back.
      const layout = { traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [3], dimFormats: ['DENSE', 'SPARSE_CSR', 'DENSE'] };
      await assert.rejects(pool.run(ENCODE_TASK, { bytes: [shared], params: { dtype: 'float32', shape: [256, 64], layout, where: 'w' } }),
        (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT' && /block size does not divide/.test(e.message));
      await assert.rejects(pool.run('no-such/task', { bytes: [], params: null }), /unknown task/);
      // The pool still works after task errors.
      assert.equal(canonicalJson(await pool.run(ANALYZE_TASK, { bytes: [shared], params: spec })), expected);
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.run(ANALYZE_TASK, { bytes: [weight], params: spec }), /closed/);
  });

  test('with this thread working: both threads run tasks, largest input first, same results, errors from either thread', async () => {
    const { startedHere } = await import('./pool-tasks.js');
    const sizes = [3, 70, 5, 900, 64, 64, 1, 300, 12, 512];
    const inputs = sizes.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 7 + j) & 0xff));
    const sum = (b: Uint8Array) => b.reduce((a, x) => a + x, 0);
    // This thread alone (no worker): it starts the tasks in order of input size, largest first.
    const alone = new WorkerPool({ size: 1, modules: [POOL_TASKS], mainThread: true });
    try {
      assert.equal(alone.size, 1);
      startedHere.length = 0;
      const results = await Promise.all(inputs.map((b) => alone.run<{ threadId: number; sum: number }>('test/where', { bytes: [b], params: { ms: 0 } })));
      assert.deepEqual(results.map((r) => r.sum), inputs.map(sum), 'each result belongs to its own task');
      assert.deepEqual(startedHere, [...sizes].sort((a, b) => b - a));
      await assert.rejects(alone.run('test/fail', { bytes: [], params: null }), /failed on purpose/);
    } finally {
      await alone.close();
    }
    // One worker and this thread: both take tasks; results in submission order whoever ran them.
    const pool = new WorkerPool({ size: 2, modules: [POOL_TASKS], mainThread: true });
    try {
      assert.equal(pool.size, 2);
      startedHere.length = 0;
      const results = await Promise.all(inputs.map((b) => pool.run<{ threadId: number; sum: number }>('test/where', { bytes: [b], params: { ms: 20 } })));
      assert.deepEqual(results.map((r) => r.sum), inputs.map(sum));
      const threads = new Set(results.map((r) => r.threadId));
      assert.ok(threads.has(0) && threads.size === 2, `tasks ran in this thread and in the worker (${[...threads].join(', ')})`);
      assert.equal(startedHere.length, results.filter((r) => r.threadId === 0).length);
      await assert.rejects(pool.run('test/fail', { bytes: [], params: null }), /failed on purpose/);
    } finally {
      await pool.close();
    }
  });
});

describe('worker pool: results and the shared pool', () => {
  test('small results are copied back, results over transferMinBytes transferred; both arrive whole', async () => {
    const pool = new WorkerPool({ size: 1, modules: [POOL_TASKS], transferMinBytes: 1000 });
    try {
      for (const [n, transferred] of [[1000, false], [1001, true], [10, false], [5000, true]] as const) {
        const { bytes } = await pool.run<{ bytes: Uint8Array }>('test/bytes', { bytes: [], params: { n } });
        assert.equal(bytes.length, n);
        assert.ok(bytes.every((b, k) => b === (k & 0xff)), `${n} bytes arrive intact`);
        const { detached } = await pool.run<{ detached: boolean }>('test/last-detached', { bytes: [], params: null });
        assert.equal(detached, transferred, `${n} bytes: ${transferred ? 'transferred' : 'copied'}`);
      }
    } finally {
      await pool.close();
    }
  });

  test('sharedPool: the same warm workers for every caller, close() keeps them, a failed pool is replaced', async () => {
    const options = { size: 2, modules: [POOL_TASKS] };
    const where = async (runner: ReturnType<typeof sharedPool>) => new Set((await Promise.all(
      [1, 2, 3, 4].map(() => runner.run<{ threadId: number }>('test/where', { bytes: [new Uint8Array(4)], params: { ms: 30 } })))).map((r) => r.threadId));
    try {
      const first = sharedPool(options);
      const threads = await where(first);
      assert.equal(threads.size, 2, 'both workers ran tasks');
      assert.ok(!threads.has(0), 'no task in this thread without mainThread');
      await first.close();
      const again = sharedPool(options);
      assert.deepEqual([...(await where(again))].sort(), [...threads].sort(), 'the same worker threads after close()');
      // Another configuration gets its own pool.
      const other = sharedPool({ ...options, size: 1 });
      assert.ok([...(await where(other))].every((t) => !threads.has(t)));
      // A worker that dies fails the pool; the next caller gets a new one that works.
      await assert.rejects(again.run('test/exit', { bytes: [], params: null }), /exited with code 3/);
      const replaced = sharedPool(options);
      const fresh = await where(replaced);
      assert.equal(fresh.size, 2);
      assert.ok([...fresh].every((t) => !threads.has(t)), 'new worker threads');
    } finally {
      await closeSharedPools();
    }
    const after = sharedPool(options);
    try {
      const started = await where(after);
      assert.equal(started.size, 2, 'closeSharedPools ended them; a new pool starts on demand');
      assert.deepEqual([...(await where(after))].sort(), [...started].sort(), 'busy: the same workers');
      // Idle for longer than SHARED_POOL_IDLE_MS: closed; the same runner then starts new workers.
      await new Promise((r) => setTimeout(r, SHARED_POOL_IDLE_MS + 400));
      const later = await where(after);
      assert.equal(later.size, 2);
      assert.ok([...later].every((t) => !started.has(t)), `an idle pool is closed (${[...started]} then ${[...later]})`);
    } finally {
      await closeSharedPools();
    }
  });
});

describe('--jobs: the same bytes for any number of threads', () => {
  const models: Array<[string, Uint8Array]> = [['generated FULLY_CONNECTED 64-512-256-10, 80% zeros', fullyConnectedModel([64, 512, 256, 10], 0.8)]];
  for (const file of mediapipeModels().filter((f) => !f.includes('sparse')).slice(0, 3)) {
    models.push([`${path.basename(file)} pruned to 80%`, pruned(file, 0.8)]);
  }
  models.push([`${path.basename(mediapipeModels()[0]!)} pruned to 70% in 1x4 blocks`, pruned(mediapipeModels()[0]!, 0.7, [1, 4])]);
  const optionSets: SparsifyOptions[] = [{}, { optimize: 'balanced' }, { optimize: 'latency', block: '1x4' }, { block: 'none', minSparsity: 0.5 }];

  for (const [name, bytes] of models) {
    test(name, async () => {
      const doc = readTfliteDocument(bytes);
      for (const options of optionSets) {
        const one = sparsifyTflite(doc, options);
        const two = await sparsifyTfliteAsync(doc, { ...options, jobs: 2, parallelMinBytes: 0 });
        assert.equal(two.threads, 2, 'the pool ran');
        assert.equal(one.threads, 1);
        assert.ok(one.plan.totals.sparseWeights > 0, `${JSON.stringify(options)}: something to encode`);
        assert.equal(canonicalJson(two.plan), canonicalJson(one.plan), JSON.stringify(options));
        assert.ok(Buffer.compare(two.bytes, one.bytes) === 0, `${JSON.stringify(options)}: bytes differ`);
      }
    });
  }
});

describe('the >2 GB layout: Buffer.offset/size, weights read on demand', () => {
  test('a model read lazily from shared memory converts in workers, written with Buffer.offset, reads back and runs the same', async () => {
    const dir = tempDir('convert-offset');
    try {
      const dense = fullyConnectedModel([128, 512, 256, 16], 0.85, 11);
      const offsetModel = path.join(dir, 'offset.tflite');
      const layout = layoutTflite(readTfliteDocument(dense), { forceOffsetBuffers: true });
      fs.writeFileSync(offsetModel, writeTflite(readTfliteDocument(dense), { forceOffsetBuffers: true }));
      // Only the flatbuffer part in memory, as readModelSource leaves a file over 2 GB; the rest
      // read on demand, into shared memory as readModelSource(file, { shared: true }) does.
      const file = readModelSource(offsetModel, { shared: true });
      assert.ok(file.bytes.buffer instanceof SharedArrayBuffer);
      let reads = 0;
      const readRange = (o: number, n: number) => { reads++; const out = new Uint8Array(new SharedArrayBuffer(n)); out.set(file.bytes.subarray(o, o + n)); return out; };
      const source = { bytes: file.bytes.subarray(0, layout.head.length), path: offsetModel, fileSize: file.bytes.length, readRange };
      const input = readModel(source).model;
      const result = await sparsifyTfliteAsync(tfliteDocumentOf(input), { jobs: 2, parallelMinBytes: 0, forceOffsetBuffers: true });
      assert.ok(reads >= 3, `weights were read on demand (${reads} reads)`);
      assert.equal(result.threads, 2);
      assert.ok(result.layout.offsetBuffers);
      assert.equal(result.plan.totals.sparseWeights, 3);
      const out = result.bytes;
      const outDoc = readTfliteDocument(out);
      assert.ok(outDoc.buffers.every((b) => !b.hasData || b.offset > 1n), 'every buffer addressed by Buffer.offset');
      // Read back lazily too: every weight decoded (verifier + decode) and compared with the input.
      const outHead = out.subarray(0, result.layout.head.length);
      const back = readModel({ bytes: outHead, path: 'out.tflite', fileSize: out.length, readRange: (o, n) => out.slice(o, o + n) }).model;
      verifyWeightsEqual(input, back);
      // And it computes what the dense model computes (DENSIFY: exactly).
      const check = await createRuntimeCheck(dense);
      const comparison = await check.compare(out);
      assert.ok(comparison.bitIdentical, `max abs ${comparison.maxAbsDiff}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('command line', () => {
  test('the read-back reads the written file from disk: a weight damaged there before the check fails the convert, and nothing is renamed', async () => {
    const dir = tempDir('convert-readback');
    try {
      const model = path.join(dir, 'fc.tflite');
      fs.writeFileSync(model, fullyConnectedModel([256, 512, 256, 8], 0.8));
      // The same bytes as the run below will write (the writer is deterministic): where the largest weight's stored values lie.
      const reference = path.join(dir, 'reference.tflite');
      await exec(process.execPath, [CLI, 'convert', model, '--to', 'tflite-sparse', '-o', reference, '--no-verify']);
      const refBytes = new Uint8Array(fs.readFileSync(reference));
      const largest = readModel({ ...readModelSource(reference), path: reference }).model.weights
        .filter((w) => w.sparsity).sort((a, b) => b.bytes.length - a.bytes.length)[0]!;
      const at = largest.bytes.byteOffset + (largest.bytes.length >> 1);
      assert.ok(at > 0 && at < refBytes.length, `values at byte ${at}`);
      // Pause after the last byte is written (before fsync and the read-back), damage that byte of the temporary file, let it go on.
      const out = path.join(dir, 'out.tflite');
      const child = execFile(process.execPath, [CLI, 'convert', model, '--to', 'tflite-sparse', '-o', out],
        { env: { ...process.env, PRUNEPACK_TEST_PAUSE_AFTER_BYTES: String(refBytes.length), PRUNEPACK_TEST_PAUSE_MS: '3000' } });
      let stderr = '';
      let damaged = false;
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const m = /prunepack test pause: [^(]*\((.*)\)/.exec(stderr);
        if (m && !damaged) {
          damaged = true;
          const fd = fs.openSync(m[1]!, 'r+');
          const b = Buffer.alloc(1);
          fs.readSync(fd, b, 0, 1, at);
          assert.equal(b[0], refBytes[at], 'the temporary file holds the reference bytes');
          b[0] = b[0]! ^ 0x40;
          fs.writeSync(fd, b, 0, 1, at);
          fs.closeSync(fd);
        }
      });
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.ok(damaged, `paused: ${stderr}`);
      assert.notEqual(code, 0, stderr);
      assert.match(stderr, /a weight differs in the output/);
      assert.ok(stderr.includes(largest.name), `names the weight ${largest.name}: ${stderr}`);
      assert.ok(!fs.existsSync(out), 'nothing renamed into place');
      assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--jobs 2 writes the file --jobs 1 writes, checked in the runtime; bad --jobs values are refused', async () => {
    const dir = tempDir('convert-jobs');
    try {
      // 12 MB of weights: enough work for the worker threads (MIN_PARALLEL_BYTES).
      const model = path.join(dir, 'fc.tflite');
      fs.writeFileSync(model, fullyConnectedModel([1024, 1024, 1024, 1024, 8], 0.8));
      const run = (...args: string[]) => exec(process.execPath, [CLI, 'convert', model, '--to', 'tflite-sparse', ...args]);
      const two = await run('-o', path.join(dir, 'two.tflite'), '--jobs', '2', '--json');
      const summary = JSON.parse(two.stdout) as { threads: number; weightsVerified: number; runtime: { bitIdentical: boolean } };
      assert.equal(summary.threads, 2);
      assert.equal(summary.weightsVerified, 4);
      assert.equal(summary.runtime.bitIdentical, true);
      await run('-o', path.join(dir, 'one.tflite'), '--jobs', '1', '--no-verify');
      assert.ok(Buffer.compare(fs.readFileSync(path.join(dir, 'two.tflite')), fs.readFileSync(path.join(dir, 'one.tflite'))) === 0);
      for (const bad of [['--jobs', '0'], ['--jobs', 'x'], ['--jobs', '1.5']]) {
        await assert.rejects(run('-o', path.join(dir, 'bad.tflite'), ...bad), (e: { stderr: string; code: number }) => /invalid --jobs/.test(e.stderr) && e.code !== 0, bad.join(' '));
      }
      await assert.rejects(exec(process.execPath, [CLI, 'convert', model, '--to', 'tflite', '-o', path.join(dir, 'd.tflite'), '--jobs', '2']),
        (e: { stderr: string }) => /--jobs apply to one target only/.test(e.stderr));
      assert.ok(!fs.existsSync(path.join(dir, 'bad.tflite')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
