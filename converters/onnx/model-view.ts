/**
 * The format-neutral view of an OnnxDocument: operator counts over every graph and one
 * WeightTensor per weight slot, with the operators (and input positions) that read it.
 */
import { PrunepackError } from '../../src/errors.js';
import { byteLengthOf } from '../../src/model/dtype.js';
import type { Model, WeightConsumer, WeightTensor } from '../../src/model/types.js';
import { usesInScope, type OnnxDocument, type OnnxGraph, type ValueUse, type WeightSlot } from './document.js';
import type { SparseLayout } from './sparse.js';
import { tensorDenseBytes } from './tensor.js';
import { slotDenseBytes } from './write.js';

/** Facts kept on each ONNX weight (`weight.onnx`). */
export interface OnnxWeightRef {
  /** Index into the document's slots. */
  slot: number;
  kind: WeightSlot['kind'];
  /** Graph index (same numbering as WeightConsumer.subgraph) and label. */
  graph: number;
  graphLabel: string;
  /** The value name in the graph. */
  valueName: string;
  /** How the data is stored in the input: raw_data, a typed field, external, or sparse. */
  storage: string;
}

/** `WeightTensor.sparsity` for weights stored sparse in the input. */
export interface OnnxSparsity {
  format: 'onnx-coo';
  layout: SparseLayout;
  nnz: number;
  /** Linear element positions of the stored values. */
  linear: Float64Array;
}

export type OnnxWeight = WeightTensor & { onnx: OnnxWeightRef };

export function operatorName(opType: string, domain: string): string {
  return domain && domain !== 'ai.onnx' ? `${domain}:${opType}` : opType;
}

export function buildOnnxModel(doc: OnnxDocument): Model {
  const operatorCounts = new Map<string, number>();
  for (const graph of doc.graphs) {
    for (const node of graph.nodes) {
      const name = operatorName(node.opType, node.domain);
      operatorCounts.set(name, (operatorCounts.get(name) ?? 0) + 1);
    }
  }
  const usesByGraph = new Map<OnnxGraph, Map<string, ValueUse[]>>();
  const weights = doc.slots.map((slot, index): OnnxWeight => {
    let uses = usesByGraph.get(slot.graph);
    if (!uses) usesByGraph.set(slot.graph, (uses = usesInScope(slot.graph)));
    const consumers: WeightConsumer[] = (uses.get(slot.valueName) ?? []).map(({ node, operand }) => ({
      op: operatorName(node.opType, node.domain), opIndex: node.index, subgraph: node.graph.index, operand,
    }));
    return makeWeight(doc, slot, index, consumers);
  });
  const opset = doc.opsets.get('');
  return {
    format: 'onnx',
    version: `IR ${doc.irVersion}${opset !== undefined ? `, opset ${opset}` : ''}`,
    operatorCounts, weights, document: doc,
    ...(doc.externalFiles.size ? { companionFiles: [...doc.externalFiles] } : {}),
  };
}

function makeWeight(doc: OnnxDocument, slot: WeightSlot, index: number, consumers: WeightConsumer[]): OnnxWeight {
  const override = doc.overrides.get(index);
  const dense = slot.kind === 'initializer' || slot.kind === 'constant';
  const info = dense ? slot.tensor : slot.sparse;
  const ref: OnnxWeightRef = {
    slot: index, kind: slot.kind, graph: slot.graph.index, graphLabel: slot.graph.label, valueName: slot.valueName,
    storage: dense ? (slot.tensor.storage === 'typed' ? 'typed field' : slot.tensor.storage) : `sparse (${slot.sparse.layout})`,
  };
  const sparsity: OnnxSparsity | undefined = !dense && override === undefined
    ? { format: 'onnx-coo', layout: slot.sparse.layout, nnz: slot.sparse.nnz, linear: slot.sparse.linear }
    : undefined;
  let cachedDense: Uint8Array | undefined;
  let cachedStored: Uint8Array | undefined;
  // External data is read on each access rather than held: a model's weights may not fit twice in memory.
  const external = dense && slot.tensor.storage === 'external';
  return {
    name: slot.name,
    dtype: info.dtype,
    shape: [...info.dims],
    consumers,
    ...(sparsity ? { sparsity } : {}),
    onnx: ref,
    get bytes(): Uint8Array {
      if (override) return override;
      if (dense) return external ? tensorDenseBytes(doc.bytes, slot.tensor) : (cachedStored ??= tensorDenseBytes(doc.bytes, slot.tensor));
      return (cachedStored ??= tensorDenseBytes(doc.bytes, slot.sparse.values));
    },
    denseBytes(): Uint8Array {
      if (external && !override) return slotDenseBytes(doc, index);
      return (cachedDense ??= slotDenseBytes(doc, index));
    },
  };
}

/** A copy of `model` whose named weights hold new dense bytes (same dtype and shape). */
export function onnxWithWeights(model: Model, replacements: ReadonlyMap<string, Uint8Array>): Model {
  const doc = onnxDocumentOf(model);
  const overrides = new Map(doc.overrides);
  for (const w of model.weights as OnnxWeight[]) {
    const bytes = replacements.get(w.name);
    if (!bytes) continue;
    if (w.dtype === 'string') {
      throw new PrunepackError('UNSUPPORTED', 'cannot replace the values of a string tensor', { format: 'onnx', location: w.name });
    }
    const expected = byteLengthOf(w.dtype, w.shape.reduce((a, b) => a * b, 1));
    if (bytes.length !== expected) {
      throw new PrunepackError('INVALID_ARGUMENT', 'replacement bytes have the wrong size', { format: 'onnx', location: w.name, expected: `${expected} dense bytes`, found: String(bytes.length) });
    }
    overrides.set(w.onnx.slot, bytes);
  }
  for (const name of replacements.keys()) {
    if (!model.weights.some((w) => w.name === name)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'no weight of that name', { format: 'onnx', location: name });
    }
  }
  return buildOnnxModel({ ...doc, overrides });
}

export function onnxDocumentOf(model: Model): OnnxDocument {
  if (model.format !== 'onnx') {
    throw new PrunepackError('INVALID_ARGUMENT', `expected an ONNX model, got ${model.format}`, { format: 'onnx' });
  }
  return model.document as OnnxDocument;
}
