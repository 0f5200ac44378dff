import { openModel } from '../index.js';
import { PrunepackError } from '../errors.js';
import { bfloat16ToFloat32, float16ToFloat32, type DType } from '../model/dtype.js';
import type { Model } from '../model/types.js';
import { compareModelWeights, type WeightComparison } from '../verify/weights.js';
import type { TensorSpec, TypedArray } from '../verify/tflite-runtime.js';
import { formatInt, table } from './format.js';
import { parseOptions } from './args.js';
import { createProgress, type Progress } from './progress.js';

export const VERIFY_HELP = `Usage: prunepack verify A B [--run] [--inputs N] [--rtol R] [--atol T] [--json]

Checks that two model files hold the same model: A and B may be different encodings or formats
(a .tflite and its tflite-sparse output, an .onnx and its onnx-sparse output). Weights are paired
by name (by position where names differ; the report lists those pairs) and compared as dense
values: float16/bfloat16 decoded, -0.0 equal to +0.0, NaN equal to a NaN of the same bits.
With --run both models also run in their runtime (the TFLite WASM runtime or onnxruntime-node,
per file) on the same deterministic inputs, and every output is compared.

Exit code 0 when equivalent, 1 when not (the first differences are listed).

Options:
  --run             also run both models and compare their outputs
  --inputs N        number of deterministic input sets for --run (default 3)
  --rtol R          relative tolerance for outputs: |a - b| <= atol + rtol * max(|a|, |b|, S), S the
                    largest |value| of A's output (as convert's runtime check; default 1e-5)
  --atol T          absolute tolerance for outputs (default 1e-6)
  --max-diffs N     how many differences to list (default 10)
  --json            the result as JSON on stdout (schema "prunepack.verify/1")
  --quiet           no progress bar on stderr
  --verbose         stack traces on errors

Examples:
  prunepack verify model.tflite model.tflite-sparse.tflite --run
  prunepack verify model.onnx model.onnx-sparse.onnx --run --inputs 5 --json`;

export interface RunOptions {
  inputs: number;
  rtol: number;
  atol: number;
  maxDifferences: number;
  onProgress?: Progress['callback'];
}

export interface OutputRunComparison {
  index: number;
  nameA: string;
  nameB: string;
  dtype: string | null;
  elements: number;
  maxAbsDiff: number;
  maxRelDiff: number;
  bitIdentical: boolean;
  /** Elements outside the tolerance, over all input sets. */
  outOfTolerance: number;
  withinTolerance: boolean;
}

export interface RunDifference {
  output: string;
  inputSet: number;
  index: number;
  a: string;
  b: string;
}

export interface RunComparison {
  engineA: string;
  engineB: string;
  inputs: TensorSpec[];
  seeds: number[];
  outputs: OutputRunComparison[];
  differences: RunDifference[];
  equivalent: boolean;
}

interface RunnableSession {
  engine: string;
  inputs(): TensorSpec[];
  outputNames(): string[];
  outputDTypes(): Array<DType | undefined>;
  run(inputs: readonly TypedArray[]): Promise<Array<TypedArray | string[]>>;
  dispose(): Promise<void>;
}

/** Loads a model in its runtime: TFLite in LiteRT (tfjs-tflite when LiteRT refuses it), ONNX in onnxruntime-node. */
async function openSession(file: string, model: Model, bytes: Uint8Array, preferEngine?: string): Promise<RunnableSession> {
  if (model.format === 'onnx') {
    const { loadOnnxSession } = await import('../verify/onnx-runtime.js');
    const session = await loadOnnxSession(file);
    return {
      engine: session.runtime, inputs: () => session.inputs(), outputNames: () => session.outputNames(),
      outputDTypes: () => session.outputDTypes(), run: (x) => session.run(x), dispose: () => session.dispose(),
    };
  }
  if (model.format === 'tflite') {
    const runtime = await import('../verify/tflite-runtime.js');
    const names = preferEngine ? runtime.ENGINE_NAMES.filter((n) => preferEngine.startsWith(n)) : runtime.ENGINE_NAMES;
    const failures: string[] = [];
    for (const name of names) {
      try {
        const engine = await runtime.loadTfliteRuntime(name);
        const session = await engine.load(bytes);
        const outputs = session.outputs();
        return {
          engine: `${engine.name} (${engine.version})`, inputs: () => session.inputs(), outputNames: () => outputs.map((o) => o.name),
          outputDTypes: () => outputs.map((o) => o.dtype), run: (x) => session.run(x), dispose: async () => session.dispose(),
        };
      } catch (e) {
        if (!(e instanceof PrunepackError && (e.code === 'RUNTIME' || e.code === 'UNSUPPORTED'))) throw e;
        failures.push(e.message.split('\n')[0]!);
      }
    }
    throw new PrunepackError('RUNTIME', `no TFLite runtime can run ${file}: ${failures.join('; ')}`, { format: 'tflite' });
  }
  throw new PrunepackError('UNSUPPORTED', `cannot run ${model.format} models`, { location: file, hint: 'Run verify without --run to compare the weights' });
}

function valueOf(array: TypedArray | string[], i: number, dtype: DType | undefined): number | string {
  const v = array[i]!;
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number(v);
  if (array instanceof Uint16Array && dtype === 'float16') return float16ToFloat32(v as number);
  if (array instanceof Uint16Array && dtype === 'bfloat16') return bfloat16ToFloat32(v as number);
  return v as number;
}

function text(v: number | string): string {
  return typeof v === 'string' ? JSON.stringify(v) : Object.is(v, -0) ? '-0' : String(v);
}

/** Runs A and B on the same deterministic inputs and compares every output (by position). */
export async function compareModelRuns(fileA: string, a: { model: Model; bytes: Uint8Array }, fileB: string, b: { model: Model; bytes: Uint8Array }, options: RunOptions): Promise<RunComparison> {
  const { deterministicInputs } = await import('../verify/tflite-runtime.js');
  options.onProgress?.({ phase: 'loading runtimes', done: 0, total: 2 });
  const sa = await openSession(fileA, a.model, a.bytes);
  try {
    const sb = await openSession(fileB, b.model, b.bytes, a.model.format === b.model.format ? sa.engine : undefined);
    try {
      const specs = sa.inputs();
      const specsB = sb.inputs();
      const describe = (s: TensorSpec[]) => s.map((x) => `${x.name}: ${x.dtype}[${x.shape.join(',')}]`).join(', ');
      if (specs.length !== specsB.length || specs.some((s, i) => s.dtype !== specsB[i]!.dtype || s.shape.join(',') !== specsB[i]!.shape.join(','))) {
        throw new PrunepackError('UNSUPPORTED', 'the two models take different inputs, so they cannot be fed the same data', {
          expected: describe(specs), found: describe(specsB), hint: 'Compare the weights only (verify without --run)',
        });
      }
      const seeds = Array.from({ length: options.inputs }, (_, i) => i + 1);
      const outputs: OutputRunComparison[] = [];
      const differences: RunDifference[] = [];
      let namesA: string[] = [];
      let namesB: string[] = [];
      for (const seed of seeds) {
        options.onProgress?.({ phase: 'running both models', done: seed - 1, total: seeds.length, item: `input set ${seed}` });
        const inputs = deterministicInputs(specs, seed);
        const outA = await sa.run(inputs);
        const outB = await sb.run(inputs);
        namesA = sa.outputNames();
        namesB = sb.outputNames();
        if (outA.length !== outB.length) {
          throw new PrunepackError('VERIFY_FAILED', 'the two models have a different number of outputs', { expected: namesA.join(', '), found: namesB.join(', ') });
        }
        const dtypesA = sa.outputDTypes();
        const dtypesB = sb.outputDTypes();
        outA.forEach((x, k) => {
          const y = outB[k]!;
          const o = outputs[k] ??= {
            index: k, nameA: namesA[k] ?? String(k), nameB: namesB[k] ?? String(k), dtype: dtypesA[k] ?? null, elements: x.length,
            maxAbsDiff: 0, maxRelDiff: 0, bitIdentical: true, outOfTolerance: 0, withinTolerance: true,
          };
          if (x.length !== y.length) {
            o.bitIdentical = false; o.withinTolerance = false; o.maxAbsDiff = Infinity; o.maxRelDiff = Infinity; o.outOfTolerance += Math.max(x.length, y.length);
            if (differences.length < options.maxDifferences) differences.push({ output: o.nameA, inputSet: seed, index: -1, a: `${x.length} elements`, b: `${y.length} elements` });
            return;
          }
          // The output's scale: rounding noise on a value near zero inside a large output is
          // judged against the output's magnitude, as convert's runtime check does.
          let outputScale = 0;
          for (let i = 0; i < x.length; i++) {
            const v = valueOf(x, i, dtypesA[k]);
            if (typeof v === 'number' && Number.isFinite(v) && Math.abs(v) > outputScale) outputScale = Math.abs(v);
          }
          for (let i = 0; i < x.length; i++) {
            const p = valueOf(x, i, dtypesA[k]);
            const q = valueOf(y, i, dtypesB[k]);
            if (p === q || (typeof p === 'number' && typeof q === 'number' && Number.isNaN(p) && Number.isNaN(q))) {
              if (typeof p === 'number' && Object.is(p, -0) !== Object.is(q, -0)) o.bitIdentical = false;
              continue;
            }
            o.bitIdentical = false;
            let within = false;
            if (typeof p === 'number' && typeof q === 'number') {
              const diff = Math.abs(p - q);
              const scale = Math.max(Math.abs(p), Math.abs(q));
              const rel = scale > 0 ? diff / scale : 0;
              const d = Number.isNaN(diff) ? Infinity : diff;
              if (d > o.maxAbsDiff) o.maxAbsDiff = d;
              if ((Number.isNaN(rel) ? Infinity : rel) > o.maxRelDiff) o.maxRelDiff = Number.isNaN(rel) ? Infinity : rel;
              within = diff <= options.atol + options.rtol * Math.max(scale, outputScale);
            } else {
              o.maxAbsDiff = Infinity;
              o.maxRelDiff = Infinity;
            }
            if (!within) {
              o.outOfTolerance++;
              o.withinTolerance = false;
              if (differences.length < options.maxDifferences) differences.push({ output: o.nameA, inputSet: seed, index: i, a: text(p), b: text(q) });
            }
          }
        });
      }
      options.onProgress?.({ phase: 'running both models', done: seeds.length, total: seeds.length });
      return {
        engineA: sa.engine, engineB: sb.engine, inputs: specs, seeds, outputs, differences,
        equivalent: outputs.every((o) => o.withinTolerance),
      };
    } finally {
      await sb.dispose();
    }
  } finally {
    await sa.dispose();
  }
}

function parseNumber(name: string, value: string | undefined, fallback: number, check: (n: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new PrunepackError('INVALID_ARGUMENT', `invalid ${name}`, { expected, found: value });
  return n;
}

export interface VerifyResult {
  schema: 'prunepack.verify/1';
  a: { file: string; format: string; weights: number };
  b: { file: string; format: string; weights: number };
  weights: WeightComparison;
  run: RunComparison | null;
  tolerance: { rtol: number; atol: number };
  equivalent: boolean;
}

export async function runVerify(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions({
    args, allowPositionals: true,
    options: {
      run: { type: 'boolean' }, inputs: { type: 'string' }, rtol: { type: 'string' }, atol: { type: 'string' },
      'max-diffs': { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, verbose: { type: 'boolean' },
    },
  });
  if (positionals.length !== 2) {
    throw new PrunepackError('INVALID_ARGUMENT', `verify takes two model paths, got ${positionals.length}`, { hint: 'Usage: prunepack verify A B [--run]' });
  }
  const inputs = parseNumber('--inputs', values.inputs, 3, (n) => Number.isInteger(n) && n >= 1 && n <= 1000, 'a whole number in 1..1000');
  const rtol = parseNumber('--rtol', values.rtol, 1e-5, (n) => n >= 0, 'a number >= 0, e.g. 1e-5');
  const atol = parseNumber('--atol', values.atol, 1e-6, (n) => n >= 0, 'a number >= 0, e.g. 1e-6');
  const maxDifferences = parseNumber('--max-diffs', values['max-diffs'], 10, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0');
  if (!values.run && (values.inputs !== undefined || values.rtol !== undefined || values.atol !== undefined)) {
    throw new PrunepackError('INVALID_ARGUMENT', '--inputs, --rtol and --atol apply to --run', { hint: 'Add --run' });
  }
  const [fileA, fileB] = positionals as [string, string];
  const progress = createProgress({ quiet: values.quiet });
  let result: VerifyResult;
  try {
    progress.phase(`reading ${fileA}`, 1);
    const a = openModel(fileA);
    progress.phase(`reading ${fileB}`, 1);
    const b = openModel(fileB);
    const weights = compareModelWeights(a.model, b.model, { maxDifferences, onProgress: progress.callback });
    let run: RunComparison | null = null;
    if (values.run) {
      for (const [file, m] of [[fileA, a], [fileB, b]] as const) {
        if (m.source.bytes.length !== (m.source.fileSize ?? m.source.bytes.length)) {
          throw new PrunepackError('UNSUPPORTED', 'models over 2 GB cannot be run in the runtimes', { location: file, hint: 'Compare the weights only (verify without --run)' });
        }
      }
      run = await compareModelRuns(fileA, { model: a.model, bytes: a.source.bytes }, fileB, { model: b.model, bytes: b.source.bytes },
        { inputs, rtol, atol, maxDifferences, onProgress: progress.callback });
    }
    result = {
      schema: 'prunepack.verify/1',
      a: { file: fileA, format: a.model.format, weights: a.model.weights.length },
      b: { file: fileB, format: b.model.format, weights: b.model.weights.length },
      weights, run, tolerance: { rtol, atol },
      equivalent: weights.equivalent && (run?.equivalent ?? true),
    };
  } finally {
    progress.done();
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2)}\n`);
  } else {
    process.stdout.write(`${renderVerifyText(result)}\n`);
  }
  return result.equivalent ? 0 : 1;
}

function exp(x: number): string {
  return x === 0 ? '0' : Number.isFinite(x) ? x.toExponential(3) : String(x);
}

export function renderVerifyText(r: VerifyResult): string {
  const out: string[] = [];
  const w = r.weights;
  out.push(`A: ${r.a.file} (${r.a.format}, ${r.a.weights} weights)`);
  out.push(`B: ${r.b.file} (${r.b.format}, ${r.b.weights} weights)`);
  let pairing = `${w.matchedByName} paired by name`;
  if (w.matchedByPosition.length) pairing += `, ${w.matchedByPosition.length} by position because their names differ`;
  if (w.onlyInA.length) pairing += `, ${w.onlyInA.length} only in A`;
  if (w.onlyInB.length) pairing += `, ${w.onlyInB.length} only in B`;
  out.push(`weights: ${pairing}`);
  for (const p of w.matchedByPosition.slice(0, 10)) out.push(`  by position: ${p.a} <-> ${p.b}`);
  if (w.matchedByPosition.length > 10) out.push(`  ... ${w.matchedByPosition.length - 10} more`);
  out.push(w.differingWeights === 0 && w.onlyInA.length === 0 && w.onlyInB.length === 0
    ? `weights: all ${w.pairs.length} equal as dense values`
    : `weights: ${w.differingWeights} differ (${formatInt(w.differingElements)} elements)${w.onlyInA.length + w.onlyInB.length ? `, ${w.onlyInA.length + w.onlyInB.length} unpaired` : ''}`);
  const differing = w.pairs.filter((p) => p.differing > 0);
  for (const p of differing.slice(0, 10)) {
    out.push(`  ${p.a}${p.b !== p.a ? ` / ${p.b}` : ''}: ${formatInt(p.differing)} of ${formatInt(p.elements)} elements differ${p.maxAbsDiff !== null ? `, max abs diff ${exp(p.maxAbsDiff)}` : ''}`);
  }
  if (differing.length > 10) out.push(`  ... ${differing.length - 10} more`);
  if (w.differences.length) {
    out.push('first differences:');
    for (const d of w.differences) out.push(`  ${d.weight}${d.other ? ` (B: ${d.other})` : ''}: ${d.message}`);
  }
  if (r.run) {
    const run = r.run;
    out.push('');
    out.push(`runtime: ${run.engineA}${run.engineB !== run.engineA ? ` vs ${run.engineB}` : ''}, ${run.seeds.length} input set(s), tolerance |a-b| <= ${r.tolerance.atol} + ${r.tolerance.rtol} * max(|a|,|b|,max|output|)`);
    out.push(table(['output', 'elements', 'max abs diff', 'max rel diff', 'bit-identical', 'within tolerance'],
      run.outputs.map((o) => [o.nameA === o.nameB ? o.nameA : `${o.nameA} / ${o.nameB}`, formatInt(o.elements), exp(o.maxAbsDiff), exp(o.maxRelDiff),
        o.bitIdentical ? 'yes' : 'no', o.withinTolerance ? 'yes' : `no (${formatInt(o.outOfTolerance)})`]),
      [false, true, true, true, false, false]));
    if (run.differences.length) {
      out.push('first output differences:');
      for (const d of run.differences) out.push(`  ${d.output} input set ${d.inputSet} element ${d.index}: ${d.a} vs ${d.b}`);
    }
  }
  out.push('');
  out.push(r.equivalent ? 'equivalent' : 'NOT equivalent');
  return out.join('\n');
}
