/**
 * `convert --to tflite-sparse --optimize size|balanced|latency --runtime litert|tfjs-tflite`: the
 * planner's choices follow the measured cost table (converters/tflite/latency.ts), the three goals
 * order the file sizes, every output is equivalent to the dense model in the real runtimes, and
 * the XNNPACK sparse-mode report agrees with what the runtimes do. No timing assertions: latency
 * itself is measured by `npm run bench -- latency` (docs/performance.md).
 * Run: npx tsc -p . && node --test dist/test/tflite-latency.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BuiltinOperator } from '../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../schemas/generated/tflite/tflite/builtin-options.js';
import { TensorType } from '../schemas/generated/tflite/tflite/tensor-type.js';
import { FullyConnectedOptionsT } from '../schemas/generated/tflite/tflite/fully-connected-options.js';
import { readTflite, readTfliteDocument } from '../converters/tflite/read.js';
import { writeTflite } from '../converters/tflite/write.js';
import { TfliteGraphBuilder } from '../converters/tflite/graph-builder.js';
import { densifyTfliteDocument } from '../converters/tflite/densify.js';
import { planSparseTflite, type SparsePlan } from '../converters/tflite/sparse-plan.js';
import { createRuntimeCheck, sparsifyTflite, sparsifyTfliteChecked, type RuntimeComparison } from '../converters/tflite/sparse-write.js';
import {
  DENSE_PREDICTION, OPTIMIZE_GOALS, RUNTIME_PROFILES, chooseCandidate, interpolateRate, measureLatency, nativeEncodingOf, notSlowerThanDense,
  predictDensify, predictNative, registerRuntimeProfile, runtimeProfile, runtimeProfileNames, type OptimizeGoal,
} from '../converters/tflite/latency.js';
import { ENGINE_NAMES, loadTfliteRuntime, type EngineName } from '../src/verify/tflite-runtime.js';
import { pruneModel, writeModel } from '../src/index.js';
import { buildCnnSample, seededRandom } from '../samples/build-samples.js';
import { mlp } from '../bench/official-comparison.js';
import { repoPath, tempDir } from './helpers.js';

const read = (file: string) => new Uint8Array(fs.readFileSync(file));
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const MEDIAPIPE = (p: string) => repoPath('node_modules', '@mediapipe', p);

function pruned(bytes: Uint8Array, sparsity: number, block?: [number, number]): Uint8Array {
  return writeModel(pruneModel(readTflite(bytes), { sparsity, ...(block ? { block } : {}) }).model, 'tflite');
}

/** int8 FULLY_CONNECTED, symmetric weights, 85% of the 1x16 blocks empty. */
function int8FullyConnected(): Uint8Array {
  const random = seededRandom(5);
  const [I, O] = [512, 256];
  const weights = new Int8Array(O * I);
  for (let o = 0; o < O; o++) {
    for (let b = 0; b < I / 16; b++) {
      if (random() < 0.85) continue;
      for (let k = 0; k < 16; k++) weights[o * I + b * 16 + k] = Math.round((random() * 2 - 1) * 127);
    }
  }
  const g = new TfliteGraphBuilder();
  const x = g.tensor('x', TensorType.INT8, [1, I], { scale: [0.02], zeroPoint: [0] });
  const w = g.constant('fc/weights', TensorType.INT8, [O, I], bytesOf(weights), { scale: [0.004], zeroPoint: [0] });
  const bias = g.constant('fc/bias', TensorType.INT32, [O], bytesOf(new Int32Array(O)), { scale: [0.00008], zeroPoint: [0] });
  const y = g.tensor('y', TensorType.INT8, [1, O], { scale: [0.06], zeroPoint: [0] });
  g.operator(BuiltinOperator.FULLY_CONNECTED, 4, [x, w, bias], [y], BuiltinOptions.FullyConnectedOptions, new FullyConnectedOptionsT());
  return writeTflite(g.finish([x], [y], 'int8 FC'));
}

interface Case { name: string; build: () => Uint8Array; engines: readonly EngineName[] }

const googleDense = () => writeTflite(densifyTfliteDocument(readTfliteDocument(read(MEDIAPIPE('face_detection/face_detection_full_range_sparse.tflite')))).doc);

const CASES: Case[] = [
  { name: 'CNN sample 80%', build: () => buildCnnSample(0.8), engines: ENGINE_NAMES },
  { name: 'MLP 90% in 1x4 blocks', build: () => pruned(mlp([784, 512, 256, 10], 202), 0.9, [1, 4]), engines: ENGINE_NAMES },
  { name: 'MLP 90% unstructured', build: () => pruned(mlp([784, 1024, 512, 10], 203), 0.9), engines: ENGINE_NAMES },
  { name: 'int8 FC, 1x16 blocks', build: int8FullyConnected, engines: ENGINE_NAMES },
  { name: 'face_detection_short_range f16 80%', build: () => pruned(read(MEDIAPIPE('face_detection/face_detection_short_range.tflite')), 0.8), engines: ['litert'] },
  { name: "Google's sparse face detector, densified", build: googleDense, engines: ['litert'] },
];

/** Bit-identical through DENSIFY; within the tolerance (1e-5 relative) where kernels change. */
function assertEquivalent(c: RuntimeComparison, plan: SparsePlan, label: string): void {
  const reordered = plan.entries.some((e) => e.route === 'native') || plan.xnnpack.expected;
  if (!reordered) assert.ok(c.bitIdentical, `${label}: bit-identical through DENSIFY expected (max abs ${c.maxAbsDiff})`);
  else assert.ok(c.bitIdentical || (c.withinTolerance && c.tolerance <= 1e-5), `${label}: max abs ${c.maxAbsDiff}, max rel ${c.maxRelDiff}`);
}

// ---------------------------------------------------------------------------------------------

describe('optimize goals, checked in the runtimes', () => {
  for (const c of CASES) {
    test(`${c.name}: bytes size <= balanced <= latency; every output equivalent to dense`, async () => {
      const dense = c.build();
      for (const engineName of c.engines) {
        const check = await createRuntimeCheck(dense, { engine: await loadTfliteRuntime(engineName) });
        const bytes = new Map<OptimizeGoal, number>();
        for (const goal of OPTIMIZE_GOALS) {
          const result = await sparsifyTfliteChecked(readTfliteDocument(dense), { optimize: goal, runtime: engineName }, check.check);
          assert.equal(result.plan.options.optimize, goal);
          assert.equal(result.plan.options.runtime, engineName);
          bytes.set(goal, result.bytes.length);
          assertEquivalent(await check.compare(result.bytes), result.plan, `${c.name} ${engineName} ${goal}`);
          if (goal !== 'size') {
            for (const e of result.plan.entries.filter((x) => x.route === 'native')) {
              assert.ok(e.cost && (goal === 'latency' || notSlowerThanDense({ route: 'native', total: e.bytesAfter, cost: e.cost })), `${e.tensor}: ${e.reason}`);
            }
          }
        }
        assert.ok(bytes.get('size')! <= bytes.get('balanced')!, `${engineName}: size ${bytes.get('size')} > balanced ${bytes.get('balanced')}`);
        assert.ok(bytes.get('balanced')! <= bytes.get('latency')!, `${engineName}: balanced ${bytes.get('balanced')} > latency ${bytes.get('latency')}`);
      }
    });
  }
});

describe('the planner follows the cost table', () => {
  const blockMlp = readTfliteDocument(pruned(mlp([784, 512, 256, 10], 202), 0.9, [1, 4]));
  const unstructuredMlp = readTfliteDocument(pruned(mlp([784, 1024, 512, 10], 203), 0.9));
  const cnn = readTfliteDocument(buildCnnSample(0.8));

  test('size is what the planner always did (no optimize option = size)', () => {
    for (const doc of [blockMlp, unstructuredMlp, cnn]) {
      const before = planSparseTflite(doc);
      const size = planSparseTflite(doc, { optimize: 'size' });
      assert.equal(before.options.optimize, 'size');
      assert.deepEqual(size.entries.map((e) => [e.route, e.encoding, e.bytesAfter]), before.entries.map((e) => [e.route, e.encoding, e.bytesAfter]));
    }
  });

  for (const runtime of ENGINE_NAMES) {
    test(`${runtime}: latency reads the block-pruned MLP's large weights natively in 1x4 blocks`, () => {
      const plan = planSparseTflite(blockMlp, { optimize: 'latency', runtime });
      for (const name of ['dense1/kernel', 'dense2/kernel']) {
        const e = plan.entries.find((x) => x.tensor === name)!;
        assert.equal(e.route, 'native', `${name}: ${e.reason}`);
        assert.equal(e.encoding, 'FC v8 block 1x4');
        assert.ok(e.cost!.upperCost < 1, `${name}: predicted ${e.cost!.relativeCost}`);
        // and the table ranks it first: faster than dense, and than CSR of the same values (the same weight read as CSR)
        const csr = predictNative(runtimeProfile(runtime), 'float32-csr', e.shape[0]!, e.shape[1]!, e.storedValues!)!;
        assert.ok(e.cost!.upperCost <= csr.upperCost, `${name}: 1x4 ${e.cost!.upperCost} vs CSR ${csr.upperCost}`);
      }
    });

    test(`${runtime}: every goal's choice is the table's choice, weight by weight`, () => {
      const profile = runtimeProfile(runtime);
      for (const doc of [blockMlp, unstructuredMlp, cnn]) {
        const size = planSparseTflite(doc, { optimize: 'size', runtime });
        const balanced = planSparseTflite(doc, { optimize: 'balanced', runtime });
        const latency = planSparseTflite(doc, { optimize: 'latency', runtime });
        balanced.entries.forEach((b, i) => {
          const s = size.entries[i]!;
          const l = latency.entries[i]!;
          assert.ok(s.bytesAfter <= b.bytesAfter && b.bytesAfter <= l.bytesAfter, `${b.tensor}: ${s.bytesAfter} / ${b.bytesAfter} / ${l.bytesAfter}`);
          // balanced never picks an encoding the table marks slower than dense
          if (b.route !== 'dense') assert.ok(b.cost && b.cost.upperCost <= 1, `${b.tensor}: ${b.reason}`);
          // a native read of the size plan that balanced rejected is predicted slower (or the runtime cannot run it)
          if (s.route === 'native' && b.route !== 'native') {
            const p = predictNative(profile, nativeEncodingOf(s.dtype, s.layout!.blockSize)!, s.shape[0]!, s.shape[1]!, s.storedValues!);
            assert.ok(!p || p.upperCost > 1 || b.bytesAfter <= s.bytesAfter, `${s.tensor}: ${b.reason}`);
          }
          // latency's choice is never predicted slower than balanced's
          assert.ok((l.cost ?? DENSE_PREDICTION).upperCost <= (b.cost ?? DENSE_PREDICTION).upperCost + 1e-12, `${l.tensor}: ${l.reason} vs ${b.reason}`);
        });
      }
    });

    test(`${runtime}: the MLPs' predicted costs match the kernels' measured shape`, () => {
      // 1x4 with 10% of the blocks stored is predicted faster than dense, random CSR with the same
      // 10% of values slower than 1x4 (per stored value the CSR kernel is about twice as slow)
      const profile = runtimeProfile(runtime);
      const block = predictNative(profile, 'float32-1x4', 512, 784, 0.1 * 512 * 784)!;
      const csr = predictNative(profile, 'float32-csr', 512, 784, 0.1 * 512 * 784)!;
      assert.ok(block.relativeCost < 1 && block.relativeCost < csr.relativeCost, `${block.relativeCost} vs ${csr.relativeCost}`);
      // a 10x64 layer: the operator's fixed cost dominates
      const tiny = predictNative(profile, 'float32-csr', 10, 64, 128)!;
      assert.ok(tiny.relativeCost > 1, `${tiny.relativeCost}`);
    });
  }

  test('chooseCandidate: size / balanced / latency on hand-made candidates', () => {
    const dense = { route: 'dense' as const, total: 1000, cost: DENSE_PREDICTION };
    const slowSmall = { route: 'native' as const, total: 100, cost: { relativeCost: 1.3, upperCost: 1.5, basis: '' } };
    const densify = { route: 'densify' as const, total: 120, cost: { relativeCost: 1, upperCost: 1, basis: '' } };
    const fastLarge = { route: 'native' as const, total: 300, cost: { relativeCost: 0.4, upperCost: 0.5, basis: '' } };
    const all = [dense, slowSmall, densify, fastLarge];
    assert.equal(chooseCandidate('size', all), slowSmall);
    assert.equal(chooseCandidate('balanced', all), densify);
    assert.equal(chooseCandidate('latency', all), fastLarge);
    assert.equal(chooseCandidate('latency', [dense, densify]), densify, 'same speed: the smaller');
    assert.equal(chooseCandidate('size', [dense, { ...densify, total: 1000 }]), dense, 'equal bytes: dense');
    assert.throws(() => chooseCandidate('size', [densify]), /dense candidate/);
  });

  test('profiles: every built-in runtime has a dated, measured table; unknown runtimes are refused; plugins can register', () => {
    assert.deepEqual(RUNTIME_PROFILES.map((p) => p.name).sort(), [...ENGINE_NAMES].sort());
    for (const p of RUNTIME_PROFILES) {
      assert.match(p.measured.date, /^\d{4}-\d{2}-\d{2}$/);
      assert.ok(p.measured.method.length > 40);
      assert.ok(p.denseNsPerElement.float32.length >= 3);
      for (const k of Object.values(p.native)) if (k) assert.ok(k.perValueNs.every(([, ns]) => ns > 0) && k.uncertainty >= 0.1);
      assert.ok(interpolateRate(p.denseNsPerElement.float32, 1 << 20) > 0);
    }
    // LiteRT's XNNPACK refuses int8 DENSIFY outputs: the table says so, and balanced keeps them dense
    assert.equal(predictDensify(runtimeProfile('litert'), 'int8'), null);
    assert.throws(() => planSparseTflite(cnn, { optimize: 'balanced', runtime: 'no-such-runtime' }), /no latency profile/);
    assert.throws(() => planSparseTflite(cnn, { optimize: 'fast' as never }), /unknown optimize goal/);
    registerRuntimeProfile({ ...runtimeProfile('litert'), name: 'test-plugin-runtime', native: { 'float32-csr': null, 'float32-1x4': null, 'int8-1x16': null } });
    assert.ok(runtimeProfileNames().includes('test-plugin-runtime'));
    const plugin = planSparseTflite(blockMlp, { optimize: 'latency', runtime: 'test-plugin-runtime' });
    assert.ok(plugin.entries.every((e) => e.route !== 'native'), 'a runtime without native kernels gets DENSIFY only');
  });
});

describe("XNNPACK's sparse (NCHW) mode: the report and the runtimes agree", () => {
  test("Google's sparse face detector, re-encoded: threshold and pattern met, and the runtimes switch (outputs move off bit-identity)", async () => {
    const dense = googleDense();
    const plan = planSparseTflite(readTfliteDocument(dense), { optimize: 'balanced' });
    assert.ok(plan.xnnpack.qualifies, plan.xnnpack.reason);
    assert.ok(plan.xnnpack.patternFits, plan.xnnpack.reason);
    assert.ok(plan.xnnpack.expected);
    assert.match(plan.xnnpack.reason, /NCHW pattern fits .* DEPTH_TO_SPACE/);
    for (const engine of ENGINE_NAMES) {
      const check = await createRuntimeCheck(dense, { engine: await loadTfliteRuntime(engine) });
      const sparse = sparsifyTflite(readTfliteDocument(dense), { optimize: 'balanced', runtime: engine });
      const c = await check.compare(sparse.bytes);
      assert.ok(!c.bitIdentical && c.withinTolerance, `${engine}: sparse kernels expected (max abs ${c.maxAbsDiff})`);
    }
  });

  test('pruned dense MediaPipe model (SAME padding): threshold met, pattern not, and the runtime keeps dense kernels', async () => {
    const dense = pruned(read(MEDIAPIPE('face_detection/face_detection_full_range.tflite')), 0.9);
    const plan = planSparseTflite(readTfliteDocument(dense), { optimize: 'balanced' });
    assert.ok(plan.xnnpack.qualifies, plan.xnnpack.reason);
    assert.equal(plan.xnnpack.patternFits, false);
    assert.equal(plan.xnnpack.expected, false);
    assert.ok(plan.xnnpack.blockers.some((b) => /SAME padding/.test(b)), plan.xnnpack.blockers.join(' | '));
    const check = await createRuntimeCheck(dense);
    const c = await check.compare(sparsifyTflite(readTfliteDocument(dense), { optimize: 'balanced' }).bytes);
    assert.ok(c.bitIdentical, 'XNNPACK kept its dense kernels');
  });

  test('the CNN sample: 3x3 entry convolution with SAME padding and AVERAGE_POOL_2D: no cluster', () => {
    const plan = planSparseTflite(readTfliteDocument(buildCnnSample(0.8)), { optimize: 'balanced' });
    assert.equal(plan.xnnpack.patternFits, false);
    assert.ok(plan.xnnpack.blockers.length > 0);
    assert.match(plan.xnnpack.reason, /NCHW pattern does not fit/);
  });
});

describe('measureLatency (structure only, no timing assertions)', () => {
  test('interleaved rounds over identical models give one result per model and ratios near the reference', async () => {
    const bytes = buildCnnSample(0.8);
    const m = await measureLatency(await loadTfliteRuntime('litert'), [{ name: 'a', bytes }, { name: 'b', bytes }], { rounds: 5, minRounds: 5, warmup: 1 });
    assert.equal(m.results.length, 2);
    assert.equal(m.rounds, 5);
    assert.equal(m.results[0]!.speedup, 1);
    assert.ok(m.results.every((r) => r.medianMs > 0 && Number.isFinite(r.speedup) && r.speedupQuartiles[0] <= r.speedupQuartiles[1]));
  });

  test('trials reload the sessions (behind spacer models) and share the rounds', async () => {
    const bytes = buildCnnSample(0.8);
    const engine = await loadTfliteRuntime('tfjs-tflite');
    const m = await measureLatency(engine, [{ name: 'a', bytes }, { name: 'b', bytes }], { rounds: 6, minRounds: 6, warmup: 1, trials: 3 });
    assert.equal(m.trials, 3);
    assert.equal(m.rounds, 6);
    assert.ok(m.results.every((r) => r.loadMs > 0 && Number.isFinite(r.speedupP10)));
  });
});

describe('command line', () => {
  const execute = promisify(execFile);
  const cli = repoPath('dist', 'src', 'cli', 'bin.js');

  test('--optimize latency --runtime tfjs-tflite on the block MLP; default balanced; wrong values refused', async () => {
    const dir = tempDir('latency-cli');
    try {
      const model = path.join(dir, 'mlp.tflite');
      fs.writeFileSync(model, pruned(mlp([784, 512, 256, 10], 202), 0.9, [1, 4]));
      const out = path.join(dir, 'mlp.latency.tflite');
      const { stdout } = await execute(process.execPath, [cli, 'convert', model, '--to', 'tflite-sparse', '-o', out, '--optimize', 'latency', '--runtime', 'tfjs-tflite', '--json']);
      const summary = JSON.parse(stdout);
      assert.equal(summary.plan.options.optimize, 'latency');
      assert.equal(summary.plan.options.runtime, 'tfjs-tflite');
      assert.match(summary.runtime.engine, /^tfjs-tflite/);
      const native = summary.plan.entries.filter((e: { route: string }) => e.route === 'native');
      assert.ok(native.length >= 2 && native.every((e: { encoding: string; cost: { relativeCost: number } }) => e.encoding === 'FC v8 block 1x4' && e.cost.relativeCost < 1));
      assert.equal(summary.outputBytes, fs.statSync(out).size);
      const text = (await execute(process.execPath, [cli, 'convert', model, '--to', 'tflite-sparse', '-o', path.join(dir, 'b.tflite')])).stdout;
      assert.match(text, /optimized for balanced in litert \(cost table measured \d{4}-\d{2}-\d{2}\)/);
      await assert.rejects(execute(process.execPath, [cli, 'convert', model, '--to', 'tflite-sparse', '--optimize', 'speed', '-o', path.join(dir, 'c.tflite')]),
        (e: { code: number; stderr: string }) => e.code === 2 && /invalid --optimize/.test(e.stderr));
      await assert.rejects(execute(process.execPath, [cli, 'convert', model, '--to', 'tflite-sparse', '--runtime', 'tflite-micro', '-o', path.join(dir, 'c.tflite')]),
        (e: { code: number; stderr: string }) => e.code === 2 && /invalid --runtime/.test(e.stderr));
      await assert.rejects(execute(process.execPath, [cli, 'convert', model, '--to', 'tflite', '--optimize', 'latency', '-o', path.join(dir, 'd.tflite')]),
        (e: { code: number; stderr: string }) => e.code === 2 && /apply to one target only/.test(e.stderr));
      assert.ok(!fs.existsSync(path.join(dir, 'c.tflite')) && !fs.existsSync(path.join(dir, 'd.tflite')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
