/**
 * tflite-sparse against the official TFLite converter on the same pruned inputs (the four models
 * of FORMATS.md's "Numbers to beat", bench/official-comparison.ts): our bytes never exceed the
 * official converter's (emulated with its rules and our writer), both outputs run in the real
 * runtime with the dense model's results; the emulation reproduces the sparse tensors of an
 * official output (Google's face_detection_full_range_sparse) exactly. And the layout that would keep indices within 8 bits by
 * a SPARSE_CSR block level: what the runtimes do with it, and why the planner never writes it.
 * Run: npx tsc -p . && node --test dist/test/tflite-official.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { TypedSparsityT } from '../converters/tflite/document.js';
import { readTfliteDocument } from '../converters/tflite/read.js';
import { densifyTfliteDocument } from '../converters/tflite/densify.js';
import { sparsifyTflite } from '../converters/tflite/sparse-write.js';
import type { PrunepackError } from '../src/errors.js';
import { writeTflite } from '../converters/tflite/write.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { sparsityFromDense } from '../src/sparsity/format-converter.js';
import { verifySparsity } from '../src/sparsity/verify-sparsity.js';
import type { SparsityParams } from '../src/sparsity/types.js';
import { float16ToFloat32, float32ToFloat16 } from '../src/model/dtype.js';
import { compareOutputs, deterministicInputs, loadTfliteRuntime, type EngineName } from '../src/verify/tflite-runtime.js';
import { prunedNormal, seededRandom } from '../samples/build-samples.js';
import { comparisonRatios, officialComparisonModels, officialEmulation, type ComparisonModels } from '../bench/official-comparison.js';
import { canonicalJson, repoPath } from './helpers.js';

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('against the official converter, same pruned inputs', () => {
  let models: ComparisonModels[] = [];

  test('ours (size and balanced) <= the official converter (emulated) for each model, <= 0.9 in total', () => {
    models = officialComparisonModels();
    assert.equal(models.length, 4);
    let ours = 0;
    let official = 0;
    for (const m of models) {
      const r = m.row;
      assert.ok(r.ours <= r.emulated, `${r.model}: ours ${r.ours} B > official (emulated) ${r.emulated} B`);
      assert.ok(r.oursBalanced <= r.emulated, `${r.model}: ours (balanced, the command line's default) ${r.oursBalanced} B > official (emulated) ${r.emulated} B`);
      ours += r.ours;
      official += r.emulated;
    }
    assert.ok(ours <= 0.9 * official, `total ${ours} B / official (emulated) ${official} B = ${(ours / official).toFixed(3)} > 0.9`);
    // The check: tflite-sparse run on the official converter's own output (densified
    // first, then planned again) is no larger than that output.
    for (const m of models) {
      const again = sparsifyTflite(readTfliteDocument(m.emulated.bytes), { optimize: 'balanced' }).bytes.length;
      assert.ok(again <= m.row.emulated, `${m.model}: tflite-sparse of the official (emulated) output ${again} B > ${m.row.emulated} B`);
    }
    // The emulation is close to the official converter's published outputs where our dense inputs
    // match its Keras models' (the small CNN's dense files differ by 0.05%).
    const cnn = models[0]!.row;
    assert.ok(Math.abs(comparisonRatios({ ...cnn, ours: cnn.emulated }).vsPublishedNormalized - 1) < 0.01, `CNN: emulated ${cnn.emulated} B, published ${cnn.official} B`);
  });

  test('on Google\'s face_detection_full_range_sparse (densified), the emulation writes Google\'s own sparse tensors', () => {
    const google = new Uint8Array(fs.readFileSync(repoPath('node_modules', '@mediapipe', 'face_detection', 'face_detection_full_range_sparse.tflite')));
    const original = readTfliteDocument(google);
    const emulated = readTfliteDocument(officialEmulation(densifyTfliteDocument(readTfliteDocument(google)).doc).bytes);
    const sparse = (doc: typeof original) => new Map(doc.model.subgraphs[0]!.tensors.filter((t) => t.sparsity).map((t) => [t.name, { t, bytes: doc.buffers[t.buffer]!.bytes }]));
    const theirs = sparse(original);
    const ours = sparse(emulated);
    assert.equal(theirs.size, 46);
    assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
    for (const [name, g] of theirs) {
      const e = ours.get(name)!;
      assert.equal(canonicalJson((e.t.sparsity as TypedSparsityT).params), canonicalJson((g.t.sparsity as TypedSparsityT).params), `${name}: sparsity parameters`);
      assert.deepEqual(Buffer.from(e.bytes), Buffer.from(g.bytes), `${name}: stored values`);
    }
  });

  test('the emulation follows the official rules', () => {
    const byName = (m: ComparisonModels) => new Map(m.emulated.plan.entries.map((e) => [e.tensor, e]));
    const [cnn, mlp1x4, mlp, lstm] = models.map(byName) as [ReturnType<typeof byName>, ReturnType<typeof byName>, ReturnType<typeof byName>, ReturnType<typeof byName>];
    // convolution filters: CSR on the last dimension only, through DENSIFY
    const conv = cnn.get('conv2/kernel')!;
    assert.equal(conv.route, 'densify');
    assert.deepEqual(conv.layout!.traversalOrder, [0, 1, 2, 3]);
    assert.deepEqual(conv.layout!.dimFormats, ['DENSE', 'DENSE', 'DENSE', 'SPARSE_CSR']);
    // FULLY_CONNECTED: 1x4 blocks read natively when block sparsity / element sparsity > 0.9, else CSR + DENSIFY
    assert.equal(mlp1x4.get('dense1/kernel')!.route, 'native');
    assert.deepEqual(mlp1x4.get('dense1/kernel')!.layout!.blockSize, [4]);
    assert.equal(mlp.get('dense1/kernel')!.route, 'densify');
    assert.deepEqual(mlp.get('dense1/kernel')!.layout!.blockSize, []);
    // embedding table and LSTM weights stay dense; the FULLY_CONNECTED weights after them do not
    assert.equal(lstm.get('embedding/embeddings')!.route, 'dense');
    assert.equal(lstm.get('lstm/recurrent_to_cell')!.route, 'dense');
    assert.notEqual(lstm.get('dense1/kernel')!.route, 'dense');
    // biases (operand 2) always dense
    assert.ok([cnn, mlp].every((m) => m.get('dense1/bias')!.route === 'dense'));
  });

  test('both outputs run in the real runtime with the dense model\'s results', async () => {
    for (const m of models) {
      // LiteRT does not load models with variable tensors (the LSTM's states): tfjs-tflite runs those.
      const engine: EngineName = m.model.startsWith('embedding') ? 'tfjs-tflite' : 'litert';
      const run = async (bytes: Uint8Array) => {
        const session = await (await loadTfliteRuntime(engine)).load(bytes);
        try {
          // token ids (int32 inputs) in range for the embedding table, floats from the seeded generator
          const inputs = deterministicInputs(session.inputs(), 1).map((a) => (a instanceof Int32Array ? a.map((v) => Math.abs(v) % 1000) : a));
          return await session.run(inputs);
        } finally {
          session.dispose();
        }
      };
      const expected = await run(m.dense);
      for (const [label, side] of [['official (emulated)', m.emulated], ['ours', m.ours], ['ours (balanced)', m.balanced]] as const) {
        const diff = compareOutputs(expected, await run(side.bytes))[0]!;
        if (side.plan.entries.every((e) => e.route !== 'native')) {
          assert.ok(diff.bitIdentical, `${m.model}, ${label} in ${engine}: through DENSIFY only the outputs must be bit-identical (max abs ${diff.maxAbsDiff})`);
        } else {
          // FULLY_CONNECTED reading sparse weights natively sums in another order
          const scale = Math.max(...Array.from(expected[0] as Float32Array, Math.abs));
          assert.ok(diff.maxAbsDiff <= 1e-5 * scale, `${m.model}, ${label} in ${engine}: max abs ${diff.maxAbsDiff}, outputs up to ${scale}`);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A SPARSE_CSR block level (e.g. dimension 784 = 4 blocks of 196, CSR inside each block, so the
// indices fit in 8 bits) is what TFLite's encoder never writes ("only dense blocks are
// supported"), and its decoder reads each block size from the dense_size of a block level, which
// the model loader sets for DENSE levels only: 0 for a sparse one, then a division by zero.

/** x [1, I] -> FULLY_CONNECTED with weights [O, I] (sparse: through DENSIFY, float16: then DEQUANTIZE). */
function fcModel(O: number, I: number, dense: Float32Array, sparse?: { params: SparsityParams; values: Uint8Array; float16: boolean }): Uint8Array {
  const g = new TfliteGraphBuilder();
  const x = g.tensor('x', TensorType.FLOAT32, [1, I]);
  const y = g.tensor('y', TensorType.FLOAT32, [1, O]);
  let weights: number;
  let stored = -1;
  if (!sparse) {
    weights = g.constant('w', TensorType.FLOAT32, [O, I], bytesOf(dense));
  } else {
    const type = sparse.float16 ? TensorType.FLOAT16 : TensorType.FLOAT32;
    stored = g.constant('w', type, [O, I], sparse.values);
    weights = g.tensor('w/densified', type, [O, I]);
    g.operator(BuiltinOperator.DENSIFY, 1, [stored], [weights], BuiltinOptions.NONE, null);
    if (sparse.float16) {
      const f32 = g.tensor('w/dequantized', TensorType.FLOAT32, [O, I]);
      g.operator(BuiltinOperator.DEQUANTIZE, 1, [weights], [f32], BuiltinOptions.NONE, null);
      weights = f32;
    }
  }
  g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, weights, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
  const doc = g.finish([x], [y], 'fc');
  if (sparse) doc.model.subgraphs[0]!.tensors[stored]!.sparsity = new TypedSparsityT(sparse.params);
  return writeTflite(doc);
}

/** Blocks of `b` along the last dimension, every level DENSE but the block level, which is CSR. */
function sparseBlockLevel(values: Float32Array | Uint16Array, O: number, I: number, b: number): { params: SparsityParams; stored: number[] } {
  const segments = [0];
  const indices: number[] = [];
  const stored: number[] = [];
  for (let o = 0; o < O; o++) {
    for (let block = 0; block < I / b; block++) {
      for (let e = 0; e < b; e++) {
        const v = values[o * I + block * b + e]!;
        if (v !== 0) { indices.push(e); stored.push(v); }
      }
      segments.push(indices.length);
    }
  }
  return {
    params: {
      traversalOrder: [0, 1, 2], blockMap: [1],
      dimMetadata: [{ format: 'DENSE', denseSize: O }, { format: 'DENSE', denseSize: I / b }, { format: 'SPARSE_CSR', segments: Uint16Array.from(segments), indices: Uint8Array.from(indices) }],
    },
    stored,
  };
}

describe('a SPARSE_CSR block level (indices within a block, 8 bits)', () => {
  const [O, I, b] = [16, 32, 8];
  const dense = prunedNormal(O * I, 0.3, 0.8, seededRandom(5));
  const half = Uint16Array.from(dense, float32ToFloat16);
  // The same weights in float32 and float16 (values rounded to float16 in both models).
  const rounded = Float32Array.from(half, float16ToFloat32);

  test('our encoder, verifier and --to tflite (the way back) refuse it', () => {
    assert.throws(() => sparsityFromDense(dense, [O, I], [0, 1, 2], [1], [b], ['DENSE', 'DENSE', 'SPARSE_CSR']), /block dimensions are always stored DENSE/);
    const { params, stored } = sparseBlockLevel(dense, O, I, b);
    assert.throws(() => verifySparsity(params, [O, I], stored.length), /block dimensions must be stored DENSE/);
    const model = fcModel(O, I, dense, { params, values: bytesOf(Float32Array.from(stored)), float16: false });
    assert.throws(() => densifyTfliteDocument(readTfliteDocument(model)), (e: PrunepackError) => e.code === 'INVALID_SPARSITY' && /block dimensions must be stored DENSE/.test(e.message));
  });

  for (const float16 of [false, true]) {
    test(`the real runtimes refuse it (${float16 ? 'float16 -> DENSIFY -> DEQUANTIZE' : 'float32'}), while the same weights as CSR run bit-identical`, async () => {
      const weights = float16 ? rounded : dense;
      const reference = fcModel(O, I, weights);
      const { params, stored } = sparseBlockLevel(float16 ? half : dense, O, I, b);
      const values = float16 ? bytesOf(Uint16Array.from(stored)) : bytesOf(Float32Array.from(stored));
      const blockLevel = fcModel(O, I, weights, { params, values, float16 });
      const csr = float16 ? sparsityFromDense(half, [O, I], [0, 1], [], [], ['DENSE', 'SPARSE_CSR'], 'float16') : sparsityFromDense(dense, [O, I], [0, 1], [], [], ['DENSE', 'SPARSE_CSR']);
      const control = fcModel(O, I, weights, { params: csr.params, values: bytesOf(csr.values), float16 });
      for (const engine of ['litert', 'tfjs-tflite'] as const) {
        const run = async (bytes: Uint8Array) => {
          const session = await (await loadTfliteRuntime(engine)).load(bytes);
          try { return await session.run(deterministicInputs(session.inputs(), 1)); } finally { session.dispose(); }
        };
        const expected = await run(reference);
        assert.ok(compareOutputs(expected, await run(control))[0]!.bitIdentical, `${engine}: the CSR control must match`);
        await assert.rejects(run(blockLevel), /divide by zero/, `${engine} accepted a SPARSE_CSR block level: the planner could use such layouts now`);
      }
    });
  }
});
