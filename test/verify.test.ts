/**
 * `verify`: weight equivalence rules on small models built in code (signed zeros, NaN bits,
 * float16 / bfloat16 against float32, pairing by position), then the command on the CNN sample:
 * equivalent to its tflite-sparse conversion (also when run), not equivalent to a pruned copy or
 * after one value changed, with the first differences listed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openModel, plugins, pruneModel, writeModel } from '../src/index.js';
import type { DType } from '../src/model/dtype.js';
import type { Model, Quantization, WeightTensor } from '../src/model/types.js';
import { compareModelWeights } from '../src/verify/weights.js';
import { repoPath, tempDir } from './helpers.js';

const BIN = repoPath('dist', 'src', 'cli', 'bin.js');
const SAMPLE = repoPath('samples', 'cnn-synthetic-80.tflite');

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function weight(name: string, dtype: DType, shape: number[], values: ArrayBufferView, quantization?: Quantization): WeightTensor {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return { name, dtype, shape, bytes, consumers: [], denseBytes: () => bytes, ...(quantization ? { quantization } : {}) };
}

function model(...weights: WeightTensor[]): Model {
  return { format: 'test', version: '1', operatorCounts: new Map(), weights, document: null };
}

const f32bits = (...bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);

describe('verify: weight equivalence rules', () => {
  it('treats -0.0 and +0.0 as equal (float32, float16, bfloat16, float64)', () => {
    const a = model(
      weight('f32', 'float32', [2], f32bits(0x80000000, 0x3f800000)),
      weight('f16', 'float16', [2], new Uint16Array([0x8000, 0x3c00])),
      weight('bf16', 'bfloat16', [2], new Uint16Array([0x8000, 0x3f80])),
      weight('f64', 'float64', [2], new Float64Array([-0, 1])),
    );
    const b = model(
      weight('f32', 'float32', [2], f32bits(0, 0x3f800000)),
      weight('f16', 'float16', [2], new Uint16Array([0, 0x3c00])),
      weight('bf16', 'bfloat16', [2], new Uint16Array([0, 0x3f80])),
      weight('f64', 'float64', [2], new Float64Array([0, 1])),
    );
    const r = compareModelWeights(a, b);
    assert.equal(r.equivalent, true, JSON.stringify(r.differences));
    assert.equal(r.matchedByName, 4);
  });

  it('treats a NaN as equal only to a NaN with the same bits, and lists both', () => {
    const same = compareModelWeights(model(weight('w', 'float32', [1], f32bits(0x7fc00001))), model(weight('w', 'float32', [1], f32bits(0x7fc00001))));
    assert.equal(same.equivalent, true);
    const other = compareModelWeights(model(weight('w', 'float32', [1], f32bits(0x7fc00001))), model(weight('w', 'float32', [1], f32bits(0x7fc00000))));
    assert.equal(other.equivalent, false);
    assert.equal(other.differences[0]!.a, 'NaN (0x7fc00001)');
    assert.equal(other.differences[0]!.b, 'NaN (0x7fc00000)');
    const half = compareModelWeights(model(weight('w', 'float16', [1], new Uint16Array([0x7e01]))), model(weight('w', 'float16', [1], new Uint16Array([0x7e00]))));
    assert.equal(half.equivalent, false);
  });

  it('decodes float16 / bfloat16 against float32, and compares integers by value', () => {
    const r = compareModelWeights(
      model(weight('h', 'float16', [3], new Uint16Array([0x3c00, 0xc000, 0x8000])), weight('b', 'bfloat16', [2], new Uint16Array([0x3fc0, 0])),
        weight('i', 'int8', [2], new Int8Array([-3, 7]))),
      model(weight('h', 'float32', [3], new Float32Array([1, -2, 0])), weight('b', 'float32', [2], new Float32Array([1.5, -0])),
        weight('i', 'int16', [2], new Int16Array([-3, 7]))),
    );
    assert.equal(r.equivalent, true, JSON.stringify(r.differences));
    const off = compareModelWeights(model(weight('h', 'float16', [1], new Uint16Array([0x3c01]))), model(weight('h', 'float32', [1], new Float32Array([1]))));
    assert.equal(off.equivalent, false);
    assert.equal(off.differences[0]!.a, String(1 + 2 ** -10));
  });

  it('pairs by position where names differ and says so; reports shape, dtype, quantization and missing weights', () => {
    const a = model(weight('conv/w', 'float32', [1, 4], new Float32Array([1, 2, 3, 4])), weight('x', 'float32', [2], new Float32Array([5, 6])));
    const b = model(weight('onnx::Conv_1', 'float32', [4], new Float32Array([1, 2, 3, 4])), weight('x', 'float32', [2], new Float32Array([5, 6])));
    const r = compareModelWeights(a, b);
    assert.equal(r.equivalent, true, 'size-1 dims are ignored');
    assert.deepEqual(r.matchedByPosition, [{ a: 'conv/w', b: 'onnx::Conv_1' }]);
    assert.equal(r.matchedByName, 1);

    const shape = compareModelWeights(model(weight('w', 'float32', [2, 2], new Float32Array(4))), model(weight('w', 'float32', [4], new Float32Array(4))));
    assert.equal(shape.differences[0]!.kind, 'shape');
    const dtype = compareModelWeights(model(weight('w', 'float32', [2], new Float32Array(2))), model(weight('w', 'int32', [2], new Int32Array(2))));
    assert.equal(dtype.differences[0]!.kind, 'dtype');
    const q = (scale: number): Quantization => ({ scale: [scale], zeroPoint: [0] });
    const quant = compareModelWeights(model(weight('w', 'int8', [2], new Int8Array(2), q(0.5))), model(weight('w', 'int8', [2], new Int8Array(2), q(0.25))));
    assert.equal(quant.differences[0]!.kind, 'quantization');
    const missing = compareModelWeights(model(weight('w', 'float32', [1], new Float32Array(1)), weight('v', 'float32', [1], new Float32Array(1))),
      model(weight('w', 'float32', [1], new Float32Array(1))));
    assert.equal(missing.equivalent, false);
    assert.deepEqual(missing.onlyInA, ['v']);
  });

  it('lists the first differences with index, coordinates and values, a few per weight', () => {
    const a = model(weight('w', 'float32', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6])), weight('v', 'float32', [4], new Float32Array([1, 1, 1, 1])));
    const b = model(weight('w', 'float32', [2, 3], new Float32Array([1, 0, 3, 4, 5, 7])), weight('v', 'float32', [4], new Float32Array([0, 0, 0, 0])));
    const r = compareModelWeights(a, b, { maxDifferences: 4, maxDifferencesPerWeight: 2 });
    assert.equal(r.differingWeights, 2);
    assert.equal(r.differingElements, 6);
    assert.deepEqual(r.differences.map((d) => [d.weight, d.index, d.coordinates, d.a, d.b]), [
      ['w', 1, [0, 1], '2', '0'], ['w', 5, [1, 2], '6', '7'], ['v', 0, [0], '1', '0'], ['v', 1, [1], '1', '0'],
    ]);
  });
});

describe('verify: CNN sample and its conversions', () => {
  const dir = tempDir('verify');
  const sparse = path.join(dir, 'cnn.sparse.tflite');

  it('is equivalent to its convert --to tflite-sparse output, weights and runtime outputs (exit 0)', () => {
    const converted = cli('convert', SAMPLE, '--to', 'tflite-sparse', '-o', sparse);
    assert.equal(converted.status, 0, converted.stderr);
    const r = cli('verify', SAMPLE, sparse, '--run', '--inputs', '2');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /weights: all 11 equal as dense values/);
    assert.match(r.stdout, /probabilities\s+10\s+0\s+0\s+yes\s+yes/);
    assert.match(r.stdout, /^equivalent$/m);
    const json = JSON.parse(cli('verify', sparse, SAMPLE, '--json').stdout);
    assert.equal(json.schema, 'prunepack.verify/1');
    assert.equal(json.equivalent, true);
    assert.equal(json.weights.matchedByName, 11);
    assert.equal(json.run, null);
  });

  it('is equivalent to the library writers\' outputs (tflite-sparse and dense tflite)', () => {
    const { model: m } = openModel(SAMPLE);
    const dense = path.join(dir, 'cnn.dense.tflite');
    fs.writeFileSync(dense, writeModel(m, 'tflite'));
    assert.equal(cli('verify', sparse, dense).status, 0);
  });

  it('is not equivalent to a pruned copy (exit 1, differences listed)', () => {
    const { model: m } = openModel(SAMPLE);
    const pruned = path.join(dir, 'cnn.pruned.tflite');
    fs.writeFileSync(pruned, writeModel(pruneModel(m, { sparsity: 0.9 }).model, 'tflite'));
    const r = cli('verify', SAMPLE, pruned, '--run', '--inputs', '1');
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /weights: 5 differ/);
    assert.match(r.stdout, /first differences:\n {2}conv1\/weights: element \d+ \[[\d, ]+\]: \S+ vs 0\n/);
    assert.match(r.stdout, /first output differences:/);
    assert.match(r.stdout, /NOT equivalent/);
  });

  it('finds one changed value and shows where and what (exit 1)', () => {
    const { model: m } = openModel(SAMPLE);
    const name = 'dense1/weights';
    const w = m.weights.find((x) => x.name === name)!;
    const values = new Float32Array(w.denseBytes().slice().buffer);
    const index = 64 * 2048 - 1000;
    let at = index;
    while (values[at] === 0) at++;
    const before = values[at]!;
    values[at] = before * 2;
    const tflite = plugins.find((p) => p.id === 'tflite')!;
    const changed = path.join(dir, 'cnn.changed.tflite');
    fs.writeFileSync(changed, writeModel(tflite.withWeights(m, new Map([[name, new Uint8Array(values.buffer)]])), 'tflite'));
    const r = cli('verify', sparse, changed, '--json');
    assert.equal(r.status, 1);
    const json = JSON.parse(r.stdout);
    assert.equal(json.equivalent, false);
    assert.equal(json.weights.differingWeights, 1);
    assert.equal(json.weights.differingElements, 1);
    const d = json.weights.differences[0];
    assert.deepEqual([d.weight, d.kind, d.index, d.coordinates], [name, 'value', at, [Math.floor(at / 2048), at % 2048]]);
    assert.deepEqual([d.a, d.b], [String(before), String(Math.fround(before * 2))]);
    const text = cli('verify', sparse, changed);
    assert.match(text.stdout, new RegExp(`dense1/weights: element ${at} \\[${Math.floor(at / 2048)}, ${at % 2048}\\]: `));
  });

  it('is equivalent across encodings of a float16 sparse production model (MediaPipe face detection -> dense tflite)', () => {
    const input = repoPath('node_modules', '@mediapipe', 'face_detection', 'face_detection_full_range_sparse.tflite');
    const dense = path.join(dir, 'face.dense.tflite');
    fs.writeFileSync(dense, writeModel(openModel(input).model, 'tflite'));
    const r = cli('verify', input, dense, '--run', '--inputs', '1', '--json');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const json = JSON.parse(r.stdout);
    assert.equal(json.weights.pairs.length, json.a.weights);
    assert.ok(json.run.outputs.length >= 2);
  });

  it('rejects bad usage with exit code 2', () => {
    assert.equal(cli('verify', SAMPLE).status, 2);
    assert.equal(cli('verify', SAMPLE, SAMPLE, '--inputs', '2').status, 2, '--inputs needs --run');
    assert.equal(cli('verify', SAMPLE, SAMPLE, '--run', '--rtol', 'x').status, 2);
  });
});
