/**
 * What each writer target of a model's format produces: the exact output (as chunks in file
 * order, so it can be sized and gzipped without one more copy of the model) and, where the
 * plugin's planner says, the per-weight choice and why. TFLite and ONNX have planners; any other
 * plugin falls back to calling its writers (sizes exact, no per-weight choices).
 */
import { densifyTfliteDocument, layoutTflite, planSparseTflite, tfliteDocumentOf, applySparsePlan, type SparsePlan } from '../../converters/tflite/index.js';
import type { TfliteLayout } from '../../converters/tflite/write.js';
import { planOnnx } from '../../converters/onnx/index.js';
import type { OnnxPlanEntry } from '../../converters/onnx/write.js';
import { layoutTfjs, type TfjsTarget } from '../../converters/tfjs/write.js';
import { plugins } from '../../converters/index.js';
import type { Model, WeightTensor } from '../model/types.js';
import type { AuditCandidate, AuditTargetChoice } from './report.js';

export interface TargetOutput {
  target: string;
  dense: boolean;
  /** Output file bytes (exact). */
  size: number;
  /** The output, in file order. */
  chunks(): Iterable<Uint8Array>;
  sparseWeights: number | null;
  /** Choice per weight index (model.weights order). */
  choices?: Map<number, AuditTargetChoice>;
}

export interface TargetFailure {
  target: string;
  dense: boolean;
  error: string;
}

export interface FormatTargets {
  outputs: Array<TargetOutput | TargetFailure>;
  /** Extra per-weight candidates (e.g. the ONNX sparse form when it was not chosen). */
  candidates: Map<number, AuditCandidate[]>;
  xnnpack: { qualifies: boolean; expected: boolean; reason: string } | null;
  notes: string[];
  /** The input file holds no weight bytes (TF.js model.json: the weights are in shard files). */
  weightsInOtherFiles?: boolean;
}

export type StepCallback = (target: string, done: number, total: number) => void;

/** The dense target of a format is the one named like the format ('tflite', 'onnx'). */
export function isDenseTarget(format: string, target: string): boolean {
  return target === format;
}

export function targetsOf(model: Model): string[] {
  const plugin = plugins.find((p) => p.id === model.format);
  return plugin ? Object.keys(plugin.targets) : [];
}

/** Runs every target of the model's format (no runtime check, default options). */
export function auditTargets(model: Model, onStep?: StepCallback): FormatTargets {
  if (model.format === 'tflite') return tfliteTargets(model, onStep);
  if (model.format === 'onnx') return onnxTargets(model, onStep);
  if (model.format === 'tfjs') return tfjsTargets(model, onStep);
  return genericTargets(model, onStep);
}

function failure(target: string, format: string, e: unknown): TargetFailure {
  return { target, dense: isDenseTarget(format, target), error: (e as Error)?.message ?? String(e) };
}

// ---------------------------------------------------------------------------------------------
// TFLite

/** The file bytes of a TFLite layout in order: head, zero padding, pieces. */
function* layoutChunks(layout: TfliteLayout): Iterable<Uint8Array> {
  yield layout.head;
  let at = layout.head.length;
  const zeros = new Uint8Array(64);
  const pad = function* (to: number) {
    while (at < to) {
      const n = Math.min(zeros.length, to - at);
      yield zeros.subarray(0, n);
      at += n;
    }
  };
  for (const piece of layout.pieces) {
    yield* pad(piece.position);
    yield piece.bytes;
    at = piece.position + piece.bytes.length;
  }
  yield* pad(layout.totalSize);
}

interface TfliteRef { subgraph: number; tensor: number }

function tfliteTargets(model: Model, onStep?: StepCallback): FormatTargets {
  const outputs: FormatTargets['outputs'] = [];
  const notes: string[] = [];
  const doc = tfliteDocumentOf(model);
  onStep?.('tflite', 0, 2);
  let dense: ReturnType<typeof densifyTfliteDocument>['doc'];
  try {
    const densified = densifyTfliteDocument(doc);
    dense = densified.doc;
    if (densified.report.densifiedTensors) notes.push(`the input stores ${densified.report.densifiedTensors} weight(s) sparse: the tflite target expands them`);
    const layout = layoutTflite(dense);
    outputs.push({
      target: 'tflite', dense: true, size: layout.totalSize, chunks: () => layoutChunks(layout), sparseWeights: 0,
      choices: new Map(model.weights.map((w, i) => [i, {
        target: 'tflite', encoding: 'dense', sparse: false, bytes: w.denseBytes().length, exact: true,
        reason: w.sparsity ? 'dense target: expanded from the sparse input' : 'dense target',
      }])),
    });
  } catch (e) {
    outputs.push(failure('tflite', 'tflite', e));
    outputs.push(failure('tflite-sparse', 'tflite', e));
    return { outputs, candidates: new Map(), xnnpack: null, notes };
  }
  onStep?.('tflite-sparse', 1, 2);
  const candidates = new Map<number, AuditCandidate[]>();
  let xnnpack: FormatTargets['xnnpack'] = null;
  try {
    const plan: SparsePlan = planSparseTflite(dense);
    const layout = layoutTflite(applySparsePlan(dense, plan));
    xnnpack = { qualifies: plan.xnnpack.qualifies, expected: plan.xnnpack.expected, reason: plan.xnnpack.reason };
    // Plan entries follow the dense document's tensors; weights follow the input's. Both list
    // constants per subgraph in tensor order, so entries are matched by (subgraph, tensor name) in order.
    const queues = new Map<string, typeof plan.entries>();
    for (const e of plan.entries) {
      const key = `${e.subgraph}\u0000${e.tensor}`;
      const q = queues.get(key);
      if (q) q.push(e); else queues.set(key, [e]);
    }
    const choices = new Map<number, AuditTargetChoice>();
    model.weights.forEach((w, i) => {
      const ref = (w as WeightTensor & { tflite?: TfliteRef }).tflite;
      const raw = ref ? doc.model.subgraphs[ref.subgraph]?.tensors[ref.tensor]?.name : undefined;
      const name = typeof raw === 'string' && raw ? raw : ref ? `tensor_${ref.subgraph}_${ref.tensor}` : w.name;
      const entry = queues.get(`${ref?.subgraph ?? 0}\u0000${name}`)?.shift();
      if (!entry) return;
      const sparse = entry.route !== 'dense';
      choices.set(i, {
        target: 'tflite-sparse', encoding: sparse ? entry.encoding : 'dense', sparse, bytes: entry.bytesAfter, exact: !sparse,
        reason: entry.reason || 'dense',
      });
      if (sparse) candidates.set(i, [{ encoding: `tflite-sparse:${entry.encoding}`, family: 'target', bytes: entry.bytesAfter, exact: false }]);
    });
    if (plan.totals.sparseWeights) notes.push('tflite-sparse per-weight bytes are estimates (index vectors and values exact, flatbuffer tables and the DENSIFY operator estimated); the target total is the exact file size');
    outputs.push({
      target: 'tflite-sparse', dense: false, size: layout.totalSize, chunks: () => layoutChunks(layout),
      sparseWeights: plan.totals.sparseWeights, choices,
    });
    notes.push('tflite-sparse: default options (--min-sparsity 0.3, --block auto) and no runtime check; convert may keep weights dense that the runtime refuses');
  } catch (e) {
    outputs.push(failure('tflite-sparse', 'tflite', e));
  }
  onStep?.('tflite-sparse', 2, 2);
  return { outputs, candidates, xnnpack, notes };
}

// ---------------------------------------------------------------------------------------------
// ONNX

const SPARSE_SIZE_IN_REASON = /sparse \((\d+) bytes\)/;

function onnxTargets(model: Model, onStep?: StepCallback): FormatTargets {
  const outputs: FormatTargets['outputs'] = [];
  const candidates = new Map<number, AuditCandidate[]>();
  const notes: string[] = ['onnx and onnx-sparse sizes are exact (protobuf fields as written); onnxruntime densifies sparse tensors at load, so the gain is file size only'];
  const targets = ['onnx', 'onnx-sparse'] as const;
  targets.forEach((target, step) => {
    onStep?.(target, step, targets.length);
    try {
      const layout = planOnnx(model, target);
      if (layout.external) throw new Error('the writer put data in an external file');
      const choices = new Map<number, AuditTargetChoice>();
      let sparseWeights = 0;
      layout.plan.forEach((entry: OnnxPlanEntry, i) => {
        const sparse = entry.encoding === 'sparse-constant' || entry.encoding === 'sparse-scatter';
        if (sparse) sparseWeights++;
        choices.set(i, { target, encoding: entry.encoding, sparse, bytes: entry.bytesAfter, exact: true, reason: entry.reason });
        if (target !== 'onnx-sparse') return;
        // The sparse form's size, also when it lost to dense (the writer says it in the reason).
        const lost = SPARSE_SIZE_IN_REASON.exec(entry.reason);
        const bytes = sparse ? entry.bytesAfter : lost ? Number(lost[1]) : null;
        if (bytes !== null) candidates.set(i, [{ encoding: `onnx-sparse:${sparse ? entry.encoding : 'sparse'}`, family: 'target', bytes, exact: true }]);
      });
      const out = layout.model;
      outputs.push({ target, dense: target === 'onnx', size: out.length, chunks: () => out.parts, sparseWeights, choices });
    } catch (e) {
      outputs.push(failure(target, 'onnx', e));
    }
  });
  onStep?.('onnx-sparse', targets.length, targets.length);
  return { outputs, candidates, xnnpack: null, notes };
}

// ---------------------------------------------------------------------------------------------
// TF.js: model.json plus weight shards; the output is sized and gzipped as their concatenation.

function tfjsTargets(model: Model, onStep?: StepCallback): FormatTargets {
  const outputs: FormatTargets['outputs'] = [];
  const candidates = new Map<number, AuditCandidate[]>();
  const index = new Map(model.weights.map((w, i) => [w.name, i]));
  const targets: TfjsTarget[] = ['tfjs', 'tfjs-sparse'];
  targets.forEach((target, step) => {
    onStep?.(target, step, targets.length);
    try {
      const layout = layoutTfjs(model, target);
      const choices = new Map<number, AuditTargetChoice>();
      for (const entry of layout.plan) {
        const sparse = entry.encoding !== 'dense';
        const members = entry.tensors.map((t) => index.get(t)).filter((i): i is number => i !== undefined);
        const denseTotal = members.reduce((n, i) => n + model.weights[i]!.denseBytes().length, 0);
        for (const i of members) {
          // Neighbours sharing one blob: each is given its share of the blob, by dense bytes.
          const shared = members.length > 1;
          const bytes = shared && denseTotal > 0 ? Math.round((entry.bytesAfter * model.weights[i]!.denseBytes().length) / denseTotal) : entry.bytesAfter;
          choices.set(i, {
            target, encoding: entry.encoding, sparse, bytes, exact: !shared,
            reason: shared ? `one blob with ${members.length - 1} neighbour(s): ${entry.reason}` : entry.reason,
          });
          if (target === 'tfjs-sparse' && sparse && !shared) candidates.set(i, [{ encoding: `tfjs-sparse:${entry.encoding}`, family: 'target', bytes, exact: true }]);
        }
      }
      const size = layout.modelJson.length + layout.shards.reduce((n, f) => n + f.length, 0);
      outputs.push({
        target, dense: target === 'tfjs', size, sparseWeights: layout.sparseWeights, choices,
        chunks: () => [layout.modelJson, ...layout.shards.flatMap((f) => f.chunks)],
      });
    } catch (e) {
      outputs.push(failure(target, 'tfjs', e));
    }
  });
  onStep?.('tfjs-sparse', targets.length, targets.length);
  return {
    outputs, candidates, xnnpack: null, weightsInOtherFiles: true,
    notes: ['tfjs and tfjs-sparse sizes are model.json plus every shard file; their gzip is that of the files concatenated (a server gzips each file: a little larger)'],
  };
}

// ---------------------------------------------------------------------------------------------
// Any other plugin: its writers, sized.

function genericTargets(model: Model, onStep?: StepCallback): FormatTargets {
  const plugin = plugins.find((p) => p.id === model.format);
  const outputs: FormatTargets['outputs'] = [];
  const names = plugin ? Object.keys(plugin.targets) : [];
  names.forEach((target, step) => {
    onStep?.(target, step, names.length);
    try {
      const bytes = plugin!.targets[target]!(model);
      outputs.push({ target, dense: isDenseTarget(model.format, target), size: bytes.length, chunks: () => [bytes], sparseWeights: null });
    } catch (e) {
      outputs.push(failure(target, model.format, e));
    }
  });
  return { outputs, candidates: new Map(), xnnpack: null, notes: names.length ? [`${model.format}: no per-weight plan from the plugin; target sizes are its writers' outputs`] : [] };
}
