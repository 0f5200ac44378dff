/**
 * Audits of every real model in the dev dependencies (MediaPipe TFLite, PaddleOCR ONNX, two
 * TensorFlow.js models of @vladmandic/human) and of the samples: zeros and dense bytes against a separate simple loop, target sizes against the
 * writers, and the JSON schema. Per-weight gzip is off here (--gzip-weights 0) to keep it quick.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openModel } from '../src/index.js';
import { auditModel } from '../src/audit/audit.js';
import { validateJsonSchema } from '../src/audit/json-schema.js';
import type { WeightTensor } from '../src/model/types.js';
import { mediapipeModels, repoPath, sampleModels } from './helpers.js';

const schema = JSON.parse(fs.readFileSync(repoPath('docs', 'audit-schema.json'), 'utf8'));
const OCR = repoPath('node_modules', '@gutenye', 'ocr-models', 'assets');
const models = [
  ...sampleModels(),
  ...mediapipeModels(),
  ...fs.readdirSync(OCR).filter((n) => n.endsWith('.onnx')).sort().map((n) => path.join(OCR, n)),
  // TensorFlow.js (float32 and float16-quantized weights)
  ...['emotion.json', 'antispoof.json'].map((n) => repoPath('node_modules', '@vladmandic', 'human', 'models', n)),
];

const WIDTH: Record<string, number> = { float32: 4, float16: 2, int32: 4, int64: 8 };

/** Zeros by a plain loop over the element bits (float: sign bit ignored). */
function plainZeros(w: WeightTensor): number {
  const d = w.denseBytes().slice();
  let zeros = 0;
  if (w.dtype === 'float16') {
    const v = new Uint16Array(d.buffer);
    for (let i = 0; i < v.length; i++) if ((v[i]! & 0x7fff) === 0) zeros++;
  } else if (w.dtype === 'float32') {
    const v = new Uint32Array(d.buffer);
    for (let i = 0; i < v.length; i++) if ((v[i]! & 0x7fffffff) === 0) zeros++;
  } else if (w.dtype === 'int32') {
    const v = new Int32Array(d.buffer);
    for (let i = 0; i < v.length; i++) if (v[i] === 0) zeros++;
  } else if (w.dtype === 'int64') {
    const v = new BigInt64Array(d.buffer);
    for (let i = 0; i < v.length; i++) if (v[i] === 0n) zeros++;
  } else {
    throw new Error(`test does not handle ${w.dtype}`);
  }
  return zeros;
}

describe('audit: every real model of the dev dependencies and the samples', () => {
  for (const file of models) {
    it(path.basename(file), () => {
      const { model, source } = openModel(file);
      const report = auditModel(model, { file, inputBytes: source.fileSize ?? source.bytes.length, gzipWeights: 0 });
      assert.deepEqual(validateJsonSchema(JSON.parse(JSON.stringify(report)), schema, { strict: true }), []);
      assert.equal(report.weights.length, model.weights.length);
      const byName = new Map(report.weights.map((w) => [w.name, w]));
      let zeros = 0;
      for (const w of model.weights) {
        const row = byName.get(w.name)!;
        const n = w.shape.reduce((a, b) => a * b, 1);
        assert.equal(row.denseBytes, n * WIDTH[w.dtype]!, w.name);
        const z = plainZeros(w);
        assert.equal(row.zeros, z, w.name);
        zeros += z;
        assert.equal(row.storedSparse, w.sparsity !== undefined);
      }
      assert.equal(report.totals.zeros, zeros);
      for (const t of report.totals.targets) {
        assert.equal(t.error, undefined, `${t.target}: ${t.error}`);
        assert.ok(t.bytes! > 0 && t.gzipBytes! > 0 && t.gzipBytes! < t.bytes!);
      }
      // Sparse targets are never larger than the dense one.
      const dense = report.totals.dense.bytes!;
      for (const t of report.totals.targets) assert.ok(t.bytes! <= dense, `${t.target} ${t.bytes} > dense ${dense}`);
      if (model.format === 'tflite') assert.ok(report.xnnpack !== null && typeof report.xnnpack.expected === 'boolean' && (!report.xnnpack.expected || report.xnnpack.qualifies), 'expected implies the threshold');
    });
  }
});
