/**
 * `prunepack convert --to tfjs | tfjs-sparse` on the command line: a folder out, --shard-size,
 * read-back and TF.js runtime check, the JSON summary, weights-only manifests, usage errors.
 * Run: npx tsc -p . && node --test dist/test/tfjs-cli.test.js
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseShardSize } from '../src/cli/convert.js';
import { writeTfjsFiles } from '../converters/tfjs/files.js';
import { openModel, pruneModel } from '../src/index.js';
import { faceApiManifests, humanModel } from './tfjs-fixtures.js';
import { repoPath, tempDir } from './helpers.js';

const BIN = repoPath('dist', 'src', 'cli', 'bin.js');
let dir: string;

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => { dir = tempDir('tfjs-cli'); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('convert --to tfjs and tfjs-sparse', () => {
  test('--to tfjs --shard-size 256KiB: a folder of 256 KiB shards, weights verified, bit-identical in TF.js', () => {
    const out = path.join(dir, 'emotion-dense');
    const r = cli('convert', humanModel('emotion'), '--to', 'tfjs', '-o', out, '--shard-size', '256KiB', '--json');
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.output, path.join(out, 'model.json'));
    assert.equal(summary.runtime.bitIdentical, true);
    assert.equal(summary.weightsVerified, 23);
    assert.equal(summary.weights.outputBytes, summary.weights.inputBytes);
    const shards = fs.readdirSync(out).filter((n) => n.endsWith('.bin')).sort();
    assert.deepEqual(shards, ['group1-shard1of4.bin', 'group1-shard2of4.bin', 'group1-shard3of4.bin', 'group1-shard4of4.bin']);
    assert.equal(fs.statSync(path.join(out, shards[0]!)).size, 256 * 1024);
    // Replacing it needs --force.
    const again = cli('convert', humanModel('emotion'), '--to', 'tfjs', '-o', out);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /exists.*--force/);
  });

  test('a pruned model --to tfjs-sparse: plan table, sizes against gzip -9, runtime check', async () => {
    const { model } = openModel(humanModel('emotion'));
    const pruned = await writeTfjsFiles(pruneModel(model, { sparsity: 0.8 }).model, path.join(dir, 'emotion-80'), { target: 'tfjs' });
    const out = path.join(dir, 'emotion-80-sparse');
    const r = cli('convert', pruned.modelJsonPath, '--to', 'tfjs-sparse', '-o', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /bitmap:1x1\+deflate/);
    assert.match(r.stdout, /sparse weights: \d+ of 23/);
    assert.match(r.stdout, /runtime tfjs-core 4\.9\.0 \(cpu backend\): bit-identical outputs/);
    const ratio = Number(/is ([\d.]+)x of gzip -9 of the input shards/.exec(r.stdout)![1]);
    assert.ok(ratio < 0.8, r.stdout);
    // And back to dense: the same weights as the pruned model.
    const back = cli('convert', path.join(out, 'model.json'), '--to', 'tfjs', '-o', path.join(dir, 'emotion-80-back.json'), '--json');
    assert.equal(back.status, 0, back.stderr);
    assert.deepEqual(JSON.parse(back.stdout).files.map((f: { path: string }) => path.basename(f.path)), ['emotion-80-back.json', 'emotion-80-back-group1-shard1of1.bin']);
  });

  test('a face-api weights manifest: weights verified, nothing to run', () => {
    const manifest = faceApiManifests().find((f) => f.includes('tiny_face_detector'))!;
    const r = cli('convert', manifest, '--to', 'tfjs-sparse', '-o', path.join(dir, 'tiny-face'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /bare weights manifest has no topology: weights verified/);
  });

  test('prune and convert refuse an output that would replace an input shard; the shard is unchanged', async () => {
    const { model } = openModel(humanModel('emotion'));
    const input = path.join(dir, 'shared-names');
    // input/emotion.json's shards are named as the shards of a model.json written into input/.
    const written = await writeTfjsFiles(model, path.join(input, 'emotion.json'), { target: 'tfjs', shardName: (g, i, n) => `group${g + 1}-shard${i + 1}of${n}.bin` });
    const shard = path.join(input, 'group1-shard1of1.bin');
    const before = fs.readFileSync(shard);
    assert.deepEqual(fs.readdirSync(input).sort(), ['emotion.json', 'group1-shard1of1.bin']);
    for (const args of [['prune', written.modelJsonPath, '--sparsity', '0.5', '-o', input], ['convert', written.modelJsonPath, '--to', 'tfjs', '-o', input]]) {
      const r = cli(...args);
      assert.equal(r.status, 2, `${args[0]}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /would replace a file of the input model/);
      assert.ok(fs.readFileSync(shard).equals(before), `${args[0]}: input shard unchanged`);
    }
    assert.deepEqual(fs.readdirSync(input).sort(), ['emotion.json', 'group1-shard1of1.bin']);
  });

  test('usage errors', () => {
    const onnx = cli('convert', humanModel('emotion'), '--to', 'onnx', '--shard-size', '1MiB');
    assert.equal(onnx.status, 2);
    assert.match(onnx.stderr, /--shard-size applies to TF.js targets only/);
    const bad = cli('convert', humanModel('emotion'), '--to', 'tfjs', '--shard-size', 'lots', '-o', path.join(dir, 'x'));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /invalid --shard-size/);
    const tflite = cli('convert', repoPath('samples', 'cnn-synthetic-80.tflite'), '--to', 'tfjs-sparse', '-o', path.join(dir, 'y'));
    assert.equal(tflite.status, 3);
    assert.match(tflite.stderr, /needs a TensorFlow.js model.json/);
    assert.equal(parseShardSize('4MiB'), 4 * 1024 * 1024);
    assert.equal(parseShardSize('1000'), 1000);
    assert.equal(parseShardSize('1.5k'), 1536);
  });
});
