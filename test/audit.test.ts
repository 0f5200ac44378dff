/**
 * `auditModel` on the CNN sample and on a pruned PaddleOCR model, every number checked against
 * an independent computation: zeros by a plain loop, dense bytes from the shape, the bound from
 * the formula, target sizes from the writers, gzip from fflate, FC block shares and the
 * prune --block cost from pruneModel itself.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { gzipSync } from 'fflate';
import { openModel, pruneModel, writeModel, readModel } from '../src/index.js';
import { auditModel, blockPruneCost } from '../src/audit/audit.js';
import { validateJsonSchema } from '../src/audit/json-schema.js';
import { renderAuditText } from '../src/audit/render-text.js';
import { renderAuditHtml } from '../src/audit/render-html.js';
import type { AuditReport } from '../src/audit/report.js';
import { encodeSparse } from '../src/sparsity/codecs.js';
import type { Model, WeightTensor } from '../src/model/types.js';
import { repoPath } from './helpers.js';

const SAMPLE = repoPath('samples', 'cnn-synthetic-80.tflite');
const CLS = repoPath('node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const schema = JSON.parse(fs.readFileSync(repoPath('docs', 'audit-schema.json'), 'utf8'));

/** Zeros by the simplest loop there is: numeric zero for floats, 0 for integers. */
function plainZeros(w: WeightTensor): number {
  const d = w.denseBytes();
  const copy = d.slice();
  let values: ArrayLike<number>;
  if (w.dtype === 'float32') values = new Float32Array(copy.buffer);
  else if (w.dtype === 'int32') values = new Int32Array(copy.buffer);
  else if (w.dtype === 'int64') values = Array.from(new BigInt64Array(copy.buffer), Number);
  else throw new Error(`test does not handle ${w.dtype}`);
  let zeros = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros++;
  return zeros;
}

function entropyBound(n: number, zeros: number, bytes: number): number {
  const p = zeros / n;
  const h = p <= 0 || p >= 1 ? 0 : -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
  return (n * h) / 8 + (n - zeros) * bytes;
}

function elementsOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkAgainstModel(report: AuditReport, model: Model): void {
  assert.equal(report.weightCount, model.weights.length);
  assert.equal(report.weights.length, model.weights.length, 'no --top: every weight listed');
  const byName = new Map(report.weights.map((w) => [w.name, w]));
  let zeros = 0;
  let elements = 0;
  let bound = 0;
  for (const w of model.weights) {
    const row = byName.get(w.name);
    assert.ok(row, w.name);
    const n = elementsOf(w.shape);
    const width = w.dtype === 'int64' ? 8 : 4;
    assert.equal(row.elements, n, w.name);
    assert.equal(row.denseBytes, n * width, `${w.name} dense bytes`);
    const z = plainZeros(w);
    assert.equal(row.zeros, z, `${w.name} zeros`);
    assert.ok(Math.abs(row.informationBound - entropyBound(n, z, width)) < 1e-6, `${w.name} bound`);
    zeros += z;
    elements += n;
    bound += entropyBound(n, z, width);
    // Candidates are sorted, the best is the first, and savedBytes is dense minus the best raw one.
    for (let i = 1; i < row.candidates.length; i++) assert.ok(row.candidates[i - 1]!.bytes <= row.candidates[i]!.bytes);
    assert.deepEqual(row.best, { encoding: row.candidates[0]!.encoding, bytes: row.candidates[0]!.bytes });
    const raw = row.candidates.filter((c) => c.encoding !== 'dense+gzip' && !c.encoding.endsWith('+deflate'));
    assert.equal(row.savedBytes, Math.max(0, row.denseBytes - Math.min(...raw.map((c) => c.bytes))));
  }
  assert.equal(report.totals.zeros, zeros);
  assert.equal(report.totals.elements, elements);
  assert.ok(Math.abs(report.totals.informationBound.weightBytes - bound) < 1e-3);
  for (let i = 1; i < report.weights.length; i++) {
    assert.ok(report.weights[i - 1]!.savedBytes >= report.weights[i]!.savedBytes, 'most bytes saved first');
    assert.equal(report.weights[i]!.rank, i + 1);
  }
  // Every target total is the writer's real output, and its gzip the real gzip.
  for (const t of report.totals.targets) {
    const bytes = writeModel(model, t.target);
    assert.equal(t.bytes, bytes.length, `${t.target} bytes`);
    assert.equal(t.gzipBytes, gzipSync(bytes, { level: 6 }).length, `${t.target} gzip`);
    const dense = report.totals.dense.bytes!;
    assert.ok(Math.abs(t.ratio! - dense / bytes.length) < 1e-12);
    assert.ok(Math.abs(t.ratioToBound! - bytes.length / report.totals.informationBound.fileBytes) < 1e-12);
  }
  assert.equal(report.totals.informationBound.fileBytes - report.totals.informationBound.weightBytes,
    report.totals.dense.bytes! - report.totals.denseWeightBytes, 'file bound = weight bound + the dense file\'s other bytes');
  const errors = validateJsonSchema(JSON.parse(JSON.stringify(report)), schema, { strict: true });
  assert.deepEqual(errors, [], 'report follows docs/audit-schema.json');
}

describe('audit: CNN sample (TFLite)', () => {
  const { model, source } = openModel(SAMPLE);
  const report = auditModel(model, { file: SAMPLE, input: source.bytes, gzipWeights: null, zeroPatterns: 3, pruneCost: true });

  it('matches independent counts, writer outputs and the bound formula', () => {
    checkAgainstModel(report, model);
    assert.equal(report.format, 'tflite');
    assert.deepEqual(report.targets, ['tflite', 'tflite-sparse']);
    assert.equal(report.totals.input.bytes, fs.statSync(SAMPLE).size);
    assert.equal(report.totals.input.gzipBytes, gzipSync(fs.readFileSync(SAMPLE), { level: 6 }).length);
    assert.equal(report.weights[0]!.name, 'dense1/weights', 'the largest saving first');
  });

  it('sizes PPSP codec candidates exactly and gzips each weight', () => {
    const w = model.weights.find((x) => x.name === 'dense1/weights')!;
    const row = report.weights.find((x) => x.name === w.name)!;
    const dense = w.denseBytes();
    const bitmap = encodeSparse({ values: dense, dtype: 'float32', shape: w.shape }, { codec: 'bitmap' }).length;
    assert.equal(row.candidates.find((c) => c.encoding === 'bitmap:1x1')!.bytes, bitmap);
    const deflated = encodeSparse({ values: dense, dtype: 'float32', shape: w.shape }, {
      codec: 'bitmap', deflateIndex: true, deflateValues: true, shuffleValues: true, level: 6,
    }).length;
    assert.equal(row.candidates.find((c) => c.encoding === 'bitmap:1x1+deflate')!.bytes, deflated);
    assert.equal(row.gzipBytes, gzipSync(dense, { level: 6 }).length);
    // tflite-sparse chose something for every weight, and its reasons are there.
    for (const r of report.weights) {
      const choice = r.targets.find((t) => t.target === 'tflite-sparse');
      assert.ok(choice && choice.reason.length > 0, r.name);
    }
    assert.equal(report.totals.targets.find((t) => t.target === 'tflite-sparse')!.sparseWeights, 5);
  });

  it('reports the FULLY_CONNECTED block fit and what prune --block 1x4 would cost (checked with pruneModel)', () => {
    assert.deepEqual(report.fullyConnected.map((f) => f.name).sort(), ['dense1/weights', 'dense2/weights']);
    for (const fc of report.fullyConnected) {
      const w = model.weights.find((x) => x.name === fc.name)!;
      const v = new Float32Array(w.denseBytes().slice().buffer);
      const [rows, cols] = w.shape as [number, number];
      let zeros = 0;
      let zeroBlocks = 0;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c += 4) {
          let all = true;
          for (let k = 0; k < 4; k++) { if (v[r * cols + c + k] === 0) zeros++; else all = false; }
          if (all) zeroBlocks++;
        }
      }
      assert.equal(fc.block, '1x4');
      assert.equal(fc.nativeKernel, true);
      assert.equal(fc.elementSparsity, zeros / v.length);
      assert.equal(fc.blockSparsity, zeroBlocks / (v.length / 4));
      assert.equal(fc.zerosInBlocksShare, (4 * zeroBlocks) / zeros);
      const ratio = fc.blockSparsity / fc.elementSparsity;
      assert.equal(fc.officialConverter, ratio > 0.9 ? 'block' : 'csr+densify');

      // What prune really does with the same options.
      const pruned = pruneModel(model, { sparsity: fc.elementSparsity, block: [1, 4], select: (x) => x.name === fc.name });
      const result = pruned.results.find((r) => r.name === fc.name)!;
      assert.equal(fc.prune!.extraZeros, result.zerosAfter - result.zerosBefore);
      assert.equal(fc.prune!.zeroShareAfter, result.zerosAfter / v.length);
      const after = new Float32Array(pruned.model.weights.find((x) => x.name === fc.name)!.denseBytes().slice().buffer);
      let l1 = 0;
      let removed = 0;
      for (let i = 0; i < v.length; i++) { l1 += Math.abs(v[i]!); if (after[i] !== v[i]) removed += Math.abs(v[i]!); }
      assert.ok(Math.abs(fc.prune!.l1RemovedShare - removed / l1) < 1e-9);
    }
  });

  it('blockPruneCost handles ties like prune (smallest norm first, then position)', () => {
    const values = new Float32Array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 2]);
    const bytes = new Uint8Array(values.buffer);
    const weight: WeightTensor = {
      name: 'w', dtype: 'float32', shape: [2, 8], bytes, consumers: [], denseBytes: () => bytes,
    };
    // Blocks (1x4): norms 0, 4, 4, 2. Two blocks: the zero block and the norm-2 block.
    const cost = blockPruneCost(weight, bytes, [1, 4], 0.5)!;
    assert.deepEqual(cost, { extraZeros: 1, zerosBefore: 7, l1Removed: 2, l1Total: 10 });
    // Three blocks: the tie between blocks 1 and 2 goes to block 1 (earlier).
    const three = blockPruneCost(weight, bytes, [1, 4], 0.75)!;
    assert.equal(three.extraZeros, 5);
    assert.equal(three.l1Removed, 6);
  });

  it('renders text and HTML', () => {
    const text = renderAuditText(report);
    assert.match(text, /tflite-sparse\s+141,088/);
    assert.match(text, /FULLY_CONNECTED weights/);
    assert.match(text, /information bound/);
    const html = renderAuditHtml(report);
    assert.equal((html.match(/<svg /g) ?? []).length, 3);
    assert.equal((html.match(/src="data:image\/png;base64,/g) ?? []).length, 3);
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'nothing fetched from the network');
  });

  it('lists only --top weights but totals all of them', () => {
    const top = auditModel(model, { top: 3, gzipWeights: 2 });
    assert.equal(top.weights.length, 3);
    assert.equal(top.weightCount, 11);
    assert.equal(top.totals.zeros, report.totals.zeros);
    assert.deepEqual(top.weights.map((w) => w.name), report.weights.slice(0, 3).map((w) => w.name));
    assert.equal(top.options.gzipWeights, 2);
    // The prune cost is opt-in: without pruneCost every prune is null and says why.
    assert.equal(top.options.pruneCost, false);
    assert.equal(report.options.pruneCost, true);
    assert.ok(top.fullyConnected.length > 0 && top.fullyConnected.every((f) => f.prune === null && f.pruneNote === 'not computed (--prune-cost)'));
    assert.ok(top.weights[0]!.gzipBytes !== null && top.weights[2]!.gzipBytes === null);
    assert.deepEqual(validateJsonSchema(JSON.parse(JSON.stringify(top)), schema, { strict: true }), []);
  });
});

describe('audit: pruned PaddleOCR classifier (ONNX)', () => {
  const original = openModel(CLS).model;
  const pruned = pruneModel(original, { sparsity: 0.8 }).model;
  const bytes = writeModel(pruned, 'onnx');
  const model = readModel({ bytes, path: 'cls-pruned.onnx' }).model;
  const report = auditModel(model, { file: 'cls-pruned.onnx', input: bytes, gzipWeights: null });

  it('matches independent counts, writer outputs and the bound formula', () => {
    checkAgainstModel(report, model);
    assert.deepEqual(report.targets, ['onnx', 'onnx-sparse']);
    assert.equal(report.fullyConnected.length, 0);
    assert.equal(report.xnnpack, null);
    // Pruned weights (rank >= 2, >= 64 elements) have exactly round(0.8 n) zeros.
    const conv = report.weights.find((w) => w.name === 'conv2d_44.w_0')!;
    assert.equal(conv.zeros, Math.round(0.8 * conv.elements));
  });

  it('says what onnx-sparse chose per weight, with exact sizes that add up to the file', () => {
    const sparse = report.totals.targets.find((t) => t.target === 'onnx-sparse')!;
    const chosen = report.weights.filter((w) => w.targets.find((t) => t.target === 'onnx-sparse')?.sparse);
    assert.equal(sparse.sparseWeights, chosen.length);
    assert.ok(chosen.length > 0);
    // The input, the dense target and onnx-sparse minus its savings: per-weight sizes are exact.
    const dense = report.totals.targets.find((t) => t.target === 'onnx')!;
    const saved = report.weights.reduce((n, w) => {
      const d = w.targets.find((t) => t.target === 'onnx')!;
      const s = w.targets.find((t) => t.target === 'onnx-sparse')!;
      return n + d.bytes - s.bytes;
    }, 0);
    assert.equal(sparse.bytes, dense.bytes! - saved);
    // MatMul [in, out] is seen with rows = outputs.
    const matmul = report.weights.find((w) => w.consumers.some((c) => c.startsWith('MatMul:1')));
    if (matmul) assert.equal(matmul.structure!.matrix.rowAxis, 1);
  });
});
