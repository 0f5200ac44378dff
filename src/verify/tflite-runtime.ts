/**
 * A real TFLite runtime for verification: load a .tflite model from bytes, run it on
 * deterministic inputs, compare outputs. Node-only (fs, vm, module) and loaded lazily by the
 * verify step; nothing else in prunepack imports these Node modules.
 *
 * Two WebAssembly builds of TFLite ship inside npm packages we already depend on (dev), and both
 * are wrapped here behind one small interface (`TfliteEngine`):
 *
 *  - 'litert' (DEFAULT): @litertjs/core, Google's current LiteRT web runtime. Its op set matches
 *    today's TFLite schema (every BuiltinOperator up to STABLEHLO_CASE = 209 is known to it),
 *    it runs DENSIFY with float16 sparse weights (face_detection_full_range_sparse.tflite) and the
 *    MediaPipe custom ops that the XNNPACK delegate implements (Convolution2DTransposeBias in
 *    selfie_segmentation.tflite), and it exposes every element type (int8, int16, int64,
 *    float16...). We do NOT use its high-level JS API (`loadLiteRt`/`Tensor`): that API fetches
 *    the glue script with `importScripts`/`<script>` (browser only), keeps a process-global
 *    instance, tries to create a WebGPU device, only knows float32/int32/uint8 tensors, and leaks
 *    the model copy when the runtime refuses a model. Instead we evaluate the emscripten glue
 *    (wasm/litert_wasm_compat_internal.js) as CommonJS with `vm.compileFunction`, hand it the
 *    .wasm bytes (`wasmBinary`, no fetch, no network) and drive the embind classes it exports
 *    (loadModel / compileModel / LiteRtTensorBuffer / CompiledModel.run) directly, freeing every
 *    object we create. Those classes are documented in @litertjs/core's index.d.ts (`LiteRtWasm`)
 *    but are internal, so the package is pinned by package-lock (2.5.3) and an upgrade must rerun
 *    test/tflite-runtime.test.ts.
 *    We load the "compat" build on purpose: the default build needs relaxed-SIMD (not enabled in
 *    Node 20 without a flag), and relaxed-SIMD results may legally differ between CPUs, which a
 *    bit-for-bit verifier must avoid. The threaded and JSPI builds are not used (single thread,
 *    synchronous run).
 *
 *  - 'tfjs-tflite': @tensorflow/tfjs-tflite 0.0.1-alpha.10, wasm/tflite_web_api_cc_simd.{js,wasm}
 *    (the TFLiteWebModelRunner embind API, created with numThreads 1). Older TFLite (its op table
 *    stops before BITCAST, i.e. about TF 2.12), BuiltinOpResolver only: it runs DENSIFY too but
 *    refuses selfie_segmentation.tflite ("Encountered unresolved custom op:
 *    Convolution2DTransposeBias"), and its tensors are limited to int8, uint8, bool, int16,
 *    int32, uint32, float32, float64. Useful as an independent second opinion.
 *
 * Both engines use TFLite's builtin kernels plus the XNNPACK delegate; outputs of the two are
 * close but not bit-identical (different XNNPACK versions). Each engine is initialised once per
 * process (`loadTfliteRuntime` caches it); every session owns its model copy in wasm memory and
 * frees it, and all runtime objects, in `dispose()`. Inputs and outputs are copied in and out of
 * wasm memory, so returned arrays stay valid after later runs or disposal.
 *
 * Runtime log lines (the runtime's stderr) are captured instead of printed; they are attached to
 * errors and exposed as `session.runtimeLog`. Set PRUNEPACK_RUNTIME_LOG=1 to also echo them.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import { PrunepackError } from '../errors.js';
import { type DType, type NumericArray, float16ToFloat32, float32ToFloat16, bfloat16ToFloat32, float32ToBfloat16 } from '../model/dtype.js';
import { mulberry32 } from '../random.js';
export { mulberry32 };

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

export type TypedArray = NumericArray;

/** One model input or output, as the runtime declares it. float16/bfloat16 use Uint16Array bits. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface TfliteSession {
  /** Name of the engine that loaded this session. */
  readonly engine: EngineName;
  /** Runtime log lines (warnings, errors; repeated lines collapsed) emitted while loading. */
  readonly runtimeLog: readonly string[];
  inputs(): TensorSpec[];
  outputs(): TensorSpec[];
  /**
   * Runs the model once. `inputs` follow `inputs()` order, each with exactly the element count
   * of its shape and the typed-array kind of its dtype. Returns fresh copies of every output.
   */
  run(inputs: readonly TypedArray[]): Promise<TypedArray[]>;
  /** Frees the model and every runtime object. Idempotent; the session is unusable afterwards. */
  dispose(): void;
  readonly disposed: boolean;
}

export interface TfliteEngine {
  readonly name: EngineName;
  /** npm package and version that ships the runtime, e.g. "@litertjs/core 2.5.3". */
  readonly version: string;
  /** Milliseconds spent compiling and instantiating the wasm module (once per process). */
  readonly initMs: number;
  /** Loads (and, for LiteRT, compiles) a .tflite flatbuffer. Throws PrunepackError 'RUNTIME'. */
  load(model: Uint8Array): Promise<TfliteSession>;
  /** Current size of the runtime's wasm linear memory in bytes (it grows, never shrinks). */
  memoryBytes(): number;
}

export type EngineName = 'litert' | 'tfjs-tflite';
export const ENGINE_NAMES: readonly EngineName[] = ['litert', 'tfjs-tflite'];
export const DEFAULT_ENGINE: EngineName = 'litert';

const engineCache = new Map<EngineName, Promise<TfliteEngine>>();
const liveEngines = new Map<EngineName, TfliteEngine>();

/** Drops an aborted engine from the cache so the next loadTfliteRuntime() starts a fresh one. */
function forgetEngine(engine: TfliteEngine): void {
  if (liveEngines.get(engine.name) === engine) {
    liveEngines.delete(engine.name);
    engineCache.delete(engine.name);
  }
}

/**
 * The runtime, initialised once per process per engine. If the runtime aborts (a wasm trap),
 * the broken instance is dropped from the cache and the next call initialises a fresh one.
 */
export function loadTfliteRuntime(engine: EngineName = DEFAULT_ENGINE): Promise<TfliteEngine> {
  let pending = engineCache.get(engine);
  if (!pending) {
    if (engine === 'litert') pending = initLiteRt();
    else if (engine === 'tfjs-tflite') pending = initTfjsTflite();
    else {
      return Promise.reject(new PrunepackError('INVALID_ARGUMENT', `unknown TFLite engine '${String(engine)}'`, {
        expected: ENGINE_NAMES.join(' or '), found: String(engine),
      }));
    }
    const cached: Promise<TfliteEngine> = pending.then((instance) => {
      liveEngines.set(engine, instance);
      return instance;
    });
    engineCache.set(engine, cached);
    cached.catch(() => { if (engineCache.get(engine) === cached) engineCache.delete(engine); });
    return cached;
  }
  return pending;
}

/** The 32-bit PRNG used for inputs: mulberry32, returning floats in [0, 1). */

/**
 * Reproducible inputs, one per spec: floats uniform in [-1, 1]; integers uniform over the
 * dtype's range (int32/uint32 and 64-bit types over the int32/uint32 range); bool 0 or 1.
 * Input i draws from its own stream derived from (seed, i), so adding an input does not
 * change the others.
 */
export function deterministicInputs(specs: readonly TensorSpec[], seed: number): TypedArray[] {
  return specs.map((spec, i) => {
    const count = elementCountOf(spec);
    const rand = mulberry32(mixSeed(seed, i));
    const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
    const float = () => rand() * 2 - 1;
    switch (spec.dtype) {
      case 'float32': return Float32Array.from({ length: count }, float);
      case 'float64': return Float64Array.from({ length: count }, float);
      case 'float16': return Uint16Array.from({ length: count }, () => float32ToFloat16(float()));
      case 'bfloat16': return Uint16Array.from({ length: count }, () => float32ToBfloat16(float()));
      case 'int8': return Int8Array.from({ length: count }, () => int(-128, 127));
      case 'uint8': return Uint8Array.from({ length: count }, () => int(0, 255));
      case 'bool': return Uint8Array.from({ length: count }, () => int(0, 1));
      case 'int16': return Int16Array.from({ length: count }, () => int(-32768, 32767));
      case 'uint16': return Uint16Array.from({ length: count }, () => int(0, 65535));
      case 'int32': return Int32Array.from({ length: count }, () => int(-2147483648, 2147483647));
      case 'uint32': return Uint32Array.from({ length: count }, () => int(0, 4294967295));
      case 'int64': return BigInt64Array.from({ length: count }, () => BigInt(int(-2147483648, 2147483647)));
      case 'uint64': return BigUint64Array.from({ length: count }, () => BigInt(int(0, 4294967295)));
      default:
        throw new PrunepackError('UNSUPPORTED', `cannot generate inputs of type ${spec.dtype}`, { location: spec.name });
    }
  });
}

export interface OutputDiff {
  /** Largest |a - b| (Infinity when lengths differ or exactly one side is NaN). */
  maxAbsDiff: number;
  /** Largest |a - b| / max(|a|, |b|) over elements that differ (0 when all are equal). */
  maxRelDiff: number;
  /** Same element count and the same bytes. */
  bitIdentical: boolean;
}

/**
 * Compares two output lists element by element. Uint16Array outputs whose dtype (from `dtypes`,
 * e.g. `session.outputs().map(o => o.dtype)`) is float16/bfloat16 are compared as floats;
 * otherwise values are compared as numbers. Both lists must have the same number of outputs.
 */
export function compareOutputs(a: readonly TypedArray[], b: readonly TypedArray[], dtypes?: readonly DType[]): OutputDiff[] {
  if (a.length !== b.length) {
    throw new PrunepackError('INVALID_ARGUMENT', 'compareOutputs needs the same number of outputs on both sides', {
      expected: String(a.length), found: String(b.length),
    });
  }
  return a.map((x, i) => compareArrays(x, b[i]!, dtypes?.[i]));
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

function mixSeed(seed: number, index: number): number {
  let h = (Math.trunc(seed) ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function elementCountOf(spec: TensorSpec): number {
  let n = 1;
  for (const d of spec.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new PrunepackError('UNSUPPORTED', `tensor has a dynamic or invalid shape [${spec.shape.join(', ')}]`, {
        location: spec.name, hint: 'only models with static input shapes can be run',
      });
    }
    n *= d;
  }
  return n;
}

function toNumber(array: TypedArray, i: number, dtype: DType | undefined): number {
  const v = array[i]!;
  if (typeof v === 'bigint') return Number(v);
  if (array instanceof Uint16Array) {
    if (dtype === 'float16') return float16ToFloat32(v);
    if (dtype === 'bfloat16') return bfloat16ToFloat32(v);
  }
  return v;
}

function compareArrays(a: TypedArray, b: TypedArray, dtype: DType | undefined): OutputDiff {
  const ab = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const bb = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  let bitIdentical = a.length === b.length && ab.length === bb.length;
  for (let i = 0; bitIdentical && i < ab.length; i++) if (ab[i] !== bb[i]) bitIdentical = false;
  if (a.length !== b.length) return { maxAbsDiff: Infinity, maxRelDiff: Infinity, bitIdentical: false };
  let maxAbsDiff = 0;
  let maxRelDiff = 0;
  for (let i = 0; i < a.length; i++) {
    const x = toNumber(a, i, dtype);
    const y = toNumber(b, i, dtype);
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    const diff = Math.abs(x - y);
    if (Number.isNaN(diff)) { maxAbsDiff = Infinity; maxRelDiff = Infinity; continue; }
    if (diff > maxAbsDiff) maxAbsDiff = diff;
    const rel = diff / Math.max(Math.abs(x), Math.abs(y));
    if (rel > maxRelDiff) maxRelDiff = rel;
  }
  return { maxAbsDiff, maxRelDiff, bitIdentical };
}

type TypedArrayCtor = { new (length: number): TypedArray; BYTES_PER_ELEMENT: number; name: string };

const VIEW_OF: Partial<Record<DType, TypedArrayCtor>> = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array,
  int8: Int8Array, uint8: Uint8Array, bool: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
};

function checkInputs(engine: EngineName, specs: readonly TensorSpec[], inputs: readonly TypedArray[]): void {
  if (!Array.isArray(inputs) || inputs.length !== specs.length) {
    throw new PrunepackError('INVALID_ARGUMENT', `${engine}: wrong number of model inputs`, {
      expected: String(specs.length), found: String(Array.isArray(inputs) ? inputs.length : typeof inputs),
    });
  }
  specs.forEach((spec, i) => {
    const ctor = VIEW_OF[spec.dtype];
    const input = inputs[i];
    const count = elementCountOf(spec);
    if (!ctor || !(input instanceof ctor) || input.length !== count) {
      throw new PrunepackError('INVALID_ARGUMENT', `${engine}: input ${i} does not match the model`, {
        location: spec.name,
        expected: `${ctor?.name ?? spec.dtype} of ${count} elements (${spec.dtype} [${spec.shape.join(', ')}])`,
        found: input && ArrayBuffer.isView(input) ? `${input.constructor.name} of ${(input as TypedArray).length} elements` : typeof input,
      });
    }
  });
}

function copyOut(heap: Uint8Array, ptr: number, byteLength: number, ctor: TypedArrayCtor): TypedArray {
  const out = new ctor(byteLength / ctor.BYTES_PER_ELEMENT);
  new Uint8Array(out.buffer).set(heap.subarray(ptr, ptr + byteLength));
  return out;
}

function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Log lines that mean the model cannot run even when the API call itself reported success:
 * LiteRT's compileModel returns normally after "Encountered unresolved custom op ... failed to
 * prepare ... Failed to allocate tensors", and a later run then returns uninitialised memory.
 */
const FATAL = [
  /unresolved custom op/i, /failed to prepare/i, /failed to allocate tensors/i, /didn't find op for/i,
  /registration failed/i, /failed to invoke/i, /invoke failed/i,
];

function fatalLines(lines: readonly string[]): string[] {
  return lines.filter((line) => FATAL.some((re) => re.test(line)));
}

/** Log lines that say nothing about the model (LiteRT probes for an NPU on first compile). */
const NOISE = [/NPU accelerator could not be loaded/];

/** Captured runtime stdout/stderr; bounded, with marks so an operation can read its own lines. */
/**
 * After a WASM abort an engine instance is unusable: the error says so, the instance is dropped
 * from the cache (`forget`) and every later call on it is refused.
 */
class AbortGuard {
  broken: unknown;
  constructor(private readonly engine: EngineName, private readonly log: RuntimeLog, private readonly forget: () => void) {}

  fail(what: string, cause: unknown, mark: number): PrunepackError {
    if (isAbort(cause)) {
      this.broken = cause;
      this.forget();
    }
    return runtimeError(this.engine, what, cause, this.log.since(mark),
      this.broken ? 'The runtime aborted; call loadTfliteRuntime() again for a fresh instance' : undefined);
  }

  ensureUsable(): void {
    if (this.broken) throw runtimeError(this.engine, 'this runtime instance aborted earlier and cannot be used', this.broken, []);
  }
}

class RuntimeLog {
  private lines: string[] = [];
  private base = 0;
  private readonly echo = process.env['PRUNEPACK_RUNTIME_LOG'] === '1';
  constructor(private readonly engine: EngineName) {}
  push = (line: string): void => {
    if (this.echo) process.stderr.write(`[${this.engine}] ${line}\n`);
    this.lines.push(line);
    if (this.lines.length > 2000) { this.lines.splice(0, 1000); this.base += 1000; }
  };
  mark(): number { return this.base + this.lines.length; }
  /** Lines since `mark`, without INFO chatter, repeated lines collapsed ("... (x46)"). */
  since(mark: number): string[] {
    const counts = new Map<string, number>();
    for (const line of this.lines.slice(Math.max(0, mark - this.base))) {
      if (/^\s*INFO:/.test(line) || !line.trim() || NOISE.some((re) => re.test(line))) continue;
      counts.set(line, (counts.get(line) ?? 0) + 1);
    }
    return [...counts].map(([line, n]) => (n > 1 ? `${line} (x${n})` : line));
  }
}

function describeThrown(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'number') return `C++ exception (pointer ${e})`;
  return String(e);
}

function runtimeError(engine: EngineName, what: string, cause: unknown, log: readonly string[], hint?: string): PrunepackError {
  const own = cause === undefined ? '' : describeThrown(cause);
  const parts = [own, ...log.filter((line) => line !== own)].filter(Boolean);
  const message = `${engine}: ${what}${parts.length ? `: ${parts.join(' | ')}` : ''}`;
  return new PrunepackError('RUNTIME', message, { format: 'tflite', cause, hint });
}

function isAbort(e: unknown): boolean {
  return e instanceof WebAssembly.RuntimeError || (e instanceof Error && /\bAborted\(/.test(e.message));
}

interface EmscriptenLoadResult<M> { module: M; initMs: number; version: string }

/** Evaluates an emscripten MODULARIZE glue script as CommonJS and instantiates it from bytes. */
async function instantiateEmscripten<M>(
  engine: EngineName, packageName: string, jsRelative: string, wasmRelative: string, log: RuntimeLog,
): Promise<EmscriptenLoadResult<M>> {
  const require = createRequire(import.meta.url);
  let pkgJsonPath: string;
  try {
    pkgJsonPath = require.resolve(`${packageName}/package.json`);
  } catch (cause) {
    throw new PrunepackError('RUNTIME', `${engine}: the TFLite runtime package ${packageName} is not installed`, {
      cause, hint: `install the dev dependency ${packageName} (npm install)`,
    });
  }
  const dir = path.dirname(pkgJsonPath);
  const jsPath = path.join(dir, jsRelative);
  const wasmPath = path.join(dir, wasmRelative);
  const started = performance.now();
  try {
    const version = String((JSON.parse(readFileSync(pkgJsonPath, 'utf8')) as { version?: unknown }).version);
    const source = readFileSync(jsPath, 'utf8');
    const wasmBinary = readFileSync(wasmPath);
    const fn = vm.compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: jsPath });
    const cjsModule: { exports: unknown } = { exports: {} };
    fn.call(cjsModule.exports, cjsModule.exports, createRequire(jsPath), cjsModule, jsPath, path.dirname(jsPath));
    const exported = cjsModule.exports as { default?: unknown } | ((arg: object) => Promise<M>);
    const factory = (typeof exported === 'function' ? exported : exported.default) as ((arg: object) => Promise<M>) | undefined;
    if (typeof factory !== 'function') throw new Error(`${jsRelative} did not export an emscripten module factory`);
    const module = await factory({
      wasmBinary,
      print: log.push,
      printErr: log.push,
      // never let the runtime touch process.exitCode or exit the process
      quit: (_status: number, toThrow: unknown) => { throw toThrow; },
      locateFile: (file: string) => path.join(path.dirname(wasmPath), file),
    });
    return { module, initMs: performance.now() - started, version: `${packageName} ${version}` };
  } catch (cause) {
    if (cause instanceof PrunepackError) throw cause;
    throw runtimeError(engine, `could not initialise the WebAssembly runtime from ${wasmPath}`, cause, log.since(0));
  }
}

// ---------------------------------------------------------------------------------------------
// LiteRT (@litertjs/core) — embind classes of litert_wasm_compat_internal
// ---------------------------------------------------------------------------------------------

interface Deletable { delete(): void }
interface EmVector<T> extends Deletable { size(): number; get(index: number): T }
interface EnumValue { value: number }
interface LrtLayout extends Deletable { dimensions(): EmVector<number> }
interface LrtTensorType extends Deletable { elementType(): EnumValue; layout(): LrtLayout; bytes(): number }
interface LrtSignature extends Deletable { key(): string; inputNames(): EmVector<string>; outputNames(): EmVector<string> }
interface LrtModel extends Deletable {
  getNumSignatures(): number;
  getSignature(index: number): LrtSignature;
  getInputTensorType(signature: number, index: number): LrtTensorType;
  getOutputTensorType(signature: number, index: number): LrtTensorType;
}
interface LrtTensorBuffer extends Deletable {
  lock(mode: EnumValue): number;
  unlock(): void;
  tensorType(): LrtTensorType;
  size(): number;
  packedSize(): number;
  offset(): number;
}
interface LrtCompiledModel extends Deletable {
  run(signature: number, inputs: LrtTensorBuffer[]): LrtTensorBuffer[] | Promise<LrtTensorBuffer[]>;
}
interface LiteRtWasm {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  setupLogging(): void;
  LiteRtEnvironment: { create(webGpuDevice: null): Deletable };
  loadModel(env: Deletable, ptr: number, size: number): LrtModel;
  compileModel(env: Deletable, model: LrtModel, options: object): LrtCompiledModel | Promise<LrtCompiledModel>;
  LiteRtTensorBuffer: { createManaged(env: Deletable, type: EnumValue, tensorType: LrtTensorType, size: number): LrtTensorBuffer };
  LiteRtTensorBufferType: { HOST_MEMORY: EnumValue };
  LiteRtTensorBufferLockMode: { READ: EnumValue; WRITE: EnumValue };
}

/** litert::ElementType values (litert_model_types.h) that map to a typed array. */
const LITERT_DTYPES: Record<number, DType> = {
  1: 'float32', 2: 'int32', 3: 'uint8', 4: 'int64', 6: 'bool', 7: 'int16', 9: 'int8',
  10: 'float16', 11: 'float64', 13: 'uint64', 16: 'uint32', 17: 'uint16', 19: 'bfloat16',
};
const LITERT_TYPE_NAMES: Record<number, string> = { 0: 'NONE', 5: 'STRING', 8: 'COMPLEX64', 12: 'COMPLEX128', 14: 'RESOURCE', 15: 'VARIANT', 18: 'INT4' };

function vectorToArray<T>(vector: EmVector<T>): T[] {
  try {
    const out: T[] = [];
    for (let i = 0; i < vector.size(); i++) out.push(vector.get(i));
    return out;
  } finally {
    vector.delete();
  }
}

function describeLiteRtType(type: LrtTensorType, name: string): TensorSpec {
  const layout = type.layout();
  try {
    const code = type.elementType().value;
    const dtype = LITERT_DTYPES[code];
    if (!dtype) {
      throw new PrunepackError('UNSUPPORTED', `litert: tensor element type ${LITERT_TYPE_NAMES[code] ?? code} cannot be fed or read`, {
        format: 'tflite', location: name,
      });
    }
    return { name, dtype, shape: vectorToArray(layout.dimensions()) };
  } finally {
    layout.delete();
  }
}

async function initLiteRt(): Promise<TfliteEngine> {
  const log = new RuntimeLog('litert');
  const { module: wasm, initMs, version } = await instantiateEmscripten<LiteRtWasm>(
    'litert', '@litertjs/core', 'wasm/litert_wasm_compat_internal.js', 'wasm/litert_wasm_compat_internal.wasm', log,
  );
  let env: Deletable;
  try {
    wasm.setupLogging();
    env = wasm.LiteRtEnvironment.create(null);
  } catch (cause) {
    throw runtimeError('litert', 'could not create the LiteRT environment', cause, log.since(0));
  }
  const guard = new AbortGuard('litert', log, () => forgetEngine(engine));
  const fail = (what: string, cause: unknown, mark: number): PrunepackError => guard.fail(what, cause, mark);
  const ensureUsable = () => guard.ensureUsable();

  const engine: TfliteEngine = {
    name: 'litert',
    version,
    initMs,
    memoryBytes: () => wasm.HEAPU8.byteLength,
    async load(bytes: Uint8Array): Promise<TfliteSession> {
      ensureUsable();
      if (!(bytes instanceof Uint8Array)) {
        throw new PrunepackError('INVALID_ARGUMENT', 'litert: model must be a Uint8Array', { found: typeof bytes });
      }
      const mark = log.mark();
      const live: Deletable[] = [];
      let ptr = 0;
      let model: LrtModel | undefined;
      let compiled: LrtCompiledModel | undefined;
      const freeAll = () => {
        for (const object of live.splice(0).reverse()) object.delete();
        if (ptr) { wasm._free(ptr); ptr = 0; }
      };
      let inputs: TensorSpec[];
      let outputs: TensorSpec[];
      try {
        // the model bytes are used in place by LiteRT, so they stay in wasm memory until dispose
        ptr = wasm._malloc(Math.max(1, bytes.byteLength));
        if (!ptr) throw new Error(`out of wasm memory for a ${bytes.byteLength}-byte model`);
        wasm.HEAPU8.set(bytes, ptr);
        try {
          model = wasm.loadModel(env, ptr, bytes.byteLength);
        } catch (cause) {
          throw fail('the runtime refused the model', cause, mark);
        }
        live.push(model);
        try {
          compiled = await wasm.compileModel(env, model, {
            accelerator: 'wasm', cpuOptions: { numThreads: 1 }, gpuOptions: {}, webNNOptions: {},
          });
        } catch (cause) {
          throw fail('the runtime could not prepare the model (unsupported op or invalid tensors?)', cause, mark);
        }
        live.push(compiled);
        if (fatalLines(log.since(mark)).length) {
          throw runtimeError('litert', 'the runtime could not prepare the model (unsupported op or invalid tensors?)', undefined, fatalLines(log.since(mark)));
        }
        if (model.getNumSignatures() < 1) throw runtimeError('litert', 'the model has no signature / subgraph to run', undefined, log.since(mark));
        const signature = model.getSignature(0);
        try {
          const inNames = vectorToArray(signature.inputNames());
          const outNames = vectorToArray(signature.outputNames());
          inputs = inNames.map((name, i) => {
            const type = model!.getInputTensorType(0, i);
            try { return describeLiteRtType(type, name); } finally { type.delete(); }
          });
          outputs = outNames.map((name, i) => {
            const type = model!.getOutputTensorType(0, i);
            try { return describeLiteRtType(type, name); } finally { type.delete(); }
          });
        } finally {
          signature.delete();
        }
        for (const spec of inputs) elementCountOf(spec); // rejects dynamic input shapes now
      } catch (e) {
        // after an abort the module's memory is unusable: drop it rather than call into it
        if (!guard.broken && !isAbort(e)) freeAll();
        if (e instanceof PrunepackError) throw e;
        throw fail('loading the model failed', e, mark);
      }
      const runtimeLogLines = log.since(mark);
      let disposed = false;
      const session: TfliteSession = {
        engine: 'litert',
        runtimeLog: runtimeLogLines,
        get disposed() { return disposed; },
        inputs: () => inputs.map((s) => ({ ...s, shape: [...s.shape] })),
        outputs: () => outputs.map((s) => ({ ...s, shape: [...s.shape] })),
        async run(values: readonly TypedArray[]): Promise<TypedArray[]> {
          if (disposed) throw new PrunepackError('INVALID_ARGUMENT', 'litert: session was disposed');
          ensureUsable();
          checkInputs('litert', inputs, values);
          const runMark = log.mark();
          const inBuffers: LrtTensorBuffer[] = [];
          let outBuffers: LrtTensorBuffer[] = [];
          try {
            try {
              values.forEach((value, i) => {
                const type = model!.getInputTensorType(0, i);
                try {
                  const size = type.bytes();
                  if (size !== value.byteLength) throw new Error(`input ${inputs[i]!.name} needs ${size} bytes, got ${value.byteLength}`);
                  const buffer = wasm.LiteRtTensorBuffer.createManaged(env, wasm.LiteRtTensorBufferType.HOST_MEMORY, type, size);
                  inBuffers.push(buffer);
                  const dst = buffer.lock(wasm.LiteRtTensorBufferLockMode.WRITE);
                  try { wasm.HEAPU8.set(bytesOf(value), dst); } finally { buffer.unlock(); }
                } finally {
                  type.delete();
                }
              });
              outBuffers = await compiled!.run(0, inBuffers);
            } catch (cause) {
              throw fail('running the model failed', cause, runMark);
            }
            if (fatalLines(log.since(runMark)).length) {
              throw runtimeError('litert', 'running the model failed', undefined, fatalLines(log.since(runMark)));
            }
            return outBuffers.map((buffer, i) => {
              const spec = outputs[i]!;
              const ctor = VIEW_OF[spec.dtype]!;
              if (buffer.offset() !== 0) throw fail(`output ${spec.name} has a non-zero buffer offset`, undefined, runMark);
              const byteLength = buffer.packedSize();
              const src = buffer.lock(wasm.LiteRtTensorBufferLockMode.READ);
              try { return copyOut(wasm.HEAPU8, src, byteLength, ctor); } finally { buffer.unlock(); }
            });
          } finally {
            if (!guard.broken) {
              for (const b of inBuffers) b.delete();
              for (const b of outBuffers) b.delete();
            }
          }
        },
        dispose() {
          if (disposed) return;
          disposed = true;
          if (!guard.broken) freeAll();
        },
      };
      return session;
    },
  };
  return engine;
}

// ---------------------------------------------------------------------------------------------
// @tensorflow/tfjs-tflite — TFLiteWebModelRunner of tflite_web_api_cc_simd
// ---------------------------------------------------------------------------------------------

interface TfwTensorInfo extends Deletable {
  readonly id: number;
  readonly dataType: string;
  readonly name: string;
  readonly shape: string;
  data(): NumericArray | number;
}
interface TfwRunner extends Deletable {
  GetInputs(): EmVector<TfwTensorInfo>;
  GetOutputs(): EmVector<TfwTensorInfo>;
  Infer(): boolean;
}
interface TfwStatusOr extends Deletable { ok(): boolean; errorMessage(): string; value(): TfwRunner }
interface TfwModule {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  TFLiteWebModelRunner: {
    CreateFromBufferAndOptions(ptr: number, size: number, options: { numThreads: number; enableProfiling: boolean; maxProfilingBufferEntries: number }): TfwStatusOr;
  };
}

const TFW_DTYPES: Record<string, DType> = {
  int8: 'int8', uint8: 'uint8', bool: 'bool', int16: 'int16', int32: 'int32', uint32: 'uint32', float32: 'float32', float64: 'float64',
};

async function initTfjsTflite(): Promise<TfliteEngine> {
  const log = new RuntimeLog('tfjs-tflite');
  const { module: wasm, initMs, version } = await instantiateEmscripten<TfwModule>(
    'tfjs-tflite', '@tensorflow/tfjs-tflite', 'wasm/tflite_web_api_cc_simd.js', 'wasm/tflite_web_api_cc_simd.wasm', log,
  );
  const guard = new AbortGuard('tfjs-tflite', log, () => forgetEngine(engine));
  const fail = (what: string, cause: unknown, mark: number): PrunepackError => guard.fail(what, cause, mark);
  const ensureUsable = () => guard.ensureUsable();

  const engine: TfliteEngine = {
    name: 'tfjs-tflite',
    version,
    initMs,
    memoryBytes: () => wasm.HEAPU8.byteLength,
    async load(bytes: Uint8Array): Promise<TfliteSession> {
      ensureUsable();
      if (!(bytes instanceof Uint8Array)) {
        throw new PrunepackError('INVALID_ARGUMENT', 'tfjs-tflite: model must be a Uint8Array', { found: typeof bytes });
      }
      const mark = log.mark();
      let ptr = 0;
      let runner: TfwRunner | undefined;
      const infos: TfwTensorInfo[] = [];
      const freeAll = () => {
        for (const info of infos.splice(0)) info.delete();
        runner?.delete();
        runner = undefined;
        if (ptr) { wasm._free(ptr); ptr = 0; }
      };
      let inInfos: TfwTensorInfo[];
      let outInfos: TfwTensorInfo[];
      let inputs: TensorSpec[];
      let outputs: TensorSpec[];
      try {
        ptr = wasm._malloc(Math.max(1, bytes.byteLength));
        if (!ptr) throw new Error(`out of wasm memory for a ${bytes.byteLength}-byte model`);
        wasm.HEAPU8.set(bytes, ptr);
        let status: TfwStatusOr;
        try {
          status = wasm.TFLiteWebModelRunner.CreateFromBufferAndOptions(ptr, bytes.byteLength, {
            numThreads: 1, enableProfiling: false, maxProfilingBufferEntries: 1024,
          });
        } catch (cause) {
          throw fail('the runtime refused the model', cause, mark);
        }
        try {
          if (!status.ok()) throw runtimeError('tfjs-tflite', 'the runtime refused the model', new Error(status.errorMessage()), log.since(mark));
          runner = status.value();
        } finally {
          status.delete();
        }
        const describe = (list: TfwTensorInfo[]): TensorSpec[] => list.map((info) => {
          const dtype = TFW_DTYPES[info.dataType];
          if (!dtype) {
            throw new PrunepackError('UNSUPPORTED', `tfjs-tflite: tensor type ${info.dataType} cannot be fed or read by this runtime`, {
              format: 'tflite', location: info.name, hint: "use the 'litert' engine",
            });
          }
          return { name: info.name, dtype, shape: info.shape === '' ? [] : info.shape.split(',').map(Number) };
        });
        inInfos = vectorToArray(runner.GetInputs());
        infos.push(...inInfos);
        outInfos = vectorToArray(runner.GetOutputs());
        infos.push(...outInfos);
        inputs = describe(inInfos);
        outputs = describe(outInfos);
        for (const spec of inputs) elementCountOf(spec);
      } catch (e) {
        // after an abort the module's memory is unusable: drop it rather than call into it
        if (!guard.broken && !isAbort(e)) freeAll();
        if (e instanceof PrunepackError) throw e;
        throw fail('loading the model failed', e, mark);
      }
      const runtimeLogLines = log.since(mark);
      let disposed = false;
      return {
        engine: 'tfjs-tflite',
        runtimeLog: runtimeLogLines,
        get disposed() { return disposed; },
        inputs: () => inputs.map((s) => ({ ...s, shape: [...s.shape] })),
        outputs: () => outputs.map((s) => ({ ...s, shape: [...s.shape] })),
        async run(values: readonly TypedArray[]): Promise<TypedArray[]> {
          if (disposed) throw new PrunepackError('INVALID_ARGUMENT', 'tfjs-tflite: session was disposed');
          ensureUsable();
          checkInputs('tfjs-tflite', inputs, values);
          const runMark = log.mark();
          let ok: boolean;
          try {
            values.forEach((value, i) => {
              const view = inInfos[i]!.data();
              if (typeof view === 'number' || view.byteLength !== value.byteLength) throw new Error(`input ${inputs[i]!.name}: runtime buffer does not match`);
              bytesOf(view).set(bytesOf(value));
            });
            ok = runner!.Infer();
          } catch (cause) {
            throw fail('running the model failed', cause, runMark);
          }
          if (!ok || fatalLines(log.since(runMark)).length) {
            throw runtimeError('tfjs-tflite', `running the model failed${ok ? '' : ' (Infer returned false)'}`, undefined, log.since(runMark));
          }
          return outInfos.map((info, i) => {
            const view = info.data();
            if (typeof view === 'number') throw runtimeError('tfjs-tflite', `output ${info.name} has no readable buffer`, undefined, []);
            return copyOut(bytesOf(view), 0, view.byteLength, VIEW_OF[outputs[i]!.dtype]!);
          });
        },
        dispose() {
          if (disposed) return;
          disposed = true;
          if (!guard.broken) freeAll();
        },
      };
    },
  };
  return engine;
}
