/**
 * The resource limits and checks the fuzzer asked for, each on a tiny corrupt TFLite file built
 * in code (one field wrong): shapes whose element count is negative or past 2^53, sparse tensors
 * that declare far more dense data than the file stores, indices outside their tables, and
 * operator wiring that multiplied the consumer lists. Each gives a PrunepackError with a code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readTflite, readTfliteDocument, writeTflite } from '../converters/tflite/index.js';
import { maxSparseExpansion, MAX_DENSE_TENSOR_BYTES } from '../converters/tflite/read.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { TypedSparsityT, type TfliteDocument } from '../converters/tflite/document.js';
import * as flatbuffers from 'flatbuffers';
import { Model } from '../schemas/generated/tflite/tflite/model.js';
import { SubGraph } from '../schemas/generated/tflite/tflite/sub-graph.js';
import { Tensor } from '../schemas/generated/tflite/tflite/tensor.js';
import { Buffer as FbBuffer } from '../schemas/generated/tflite/tflite/buffer.js';
import { QuantizationParameters } from '../schemas/generated/tflite/tflite/quantization-parameters.js';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { PrunepackError, type ErrorCode } from '../src/errors.js';
import { inspectModel } from '../src/inspect.js';
import { readModelSource } from '../src/io/files.js';
import { plugins } from '../converters/index.js';
import { tempDir } from './helpers.js';

const F32 = TensorType.FLOAT32;

function rejects(fn: () => unknown, code: ErrorCode, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PrunepackError, `expected a PrunepackError, got ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

/** input -> FULLY_CONNECTED(weights) -> output, with `weights` of `shape` holding `bytes`. */
function fcModel(shape: number[], bytes: Uint8Array): TfliteDocument {
  const g = new TfliteGraphBuilder();
  const input = g.tensor('input', F32, [1, 4]);
  const weights = g.constant('weights', F32, shape, bytes);
  const output = g.tensor('output', F32, [1, 4]);
  g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [input, weights, -1], [output], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
  return g.finish([input], [output], 'robustness test');
}

test('a dense weight whose shape is negative or overflows 2^53 is CORRUPT, not a RangeError', () => {
  for (const shape of [[-2, 4], [4, -1], [65536, 65536, 65536, 65536], [2147483647, 2147483647, 2147483647]]) {
    const model = readTflite(writeTflite(fcModel(shape, new Uint8Array(64))));
    const weight = model.weights.find((w) => w.name === 'weights')!;
    rejects(() => weight.denseBytes(), 'CORRUPT', /invalid tensor shape \(at subgraph 0 tensor 1 "weights"\)/);
    rejects(() => inspectModel(model), 'CORRUPT', /invalid tensor shape/);
  }
});

/** The FC model with its weights stored sparse: rows DENSE, columns CSR, one value per row. */
function sparseModel(rows: number, columns: number): Uint8Array {
  const doc = fcModel([rows, columns], new Uint8Array(4 * rows));
  const tensor = doc.model.subgraphs[0]!.tensors[1]!;
  const segments = new Int32Array(rows + 1).map((_, i) => i);
  tensor.sparsity = new TypedSparsityT({
    traversalOrder: [0, 1], blockMap: [],
    dimMetadata: [{ format: 'DENSE', denseSize: rows }, { format: 'SPARSE_CSR', segments, indices: new Int32Array(rows) }],
  });
  return writeTflite(doc);
}

test('sparse tensors may not declare more dense data than 64 MiB + 64x the file, nor one tensor over 2 GiB', () => {
  // Within the limit: reads and expands.
  const small = readTflite(sparseModel(4, 1000));
  assert.equal(small.weights.find((w) => w.name === 'weights')!.denseBytes().length, 4 * 4 * 1000);

  // 8 values declaring 8 x 2^24 float32 (512 MiB) in a file of a few hundred bytes.
  const bytes = sparseModel(8, 1 << 24);
  assert.ok(8 * 4 * (1 << 24) > maxSparseExpansion(bytes.length));
  rejects(() => readTflite(bytes), 'UNSUPPORTED', /sparse tensors declare more dense data than prunepack expands for a file this size/);
  rejects(() => readTfliteDocument(bytes), 'UNSUPPORTED', /64 MiB \+ 64 x \d+ file bytes/);

  // One tensor over 2 GiB, whatever the file size.
  const huge = sparseModel(2, 2147483647);
  assert.ok(2 * 4 * 2147483647 > MAX_DENSE_TENSOR_BYTES);
  rejects(() => readTflite(huge), 'UNSUPPORTED', /a sparse tensor declares a dense size over 2 GiB/);

  // The dense writer (which densifies on its own) is behind the same check.
  const plugin = plugins.find((p) => p.id === 'tflite')!;
  rejects(() => plugin.targets.tflite!(plugin.read({ bytes })), 'UNSUPPORTED', /more dense data/);
});

test('indices outside their tables are CORRUPT at read time', () => {
  const cases: Array<[string, (doc: TfliteDocument) => void, RegExp]> = [
    ['operator input', (d) => { d.model.subgraphs[0]!.operators[0]!.inputs[1] = 999; }, /at subgraph 0 operator 0 inputs\[1\]\): expected -1 or a tensor index in 0\.\.2, found 999/],
    ['operator output', (d) => { d.model.subgraphs[0]!.operators[0]!.outputs[0] = -7; }, /operator 0 outputs\[0\]/],
    ['opcode index', (d) => { d.model.subgraphs[0]!.operators[0]!.opcodeIndex = 5; }, /opcode_index\): expected an operator code index in 0\.\.0, found 5/],
    ['tensor buffer', (d) => { d.model.subgraphs[0]!.tensors[1]!.buffer = 77; }, /tensor 1 buffer\): expected a buffer index in 0\.\.1, found 77/],
    ['subgraph output', (d) => { d.model.subgraphs[0]!.outputs[0] = 3; }, /subgraph 0 outputs\[0\]/],
    ['signature tensor', (d) => { d.model.signatureDefs[0]!.inputs[0]!.tensorIndex = 40; }, /signature_defs\[0\] inputs\[0\] tensor_index/],
    ['signature subgraph', (d) => { d.model.signatureDefs[0]!.subgraphIndex = 2; }, /signature_defs\[0\] subgraph_index/],
  ];
  for (const [name, corrupt, message] of cases) {
    const doc = fcModel([4, 4], new Uint8Array(64));
    corrupt(doc);
    rejects(() => readTflite(writeTflite(doc)), 'CORRUPT', message);
    assert.ok(name);
  }
});

test('hostile DENSIFY wiring cannot multiply the consumer lists (one tensor fed by 2,000 DENSIFY ops, read 2,000 times)', () => {
  const g = new TfliteGraphBuilder();
  const n = 2000;
  const y = g.tensor('y', F32, [4]);
  for (let i = 0; i < n; i++) {
    const w = g.constant(`w${i}`, F32, [4], new Uint8Array(16));
    g.operator(BuiltinOperator.DENSIFY, 1, [w], [y], BuiltinOptions.NONE, null);
  }
  const out = g.tensor('out', F32, [4]);
  g.operator(BuiltinOperator.ADD_N, 1, new Array<number>(n).fill(y), [out], BuiltinOptions.NONE, null);
  // A DENSIFY whose output feeds back into its own input: a cycle.
  const a = g.tensor('a', F32, [4]);
  const c = g.constant('c', F32, [4], new Uint8Array(16));
  g.operator(BuiltinOperator.DENSIFY, 1, [c], [a], BuiltinOptions.NONE, null);
  g.operator(BuiltinOperator.DENSIFY, 1, [a], [c], BuiltinOptions.NONE, null);
  const bytes = writeTflite(g.finish([], [out], 'hostile wiring'));
  const t0 = performance.now();
  const model = readTflite(bytes);
  const ms = performance.now() - t0;
  const total = model.weights.reduce((sum, w) => sum + w.consumers.length, 0);
  // The first weight reaches ADD_N's 2,000 operands through its DENSIFY; every later one stops at its own DENSIFY.
  assert.equal(model.weights.find((w) => w.name === 'w0')!.consumers.length, n);
  assert.deepEqual(model.weights.find((w) => w.name === 'w1')!.consumers.map((x) => x.op), ['DENSIFY']);
  assert.ok(total < 3 * n + 10, `consumer entries ${total}`);
  assert.ok(ms < 2000, `read took ${ms} ms`);
  assert.ok(model.weights.find((w) => w.name === 'c')!.consumers.length >= 1);
});

/** A model whose subgraph lists `refs` tensors that are all one table (the flatbuffer shares it). */
function sharedTensorModel(refs: number, makeTensor: (b: flatbuffers.Builder) => flatbuffers.Offset): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const tensor = makeTensor(b);
  const tensors = SubGraph.createTensorsVector(b, new Array<flatbuffers.Offset>(refs).fill(tensor));
  SubGraph.startSubGraph(b);
  SubGraph.addTensors(b, tensors);
  const subgraphs = Model.createSubgraphsVector(b, [SubGraph.endSubGraph(b)]);
  FbBuffer.startBuffer(b);
  const buffers = Model.createBuffersVector(b, [FbBuffer.endBuffer(b)]);
  Model.startModel(b);
  Model.addVersion(b, 3);
  Model.addSubgraphs(b, subgraphs);
  Model.addBuffers(b, buffers);
  b.finish(Model.endModel(b), 'TFL3');
  return b.asUint8Array();
}

test('shared tables, vectors and strings count against the read budget: a small file cannot unpack into gigabytes', () => {
  // 2,000 tensors all named by one 100 KB string: 200 MB of names from a 108 KB file before the fix.
  const names = sharedTensorModel(2000, (b) => {
    const name = b.createString('x'.repeat(100_000));
    Tensor.startTensor(b);
    Tensor.addName(b, name);
    return Tensor.endTensor(b);
  });
  rejects(() => readTflite(names), 'CORRUPT', /references far more data than the file holds \(shared or cyclic tables\)/);
  // 200,000 references to one quantized tensor (int64 zero points become BigInts).
  const quantized = sharedTensorModel(200_000, (b) => {
    const zeroPoints = QuantizationParameters.createZeroPointVector(b, new Array<bigint>(64).fill(7n));
    QuantizationParameters.startQuantizationParameters(b);
    QuantizationParameters.addZeroPoint(b, zeroPoints);
    const q = QuantizationParameters.endQuantizationParameters(b);
    Tensor.startTensor(b);
    Tensor.addQuantization(b, q);
    return Tensor.endTensor(b);
  });
  const t0 = performance.now();
  rejects(() => readTflite(quantized), 'CORRUPT', /shared or cyclic tables/);
  assert.ok(performance.now() - t0 < 5000);
  // The same structure without sharing abuse reads fine.
  assert.equal(readTflite(sharedTensorModel(3, (b) => { Tensor.startTensor(b); return Tensor.endTensor(b); })).weights.length, 0);
});

test('readModelSource: missing files, folders and unreadable paths are PrunepackErrors', () => {
  const dir = tempDir('source');
  try {
    rejects(() => readModelSource(path.join(dir, 'missing.tflite')), 'IO', /cannot open .*missing\.tflite: ENOENT\. Check the path/);
    rejects(() => readModelSource(dir), 'INVALID_ARGUMENT', /is not a regular file/);
    const file = path.join(dir, 'model.tflite');
    fs.writeFileSync(file, new Uint8Array(32));
    assert.equal(readModelSource(file).bytes.length, 32);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
