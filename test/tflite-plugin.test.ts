import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readTfliteDocument, readTflite } from '../converters/tflite/read.js';
import { writeTflite, layoutTflite } from '../converters/tflite/write.js';
import { PrunepackError } from '../src/errors.js';
import { loadTfliteRuntime, deterministicInputs, compareOutputs } from '../src/verify/tflite-runtime.js';
import { buildCnnSample } from '../samples/build-samples.js';
import { canonicalJson, mediapipeModels, repoPath, sampleModels, tempDir } from './helpers.js';

const MODELS = [...mediapipeModels(), ...sampleModels()];

test('the real model corpus is present', () => {
  assert.ok(MODELS.length >= 9, `expected the 7 MediaPipe models and the samples, found ${MODELS.length}`);
  assert.ok(MODELS.some((m) => m.endsWith('face_detection_full_range_sparse.tflite')));
});

for (const file of MODELS) {
  const name = path.basename(file);
  test(`read -> write -> read keeps every table and buffer: ${name}`, () => {
    const bytes = new Uint8Array(fs.readFileSync(file));
    const doc = readTfliteDocument(bytes);
    const written = writeTflite(doc);
    const again = readTfliteDocument(written);
    assert.equal(again.buffers.length, doc.buffers.length);
    doc.buffers.forEach((b, i) => assert.deepEqual(again.buffers[i]!.bytes, b.bytes, `buffer ${i} differs`));
    assert.equal(canonicalJson(again.model), canonicalJson(doc.model), 'model tables differ after a round trip');
    // A second round trip is byte-identical to the first (the writer is deterministic).
    assert.deepEqual(writeTflite(again), written);
  });

  test(`rewritten model runs with bit-identical outputs in the TFLite runtime: ${name}`, async () => {
    const bytes = new Uint8Array(fs.readFileSync(file));
    const written = writeTflite(readTfliteDocument(bytes));
    const engine = await loadTfliteRuntime();
    const original = await engine.load(bytes);
    const rewritten = await engine.load(written);
    try {
      assert.deepEqual(rewritten.inputs(), original.inputs());
      const inputs = deterministicInputs(original.inputs(), 7);
      const expected = await original.run(inputs);
      const actual = await rewritten.run(inputs);
      for (const [i, d] of compareOutputs(expected, actual).entries()) {
        assert.ok(d.bitIdentical, `output ${i}: max abs diff ${d.maxAbsDiff}`);
      }
    } finally {
      original.dispose();
      rewritten.dispose();
    }
  });
}

test('weights are views into the input bytes, not copies', () => {
  const bytes = new Uint8Array(fs.readFileSync(repoPath('samples', 'cnn-synthetic-80.tflite')));
  const model = readTflite(bytes);
  const dense1 = model.weights.find((w) => w.name === 'dense1/weights')!;
  assert.equal(dense1.bytes.buffer, bytes.buffer);
  assert.equal(dense1.bytes.length, 64 * 2048 * 4);
  assert.equal(dense1.consumers[0]!.op, 'FULLY_CONNECTED');
  assert.equal(dense1.consumers[0]!.operand, 1);
});

test('sparse weights of Google\'s model are decoded and consumers seen through DENSIFY', () => {
  const file = mediapipeModels().find((m) => m.endsWith('face_detection_full_range_sparse.tflite'))!;
  const model = readTflite(new Uint8Array(fs.readFileSync(file)));
  const sparse = model.weights.filter((w) => w.sparsity !== undefined);
  assert.equal(sparse.length, 46);
  for (const w of sparse) {
    assert.equal(w.dtype, 'float16');
    assert.deepEqual(w.consumers.map((c) => [c.via?.join('>'), c.op]), [['DENSIFY>DEQUANTIZE', 'CONV_2D']]);
    const dense = w.denseBytes();
    assert.equal(dense.length, w.shape.reduce((a, b) => a * b, 1) * 2);
  }
});

test('buffers addressed by Buffer.offset/size (the >2 GB layout) read back and run identically', async () => {
  const bytes = buildCnnSample(0.8, 3);
  const doc = readTfliteDocument(bytes);
  const layout = layoutTflite(doc, { forceOffsetBuffers: true });
  assert.ok(layout.offsetBuffers);
  const written = writeTflite(doc, { forceOffsetBuffers: true });
  const again = readTfliteDocument(written);
  again.buffers.forEach((b, i) => {
    assert.deepEqual(b.bytes, doc.buffers[i]!.bytes);
    if (b.hasData) assert.ok(b.offset > 1n, `buffer ${i} should use Buffer.offset`);
  });
  // Lazily loaded: only the head in memory, the rest read through readRange.
  const head = written.subarray(0, layout.head.length);
  let reads = 0;
  const lazy = readTfliteDocument(head, { fileSize: written.length, readRange: (o, n) => { reads++; return written.slice(o, o + n); } });
  assert.equal(reads, 0);
  assert.deepEqual(lazy.buffers[1]!.bytes, doc.buffers[1]!.bytes);
  assert.equal(reads, 1);
  const engine = await loadTfliteRuntime();
  const a = await engine.load(bytes);
  const b = await engine.load(written);
  try {
    const inputs = deterministicInputs(a.inputs(), 11);
    const d = compareOutputs(await a.run(inputs), await b.run(inputs));
    assert.ok(d.every((x) => x.bitIdentical));
  } finally { a.dispose(); b.dispose(); }
});

test('bad input gives a PrunepackError with a code, never another error', () => {
  const good = new Uint8Array(fs.readFileSync(repoPath('samples', 'cnn-synthetic-80.tflite')));
  const cases: Array<[string, Uint8Array, string[]]> = [
    ['empty', new Uint8Array(0), ['TRUNCATED']],
    ['truncated to 100 bytes', good.slice(0, 100), ['CORRUPT', 'TRUNCATED']],
    ['truncated to half', good.slice(0, good.length >> 1), ['CORRUPT', 'TRUNCATED']],
    ['root offset past the end', (() => { const c = good.slice(); new DataView(c.buffer).setUint32(0, c.length + 10, true); return c; })(), ['CORRUPT']],
    ['root offset 0', (() => { const c = good.slice(); new DataView(c.buffer).setUint32(0, 0, true); return c; })(), ['CORRUPT']],
  ];
  for (const [label, bytes, codes] of cases) {
    assert.throws(() => readTflite(bytes), (e: unknown) => e instanceof PrunepackError && codes.includes(e.code), label);
  }
});

test('random mutations of a real model only ever raise PrunepackError', () => {
  const good = new Uint8Array(fs.readFileSync(mediapipeModels().find((m) => m.endsWith('face_detection_short_range.tflite'))!));
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  let rejected = 0;
  for (let i = 0; i < 300; i++) {
    const c = good.slice();
    // Corrupt bytes in the flatbuffer tables (the first 16 KiB hold root, vtables and offsets).
    for (let k = 0; k < 4; k++) c[next() % Math.min(c.length, 16384)] = next() & 0xff;
    try {
      const model = readTflite(c);
      for (const w of model.weights) w.denseBytes();
    } catch (e) {
      assert.ok(e instanceof PrunepackError, `mutation ${i}: ${(e as Error).stack}`);
      rejected++;
    }
  }
  assert.ok(rejected > 0, 'some mutations must be rejected');
});

test('CLI: corrupt files give one line on stderr and a non-zero exit code', () => {
  const dir = tempDir('cli-bad');
  const good = fs.readFileSync(repoPath('samples', 'cnn-synthetic-80.tflite'));
  const files: Record<string, Uint8Array> = {
    'truncated.tflite': good.subarray(0, 4000),
    'root.tflite': (() => { const c = Buffer.from(good); c.writeUInt32LE(0x7ffffff0, 0); return c; })(),
    'random.bin': (() => { const r = new Uint8Array(4096); let s = 1; for (let i = 0; i < r.length; i++) r[i] = (s = (s * 48271) % 2147483647) & 0xff; return r; })(),
  };
  for (const [name, bytes] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    const r = spawnSync(process.execPath, [repoPath('dist/src/cli/bin.js'), 'inspect', file], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, name);
    assert.equal(r.stdout, '', name);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${name}: ${r.stderr}`);
    assert.match(lines[0]!, /^prunepack: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('CLI: inspect prints the weight table and --json parses', () => {
  const sample = repoPath('samples', 'cnn-synthetic-80.tflite');
  const text = spawnSync(process.execPath, [repoPath('dist/src/cli/bin.js'), 'inspect', sample], { encoding: 'utf8' });
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /dense1\/weights\s+FULLY_CONNECTED:1\s+\[64,2048\]\s+float32\s+524,288\s+80\.0%\s+no/);
  const json = spawnSync(process.execPath, [repoPath('dist/src/cli/bin.js'), 'inspect', sample, '--json'], { encoding: 'utf8' });
  const report = JSON.parse(json.stdout);
  assert.equal(report.schema, 'prunepack.inspect/1');
  assert.equal(report.format, 'tflite');
  const dense1 = report.weights.find((w: { name: string }) => w.name === 'dense1/weights');
  assert.equal(dense1.zeros, Math.round(64 * 2048 * 0.8));
});

test('CLI: convert --to tflite writes atomically and never replaces the input', () => {
  const dir = tempDir('cli-convert');
  const input = path.join(dir, 'in.tflite');
  fs.copyFileSync(repoPath('samples', 'cnn-synthetic-80.tflite'), input);
  const cli = (...args: string[]) => spawnSync(process.execPath, [repoPath('dist/src/cli/bin.js'), ...args], { encoding: 'utf8' });
  const same = cli('convert', input, '--to', 'tflite', '-o', input);
  assert.equal(same.status, 2);
  const ok = cli('convert', input, '--to', 'tflite', '-o', path.join(dir, 'out.tflite'));
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['in.tflite', 'out.tflite']);
  const exists = cli('convert', input, '--to', 'tflite', '-o', path.join(dir, 'out.tflite'));
  assert.equal(exists.status, 2);
  fs.rmSync(dir, { recursive: true, force: true });
});
