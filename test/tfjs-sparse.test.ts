/**
 * tfjs-sparse end to end, in real TensorFlow.js (tfjs-core 4.9, CPU backend): human graph models
 * (float32 blazeface and emotion, float16-quantized antispoof, and emotion quantized to uint8 here)
 * are written `--to tfjs` (outputs identical to the original), pruned to 80%, written dense and
 * `tfjs-sparse`, and the sparse copy is loaded through the prunepack IOHandler (from files and
 * over fetch) with outputs bit-identical to the dense pruned model. Sizes are compared with gzip
 * -9 of the dense shards (what users serve today). face-api manifests are checked at the weights
 * level (TF.js decodeWeights of both). Standard TF.js loaders must refuse a sparse model.
 * Run: npx tsc -p . && node --test dist/test/tfjs-sparse.test.js
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'fflate';
import { tfjsFileFetch, writeTfjsFiles } from '../converters/tfjs/files.js';
import { layoutTfjs, readTfjs } from '../converters/tfjs/index.js';
import { loadTfjsWeights, tfjsSparseHandler } from '../converters/tfjs/loader.js';
import { openModel, pruneModel } from '../src/index.js';
import { compareTfjsModels, loadTfjsRuntime, type TfjsRuntime } from '../src/verify/tfjs-runtime.js';
import { concat, faceApiManifests, humanModel, layoutFiles, memoryReadFile, quantizeAffine, writeFolder } from './tfjs-fixtures.js';
import { tempDir } from './helpers.js';

const require = createRequire(import.meta.url);
let dir: string;
let runtime: TfjsRuntime;

before(async () => {
  dir = tempDir('tfjs-sparse');
  runtime = await loadTfjsRuntime();
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function shardBytes(folder: string): Uint8Array {
  const json = JSON.parse(fs.readFileSync(path.join(folder, 'model.json'), 'utf8'));
  const groups = Array.isArray(json) ? json : json.weightsManifest;
  return concat(groups.flatMap((g: { paths: string[] }) => g.paths.map((p) => new Uint8Array(fs.readFileSync(path.join(folder, p))))));
}

/** A fetch over a folder, recording what was asked, as a browser would fetch from a server. */
function folderFetch(folder: string, requested: string[]) {
  return async (url: string) => {
    requested.push(url);
    const name = url.replace(/^https:\/\/cdn\.example\/m\//, '').replace(/\?.*$/, '');
    const file = path.join(folder, name);
    if (!fs.existsSync(file)) return new Response('not found', { status: 404 });
    return new Response(fs.readFileSync(file));
  };
}

/** emotion with every float32 weight of 64+ elements quantized to uint8, as the TF.js converter does. */
function quantizedEmotion(): string {
  const { model, source } = openModel(humanModel('emotion'));
  const json = JSON.parse(new TextDecoder().decode(source.bytes));
  const stored: Uint8Array[] = [];
  json.weightsManifest[0].weights.forEach((entry: Record<string, unknown>, i: number) => {
    const w = model.weights[i]!;
    if (w.dtype !== 'float32' || w.bytes.length < 256) { stored.push(w.bytes); return; }
    const q = quantizeAffine(new Float32Array(w.bytes.slice().buffer), 8);
    entry.quantization = { dtype: 'uint8', min: q.min, scale: q.scale, original_dtype: 'float32' };
    stored.push(q.bytes);
  });
  json.weightsManifest[0].paths = ['emotion-q8.bin'];
  const folder = path.join(dir, 'emotion-q8');
  writeFolder(folder, new Map([['model.json', new TextEncoder().encode(JSON.stringify(json))], ['emotion-q8.bin', concat(stored)]]));
  return path.join(folder, 'model.json');
}

describe('human graph models in TF.js', () => {
  // Over fetch only where it is quick (blazeface runs at 256x256 on the CPU backend).
  const cases: Array<{ name: string; file: () => string; overFetch: boolean }> = [
    { name: 'blazeface (float32)', file: () => humanModel('blazeface'), overFetch: false },
    { name: 'emotion (float32)', file: () => humanModel('emotion'), overFetch: true },
    { name: 'antispoof (float16-quantized)', file: () => humanModel('antispoof'), overFetch: true },
    { name: 'emotion (uint8-quantized here)', file: quantizedEmotion, overFetch: true },
  ];
  for (const c of cases) {
    test(`${c.name}: --to tfjs runs identically; pruned 80% tfjs-sparse is smaller than gzip -9 and runs identically through the IOHandler`, async (t) => {
      const file = c.file();
      const slug = path.basename(path.dirname(file)) === 'models' ? path.basename(file, '.json') : path.basename(path.dirname(file));
      const { model } = openModel(file);

      const dense = await writeTfjsFiles(model, path.join(dir, `${slug}-dense`), { target: 'tfjs', shardSize: 100_003 });
      assert.ok(dense.files.length > 2, 'several shards');
      const same = await compareTfjsModels(file, dense.modelJsonPath);
      assert.ok(same.bitIdentical, `--to tfjs: max abs ${same.maxAbsDiff}`);

      const pruned = pruneModel(model, { sparsity: 0.8 }).model;
      const prunedDense = await writeTfjsFiles(pruned, path.join(dir, `${slug}-pruned`), { target: 'tfjs' });
      const sparse = await writeTfjsFiles(pruned, path.join(dir, `${slug}-sparse`), { target: 'tfjs-sparse', shardSize: 65_536 });
      const denseShards = shardBytes(prunedDense.folder);
      const gzip = gzipSync(denseShards, { level: 9 }).length;
      const sparseBytes = sparse.layout.weightBytes;
      t.diagnostic(`${c.name} pruned 80%: dense ${denseShards.length} B, gzip -9 of dense shards ${gzip} B, tfjs-sparse ${sparseBytes} B `
        + `(${(sparseBytes / denseShards.length).toFixed(3)}x dense, ${(sparseBytes / gzip).toFixed(3)}x gzip), `
        + `${sparse.layout.sparseWeights}/${model.weights.length} weights sparse, model.json ${prunedDense.layout.modelJson.length} -> ${sparse.layout.modelJson.length} B`);
      assert.ok(sparseBytes < denseShards.length);
      assert.ok(sparseBytes <= 0.8 * gzip, `tfjs-sparse is ${(sparseBytes / gzip).toFixed(3)}x of gzip -9 of the dense shards (target <= 0.8x at 80% zeros)`);

      // From files (the verifier picks the prunepack loader for a sparse model.json).
      const fromFiles = await compareTfjsModels(prunedDense.modelJsonPath, sparse.modelJsonPath);
      assert.ok(fromFiles.bitIdentical, `tfjs-sparse from files: max abs ${fromFiles.maxAbsDiff}`);
      if (!c.overFetch) return;
      // Over fetch, as in a browser, with progress.
      const requested: string[] = [];
      const progress: number[] = [];
      const handler = tfjsSparseHandler('https://cdn.example/m/model.json?v=3', { fetch: folderFetch(sparse.folder, requested), onProgress: (f) => progress.push(f) });
      const overFetch = await compareTfjsModels(prunedDense.modelJsonPath, { handler, kind: 'graph-model' });
      assert.ok(overFetch.bitIdentical);
      assert.deepEqual(requested.slice(1), sparse.layout.shards.map((s) => `https://cdn.example/m/${s.path}?v=3`));
      assert.equal(progress.at(-1), 1);
      assert.ok(progress.every((f, i) => i === 0 || f >= progress[i - 1]!), 'progress never goes back');
    });
  }

  test('standard TF.js loaders refuse a sparse model loudly, naming the prunepack loader', async () => {
    const file = path.join(dir, 'emotion-sparse', 'model.json');
    assert.ok(fs.existsSync(file), 'written by the emotion case');
    await assert.rejects(runtime.loadGraphModel((runtime.tf.io as { http(p: string, o: unknown): unknown }).http(file, { fetchFunc: tfjsFileFetch(file) })), /prunepack-sparse\/2[\s\S]*prunepack\/tfjs/);
    const tf = require('@tensorflow/tfjs-core') as { io: { decodeWeights(d: ArrayBuffer, s: unknown[]): unknown } };
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.throws(() => tf.io.decodeWeights(shardBytes(path.dirname(file)).slice().buffer, json.weightsManifest[0].weights), /Unsupported dtype in weight 'prunepack-sparse\/2 model/);
  });

  test('sizes at 50% and 90% zeros (blazeface): within 0.9x and 0.8x of gzip -9', (t) => {
    for (const name of ['blazeface']) {
      const { model } = openModel(humanModel(name));
      for (const [sparsity, target] of [[0.5, 0.9], [0.9, 0.8]] as const) {
        const pruned = pruneModel(model, { sparsity }).model;
        const dense = concat(layoutTfjs(pruned, 'tfjs').shards.flatMap((s) => s.chunks));
        const sparse = layoutTfjs(pruned, 'tfjs-sparse').weightBytes;
        const gzip = gzipSync(dense, { level: 9 }).length;
        t.diagnostic(`${name} ${sparsity * 100}%: dense ${dense.length} B, gzip -9 ${gzip} B, tfjs-sparse ${sparse} B = ${(sparse / gzip).toFixed(3)}x gzip`);
        assert.ok(sparse <= target * gzip, `${name} at ${sparsity}: ${(sparse / gzip).toFixed(3)}x of gzip (target ${target})`);
      }
    }
  });
});

describe('face-api weight manifests (weights level)', () => {
  test('the large uint8 manifests at 80% zeros: within 0.8x of gzip -9 of the dense shards', (t) => {
    for (const file of faceApiManifests().filter((f) => /face_recognition|ssd_mobilenetv1/.test(f))) {
      const pruned = pruneModel(openModel(file).model, { sparsity: 0.8 }).model;
      const dense = concat(layoutTfjs(pruned, 'tfjs').shards.flatMap((s) => s.chunks));
      const sparse = layoutTfjs(pruned, 'tfjs-sparse').weightBytes;
      const gzip = gzipSync(dense, { level: 9 }).length;
      t.diagnostic(`${path.basename(file)} 80%: dense ${dense.length} B, gzip -9 ${gzip} B, tfjs-sparse ${sparse} B = ${(sparse / gzip).toFixed(3)}x gzip`);
      assert.ok(sparse <= 0.8 * gzip, `${path.basename(file)}: ${(sparse / gzip).toFixed(3)}x of gzip`);
    }
  });

  type Tensor = { dtype: string; dataSync(): ArrayLike<number>; dispose(): void };
  const decode = (data: ArrayBuffer, specs: unknown[]) => {
    const tf = require('@tensorflow/tfjs-core') as { io: { decodeWeights(d: ArrayBuffer, s: unknown[]): Record<string, Tensor> } };
    const out = new Map<string, string>();
    for (const [name, t] of Object.entries(tf.io.decodeWeights(data, specs))) {
      const v = t.dataSync() as Float32Array;
      out.set(name, `${t.dtype}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}`);
      t.dispose();
    }
    return out;
  };

  for (const file of faceApiManifests().filter((f) => /tiny_face_detector|face_landmark_68_tiny|face_expression/.test(f))) {
    test(`${path.basename(file)}: pruned 80% -> tfjs-sparse -> loadTfjsWeights decodes to the same dequantized tensors`, async (t) => {
      const { model } = openModel(file);
      const pruned = pruneModel(model, { sparsity: 0.8 }).model;
      const dense = layoutTfjs(pruned, 'tfjs');
      const sparse = layoutTfjs(pruned, 'tfjs-sparse');
      const files = layoutFiles(sparse, 'manifest.json');
      const loaded = await loadTfjsWeights('mem/manifest.json', { readFile: memoryReadFile(files) });
      const denseData = concat(dense.shards.flatMap((s) => s.chunks));
      const reference = decode(denseData.slice().buffer, JSON.parse(new TextDecoder().decode(dense.modelJson)).flatMap((g: { weights: unknown[] }) => g.weights));
      assert.deepEqual(decode(loaded.weightData, loaded.weightSpecs), reference);
      const gzip = gzipSync(denseData, { level: 9 }).length;
      t.diagnostic(`${path.basename(file)} pruned 80% (uint8): dense ${denseData.length} B, gzip -9 ${gzip} B, tfjs-sparse ${sparse.weightBytes} B = ${(sparse.weightBytes / gzip).toFixed(3)}x gzip`);
      assert.ok(sparse.weightBytes <= 0.8 * gzip, `${(sparse.weightBytes / gzip).toFixed(3)}x of gzip -9 (target <= 0.8x at 80% zeros)`);
      // The plugin reads the sparse manifest back to the same stored bytes.
      const back = readTfjs(files.get('manifest.json')!, { shards: (p) => files.get(p)! });
      back.weights.forEach((w, i) => assert.ok(Buffer.from(w.denseBytes()).equals(Buffer.from(pruned.weights[i]!.denseBytes())), w.name));
    });
  }
});
