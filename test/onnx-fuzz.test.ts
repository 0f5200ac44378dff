/**
 * Corrupt and truncated ONNX files give PrunepackError and nothing else: a few hundred
 * deterministic mutations of the PaddleOCR classifier (bytes flipped, lengths inflated,
 * truncations, insertions), each read, densified and (every 8th) written again.
 * Run: npx tsc -p . && node --test dist/test/onnx-fuzz.test.js
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { readOnnx, writeOnnx } from '../converters/onnx/index.js';
import { PrunepackError } from '../src/errors.js';
import { mulberry32 } from '../src/verify/tflite-runtime.js';
import { repoPath } from './helpers.js';

const CLS = repoPath('node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const MUTATIONS = 600;

function mutate(original: Uint8Array, rand: () => number, kind: number): Uint8Array {
  const at = Math.floor(rand() * original.length);
  switch (kind % 6) {
    case 0: { const b = original.slice(); b[at] = Math.floor(rand() * 256); return b; }
    case 1: { const b = original.slice(); for (let i = 0; i < 8; i++) b[Math.floor(rand() * b.length)]! ^= 1 << Math.floor(rand() * 8); return b; }
    case 2: return original.slice(0, at);
    case 3: { // inflate a length: set continuation bits on a run of bytes
      const b = original.slice();
      for (let i = 0; i < 1 + Math.floor(rand() * 9) && at + i < b.length; i++) b[at + i]! |= 0x80;
      return b;
    }
    case 4: { const extra = Uint8Array.from({ length: 1 + Math.floor(rand() * 16) }, () => Math.floor(rand() * 256)); const b = new Uint8Array(original.length + extra.length); b.set(original.subarray(0, at)); b.set(extra, at); b.set(original.subarray(at), at + extra.length); return b; }
    default: { // structural: early region (model header, first nodes) where keys and lengths live
      const b = original.slice();
      b[Math.floor(rand() * Math.min(4096, b.length))] = [0x00, 0xff, 0x7f, 0x80, 0x08, 0x0a, 0x12, 0x3a][Math.floor(rand() * 8)]!;
      return b;
    }
  }
}

test(`${MUTATIONS} mutations of the cls model give PrunepackError or a readable model, never another error`, (t) => {
  const original = new Uint8Array(fs.readFileSync(CLS));
  const rand = mulberry32(20240601);
  const outcomes = new Map<string, number>();
  const unexpected: string[] = [];
  for (let i = 0; i < MUTATIONS; i++) {
    const bytes = mutate(original, rand, i);
    try {
      const model = readOnnx(bytes);
      for (const w of model.weights) w.denseBytes();
      if (i % 8 === 0) { writeOnnx(model, 'onnx'); writeOnnx(model, 'onnx-sparse'); }
      outcomes.set('read', (outcomes.get('read') ?? 0) + 1);
    } catch (e) {
      if (e instanceof PrunepackError) outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
      else unexpected.push(`mutation ${i} (kind ${i % 6}): ${e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  assert.deepEqual(unexpected, []);
  assert.ok((outcomes.get('CORRUPT') ?? 0) + (outcomes.get('TRUNCATED') ?? 0) > MUTATIONS / 4, JSON.stringify([...outcomes]));
});
