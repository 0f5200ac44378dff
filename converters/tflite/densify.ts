/**
 * The way back to plain dense TFLite (`--to tflite`): every sparse tensor is expanded, every DENSIFY
 * operator is removed with its readers rewired to the (now dense) constant, and FULLY_CONNECTED
 * operators that were version 8 only because they read sparse weights get the version their
 * signature needs otherwise. The result runs where sparsity is unsupported (TFLite Micro,
 * tflite2onnx, viewers). Also home of the document cloning and reindexing helpers the sparse
 * writer shares.
 */
import { BuiltinOperator } from '../../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../../schemas/generated/tflite/tflite/builtin-options.js';
import { FullyConnectedOptionsT } from '../../schemas/generated/tflite/tflite/fully-connected-options.js';
import { FullyConnectedOptionsWeightsFormat } from '../../schemas/generated/tflite/tflite/fully-connected-options-weights-format.js';
import { MetadataT } from '../../schemas/generated/tflite/tflite/metadata.js';
import { ModelT } from '../../schemas/generated/tflite/tflite/model.js';
import { OperatorCodeT } from '../../schemas/generated/tflite/tflite/operator-code.js';
import { OperatorT } from '../../schemas/generated/tflite/tflite/operator.js';
import { SignatureDefT } from '../../schemas/generated/tflite/tflite/signature-def.js';
import { SubGraphT } from '../../schemas/generated/tflite/tflite/sub-graph.js';
import { TensorMapT } from '../../schemas/generated/tflite/tflite/tensor-map.js';
import { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import { PrunepackError } from '../../src/errors.js';
import { TfliteBuffer, TypedSparsityT, type TfliteDocument } from './document.js';
import { operatorName, tensorDType } from './model-view.js';
import { densifyTfliteValues } from './sparse-values.js';
import { writeTflite } from './write.js';

// ---------------------------------------------------------------------------------------------
// Cloning and reindexing (shared with sparse-write.ts)

/**
 * A copy of `doc` whose every mutable part (operator codes, subgraphs, tensors, operators, index
 * lists, metadata, signatures, the buffer list) is new, so edits never reach the original.
 * Weight bytes, quantization and option objects are shared: edits replace them, never mutate.
 */
export function cloneTfliteDocument(doc: TfliteDocument): TfliteDocument {
  const m = doc.model;
  const model = new ModelT(
    m.version,
    m.operatorCodes.map((c) => new OperatorCodeT(c.deprecatedBuiltinCode, c.customCode, c.version, c.builtinCode)),
    m.subgraphs.map((sg) => new SubGraphT(sg.tensors.map(cloneTensor), [...sg.inputs], [...sg.outputs],
      sg.operators.map(cloneOperator), sg.name, sg.debugMetadataIndex)),
    m.description,
    [],
    [...m.metadataBuffer],
    m.metadata.map((x) => new MetadataT(x.name, x.buffer)),
    m.signatureDefs.map((s) => new SignatureDefT(
      s.inputs.map((t) => new TensorMapT(t.name, t.tensorIndex)),
      s.outputs.map((t) => new TensorMapT(t.name, t.tensorIndex)),
      s.signatureKey, s.subgraphIndex)),
    m.externalBufferGroups,
    m.externalBuffers,
  );
  return { model, buffers: [...doc.buffers] };
}

export function cloneTensor(t: TensorT): TensorT {
  return new TensorT([...t.shape], t.type, t.buffer, t.name, t.quantization, t.isVariable, t.sparsity,
    [...t.shapeSignature], t.hasRank, t.variantTensors, t.externalBuffer);
}

export function cloneOperator(op: OperatorT): OperatorT {
  return new OperatorT(op.opcodeIndex, [...op.inputs], [...op.outputs], op.builtinOptionsType, op.builtinOptions,
    op.customOptions, op.customOptionsFormat, op.mutatingVariableInputs, [...op.intermediates],
    op.largeCustomOptionsOffset, op.largeCustomOptionsSize, op.builtinOptions2Type, op.builtinOptions2, op.debugMetadataIndex);
}

/** Index of an operator code for `builtin` at `version`, added when the model has none. */
export function operatorCodeIndex(doc: TfliteDocument, builtin: BuiltinOperator, version: number): number {
  const codes = doc.model.operatorCodes;
  const found = codes.findIndex((c) => Math.max(c.builtinCode, c.deprecatedBuiltinCode) === builtin && c.version === version);
  if (found >= 0) return found;
  // deprecated_builtin_code holds codes < 127; larger ones use the PLACEHOLDER value 127.
  codes.push(new OperatorCodeT(Math.min(builtin, 127), null, version, builtin));
  return codes.length - 1;
}

/** How many tensors (any subgraph) and metadata entries point at each buffer. */
export function bufferReferenceCounts(doc: TfliteDocument): Uint32Array {
  const counts = new Uint32Array(doc.buffers.length);
  for (const sg of doc.model.subgraphs) for (const t of sg.tensors) if (t.buffer > 0 && t.buffer < counts.length) counts[t.buffer]!++;
  for (const m of doc.model.metadata) if (m.buffer > 0 && m.buffer < counts.length) counts[m.buffer]!++;
  for (const b of doc.model.metadataBuffer) if (b > 0 && b < counts.length) counts[b]!++;
  return counts;
}

/**
 * Gives tensor `t` of subgraph `s` the bytes `bytes`: in place when no other tensor or metadata
 * entry shares its buffer, else in a new buffer (the shared one stays for the others).
 */
export function setTensorBytes(doc: TfliteDocument, s: number, t: number, bytes: Uint8Array, references: Uint32Array): void {
  const tensor = doc.model.subgraphs[s]!.tensors[t]!;
  if (tensor.buffer > 0 && references[tensor.buffer] === 1) {
    doc.buffers[tensor.buffer] = TfliteBuffer.of(bytes);
    return;
  }
  if (tensor.buffer > 0 && tensor.buffer < references.length) references[tensor.buffer]!--;
  doc.buffers.push(TfliteBuffer.of(bytes));
  tensor.buffer = doc.buffers.length - 1;
}

/** Removes tensors of subgraph `s` and renumbers every reference to the others. */
export function removeTensors(doc: TfliteDocument, s: number, dead: ReadonlySet<number>): void {
  if (dead.size === 0) return;
  const sg = doc.model.subgraphs[s]!;
  const map = new Int32Array(sg.tensors.length).fill(-1);
  const kept: TensorT[] = [];
  sg.tensors.forEach((tensor, i) => {
    if (dead.has(i)) return;
    map[i] = kept.length;
    kept.push(tensor);
  });
  const remap = (i: number, where: string): number => {
    if (i < 0) return i;
    const to = map[i];
    if (to === undefined || to < 0) {
      throw new PrunepackError('UNSUPPORTED', 'a removed tensor is still referenced', { format: 'tflite', location: `subgraph ${s} ${where} (tensor ${i})` });
    }
    return to;
  };
  sg.tensors = kept;
  sg.inputs = sg.inputs.map((i) => remap(i, 'inputs'));
  sg.outputs = sg.outputs.map((i) => remap(i, 'outputs'));
  sg.operators.forEach((op, o) => {
    op.inputs = op.inputs.map((i) => remap(i, `operator ${o} inputs`));
    op.outputs = op.outputs.map((i) => remap(i, `operator ${o} outputs`));
    op.intermediates = op.intermediates.map((i) => remap(i, `operator ${o} intermediates`));
  });
  for (const sig of doc.model.signatureDefs) {
    if (sig.subgraphIndex !== s) continue;
    for (const m of [...sig.inputs, ...sig.outputs]) m.tensorIndex = remap(m.tensorIndex, 'signature');
  }
}

/** Drops operator codes that no operator uses any more, among `candidates`; renumbers the rest. */
export function removeUnusedOperatorCodes(doc: TfliteDocument, candidates: ReadonlySet<number>): void {
  const used = new Uint8Array(doc.model.operatorCodes.length);
  for (const sg of doc.model.subgraphs) for (const op of sg.operators) used[op.opcodeIndex] = 1;
  const dead = [...candidates].filter((c) => c < used.length && !used[c]);
  if (dead.length === 0) return;
  const map = new Int32Array(used.length);
  const kept: OperatorCodeT[] = [];
  doc.model.operatorCodes.forEach((code, i) => {
    map[i] = kept.length;
    if (!dead.includes(i)) kept.push(code);
  });
  doc.model.operatorCodes = kept;
  for (const sg of doc.model.subgraphs) for (const op of sg.operators) op.opcodeIndex = map[op.opcodeIndex]!;
}

/** Drops buffers in `candidates` that nothing references any more; renumbers the rest. */
export function removeOrphanBuffers(doc: TfliteDocument, candidates: ReadonlySet<number>): void {
  const references = bufferReferenceCounts(doc);
  const dead = new Set([...candidates].filter((b) => b > 0 && b < references.length && references[b] === 0));
  if (dead.size === 0) return;
  const map = new Int32Array(doc.buffers.length);
  const kept: TfliteBuffer[] = [];
  doc.buffers.forEach((b, i) => {
    map[i] = kept.length;
    if (!dead.has(i)) kept.push(b);
  });
  doc.buffers = kept;
  for (const sg of doc.model.subgraphs) for (const t of sg.tensors) t.buffer = map[t.buffer] ?? t.buffer;
  for (const m of doc.model.metadata) m.buffer = map[m.buffer] ?? m.buffer;
  doc.model.metadataBuffer = doc.model.metadataBuffer.map((b) => map[b] ?? b);
}

// ---------------------------------------------------------------------------------------------
// FULLY_CONNECTED versions

/**
 * The FULLY_CONNECTED version an operator needs when its weights are dense: TFLite's
 * GetBuiltinOperatorVersion (tensorflow/lite/tools/versioning/op_version.cc) without the
 * sparse-weight rule.
 */
export function denseFullyConnectedVersion(tensors: readonly TensorT[], op: OperatorT): number {
  const typeOf = (i: number | undefined): TensorType | -1 => (i === undefined || i < 0 ? -1 : tensors[i]?.type ?? -1);
  const input = typeOf(op.inputs[0]);
  const weights = typeOf(op.inputs[1]);
  const output = typeOf(op.outputs[0]);
  const options = op.builtinOptionsType === BuiltinOptions.FullyConnectedOptions && op.builtinOptions instanceof FullyConnectedOptionsT
    ? op.builtinOptions : new FullyConnectedOptionsT();
  const weightTensor = op.inputs[1] !== undefined && op.inputs[1] >= 0 ? tensors[op.inputs[1]] : undefined;
  const perChannel = (weightTensor?.quantization?.scale.length ?? 0) > 1;
  const { FLOAT32, INT8, INT16, INT4 } = TensorType;
  if (input === FLOAT32 && weights === INT8 && output === FLOAT32 && perChannel) return 12;
  if (input === INT16 && weights === INT8 && output === INT16 && options.quantizedBiasType !== TensorType.FLOAT32) return 11;
  if (input === INT16 && weights === INT16 && output === INT16) return 7;
  if (op.inputs.length === 2) return 6;
  if (options.keepNumDims) return 5;
  if (input === INT8 && weights === INT8 && output === INT8) return 4;
  if (input === INT8 && weights === INT4 && output === INT8) return 10;
  if (input === FLOAT32 && weights === INT8 && output === FLOAT32) return options.asymmetricQuantizeInputs ? 9 : 3;
  if (options.weightsFormat === FullyConnectedOptionsWeightsFormat.SHUFFLED4x16INT8) return 2;
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Densify

export interface DensifyReport {
  /** Sparse tensors expanded to dense buffers. */
  densifiedTensors: number;
  /** DENSIFY operators removed (their readers now read the dense constant). */
  removedDensifyOps: number;
  /** FULLY_CONNECTED operators moved off version 8, with the version they got. */
  restoredFullyConnected: Array<{ subgraph: number; operator: number; version: number }>;
}

/**
 * A dense copy of `doc` (the input is not modified): no sparse tensor, no DENSIFY operator, no
 * FULLY_CONNECTED at version 8 because of sparse weights. Tensor names are kept; the DENSIFY
 * outputs disappear, with every reference renumbered.
 */
export function densifyTfliteDocument(source: TfliteDocument): { doc: TfliteDocument; report: DensifyReport } {
  const doc = cloneTfliteDocument(source);
  const report: DensifyReport = { densifiedTensors: 0, removedDensifyOps: 0, restoredFullyConnected: [] };
  const references = bufferReferenceCounts(doc);
  const touchedCodes = new Set<number>();
  const touchedBuffers = new Set<number>();
  const nameOf = (code: number) => { const c = doc.model.operatorCodes[code]; return c ? operatorName(c) : ''; };

  doc.model.subgraphs.forEach((sg, s) => {
    // 1. expand sparse tensors
    const wasSparse = new Set<number>();
    sg.tensors.forEach((tensor, t) => {
      if (!tensor.sparsity) return;
      const where = `subgraph ${s} tensor ${t} "${typeof tensor.name === 'string' ? tensor.name : ''}"`;
      if (!(tensor.sparsity instanceof TypedSparsityT)) {
        throw new PrunepackError('UNSUPPORTED', 'sparsity parameters not read by the prunepack reader', { format: 'tflite', location: where });
      }
      const buffer = doc.buffers[tensor.buffer];
      if (!buffer || !buffer.hasData) {
        throw new PrunepackError('UNSUPPORTED', 'a sparse tensor without constant data cannot be densified', { format: 'tflite', location: where });
      }
      const dense = densifyTfliteValues(buffer.bytes, tensorDType(tensor.type, where), tensor.shape, tensor.sparsity.params, where);
      setTensorBytes(doc, s, t, dense, references);
      tensor.sparsity = null;
      wasSparse.add(t);
      report.densifiedTensors++;
    });

    // 2. FULLY_CONNECTED ops at version 8 that read a sparse weight natively
    sg.operators.forEach((op, o) => {
      const code = doc.model.operatorCodes[op.opcodeIndex];
      if (!code || nameOf(op.opcodeIndex) !== 'FULLY_CONNECTED' || code.version !== 8) return;
      if (!wasSparse.has(op.inputs[1] ?? -1)) return;
      const version = denseFullyConnectedVersion(sg.tensors, op);
      touchedCodes.add(op.opcodeIndex);
      op.opcodeIndex = operatorCodeIndex(doc, BuiltinOperator.FULLY_CONNECTED, version);
      report.restoredFullyConnected.push({ subgraph: s, operator: o, version });
    });

    // 3. remove DENSIFY ops, rewiring their readers to the dense constant
    const replace = new Map<number, number>();
    const deadTensors = new Set<number>();
    const kept: OperatorT[] = [];
    sg.operators.forEach((op, o) => {
      if (nameOf(op.opcodeIndex) !== 'DENSIFY') { kept.push(op); return; }
      const where = `subgraph ${s} operator ${o} (DENSIFY)`;
      const input = op.inputs[0];
      const output = op.outputs[0];
      if (op.inputs.length !== 1 || op.outputs.length !== 1 || input === undefined || output === undefined || input < 0 || output < 0) {
        throw new PrunepackError('CORRUPT', 'DENSIFY must have one input and one output', { format: 'tflite', location: where });
      }
      const from = sg.tensors[input]!;
      const to = sg.tensors[output]!;
      if (!(from.buffer > 0 && doc.buffers[from.buffer]?.hasData)) {
        throw new PrunepackError('UNSUPPORTED', 'DENSIFY of a non-constant tensor cannot be removed', { format: 'tflite', location: where });
      }
      if (from.type !== to.type || from.shape.length !== to.shape.length || from.shape.some((d, i) => d !== to.shape[i])) {
        throw new PrunepackError('CORRUPT', 'DENSIFY output differs from its input in type or shape', {
          format: 'tflite', location: where, expected: `${TensorType[from.type]}[${from.shape}]`, found: `${TensorType[to.type]}[${to.shape}]`,
        });
      }
      touchedCodes.add(op.opcodeIndex);
      replace.set(output, input);
      deadTensors.add(output);
      report.removedDensifyOps++;
    });
    if (replace.size === 0) return;
    const rewire = (i: number) => replace.get(i) ?? i;
    sg.operators = kept;
    for (const op of kept) op.inputs = op.inputs.map(rewire);
    sg.outputs = sg.outputs.map(rewire);
    for (const sig of doc.model.signatureDefs) {
      if (sig.subgraphIndex === s) for (const m of sig.outputs) m.tensorIndex = rewire(m.tensorIndex);
    }
    for (const t of deadTensors) if (sg.tensors[t]!.buffer > 0) touchedBuffers.add(sg.tensors[t]!.buffer);
    removeTensors(doc, s, deadTensors);
  });

  removeUnusedOperatorCodes(doc, touchedCodes);
  removeOrphanBuffers(doc, touchedBuffers);
  return { doc, report };
}

/** `--to tflite`: the dense model as bytes. */
export function writeDenseTflite(doc: TfliteDocument): Uint8Array {
  return writeTflite(densifyTfliteDocument(doc).doc);
}
