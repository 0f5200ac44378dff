import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { readTflite } from '../converters/tflite/read.js';
import { pruneModel, writeModel, countZeros } from '../src/index.js';
import { pruneWeight } from '../src/prune.js';
import { PrunepackError } from '../src/errors.js';
import type { WeightTensor } from '../src/model/types.js';
import { loadTfliteRuntime, deterministicInputs } from '../src/verify/tflite-runtime.js';
import { mediapipeModels, repoPath } from './helpers.js';

function weight(dtype: WeightTensor['dtype'], shape: number[], bytes: Uint8Array, quantization?: WeightTensor['quantization']): WeightTensor {
  return { name: 'w', dtype, shape, bytes, quantization, consumers: [], denseBytes: () => bytes };
}

test('element pruning zeroes exactly round(n*s) elements, smallest magnitudes first', () => {
  const v = new Float32Array([0.5, -0.1, 0.3, -0.7, 0.05, 0.2, -0.0, 0.9]);
  const { bytes, result } = pruneWeight(weight('float32', [2, 4], new Uint8Array(v.buffer)), { sparsity: 0.5 });
  const out = new Float32Array(bytes!.buffer);
  // zeros: -0.0 (already), 0.05, -0.1, 0.2 -> 4 of 8
  assert.deepEqual(Array.from(out), [0.5, 0, 0.30000001192092896, -0.699999988079071, 0, 0, 0, 0.8999999761581421]);
  assert.equal(result.zerosBefore, 1);
  assert.equal(result.zerosAfter, 4);
});

test('block pruning zeroes whole blocks by L1 norm', () => {
  // 2x8 matrix, 1x4 blocks: norms row0 [1+1+1+1, 8*0.1], row1 [4*2, 4*0.01]
  const v = new Float32Array([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 2, 2, 2, 2, 0.01, 0.01, 0.01, 0.01]);
  const { bytes } = pruneWeight(weight('float32', [2, 8], new Uint8Array(v.buffer)), { sparsity: 0.5, block: [1, 4] });
  const out = Array.from(new Float32Array(bytes!.buffer));
  assert.deepEqual(out.map((x) => (x === 0 ? 0 : 1)), [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
});

test('int8 pruning is dequantize-aware and writes the per-channel zero point', () => {
  // two channels on axis 0, zero points 10 and -5, scales 1 and 100
  const q = new Int8Array([10, 12, 14, 9, -5, -4, -6, 0]);
  const w = weight('int8', [2, 4], new Uint8Array(q.buffer), { scale: [1, 100], zeroPoint: [10, -5], axis: 0 });
  const { bytes, result } = pruneWeight(w, { sparsity: 0.5 });
  const out = Array.from(new Int8Array(bytes!.buffer));
  // magnitudes: ch0 [0,2,4,1], ch1 [0,100,100,500] -> 4 smallest: 0,0,1,2 -> ch0 idx 0,1,3 and ch1 idx 4
  assert.deepEqual(out, [10, 10, 14, 10, -5, -4, -6, 0]);
  assert.equal(result.zerosAfter, 4);
  assert.equal(countZeros('int8', bytes!, [2, 4], w.quantization), 4);
});

test('invalid options are refused', () => {
  const model = readTflite(new Uint8Array(fs.readFileSync(repoPath('samples', 'cnn-synthetic-dense.tflite'))));
  assert.throws(() => pruneModel(model, { sparsity: 1.5 }), (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
  assert.throws(() => pruneModel(model, { sparsity: 0.5, block: [0, 4] }), (e: unknown) => e instanceof PrunepackError);
});

for (const sparsity of [0.5, 0.9]) {
  test(`pruned MediaPipe models (float16 and float32) at ${sparsity} still run in the TFLite runtime`, async () => {
    const engine = await loadTfliteRuntime();
    for (const file of mediapipeModels().filter((f) => /short_range|hand_landmark_lite|selfie_segmentation\.tflite/.test(f))) {
      const model = readTflite(new Uint8Array(fs.readFileSync(file)));
      const pruned = pruneModel(model, { sparsity });
      const bytes = writeModel(pruned.model, 'tflite');
      const again = readTflite(bytes);
      for (const r of pruned.results.filter((x) => x.pruned)) {
        const w = again.weights.find((x) => x.name === r.name)!;
        assert.equal(countZeros(w.dtype, w.denseBytes(), w.shape, w.quantization), Math.max(r.zerosBefore, Math.round(r.elements * sparsity)), `${file} ${r.name}`);
      }
      const session = await engine.load(bytes);
      try {
        const outputs = await session.run(deterministicInputs(session.inputs(), 3));
        assert.ok(outputs.length > 0);
      } finally { session.dispose(); }
    }
  });
}
