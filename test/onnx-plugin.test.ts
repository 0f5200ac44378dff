/**
 * ONNX plugin: protobuf bounds, every element type in every storage, sparse initializers (both
 * index layouts), Constant sparse_value, subgraph and function weights, metadata kept, and
 * round trips through `onnx` and `onnx-sparse` (tiny models built in code, some run in
 * onnxruntime-node).
 * Run: npx tsc -p . && node --test dist/test/onnx-plugin.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeOnnxModel, float32Bytes, type GraphSpec, type ModelSpec, type TensorStorageSpec } from '../converters/onnx/builder.js';
import { onnxBreakEvenSparsity, planOnnx, readOnnx, writeOnnx, type OnnxWeight } from '../converters/onnx/index.js';
import { ProtoReader, ProtoWriter, concatChunks } from '../converters/onnx/protobuf.js';
import { pruneModel, readModel, writeModel } from '../src/index.js';
import { PrunepackError } from '../src/errors.js';
import { byteLengthOf, elementCount, type DType } from '../src/model/dtype.js';
import type { Model } from '../src/model/types.js';
import { compareOnnxModels } from '../src/verify/onnx-runtime.js';
import { mulberry32 } from '../src/verify/tflite-runtime.js';

const ALL_DTYPES: DType[] = [
  'float32', 'uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'string', 'bool', 'float16', 'float64', 'uint32', 'uint64',
  'complex64', 'complex128', 'bfloat16', 'float8e4m3fn', 'float8e4m3fnuz', 'float8e5m2', 'float8e5m2fnuz', 'uint4', 'int4',
  'float4e2m1', 'float8e8m0', 'uint2', 'int2',
];

/** Deterministic dense bytes with about half the elements zero (sub-byte padding bits zero). */
function denseData(dtype: DType, count: number, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  if (dtype === 'string') {
    const parts: number[] = [];
    for (let i = 0; i < count; i++) {
      const text = rand() < 0.5 ? '' : `s${i}-${Math.floor(rand() * 1000)}`;
      parts.push(text.length & 0xff, 0, 0, 0, ...Buffer.from(text));
    }
    return Uint8Array.from(parts);
  }
  const out = new Uint8Array(byteLengthOf(dtype, count));
  const bits = byteLengthOf(dtype, 8);
  if (bits < 8) {
    const per = 8 / bits;
    const width = 8 / per;
    for (let i = 0; i < count; i++) {
      if (rand() < 0.5) continue;
      const v = 1 + Math.floor(rand() * ((1 << width) - 1));
      out[Math.floor(i / per)]! |= v << ((i % per) * width);
    }
    return out;
  }
  const w = out.length / count;
  for (let i = 0; i < count; i++) {
    if (rand() < 0.5) continue;
    if (dtype === 'bool') { out[i] = 1; continue; }
    for (let b = 0; b < w; b++) out[i * w + b] = Math.floor(rand() * 256);
    if (out.subarray(i * w, (i + 1) * w).every((x) => x === 0)) out[i * w] = 1;
  }
  if (dtype === 'float32') {
    const f = new Float32Array(out.buffer);
    for (let i = 0; i < count; i++) if (f[i] !== 0) f[i] = rand() * 2 - 1;
  }
  return out;
}

function assertError(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PrunepackError, `expected PrunepackError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

function weightsByName(model: Model): Map<string, OnnxWeight> {
  return new Map((model.weights as OnnxWeight[]).map((w) => [w.name, w]));
}

/** Every weight of `a` is in `b` with the same dtype, shape and dense bytes. */
function assertSameWeights(a: Model, b: Model): void {
  const other = weightsByName(b);
  const problems: string[] = [];
  for (const w of a.weights) {
    const o = other.get(w.name);
    if (!o) { problems.push(`${w.name}: missing`); continue; }
    if (o.dtype !== w.dtype || o.shape.join() !== w.shape.join()) problems.push(`${w.name}: ${w.dtype}[${w.shape}] vs ${o.dtype}[${o.shape}]`);
    else if (Buffer.compare(w.denseBytes(), o.denseBytes()) !== 0) problems.push(`${w.name}: dense bytes differ`);
  }
  assert.deepEqual(problems, []);
}

// ---------------------------------------------------------------------------------------------

describe('protobuf reader bounds', () => {
  test('a varint longer than 10 bytes is corrupt', () => {
    const bytes = Uint8Array.from([0x08, ...new Array(10).fill(0xff), 0x01]);
    assertError(() => { const r = new ProtoReader(bytes, 0, bytes.length, 'test'); r.next(); r.uint(); }, 'CORRUPT', /longer than 10 bytes/);
  });

  test('a length above 2^53 is corrupt, not a huge allocation', () => {
    const bytes = Uint8Array.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assertError(() => readOnnx(bytes), 'CORRUPT', /2\^53/);
  });

  test('a nested length is checked against its enclosing message, not the file', () => {
    // graph (7) of 4 bytes holding a node (1) that claims 10 bytes; the file has 20 more bytes after it.
    const inner = Uint8Array.from([0x0a, 0x0a, 0x0a, 0x00]);
    const bytes = Uint8Array.from([0x08, 0x08, 0x3a, inner.length, ...inner, 0x72, 18, ...new Array(18).fill(0x20)]);
    assertError(() => readOnnx(bytes), 'CORRUPT', /longer than the bytes left in its message/);
  });

  test('a file cut short is TRUNCATED', () => {
    const model = encodeOnnxModel(matmulModel(13, 'raw'));
    assertError(() => readOnnx(model.subarray(0, model.length - 7)), 'TRUNCATED');
  });

  test('group wire types are refused', () => {
    assertError(() => readOnnx(Uint8Array.from([0x08, 0x08, 0x3b, 0x3c])), 'CORRUPT', /wire type 3/);
  });

  test('a protobuf of 2 GiB or more is refused with a message about external data', () => {
    const model = encodeOnnxModel(matmulModel(13, 'raw'));
    assertError(() => readOnnx(model, { fileSize: 2 ** 31 }), 'UNSUPPORTED', /external data/);
  });

  test('raw_data stays a view into the input', () => {
    const bytes = encodeOnnxModel(matmulModel(13, 'raw'));
    const w = readOnnx(bytes).weights[0]!;
    assert.equal(w.bytes.buffer, bytes.buffer);
    assert.equal(w.denseBytes().buffer, bytes.buffer);
  });

  test('writer and reader agree on negative int64 and large varints', () => {
    const w = new ProtoWriter().int64Field(1, -5).int64Field(2, 2 ** 53 - 1).uintField(3, 300);
    const bytes = concatChunks(w.finish());
    const r = new ProtoReader(bytes, 0, bytes.length, 'test');
    const got: number[] = [];
    while (r.next()) got.push(r.int64());
    assert.deepEqual(got, [-5, 2 ** 53 - 1, 300]);
  });
});

// ---------------------------------------------------------------------------------------------

function matmulModel(opset: number, storage: TensorStorageSpec, asConstant = false, zeros = 0.9): ModelSpec {
  const rand = mulberry32(7);
  const w = Float32Array.from({ length: 64 * 32 }, () => (rand() < zeros ? 0 : rand() * 2 - 1));
  const tensor = { name: 'W', dtype: 'float32' as const, dims: [64, 32], data: new Uint8Array(w.buffer), storage };
  return {
    irVersion: 8, opsets: [{ domain: '', version: opset }], producerName: 'prunepack-test',
    graph: {
      name: 'mm',
      nodes: [
        ...(asConstant ? [{ opType: 'Constant', outputs: ['W'], attributes: [{ name: 'value', tensor: { ...tensor, name: undefined } }] }] : []),
        { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'], name: 'mm' },
      ],
      initializers: asConstant ? [] : [tensor],
      inputs: [{ name: 'x', dtype: 'float32', dims: [2, 64] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [2, 32] }],
    },
  };
}

describe('every element type', () => {
  const count = 15; // odd: exercises sub-byte padding
  const storages: Array<Exclude<TensorStorageSpec, object>> = ['raw', 'typed', 'typed-unpacked'];
  const expected = new Map<string, { dtype: DType; data: Uint8Array }>();
  const initializers = ALL_DTYPES.flatMap((dtype, d) => storages.flatMap((storage) => {
    if (dtype === 'string' && storage === 'raw') return [];
    const name = `${dtype}_${storage}`;
    const data = denseData(dtype, count, 100 + d);
    expected.set(name, { dtype, data });
    return [{ name, dtype, dims: [3, 5], data, storage }];
  }));
  const spec: ModelSpec = {
    irVersion: 13, opsets: [{ domain: '', version: 21 }],
    graph: {
      name: 'all_types',
      nodes: initializers.map((t) => ({ opType: 'Identity', inputs: [t.name], outputs: [`${t.name}_out`] })),
      initializers,
      inputs: [], outputs: initializers.map((t) => ({ name: `${t.name}_out`, dtype: t.dtype })),
    },
  };
  const bytes = encodeOnnxModel(spec);

  test('reads dtype, shape, dense bytes and consumer of every tensor', () => {
    const model = readOnnx(bytes);
    assert.equal(model.weights.length, expected.size);
    for (const w of model.weights as OnnxWeight[]) {
      const want = expected.get(w.name)!;
      assert.equal(w.dtype, want.dtype, w.name);
      assert.deepEqual(w.shape, [3, 5]);
      assert.deepEqual(Buffer.from(w.denseBytes()), Buffer.from(want.data), `${w.name} (${w.onnx.storage})`);
      assert.deepEqual(w.consumers.map((c) => [c.op, c.operand, c.subgraph]), [['Identity', 0, 0]]);
    }
  });

  test('onnx target re-emits the file byte for byte', () => {
    assert.equal(Buffer.compare(writeModel(readOnnx(bytes), 'onnx'), bytes), 0);
  });

  test('onnx-sparse -> read -> onnx keeps every value, for every type', () => {
    const model = readOnnx(bytes);
    const sparse = readOnnx(writeOnnx(model, 'onnx-sparse'));
    assertSameWeights(model, sparse);
    const dense = readOnnx(writeOnnx(sparse, 'onnx'));
    assertSameWeights(model, dense);
    assert.ok(dense.weights.every((w) => w.sparsity === undefined));
  });

  test('withWeights replaces values in any storage, and the output has them', () => {
    const model = readOnnx(bytes);
    const replacements = new Map<string, Uint8Array>();
    for (const w of model.weights) if (w.dtype !== 'string') replacements.set(w.name, denseData(w.dtype, count, 999));
    const changed = pruneModel(model, { sparsity: 0 }).model; // exercise the prune path on ONNX too
    assert.equal(changed.weights.length, model.weights.length);
    const replaced = readModel({ bytes }).plugin.withWeights(model, replacements);
    for (const target of ['onnx', 'onnx-sparse']) {
      const back = readOnnx(writeModel(replaced, target));
      for (const [name, data] of replacements) {
        assert.deepEqual(Buffer.from(weightsByName(back).get(name)!.denseBytes()), Buffer.from(data), `${target} ${name}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

function sparseModel(): ModelSpec {
  // Y = X @ A + X @ B + X @ C, A sparse linear, B sparse coordinates (int32, unsorted), C Constant sparse_value.
  const dims = [6, 4];
  const values = (n: number, base: number) => float32Bytes(Array.from({ length: n }, (_, i) => base + i));
  return {
    irVersion: 8, opsets: [{ domain: '', version: 13 }],
    graph: {
      name: 'sparse',
      nodes: [
        { opType: 'Constant', outputs: ['C'], attributes: [{ name: 'sparse_value', sparse: { dtype: 'float32', dims, values: values(3, 10), indices: [1, 8, 23] } }] },
        { opType: 'MatMul', inputs: ['X', 'A'], outputs: ['XA'] },
        { opType: 'MatMul', inputs: ['X', 'B'], outputs: ['XB'] },
        { opType: 'MatMul', inputs: ['X', 'C'], outputs: ['XC'] },
        { opType: 'Add', inputs: ['XA', 'XB'], outputs: ['S'] },
        { opType: 'Add', inputs: ['S', 'XC'], outputs: ['Y'] },
      ],
      sparseInitializers: [
        { name: 'A', dtype: 'float32', dims, values: values(4, 1), indices: [0, 5, 10, 23], layout: 'linear' },
        { name: 'B', dtype: 'float32', dims, values: values(3, -3), indices: [17, 2, 9], layout: 'coordinate', indexType: 'int32' },
      ],
      inputs: [{ name: 'X', dtype: 'float32', dims: [2, 6] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: [2, 4] }],
    },
  };
}

function denseOf(positions: number[], values: number[], count: number): Uint8Array {
  const f = new Float32Array(count);
  positions.forEach((p, i) => { f[p] = values[i]!; });
  return new Uint8Array(f.buffer);
}

describe('sparse tensors', () => {
  const bytes = encodeOnnxModel(sparseModel());

  test('linear and coordinate (int32, unsorted) indices and Constant sparse_value expand to the right dense tensor', () => {
    const model = readOnnx(bytes);
    const w = weightsByName(model);
    assert.deepEqual([...w.keys()].sort(), ['A', 'B', 'C']);
    assert.deepEqual(Buffer.from(w.get('A')!.denseBytes()), Buffer.from(denseOf([0, 5, 10, 23], [1, 2, 3, 4], 24)));
    assert.deepEqual(Buffer.from(w.get('B')!.denseBytes()), Buffer.from(denseOf([17, 2, 9], [-3, -2, -1], 24)));
    assert.deepEqual(Buffer.from(w.get('C')!.denseBytes()), Buffer.from(denseOf([1, 8, 23], [10, 11, 12], 24)));
    assert.equal((w.get('B')!.sparsity as { layout: string }).layout, 'coordinate');
    assert.equal(w.get('C')!.onnx.kind, 'constant-sparse');
    assert.deepEqual(w.get('A')!.consumers.map((c) => [c.op, c.opIndex, c.operand]), [['MatMul', 1, 1]]);
  });

  test('onnx expands every sparse tensor; onnx-sparse canonicalises; both run like the input in onnxruntime', async () => {
    const model = readOnnx(bytes);
    const dense = writeOnnx(model, 'onnx');
    const denseModel = readOnnx(dense);
    assert.ok(denseModel.weights.every((w) => w.sparsity === undefined));
    assertSameWeights(model, denseModel);
    const sparse = writeOnnx(denseModel, 'onnx-sparse');
    const sparseModelRead = readOnnx(sparse);
    assertSameWeights(model, sparseModelRead);
    for (const w of sparseModelRead.weights as OnnxWeight[]) {
      assert.equal(w.onnx.kind, 'constant-sparse', w.name);
      assert.equal((w.sparsity as { layout: string }).layout, 'linear');
    }
    const shapes = { X: [2, 6] };
    for (const candidate of [dense, sparse]) {
      const r = await compareOnnxModels(bytes, candidate, { shapes });
      assert.ok(r.bitIdentical, JSON.stringify(r.outputs));
    }
  });

  test('out-of-range and duplicate indices are corrupt', () => {
    const bad = sparseModel();
    bad.graph.sparseInitializers![0]!.indices = [0, 5, 10, 24];
    assertError(() => readOnnx(encodeOnnxModel(bad)), 'CORRUPT', /out of range/);
    bad.graph.sparseInitializers![0]!.indices = [0, 5, 5, 7];
    assertError(() => readOnnx(encodeOnnxModel(bad)), 'CORRUPT', /duplicate/);
  });
});

/** A model whose sparse initializers declare the given dims (float32), each with one stored value. */
function declaredSparseModel(tensors: Array<{ name: string; dims: number[] }>): ModelSpec {
  return {
    irVersion: 8, opsets: [{ domain: '', version: 13 }],
    graph: {
      name: 'declared',
      nodes: tensors.map((t, i) => ({ opType: 'Identity', inputs: [t.name], outputs: [`y${i}`] })),
      sparseInitializers: tensors.map((t) => ({ name: t.name, dtype: 'float32' as const, dims: t.dims, values: float32Bytes([1]), indices: [7] })),
      inputs: [],
      outputs: tensors.map((t, i) => ({ name: `y${i}`, dtype: 'float32' as const })),
    },
  };
}

/** int64 little-endian bytes. */
function int64Bytes(values: number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
}

/** Opset 9 `Reshape(Scatter(ConstantOfShape([n]), [3], [1.5]), dims)` feeding a MatMul: prunepack's scatter form. */
function scatterModel(dims: number[]): ModelSpec {
  const n = dims.reduce((a, b) => a * b, 1);
  const constant = (output: string, tensor: { dtype: DType; dims: number[]; data: Uint8Array }) => ({ opType: 'Constant', outputs: [output], attributes: [{ name: 'value', tensor }] });
  return {
    irVersion: 4, opsets: [{ domain: '', version: 9 }],
    graph: {
      name: 'scatter',
      nodes: [
        constant('n', { dtype: 'int64', dims: [1], data: int64Bytes([n]) }),
        { opType: 'ConstantOfShape', inputs: ['n'], outputs: ['zeros'] },
        constant('idx', { dtype: 'int64', dims: [1], data: int64Bytes([3]) }),
        constant('vals', { dtype: 'float32', dims: [1], data: float32Bytes([1.5]) }),
        { opType: 'Scatter', inputs: ['zeros', 'idx', 'vals'], outputs: ['flat'], attributes: [{ name: 'axis', int: 0 }] },
        constant('shape', { dtype: 'int64', dims: [dims.length], data: int64Bytes(dims) }),
        { opType: 'Reshape', inputs: ['flat', 'shape'], outputs: ['W'] },
        { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: [1, dims[0]!] }],
      outputs: [{ name: 'y', dtype: 'float32' }],
    },
  };
}

describe('sparse expansion limit (fuzz finding 8)', () => {
  const limitFor = (fileBytes: number) => 64 * 2 ** 20 + 64 * fileBytes;

  test('a sparse initializer declaring 16384 x 16384 float32 (1 GiB) with one value is refused at read', () => {
    const bytes = encodeOnnxModel(declaredSparseModel([{ name: 'huge', dims: [16384, 16384] }]));
    assert.throws(() => readOnnx(bytes), (e: unknown) => {
      assert.ok(e instanceof PrunepackError && e.code === 'UNSUPPORTED', String(e));
      assert.match(e.message, /declare more dense data than prunepack expands/);
      assert.match(e.location ?? '', /sparse_initializer\[0\]/);
      assert.equal(e.expected, `at most ${limitFor(bytes.length)} dense bytes in total (64 MiB + 64 x ${bytes.length} stored bytes)`);
      assert.match(e.found ?? '', /^1073741824 bytes with this tensor \(1073741824 bytes for float32\[16384, 16384\]\)$/);
      assert.match(e.hint ?? '', /damaged or hostile/);
      return true;
    });
  });

  test('the limit counts all sparse tensors of the file together; the one that crosses it is named', () => {
    // 40 MiB each: one fits under 64 MiB + 64 x (a few hundred bytes), two do not.
    const one = encodeOnnxModel(declaredSparseModel([{ name: 'a', dims: [10 * 1024, 1024] }]));
    const model = readOnnx(one);
    assert.equal(model.weights[0]!.denseBytes().length, 40 * 2 ** 20);
    const two = encodeOnnxModel(declaredSparseModel([{ name: 'a', dims: [10 * 1024, 1024] }, { name: 'b', dims: [10 * 1024, 1024] }]));
    assert.throws(() => readOnnx(two), (e: unknown) => {
      assert.ok(e instanceof PrunepackError && e.code === 'UNSUPPORTED', String(e));
      assert.match(e.location ?? '', /sparse_initializer\[1\]/);
      assert.match(e.found ?? '', /^83886080 bytes with this tensor/);
      return true;
    });
  });

  test('one sparse tensor over 2 GiB dense is refused whatever the file size', () => {
    const bytes = encodeOnnxModel(declaredSparseModel([{ name: 'big', dims: [2 ** 29] }]));
    assertError(() => readOnnx(bytes), 'UNSUPPORTED', /dense size over 2 GiB/);
  });

  test('Constant sparse_value is counted too', () => {
    const spec = sparseModel();
    spec.graph.nodes[0] = { opType: 'Constant', outputs: ['C'], attributes: [{ name: 'sparse_value', sparse: { dtype: 'float32', dims: [16384, 16384], values: float32Bytes([1]), indices: [3] } }] };
    assertError(() => readOnnx(encodeOnnxModel(spec)), 'UNSUPPORTED', /declare more dense data/);
  });

  test('a scatter chain declaring more than the limit stays operators (not a weight, never expanded)', () => {
    const small = readOnnx(encodeOnnxModel(scatterModel([64, 32])));
    assert.deepEqual((small.weights as OnnxWeight[]).map((w) => w.onnx.kind), ['scatter']);
    const huge = readOnnx(encodeOnnxModel(scatterModel([16384, 16384])));
    assert.ok((huge.weights as OnnxWeight[]).every((w) => w.onnx.kind === 'constant'), JSON.stringify(huge.weights.map((w) => w.name)));
    assert.equal(huge.operatorCounts.get('Scatter'), 1);
    assert.ok(huge.weights.every((w) => w.denseBytes().length <= 16));
  });
});

// ---------------------------------------------------------------------------------------------

describe('onnx-sparse writer', () => {
  test('opset >= 11: initializer -> Constant sparse_value before its first reader, graph input dropped, runs identically', async () => {
    const spec = matmulModel(13, 'raw');
    spec.graph.inputs.push({ name: 'W', dtype: 'float32', dims: [64, 32] }); // IR < 4 style: initializer listed as input
    const bytes = encodeOnnxModel(spec);
    const model = readOnnx(bytes);
    const out = writeOnnx(model, 'onnx-sparse');
    assert.ok(out.length < bytes.length / 2, `${out.length} vs ${bytes.length}`);
    const plan = planOnnx(model, 'onnx-sparse').plan;
    assert.equal(plan[0]!.encoding, 'sparse-constant');
    const back = readOnnx(out);
    assertSameWeights(model, back);
    const w = back.weights[0] as OnnxWeight;
    assert.equal(w.onnx.kind, 'constant-sparse');
    const doc = back.document as import('../converters/onnx/document.js').OnnxDocument;
    assert.deepEqual(doc.graphs[0]!.nodes.map((n) => n.opType), ['Constant', 'MatMul']);
    assert.deepEqual(doc.graphs[0]!.inputs.map((i) => i.name), ['x']);
    const r = await compareOnnxModels(bytes, out, { shapes: { x: [2, 64] } });
    assert.ok(r.bitIdentical);
  });

  test('opset 9: Constant value -> ConstantOfShape + Scatter + Reshape, read back as one sparse weight, runs identically', async () => {
    const bytes = encodeOnnxModel(matmulModel(9, 'raw', true));
    const model = readOnnx(bytes);
    const out = writeOnnx(model, 'onnx-sparse');
    assert.ok(out.length < bytes.length / 2);
    const back = readOnnx(out);
    assert.equal(back.weights.length, 1);
    const w = back.weights[0] as OnnxWeight;
    assert.equal(w.onnx.kind, 'scatter');
    assert.deepEqual(w.shape, [64, 32]);
    assertSameWeights(model, back);
    assert.equal(planOnnx(back, 'onnx-sparse').plan[0]!.encoding, 'kept');
    const dense = writeOnnx(back, 'onnx');
    const denseBack = readOnnx(dense);
    assert.equal((denseBack.weights[0] as OnnxWeight).onnx.kind, 'constant');
    assert.deepEqual([...denseBack.operatorCounts.keys()].sort(), ['Constant', 'MatMul']);
    for (const candidate of [out, dense]) {
      const r = await compareOnnxModels(bytes, candidate, { shapes: { x: [2, 64] } });
      assert.ok(r.bitIdentical);
    }
  });

  test('a weight stays dense when sparse is not smaller, and opset 8 stays dense', () => {
    const denseish = readOnnx(encodeOnnxModel(matmulModel(13, 'raw', false, 0.1)));
    assert.equal(planOnnx(denseish, 'onnx-sparse').plan[0]!.encoding, 'kept');
    const old = readOnnx(encodeOnnxModel(matmulModel(8, 'raw')));
    const entry = planOnnx(old, 'onnx-sparse').plan[0]!;
    assert.equal(entry.encoding, 'kept');
    assert.match(entry.reason, /opset 8/);
  });

  test('break-even sparsity per dtype is computed from real encodings', () => {
    const f32 = onnxBreakEvenSparsity('float32', 65536);
    const i8 = onnxBreakEvenSparsity('int8', 65536);
    const f16 = onnxBreakEvenSparsity('float16', 65536);
    assert.ok(f32 > 0.3 && f32 < 0.5, String(f32));
    assert.ok(f16 > f32 && i8 > f16, `${f32} ${f16} ${i8}`);
  });
});

// ---------------------------------------------------------------------------------------------

function branch(name: string, scale: number): GraphSpec {
  return {
    name,
    nodes: [
      { opType: 'Constant', outputs: [`${name}_k`], attributes: [{ name: 'value', tensor: { dtype: 'float32', dims: [4, 4], data: float32Bytes(Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? scale * i : 0))) } }] },
      { opType: 'MatMul', inputs: ['x', `${name}_k`], outputs: [`${name}_a`] },
      { opType: 'MatMul', inputs: [`${name}_a`, `${name}_w`], outputs: [`${name}_b`] },
      { opType: 'MatMul', inputs: [`${name}_b`, 'outer'], outputs: [`${name}_out`] },
    ],
    initializers: [{ name: `${name}_w`, dtype: 'float32', dims: [4, 4], data: float32Bytes(Array.from({ length: 16 }, (_, i) => (i % 8 === 0 ? 1 + i : 0))) }],
    inputs: [], outputs: [{ name: `${name}_out`, dtype: 'float32', dims: [1, 4] }],
  };
}

function subgraphModel(): ModelSpec {
  return {
    irVersion: 8, opsets: [{ domain: '', version: 13 }, { domain: 'test.fn', version: 1 }],
    docString: 'model doc', metadata: { author: 'prunepack', purpose: 'subgraphs' },
    graph: {
      name: 'main', docString: 'graph doc',
      nodes: [
        { opType: 'If', inputs: ['cond'], outputs: ['y'], name: 'branchy', attributes: [{ name: 'then_branch', graph: branch('then', 1) }, { name: 'else_branch', graph: branch('else', -1) }] },
        { opType: 'Scale2', domain: 'test.fn', inputs: ['y'], outputs: ['z'] },
      ],
      initializers: [{ name: 'outer', dtype: 'float32', dims: [4, 4], data: float32Bytes(Array.from({ length: 16 }, (_, i) => (i === 0 || i === 10 ? 1 : 0))), docString: 'outer doc', metadata: { k: 'v' } }],
      inputs: [{ name: 'cond', dtype: 'bool', dims: [] }, { name: 'x', dtype: 'float32', dims: [1, 4] }],
      outputs: [{ name: 'z', dtype: 'float32', dims: [1, 4] }],
    },
    functions: [{
      name: 'Scale2', domain: 'test.fn', inputs: ['a'], outputs: ['b'], opsets: [{ domain: '', version: 13 }],
      nodes: [
        { opType: 'Constant', outputs: ['two'], attributes: [{ name: 'value', tensor: { dtype: 'float32', dims: [4], data: float32Bytes([2, 0, 0, 2]) } }] },
        { opType: 'Mul', inputs: ['a', 'two'], outputs: ['b'] },
      ],
    }],
    unknownFields: Uint8Array.from([0xf8, 0x06, 0x2a, 0xfa, 0x06, 0x03, 0x61, 0x62, 0x63]), // field 111 varint 42, field 111 bytes "abc"
  };
}

describe('subgraphs, functions and everything else kept', () => {
  const bytes = encodeOnnxModel(subgraphModel());

  test('weights of If branches, outer-scope readers and functions, with consumers and graph numbers', () => {
    const model = readOnnx(bytes);
    const w = weightsByName(model);
    assert.deepEqual([...w.keys()].sort(), ['else_k', 'else_w', 'outer', 'then_k', 'then_w', 'two']);
    const outer = w.get('outer')!;
    assert.deepEqual(outer.consumers.map((c) => [c.op, c.subgraph, c.operand]), [['MatMul', 1, 1], ['MatMul', 2, 1]]);
    assert.equal(w.get('two')!.onnx.graphLabel, 'function test.fn:Scale2');
    assert.deepEqual(w.get('two')!.consumers.map((c) => [c.op, c.operand]), [['Mul', 1]]);
    assert.equal(model.operatorCounts.get('test.fn:Scale2'), 1);
    assert.equal(model.operatorCounts.get('MatMul'), 6);
  });

  test('round trips keep weights, metadata, doc strings, functions and unknown fields; outputs identical in onnxruntime', async () => {
    const model = readOnnx(bytes);
    assert.equal(Buffer.compare(writeOnnx(model, 'onnx'), bytes), 0);
    const sparse = writeOnnx(model, 'onnx-sparse');
    const sparseRead = readOnnx(sparse);
    assertSameWeights(model, sparseRead);
    const kinds = new Map((sparseRead.weights as OnnxWeight[]).map((x) => [x.name, x.onnx.kind]));
    assert.equal(kinds.get('outer'), 'constant-sparse');
    assert.equal(kinds.get('then_w'), 'constant-sparse');
    assert.equal(kinds.get('then_k'), 'constant-sparse');
    assert.equal(kinds.get('two'), 'constant', 'a 4-element weight is smaller dense');
    const dense = writeOnnx(sparseRead, 'onnx');
    assertSameWeights(model, readOnnx(dense));
    for (const out of [sparse, dense]) {
      const text = Buffer.from(out).toString('latin1');
      for (const s of ['model doc', 'graph doc', 'outer doc', 'author', 'prunepack', 'subgraphs', 'test.fn', 'Scale2']) assert.ok(text.includes(s), s);
      assert.ok(Buffer.from(out).includes(Buffer.from([0xf8, 0x06, 0x2a, 0xfa, 0x06, 0x03, 0x61, 0x62, 0x63])), 'unknown fields kept');
    }
    for (const condition of [0, 1]) {
      // deterministicInputs draws bool inputs from the seed; try two seeds so both branches run
      for (const candidate of [sparse, dense]) {
        const r = await compareOnnxModels(bytes, candidate, { shapes: { cond: [], x: [1, 4] }, seed: condition + 1 });
        assert.ok(r.bitIdentical, JSON.stringify(r.outputs));
      }
    }
  });

  test('a graph nested too deeply is refused', () => {
    let g: GraphSpec = { name: 'leaf', nodes: [], inputs: [], outputs: [] };
    for (let i = 0; i < 70; i++) g = { name: `g${i}`, nodes: [{ opType: 'If', inputs: ['c'], outputs: ['o'], attributes: [{ name: 'then_branch', graph: g }] }], inputs: [], outputs: [] };
    assertError(() => readOnnx(encodeOnnxModel({ irVersion: 8, opsets: [{ domain: '', version: 13 }], graph: g })), 'CORRUPT', /nested more than 64/);
  });

  test('data inconsistent with dims is corrupt', () => {
    const spec = matmulModel(13, 'raw');
    spec.graph.initializers![0]!.dims = [64, 33];
    assertError(() => readOnnx(encodeOnnxModel(spec)), 'CORRUPT', /raw_data size/);
    const typed = matmulModel(13, 'typed');
    typed.graph.initializers![0]!.dims = [65, 32];
    assertError(() => readOnnx(encodeOnnxModel(typed)), 'CORRUPT', /wrong number of entries/);
    const negative = matmulModel(13, 'raw');
    negative.graph.initializers![0]!.dims = [-64, -32];
    assertError(() => readOnnx(encodeOnnxModel(negative)), 'CORRUPT', /negative dimension/);
  });

  test('element counts in test data', () => {
    assert.equal(elementCount([3, 5]), 15);
  });
});
