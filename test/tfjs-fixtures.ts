/**
 * Shared fixtures of the TF.js tests: paths of the real models in the dev dependencies, tiny
 * models built in code (every dtype, quantization, several groups, tensors spanning shards), and
 * helpers to keep a written layout in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TfjsLayout } from '../converters/tfjs/index.js';
import { float32ToFloat16 } from '../src/model/dtype.js';
import { mulberry32 } from '../src/verify/tflite-runtime.js';
import { repoPath } from './helpers.js';

export const HUMAN = repoPath('node_modules', '@vladmandic', 'human', 'models');
export const FACE_API = repoPath('node_modules', '@vladmandic', 'face-api', 'model');

export function humanModel(name: string): string {
  return path.join(HUMAN, `${name}.json`);
}

/** Every graph model.json of @vladmandic/human (models.json is an index, not a model). */
export function humanModels(): string[] {
  return fs.readdirSync(HUMAN).filter((n) => n.endsWith('.json') && n !== 'models.json').map((n) => path.join(HUMAN, n)).sort();
}

export function faceApiManifests(): string[] {
  return fs.readdirSync(FACE_API).filter((n) => n.endsWith('-weights_manifest.json')).map((n) => path.join(FACE_API, n)).sort();
}

/** model.json and shards of a layout as one map of file name -> bytes. */
export function layoutFiles(layout: TfjsLayout, modelJsonName = 'model.json'): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>([[modelJsonName, layout.modelJson]]);
  for (const s of layout.shards) files.set(s.path, concat(s.chunks));
  return files;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** A readFile for the loader over an in-memory folder ("<dir>/<name>" -> name). */
export function memoryReadFile(files: ReadonlyMap<string, Uint8Array>, dir = 'mem'): (p: string) => Uint8Array {
  return (p) => {
    const name = p.startsWith(`${dir}/`) ? p.slice(dir.length + 1) : p;
    const bytes = files.get(name);
    if (!bytes) throw new Error(`no file ${p}`);
    return bytes;
  };
}

export function writeFolder(dir: string, files: ReadonlyMap<string, Uint8Array>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of files) fs.writeFileSync(path.join(dir, name), bytes);
}

export interface FixtureWeight {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
  quantization?: Record<string, unknown>;
  /** Stored bytes. */
  bytes: Uint8Array;
}

/** Stored bytes of string elements: u32-LE length + UTF-8 each. */
export function stringBytes(values: readonly string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const v of values) {
    const utf8 = new TextEncoder().encode(v);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, utf8.length, true);
    parts.push(len, utf8);
  }
  return concat(parts);
}

/** Affine uint8/uint16 quantization as the TF.js converter does it (range nudged so 0.0 is exact). */
export function quantizeAffine(values: Float32Array, bits: 8 | 16): { bytes: Uint8Array; min: number; scale: number } {
  const top = bits === 8 ? 255 : 65535;
  let lo = Math.min(0, ...values);
  let hi = Math.max(0, ...values);
  if (hi === lo) hi = lo + 1;
  let scale = (hi - lo) / top;
  const zero = Math.round(-lo / scale);
  lo = -zero * scale;
  hi = lo + top * scale;
  scale = (hi - lo) / top;
  const q = bits === 8 ? new Uint8Array(values.length) : new Uint16Array(values.length);
  values.forEach((v, i) => { q[i] = Math.min(top, Math.max(0, Math.round((v - lo) / scale))); });
  return { bytes: new Uint8Array(q.buffer), min: lo, scale };
}

/** Sparse-ish float32 values (a share `zeros` of exact zeros). */
export function randomFloats(count: number, seed: number, zeros = 0.8): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: count }, () => (rand() < zeros ? 0 : (rand() - 0.5) * 2));
}

/** One weight of every dtype and quantization TF.js has, some of them large and sparse. */
export function everyDtypeWeights(): FixtureWeight[] {
  const f32 = randomFloats(64 * 40, 1);
  const i32 = Int32Array.from({ length: 24 * 20 }, (_, i) => (i % 5 === 0 ? i - 100 : 0));
  const bool = Uint8Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? 1 : 0));
  const complex = randomFloats(2 * 16 * 16, 2);
  const u8 = quantizeAffine(randomFloats(48 * 32, 3), 8);
  const u16 = quantizeAffine(randomFloats(40 * 20, 4), 16);
  const u8int = quantizeAffine(Float32Array.from({ length: 200 }, (_, i) => (i % 4 ? 0 : i)), 8);
  const f16src = randomFloats(32 * 30, 5);
  const f16 = Uint16Array.from(f16src, (v) => float32ToFloat16(v));
  return [
    { name: 'dense/kernel', shape: [64, 40], dtype: 'float32', bytes: new Uint8Array(f32.buffer) },
    { name: 'ints', shape: [24, 20], dtype: 'int32', bytes: new Uint8Array(i32.buffer) },
    { name: 'flags', shape: [300], dtype: 'bool', bytes: bool },
    { name: 'vocab', shape: [3], dtype: 'string', bytes: stringBytes(['a', 'zwölf', '']) },
    { name: 'spectrum', shape: [16, 16], dtype: 'complex64', bytes: new Uint8Array(complex.buffer) },
    { name: 'q8/kernel', shape: [48, 32], dtype: 'float32', quantization: { dtype: 'uint8', min: u8.min, scale: u8.scale, original_dtype: 'float32' }, bytes: u8.bytes },
    { name: 'q16/kernel', shape: [40, 20], dtype: 'float32', quantization: { dtype: 'uint16', min: u16.min, scale: u16.scale }, bytes: u16.bytes },
    { name: 'q8/ints', shape: [10, 20], dtype: 'int32', quantization: { dtype: 'uint8', min: u8int.min, scale: u8int.scale }, bytes: u8int.bytes },
    { name: 'half/kernel', shape: [32, 30], dtype: 'float32', quantization: { dtype: 'float16', original_dtype: 'float32' }, bytes: new Uint8Array(f16.buffer) },
    { name: 'scalar', shape: [], dtype: 'float32', bytes: new Uint8Array(new Float32Array([3.5]).buffer) },
    { name: 'empty', shape: [0, 4], dtype: 'float32', bytes: new Uint8Array(0) },
  ];
}

export interface BuiltModel {
  json: string;
  files: Map<string, Uint8Array>;
}

/**
 * A model.json (format `graph-model` by default, with a topology naming every weight) whose
 * weights are split into `groups` manifest groups, each cut into shards of `shardSize` bytes.
 */
export function buildModel(weights: readonly FixtureWeight[], options: { groups?: number; shardSize?: number; extra?: Record<string, unknown>; topology?: unknown } = {}): BuiltModel {
  const groupCount = options.groups ?? 1;
  const shardSize = options.shardSize ?? 1 << 22;
  const perGroup = Math.ceil(weights.length / groupCount);
  const files = new Map<string, Uint8Array>();
  const manifest = [];
  for (let g = 0; g < groupCount; g++) {
    const ws = weights.slice(g * perGroup, (g + 1) * perGroup);
    const data = concat(ws.map((w) => w.bytes));
    const paths: string[] = [];
    const count = Math.max(1, Math.ceil(data.length / shardSize));
    for (let i = 0; i < count; i++) {
      const name = `g${g + 1}-shard${i + 1}of${count}.bin`;
      paths.push(name);
      files.set(name, data.subarray(i * shardSize, Math.min(data.length, (i + 1) * shardSize)));
    }
    manifest.push({ paths, weights: ws.map(({ bytes: _b, ...entry }) => entry) });
  }
  const topology = options.topology ?? {
    node: [
      ...weights.map((w) => ({ name: w.name, op: 'Const', attr: {} })),
      { name: 'x', op: 'Placeholder', attr: {} },
      { name: 'dense/kernel/read', op: 'Identity', input: ['dense/kernel'] },
      { name: 'mm', op: 'MatMul', input: ['x', 'dense/kernel/read'] },
      { name: 'add', op: 'AddV2', input: ['mm', '^scalar', 'scalar:0'] },
    ],
    versions: { producer: 1 },
  };
  const json = JSON.stringify({ format: 'graph-model', generatedBy: 'fixture', convertedBy: null, ...options.extra, modelTopology: topology, weightsManifest: manifest }, null, 1);
  files.set('model.json', new TextEncoder().encode(json));
  return { json, files };
}
