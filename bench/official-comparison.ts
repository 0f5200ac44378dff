/**
 * tflite-sparse against the official TFLite converter (EXPERIMENTAL_SPARSITY). The official
 * numbers are the measurements recorded in the project's format notes (magnitude-pruned Keras
 * models); here we build models with the same layer shapes as those Keras models (as far as the
 * published dense sizes pin them down), prune them with `prune` to the same sparsity, convert
 * them with tflite-sparse, and print per model: our bytes, the official bytes, and the
 * information bound of the same weights (positions' entropy + raw nonzero values).
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
import { sparsifyTflite } from '../converters/tflite/sparse-write.js';
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
    BuiltinOptions.UnidirectionalSequenceLSTMOptions, new UnidirectionalSequenceLSTMOptionsT(ActivationFunctionType.TANH, 0, 0, true));
  const shape = g.constant('last/shape', TensorType.INT32, [2], new Uint8Array(new Int32Array([S, C]).buffer));
  const flat = g.tensor('last', F, [S, C]);
  g.operator(BuiltinOperator.RESHAPE, 1, [sequence, shape], [flat], BuiltinOptions.ReshapeOptions, new ReshapeOptionsT([S, C]));
  const d1 = dense(g, flat, C, 256, 'dense1', random, true);
  const d2 = dense(g, d1, 256, 2, 'dense2', random, false);
  const doc = g.finish([ids], [d2], 'Embedding + LSTM (synthetic weights)');
  for (const state of [hidden, cell]) doc.model.subgraphs[0]!.tensors[state]!.isVariable = true;
  return writeTflite(doc);
}

export interface ComparisonRow {
  model: string;
  dense: number;
  officialDense: number;
  official: number;
  ours: number;
  bound: number;
}

/** Our bytes for each model of the official table, with the information bound of its weights. */
export function officialComparison(): ComparisonRow[] {
  const cases: Array<{ model: string; build: () => Uint8Array; sparsity: number; block?: [number, number]; officialDense: number; official: number }> = [
    { model: 'small CNN, 80%', build: mnistCnn, sparsity: 0.8, officialDense: 903_188, official: 272_716 },
    { model: 'MLP, 90% in 1x4 blocks', build: () => mlp([784, 512, 256, 10], 202), sparsity: 0.9, block: [1, 4], officialDense: 2_141_764, official: 231_048 },
    { model: 'MLP, 90% unstructured', build: () => mlp([784, 1024, 512, 10], 203), sparsity: 0.9, officialDense: 5_310_020, official: 778_752 },
    { model: 'embedding + LSTM, 80%', build: embeddingLstm, sparsity: 0.8, officialDense: 299_116, official: 277_120 },
  ];
  return cases.map((c) => {
    const denseModel = readTflite(c.build());
    const pruned = pruneModel(denseModel, { sparsity: c.sparsity, block: c.block });
    const prunedBytes = writeModel(pruned.model, 'tflite');
    const prunedModel = readTflite(prunedBytes);
    const result = sparsifyTflite(tfliteDocumentOf(prunedModel), {});
    // Information bound over every weight: positions at their entropy, nonzero values raw,
    // plus the bytes of everything that is not a weight (operators, tensors, metadata).
    let bound = prunedBytes.length;
    for (const w of prunedModel.weights) {
      const zeros = countZeros(w.dtype, w.denseBytes(), w.shape, w.quantization);
      if (zeros === undefined) continue;
      bound += informationBound(elementCount(w.shape), zeros, dtypeBits(w.dtype) / 8) - w.bytes.length;
    }
    return { model: c.model, dense: prunedBytes.length, officialDense: c.officialDense, official: c.official, ours: result.bytes.length, bound: Math.round(bound) };
  });
}
