/**
 * The parsed ONNX document: the model bytes plus the structure prunepack needs to find,
 * replace and re-encode weights (graphs, nodes, attributes, where each field starts and ends).
 * Nothing else is decoded: every other byte is re-emitted from the input as it was.
 *
 * Graph numbering (WeightConsumer.subgraph): 0 is the main graph, then its subgraphs
 * (If/Loop/Scan bodies, depth first, in node order), then each model-local function, then
 * the training_info graphs.
 */
import {
  AttributeProtoField as A, AttributeProto_AttributeType as AttrType, FunctionProtoField as Fn, GraphProtoField as G,
  ModelProtoField as M, NodeProtoField as N, OperatorSetIdProtoField as Op, TrainingInfoProtoField as T, ValueInfoProtoField as V,
  TensorProto_DataType,
} from '../../schemas/generated/onnx/onnx-descriptor.js';
import { PrunepackError } from '../../src/errors.js';
import { MAX_PROTOBUF_BYTES, ProtoReader, WIRE_LEN, WIRE_VARINT } from './protobuf.js';
import { integerValues, parseSparseTensor, SparseExpansionBudget, type SparseInfo } from './sparse.js';
import { parseStringEntry, parseTensor, tensorDenseBytes, type TensorInfo, type TensorParseOptions } from './tensor.js';

/** A parsed message: its body range and the message that contains it. */
export interface MessageNode {
  start: number;
  end: number;
  parent?: MessageNode;
}

/** A field inside a message: `[start, end)` covers key, length and payload. */
export interface FieldSpan {
  start: number;
  end: number;
  owner: MessageNode;
}

export type GraphKind = 'main' | 'subgraph' | 'function' | 'training';

export interface OnnxGraph {
  index: number;
  kind: GraphKind;
  /** Human-readable path, e.g. `graph/node[3] If "cond".then_branch`. */
  label: string;
  message: MessageNode;
  /** Field number of nodes in this message: 1 in GraphProto, 7 in FunctionProto. */
  nodeField: number;
  parent?: OnnxGraph;
  ownerNode?: OnnxNode;
  nodes: OnnxNode[];
  /** Graph inputs (GraphProto.input), with their fields so a writer can drop one. */
  inputs: { name: string; field: FieldSpan }[];
  outputs: string[];
  /** Version of the default ('' / 'ai.onnx') operator set in effect; undefined when not imported. */
  defaultOpset?: number;
  children: OnnxGraph[];
}

export interface OnnxAttribute {
  field: FieldSpan;
  message: MessageNode;
  name: string;
  type: number;
  /** The `t` field (TENSOR) and its parsed tensor, parsed lazily by slot discovery. */
  tensorField?: FieldSpan & { body: [number, number] };
  sparseField?: FieldSpan & { body: [number, number] };
  ints: number[];
  i?: number;
}

export interface OnnxNode {
  index: number;
  graph: OnnxGraph;
  field: FieldSpan;
  message: MessageNode;
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
}

interface SlotBase {
  /** Weight name, unique in the model. */
  name: string;
  /** Tensor name in the graph (the value name consumers use). */
  valueName: string;
  graph: OnnxGraph;
}

export type WeightSlot =
  | SlotBase & { kind: 'initializer'; field: FieldSpan; tensor: TensorInfo }
  | SlotBase & { kind: 'sparse-initializer'; field: FieldSpan; sparse: SparseInfo }
  | SlotBase & { kind: 'constant'; node: OnnxNode; attribute: OnnxAttribute; tensor: TensorInfo }
  | SlotBase & { kind: 'constant-sparse'; node: OnnxNode; attribute: OnnxAttribute; sparse: SparseInfo }
  /** ConstantOfShape -> Scatter (-> Reshape): prunepack's checker-valid sparse form for opset 9-10. */
  | SlotBase & { kind: 'scatter'; nodes: OnnxNode[]; sparse: SparseInfo };

export interface OnnxDocument {
  bytes: Uint8Array;
  modelPath?: string;
  irVersion: number;
  opsets: Map<string, number>;
  model: MessageNode;
  graphs: OnnxGraph[];
  slots: WeightSlot[];
  /** Initializer names bound by training_info (left alone by the sparse writer). */
  trainingBound: Set<string>;
  /** New dense bytes by slot index (from withWeights). */
  overrides: Map<number, Uint8Array>;
  /** Real paths of the external data files the weights are read from (Model.companionFiles). */
  externalFiles: Set<string>;
}

const MAX_GRAPH_DEPTH = 64;

function corrupt(what: string, where: string, expected?: string, found?: string): PrunepackError {
  return new PrunepackError('CORRUPT', what, { format: 'onnx', location: where, expected, found });
}

export interface ReadOnnxOptions {
  /** Model file path: needed for external data, resolved relative to its folder. */
  path?: string;
}

export function parseOnnxDocument(bytes: Uint8Array, options: ReadOnnxOptions = {}): OnnxDocument {
  if (bytes.length > MAX_PROTOBUF_BYTES) {
    throw new PrunepackError('UNSUPPORTED', 'a single ONNX protobuf file must be smaller than 2 GiB', {
      format: 'onnx', expected: `< ${MAX_PROTOBUF_BYTES + 1} bytes`, found: `${bytes.length} bytes`,
      hint: 'Models this large keep their weights in external data files (save with onnx.save_model(..., save_as_external_data=True)); protobuf cannot represent them in one file',
    });
  }
  const model: MessageNode = { start: 0, end: bytes.length };
  const r = new ProtoReader(bytes, 0, bytes.length, 'ModelProto');
  let irVersion = 0;
  const opsets = new Map<string, number>();
  let graphRange: [number, number, number] | undefined;
  const functions: Array<[number, number, number]> = [];
  const training: Array<[number, number, number]> = [];
  while (r.next()) {
    const fieldStart = r.fieldStart;
    switch (r.field) {
      case M.ir_version: r.expectWire(WIRE_VARINT, 'ir_version'); irVersion = r.int64('ir_version'); break;
      case M.opset_import: {
        r.expectWire(WIRE_LEN, 'opset_import');
        const [s, e] = r.len('opset_import');
        const { domain, version } = parseOpset(bytes, s, e);
        opsets.set(domain === 'ai.onnx' ? '' : domain, version);
        break;
      }
      case M.graph: { r.expectWire(WIRE_LEN, 'graph'); const [s, e] = r.len('graph'); graphRange = [fieldStart, s, e]; break; }
      case M.functions: { r.expectWire(WIRE_LEN, 'functions'); const [s, e] = r.len('functions'); functions.push([fieldStart, s, e]); break; }
      case M.training_info: { r.expectWire(WIRE_LEN, 'training_info'); const [s, e] = r.len('training_info'); training.push([fieldStart, s, e]); break; }
      default: r.skip();
    }
  }
  if (!graphRange && functions.length === 0) throw corrupt('ModelProto has no graph', 'ModelProto', 'a graph (field 7)', 'none');
  const doc: OnnxDocument = {
    bytes, modelPath: options.path, irVersion, opsets, model, graphs: [], slots: [], trainingBound: new Set(), overrides: new Map(), externalFiles: new Set(),
  };
  const ctx = new ParseContext(doc);
  if (graphRange) ctx.parseGraph(graphRange[1], graphRange[2], 'main', 'graph', model, undefined, undefined, opsets.get(''), 0);
  functions.forEach(([, s, e], i) => ctx.parseFunction(s, e, i, model));
  training.forEach(([, s, e], i) => ctx.parseTraining(s, e, i, model));
  ctx.collectSlots();
  return doc;
}

function parseOpset(bytes: Uint8Array, start: number, end: number): { domain: string; version: number } {
  const r = new ProtoReader(bytes, start, end, 'opset_import');
  let domain = '';
  let version = 0;
  while (r.next()) {
    if (r.field === Op.domain) { r.expectWire(WIRE_LEN, 'domain'); domain = r.string('domain'); }
    else if (r.field === Op.version) { r.expectWire(WIRE_VARINT, 'version'); version = r.int64('version'); }
    else r.skip();
  }
  return { domain, version };
}

interface PendingTensor {
  kind: 'initializer' | 'sparse-initializer';
  field: FieldSpan;
  body: [number, number];
  ordinal: number;
}

class ParseContext {
  private readonly tensorOptions: TensorParseOptions;
  private readonly usedNames = new Set<string>();
  /** Initializers seen while parsing graphs, decoded by collectSlots once every graph is known. */
  private readonly pending = new Map<OnnxGraph, PendingTensor[]>();
  /** Dense bytes the file's sparse tensors may expand to (checked as each one is parsed). */
  private readonly budget: SparseExpansionBudget;

  constructor(private readonly doc: OnnxDocument) {
    this.tensorOptions = weightTensorOptions(doc);
    this.budget = new SparseExpansionBudget(doc.bytes.length);
  }

  parseGraph(
    start: number, end: number, kind: GraphKind, label: string, parentMessage: MessageNode,
    parent: OnnxGraph | undefined, ownerNode: OnnxNode | undefined, defaultOpset: number | undefined, depth: number,
  ): OnnxGraph {
    if (depth > MAX_GRAPH_DEPTH) throw corrupt(`graphs are nested more than ${MAX_GRAPH_DEPTH} deep`, label, `<= ${MAX_GRAPH_DEPTH} levels`, 'deeper');
    const message: MessageNode = { start, end, parent: parentMessage };
    const graph: OnnxGraph = {
      index: this.doc.graphs.length, kind, label, message, nodeField: G.node, parent, ownerNode,
      nodes: [], inputs: [], outputs: [], defaultOpset, children: [],
    };
    this.doc.graphs.push(graph);
    parent?.children.push(graph);
    const { bytes } = this.doc;
    const r = new ProtoReader(bytes, start, end, label);
    const pendingTensors: PendingTensor[] = [];
    this.pending.set(graph, pendingTensors);
    let initializerCount = 0;
    let sparseCount = 0;
    while (r.next()) {
      const fieldStart = r.fieldStart;
      switch (r.field) {
        case G.node: {
          r.expectWire(WIRE_LEN, 'node');
          const [s, e] = r.len('node');
          this.parseNode(graph, { start: fieldStart, end: r.pos, owner: message }, s, e, depth);
          break;
        }
        case G.initializer: {
          r.expectWire(WIRE_LEN, 'initializer');
          const body = r.len('initializer');
          pendingTensors.push({ kind: 'initializer', field: { start: fieldStart, end: r.pos, owner: message }, body, ordinal: initializerCount++ });
          break;
        }
        case G.sparse_initializer: {
          r.expectWire(WIRE_LEN, 'sparse_initializer');
          const body = r.len('sparse_initializer');
          pendingTensors.push({ kind: 'sparse-initializer', field: { start: fieldStart, end: r.pos, owner: message }, body, ordinal: sparseCount++ });
          break;
        }
        case G.input: {
          r.expectWire(WIRE_LEN, 'input');
          const [s, e] = r.len('input');
          graph.inputs.push({ name: valueInfoName(bytes, s, e, label), field: { start: fieldStart, end: r.pos, owner: message } });
          break;
        }
        case G.output: {
          r.expectWire(WIRE_LEN, 'output');
          const [s, e] = r.len('output');
          graph.outputs.push(valueInfoName(bytes, s, e, label));
          break;
        }
        default: r.skip();
      }
    }
    return graph;
  }

  parseFunction(start: number, end: number, ordinal: number, modelMessage: MessageNode): void {
    const { bytes } = this.doc;
    // opset_import and name first, so the function graph knows its default opset.
    const scan = new ProtoReader(bytes, start, end, `functions[${ordinal}]`);
    let name = '';
    let domain = '';
    let opset: number | undefined;
    while (scan.next()) {
      if (scan.field === Fn.name) { scan.expectWire(WIRE_LEN, 'name'); name = scan.string('name'); }
      else if (scan.field === Fn.domain) { scan.expectWire(WIRE_LEN, 'domain'); domain = scan.string('domain'); }
      else if (scan.field === Fn.opset_import) {
        scan.expectWire(WIRE_LEN, 'opset_import');
        const [s, e] = scan.len('opset_import');
        const o = parseOpset(bytes, s, e);
        if (o.domain === '' || o.domain === 'ai.onnx') opset = o.version;
      } else scan.skip();
    }
    const label = `function ${domain ? `${domain}:` : ''}${name || ordinal}`;
    const message: MessageNode = { start, end, parent: modelMessage };
    const graph: OnnxGraph = {
      index: this.doc.graphs.length, kind: 'function', label, message, nodeField: Fn.node,
      nodes: [], inputs: [], outputs: [], defaultOpset: opset ?? this.doc.opsets.get(''), children: [],
    };
    this.doc.graphs.push(graph);
    const r = new ProtoReader(bytes, start, end, label);
    while (r.next()) {
      if (r.field === Fn.node) {
        const fieldStart = r.fieldStart;
        r.expectWire(WIRE_LEN, 'node');
        const [s, e] = r.len('node');
        this.parseNode(graph, { start: fieldStart, end: r.pos, owner: message }, s, e, 1);
      } else if (r.field === Fn.output) {
        r.expectWire(WIRE_LEN, 'output');
        graph.outputs.push(r.string('output'));
      } else r.skip();
    }
  }

  parseTraining(start: number, end: number, ordinal: number, modelMessage: MessageNode): void {
    const { bytes } = this.doc;
    const message: MessageNode = { start, end, parent: modelMessage };
    const r = new ProtoReader(bytes, start, end, `training_info[${ordinal}]`);
    while (r.next()) {
      if (r.field === T.initialization || r.field === T.algorithm) {
        const which = r.field === T.initialization ? 'initialization' : 'algorithm';
        r.expectWire(WIRE_LEN, which);
        const [s, e] = r.len(which);
        this.parseGraph(s, e, 'training', `training_info[${ordinal}].${which}`, message, undefined, undefined, this.doc.opsets.get(''), 1);
      } else if (r.field === T.initialization_binding || r.field === T.update_binding) {
        r.expectWire(WIRE_LEN, 'binding');
        const [s, e] = r.len('binding');
        const entry = parseStringEntry(bytes, s, e, `training_info[${ordinal}]`);
        this.doc.trainingBound.add(entry.key);
        this.doc.trainingBound.add(entry.value);
      } else r.skip();
    }
  }

  private parseNode(graph: OnnxGraph, field: FieldSpan, start: number, end: number, depth: number): void {
    const { bytes } = this.doc;
    const index = graph.nodes.length;
    const where = `${graph.label}/node[${index}]`;
    const message: MessageNode = { start, end, parent: graph.message };
    const node: OnnxNode = { index, graph, field, message, opType: '', domain: '', name: '', inputs: [], outputs: [], attributes: [] };
    const graphAttributes: Array<{ attribute: OnnxAttribute; ranges: Array<[number, number]> }> = [];
    const r = new ProtoReader(bytes, start, end, where);
    while (r.next()) {
      switch (r.field) {
        case N.input: r.expectWire(WIRE_LEN, 'input'); node.inputs.push(r.string('input')); break;
        case N.output: r.expectWire(WIRE_LEN, 'output'); node.outputs.push(r.string('output')); break;
        case N.name: r.expectWire(WIRE_LEN, 'name'); node.name = r.string('name'); break;
        case N.op_type: r.expectWire(WIRE_LEN, 'op_type'); node.opType = r.string('op_type'); break;
        case N.domain: r.expectWire(WIRE_LEN, 'domain'); node.domain = r.string('domain'); break;
        case N.attribute: {
          const fieldStart = r.fieldStart;
          r.expectWire(WIRE_LEN, 'attribute');
          const [s, e] = r.len('attribute');
          const parsed = parseAttribute(bytes, { start: fieldStart, end: r.pos, owner: message }, s, e, message, `${where}.attribute[${node.attributes.length}]`);
          node.attributes.push(parsed.attribute);
          if (parsed.ranges.length) graphAttributes.push(parsed);
          break;
        }
        default: r.skip();
      }
    }
    graph.nodes.push(node);
    for (const { attribute, ranges } of graphAttributes) {
      ranges.forEach(([s, e], k) => {
        const label = `${where} ${node.opType}${node.name ? ` "${node.name}"` : ''}.${attribute.name}${ranges.length > 1 || attribute.type === AttrType.GRAPHS ? `[${k}]` : ''}`;
        this.parseGraph(s, e, 'subgraph', label, attribute.message, graph, node, graph.defaultOpset, depth + 1);
      });
    }
  }

  /** Turns initializers, sparse initializers and Constant nodes into weight slots. */
  collectSlots(): void {
    const { bytes } = this.doc;
    for (const graph of this.doc.graphs) {
      for (const p of this.pending.get(graph) ?? []) {
        const where = `${graph.label}.${p.kind === 'initializer' ? 'initializer' : 'sparse_initializer'}[${p.ordinal}]`;
        if (p.kind === 'initializer') {
          const tensor = parseTensor(bytes, p.body[0], p.body[1], where, this.tensorOptions);
          tensor.where = `${where} "${tensor.name}"`;
          this.addSlot({ kind: 'initializer', graph, field: p.field, tensor, valueName: tensor.name, name: '' });
        } else {
          const sparse = parseSparseTensor(bytes, p.body[0], p.body[1], where, this.tensorOptions, this.budget);
          this.addSlot({ kind: 'sparse-initializer', graph, field: p.field, sparse, valueName: sparse.name, name: '' });
        }
      }
      const patterns = findScatterPatterns(this.doc, graph, this.budget);
      const inPattern = new Set<OnnxNode>();
      for (const pattern of patterns) for (const n of pattern.nodes) inPattern.add(n);
      const patternByLast = new Map(patterns.map((p) => [p.nodes[p.nodes.length - 1]!, p]));
      for (const node of graph.nodes) {
        const pattern = patternByLast.get(node);
        if (pattern) {
          this.addSlot({ kind: 'scatter', graph, nodes: pattern.nodes, sparse: pattern.sparse, valueName: pattern.sparse.name, name: '' });
          continue;
        }
        if (inPattern.has(node) || !isConstant(node) || node.outputs.length !== 1) continue;
        const valueName = node.outputs[0]!;
        const where = `${graph.label}/node[${node.index}] Constant "${valueName}"`;
        for (const attribute of node.attributes) {
          if (attribute.name === 'value' && attribute.tensorField) {
            const tensor = parseTensor(bytes, attribute.tensorField.body[0], attribute.tensorField.body[1], where, this.tensorOptions);
            this.addSlot({ kind: 'constant', graph, node, attribute, tensor, valueName, name: '' });
          } else if (attribute.name === 'sparse_value' && attribute.sparseField) {
            const sparse = parseSparseTensor(bytes, attribute.sparseField.body[0], attribute.sparseField.body[1], where, this.tensorOptions, this.budget);
            this.addSlot({ kind: 'constant-sparse', graph, node, attribute, sparse, valueName, name: '' });
          }
        }
      }
    }
  }

  private addSlot(slot: WeightSlot): void {
    let name = slot.valueName || `${slot.kind}_${this.doc.slots.length}`;
    if (this.usedNames.has(name)) name = `${name}#${slot.graph.index}.${this.doc.slots.length}`;
    this.usedNames.add(name);
    slot.name = name;
    this.doc.slots.push(slot);
  }
}

/** Options for parsing weight tensors: external data resolved (checked) now, and its file recorded. */
function weightTensorOptions(doc: OnnxDocument): TensorParseOptions {
  return { modelPath: doc.modelPath, resolveExternal: true, externalFiles: doc.externalFiles };
}

function isConstant(node: OnnxNode): boolean {
  return node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx');
}

function valueInfoName(bytes: Uint8Array, start: number, end: number, where: string): string {
  const r = new ProtoReader(bytes, start, end, where);
  let name = '';
  while (r.next()) {
    if (r.field === V.name) { r.expectWire(WIRE_LEN, 'name'); name = r.string('name'); }
    else r.skip();
  }
  return name;
}

function parseAttribute(
  bytes: Uint8Array, field: FieldSpan, start: number, end: number, parent: MessageNode, where: string,
): { attribute: OnnxAttribute; ranges: Array<[number, number]> } {
  const message: MessageNode = { start, end, parent };
  const attribute: OnnxAttribute = { field, message, name: '', type: 0, ints: [] };
  const ranges: Array<[number, number]> = [];
  const r = new ProtoReader(bytes, start, end, where);
  while (r.next()) {
    const fieldStart = r.fieldStart;
    switch (r.field) {
      case A.name: r.expectWire(WIRE_LEN, 'name'); attribute.name = r.string('name'); break;
      case A.type: r.expectWire(WIRE_VARINT, 'type'); attribute.type = r.int32('type'); break;
      case A.i: r.expectWire(WIRE_VARINT, 'i'); attribute.i = r.int64('i'); break;
      case A.t: {
        r.expectWire(WIRE_LEN, 't');
        const body = r.len('t');
        attribute.tensorField = { start: fieldStart, end: r.pos, owner: message, body };
        break;
      }
      case A.sparse_tensor: {
        r.expectWire(WIRE_LEN, 'sparse_tensor');
        const body = r.len('sparse_tensor');
        attribute.sparseField = { start: fieldStart, end: r.pos, owner: message, body };
        break;
      }
      case A.g: case A.graphs: r.expectWire(WIRE_LEN, r.field === A.g ? 'g' : 'graphs'); ranges.push(r.len('graph')); break;
      default: r.skip();
    }
  }
  return { attribute, ranges };
}

// ---------------------------------------------------------------------------------------------
// Uses of values (consumers) and the opset 9-10 scatter pattern
// ---------------------------------------------------------------------------------------------

export interface ValueUse {
  node: OnnxNode;
  operand: number;
}

/** Uses of each value name by nodes of `graph` and (outer-scope references) of its subgraphs. */
export function usesInScope(graph: OnnxGraph): Map<string, ValueUse[]> {
  const uses = new Map<string, ValueUse[]>();
  const visit = (g: OnnxGraph) => {
    for (const node of g.nodes) {
      node.inputs.forEach((name, operand) => {
        if (!name) return;
        let list = uses.get(name);
        if (!list) uses.set(name, (list = []));
        list.push({ node, operand });
      });
    }
    for (const child of g.children) visit(child);
  };
  visit(graph);
  return uses;
}

/** The node of `graph` that contains `node` (itself, or the owner of one of its ancestor subgraphs). */
export function enclosingNode(graph: OnnxGraph, node: OnnxNode): OnnxNode | undefined {
  let current: OnnxNode | undefined = node;
  while (current && current.graph !== graph) current = current.graph.ownerNode;
  return current;
}

interface ScatterPattern {
  nodes: OnnxNode[];
  sparse: SparseInfo;
}

function constantTensor(doc: OnnxDocument, node: OnnxNode | undefined, where: string): TensorInfo | undefined {
  if (!node || !isConstant(node) || node.outputs.length !== 1 || node.attributes.length !== 1) return undefined;
  const attribute = node.attributes[0]!;
  if (attribute.name !== 'value' || !attribute.tensorField) return undefined;
  return parseTensor(doc.bytes, attribute.tensorField.body[0], attribute.tensorField.body[1], where, weightTensorOptions(doc));
}

/**
 * Finds `Reshape(Scatter(ConstantOfShape(Constant [N]), Constant indices, Constant values, axis=0),
 * Constant shape)` (Reshape absent for rank 1) with every intermediate value used exactly once:
 * the form prunepack writes for sparse weights when the model's opset is 9 or 10, where the
 * Constant operator has no sparse_value attribute.
 */
function findScatterPatterns(doc: OnnxDocument, graph: OnnxGraph, budget: SparseExpansionBudget): ScatterPattern[] {
  const producers = new Map<string, OnnxNode>();
  for (const node of graph.nodes) for (const out of node.outputs) if (out) producers.set(out, node);
  const uses = usesInScope(graph);
  const outputs = new Set(graph.outputs);
  const usedOnce = (name: string) => (uses.get(name)?.length ?? 0) === 1 && !outputs.has(name);
  const patterns: ScatterPattern[] = [];
  for (const scatter of graph.nodes) {
    if (scatter.opType !== 'Scatter' || (scatter.domain !== '' && scatter.domain !== 'ai.onnx')) continue;
    if (scatter.inputs.length !== 3 || scatter.outputs.length !== 1) continue;
    if (scatter.attributes.some((a) => a.name !== 'axis' || (a.i ?? 0) !== 0)) continue;
    const [dataName, indicesName, updatesName] = scatter.inputs as [string, string, string];
    if (![dataName, indicesName, updatesName].every(usedOnce)) continue;
    const fill = producers.get(dataName);
    if (!fill || fill.opType !== 'ConstantOfShape' || fill.inputs.length !== 1 || fill.outputs.length !== 1 || fill.domain !== '') continue;
    if (!usedOnce(fill.inputs[0]!)) continue;
    const lengthNode = producers.get(fill.inputs[0]!);
    const indicesNode = producers.get(indicesName);
    const valuesNode = producers.get(updatesName);
    const where = `${graph.label}/node[${scatter.index}] Scatter`;
    const lengthTensor = constantTensor(doc, lengthNode, where);
    const indicesTensor = constantTensor(doc, indicesNode, where);
    const valuesTensor = constantTensor(doc, valuesNode, where);
    if (!lengthTensor || !indicesTensor || !valuesTensor) continue;
    if (lengthTensor.dtype !== 'int64' || lengthTensor.count !== 1 || indicesTensor.dtype !== 'int64' || indicesTensor.dims.length !== 1) continue;
    if (valuesTensor.dims.length !== 1 || valuesTensor.count !== indicesTensor.count || valuesTensor.dtype === 'string') continue;
    // ConstantOfShape's fill must be a zero of the values' type (absent means float32 zero).
    const fillAttr = fill.attributes.find((a) => a.name === 'value');
    if (fill.attributes.length > (fillAttr ? 1 : 0)) continue;
    if (fillAttr) {
      if (!fillAttr.tensorField) continue;
      const fillTensor = parseTensor(doc.bytes, fillAttr.tensorField.body[0], fillAttr.tensorField.body[1], where, { resolveExternal: false });
      if (fillTensor.storage === 'external' || fillTensor.count !== 1 || fillTensor.dataType !== valuesTensor.dataType) continue;
      if (tensorDenseBytes(doc.bytes, fillTensor).some((b) => b !== 0)) continue;
    } else if (valuesTensor.dataType !== TensorProto_DataType.FLOAT) continue;
    const total = integerValues(tensorDenseBytes(doc.bytes, lengthTensor), 'int64', 1, where)[0]!;
    const linear = integerValues(tensorDenseBytes(doc.bytes, indicesTensor), 'int64', indicesTensor.count, where);
    let valid = total > 0;
    for (let i = 0; valid && i < linear.length; i++) valid = linear[i]! >= 0 && linear[i]! < total && (i === 0 || linear[i]! > linear[i - 1]!);
    if (!valid) continue;
    const nodes = [lengthNode!, fill, indicesNode!, valuesNode!, scatter];
    let dims = [total];
    let name = scatter.outputs[0]!;
    const readers = uses.get(name) ?? [];
    const reshape = readers.length === 1 && !outputs.has(name) && readers[0]!.node.graph === graph ? readers[0]!.node : undefined;
    if (reshape && reshape.opType === 'Reshape' && reshape.domain === '' && reshape.inputs.length === 2 && reshape.inputs[0] === name
      && reshape.outputs.length === 1 && reshape.attributes.length === 0 && usedOnce(reshape.inputs[1]!)) {
      const shapeNode = producers.get(reshape.inputs[1]!);
      const shapeTensor = constantTensor(doc, shapeNode, where);
      if (shapeTensor && shapeTensor.dtype === 'int64' && shapeTensor.dims.length === 1) {
        const shape = Array.from(integerValues(tensorDenseBytes(doc.bytes, shapeTensor), 'int64', shapeTensor.count, where));
        if (shape.length > 0 && shape.every((d) => d > 0) && shape.reduce((a, b) => a * b, 1) === total) {
          dims = shape;
          name = reshape.outputs[0]!;
          nodes.push(shapeNode!, reshape);
        }
      }
    }
    // Nodes must appear in graph order for the writer (it replaces the last one).
    nodes.sort((a, b) => a.index - b.index);
    if (nodes[nodes.length - 1] !== (name === scatter.outputs[0] ? scatter : nodes.find((n) => n.opType === 'Reshape'))) continue;
    // Beyond the expansion budget the chain stays what it is in the file: operators, not a weight.
    const external = (indicesTensor.resolved?.length ?? 0) + (valuesTensor.resolved?.length ?? 0);
    if (!budget.tryCharge(valuesTensor.dtype, total, external)) continue;
    patterns.push({
      nodes,
      sparse: {
        name, dtype: valuesTensor.dtype, dataType: valuesTensor.dataType, dims, count: total, nnz: linear.length,
        layout: 'scatter', values: valuesTensor, linear, ascending: true,
      },
    });
  }
  return patterns;
}
