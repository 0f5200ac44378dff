/**
 * `--to tflite-sparse` and `--to tflite`, proven in the real TFLite WASM runtimes (no mocks): the
 * CNN sample, magnitude-pruned copies of MediaPipe models, an int8 FULLY_CONNECTED model, models
 * whose weights the official converter leaves dense (GATHER, BATCH_MATMUL, CONV_3D, TRANSPOSE_CONV,
 * LSTM), a weight the runtime refuses, and Google's face_detection_full_range_sparse.tflite.
 * Run: npx tsc -p . && node --test dist/test/tflite-sparse.test.js
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
import { Padding } from '../schemas/generated/tflite/tflite/padding.js';
import { ActivationFunctionType } from '../schemas/generated/tflite/tflite/activation-function-type.js';
import { Conv2DOptionsT } from '../schemas/generated/tflite/tflite/conv2doptions.js';
import { Conv3DOptionsT } from '../schemas/generated/tflite/tflite/conv3doptions.js';
import { GatherOptionsT } from '../schemas/generated/tflite/tflite/gather-options.js';
import { MulOptionsT } from '../schemas/generated/tflite/tflite/mul-options.js';
import { CastOptionsT } from '../schemas/generated/tflite/tflite/cast-options.js';
import { BatchMatMulOptionsT } from '../schemas/generated/tflite/tflite/batch-mat-mul-options.js';
import { TransposeConvOptionsT } from '../schemas/generated/tflite/tflite/transpose-conv-options.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { UnidirectionalSequenceLSTMOptionsT } from '../schemas/generated/tflite/tflite/unidirectional-sequence-lstmoptions.js';
import { TypedSparsityT } from '../converters/tflite/document.js';
import { readTflite, readTfliteDocument } from '../converters/tflite/read.js';
import { tfliteDocumentOf, tflitePlugin } from '../converters/tflite/index.js';
import { planPrune } from '../src/prune.js';
import { writeTflite } from '../converters/tflite/write.js';
import { buildModel, operatorName } from '../converters/tflite/model-view.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { densifyTfliteDocument, denseFullyConnectedVersion } from '../converters/tflite/densify.js';
import { planSparseTflite, type SparsePlan } from '../converters/tflite/sparse-plan.js';
import {
  applySparsePlan, createRuntimeCheck, sparsifyTflite, sparsifyTfliteChecked, type RuntimeComparison,
} from '../converters/tflite/sparse-write.js';
import { verifySparsity } from '../src/sparsity/verify-sparsity.js';
import { loadTfliteRuntime } from '../src/verify/tflite-runtime.js';
import { verifyWeightsEqual } from '../src/cli/convert.js';
import { prunedNormal, seededRandom } from '../samples/build-samples.js';
import { mediapipeModels, repoPath, tempDir } from './helpers.js';

const F32 = TensorType.FLOAT32;
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const read = (file: string) => new Uint8Array(fs.readFileSync(file));
const MEDIAPIPE = (p: string) => repoPath('node_modules', '@mediapipe', p);
const GOOGLE_SPARSE = MEDIAPIPE('face_detection/face_detection_full_range_sparse.tflite');

// ---------------------------------------------------------------------------------------------
// Helpers

/** `prunepack prune` as a library call: magnitude pruning of every weight, element-wise or in 1x4 blocks. */
function pruneTflite(bytes: Uint8Array, sparsity: number, block = 1): Uint8Array {
  const model = readTflite(bytes);
  const { replacements } = planPrune(model, { sparsity, ...(block > 1 ? { block: [1, block] as [number, number] } : {}) });
  return writeTflite(tfliteDocumentOf(tflitePlugin.withWeights!(model, replacements)));
}

/** Every sparse tensor of a model passes the verifier (sorted indices, exact buffer size). */
function verifyAllSparse(bytes: Uint8Array): number {
  const doc = readTfliteDocument(bytes);
  let count = 0;
  doc.model.subgraphs.forEach((sg) => sg.tensors.forEach((t) => {
    if (!t.sparsity) return;
    assert.ok(t.sparsity instanceof TypedSparsityT);
    const size = t.type === TensorType.FLOAT32 ? 4 : t.type === TensorType.FLOAT16 ? 2 : 1;
    verifySparsity(t.sparsity.params, t.shape, doc.buffers[t.buffer]!.byteLength, size, { requireSortedIndices: true });
    count++;
  }));
  return count;
}

function opNames(bytes: Uint8Array): string[] {
  const doc = readTfliteDocument(bytes);
  const names = doc.model.operatorCodes.map(operatorName);
  return doc.model.subgraphs[0]!.operators.map((op) => names[op.opcodeIndex]!);
}

/** Sparsify with the real runtime as judge; returns the result and the accepted comparison. */
async function sparsifyInRuntime(dense: Uint8Array, options = {}, engine?: 'litert' | 'tfjs-tflite') {
  const check = await createRuntimeCheck(dense, engine ? { engine: await loadTfliteRuntime(engine) } : {});
  const result = await sparsifyTfliteChecked(readTfliteDocument(dense), options, check.check);
  const comparison = await check.compare(result.bytes);
  return { result, comparison };
}

/** Through DENSIFY outputs are bit-identical, unless XNNPACK ran its sparse kernels or FC read natively. */
function assertSameOutputs(c: RuntimeComparison, plan: SparsePlan, label: string): void {
  const reordered = plan.entries.some((e) => e.route === 'native') || plan.xnnpack.qualifies;
  if (!reordered) assert.ok(c.bitIdentical, `${label}: outputs must be bit-identical through DENSIFY (max abs ${c.maxAbsDiff})`);
  assert.ok(c.bitIdentical || c.withinTolerance, `${label}: max abs ${c.maxAbsDiff}, max rel ${c.maxRelDiff}`);
}

const sizes: string[] = [];
process.on('exit', () => { if (sizes.length) process.stdout.write(`# sizes (dense -> ours)\n${sizes.map((s) => `#   ${s}`).join('\n')}\n`); });

// ---------------------------------------------------------------------------------------------
// Small models built in code

function int8FullyConnected(structured: boolean, seed = 3): Uint8Array {
  const random = seededRandom(seed);
  const I = 256;
  const O = 64;
  const weights = new Int8Array(O * I);
  for (let o = 0; o < O; o++) {
    for (let b = 0; b < I / 16; b++) {
      if (structured && random() < 0.8) continue; // 80% of 1x16 blocks all zero
      for (let k = 0; k < 16; k++) if (structured || random() < 0.2) weights[o * I + b * 16 + k] = Math.round((random() * 2 - 1) * 127);
    }
  }
  const g = new TfliteGraphBuilder();
  const x = g.tensor('x', TensorType.INT8, [1, I], { scale: [0.02], zeroPoint: [0] });
  const w = g.constant('fc/weights', TensorType.INT8, [O, I], bytesOf(weights), { scale: [0.004], zeroPoint: [0] });
  const bias = g.constant('fc/bias', TensorType.INT32, [O], bytesOf(Int32Array.from({ length: O }, () => Math.round((random() * 2 - 1) * 2000))), { scale: [0.00008], zeroPoint: [0] });
  const y = g.tensor('y', TensorType.INT8, [1, O], { scale: [0.06], zeroPoint: [5] });
  g.operator(BuiltinOperator.FULLY_CONNECTED, 4, [x, w, bias], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
  return writeTflite(g.finish([x], [y], 'int8 FC, symmetric weights'));
}

/** An embedding table (GATHER), a BATCH_MATMUL constant, a CONV_3D and a TRANSPOSE_CONV filter. */
function beyondConverterModel(): Uint8Array {
  const random = seededRandom(11);
  const g = new TfliteGraphBuilder();
  // GATHER: indices computed in the graph (|x| * 499 cast to int32) so random inputs stay in range.
  const x = g.tensor('x', F32, [6]);
  const absolute = g.tensor('abs', F32, [6]);
  g.operator(BuiltinOperator.ABS, 1, [x], [absolute], BuiltinOptions.NONE, null);
  const scale = g.constant('scale', F32, [1], bytesOf(new Float32Array([499])));
  const scaled = g.tensor('scaled', F32, [6]);
  g.operator(BuiltinOperator.MUL, 1, [absolute, scale], [scaled], BuiltinOptions.MulOptions, new MulOptionsT());
  const ids = g.tensor('ids', TensorType.INT32, [6]);
  g.operator(BuiltinOperator.CAST, 1, [scaled], [ids], BuiltinOptions.CastOptions, new CastOptionsT(F32, TensorType.INT32));
  const table = g.constant('embedding/table', F32, [500, 32], bytesOf(prunedNormal(500 * 32, 0.5, 0.85, random)));
  const embedded = g.tensor('embedded', F32, [6, 32]);
  g.operator(BuiltinOperator.GATHER, 1, [table, ids], [embedded], BuiltinOptions.GatherOptions, new GatherOptionsT(0, 0));
  // BATCH_MATMUL with a constant right-hand side
  const m = g.tensor('m', F32, [1, 8, 64]);
  const rhs = g.constant('matmul/rhs', F32, [64, 48], bytesOf(prunedNormal(64 * 48, 0.3, 0.85, random)));
  const product = g.tensor('product', F32, [1, 8, 48]);
  g.operator(BuiltinOperator.BATCH_MATMUL, 1, [m, rhs], [product], BuiltinOptions.BatchMatMulOptions, new BatchMatMulOptionsT(false, false, false));
  // CONV_3D, filter [D, H, W, I, O]
  const v = g.tensor('v', F32, [1, 4, 8, 8, 3]);
  const filter3d = g.constant('conv3d/filter', F32, [2, 3, 3, 3, 16], bytesOf(prunedNormal(2 * 27 * 16, 0.3, 0.8, random)));
  const bias3d = g.constant('conv3d/bias', F32, [16], bytesOf(prunedNormal(16, 0.1, 0, random)));
  const volume = g.tensor('volume', F32, [1, 3, 6, 6, 16]);
  g.operator(BuiltinOperator.CONV_3D, 1, [v, filter3d, bias3d], [volume], BuiltinOptions.Conv3DOptions,
    new Conv3DOptionsT(Padding.VALID, 1, 1, 1, ActivationFunctionType.NONE, 1, 1, 1));
  // TRANSPOSE_CONV, filter [O, H, W, I]
  const t = g.tensor('t', F32, [1, 8, 8, 16]);
  const outputShape = g.constant('tconv/output_shape', TensorType.INT32, [4], bytesOf(new Int32Array([1, 16, 16, 8])));
  const filterT = g.constant('tconv/filter', F32, [8, 3, 3, 16], bytesOf(prunedNormal(8 * 9 * 16, 0.3, 0.8, random)));
  const upsampled = g.tensor('upsampled', F32, [1, 16, 16, 8]);
  g.operator(BuiltinOperator.TRANSPOSE_CONV, 1, [outputShape, filterT, t], [upsampled], BuiltinOptions.TransposeConvOptions,
    new TransposeConvOptionsT(Padding.SAME, 2, 2));
  return writeTflite(g.finish([x, m, v, t], [embedded, product, volume, upsampled], 'beyond the official converter'));
}

/** UNIDIRECTIONAL_SEQUENCE_LSTM with 80%-pruned input and recurrent weights. */
function lstmModel(): Uint8Array {
  const random = seededRandom(17);
  const g = new TfliteGraphBuilder();
  const [B, S, I, C] = [1, 5, 16, 24];
  const x = g.tensor('x', F32, [B, S, I]);
  const weight = (name: string, shape: number[], sparsity: number) =>
    g.constant(name, F32, shape, bytesOf(prunedNormal(shape.reduce((a, b) => a * b, 1), 0.3, sparsity, random)));
  const gates = ['input', 'forget', 'cell', 'output'];
  const inputWeights = gates.map((k) => weight(`lstm/input_to_${k}`, [C, I], 0.8));
  const recurrentWeights = gates.map((k) => weight(`lstm/recurrent_to_${k}`, [C, C], 0.8));
  const biases = gates.map((k) => weight(`lstm/${k}_bias`, [C], 0));
  const hidden = g.tensor('lstm/hidden_state', F32, [B, C]);
  const cell = g.tensor('lstm/cell_state', F32, [B, C]);
  const y = g.tensor('y', F32, [B, S, C]);
  g.operator(BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, 1,
    [x, ...inputWeights, ...recurrentWeights, -1, -1, -1, ...biases, -1, -1, hidden, cell, -1, -1, -1, -1], [y],
    BuiltinOptions.UnidirectionalSequenceLSTMOptions, new UnidirectionalSequenceLSTMOptionsT(ActivationFunctionType.TANH, 0, 0, false));
  const doc = g.finish([x], [y], 'lstm');
  for (const state of [hidden, cell]) doc.model.subgraphs[0]!.tensors[state]!.isVariable = true;
  return writeTflite(doc);
}

/** Dynamic-range (hybrid) FULLY_CONNECTED: float input, int8 weights. */
function hybridFullyConnected(): Uint8Array {
  const random = seededRandom(23);
  const [I, O] = [128, 64];
  const weights = new Int8Array(O * I);
  for (let i = 0; i < weights.length; i++) if (random() < 0.2) weights[i] = Math.round((random() * 2 - 1) * 127);
  const g = new TfliteGraphBuilder();
  const x = g.tensor('x', F32, [1, I]);
  const w = g.constant('hybrid/weights', TensorType.INT8, [O, I], bytesOf(weights), { scale: [0.01], zeroPoint: [0] });
  const bias = g.constant('hybrid/bias', F32, [O], bytesOf(prunedNormal(O, 0.1, 0, random)));
  const y = g.tensor('y', F32, [1, O]);
  g.operator(BuiltinOperator.FULLY_CONNECTED, 3, [x, w, bias], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
  return writeTflite(g.finish([x], [y], 'hybrid FC'));
}

/** One pruned filter read by two CONV_2D operators. */
function sharedWeightModel(): Uint8Array {
  const random = seededRandom(29);
  const g = new TfliteGraphBuilder();
  const x = g.tensor('x', F32, [1, 8, 8, 16]);
  const filter = g.constant('shared/filter', F32, [16, 1, 1, 16], bytesOf(prunedNormal(256, 0.3, 0.8, random)));
  const bias = g.constant('shared/bias', F32, [16], bytesOf(prunedNormal(16, 0.1, 0, random)));
  const a = g.tensor('a', F32, [1, 8, 8, 16]);
  const b = g.tensor('b', F32, [1, 8, 8, 16]);
  g.operator(BuiltinOperator.CONV_2D, 1, [x, filter, bias], [a], BuiltinOptions.Conv2DOptions, new Conv2DOptionsT(Padding.SAME, 1, 1, ActivationFunctionType.RELU));
  g.operator(BuiltinOperator.CONV_2D, 1, [a, filter, bias], [b], BuiltinOptions.Conv2DOptions, new Conv2DOptionsT(Padding.SAME, 1, 1));
  return writeTflite(g.finish([x], [b], 'shared filter'));
}

// ---------------------------------------------------------------------------------------------

describe('CNN sample', () => {
  const dense = read(repoPath('samples', 'cnn-synthetic-80.tflite'));

  test('runs in the runtime with the dense model\'s outputs; every sparse tensor verifies', async () => {
    const { result, comparison } = await sparsifyInRuntime(dense);
    const { plan } = result;
    assert.equal(result.refusals.length, 0);
    assert.equal(verifyAllSparse(result.bytes), plan.totals.sparseWeights);
    assert.equal(plan.totals.sparseWeights, 5, 'three convolution filters and two FULLY_CONNECTED weights');
    assertSameOutputs(comparison, plan, 'cnn');
    assert.ok(comparison.maxRelDiff <= 1e-5, `max rel ${comparison.maxRelDiff}`);
    // dense2 ([10, 64]) is read natively by FULLY_CONNECTED v8; dense1 is smaller through DENSIFY
    const byName = new Map(plan.entries.map((e) => [e.tensor, e]));
    assert.equal(byName.get('dense2/weights')!.route, 'native');
    assert.equal(byName.get('dense1/weights')!.route, 'densify');
    const doc = readTfliteDocument(result.bytes);
    const fcVersions = doc.model.subgraphs[0]!.operators.filter((op) => operatorName(doc.model.operatorCodes[op.opcodeIndex]!) === 'FULLY_CONNECTED')
      .map((op) => doc.model.operatorCodes[op.opcodeIndex]!.version);
    assert.deepEqual(fcVersions, [1, 8], 'only the native reader moves to version 8, with its own operator code');
    verifyWeightsEqual(buildModel(readTfliteDocument(dense)), buildModel(doc));
    const minRuntime = doc.model.metadata.find((m) => m.name === 'min_runtime_version')!;
    assert.equal(new TextDecoder().decode(doc.buffers[minRuntime.buffer]!.bytes).replace(/\0+$/, ''), '2.3.0', 'FULLY_CONNECTED v8 needs TFLite 2.3');
    assert.ok(result.bytes.length < dense.length / 3.5, `${result.bytes.length} B`);
    sizes.push(`cnn-synthetic-80: ${dense.length} -> ${result.bytes.length} B`);
  });

  test('through DENSIFY only (native FC excluded): bit-identical outputs', async () => {
    const { result, comparison } = await sparsifyInRuntime(dense, { block: 'none', keepDense: ['dense2/weights'] });
    assert.ok(result.plan.entries.every((e) => e.route !== 'native'));
    assert.ok(comparison.bitIdentical, `max abs ${comparison.maxAbsDiff}`);
  });

  test('--to tflite on our output: no DENSIFY, FC versions restored, same outputs as the original dense model', async () => {
    const sparse = sparsifyTflite(readTfliteDocument(dense)).bytes;
    const { doc, report } = densifyTfliteDocument(readTfliteDocument(sparse));
    const back = writeTflite(doc);
    assert.equal(report.removedDensifyOps, 4);
    assert.deepEqual(report.restoredFullyConnected.map((r) => r.version), [1]);
    assert.ok(!opNames(back).includes('DENSIFY'));
    assert.ok(doc.model.operatorCodes.every((c) => c.version !== 8 && operatorName(c) !== 'DENSIFY'));
    assert.equal(verifyAllSparse(back), 0);
    // the original's operators and tensors, in the original order
    assert.deepEqual(opNames(back), opNames(dense));
    const tensorNames = (b: Uint8Array) => readTfliteDocument(b).model.subgraphs[0]!.tensors.map((t) => t.name);
    assert.deepEqual(tensorNames(back), tensorNames(dense));
    verifyWeightsEqual(buildModel(readTfliteDocument(dense)), buildModel(doc));
    const check = await createRuntimeCheck(dense);
    assert.ok((await check.compare(back)).bitIdentical);
  });

  test('already-sparse input is re-planned, not double-encoded: sparsifying twice gives the same bytes', () => {
    const once = sparsifyTflite(readTfliteDocument(dense)).bytes;
    const twice = sparsifyTflite(readTfliteDocument(once));
    assert.equal(twice.densifyReport.densifiedTensors, 5);
    assert.deepEqual(Buffer.from(twice.bytes), Buffer.from(once));
  });
});

describe('MediaPipe models, pruned with `prune`', () => {
  const models = mediapipeModels().filter((m) => !m.includes('_sparse'));
  test('the dense MediaPipe models: six, all float16 (none float32)', () => {
    assert.ok(models.length >= 6);
    const float32 = models.filter((m) => buildModel(readTfliteDocument(read(m))).weights.some((w) => w.dtype === 'float32'));
    assert.deepEqual(float32, [], 'a float32 MediaPipe model appeared: it is covered by the loop below');
  });
  for (const file of models) {
    const name = path.basename(file, '.tflite');
    for (const [label, sparsity, block] of [['50%', 0.5, 1], ['80%', 0.8, 1], ['90%', 0.9, 1], ['80% in 1x4 blocks', 0.8, 4]] as const) {
      test(`${name} ${label}: float16 sparse -> DENSIFY -> DEQUANTIZE, same outputs, verifier passes`, async () => {
        const dense = pruneTflite(read(file), sparsity, block);
        const { result, comparison } = await sparsifyInRuntime(dense);
        const { plan } = result;
        assert.equal(result.refusals.length, 0);
        assertSameOutputs(comparison, plan, label);
        assert.ok(comparison.bitIdentical, `${label}: measured bit-identical in litert (max abs ${comparison.maxAbsDiff})`);
        assert.equal(verifyAllSparse(result.bytes), plan.totals.sparseWeights);
        assert.ok(plan.totals.sparseWeights >= 20, `${plan.totals.sparseWeights} sparse weights`);
        // every sparse weight is float16 and reaches its consumer through DENSIFY then DEQUANTIZE
        const doc = readTfliteDocument(result.bytes);
        const sg = doc.model.subgraphs[0]!;
        const names = doc.model.operatorCodes.map(operatorName);
        for (const e of plan.entries.filter((x) => x.route === 'densify' && x.dtype === 'float16')) {
          assert.ok(e.viaDequantize, e.tensor);
          const densify = sg.operators.findIndex((op) => names[op.opcodeIndex] === 'DENSIFY' && op.inputs[0] === e.tensorIndex);
          assert.ok(densify >= 0, e.tensor);
          const out = sg.operators[densify]!.outputs[0]!;
          const readers = sg.operators.map((op, o) => [op, o] as const).filter(([op]) => op.inputs.includes(out));
          assert.ok(readers.every(([op]) => names[op.opcodeIndex] === 'DEQUANTIZE'));
          assert.ok(readers.every(([, o]) => o > densify), 'DENSIFY runs before its readers');
          assert.equal(sg.tensors[out]!.type, TensorType.FLOAT16);
        }
        assert.equal(plan.xnnpack.qualifies, sparsity >= 0.8, plan.xnnpack.reason);
        if (sparsity === 0.5) assert.match(plan.xnnpack.reason, /needs at least 66.7%/);
        verifyWeightsEqual(buildModel(readTfliteDocument(dense)), buildModel(doc));
        assert.ok(result.bytes.length < dense.length);
        sizes.push(`${name} ${label}: ${dense.length} -> ${result.bytes.length} B (${(dense.length / result.bytes.length).toFixed(2)}x)`);
      });
    }
  }
});

describe('int8 FULLY_CONNECTED with symmetric weights', () => {
  test('1x16-block pruned weights are read natively (FULLY_CONNECTED v8) with the same outputs', async () => {
    const dense = int8FullyConnected(true);
    const { result, comparison } = await sparsifyInRuntime(dense);
    const entry = result.plan.entries.find((e) => e.tensor === 'fc/weights')!;
    assert.equal(entry.route, 'native');
    assert.equal(entry.encoding, 'FC v8 block 1x16');
    assert.deepEqual(entry.layout, { traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [16], dimFormats: ['DENSE', 'SPARSE_CSR', 'DENSE'] });
    assert.equal(verifyAllSparse(result.bytes), 1);
    assert.ok(comparison.bitIdentical || comparison.withinTolerance, `max abs ${comparison.maxAbsDiff}`);
    assert.ok(comparison.bitIdentical, 'int8 arithmetic: identical in the runtime');
    const doc = readTfliteDocument(result.bytes);
    const fc = doc.model.subgraphs[0]!.operators[0]!;
    assert.equal(doc.model.operatorCodes[fc.opcodeIndex]!.version, 8);
    // the way back gives version 4 (int8 in, int8 weights, int8 out)
    const back = densifyTfliteDocument(doc);
    assert.deepEqual(back.report.restoredFullyConnected.map((r) => r.version), [4]);
    assert.equal(denseFullyConnectedVersion(back.doc.model.subgraphs[0]!.tensors, back.doc.model.subgraphs[0]!.operators[0]!), 4);
    sizes.push(`int8 FC 1x16-structured: ${dense.length} -> ${result.bytes.length} B`);
  });

  test('unstructured int8 weights: DENSIFY in tfjs-tflite; LiteRT\'s XNNPACK refuses it, so the weight stays dense there', async () => {
    const dense = int8FullyConnected(false);
    const planned = sparsifyTflite(readTfliteDocument(dense)).plan.entries.find((e) => e.tensor === 'fc/weights')!;
    assert.equal(planned.route, 'densify', '1x16 blocks would not pay on unstructured zeros');
    const older = await sparsifyInRuntime(dense, {}, 'tfjs-tflite');
    assert.equal(older.result.plan.entries.find((e) => e.tensor === 'fc/weights')!.route, 'densify');
    assert.ok(older.comparison.bitIdentical);
    assert.equal(verifyAllSparse(older.result.bytes), 1);
    const litert = await sparsifyInRuntime(dense, {}, 'litert');
    const entry = litert.result.plan.entries.find((e) => e.tensor === 'fc/weights')!;
    assert.equal(entry.route, 'dense');
    assert.match(entry.reason, /^runtime refused: .*XNNPack.*failed to prepare/i);
    assert.ok(litert.comparison.bitIdentical);
  });
});

describe('beyond the official converter', () => {
  test('GATHER table, BATCH_MATMUL constant, CONV_3D and TRANSPOSE_CONV filters read through DENSIFY', async () => {
    const dense = beyondConverterModel();
    const { result, comparison } = await sparsifyInRuntime(dense);
    const sparse = new Map(result.plan.entries.filter((e) => e.route === 'densify').map((e) => [e.tensor, e.consumer]));
    assert.deepEqual([...sparse.keys()].sort(), ['conv3d/filter', 'embedding/table', 'matmul/rhs', 'tconv/filter']);
    assert.equal(sparse.get('embedding/table'), 'GATHER:0');
    assert.equal(result.refusals.length, 0);
    assert.ok(comparison.bitIdentical, `max abs ${comparison.maxAbsDiff}`);
    assert.equal(verifyAllSparse(result.bytes), 4);
    sizes.push(`GATHER + BATCH_MATMUL + CONV_3D + TRANSPOSE_CONV: ${dense.length} -> ${result.bytes.length} B`);
  });

  test('LSTM input and recurrent weights through DENSIFY (tfjs-tflite: LiteRT does not load variable tensors)', async () => {
    const dense = lstmModel();
    const litert = await loadTfliteRuntime('litert');
    await assert.rejects(litert.load(dense), /Variable tensors not yet supported/);
    const { result, comparison } = await sparsifyInRuntime(dense, {}, 'tfjs-tflite');
    const sparse = result.plan.entries.filter((e) => e.route === 'densify');
    assert.equal(sparse.length, 8);
    assert.ok(sparse.every((e) => e.consumer.startsWith('UNIDIRECTIONAL_SEQUENCE_LSTM:')));
    assert.ok(comparison.bitIdentical);
    assert.equal(verifyAllSparse(result.bytes), 8);
    sizes.push(`LSTM 80%: ${dense.length} -> ${result.bytes.length} B`);
  });

  test('a weight the runtime refuses stays dense, and the plan says why', async () => {
    const dense = hybridFullyConnected();
    const planned = sparsifyTflite(readTfliteDocument(dense));
    assert.equal(planned.plan.entries.find((e) => e.tensor === 'hybrid/weights')!.route, 'densify');
    const { result, comparison } = await sparsifyInRuntime(dense);
    const entry = result.plan.entries.find((e) => e.tensor === 'hybrid/weights')!;
    assert.equal(entry.route, 'dense');
    assert.match(entry.reason, /^runtime refused: .*XNNPack/i);
    assert.equal(result.refusals.length, 1);
    assert.deepEqual(result.refusals[0]!.tensors, ['hybrid/weights']);
    assert.ok(comparison.bitIdentical);
    assert.ok(!opNames(result.bytes).includes('DENSIFY'));
  });

  test('a weight shared by two operators stays one tensor behind one DENSIFY, placed before the first reader', async () => {
    const dense = sharedWeightModel();
    const { result, comparison } = await sparsifyInRuntime(dense);
    assert.deepEqual(opNames(result.bytes), ['DENSIFY', 'CONV_2D', 'CONV_2D']);
    const sg = readTfliteDocument(result.bytes).model.subgraphs[0]!;
    const out = sg.operators[0]!.outputs[0]!;
    assert.equal(sg.operators[1]!.inputs[1], out);
    assert.equal(sg.operators[2]!.inputs[1], out);
    assert.ok(comparison.bitIdentical);
  });
});

describe('planner', () => {
  const doc = readTfliteDocument(read(repoPath('samples', 'cnn-synthetic-80.tflite')));

  test('thresholds, keep-dense, block choices', () => {
    const strict = planSparseTflite(doc, { minSparsity: 0.9 });
    assert.equal(strict.totals.sparseWeights, 0);
    assert.match(strict.entries.find((e) => e.tensor === 'conv1/weights')!.reason, /zeros < 90%/);
    const kept = planSparseTflite(doc, { keepDense: ['conv1/weights'] });
    assert.equal(kept.entries.find((e) => e.tensor === 'conv1/weights')!.reason, '--keep-dense');
    const none = planSparseTflite(doc, { block: 'none' });
    assert.ok(none.entries.every((e) => !e.layout || e.layout.blockMap.length === 0));
    assert.throws(() => planSparseTflite(doc, { block: '2x2' as never }), /unknown block choice/);
    assert.throws(() => planSparseTflite(doc, { minSparsity: 2 }), /out of range/);
  });

  test('estimated bytes are close to what the writer produces', () => {
    const plan = planSparseTflite(doc);
    const written = writeTflite(applySparsePlan(doc, plan)).length;
    const dense = writeTflite(doc).length;
    const predicted = plan.totals.bytesBefore - plan.totals.bytesAfter;
    assert.ok(Math.abs((dense - written) - predicted) < 200, `saved ${dense - written}, predicted ${predicted}`);
  });

  test('1x4-structured FC weights: the 1x4 block layout FULLY_CONNECTED reads natively', () => {
    const random = seededRandom(31);
    const values = prunedNormal(32 * 64, 0.2, 0, random);
    for (let i = 0; i < values.length; i += 4) if (random() < 0.9) values.fill(0, i, i + 4);
    const g = new TfliteGraphBuilder();
    const x = g.tensor('x', F32, [1, 64]);
    const w = g.constant('w', F32, [32, 64], bytesOf(values));
    const y = g.tensor('y', F32, [1, 32]);
    g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, w, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    const plan = planSparseTflite(g.finish([x], [y], 'fc'), { block: '1x4' });
    const e = plan.entries[0]!;
    assert.equal(e.encoding, 'FC v8 block 1x4');
    assert.deepEqual(e.layout!.blockSize, [4]);
  });

  test('int8 with a non-zero zero point, -0.0 values and all-zero weights', () => {
    const g = new TfliteGraphBuilder();
    const x = g.tensor('x', TensorType.INT8, [1, 32], { scale: [0.1], zeroPoint: [0] });
    const w = g.constant('w', TensorType.INT8, [16, 32], new Uint8Array(16 * 32).fill(3), { scale: [0.1], zeroPoint: [3] });
    const y = g.tensor('y', TensorType.INT8, [1, 16], { scale: [0.1], zeroPoint: [0] });
    g.operator(BuiltinOperator.FULLY_CONNECTED, 4, [x, w, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    const int8 = planSparseTflite(g.finish([x], [y], 'zp'));
    assert.equal(int8.entries[0]!.zeroShare, 1);
    assert.match(int8.entries[0]!.reason, /zero point != 0/);

    const h = new TfliteGraphBuilder();
    const values = prunedNormal(64 * 64, 0.3, 0.8, seededRandom(37));
    for (let i = 0; i < values.length; i += 7) if (values[i] === 0) values[i] = -0;
    const a = h.tensor('a', F32, [1, 64]);
    const fw = h.constant('fw', F32, [64, 64], bytesOf(values));
    const zw = h.constant('zeros', F32, [64, 64], new Uint8Array(64 * 64 * 4));
    const b = h.tensor('b', F32, [1, 64]);
    const c = h.tensor('c', F32, [1, 64]);
    h.operator(BuiltinOperator.FULLY_CONNECTED, 1, [a, fw, -1], [b], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    h.operator(BuiltinOperator.FULLY_CONNECTED, 1, [b, zw, -1], [c], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    const fdoc = h.finish([a], [c], 'negative zeros');
    const plan = planSparseTflite(fdoc);
    const neg = plan.entries.find((e) => e.tensor === 'fw')!;
    assert.ok(neg.negativeZeros! > 0);
    assert.ok(Math.abs(neg.zeroShare - 0.8) < 0.001, 'a -0.0 counts as zero');
    assert.match(plan.entries.find((e) => e.tensor === 'zeros')!.reason, /all zeros/);
    // decodes to +0.0 where the input had -0.0: equal as numbers, and the read-back check accepts it
    const written = writeTflite(applySparsePlan(fdoc, plan));
    verifyWeightsEqual(buildModel(fdoc), buildModel(readTfliteDocument(written)));
  });
});

describe("Google's face_detection_full_range_sparse.tflite", () => {
  test('--to tflite: no DENSIFY, same weights and outputs; --to tflite-sparse again: no larger than Google\'s, same outputs', async () => {
    const google = read(GOOGLE_SPARSE);
    const { doc, report } = densifyTfliteDocument(readTfliteDocument(google));
    const dense = writeTflite(doc);
    assert.equal(report.densifiedTensors, 46);
    assert.equal(report.removedDensifyOps, 46);
    assert.ok(!opNames(dense).includes('DENSIFY'));
    assert.equal(verifyAllSparse(dense), 0);
    verifyWeightsEqual(buildModel(readTfliteDocument(google)), buildModel(readTfliteDocument(dense)));
    const check = await createRuntimeCheck(google);
    const denseRun = await check.compare(dense);
    // Google's model makes XNNPACK use its sparse (NCHW) kernels, the dense one its dense kernels:
    // the sums run in another order, so the last bits differ.
    assert.ok(denseRun.withinTolerance, `max abs ${denseRun.maxAbsDiff}`);
    assert.ok(denseRun.outputs.every((o) => o.maxAbsDiff <= 1e-5 * o.referenceMaxAbs));

    const { result, comparison } = await sparsifyInRuntime(dense);
    assert.ok(result.bytes.length <= google.length, `ours ${result.bytes.length} B, Google's ${google.length} B`);
    assert.equal(result.plan.totals.sparseWeights, 46);
    assert.equal(verifyAllSparse(result.bytes), 46);
    assert.ok(result.plan.xnnpack.qualifies, result.plan.xnnpack.reason);
    assertSameOutputs(comparison, result.plan, 're-sparsified');
    // against Google's own file: both read through DENSIFY, so XNNPACK takes the same path
    assert.ok((await check.compare(result.bytes)).bitIdentical);
    sizes.push(`face_detection_full_range: Google sparse ${google.length}, dense ${dense.length}, ours ${result.bytes.length} B`);
  });
});

describe('command line', () => {
  const execute = promisify(execFile);
  const cli = repoPath('dist', 'src', 'cli', 'bin.js');

  test('convert --to tflite-sparse --json, then --to tflite', async () => {
    const dir = tempDir('sparse-cli');
    try {
      const out = path.join(dir, 'cnn.sparse.tflite');
      const { stdout } = await execute(process.execPath, [cli, 'convert', repoPath('samples', 'cnn-synthetic-80.tflite'), '--to', 'tflite-sparse',
        '-o', out, '--optimize', 'size', '--json', '--keep-dense', 'conv1/weights', '--min-sparsity', '0.5']);
      const summary = JSON.parse(stdout);
      assert.equal(summary.outputBytes, fs.statSync(out).size);
      assert.ok(summary.ratio > 3 && summary.gzipRatio > 1);
      assert.equal(summary.plan.entries.find((e: { tensor: string }) => e.tensor === 'conv1/weights').reason, '--keep-dense');
      assert.ok(summary.runtime.withinTolerance);
      assert.equal(typeof summary.xnnpack.qualifies, 'boolean');
      const back = path.join(dir, 'cnn.dense.tflite');
      const text = (await execute(process.execPath, [cli, 'convert', out, '--to', 'tflite', '-o', back])).stdout;
      assert.match(text, /3 DENSIFY removed, 1 FULLY_CONNECTED version\(s\) restored/);
      assert.match(text, /bit-identical outputs|within/);
      const table = (await execute(process.execPath, [cli, 'convert', repoPath('samples', 'cnn-synthetic-80.tflite'), '--to', 'tflite-sparse', '-o', path.join(dir, 'b.tflite'), '--no-verify'])).stdout;
      assert.match(table, /tensor +consumer +encoding/);
      assert.match(table, /XNNPACK fast sparse inference: not expected \(zeros threshold met, operator pattern does not fit\)/);
      await assert.rejects(execute(process.execPath, [cli, 'convert', out, '--to', 'tflite-sparse', '--block', '3x3', '-o', path.join(dir, 'c.tflite')]),
        (e: { code: number; stderr: string }) => e.code === 2 && /invalid --block/.test(e.stderr));
      assert.ok(!fs.existsSync(path.join(dir, 'c.tflite')));
      // LiteRT cannot load LSTM state (variable tensors): the check runs in tfjs-tflite instead
      const lstm = path.join(dir, 'lstm.tflite');
      fs.writeFileSync(lstm, lstmModel());
      const lstmText = (await execute(process.execPath, [cli, 'convert', lstm, '--to', 'tflite-sparse', '-o', path.join(dir, 'lstm.sparse.tflite')])).stdout;
      assert.match(lstmText, /sparse weights: 8 \(8 through DENSIFY/);
      assert.match(lstmText, /runtime tfjs-tflite .*: bit-identical outputs/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
