/**
 * Rebuilds the bundled sample models, deterministically, with prunepack's own TFLite writer.
 * The weights are SYNTHETIC (seeded normal noise, magnitude-pruned): the models run and have
 * realistic zero structure, but compute nothing meaningful.
 *
 *   npm run samples
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { Padding } from '../schemas/generated/tflite/tflite/padding.js';
import { ActivationFunctionType } from '../schemas/generated/tflite/tflite/activation-function-type.js';
import { Conv2DOptionsT } from '../schemas/generated/tflite/tflite/conv2doptions.js';
import { DepthwiseConv2DOptionsT } from '../schemas/generated/tflite/tflite/depthwise-conv2doptions.js';
import { Pool2DOptionsT } from '../schemas/generated/tflite/tflite/pool2doptions.js';
import { ReshapeOptionsT } from '../schemas/generated/tflite/tflite/reshape-options.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { SoftmaxOptionsT } from '../schemas/generated/tflite/tflite/softmax-options.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { writeTflite } from '../converters/tflite/write.js';
import { mulberry32 } from '../src/random.js';

/** Seeded uniform [0, 1) generator for synthetic weights (mulberry32). */
export const seededRandom = mulberry32;

/** Normal(0, std) values, then the smallest `sparsity` share (by magnitude) set to zero. */
export function prunedNormal(count: number, std: number, sparsity: number, random: () => number): Float32Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    values[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  const zeros = Math.round(count * sparsity);
  if (zeros > 0) {
    const order = Array.from(values.keys()).sort((x, y) => Math.abs(values[x]!) - Math.abs(values[y]!) || x - y);
    for (let i = 0; i < zeros; i++) values[order[i]!] = 0;
  }
  return values;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * A small image classifier: CONV_2D 3x3/2 (16) -> DEPTHWISE_CONV_2D 3x3 -> CONV_2D 1x1 (32)
 * -> AVERAGE_POOL_2D 2x2 -> RESHAPE -> FULLY_CONNECTED (64, relu) -> FULLY_CONNECTED (10)
 * -> SOFTMAX, float32, input [1, 32, 32, 3]. Every weight (not bias) has `sparsity` zeros.
 */
export function buildCnnSample(sparsity: number, seed = 1): Uint8Array {
  const random = seededRandom(seed);
  const g = new TfliteGraphBuilder();
  const F = TensorType.FLOAT32;
  const input = g.tensor('input', F, [1, 32, 32, 3]);
  const w1 = g.constant('conv1/weights', F, [16, 3, 3, 3], bytesOf(prunedNormal(16 * 27, 0.3, sparsity, random)));
  const b1 = g.constant('conv1/bias', F, [16], bytesOf(prunedNormal(16, 0.05, 0, random)));
  const a1 = g.tensor('conv1/relu', F, [1, 16, 16, 16]);
  g.operator(BuiltinOperator.CONV_2D, 1, [input, w1, b1], [a1], BuiltinOptions.Conv2DOptions,
    new Conv2DOptionsT(Padding.SAME, 2, 2, ActivationFunctionType.RELU));
  const w2 = g.constant('dwconv/weights', F, [1, 3, 3, 16], bytesOf(prunedNormal(9 * 16, 0.3, sparsity, random)));
  const b2 = g.constant('dwconv/bias', F, [16], bytesOf(prunedNormal(16, 0.05, 0, random)));
  const a2 = g.tensor('dwconv/relu', F, [1, 16, 16, 16]);
  g.operator(BuiltinOperator.DEPTHWISE_CONV_2D, 1, [a1, w2, b2], [a2], BuiltinOptions.DepthwiseConv2DOptions,
    new DepthwiseConv2DOptionsT(Padding.SAME, 1, 1, 1, ActivationFunctionType.RELU));
  const w3 = g.constant('pointwise/weights', F, [32, 1, 1, 16], bytesOf(prunedNormal(32 * 16, 0.25, sparsity, random)));
  const b3 = g.constant('pointwise/bias', F, [32], bytesOf(prunedNormal(32, 0.05, 0, random)));
  const a3 = g.tensor('pointwise/relu', F, [1, 16, 16, 32]);
  g.operator(BuiltinOperator.CONV_2D, 1, [a2, w3, b3], [a3], BuiltinOptions.Conv2DOptions,
    new Conv2DOptionsT(Padding.SAME, 1, 1, ActivationFunctionType.RELU));
  const a4 = g.tensor('pool', F, [1, 8, 8, 32]);
  g.operator(BuiltinOperator.AVERAGE_POOL_2D, 1, [a3], [a4], BuiltinOptions.Pool2DOptions,
    new Pool2DOptionsT(Padding.VALID, 2, 2, 2, 2));
  const shape = g.constant('flatten/shape', TensorType.INT32, [2], new Uint8Array(new Int32Array([1, 2048]).buffer));
  const a5 = g.tensor('flatten', F, [1, 2048]);
  g.operator(BuiltinOperator.RESHAPE, 1, [a4, shape], [a5], BuiltinOptions.ReshapeOptions, new ReshapeOptionsT([1, 2048]));
  const w6 = g.constant('dense1/weights', F, [64, 2048], bytesOf(prunedNormal(64 * 2048, 0.05, sparsity, random)));
  const b6 = g.constant('dense1/bias', F, [64], bytesOf(prunedNormal(64, 0.05, 0, random)));
  const a6 = g.tensor('dense1/relu', F, [1, 64]);
  g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [a5, w6, b6], [a6], BuiltinOptions.FullyConnectedOptions,
    new FullyConnectedOptionsT(ActivationFunctionType.RELU));
  const w7 = g.constant('dense2/weights', F, [10, 64], bytesOf(prunedNormal(10 * 64, 0.2, sparsity, random)));
  const b7 = g.constant('dense2/bias', F, [10], bytesOf(prunedNormal(10, 0.05, 0, random)));
  const a7 = g.tensor('logits', F, [1, 10]);
  g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [a6, w7, b7], [a7], BuiltinOptions.FullyConnectedOptions,
    new FullyConnectedOptionsT(ActivationFunctionType.NONE));
  const output = g.tensor('probabilities', F, [1, 10]);
  g.operator(BuiltinOperator.SOFTMAX, 1, [a7], [output], BuiltinOptions.SoftmaxOptions, new SoftmaxOptionsT(1));
  g.addMetadata('min_runtime_version', new TextEncoder().encode('1.14.0\0\0\0\0\0\0\0\0\0\0'));
  const description = `prunepack synthetic sample: small CNN, ${Math.round(sparsity * 100)}% magnitude-pruned synthetic weights`;
  return writeTflite(g.finish([input], [output], description));
}

export const SAMPLES: Array<{ file: string; build: () => Uint8Array }> = [
  { file: 'cnn-synthetic-80.tflite', build: () => buildCnnSample(0.8) },
  { file: 'cnn-synthetic-dense.tflite', build: () => buildCnnSample(0) },
];

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  for (const sample of SAMPLES) {
    const bytes = sample.build();
    const target = path.join(root, 'samples', sample.file);
    fs.writeFileSync(target, bytes);
    console.log(`samples/${sample.file}: ${bytes.length} bytes`);
  }
}
