/**
 * Google's face_detection_full_range_sparse.tflite (npm @mediapipe/face_detection) is the
 * production reference for TFLite sparsity: 46 float16 1x1-conv filters in CSR. Decoding each
 * and re-encoding with the same parameters must reproduce its bytes exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { readTflite } from '../converters/tflite/read.js';
import { sparsityFromDense, type LevelFormat } from '../src/sparsity/format-converter.js';
import { verifySparsity } from '../src/sparsity/verify-sparsity.js';
import type { SparsityParams } from '../src/sparsity/types.js';
import { mediapipeModels } from './helpers.js';

const file = mediapipeModels().find((m) => m.endsWith('face_detection_full_range_sparse.tflite'))!;

test('all 46 sparse weights re-encode to the same value bytes and index vectors', () => {
  const model = readTflite(new Uint8Array(fs.readFileSync(file)));
  const sparse = model.weights.filter((w) => w.sparsity !== undefined);
  assert.equal(sparse.length, 46);
  let checked = 0;
  for (const w of sparse) {
    const params = w.sparsity as SparsityParams;
    assert.equal(verifySparsity(params, w.shape, w.bytes.length, 2), w.bytes.length / 2, w.name);
    const dense = new Uint16Array(w.denseBytes().slice().buffer);
    const n = w.shape.length;
    const k = params.traversalOrder.length - n;
    // The reference's format list is indexed by original dimension.
    const formats: LevelFormat[] = new Array(n + k).fill('DENSE');
    params.traversalOrder.forEach((dim, level) => { formats[dim] = params.dimMetadata[level]!.format; });
    const blockSize = params.dimMetadata.slice(n).map((d) => (d.format === 'DENSE' ? d.denseSize : 0));
    const again = sparsityFromDense(dense, w.shape, params.traversalOrder, params.blockMap, blockSize, formats, 'float16');
    assert.deepEqual(new Uint8Array(again.values.buffer, again.values.byteOffset, again.values.byteLength), new Uint8Array(w.bytes), `${w.name}: values`);
    assert.deepEqual(again.params.traversalOrder, params.traversalOrder);
    assert.equal(again.params.dimMetadata.length, params.dimMetadata.length);
    params.dimMetadata.forEach((d, level) => {
      const e = again.params.dimMetadata[level]!;
      assert.equal(e.format, d.format, `${w.name} level ${level}`);
      if (d.format === 'DENSE' && e.format === 'DENSE') assert.equal(e.denseSize, d.denseSize);
      if (d.format === 'SPARSE_CSR' && e.format === 'SPARSE_CSR') {
        // Same width (Uint8/Uint16/Int32) and same contents.
        assert.equal(e.segments.constructor.name, d.segments.constructor.name, `${w.name} level ${level} segments width`);
        assert.equal(e.indices.constructor.name, d.indices.constructor.name, `${w.name} level ${level} indices width`);
        assert.deepEqual(Array.from(e.segments), Array.from(d.segments));
        assert.deepEqual(Array.from(e.indices), Array.from(d.indices));
      }
    });
    checked++;
  }
  assert.equal(checked, 46);
});
