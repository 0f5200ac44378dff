/**
 * onnx-sparse and onnx outputs pass the reference checker, onnx.checker.check_model with
 * full_check=True, when a Python with the `onnx` package is available (Debian: python3-onnx);
 * skipped otherwise. Covers both sparse forms (opset >= 11 Constant sparse_value, opset 9-10
 * scatter chain), initializers, Constant nodes, If subgraphs and a pruned PaddleOCR model.
 * Run: npx tsc -p . && node --test dist/test/onnx-checker.test.js
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { encodeOnnxModel, float32Bytes, type GraphSpec, type ModelSpec } from '../converters/onnx/builder.js';
import { readOnnx, writeOnnx } from '../converters/onnx/index.js';
import { openModel, pruneModel } from '../src/index.js';
import { repoPath, tempDir } from './helpers.js';

function pythonWithOnnx(): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(candidate, ['-c', 'import onnx'], { encoding: 'utf8' });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

const sparseish = (n: number, every: number) => float32Bytes(Array.from({ length: n }, (_, i) => (i % every === 0 ? i + 1 : 0)));

function matmul(opset: number, constant: boolean): ModelSpec {
  const w = { dtype: 'float32' as const, dims: [64, 32], data: sparseish(2048, 7) };
  return {
    irVersion: 8, opsets: [{ domain: '', version: opset }],
    graph: {
      name: 'g',
      nodes: [
        ...(constant ? [{ opType: 'Constant', outputs: ['W'], attributes: [{ name: 'value', tensor: w }] }] : []),
        { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] },
      ],
      initializers: constant ? [] : [{ ...w, name: 'W' }],
      inputs: [{ name: 'x', dtype: 'float32', dims: [2, 64] }, ...(constant ? [] : [{ name: 'W', dtype: 'float32' as const, dims: [64, 32] }])],
      outputs: [{ name: 'y', dtype: 'float32', dims: [2, 32] }],
    },
  };
}

function branch(name: string): GraphSpec {
  return {
    name,
    nodes: [
      { opType: 'Constant', outputs: [`${name}_k`], attributes: [{ name: 'value', tensor: { dtype: 'float32', dims: [16, 16], data: sparseish(256, 9) } }] },
      { opType: 'MatMul', inputs: ['x', `${name}_k`], outputs: [`${name}_a`] },
      { opType: 'MatMul', inputs: [`${name}_a`, 'outer'], outputs: [`${name}_out`] },
    ],
    inputs: [], outputs: [{ name: `${name}_out`, dtype: 'float32', dims: [1, 16] }],
  };
}

function subgraphs(opset: number): ModelSpec {
  return {
    irVersion: 8, opsets: [{ domain: '', version: opset }],
    graph: {
      name: 'main',
      nodes: [{ opType: 'If', inputs: ['cond'], outputs: ['y'], attributes: [{ name: 'then_branch', graph: branch('then') }, { name: 'else_branch', graph: branch('else') }] }],
      initializers: [{ name: 'outer', dtype: 'float32', dims: [16, 16], data: sparseish(256, 11) }],
      inputs: [{ name: 'cond', dtype: 'bool', dims: [] }, { name: 'x', dtype: 'float32', dims: [1, 16] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [1, 16] }],
    },
  };
}

const CHECK = `
import sys, onnx
bad = []
for f in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(f), full_check=True)
    except Exception as e:
        bad.append(f + ': ' + str(e).splitlines()[0])
print('\\n'.join(bad))
sys.exit(1 if bad else 0)
`;

test('onnx.checker full_check accepts prunepack output', (t) => {
  const python = pythonWithOnnx();
  if (!python) { t.skip('no Python with the onnx package (apt-get install python3-onnx)'); return; }
  const dir = tempDir('onnx-checker');
  try {
    const files: string[] = [];
    const cases: Array<[string, ModelSpec]> = [
      ['matmul-init-13', matmul(13, false)], ['matmul-const-11', matmul(11, true)], ['matmul-init-10', matmul(10, false)],
      ['matmul-const-9', matmul(9, true)], ['if-13', subgraphs(13)], ['if-9', subgraphs(9)],
    ];
    for (const [name, spec] of cases) {
      const sparse = writeOnnx(readOnnx(encodeOnnxModel(spec)), 'onnx-sparse');
      const sparseModel = readOnnx(sparse);
      assert.ok(sparseModel.weights.every((w) => w.sparsity !== undefined), `${name}: every weight sparse`);
      for (const [suffix, bytes] of [['sparse', sparse], ['dense', writeOnnx(sparseModel, 'onnx')]] as const) {
        const file = path.join(dir, `${name}.${suffix}.onnx`);
        fs.writeFileSync(file, bytes);
        files.push(file);
      }
    }
    const { model } = openModel(repoPath('node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'));
    const file = path.join(dir, 'cls-pruned.sparse.onnx');
    fs.writeFileSync(file, writeOnnx(pruneModel(model, { sparsity: 0.8 }).model, 'onnx-sparse'));
    files.push(file);
    const r = spawnSync(python, ['-c', CHECK, ...files], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
