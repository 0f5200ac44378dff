/**
 * Structure-aware ONNX mutations over the schema-less protobuf tree: dims, data types, lengths,
 * duplicated and deeply nested messages, subgraph chains, sparse initializers that declare a
 * huge dense size, external data with hostile locations. Field numbers are onnx.proto's.
 */
import type { Random } from './random.js';
import type { Mutant, Seed } from './mutate.js';
import {
  concat, encodeKey, encodeLenField, encodeVarint, encodeVarintField, parseTree, payload, rawField, serialize,
  type PbField, type PbTree,
} from './protobuf-tree.js';

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_SPARSE_INITIALIZER = 15;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_OP_TYPE = 4;
const NODE_ATTRIBUTE = 5;
const ATTR_NAME = 1;
const ATTR_G = 6;
const ATTR_TYPE = 20;
const ATTR_TYPE_GRAPH = 5;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const SPARSE_VALUES = 1;
const SPARSE_INDICES = 2;
const SPARSE_DIMS = 3;

const trees = new WeakMap<Seed, PbTree | null>();

function treeOf(seed: Seed): PbTree | null {
  let tree = trees.get(seed);
  if (tree === undefined) trees.set(seed, (tree = parseTree(seed.bytes)));
  return tree;
}

const EXTREME_VARINTS: bigint[] = [
  0n, 1n, -1n, -2n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n, 2n ** 32n - 1n, 2n ** 53n, 2n ** 53n + 1n,
  2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 1000000n, 65536n,
];

const DIM_SETS: bigint[][] = [
  [-1n], [-1n, 4n], [0n, 2n ** 40n], [2n ** 31n, 2n ** 31n], [2n ** 32n - 1n, 2n ** 32n - 1n], [2n ** 53n],
  [2n ** 53n + 1n], [2n ** 62n], [65536n, 65536n, 65536n], [2n ** 31n - 1n, 2n ** 31n - 1n, 2n ** 31n - 1n],
  [3037000500n, 3037000500n], [1n << 20n, 1n << 20n], [-(2n ** 63n)], [1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n],
];

function isTensorLike(f: PbField): boolean {
  const c = f.children;
  if (!c) return false;
  return c.some((x) => x.num === TENSOR_DATA_TYPE && x.wire === 0) && c.some((x) => x.num === TENSOR_NAME || x.num === TENSOR_RAW_DATA || x.num === TENSOR_DIMS);
}

function mainGraph(tree: PbTree): PbField | undefined {
  return tree.fields.find((f) => f.num === MODEL_GRAPH && f.children);
}

function done(tree: PbTree, edits: Map<PbField, Uint8Array>, step: string): Mutant {
  return { bytes: serialize(tree, edits), steps: [step] };
}

/** Appends `extra` (encoded fields) at the end of message field `f`. */
function appendTo(tree: PbTree, f: PbField, extra: Uint8Array): Uint8Array {
  const inner = concat([payload(tree, f), extra]);
  return concat([tree.bytes.subarray(f.start, f.keyEnd), encodeVarint(inner.length), inner]);
}

type OnnxMutation = (tree: PbTree, rng: Random) => Mutant | null;

const varintExtreme: OnnxMutation = (tree, rng) => {
  const varints = tree.all.filter((f) => f.wire === 0);
  if (!varints.length) return null;
  const f = rng.pick(varints);
  const value = rng.pick(EXTREME_VARINTS);
  return done(tree, new Map([[f, encodeVarintField(f.num, value)]]), `varint field ${f.num} at ${f.start}: ${f.value} -> ${value}`);
};

const dims: OnnxMutation = (tree, rng) => {
  const tensors = tree.all.filter(isTensorLike);
  if (!tensors.length) return null;
  const t = rng.pick(tensors);
  const values = rng.pick(DIM_SETS);
  const edits = new Map<PbField, Uint8Array>();
  const old = t.children!.filter((c) => c.num === TENSOR_DIMS);
  for (const c of old) edits.set(c, new Uint8Array(0));
  const encoded = concat(values.map((v) => encodeVarintField(TENSOR_DIMS, v)));
  const anchor = t.children![0]!;
  edits.set(anchor, concat([encoded, edits.get(anchor) ?? rawField(tree, anchor)]));
  return done(tree, edits, `tensor at ${t.start}: dims [${old.map((c) => c.value ?? 'packed')}] -> [${values}]`);
};

const dataType: OnnxMutation = (tree, rng) => {
  const tensors = tree.all.filter(isTensorLike);
  if (!tensors.length) return null;
  const t = rng.pick(tensors);
  const f = t.children!.find((c) => c.num === TENSOR_DATA_TYPE && c.wire === 0)!;
  const value = rng.pick([0n, 2n, 3n, 6n, 7n, 8n, 9n, 10n, 11n, 13n, 14n, 16n, 17n, 21n, 22n, 23n, 24n, 25n, 99n, -1n]);
  return done(tree, new Map([[f, encodeVarintField(TENSOR_DATA_TYPE, value)]]), `tensor at ${t.start}: data_type ${f.value} -> ${value}`);
};

/** A length prefix that disagrees with its payload (the payload itself is kept). */
const lengthLie: OnnxMutation = (tree, rng) => {
  const fields = tree.all.filter((f) => f.wire === 2);
  if (!fields.length) return null;
  const f = rng.pick(fields);
  const real = f.end - f.payloadStart;
  const declared = rng.pick([real + 1, real * 2 + 1, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 53 - 1, Math.max(0, real - 1), 0]);
  const edit = concat([tree.bytes.subarray(f.start, f.keyEnd), encodeVarint(declared), payload(tree, f)]);
  return done(tree, new Map([[f, edit]]), `field ${f.num} at ${f.start}: length ${real} declared as ${declared}`);
};

const duplicate: OnnxMutation = (tree, rng) => {
  const messages = tree.all.filter((f) => f.children && f.end - f.start < 1 << 16);
  if (!messages.length) return null;
  const f = rng.pick(messages);
  const copies = rng.pick([2, 3, 16, 200]);
  const raw = rawField(tree, f);
  return done(tree, new Map([[f, concat(new Array<Uint8Array>(copies).fill(raw))]]), `field ${f.num} at ${f.start} repeated ${copies} times`);
};

/** A message nested inside itself, `depth` levels deep. */
const nest: OnnxMutation = (tree, rng) => {
  const messages = tree.all.filter((f) => f.children && f.end - f.start < 2048);
  if (!messages.length) return null;
  const f = rng.pick(messages);
  const body = payload(tree, f);
  const depth = Math.min(rng.pick([4, 30, 70, 500, 5000]), Math.floor((1 << 20) / Math.max(1, body.length)));
  let inner = body;
  for (let i = 0; i < depth; i++) inner = concat([body, encodeLenField(f.num, inner)]);
  return done(tree, new Map([[f, encodeLenField(f.num, inner)]]), `field ${f.num} at ${f.start} nested in itself ${depth} deep`);
};

/** A chain of If nodes whose then_branch holds the next: subgraphs `depth` deep. */
const deepGraphs: OnnxMutation = (tree, rng) => {
  const graph = mainGraph(tree);
  if (!graph) return null;
  const depth = rng.pick([8, 63, 64, 65, 66, 300, 3000]);
  const text = (s: string) => new TextEncoder().encode(s);
  let node = concat([encodeLenField(NODE_OP_TYPE, text('Identity')), encodeLenField(NODE_INPUT, text('x')), encodeLenField(NODE_OUTPUT, text('y'))]);
  for (let i = 0; i < depth; i++) {
    const sub = concat([encodeLenField(GRAPH_NODE, node), encodeLenField(2, text(`g${i}`))]);
    const attribute = concat([encodeLenField(ATTR_NAME, text('then_branch')), encodeVarintField(ATTR_TYPE, ATTR_TYPE_GRAPH), encodeLenField(ATTR_G, sub)]);
    node = concat([encodeLenField(NODE_OP_TYPE, text('If')), encodeLenField(NODE_INPUT, text('c')), encodeLenField(NODE_OUTPUT, text(`o${i}`)), encodeLenField(NODE_ATTRIBUTE, attribute)]);
  }
  return done(tree, new Map([[graph, appendTo(tree, graph, encodeLenField(GRAPH_NODE, node))]]), `main graph: If-subgraph chain ${depth} deep appended`);
};

const remove: OnnxMutation = (tree, rng) => {
  const f = rng.pick(tree.all);
  return done(tree, new Map([[f, new Uint8Array(0)]]), `field ${f.num} at ${f.start} removed`);
};

const splice: OnnxMutation = (tree, rng) => {
  const a = rng.pick(tree.all);
  const b = rng.pick(tree.all.filter((f) => f.end - f.start < 1 << 20));
  return done(tree, new Map([[a, rawField(tree, b)]]), `field ${a.num} at ${a.start} replaced by field ${b.num} from ${b.start}`);
};

const wireType: OnnxMutation = (tree, rng) => {
  const f = rng.pick(tree.all);
  const wire = rng.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== f.wire));
  const edit = concat([encodeKey(f.num, wire), tree.bytes.subarray(f.keyEnd, f.end)]);
  return done(tree, new Map([[f, edit]]), `field ${f.num} at ${f.start}: wire type ${f.wire} -> ${wire}`);
};

const HOSTILE_LOCATIONS = ['/etc/passwd', '../../../../etc/passwd', 'weights.bin', 'a\u0000b', 'http://example.com/w.bin', 'file:///etc/passwd', '', '.', 'sub/../../x'];

const externalData: OnnxMutation = (tree, rng) => {
  const tensors = tree.all.filter(isTensorLike);
  if (!tensors.length) return null;
  const t = rng.pick(tensors);
  const text = (s: string) => new TextEncoder().encode(s);
  const entry = (k: string, v: string) => encodeLenField(TENSOR_EXTERNAL_DATA, concat([encodeLenField(1, text(k)), encodeLenField(2, text(v))]));
  const location = rng.pick(HOSTILE_LOCATIONS);
  const extra = [entry('location', location), encodeVarintField(TENSOR_DATA_LOCATION, 1)];
  if (rng.chance(0.5)) extra.push(entry('offset', rng.pick(['0', '-1', '9007199254740993', '4096', 'x'])));
  if (rng.chance(0.5)) extra.push(entry('length', rng.pick(['0', '-1', '9007199254740993', '2147483648', '16'])));
  const keepRaw = rng.chance(0.3);
  const kept = t.children!.filter((c) => keepRaw || c.num !== TENSOR_RAW_DATA).map((c) => rawField(tree, c));
  const inner = concat([...kept, ...extra]);
  const edits = new Map([[t, concat([tree.bytes.subarray(t.start, t.keyEnd), encodeVarint(inner.length), inner])]]);
  return done(tree, edits, `tensor at ${t.start}: external data at ${JSON.stringify(location)}${keepRaw ? ' (raw_data kept)' : ''}`);
};

/** A sparse initializer with a few values that declares an enormous dense shape. */
const hugeSparse: OnnxMutation = (tree, rng) => {
  const graph = mainGraph(tree);
  if (!graph) return null;
  const text = (s: string) => new TextEncoder().encode(s);
  const nnz = rng.pick([0, 1, 3]);
  const dense = rng.pick<bigint[]>([[1n << 20n, 1n << 20n], [2n ** 31n - 1n, 2n ** 31n - 1n], [2n ** 53n], [1n << 14n, 1n << 14n], [-1n, 4n], [2n ** 62n, 4n]]);
  const indexForm = rng.int(2); // 0: linear [nnz], 1: coordinates [nnz, rank]
  const raw = new Uint8Array(4 * nnz);
  const indexValues: bigint[] = [];
  for (let i = 0; i < nnz; i++) {
    if (indexForm === 0) indexValues.push(BigInt(i * 7));
    else for (let d = 0; d < dense.length; d++) indexValues.push(BigInt(i));
  }
  const indexRaw = new Uint8Array(8 * indexValues.length);
  const view = new DataView(indexRaw.buffer);
  indexValues.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  const values = concat([encodeVarintField(TENSOR_DIMS, nnz), encodeVarintField(TENSOR_DATA_TYPE, 1), encodeLenField(TENSOR_NAME, text('fuzz_sparse')), encodeLenField(TENSOR_RAW_DATA, raw)]);
  const indexDims = indexForm === 0 ? [BigInt(nnz)] : [BigInt(nnz), BigInt(dense.length)];
  const indices = concat([...indexDims.map((d) => encodeVarintField(TENSOR_DIMS, d)), encodeVarintField(TENSOR_DATA_TYPE, 7), encodeLenField(TENSOR_RAW_DATA, indexRaw)]);
  const sparse = concat([encodeLenField(SPARSE_VALUES, values), encodeLenField(SPARSE_INDICES, indices), ...dense.map((d) => encodeVarintField(SPARSE_DIMS, d))]);
  return done(tree, new Map([[graph, appendTo(tree, graph, encodeLenField(GRAPH_SPARSE_INITIALIZER, sparse))]]),
    `main graph: sparse initializer, ${nnz} values, dense dims [${dense}]`);
};

/** A dense initializer that declares a large shape but carries no data. */
const emptyBigInitializer: OnnxMutation = (tree, rng) => {
  const graph = mainGraph(tree);
  if (!graph) return null;
  const text = (s: string) => new TextEncoder().encode(s);
  const declared = rng.pick<bigint[]>([[1n << 15n, 1n << 15n], [2n ** 31n], [2n ** 40n], [0n], [1n << 26n]]);
  const dataType = rng.pick([1n, 7n, 8n, 16n]);
  const withRaw = rng.chance(0.3) ? [encodeLenField(TENSOR_RAW_DATA, new Uint8Array(4))] : [];
  const tensor = concat([...declared.map((d) => encodeVarintField(TENSOR_DIMS, d)), encodeVarintField(TENSOR_DATA_TYPE, dataType), encodeLenField(TENSOR_NAME, text('fuzz_empty')), ...withRaw]);
  return done(tree, new Map([[graph, appendTo(tree, graph, encodeLenField(GRAPH_INITIALIZER, tensor))]]),
    `main graph: initializer of dims [${declared}] type ${dataType}${withRaw.length ? ' with 4 raw bytes' : ' without data'}`);
};

const ONNX_MUTATIONS: ReadonlyArray<readonly [OnnxMutation, number]> = [
  [varintExtreme, 6], [dims, 6], [dataType, 3], [lengthLie, 4], [duplicate, 3], [nest, 2], [deepGraphs, 1],
  [remove, 2], [splice, 2], [wireType, 2], [externalData, 2], [hugeSparse, 2], [emptyBigInitializer, 2],
];

export function mutateOnnx(seed: Seed, rng: Random): Mutant | null {
  const tree = treeOf(seed);
  if (!tree || tree.all.length === 0) return null;
  for (let tries = 0; tries < 5; tries++) {
    const result = rng.weighted(ONNX_MUTATIONS)(tree, rng);
    if (result) return result;
  }
  return null;
}
