/**
 * Who reads each weight. Graph models: the GraphDef nodes whose inputs name the weight's Const
 * node, through Identity/Cast-like pass-through nodes (recorded in `via`). Layers models: the
 * layer the weight belongs to (matched by name against every layer, nested models and wrappers
 * included) and its role (kernel, bias, gamma, ...). The topology is untrusted but only read
 * here, so malformed parts are skipped rather than refused. Browser-safe.
 */
import type { WeightConsumer } from '../../src/model/types.js';

/** A consumer with the layers-model details (layer name and weight role). */
export interface TfjsConsumer extends WeightConsumer {
  layer?: string;
  role?: string;
}

export interface ConsumerMap {
  consumers: Map<string, TfjsConsumer[]>;
  operatorCounts: Map<string, number>;
}

/** Operators that pass a tensor on unchanged in value (or only in type, for Cast). */
const PASS_THROUGH = new Set(['Identity', 'IdentityN', 'Cast', 'StopGradient', 'Snapshot', 'PreventGradient', 'CheckNumerics', 'EnsureShape', 'Enter']);
const MAX_PASS_DEPTH = 16;
const NOT_OPERATORS = new Set(['Const', 'Placeholder']);

interface GraphNode { name: string; op: string; input: string[] }

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nodesOf(list: unknown): GraphNode[] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).map((n) => ({
    name: typeof n.name === 'string' ? n.name : '',
    op: typeof n.op === 'string' ? n.op : '?',
    input: Array.isArray(n.input) ? n.input.filter((i): i is string => typeof i === 'string') : [],
  }));
}

/** Consumers of the given weights in a GraphDef JSON topology (`node`, `library.function`). */
export function graphConsumers(topology: unknown, weightNames: readonly string[]): ConsumerMap {
  const operatorCounts = new Map<string, number>();
  const consumers = new Map<string, TfjsConsumer[]>(weightNames.map((n) => [n, []]));
  if (!isObject(topology)) return { consumers, operatorCounts };
  const nodes = nodesOf(topology.node);
  const functions = isObject(topology.library) && Array.isArray(topology.library.function) ? topology.library.function : [];
  const count = (op: string) => { if (!NOT_OPERATORS.has(op)) operatorCounts.set(op, (operatorCounts.get(op) ?? 0) + 1); };
  for (const n of nodes) count(n.op);
  for (const f of functions) if (isObject(f)) for (const n of nodesOf(f.nodeDef)) count(n.op);

  // users[name]: every (node, input index, output index) that reads an output of node `name`.
  const users = new Map<string, Array<{ node: number; operand: number; output: number }>>();
  nodes.forEach((n, j) => {
    n.input.forEach((input, operand) => {
      if (input.startsWith('^')) return; // control dependency, not data
      const colon = input.lastIndexOf(':');
      const source = colon > 0 && /^\d+$/.test(input.slice(colon + 1)) ? input.slice(0, colon) : input;
      const output = source === input ? 0 : Number(input.slice(colon + 1));
      let list = users.get(source);
      if (!list) users.set(source, list = []);
      list.push({ node: j, operand, output });
    });
  });

  const walk = (name: string, output: number | null, via: string[], seen: Set<string>, out: TfjsConsumer[]) => {
    for (const u of users.get(name) ?? []) {
      if (output !== null && u.output !== output) continue;
      const n = nodes[u.node]!;
      if (PASS_THROUGH.has(n.op) && via.length < MAX_PASS_DEPTH && !seen.has(n.name)) {
        const before = out.length;
        seen.add(n.name);
        walk(n.name, n.op === 'IdentityN' ? u.operand : null, [...via, n.op], seen, out);
        if (out.length > before) continue;
      }
      out.push({ op: n.op, opIndex: u.node, subgraph: 0, operand: u.operand, ...(via.length ? { via } : {}) });
    }
  };
  for (const name of weightNames) {
    const out: TfjsConsumer[] = [];
    walk(name, null, [], new Set([name]), out);
    consumers.set(name, out);
  }
  return { consumers, operatorCounts };
}

interface LayerInfo { name: string; className: string; index: number }

/** Every layer of a Keras/TF.js layers topology, nested models and wrapped layers included. */
function flattenLayers(topology: unknown): LayerInfo[] {
  const out: LayerInfo[] = [];
  const visit = (layer: unknown, depth: number) => {
    if (!isObject(layer) || depth > 32) return;
    const className = typeof layer.class_name === 'string' ? layer.class_name : '?';
    const config = layer.config;
    const layers = Array.isArray(config) ? config : isObject(config) && Array.isArray(config.layers) ? config.layers : null;
    if (isObject(config) && typeof config.name === 'string') out.push({ name: config.name, className, index: out.length });
    if (layers) for (const l of layers) visit(l, depth + 1);
    if (isObject(config)) for (const key of ['layer', 'forward_layer', 'backward_layer']) visit(config[key], depth + 1);
  };
  const root = isObject(topology) && isObject(topology.model_config) ? topology.model_config : topology;
  visit(root, 0);
  return out;
}

/**
 * Consumers in a layers topology: the weight "a/b/conv2d_1/kernel" belongs to the innermost
 * segment that names a layer, with role "kernel"; operand counts the layer's earlier weights.
 */
export function layersConsumers(topology: unknown, weightNames: readonly string[]): ConsumerMap {
  const layers = flattenLayers(topology);
  const operatorCounts = new Map<string, number>();
  const byName = new Map<string, LayerInfo>();
  for (const l of layers) {
    if (l.className !== 'InputLayer' && !/^(Sequential|Model|Functional)$/.test(l.className)) {
      operatorCounts.set(l.className, (operatorCounts.get(l.className) ?? 0) + 1);
    }
    if (!byName.has(l.name)) byName.set(l.name, l);
  }
  const consumers = new Map<string, TfjsConsumer[]>();
  const perLayer = new Map<string, number>();
  for (const weight of weightNames) {
    const segments = weight.replace(/:\d+$/, '').split('/');
    const role = segments[segments.length - 1]!;
    let layer: LayerInfo | undefined;
    for (let i = segments.length - 2; i >= 0 && !layer; i--) layer = byName.get(segments[i]!);
    if (!layer) { consumers.set(weight, []); continue; }
    const operand = perLayer.get(layer.name) ?? 0;
    perLayer.set(layer.name, operand + 1);
    consumers.set(weight, [{ op: layer.className, opIndex: layer.index, subgraph: 0, operand, layer: layer.name, role }]);
  }
  return { consumers, operatorCounts };
}
