/**
 * `auditModel`: one report on where a model's bytes are, how its zeros are structured, what every
 * encoding and every writer target would make of each weight, and how far each is from the
 * information bound. Pure computation over a Model (no file system, no terminal); renderers in
 * render-*.ts. What is exact and what is estimated is listed in docs/audit.md.
 */
import type { Model } from '../model/types.js';
import { crc32, type DeflateLevel } from '../sparsity/codecs.js';
import { gzipSizeOf, type GzipLevel } from './gzip.js';
import { AUDIT_SCHEMA, type AuditReport, type AuditTargetTotal } from './report.js';
import { auditTargets, targetsOf, type FormatTargets, type TargetOutput } from './targets.js';
import { zeroPatternOf } from './zero-pattern.js';
import {
  analyzeWeight, deepGzip, denseWeightOf, fullyConnectedReport, isFullyConnectedItem, storedLength, streamWeight,
  zeroPatternInterest, type RangeTarget, type StreamedWeight, type WorkItem,
} from './weight.js';

export { blockPruneCost, rowAxisFor, selectKth, selectKthNonNegative, streamWeight, type RangeTarget, type StreamedWeight } from './weight.js';

export const TOOL_VERSION = '0.1.0';

/** Same shape as the CLI's progress events (src/cli/progress.ts). */
export interface AuditProgressEvent {
  phase: string;
  done: number;
  total: number;
  item?: string;
}

export interface AuditOptions {
  /** Path shown in the report. */
  file?: string | null;
  /** The input file's bytes, to report its gzip size (skipped when absent or partial). */
  input?: Uint8Array;
  /** The input file's size (default: input.length, or the stored weight bytes). */
  inputBytes?: number;
  /** gzip level for every gzip figure (default 6; 9 matches gzip -9, several times slower). */
  gzipLevel?: GzipLevel;
  /** List only the first `top` weights (all are still analysed and counted in the totals). */
  top?: number | null;
  /**
   * How many weights, in report order, get the per-weight gzip and the entropy-coded (+deflate)
   * candidates, the expensive part on big models: default 20; null for every weight; 0 for none.
   */
  gzipWeights?: number | null;
  /** Inputs larger than this are gzipped only when identical to a target output (default 64 MiB). */
  inputGzipLimit?: number;
  /** Zero-pattern pictures for this many of the largest listed weights (default 0; the HTML report uses 6). */
  zeroPatterns?: number;
  onProgress?: (event: AuditProgressEvent) => void;
  /**
   * Compute what `prune --block` would cost each FULLY_CONNECTED weight (`fullyConnected[].prune`):
   * block magnitude sums over every value and a selection among all blocks, several times the
   * cost of the rest of the analysis. Default false: `prune` is null with a `pruneNote`.
   */
  pruneCost?: boolean;
  /**
   * The paged file a streaming audit's model was opened from (`openModel(file, { paged: true }).source.paged`):
   * each weight is then read straight into the analysis kernel's memory instead of a new array.
   */
  paged?: RangeTarget;
  /**
   * One pass over the weights, each loaded, analysed and released before the next (models read
   * with `openModel(file, { paged: true })` then hold about one weight): per-weight analysis,
   * codec candidates, FULLY_CONNECTED blocks, zero patterns and (for the first `gzipWeights`
   * weights in model order, default 0) gzip. The writer targets are not built: their totals are
   * absent (`convert` gives them). Default false.
   */
  streaming?: boolean;
  /** Weights a streaming audit already analysed elsewhere (worker threads: src/audit/parallel.ts), by index. */
  streamed?: ReadonlyMap<number, StreamedWeight>;
}

/** Audits every weight of `model` and every writer target of its format. */
export function auditModel(model: Model, options: AuditOptions = {}): AuditReport {
  const gzipLevel: GzipLevel = options.gzipLevel ?? 6;
  const top = options.top ?? null;
  const streaming = options.streaming ?? false;
  const pruneCost = options.pruneCost ?? false;
  const gzipWeights = options.gzipWeights === undefined ? (streaming ? 0 : 20) : options.gzipWeights;
  const level = gzipLevel as DeflateLevel;
  const inputGzipLimit = options.inputGzipLimit ?? 64 * 1024 * 1024;
  const progress = options.onProgress;
  const timings: Record<string, number> = {};
  const timed = <T>(phase: string, f: () => T): T => {
    const t0 = performance.now();
    try { return f(); } finally { timings[phase] = Math.round(performance.now() - t0); }
  };

  // 1. Per weight: zero structure, bound, exact codec sizes.
  const items: WorkItem[] = timed('analyze', () => {
    const totalBytes = model.weights.reduce((n, w) => n + storedLength(w), 0);
    let doneBytes = 0;
    const deepCount = gzipWeights === null ? Infinity : gzipWeights;
    return model.weights.map((weight, index): WorkItem => {
      const done = options.streamed?.get(index);
      if (done) return { index, weight, ...done };
      const stored = storedLength(weight);
      progress?.({ phase: 'analyzing weights', done: doneBytes, total: totalBytes, item: weight.name });
      doneBytes += stored;
      if (!streaming) return analyzeWeight(model, weight, index);
      return { index, weight, ...streamWeight(model, index, { gzipLevel, deep: index < deepCount, zeroPattern: (options.zeroPatterns ?? 0) > 0, pruneCost, ...(options.paged ? { paged: options.paged } : {}) }) };
    });
  });

  // 2. Writer targets: exact outputs, per-weight choices (not built when streaming).
  const targets: FormatTargets = streaming
    ? { outputs: [], candidates: new Map(), xnnpack: null, notes: ['streaming audit: writer targets not built (their sizes need the whole model in memory); run convert, or audit with --no-stream'] }
    : timed('targets', () => auditTargets(model, (target, done, total) => {
      progress?.({ phase: 'planning targets', done, total, item: target });
    }));
  items.forEach((item) => {
    for (const out of targets.outputs) {
      const choice = 'choices' in out ? out.choices?.get(item.index) : undefined;
      if (choice) item.row.targets.push(choice);
    }
    for (const c of targets.candidates.get(item.index) ?? []) item.row.candidates.push(c);
    for (const c of item.row.candidates) if (c.encoding !== 'dense+gzip' && !c.encoding.endsWith('+deflate')) item.rawBest = Math.min(item.rawBest, c.bytes);
    item.row.savedBytes = Math.max(0, item.row.denseBytes - item.rawBest);
  });

  // 3. Order: most bytes saved first, then the largest.
  items.sort((x, y) => y.row.savedBytes - x.row.savedBytes || y.row.denseBytes - x.row.denseBytes || x.row.name.localeCompare(y.row.name));
  items.forEach((item, k) => { item.row.rank = k + 1; });
  const listed = top === null ? items : items.slice(0, Math.max(0, top));

  // 4. gzip: the target outputs, the input, and (only where asked) each weight.
  const targetGzip = new Map<string, number>();
  let inputGzip: number | null = null;
  let gzipped = 0;
  timed('gzip', () => {
    const okOutputs = targets.outputs.filter((o): o is TargetOutput => 'size' in o);
    const deep = streaming ? [] : gzipWeights === null ? listed : listed.slice(0, Math.max(0, gzipWeights));
    const input = options.input && (options.inputBytes === undefined || options.inputBytes === options.input.length) ? options.input : undefined;
    // Outputs of equal size are checksummed first and identical bytes gzipped once (the input is
    // often byte-identical to the dense target; onnx-sparse to onnx when nothing is sparse).
    const INPUT = '\u0000input';
    const sized = [...okOutputs.map((o) => ({ key: o.target, size: o.size, chunks: () => o.chunks() })),
      ...(input ? [{ key: INPUT, size: input.length, chunks: (): Iterable<Uint8Array> => [input] }] : [])];
    const checksum = new Map<string, number>();
    for (const x of sized) {
      if (sized.some((y) => y !== x && y.size === x.size)) checksum.set(x.key, crc32Chunks(x.chunks()));
    }
    const twin = (x: (typeof sized)[number]) => sized.find((y) => y !== x && y.size === x.size && checksum.get(y.key) === checksum.get(x.key));
    const gzipOf = new Map<string, number>();
    // A large input is gzipped only when it is free (identical to a target output).
    const pending = sized.filter((x) => x.key !== INPUT || x.size <= inputGzipLimit || twin(x) !== undefined);
    const total = pending.reduce((n, x) => n + x.size, 0) + deep.reduce((n, i) => n + 2 * i.row.denseBytes, 0);
    let base = 0;
    const report = (item: string) => (done: number) => progress?.({ phase: 'gzip', done: base + done, total, item });
    for (const x of pending) {
      const same = twin(x);
      const known = same ? gzipOf.get(same.key) : undefined;
      const label = x.key === INPUT ? 'input' : x.key;
      const gz = known ?? gzipSizeOf(x.chunks(), gzipLevel, report(label));
      if (known !== undefined) report(label)(x.size);
      gzipOf.set(x.key, gz);
      if (x.key === INPUT) inputGzip = gz; else targetGzip.set(x.key, gz);
      base += x.size;
    }
    for (const item of deep) {
      report(item.row.name)(0);
      deepGzip(item, gzipLevel, level);
      base += 2 * item.row.denseBytes;
    }
    gzipped = streaming ? items.filter((i) => i.row.gzipBytes !== null).length : deep.length;
  });
  for (const item of items) {
    item.row.candidates.sort((a, b) => a.bytes - b.bytes || a.encoding.localeCompare(b.encoding));
    const best = item.row.candidates[0]!;
    item.row.best = { encoding: best.encoding, bytes: best.bytes };
  }

  // 5. FULLY_CONNECTED block structure (issue 11) and zero-pattern pictures.
  const fullyConnected = timed('fullyConnected', () => {
    const fc = items.filter((i) => isFullyConnectedItem(model, i));
    if (streaming) return fc.map((item) => item.fullyConnected!);
    return fc.map((item, k) => {
      progress?.({ phase: 'fully connected blocks', done: k, total: fc.length, item: item.row.name });
      return fullyConnectedReport(item, pruneCost);
    });
  });
  timed('zeroPatterns', () => {
    const count = options.zeroPatterns ?? 0;
    if (count <= 0) return;
    // The largest weights with zeros, matrices first (a bias with no zeros is one dark bar).
    const candidates = listed.filter((i) => zeroPatternInterest(i) > 0)
      .sort((x, y) => zeroPatternInterest(y) - zeroPatternInterest(x) || y.row.denseBytes - x.row.denseBytes).slice(0, count);
    if (streaming) {
      // Pictures were drawn during the pass; keep those of the chosen weights only.
      const keep = new Set(candidates);
      for (const item of items) if (!keep.has(item)) delete item.row.zeroPattern;
      return;
    }
    for (const item of candidates) item.row.zeroPattern = zeroPatternOf(denseWeightOf(item.weight, item.weight.denseBytes()), item.rowAxis);
  });

  // 6. Totals.
  const analyzed = items.filter((i) => i.analysis);
  const denseWeightBytes = items.reduce((n, i) => n + i.row.denseBytes, 0);
  const storedWeightBytes = items.reduce((n, i) => n + i.row.storedBytes, 0);
  const boundWeights = items.reduce((n, i) => n + i.row.informationBound, 0);
  const denseOut = targets.outputs.find((o): o is TargetOutput => o.dense && 'size' in o) ?? null;
  // TF.js: the input file is model.json; its weights are in the shard files next to it.
  const inputBytes = (options.inputBytes ?? options.input?.length ?? storedWeightBytes) + (targets.weightsInOtherFiles ? storedWeightBytes : 0);
  if (targets.weightsInOtherFiles) inputGzip = null;
  const nonWeightBytes = Math.max(0, denseOut ? denseOut.size - denseWeightBytes : inputBytes - storedWeightBytes);
  const fileBound = boundWeights + nonWeightBytes;
  const zeros = analyzed.reduce((n, i) => n + (i.row.zeros ?? 0), 0);
  const elements = analyzed.reduce((n, i) => n + i.row.elements, 0);
  const targetTotals: AuditTargetTotal[] = targets.outputs.map((o) => {
    if (!('size' in o)) {
      return { target: o.target, dense: o.dense, bytes: null, gzipBytes: null, ratio: null, ratioToBound: null, gzipRatioToBound: null, sparseWeights: null, error: o.error };
    }
    const gz = targetGzip.get(o.target) ?? null;
    return {
      target: o.target, dense: o.dense, bytes: o.size, gzipBytes: gz,
      ratio: denseOut && o.size > 0 ? denseOut.size / o.size : null,
      ratioToBound: fileBound > 0 ? o.size / fileBound : null,
      gzipRatioToBound: gz !== null && fileBound > 0 ? gz / fileBound : null,
      sparseWeights: o.sparseWeights,
    };
  });

  const notes = [...targets.notes];
  if (gzipped < items.length) notes.push(`per-weight gzip and +deflate candidates computed for the first ${gzipped} of ${items.length} weights${streaming ? ' in model order' : ''} (--gzip-weights)`);
  if (targets.weightsInOtherFiles) notes.push(`the input is ${options.file ?? 'the model file'} plus ${storedWeightBytes} bytes of weight files; its gzip is not computed`);
  else if (options.input && inputGzip === null) notes.push(`input gzip not computed: the input (${options.input.length} bytes) differs from every target output and is larger than ${inputGzipLimit} bytes`);

  return {
    schema: AUDIT_SCHEMA,
    tool: { name: 'prunepack', version: TOOL_VERSION },
    file: options.file ?? null,
    format: model.format,
    formatVersion: model.version,
    options: { gzipLevel, top, gzipWeights: gzipped, pruneCost },
    targets: targetsOf(model),
    totals: {
      weights: items.length,
      analyzedWeights: analyzed.length,
      elements,
      zeros,
      zeroShare: elements ? zeros / elements : 0,
      storedWeightBytes,
      denseWeightBytes,
      input: { bytes: inputBytes, gzipBytes: inputGzip },
      dense: { target: denseOut?.target ?? null, bytes: denseOut?.size ?? null, gzipBytes: denseOut ? targetGzip.get(denseOut.target) ?? null : null },
      targets: targetTotals,
      informationBound: {
        weightBytes: boundWeights,
        fileBytes: fileBound,
        formula: 'per weight N*H(z/N)/8 + (N-z)*b (H binary entropy, z zeros, b bytes per element); file: plus the dense file\'s non-weight bytes',
      },
      codecWeightBytes: items.reduce((n, i) => n + Math.min(i.row.denseBytes, ...i.row.candidates.filter((c) => c.family === 'codec' && !c.encoding.endsWith('+deflate')).map((c) => c.bytes)), 0),
    },
    weightCount: items.length,
    weights: listed.map((i) => i.row),
    fullyConnected,
    xnnpack: targets.xnnpack,
    budgets: [],
    notes,
    timings,
  };
}

function crc32Chunks(chunks: Iterable<Uint8Array>): number {
  let crc = 0;
  for (const c of chunks) crc = crc32(c, crc);
  return crc;
}
