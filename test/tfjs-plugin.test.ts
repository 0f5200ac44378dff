/**
 * TF.js plugin: reading real models (@vladmandic/human graph models, @vladmandic/face-api weight
 * manifests) and models built in code (every dtype and quantization, several manifest groups,
 * tensors spanning shards, a layers model saved by tfjs-layers), the dense `tfjs` writer
 * (byte-identical weights, model.json kept byte for byte outside the manifest), consumers, and
 * dequantize-aware pruning. TF.js's own decodeWeights is the reference for what the bytes mean.
 * Run: npx tsc -p . && node --test dist/test/tfjs-plugin.test.js
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { tfjsFileHandler, writeTfjsFiles } from '../converters/tfjs/files.js';
import { layoutTfjs, readTfjs, tfjsDocumentOf, tfjsWithWeights, type TfjsWeight } from '../converters/tfjs/index.js';
import { topLevelValueSpan } from '../converters/tfjs/json-span.js';
import { tfjsSparseHandler } from '../converters/tfjs/loader.js';
import { PrunepackError } from '../src/errors.js';
import { openModel, pruneModel, writeModel } from '../src/index.js';
import { compareOutputs } from '../src/verify/tflite-runtime.js';
import { loadTfjsRuntime } from '../src/verify/tfjs-runtime.js';
import {
  buildModel, concat, everyDtypeWeights, faceApiManifests, humanModel, humanModels, layoutFiles, memoryReadFile, randomFloats, writeFolder,
} from './tfjs-fixtures.js';

const require = createRequire(import.meta.url);
type Tensor = { dtype: string; shape: number[]; dataSync(): ArrayLike<unknown>; dispose(): void };
type Tf = {
  io: { decodeWeights(data: ArrayBuffer, specs: unknown[]): Record<string, Tensor> };
  tensor(values: ArrayLike<number>, shape: number[], dtype?: string): Tensor;
};
let tf: Tf;

before(async () => {
  await loadTfjsRuntime();
  tf = require('@tensorflow/tfjs-core') as Tf;
});

/** TF.js's decoding of a manifest's specs over stored bytes: name -> element bytes (strings as JSON). */
function tfjsDecode(specs: unknown[], data: Uint8Array): Map<string, string> {
  const copy = data.slice();
  const tensors = tf.io.decodeWeights(copy.buffer, specs);
  const out = new Map<string, string>();
  for (const [name, t] of Object.entries(tensors)) {
    const values = t.dataSync();
    out.set(name, `${t.dtype}[${t.shape}]:${ArrayBuffer.isView(values)
      ? Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64')
      : JSON.stringify(Array.from(values, (v) => Buffer.from(v as Uint8Array).toString('base64')))}`);
    t.dispose();
  }
  return out;
}

function specsOf(json: string): unknown[] {
  const parsed = JSON.parse(json);
  const groups = Array.isArray(parsed) ? parsed : parsed.weightsManifest;
  return groups.flatMap((g: { weights: unknown[] }) => g.weights);
}

function entriesWithoutPaths(json: string): unknown {
  const parsed = JSON.parse(json);
  const groups = Array.isArray(parsed) ? parsed : parsed.weightsManifest;
  return groups.map(({ paths: _p, ...rest }: { paths: unknown }) => rest);
}

describe('real models: read, then --to tfjs', () => {
  const files = [...humanModels(), ...faceApiManifests()];

  test(`${files.length} models: byte-identical weights, manifest entries kept, everything else byte for byte`, () => {
    for (const file of files) {
      const { model } = openModel(file);
      assert.equal(model.format, 'tfjs');
      const input = fs.readFileSync(file, 'utf8');
      // Small shards, so that many tensors span two shards.
      const layout = layoutTfjs(model, 'tfjs', { shardSize: 300_001 });
      assert.ok(layout.shards.slice(0, -1).every((s) => s.length === 300_001), file);
      const written = layoutFiles(layout);
      const back = readTfjs(layout.modelJson, { shards: (p) => written.get(p)! });
      assert.equal(back.weights.length, model.weights.length);
      model.weights.forEach((w, i) => {
        assert.equal(back.weights[i]!.name, w.name);
        assert.ok(Buffer.from(back.weights[i]!.bytes).equals(Buffer.from(w.bytes)), `${file}: ${w.name}`);
      });
      const output = new TextDecoder().decode(layout.modelJson);
      assert.deepEqual(entriesWithoutPaths(output), entriesWithoutPaths(input), file);
      if (!input.trimStart().startsWith('[')) {
        const a = topLevelValueSpan(input, 'weightsManifest')!;
        const b = topLevelValueSpan(output, 'weightsManifest')!;
        assert.equal(output.slice(0, b.start), input.slice(0, a.start), `${file}: text before the manifest`);
        assert.equal(output.slice(b.end), input.slice(a.end), `${file}: text after the manifest`);
      }
    }
  });

  test('quantized models decode to the same tensors in TF.js before and after (uint8, float16, int32 from uint8)', () => {
    for (const file of [humanModel('antispoof'), humanModel('handtrack'), `${faceApiManifests().find((f) => f.includes('ssd_mobilenetv1'))}`]) {
      const { model, source } = openModel(file);
      const layout = layoutTfjs(model, 'tfjs', { shardSize: 65_537 });
      const before = tfjsDecode(specsOf(new TextDecoder().decode(source.bytes)), concat(model.weights.map((w) => w.bytes)));
      const after = tfjsDecode(specsOf(new TextDecoder().decode(layout.modelJson)), concat(layout.shards.flatMap((s) => s.chunks)));
      assert.equal(after.size, before.size);
      for (const [name, value] of before) assert.equal(after.get(name), value, `${file}: ${name}`);
    }
  });

  test('storage dtypes and zero points of quantized weights', () => {
    const handtrack = openModel(humanModel('handtrack')).model;
    const q = handtrack.weights.find((w) => w.dtype === 'uint8')! as TfjsWeight;
    const { min, scale } = q.entry.quantization!;
    assert.deepEqual(q.quantization?.zeroPoint, [Math.round(-min! / scale!) || 0]);
    assert.deepEqual(q.quantization?.scale, [scale]);
    const antispoof = openModel(humanModel('antispoof')).model;
    assert.ok(antispoof.weights.some((w) => w.dtype === 'float16' && w.quantization === undefined));
    assert.ok(antispoof.weights.every((w) => w.dtype === 'float16' || w.dtype === 'int32'));
  });

  test('graph consumers follow Identity-like nodes; operator counts leave out Const', () => {
    const blazeface = openModel(humanModel('blazeface')).model;
    assert.ok(blazeface.weights.every((w) => w.consumers.length > 0));
    const conv = blazeface.weights.find((w) => w.shape.length === 4)!;
    assert.match(conv.consumers[0]!.op, /Conv2D|DepthwiseConv2dNative/);
    assert.equal(conv.consumers[0]!.operand, 1);
    assert.ok(!blazeface.operatorCounts.has('Const'));
  });

  test('writeModel refuses the multi-file targets and says what to use', () => {
    const { model } = openModel(humanModel('emotion'));
    assert.throws(() => writeModel(model, 'tfjs'), (e: unknown) => e instanceof PrunepackError && e.code === 'UNSUPPORTED' && /writeTfjsFiles/.test(e.message));
  });
});

describe('models built in code', () => {
  const weights = everyDtypeWeights();

  test('every dtype and quantization, 3 manifest groups, 97-byte shards: stored bytes as written, views where possible', () => {
    const built = buildModel(weights, { groups: 3, shardSize: 97 });
    const model = readTfjs(built.json, { shards: (p) => built.files.get(p)! });
    assert.deepEqual(model.weights.map((w) => w.dtype), ['float32', 'int32', 'bool', 'string', 'complex64', 'uint8', 'uint16', 'uint8', 'float16', 'float32', 'float32']);
    const shardBuffers = new Set([...built.files.values()].map((b) => b.buffer));
    weights.forEach((w, i) => {
      const read = model.weights[i]!;
      assert.ok(Buffer.from(read.bytes).equals(Buffer.from(w.bytes)), w.name);
      assert.deepEqual(read.shape, w.shape);
    });
    // A weight inside one shard is a view of it; one spanning shards is a copy.
    const scalar = model.weights.find((w) => w.name === 'scalar')!;
    assert.equal(scalar.bytes.length, 4);
    const spanning = model.weights.find((w) => w.name === 'dense/kernel')!;
    assert.ok(!shardBuffers.has(spanning.bytes.buffer));
    const inOneShard = readTfjs(buildModel(weights, { shardSize: 1 << 20 }).json, { shards: (p) => buildModel(weights, { shardSize: 1 << 20 }).files.get(p)! });
    assert.equal(inOneShard.weights[0]!.bytes.byteOffset, 0);
    assert.equal(inOneShard.weights[1]!.bytes.byteOffset, weights[0]!.bytes.length);

    // Re-sharded dense output: same bytes, and TF.js decodes both to the same tensors.
    const layout = layoutTfjs(model, 'tfjs', { shardSize: 50 });
    const written = layoutFiles(layout);
    const back = readTfjs(layout.modelJson, { shards: (p) => written.get(p)! });
    weights.forEach((w, i) => assert.ok(Buffer.from(back.weights[i]!.bytes).equals(Buffer.from(w.bytes)), w.name));
    const specs = specsOf(built.json);
    const reference = tfjsDecode(specs, concat(weights.map((w) => w.bytes)));
    const decoded = tfjsDecode(specsOf(new TextDecoder().decode(layout.modelJson)), concat(layout.shards.flatMap((s) => s.chunks)));
    assert.deepEqual(decoded, reference);
    // The groups stay groups, each with its own shards.
    const out = JSON.parse(new TextDecoder().decode(layout.modelJson));
    assert.equal(out.weightsManifest.length, 3);
    assert.deepEqual(out.weightsManifest.map((g: { weights: unknown[] }) => g.weights.length), [4, 4, 3]);
  });

  test('tfjs-sparse keeps every stored byte of every dtype (quantized stays quantized) and TF.js reads the decoded data', () => {
    const built = buildModel(weights, { groups: 2, shardSize: 333 });
    const model = readTfjs(built.json, { shards: (p) => built.files.get(p)! });
    const layout = layoutTfjs(model, 'tfjs-sparse', { shardSize: 211 });
    assert.ok(layout.sparseWeights >= 4, `${layout.sparseWeights} sparse weights`);
    const written = layoutFiles(layout);
    const back = readTfjs(layout.modelJson, { shards: (p) => written.get(p)! });
    weights.forEach((w, i) => {
      assert.ok(Buffer.from(back.weights[i]!.denseBytes()).equals(Buffer.from(w.bytes)), w.name);
      assert.equal(back.weights[i]!.dtype, model.weights[i]!.dtype);
    });
    const json = JSON.parse(new TextDecoder().decode(layout.modelJson));
    const q8 = json.weightsManifest.flatMap((g: { weights: Array<Record<string, unknown>> }) => g.weights).find((e: Record<string, unknown>) => e.name === 'q8/kernel');
    assert.deepEqual(q8.quantization, weights.find((w) => w.name === 'q8/kernel')!.quantization);
    assert.equal(q8.prunepack.encoding, 'prunepack-sparse/2');
    // Stored relative to the zero point, so that weights with other zero points share its blob.
    assert.equal(q8.prunepack.shift, Math.round(-q8.quantization.min / q8.quantization.scale));
    assert.ok(q8.prunepack.shift > 0);
  });

  test('a model.json without weights, and a manifest group with no shards', () => {
    const topologyOnly = readTfjs(JSON.stringify({ format: 'graph-model', modelTopology: { node: [] } }));
    assert.equal(topologyOnly.weights.length, 0);
    const layout = layoutTfjs(topologyOnly, 'tfjs-sparse');
    assert.equal(layout.shards.length, 0);
    const empty = readTfjs(JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [{ paths: [], weights: [{ name: 'e', shape: [0], dtype: 'float32' }] }] }));
    assert.equal(empty.weights[0]!.bytes.length, 0);
  });
});

describe('layers model saved by tfjs-layers', () => {
  type Layers = {
    sequential(): { add(l: unknown): void; save(h: unknown): Promise<unknown>; predict(x: Tensor): Tensor; dispose(): void };
    layers: Record<string, (config: Record<string, unknown>) => unknown>;
    loadLayersModel(h: unknown): Promise<{ predict(x: Tensor): Tensor; dispose(): void }>;
  };
  let layers: Layers;
  let original: ReturnType<Layers['sequential']>;
  let artifacts: { modelTopology: unknown; weightSpecs: Array<{ name: string }>; weightData: ArrayBuffer; format: string; generatedBy: string; convertedBy: string | null };
  const input = () => tf.tensor(Float32Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => Math.sin(i)), [2, 8, 8, 3]);

  before(async () => {
    layers = require('@tensorflow/tfjs-layers') as Layers;
    original = layers.sequential();
    original.add(layers.layers.conv2d!({ inputShape: [8, 8, 3], filters: 8, kernelSize: 3, kernelInitializer: 'glorotUniform', biasInitializer: 'ones' }));
    original.add(layers.layers.batchNormalization!({ movingMeanInitializer: 'ones' }));
    original.add(layers.layers.flatten!({}));
    original.add(layers.layers.dense!({ units: 16, activation: 'relu' }));
    original.add(layers.layers.dense!({ units: 3 }));
    await original.save({ save: async (a: typeof artifacts) => { artifacts = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; } });
  });
  after(() => original.dispose());

  function modelJson(): { json: string; files: Map<string, Uint8Array> } {
    const data = new Uint8Array(artifacts.weightData);
    const cut = 1001; // inside the conv kernel: it spans the two shards
    const json = JSON.stringify({
      modelTopology: artifacts.modelTopology, format: artifacts.format, generatedBy: artifacts.generatedBy, convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: ['a.bin', 'b.bin'], weights: artifacts.weightSpecs }],
    });
    return { json, files: new Map([['model.json', new TextEncoder().encode(json)], ['a.bin', data.subarray(0, cut)], ['b.bin', data.subarray(cut)]]) };
  }

  test('weights belong to their layer with their role', () => {
    const { json, files } = modelJson();
    const model = readTfjs(json, { shards: (p) => files.get(p)! });
    assert.equal(model.version, 'layers-model');
    const byRole = model.weights.map((w) => `${w.consumers[0]?.op}.${(w as TfjsWeight).consumers[0]?.role}`);
    assert.deepEqual(byRole.slice(0, 2), ['Conv2D.kernel', 'Conv2D.bias']);
    assert.ok(byRole.includes('BatchNormalization.moving_mean'));
    assert.ok(byRole.includes('Dense.kernel'));
    assert.equal(model.operatorCounts.get('Dense'), 2);
  });

  test('round trip: tfjs and pruned tfjs-sparse load in tf.loadLayersModel with bit-identical predictions', async () => {
    const { json, files } = modelJson();
    const model = readTfjs(json, { shards: (p) => files.get(p)! });
    const x = input();
    const predict = async (m: { predict(x: Tensor): Tensor }) => { const y = m.predict(x); const v = new Float32Array(y.dataSync() as Float32Array); y.dispose(); return v; };
    const reference = await predict(original);

    const dense = layoutFiles(layoutTfjs(model, 'tfjs', { shardSize: 777 }));
    const reloaded = await layers.loadLayersModel(tfjsSparseHandler('mem/model.json', { readFile: memoryReadFile(dense) }));
    assert.ok(compareOutputs([reference], [await predict(reloaded)])[0]!.bitIdentical);
    reloaded.dispose();

    const pruned = pruneModel(model, { sparsity: 0.8 });
    assert.ok(pruned.results.filter((r) => r.pruned).length >= 2);
    const prunedDense = layoutFiles(layoutTfjs(pruned.model, 'tfjs'));
    const sparseLayout = layoutTfjs(pruned.model, 'tfjs-sparse');
    assert.ok(sparseLayout.sparseWeights > 0);
    const sparse = layoutFiles(sparseLayout);
    const a = await layers.loadLayersModel(tfjsSparseHandler('mem/model.json', { readFile: memoryReadFile(prunedDense) }));
    const b = await layers.loadLayersModel(tfjsSparseHandler('mem/model.json', { readFile: memoryReadFile(sparse) }));
    const [ya, yb] = [await predict(a), await predict(b)];
    assert.ok(compareOutputs([ya], [yb])[0]!.bitIdentical);
    assert.ok(!compareOutputs([reference], [ya])[0]!.bitIdentical, 'pruning changed the predictions');
    a.dispose();
    b.dispose();
    x.dispose();
  });
});

describe('pruning TF.js models', () => {
  test('uint8 weights: zeros are the zero point; float16 weights: +0; the document follows', () => {
    const handtrack = openModel(humanModel('handtrack')).model;
    const pruned = pruneModel(handtrack, { sparsity: 0.8 });
    const q = pruned.model.weights.find((w) => w.dtype === 'uint8' && w.shape.length === 4 && w.bytes.length > 10_000)!;
    const zp = Number(q.quantization!.zeroPoint[0]);
    const zeros = q.bytes.reduce((n, b) => n + (b === zp ? 1 : 0), 0);
    assert.ok(Math.abs(zeros / q.bytes.length - 0.8) < 0.01, `${zeros} of ${q.bytes.length} at zero point ${zp}`);
    assert.equal(tfjsDocumentOf(pruned.model).weights.find((w) => w.name === q.name)!.bytes, q.bytes);

    const antispoof = openModel(humanModel('antispoof')).model;
    const half = pruneModel(antispoof, { sparsity: 0.5 }).model.weights.find((w) => w.dtype === 'float16' && w.shape.length === 4)!;
    const u16 = new Uint16Array(half.bytes.slice().buffer);
    assert.ok(u16.filter((h) => h === 0).length >= u16.length * 0.5);
  });

  test('withWeights refuses a replacement of the wrong size, or for a weight that does not exist', () => {
    const model = openModel(humanModel('emotion')).model;
    const w = model.weights.find((x) => x.shape.length === 4)!;
    assert.throws(() => tfjsWithWeights(model, new Map([[w.name, new Uint8Array(3)]])), (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
    assert.throws(() => tfjsWithWeights(model, new Map([['nope', new Uint8Array(3)]])), (e: unknown) => e instanceof PrunepackError && /no weight/.test(e.message));
  });
});

describe('models of hundreds of shards (read and written as views, never one buffer)', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prunepack-tfjs-shards-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('320 shards of 640 B round-trip to tfjs and tfjs-sparse through files; the dense writer only passes views of the input shards', async () => {
    const weights = Array.from({ length: 40 }, (_, i) => ({
      name: `layer${i}/kernel`, shape: [32, 40], dtype: 'float32' as const, bytes: new Uint8Array(randomFloats(32 * 40, 100 + i, i % 2 ? 0.8 : 0.3).buffer),
    }));
    const built = buildModel(weights, { shardSize: 640 });
    writeFolder(path.join(dir, 'in'), built.files);
    const { model } = openModel(path.join(dir, 'in', 'model.json'));
    assert.equal(model.companionFiles!.length, 320);
    const expected = concat(weights.map((w) => w.bytes));
    const inputBuffers = new Set([...tfjsDocumentOf(model).weights.flatMap((w) => w.storedPieces().map((p) => p.buffer))]);
    assert.equal(inputBuffers.size, 320, 'one buffer per shard file, none for the whole model');

    // Dense, re-sharded to 334 shards: every written chunk is a view of an input shard.
    const dense = await writeTfjsFiles(model, path.join(dir, 'dense'), { target: 'tfjs', shardSize: 615 });
    assert.equal(dense.layout.shards.length, Math.ceil(expected.length / 615));
    for (const s of dense.layout.shards) for (const c of s.chunks) assert.ok(inputBuffers.has(c.buffer), `${s.path}: a chunk that is not a view of an input shard`);
    const back = openModel(dense.modelJsonPath).model;
    assert.ok(Buffer.from(concat(back.weights.map((w) => w.bytes))).equals(Buffer.from(expected)));

    // Sparse, in 300+ shards too; read back by the plugin and by the loader.
    const sparse = await writeTfjsFiles(model, path.join(dir, 'sparse'), { target: 'tfjs-sparse', shardSize: Math.floor(layoutTfjs(model, 'tfjs-sparse').weightBytes / 310) });
    assert.ok(sparse.layout.shards.length >= 300, `${sparse.layout.shards.length} shards`);
    const sparseBack = openModel(sparse.modelJsonPath).model;
    assert.equal(sparseBack.companionFiles!.length, sparse.layout.shards.length);
    assert.ok(Buffer.from(concat(sparseBack.weights.map((w) => w.denseBytes()))).equals(Buffer.from(expected)));
    const artifacts = await tfjsFileHandler(sparse.modelJsonPath).load();
    assert.ok(Buffer.from(artifacts.weightData!).equals(Buffer.from(expected)));
  });
});
