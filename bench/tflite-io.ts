/**
 * Benchmark: read + write of a generated TFLite model, against reading and writing the same
 * bytes with plain `fs` in the same process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { layoutTflite } from '../converters/tflite/write.js';
import { readTfliteDocument } from '../converters/tflite/read.js';
import { readModelSource, writeFileAtomic } from '../src/io/files.js';

/** Writes a chain of FULLY_CONNECTED layers holding about `sizeBytes` of float32 weights. */
export function generateTfliteModel(file: string, sizeBytes: number): number {
  const g = new TfliteGraphBuilder();
  const width = 2048;
  const layers = Math.max(1, Math.round(sizeBytes / (width * width * 4)));
  let x = g.tensor('input', TensorType.FLOAT32, [1, width]);
  const input = x;
  let seed = 1;
  for (let l = 0; l < layers; l++) {
    const w = new Float32Array(width * width);
    for (let i = 0; i < w.length; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      w[i] = (seed & 0xff) < 205 ? 0 : (seed / 4294967296 - 0.5) * 0.1; // ~80% zeros
    }
    const wt = g.constant(`dense${l}/weights`, TensorType.FLOAT32, [width, width], new Uint8Array(w.buffer));
    const y = g.tensor(`dense${l}/out`, TensorType.FLOAT32, [1, width]);
    g.operator(BuiltinOperator.FULLY_CONNECTED, 1, [x, wt, -1], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
    x = y;
  }
  const layout = layoutTflite(g.finish([input], [x], 'prunepack benchmark model (synthetic)'));
  writeFileAtomic(file, layout.totalSize, [{ position: 0, bytes: layout.head }, ...layout.pieces]);
  return layout.totalSize;
}

/** prunepack's path: read the file, parse, lay out, stream to a new file. */
export function prunepackReadWrite(input: string, output: string): void {
  const source = readModelSource(input);
  const doc = readTfliteDocument(source.bytes, { fileSize: source.fileSize, readRange: source.readRange });
  const layout = layoutTflite(doc);
  writeFileAtomic(output, layout.totalSize, [{ position: 0, bytes: layout.head }, ...layout.pieces]);
}

/** The baseline: the same bytes read and written with fs. */
export function plainReadWrite(input: string, output: string): void {
  fs.writeFileSync(output, fs.readFileSync(input));
}

export function scratchPaths(dir: string) {
  return { model: path.join(dir, 'bench-model.tflite'), out: path.join(dir, 'bench-out.tflite'), copy: path.join(dir, 'bench-copy.tflite') };
}
