/**
 * `verify` on ONNX: a pruned PaddleOCR classifier and its `convert --to onnx-sparse` output are
 * equivalent (weights and onnxruntime outputs); the unpruned original is not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openModel, pruneModel, writeModel } from '../src/index.js';
import { repoPath, tempDir } from './helpers.js';

const BIN = repoPath('dist', 'src', 'cli', 'bin.js');
const CLS = repoPath('node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('verify: pruned PaddleOCR classifier (ONNX)', () => {
  const dir = tempDir('verify-onnx');
  const pruned = path.join(dir, 'cls.pruned.onnx');
  const sparse = path.join(dir, 'cls.pruned.sparse.onnx');
  fs.writeFileSync(pruned, writeModel(pruneModel(openModel(CLS).model, { sparsity: 0.8 }).model, 'onnx'));

  it('is equivalent to its convert --to onnx-sparse output, weights and onnxruntime outputs (exit 0)', () => {
    const converted = cli('convert', pruned, '--to', 'onnx-sparse', '-o', sparse);
    assert.equal(converted.status, 0, converted.stderr);
    assert.ok(fs.statSync(sparse).size < fs.statSync(pruned).size);
    const r = cli('verify', pruned, sparse, '--run', '--json');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const json = JSON.parse(r.stdout);
    assert.equal(json.equivalent, true);
    assert.equal(json.weights.matchedByName, 250);
    assert.deepEqual(json.weights.matchedByPosition, []);
    assert.equal(json.run.seeds.length, 3);
    assert.match(json.run.engineA, /onnxruntime-node/);
    for (const o of json.run.outputs) assert.equal(o.bitIdentical, true, o.nameA);
  });

  it('is not equivalent to the unpruned original (exit 1, weights and outputs differ)', () => {
    const r = cli('verify', CLS, sparse, '--run', '--inputs', '1', '--max-diffs', '3');
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /weights: \d+ differ/);
    assert.match(r.stdout, /first differences:\n {2}conv2d_0\.w_0: element \d+ \[[\d, ]+\]: \S+ vs 0\n/);
    assert.match(r.stdout, /softmax_0\.tmp_0\s+2\s/);
    assert.match(r.stdout, /NOT equivalent/);
  });
});
