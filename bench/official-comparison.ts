/**
 * tflite-sparse against the official TFLite converter (EXPERIMENTAL_SPARSITY). We build models
 * with the same layer shapes as the Keras models of the project's format notes (as far as the
 * published dense sizes pin them down), prune them with `prune` to the same sparsity, and compare
 * on the SAME pruned input: our tflite-sparse output against an emulation of what the official
 * converter writes for it (officialEmulation: its rules from FORMATS.md, written with our own
 * writer). The official converter's published bytes are printed beside, normalized by the dense
 * sizes (its Keras models differ from ours by a fraction of a percent), and the information bound
 * of the same weights (positions' entropy + raw nonzero values).
 */
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { Padding } from '../schemas/generated/tflite/tflite/padding.js';
import { ActivationFunctionType } from '../schemas/generated/tflite/tflite/activation-function-type.js';
import { Conv2DOptionsT } from '../schemas/generated/tflite/tflite/conv2doptions.js';
import { Pool2DOptionsT } from '../schemas/generated/tflite/tflite/pool2doptions.js';
import { ReshapeOptionsT } from '../schemas/generated/tflite/tflite/reshape-options.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { SoftmaxOptionsT } from '../schemas/generated/tflite/tflite/softmax-options.js';
import { GatherOptionsT } from '../schemas/generated/tflite/tflite/gather-options.js';
import { UnidirectionalSequenceLSTMOptionsT } from '../schemas/generated/tflite/tflite/unidirectional-sequence-lstmoptions.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { writeTflite } from '../converters/tflite/write.js';
import { readTflite } from '../converters/tflite/read.js';
import { tfliteDocumentOf } from '../converters/tflite/index.js';
import { applySparsePlan, sparsifyTflite } from '../converters/tflite/sparse-write.js';
import { keepDenseInPlan, planSparseTflite, type SparseLayout, type SparsePlan, type SparsePlanEntry } from '../converters/tflite/sparse-plan.js';
import { operatorName } from '../converters/tflite/model-view.js';
import type { TfliteDocument } from '../converters/tflite/document.js';
import { pruneModel, writeModel } from '../src/index.js';
import { countZeros } from '../src/model/zeros.js';
import { elementCount, dtypeBits } from '../src/model/dtype.js';
import { informationBound } from '../src/sparsity/cost.js';
import { prunedNormal, seededRandom } from '../samples/build-samples.js';

const F = TensorType.FLOAT32;
const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function dense(g: TfliteGraphBuilder, x: number, inputs: number, units: number, name: string, random: () => number, relu: boolean): number {
  const w = g.constant(`${name}/kernel`, F, [units, inputs], bytesOf(prunedNormal(units * inputs, 0.05, 0, random)));
  const b = g.constant(`${name}/bias`, F, [units], bytesOf(prunedNormal(units, 0.05, 0, random)));
  const y = g.tensor(`${name}/out`, F, [1, units]);
  g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, w, b], [y], BuiltinOptions.FullyConnectedOptions,
    new FullyConnectedOptionsT(relu ? ActivationFunctionType.RELU : ActivationFunctionType.NONE));
  return y;
}

/** The Keras MNIST CNN of the pruning guides: conv 32, pool, conv 64, pool, dense 128, dense 10. */
export function mnistCnn(): Uint8Array {
  const random = seededRandom(101);
  const g = new TfliteGraphBuilder();
  const input = g.tensor('input', F, [1, 28, 28, 1]);
  const conv = (x: number, inC: number, outC: number, size: number, name: string) => {
    const w = g.constant(`${name}/kernel`, F, [outC, 3, 3, inC], bytesOf(prunedNormal(outC * 9 * inC, 0.2, 0, random)));
    const b = g.constant(`${name}/bias`, F, [outC], bytesOf(prunedNormal(outC, 0.05, 0, random)));
    const y = g.tensor(`${name}/out`, F, [1, size, size, outC]);
    g.operator(BuiltinOperator.CONV_2D, 1, [x, w, b], [y], BuiltinOptions.Conv2DOptions, new Conv2DOptionsT(Padding.VALID, 1, 1, ActivationFunctionType.RELU));
    return y;
  };
  const pool = (x: number, size: number, c: number, name: string) => {
    const y = g.tensor(name, F, [1, size, size, c]);
    g.operator(BuiltinOperator.MAX_POOL_2D, 1, [x], [y], BuiltinOptions.Pool2DOptions, new Pool2DOptionsT(Padding.VALID, 2, 2, 2, 2));
    return y;
  };
  const c1 = conv(input, 1, 32, 26, 'conv1');
  const p1 = pool(c1, 13, 32, 'pool1');
  const c2 = conv(p1, 32, 64, 11, 'conv2');
  const p2 = pool(c2, 5, 64, 'pool2');
  const shape = g.constant('flatten/shape', TensorType.INT32, [2], new Uint8Array(new Int32Array([1, 1600]).buffer));
  const flat = g.tensor('flatten', F, [1, 1600]);
  g.operator(BuiltinOperator.RESHAPE, 1, [p2, shape], [flat], BuiltinOptions.ReshapeOptions, new ReshapeOptionsT([1, 1600]));
  const d1 = dense(g, flat, 1600, 128, 'dense1', random, true);
  const d2 = dense(g, d1, 128, 10, 'dense2', random, false);
  const out = g.tensor('probabilities', F, [1, 10]);
  g.operator(BuiltinOperator.SOFTMAX, 1, [d2], [out], BuiltinOptions.SoftmaxOptions, new SoftmaxOptionsT(1));
  return writeTflite(g.finish([input], [out], 'MNIST CNN (synthetic weights)'));
}

export function mlp(layers: number[], seed: number): Uint8Array {
  const random = seededRandom(seed);
  const g = new TfliteGraphBuilder();
  const input = g.tensor('input', F, [1, layers[0]!]);
  let x = input;
  for (let i = 1; i < layers.length; i++) x = dense(g, x, layers[i - 1]!, layers[i]!, `dense${i}`, random, i < layers.length - 1);
  return writeTflite(g.finish([input], [x], `MLP ${layers.join('-')} (synthetic weights)`));
}

/** Embedding(1000, 32) -> LSTM(64) -> Dense(256) -> Dense(2). */
export function embeddingLstm(): Uint8Array {
  const random = seededRandom(303);
  const g = new TfliteGraphBuilder();
  const [S, E, C] = [20, 32, 64];
  const ids = g.tensor('token_ids', TensorType.INT32, [1, S]);
  const table = g.constant('embedding/embeddings', F, [1000, E], bytesOf(prunedNormal(1000 * E, 0.05, 0, random)));
  const embedded = g.tensor('embedded', F, [1, S, E]);
  g.operator(BuiltinOperator.GATHER, 1, [table, ids], [embedded], BuiltinOptions.GatherOptions, new GatherOptionsT(0, 0));
  const gates = ['input', 'forget', 'cell', 'output'];
  const w = (name: string, shape: number[]) => g.constant(name, F, shape, bytesOf(prunedNormal(elementCount(shape), 0.1, 0, random)));
  const inputWeights = gates.map((k) => w(`lstm/input_to_${k}`, [C, E]));
  const recurrentWeights = gates.map((k) => w(`lstm/recurrent_to_${k}`, [C, C]));
  const biases = gates.map((k) => w(`lstm/${k}_bias`, [C]));
  const hidden = g.tensor('lstm/hidden_state', F, [1, C]);
  const cell = g.tensor('lstm/cell_state', F, [1, C]);
  const sequence = g.tensor('lstm/sequence', F, [1, S, C]);
  g.operator(BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, 1,
    [embedded, ...inputWeights, ...recurrentWeights, -1, -1, -1, ...biases, -1, -1, hidden, cell, -1, -1, -1, -1], [sequence],
    BuiltinOptions.UnidirectionalSequenceLSTMOptions, new UnidirectionalSequenceLSTMOptionsT(ActivationFunctionType.TANH, 0, 0, false));
  const shape = g.constant('last/shape', TensorType.INT32, [2], new Uint8Array(new Int32Array([S, C]).buffer));
  const flat = g.tensor('last', F, [S, C]);
  g.operator(BuiltinOperator.RESHAPE, 1, [sequence, shape], [flat], BuiltinOptions.ReshapeOptions, new ReshapeOptionsT([S, C]));
  const d1 = dense(g, flat, C, 256, 'dense1', random, true);
  const d2 = dense(g, d1, 256, 2, 'dense2', random, false);
  const doc = g.finish([ids], [d2], 'Embedding + LSTM (synthetic weights)');
  for (const state of [hidden, cell]) doc.model.subgraphs[0]!.tensors[state]!.isVariable = true;
  return writeTflite(doc);
}

// ---------------------------------------------------------------------------------------------
// The official converter, emulated

/** Readers that the official converter compresses (operand 1 only), read through DENSIFY. */
const OFFICIAL_DENSIFY_READERS = new Set(['CONV_2D', 'DEPTHWISE_CONV_2D', 'TRANSPOSE_CONV']);

/** Share of all-zero blocks of `size` consecutive elements along the last dimension (rows of `cols`). */
function blockZeroShare(bytes: Uint8Array, dtype: 'float32' | 'int8', rows: number, cols: number, size: number): number {
  const f = dtype === 'float32' ? new Int32Array(bytes.slice().buffer) : null;
  const nonzero = (i: number) => (f ? (f[i]! & 0x7fffffff) !== 0 : bytes[i] !== 0);
  let zeroBlocks = 0;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < cols; b += size) {
      let any = false;
      for (let e = r * cols + b, end = e + size; e < end && !any; e++) any = nonzero(e);
      if (!any) zeroBlocks++;
    }
  }
  return zeroBlocks / ((rows * cols) / size);
}

/** CSR on the last dimension, every other dimension dense, no blocks (the official random-sparsity layout). */
function lastDimCsr(rank: number): SparseLayout {
  const dimFormats = new Array<'DENSE' | 'SPARSE_CSR'>(rank).fill('DENSE');
  dimFormats[rank - 1] = 'SPARSE_CSR';
  return { traversalOrder: [...Array(rank).keys()], blockMap: [], blockSize: [], dimFormats };
}

/**
 * What the official converter (EXPERIMENTAL_SPARSITY) writes for a dense model, by its rules in
 * FORMATS.md: a float32 / float16 / int8 weight with at least 30% zeros that is operand 1 of
 * CONV_2D, DEPTHWISE_CONV_2D or TRANSPOSE_CONV becomes CSR on its last dimension read through
 * DENSIFY (float16: DENSIFY -> DEQUANTIZE); operand 1 of FULLY_CONNECTED is read natively in 1x4
 * float32 blocks (1x16 int8) when block sparsity / element sparsity exceeds 0.9 (0.8 int8), else
 * CSR + DENSIFY; everything else stays dense. Index vectors at the official widths (segments by
 * their last value, indices by their maximum: what our encoder does). Written with our writer, so
 * the flatbuffer overhead around the weights is the same as ours. The plan's entries keep
 * bytesAfter = bytesBefore (no estimate is made): the written bytes are the measurement.
 */
export function officialEmulation(dense: TfliteDocument): { bytes: Uint8Array; plan: SparsePlan } {
  const names = dense.model.operatorCodes.map(operatorName);
  // Our planner supplies the entries (zero shares, readers); every decision is replaced here.
  const ours = planSparseTflite(dense, { optimize: 'size', minSparsity: 0 });
  const entries = ours.entries.map((e): SparsePlanEntry => {
    const keep: SparsePlanEntry = { ...e, route: 'dense', encoding: 'dense', reason: 'official: left dense', bytesAfter: e.bytesBefore, layout: undefined, viaDequantize: undefined, nativeOperators: undefined, cost: undefined, storedValues: undefined };
    const sg = dense.model.subgraphs[e.subgraph]!;
    const tensor = sg.tensors[e.tensorIndex]!;
    if (!['float32', 'float16', 'int8'].includes(e.dtype) || e.zeroShare < 0.3 || e.consumer === '-') return keep;
    const readers = e.consumer.split(', ');
    if (readers.length !== 1) return keep;
    const [path, operand] = readers[0]!.split(':') as [string, string];
    const reader = path.replace(/^DEQUANTIZE>/, '');
    if (operand !== '1' || (path.startsWith('DEQUANTIZE>') !== (e.dtype === 'float16'))) return keep;
    if (OFFICIAL_DENSIFY_READERS.has(reader)) {
      return { ...keep, route: 'densify', encoding: 'official CSR (last dim) + DENSIFY', layout: lastDimCsr(e.shape.length), viaDequantize: e.dtype === 'float16' || undefined };
    }
    if (reader !== 'FULLY_CONNECTED' || e.shape.length !== 2) return keep;
    const [rows, cols] = e.shape as [number, number];
    const blockSize = e.dtype === 'int8' ? 16 : 4;
    const threshold = e.dtype === 'int8' ? 0.8 : 0.9;
    const bytes = dense.buffers[tensor.buffer]!.bytes;
    const ops = sg.operators.flatMap((op, o) => (op.inputs[1] === e.tensorIndex && names[op.opcodeIndex] === 'FULLY_CONNECTED' ? [o] : []));
    if (e.dtype !== 'float16' && cols % blockSize === 0 && ops.length === 1
      && blockZeroShare(bytes, e.dtype as 'float32' | 'int8', rows, cols, blockSize) / e.zeroShare > threshold) {
      return {
        ...keep, route: 'native', encoding: `official FC v8 block 1x${blockSize}`, nativeOperators: ops,
        layout: { traversalOrder: [0, 1, 2], blockMap: [1], blockSize: [blockSize], dimFormats: ['DENSE', 'SPARSE_CSR', 'DENSE'] },
      };
    }
    return { ...keep, route: 'densify', encoding: 'official CSR + DENSIFY', layout: lastDimCsr(2), viaDequantize: e.dtype === 'float16' || undefined };
  });
  const plan = keepDenseInPlan(dense, { ...ours, entries }, new Map());
  return { bytes: writeTflite(applySparsePlan(dense, plan)), plan };
}

// ---------------------------------------------------------------------------------------------
// The comparison

export interface ComparisonRow {
  model: string;
  /** Our dense file (the pruned input of both converters). */
  dense: number;
  /** tflite-sparse (optimize size, the library default). */
  ours: number;
  /** tflite-sparse with optimize balanced (the command line's default). */
  oursBalanced: number;
  /** The official converter emulated on the same input (officialEmulation). */
  emulated: number;
  /** The official converter's published dense and sparse bytes for its Keras model. */
  officialDense: number;
  official: number;
  /** Information bound of the same weights, plus every non-weight byte of the dense file. */
  bound: number;
}

export interface ComparisonModels {
  model: string;
  /** The pruned dense input, our output and the emulated official output (for runtime checks). */
  dense: Uint8Array;
  ours: { bytes: Uint8Array; plan: SparsePlan };
  balanced: { bytes: Uint8Array; plan: SparsePlan };
  emulated: { bytes: Uint8Array; plan: SparsePlan };
  row: ComparisonRow;
}

const CASES: Array<{ model: string; build: () => Uint8Array; sparsity: number; block?: [number, number]; officialDense: number; official: number }> = [
  { model: 'small CNN, 80%', build: mnistCnn, sparsity: 0.8, officialDense: 903_188, official: 272_716 },
  { model: 'MLP, 90% in 1x4 blocks', build: () => mlp([784, 512, 256, 10], 202), sparsity: 0.9, block: [1, 4], officialDense: 2_141_764, official: 231_048 },
  { model: 'MLP, 90% unstructured', build: () => mlp([784, 1024, 512, 10], 203), sparsity: 0.9, officialDense: 5_310_020, official: 778_752 },
  { model: 'embedding + LSTM, 80%', build: embeddingLstm, sparsity: 0.8, officialDense: 299_116, official: 277_120 },
];

/** The four models of the official table: pruned input, our output, the emulated official output. */
export function officialComparisonModels(): ComparisonModels[] {
  return CASES.map((c) => {
    const denseModel = readTflite(c.build());
    const pruned = pruneModel(denseModel, { sparsity: c.sparsity, block: c.block });
    const prunedBytes = writeModel(pruned.model, 'tflite');
    const prunedModel = readTflite(prunedBytes);
    const result = sparsifyTflite(tfliteDocumentOf(prunedModel), {});
    const balanced = sparsifyTflite(tfliteDocumentOf(prunedModel), { optimize: 'balanced' });
    const emulated = officialEmulation(tfliteDocumentOf(readTflite(prunedBytes)));
    // Information bound over every weight: positions at their entropy, nonzero values raw,
    // plus the bytes of everything that is not a weight (operators, tensors, metadata).
    let bound = prunedBytes.length;
    for (const w of prunedModel.weights) {
      const zeros = countZeros(w.dtype, w.denseBytes(), w.shape, w.quantization);
      if (zeros === undefined) continue;
      bound += informationBound(elementCount(w.shape), zeros, dtypeBits(w.dtype) / 8) - w.bytes.length;
    }
    return {
      model: c.model, dense: prunedBytes, ours: { bytes: result.bytes, plan: result.plan }, balanced: { bytes: balanced.bytes, plan: balanced.plan }, emulated,
      row: {
        model: c.model, dense: prunedBytes.length, ours: result.bytes.length, oursBalanced: balanced.bytes.length, emulated: emulated.bytes.length,
        officialDense: c.officialDense, official: c.official, bound: Math.round(bound),
      },
    };
  });
}

/** One row per model of the official table (see ComparisonRow). */
export function officialComparison(): ComparisonRow[] {
  return officialComparisonModels().map((m) => m.row);
}

/** Ratios of a row: ours / emulated official (same input), ours / published official normalized by the dense sizes, ours / bound. */
export function comparisonRatios(r: ComparisonRow): { vsEmulated: number; vsPublishedNormalized: number; vsBound: number } {
  return { vsEmulated: r.ours / r.emulated, vsPublishedNormalized: (r.ours / r.dense) / (r.official / r.officialDense), vsBound: r.ours / r.bound };
}

/** The table printed by `node dist/bench/official-comparison.js`. */
export function comparisonTable(rows: readonly ComparisonRow[]): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const head = ['model', 'dense', 'ours', 'official (emulated)', 'ours/emulated', 'ours balanced', 'balanced/emulated', 'official (published)', 'ours/published (norm.)', 'bound', 'ours/bound'];
  const lines = rows.map((r) => {
    const q = comparisonRatios(r);
    return [r.model, n(r.dense), n(r.ours), n(r.emulated), q.vsEmulated.toFixed(3), n(r.oursBalanced), (r.oursBalanced / r.emulated).toFixed(3), n(r.official), q.vsPublishedNormalized.toFixed(3), n(r.bound), q.vsBound.toFixed(3)];
  });
  const sum = (f: (r: ComparisonRow) => number) => rows.reduce((a, r) => a + f(r), 0);
  const total = { model: 'total', dense: sum((r) => r.dense), ours: sum((r) => r.ours), oursBalanced: sum((r) => r.oursBalanced), emulated: sum((r) => r.emulated), official: sum((r) => r.official), officialDense: sum((r) => r.officialDense), bound: sum((r) => r.bound) };
  const q = comparisonRatios(total);
  lines.push([total.model, n(total.dense), n(total.ours), n(total.emulated), q.vsEmulated.toFixed(3), n(total.oursBalanced), (total.oursBalanced / total.emulated).toFixed(3), n(total.official), q.vsPublishedNormalized.toFixed(3), n(total.bound), q.vsBound.toFixed(3)]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [head, ...lines].map((l) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  console.log(comparisonTable(officialComparison()));
}
