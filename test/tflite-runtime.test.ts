/**
 * The TFLite runtime harness against real models in real WebAssembly TFLite runtimes.
 * Run: npx tsc -p . && node --test dist/test/tflite-runtime.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as flatbuffers from 'flatbuffers';
import * as tfl from '../schemas/generated/tflite/tflite_generated.js';
import { PrunepackError } from '../src/errors.js';
import {
  DEFAULT_ENGINE, ENGINE_NAMES, compareOutputs, deterministicInputs, loadTfliteRuntime, mulberry32,
  type EngineName, type TensorSpec, type TfliteSession, type TypedArray,
} from '../src/verify/tflite-runtime.js';

/** Compiled to dist/test/, so the repo root is two levels up. */
function nodeModule(relative: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../../node_modules/${relative}`, import.meta.url)));
}

const MODELS = {
  faceShort: '@mediapipe/face_detection/face_detection_short_range.tflite',
  faceSparse: '@mediapipe/face_detection/face_detection_full_range_sparse.tflite',
  handLite: '@mediapipe/hands/hand_landmark_lite.tflite',
  selfie: '@mediapipe/selfie_segmentation/selfie_segmentation.tflite',
} as const;

const VIEW: Record<string, string> = {
  float32: 'Float32Array', int32: 'Int32Array', uint8: 'Uint8Array', int8: 'Int8Array', float16: 'Uint16Array',
};

function count(spec: TensorSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1);
}

function assertRuntimeError(e: unknown, pattern?: RegExp): true {
  assert.ok(e instanceof PrunepackError, `expected PrunepackError, got ${String(e)}`);
  assert.equal(e.code, 'RUNTIME');
  if (pattern) assert.match(e.message, pattern);
  return true;
}

function assertFiniteAndShaped(session: TfliteSession, outputs: TypedArray[]): void {
  const specs = session.outputs();
  assert.equal(outputs.length, specs.length);
  specs.forEach((spec, i) => {
    const out = outputs[i]!;
    assert.ok(spec.shape.every((d) => Number.isInteger(d) && d > 0), `static output shape ${spec.shape}`);
    assert.equal(out.length, count(spec), `output ${spec.name} length vs shape [${spec.shape}]`);
    if (VIEW[spec.dtype]) assert.equal(out.constructor.name, VIEW[spec.dtype]);
    for (let j = 0; j < out.length; j++) {
      if (!Number.isFinite(Number(out[j]))) assert.fail(`output ${spec.name}[${j}] is ${out[j]}`);
    }
  });
}

/** Counts DENSIFY operators and sparse tensors with the project's generated TFLite schema. */
function sparseStats(bytes: Uint8Array): { densify: number; sparseTensors: number; float16Sparse: number } {
  const model = tfl.Model.getRootAsModel(new flatbuffers.ByteBuffer(bytes)).unpack();
  const densifyCodes = new Set(model.operatorCodes.flatMap((c, i) => (c.builtinCode === tfl.BuiltinOperator.DENSIFY ? [i] : [])));
  let densify = 0;
  let sparseTensors = 0;
  let float16Sparse = 0;
  for (const sg of model.subgraphs) {
    densify += sg.operators.filter((op) => densifyCodes.has(op.opcodeIndex)).length;
    for (const t of sg.tensors) {
      if (t.sparsity) {
        sparseTensors++;
        if (t.type === tfl.TensorType.FLOAT16) float16Sparse++;
      }
    }
  }
  return { densify, sparseTensors, float16Sparse };
}

describe('loadTfliteRuntime', () => {
  test('initialises once per process and reports the runtime package', async () => {
    const a = await loadTfliteRuntime();
    const b = await loadTfliteRuntime(DEFAULT_ENGINE);
    assert.equal(a, b, 'cached instance');
    assert.equal(a.name, 'litert');
    assert.match(a.version, /^@litertjs\/core \d+\.\d+\.\d+/);
    assert.ok(a.initMs > 0 && a.initMs < 60_000, `initMs ${a.initMs}`);
  });

  test('rejects an unknown engine name', async () => {
    await assert.rejects(loadTfliteRuntime('onnx' as EngineName), (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
  });
});

describe(`real models in the default engine (${DEFAULT_ENGINE})`, () => {
  for (const [key, file] of Object.entries(MODELS)) {
    test(`${file}: deterministic, finite, declared shapes, seed-sensitive`, async () => {
      const engine = await loadTfliteRuntime();
      const session = await engine.load(nodeModule(file));
      try {
        const inputs = session.inputs();
        assert.ok(inputs.length >= 1);
        for (const spec of inputs) assert.equal(spec.dtype, 'float32', `${spec.name} dtype`);
        const x1 = deterministicInputs(inputs, 1);
        const first = await session.run(x1);
        const second = await session.run(deterministicInputs(inputs, 1));
        assertFiniteAndShaped(session, first);
        assertFiniteAndShaped(session, second);
        const same = compareOutputs(first, second);
        assert.ok(same.every((d) => d.bitIdentical && d.maxAbsDiff === 0), JSON.stringify(same));

        const other = await session.run(deterministicInputs(inputs, 2));
        const diff = compareOutputs(first, other);
        assert.ok(diff.some((d) => !d.bitIdentical && d.maxAbsDiff > 0), `seeds 1 and 2 gave the same outputs: ${JSON.stringify(diff)}`);
        // the run did not modify the caller's input arrays
        assert.deepEqual(x1, deterministicInputs(inputs, 1));
        if (key === 'faceSparse') {
          // prove this is the sparse model: DENSIFY ops fed by float16 sparse constants
          const stats = sparseStats(nodeModule(file));
          assert.ok(stats.densify > 0 && stats.float16Sparse > 0, JSON.stringify(stats));
        }
      } finally {
        session.dispose();
      }
      assert.equal(session.disposed, true);
      session.dispose(); // idempotent
      await assert.rejects(session.run([]), (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
    });
  }
});

describe('refusals are PrunepackError RUNTIME, never a crash or hang', () => {
  test('garbage bytes', async () => {
    const engine = await loadTfliteRuntime();
    const garbage = new Uint8Array(4096);
    const rand = mulberry32(7);
    for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(rand() * 256);
    await assert.rejects(engine.load(garbage), (e) => assertRuntimeError(e, /Failed to load model/));
    await assert.rejects(engine.load(new Uint8Array(0)), (e) => assertRuntimeError(e));
    // the engine is still usable afterwards
    const session = await engine.load(nodeModule(MODELS.faceShort));
    session.dispose();
  });

  test('a truncated real model', async () => {
    const engine = await loadTfliteRuntime();
    const bytes = nodeModule(MODELS.handLite);
    await assert.rejects(engine.load(bytes.slice(0, bytes.length >> 1)), (e) => assertRuntimeError(e));
  });

  test('a model that aborts the runtime: error, then a fresh instance on the next loadTfliteRuntime()', async () => {
    const engine = await loadTfliteRuntime();
    // a well-formed but empty Model table: LiteRT 2.5.3 aborts (Span::at bounds check)
    const empty = Uint8Array.from([8, 0, 0, 0, 0x54, 0x46, 0x4c, 0x33, 0, 0, 0, 0]);
    let aborted = false;
    await assert.rejects(engine.load(empty), (e) => {
      assertRuntimeError(e);
      aborted = /Aborted/.test((e as Error).message);
      return true;
    });
    const next = await loadTfliteRuntime();
    if (aborted) assert.notEqual(next, engine, 'an aborted engine is replaced');
    const session = await next.load(nodeModule(MODELS.faceShort));
    const out = await session.run(deterministicInputs(session.inputs(), 1));
    assertFiniteAndShaped(session, out);
    session.dispose();
    assert.equal(process.exitCode, undefined, 'the runtime did not set process.exitCode');
  });

  test('wrong inputs are INVALID_ARGUMENT', async () => {
    const engine = await loadTfliteRuntime();
    const session = await engine.load(nodeModule(MODELS.faceShort));
    try {
      const isInvalid = (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT';
      await assert.rejects(session.run([]), isInvalid);
      await assert.rejects(session.run([new Float32Array(3)]), isInvalid);
      await assert.rejects(session.run([new Int32Array(count(session.inputs()[0]!))]), isInvalid);
    } finally {
      session.dispose();
    }
  });
});

describe('memory', () => {
  test('load/run/dispose many times does not grow wasm memory', async () => {
    const engine = await loadTfliteRuntime();
    const bytes = nodeModule(MODELS.faceShort);
    const cycle = async (seed: number) => {
      const session = await engine.load(bytes);
      await session.run(deterministicInputs(session.inputs(), seed));
      session.dispose();
      await assert.rejects(engine.load(new Uint8Array(2048).fill(seed)));
    };
    for (let i = 0; i < 4; i++) await cycle(i);
    const warm = engine.memoryBytes();
    for (let i = 0; i < 20; i++) await cycle(100 + i);
    // without dispose() each cycle leaves several MB behind (checked by hand: ~10 MB per cycle)
    assert.ok(engine.memoryBytes() - warm <= 1 << 20, `wasm memory grew from ${warm} to ${engine.memoryBytes()}`);
  });
});

describe('deterministicInputs and compareOutputs', () => {
  const specs: TensorSpec[] = [
    { name: 'f', dtype: 'float32', shape: [2, 50] },
    { name: 'q', dtype: 'int8', shape: [300] },
    { name: 'u', dtype: 'uint8', shape: [300] },
    { name: 'i', dtype: 'int32', shape: [10] },
    { name: 'h', dtype: 'float16', shape: [10] },
  ];

  test('reproducible, seed-dependent, in range, typed by dtype', () => {
    const a = deterministicInputs(specs, 42);
    const b = deterministicInputs(specs, 42);
    const c = deterministicInputs(specs, 43);
    assert.deepEqual(a, b);
    assert.ok(compareOutputs(a, c).every((d) => !d.bitIdentical));
    assert.deepEqual(a.map((x) => x.constructor.name), ['Float32Array', 'Int8Array', 'Uint8Array', 'Int32Array', 'Uint16Array']);
    assert.equal(a[0]!.length, 100);
    for (const v of a[0] as Float32Array) assert.ok(v >= -1 && v <= 1);
    const q = a[1] as Int8Array;
    assert.ok(Math.min(...q) < -64 && Math.max(...q) > 64, 'int8 covers its range');
    const u = a[2] as Uint8Array;
    assert.ok(Math.min(...u) < 64 && Math.max(...u) > 192, 'uint8 covers its range');
    // adding an input does not change the others
    assert.deepEqual(deterministicInputs(specs.slice(0, 2), 42), a.slice(0, 2));
  });

  test('compareOutputs reports abs/rel differences and bit identity', () => {
    const [d0, d1, d2, d3] = compareOutputs(
      [Float32Array.from([1, 2, NaN]), Float32Array.from([1, 2]), Int8Array.from([1, 2]), Float32Array.from([0, -0])],
      [Float32Array.from([1, 2.5, NaN]), Float32Array.from([1, 2, 3]), Int8Array.from([1, 2]), Float32Array.from([0, 0])],
    );
    assert.deepEqual(d0, { maxAbsDiff: 0.5, maxRelDiff: 0.2, bitIdentical: false });
    assert.deepEqual(d1, { maxAbsDiff: Infinity, maxRelDiff: Infinity, bitIdentical: false });
    assert.deepEqual(d2, { maxAbsDiff: 0, maxRelDiff: 0, bitIdentical: true });
    assert.deepEqual(d3, { maxAbsDiff: 0, maxRelDiff: 0, bitIdentical: false }, '-0 and 0 are equal but not the same bits');
    // float16 outputs (raw bits) compare as floats when the dtype is given: 1.0 vs 1.5
    const [h] = compareOutputs([Uint16Array.from([0x3c00])], [Uint16Array.from([0x3e00])], ['float16']);
    assert.equal(h!.maxAbsDiff, 0.5);
    assert.throws(() => compareOutputs([new Float32Array(1)], []), PrunepackError);
  });
});

describe('second engine: tfjs-tflite', () => {
  test('agrees with LiteRT on the models it supports (close, not bit-identical)', async () => {
    const litert = await loadTfliteRuntime('litert');
    const tfjs = await loadTfliteRuntime('tfjs-tflite');
    assert.equal(tfjs.name, 'tfjs-tflite');
    assert.ok(ENGINE_NAMES.includes(tfjs.name));
    for (const file of [MODELS.faceShort, MODELS.faceSparse, MODELS.handLite]) {
      const bytes = nodeModule(file);
      const a = await litert.load(bytes);
      const b = await tfjs.load(bytes);
      try {
        assert.deepEqual(b.inputs().map((s) => [s.dtype, s.shape]), a.inputs().map((s) => [s.dtype, s.shape]));
        const x = deterministicInputs(a.inputs(), 5);
        const ya = await a.run(x);
        const yb = await b.run(x);
        assertFiniteAndShaped(b, yb);
        assertFiniteAndShaped(b, await b.run(x));
        assert.ok(compareOutputs(yb, await b.run(x)).every((d) => d.bitIdentical), 'tfjs-tflite is deterministic');
        compareOutputs(ya, yb).forEach((d, i) => {
          const scale = Math.max(1, ...Array.from(ya[i] as Float32Array, Math.abs));
          assert.ok(d.maxAbsDiff <= 1e-3 * scale, `${file} output ${i}: ${JSON.stringify(d)}`);
        });
      } finally {
        a.dispose();
        b.dispose();
      }
    }
  });

  test('refuses a MediaPipe custom op with the runtime message included', async () => {
    const tfjs = await loadTfliteRuntime('tfjs-tflite');
    await assert.rejects(tfjs.load(nodeModule(MODELS.selfie)), (e) => assertRuntimeError(e, /Convolution2DTransposeBias/));
    await assert.rejects(tfjs.load(new Uint8Array(512).fill(3)), (e) => assertRuntimeError(e));
  });
});

// Small synthetic models written with the project's generated TFLite schema: y = W x + b, W 4x8
// half zero. They pin down how the runtimes treat sparse FULLY_CONNECTED weights.
describe('sparse FULLY_CONNECTED weights (synthetic models)', () => {
  const O = 4;
  const I = 8;
  const W = new Float32Array(O * I);
  for (let r = 0; r < O; r++) {
    for (let c = 0; c < I; c++) W[r * I + c] = (r + (c >> 2)) % 2 === 0 ? (((r * 8 + c) % 7) - 3) * 0.25 + 0.1 : 0;
  }
  const B = Float32Array.from([0.5, -0.25, 1, 0]);
  const X = Float32Array.from({ length: I }, (_, i) => (i - 3.5) / 4);
  const expected = Float32Array.from({ length: O }, (_, r) => {
    let s = B[r]!;
    for (let c = 0; c < I; c++) s += W[r * I + c]! * X[c]!;
    return s;
  });
  const bytesOf = (a: Float32Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

  /** CSR over columns (random sparsity) or 1x4 blocks, rows dense. */
  function sparse(block: boolean): { values: Float32Array; sparsity: tfl.SparsityParametersT } {
    const segments = [0];
    const indices: number[] = [];
    const values: number[] = [];
    const width = block ? 4 : 1;
    for (let r = 0; r < O; r++) {
      for (let c = 0; c < I / width; c++) {
        const chunk = W.slice(r * I + c * width, r * I + (c + 1) * width);
        if (chunk.some((v) => v !== 0)) { indices.push(c); values.push(...chunk); }
      }
      segments.push(indices.length);
    }
    const dims = [
      new tfl.DimensionMetadataT(tfl.DimensionType.DENSE, O),
      new tfl.DimensionMetadataT(tfl.DimensionType.SPARSE_CSR, 0,
        tfl.SparseIndexVector.Int32Vector, new tfl.Int32VectorT(segments),
        tfl.SparseIndexVector.Int32Vector, new tfl.Int32VectorT(indices)),
    ];
    if (block) dims.push(new tfl.DimensionMetadataT(tfl.DimensionType.DENSE, 4));
    return {
      values: Float32Array.from(values),
      sparsity: new tfl.SparsityParametersT(block ? [0, 1, 2] : [0, 1], block ? [1] : [], dims),
    };
  }

  function fcModel(opts: { fcVersion: number; block?: boolean; sparseWeights?: boolean; densify?: boolean; customOp?: string }): Uint8Array {
    const sp = opts.sparseWeights ? sparse(opts.block ?? false) : undefined;
    const tensors = [
      new tfl.TensorT([1, I], tfl.TensorType.FLOAT32, 0, 'x'),
      new tfl.TensorT([O, I], tfl.TensorType.FLOAT32, 1, 'w', null, false, sp?.sparsity ?? null),
      new tfl.TensorT([O], tfl.TensorType.FLOAT32, 2, 'b'),
      new tfl.TensorT([1, O], tfl.TensorType.FLOAT32, 0, 'y'),
    ];
    const codes: tfl.OperatorCodeT[] = [];
    const ops: tfl.OperatorT[] = [];
    const op = (code: tfl.OperatorCodeT, inputs: number[], outputs: number[], type = tfl.BuiltinOptions.NONE, options: tfl.FullyConnectedOptionsT | tfl.DensifyOptionsT | null = null) => {
      codes.push(code);
      const o = new tfl.OperatorT(codes.length - 1, inputs, outputs, type, options);
      o.customOptions = []; // (the object API writes an empty custom_options vector either way)
      ops.push(o);
    };
    let weights = 1;
    if (opts.densify) {
      tensors.push(new tfl.TensorT([O, I], tfl.TensorType.FLOAT32, 0, 'w_dense'));
      op(new tfl.OperatorCodeT(tfl.BuiltinOperator.DENSIFY, null, 1, tfl.BuiltinOperator.DENSIFY), [1], [4], tfl.BuiltinOptions.DensifyOptions, new tfl.DensifyOptionsT());
      weights = 4;
    }
    if (opts.customOp) {
      op(new tfl.OperatorCodeT(tfl.BuiltinOperator.CUSTOM, opts.customOp, 1, tfl.BuiltinOperator.CUSTOM), [0], [3]);
    } else {
      op(new tfl.OperatorCodeT(tfl.BuiltinOperator.FULLY_CONNECTED, null, opts.fcVersion, tfl.BuiltinOperator.FULLY_CONNECTED),
        [0, weights, 2], [3], tfl.BuiltinOptions.FullyConnectedOptions, new tfl.FullyConnectedOptionsT());
    }
    const buffers = [new tfl.BufferT(), new tfl.BufferT(bytesOf(sp ? sp.values : W)), new tfl.BufferT(bytesOf(B))];
    const model = new tfl.ModelT(3, codes, [new tfl.SubGraphT(tensors, [0], [3], ops, 'main')], 'prunepack test', buffers);
    const builder = new flatbuffers.Builder(1024);
    tfl.Model.finishModelBuffer(builder, model.pack(builder));
    return builder.asUint8Array().slice();
  }

  async function runFc(engine: EngineName, bytes: Uint8Array): Promise<Float32Array> {
    const session = await (await loadTfliteRuntime(engine)).load(bytes);
    try {
      return (await session.run([X]))[0] as Float32Array;
    } finally {
      session.dispose();
    }
  }

  for (const engine of ENGINE_NAMES) {
    test(`${engine}: FULLY_CONNECTED v8 runs CSR and 1x4-block sparse float32 weights correctly`, async () => {
      for (const block of [false, true]) {
        const y = await runFc(engine, fcModel({ fcVersion: 8, sparseWeights: true, block }));
        const [d] = compareOutputs([y], [expected]);
        assert.ok(d!.maxAbsDiff < 1e-6, `${block ? '1x4' : 'CSR'}: ${Array.from(y)} vs ${Array.from(expected)}`);
      }
    });

    test(`${engine}: DENSIFY feeding a dense FULLY_CONNECTED runs correctly`, async () => {
      for (const block of [false, true]) {
        const y = await runFc(engine, fcModel({ fcVersion: 1, sparseWeights: true, block, densify: true }));
        assert.ok(compareOutputs([y], [expected])[0]!.maxAbsDiff < 1e-6, `${Array.from(y)}`);
      }
    });

    test(`${engine}: sparse weights under FULLY_CONNECTED v1 are NOT refused but give wrong results`, async () => {
      // XNNPACK declines exactly version 8; any other version is delegated and reads the
      // compressed buffer as dense. A converter must write version 8 (the verifier catches it).
      const y = await runFc(engine, fcModel({ fcVersion: 1, sparseWeights: true }));
      assert.ok(!(compareOutputs([y], [expected])[0]!.maxAbsDiff < 1e-3), `unexpectedly correct: ${Array.from(y)}`);
    });

    test(`${engine}: unknown op versions and unresolved custom ops are RUNTIME errors`, async () => {
      await assert.rejects(runFc(engine, fcModel({ fcVersion: 99 })), (e) => assertRuntimeError(e, /FULLY_CONNECTED' version '99'/));
      // LiteRT's compile step reports success here and only logs the failure; the harness must not
      // hand back uninitialised outputs
      await assert.rejects(runFc(engine, fcModel({ fcVersion: 1, customOp: 'NoSuchOpForPrunepack' })),
        (e) => assertRuntimeError(e, /NoSuchOpForPrunepack/));
    });
  }
});
