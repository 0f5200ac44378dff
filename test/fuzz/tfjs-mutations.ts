/**
 * Structure-aware mutations of a TF.js model.json: manifest entries with hostile shapes, dtypes,
 * quantization and sparse markers, shard paths that leave the folder, duplicated, dropped and
 * moved entries, huge names, deeply nested topology. The JSON is parsed once per seed; every
 * mutation edits a copy and serializes it again.
 */
import type { Mutant, Seed } from './mutate.js';
import type { Random } from './random.js';

type Json = unknown;
type JsonObject = Record<string, Json>;

const parsedSeeds = new WeakMap<Seed, Json | null>();

function parsed(seed: Seed): Json | null {
  let value = parsedSeeds.get(seed);
  if (value === undefined) {
    try { value = JSON.parse(new TextDecoder().decode(seed.bytes)) as Json; } catch { value = null; }
    parsedSeeds.set(seed, value);
  }
  return value;
}

const isObject = (v: Json): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function groupsOf(json: Json): JsonObject[] {
  const manifest = Array.isArray(json) ? json : isObject(json) ? json.weightsManifest : undefined;
  return Array.isArray(manifest) ? manifest.filter(isObject) : [];
}

function entriesOf(json: Json): JsonObject[] {
  return groupsOf(json).flatMap((g) => (Array.isArray(g.weights) ? g.weights.filter(isObject) : []));
}

const SHAPES: Json[] = [
  [-1], [3, -2], [2 ** 31, 2 ** 31], [2 ** 53], [2 ** 53 + 2], [1e6, 1e6, 1e6], [0], [1.5, 2], ['3', 4], null, 'x', [],
  new Array(40).fill(2), [Number.MAX_VALUE], [1e308, 1e308], [65536, 65536, 65536],
];
const DTYPES: Json[] = ['float32', 'int32', 'bool', 'string', 'complex64', 'float16', 'uint8', 'int64', 'foo', 7, null, 'prunepack-sparse/1'];
const QUANTIZATIONS: Json[] = [
  { dtype: 'uint8', scale: 1e-300, min: -1 }, { dtype: 'uint8' }, { dtype: 'uint16', scale: Number.MAX_VALUE, min: -Number.MAX_VALUE },
  { dtype: 'float16' }, { dtype: 'int4', scale: 1, min: 0 }, {}, null, 'x', { dtype: 'uint8', scale: -1, min: 0 }, { dtype: 'uint8', scale: 0, min: 0 },
];
const PATHS: Json[] = [
  ['../x.bin'], ['/etc/passwd'], ['http://example.com/a.bin'], ['a\u0000b.bin'], ['missing.bin'], ['sub/../../x.bin'],
  ['C:\\x.bin'], ['%2e%2e/x.bin'], ['.'], [''], ['//host/x.bin'], [42], 'x.bin', [],
];
const MARKERS: Json[] = [
  { encoding: 'prunepack-sparse/1', byteLength: 1 }, { encoding: 'prunepack-sparse/1', byteLength: 2 ** 31, count: 1 },
  { encoding: 'prunepack-sparse/1', byteLength: -1 }, { encoding: 'prunepack-sparse/1', byteLength: 1e15, count: 3 },
  { encoding: 'prunepack-sparse/1', byteLength: 16, count: 1e9 }, { encoding: 'prunepack-sparse/1', byteLength: 16, part: 2 },
  { encoding: 'prunepack-sparse/9' }, 'x', null,
];

type JsonMutation = (json: Json, rng: Random) => string | null;

const shape: JsonMutation = (json, rng) => {
  const e = entriesOf(json);
  if (!e.length) return null;
  const entry = rng.pick(e);
  const old = JSON.stringify(entry.shape);
  entry.shape = structuredClone(rng.pick(SHAPES));
  return `weight ${String(entry.name).slice(0, 60)}: shape ${old} -> ${JSON.stringify(entry.shape)?.slice(0, 80)}`;
};

const dtype: JsonMutation = (json, rng) => {
  const e = entriesOf(json);
  if (!e.length) return null;
  const entry = rng.pick(e);
  const old = entry.dtype;
  entry.dtype = rng.pick(DTYPES);
  return `weight ${String(entry.name).slice(0, 60)}: dtype ${JSON.stringify(old)} -> ${JSON.stringify(entry.dtype)}`;
};

const quantization: JsonMutation = (json, rng) => {
  const e = entriesOf(json);
  if (!e.length) return null;
  const entry = rng.pick(e);
  entry.quantization = structuredClone(rng.pick(QUANTIZATIONS));
  return `weight ${String(entry.name).slice(0, 60)}: quantization ${JSON.stringify(entry.quantization)}`;
};

const marker: JsonMutation = (json, rng) => {
  const e = entriesOf(json);
  if (!e.length) return null;
  const entry = rng.pick(e);
  entry.prunepack = structuredClone(rng.pick(MARKERS));
  return `weight ${String(entry.name).slice(0, 60)}: prunepack marker ${JSON.stringify(entry.prunepack)}`;
};

const paths: JsonMutation = (json, rng) => {
  const g = groupsOf(json);
  if (!g.length) return null;
  const group = rng.pick(g);
  const old = JSON.stringify(group.paths);
  if (rng.chance(0.2) && Array.isArray(group.paths) && group.paths.length) {
    group.paths = [...group.paths, group.paths[0]];
  } else {
    group.paths = structuredClone(rng.pick(PATHS));
  }
  return `group paths ${old.slice(0, 60)} -> ${JSON.stringify(group.paths)}`;
};

/** Entries removed, duplicated (same name), swapped or moved to another group. */
const entries: JsonMutation = (json, rng) => {
  const g = groupsOf(json).filter((x) => Array.isArray(x.weights) && x.weights.length);
  if (!g.length) return null;
  const group = rng.pick(g);
  const list = group.weights as Json[];
  const i = rng.int(list.length);
  switch (rng.int(4)) {
    case 0: list.splice(i, 1); return `entry ${i} removed`;
    case 1: list.splice(i, 0, ...new Array<Json>(rng.pick([1, 2, 50])).fill(structuredClone(list[i]))); return `entry ${i} duplicated`;
    case 2: { const j = rng.int(list.length); [list[i], list[j]] = [list[j], list[i]]; return `entries ${i} and ${j} swapped`; }
    default: {
      const other = rng.pick(groupsOf(json));
      if (!Array.isArray(other.weights)) return null;
      other.weights.push(...list.splice(i, 1));
      return `entry ${i} moved to another group`;
    }
  }
};

const names: JsonMutation = (json, rng) => {
  const e = entriesOf(json);
  if (!e.length) return null;
  const entry = rng.pick(e);
  const value = rng.pick<Json>(['', 'x'.repeat(1 << 20), null, 42, String(rng.pick(e).name), '\u0000', '../../etc/passwd']);
  entry.name = value;
  return `weight name -> ${JSON.stringify(value)?.slice(0, 40)}${typeof value === 'string' && value.length > 40 ? ` (${value.length} chars)` : ''}`;
};

/** Top-level shape of the file: format, manifest type, many empty groups. */
const top: JsonMutation = (json, rng) => {
  if (!isObject(json)) return null;
  switch (rng.int(5)) {
    case 0: json.format = rng.pick<Json>(['layers-model', 'graph-model', 42, null, 'x']); return `format -> ${JSON.stringify(json.format)}`;
    case 1: json.weightsManifest = rng.pick<Json>([{}, 'x', null, 7]); return `weightsManifest -> ${JSON.stringify(json.weightsManifest)}`;
    case 2: json.weightsManifest = new Array(100_000).fill({ paths: [], weights: [] }); return 'weightsManifest -> 100000 empty groups';
    case 3: delete json.modelTopology; return 'modelTopology removed';
    default: json.modelTopology = rng.pick<Json>([[], 'x', { node: 'x' }, { node: [null, 1, 'x'] }, { class_name: 7 }]); return `modelTopology -> ${JSON.stringify(json.modelTopology)}`;
  }
};

/** Graph nodes: inputs naming other nodes, many times over; attributes replaced. */
const topology: JsonMutation = (json, rng) => {
  const nodes = isObject(json) && isObject(json.modelTopology) && Array.isArray(json.modelTopology.node) ? json.modelTopology.node.filter(isObject) : [];
  if (!nodes.length) return null;
  const node = rng.pick(nodes);
  switch (rng.int(3)) {
    case 0: node.input = new Array(rng.pick([1, 1000, 20_000])).fill(String(rng.pick(nodes).name)); return `node ${String(node.name).slice(0, 40)}: ${(node.input as Json[]).length} inputs`;
    case 1: node.input = rng.pick<Json>(['x', 7, null, [null], [String(node.name)]]); return `node ${String(node.name).slice(0, 40)}: input ${JSON.stringify(node.input)}`;
    default: node.attr = rng.pick<Json>([null, 'x', { value: { tensor: { tensorShape: { dim: [{ size: '-1' }, { size: '99999999999' }] } } } }]); return `node ${String(node.name).slice(0, 40)}: attr replaced`;
  }
};

const MUTATIONS: ReadonlyArray<readonly [JsonMutation, number]> = [
  [shape, 6], [dtype, 3], [quantization, 3], [marker, 3], [paths, 3], [entries, 4], [names, 1], [top, 1], [topology, 2],
];

/** Deep nesting, spliced in as text (JSON.stringify would recurse as deep). */
function deepNesting(text: string, rng: Random): { text: string; step: string } | null {
  const at = text.indexOf('"modelTopology":');
  if (at < 0) return null;
  const depth = rng.pick([1000, 100_000, 1_000_000]);
  const open = rng.chance(0.5) ? '[' : '{"a":';
  const close = open === '[' ? ']' : '}';
  const nested = `"deep":${open.repeat(depth)}1${close.repeat(depth)},`;
  return { text: `${text.slice(0, at)}${nested}${text.slice(at)}`, step: `nesting ${depth} deep before modelTopology` };
}

export function mutateTfjs(seed: Seed, rng: Random): Mutant | null {
  const original = parsed(seed);
  if (original === null) return null;
  const json = structuredClone(original);
  const steps: string[] = [];
  const count = rng.weighted([[1, 6], [2, 3], [3, 1]] as const);
  for (let i = 0, tries = 0; i < count && tries < 10; tries++) {
    const step = rng.weighted(MUTATIONS)(json, rng);
    if (step) { steps.push(step); i++; }
  }
  let text = JSON.stringify(json);
  if (rng.chance(0.05)) {
    const deep = deepNesting(text, rng);
    if (deep) { text = deep.text; steps.push(deep.step); }
  }
  if (!steps.length) return null;
  return { bytes: new TextEncoder().encode(text), steps };
}

/** Shard paths named by a model.json's manifest (the seed's companions). */
export function tfjsShardPaths(bytes: Uint8Array): string[] {
  try {
    const json = JSON.parse(new TextDecoder().decode(bytes)) as Json;
    return [...new Set(groupsOf(json).flatMap((g) => (Array.isArray(g.paths) ? g.paths.filter((p): p is string => typeof p === 'string') : [])))];
  } catch {
    return [];
  }
}
