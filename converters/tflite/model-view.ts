/**
 * The format-neutral view of a TfliteDocument: operator names, and one WeightTensor per
 * constant tensor with the operators that consume it.
 */
import { BuiltinOperator } from '../../schemas/generated/tflite/tflite/builtin-operator.js';
import { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import type { OperatorCodeT } from '../../schemas/generated/tflite/tflite/operator-code.js';
import type { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { PrunepackError } from '../../src/errors.js';
import { byteLengthOf, elementCount, type DType } from '../../src/model/dtype.js';
import type { Model, Quantization, WeightConsumer, WeightTensor } from '../../src/model/types.js';
import { TypedSparsityT, type TfliteDocument } from './document.js';
import { densifyTfliteValues } from './sparse-values.js';

const TENSOR_DTYPES: Partial<Record<TensorType, DType>> = {
  [TensorType.FLOAT32]: 'float32', [TensorType.FLOAT16]: 'float16', [TensorType.INT32]: 'int32',
  [TensorType.UINT8]: 'uint8', [TensorType.INT64]: 'int64', [TensorType.STRING]: 'string',
  [TensorType.BOOL]: 'bool', [TensorType.INT16]: 'int16', [TensorType.COMPLEX64]: 'complex64',
  [TensorType.INT8]: 'int8', [TensorType.FLOAT64]: 'float64', [TensorType.COMPLEX128]: 'complex128',
  [TensorType.UINT64]: 'uint64', [TensorType.RESOURCE]: 'resource', [TensorType.VARIANT]: 'variant',
  [TensorType.UINT32]: 'uint32', [TensorType.UINT16]: 'uint16', [TensorType.INT4]: 'int4',
  [TensorType.BFLOAT16]: 'bfloat16', [TensorType.INT2]: 'int2', [TensorType.UINT4]: 'uint4',
  [TensorType.FLOAT8_E4M3FN]: 'float8e4m3fn', [TensorType.FLOAT8_E5M2]: 'float8e5m2',
};

export function tensorDType(type: TensorType, where: string): DType {
  const dtype = TENSOR_DTYPES[type];
  if (!dtype) {
    throw new PrunepackError('UNSUPPORTED', 'unknown tensor type', { format: 'tflite', location: where, expected: 'a TensorType of the 2026-08 schema', found: String(type) });
  }
  return dtype;
}

/** Name of an operator code: the builtin's name, or the custom code for CUSTOM ops. */
export function operatorName(code: OperatorCodeT): string {
  const builtin = Math.max(code.builtinCode, code.deprecatedBuiltinCode);
  if (builtin === BuiltinOperator.CUSTOM) return code.customCode ? `CUSTOM:${code.customCode}` : 'CUSTOM';
  return BuiltinOperator[builtin] ?? `BUILTIN_${builtin}`;
}

/** Operators that only change a weight's representation on its way to the real consumer. */
const PASS_THROUGH = new Set(['DENSIFY', 'DEQUANTIZE']);

export function buildModel(doc: TfliteDocument): Model {
  const { model, buffers } = doc;
  const opNames = model.operatorCodes.map(operatorName);
  const operatorCounts = new Map<string, number>();
  const weights: WeightTensor[] = [];
  const usedNames = new Set<string>();

  model.subgraphs.forEach((sg, s) => {
    // tensor index -> [operator index, input position]
    const readers = new Map<number, Array<[number, number]>>();
    sg.operators.forEach((op, o) => {
      const name = opNames[op.opcodeIndex] ?? `OPCODE_${op.opcodeIndex}`;
      operatorCounts.set(name, (operatorCounts.get(name) ?? 0) + 1);
      op.inputs.forEach((t, position) => {
        if (t < 0) return;
        let list = readers.get(t);
        if (!list) readers.set(t, (list = []));
        list.push([o, position]);
      });
    });

    // Tensors whose readers were already attributed to a weight through a pass-through operator:
    // a tensor is expanded once per model, so hostile wiring (cycles, one tensor produced by many
    // operators, an input listed thousands of times) cannot multiply the consumer lists.
    const expanded = new Set<number>();
    const consumersOf = (tensor: number, via: string[], depth: number): WeightConsumer[] => {
      const out: WeightConsumer[] = [];
      for (const [o, operand] of readers.get(tensor) ?? []) {
        const op = sg.operators[o]!;
        const name = opNames[op.opcodeIndex] ?? `OPCODE_${op.opcodeIndex}`;
        const output = op.outputs[0] ?? -1;
        if (PASS_THROUGH.has(name) && depth < 4 && op.inputs.length === 1 && op.outputs.length === 1 && output >= 0 && !expanded.has(output)) {
          expanded.add(output);
          const next = consumersOf(output, [...via, name], depth + 1);
          if (next.length) {
            for (const c of next) out.push(c);
            continue;
          }
        }
        out.push({ op: name, opIndex: o, subgraph: s, operand, ...(via.length ? { via } : {}) });
      }
      return out;
    };

    sg.tensors.forEach((tensor, t) => {
      const buffer = buffers[tensor.buffer];
      if (tensor.buffer <= 0 || !buffer || !buffer.hasData || tensor.isVariable) return;
      const tensorName = typeof tensor.name === 'string' ? tensor.name : '';
      const where = `subgraph ${s} tensor ${t} "${tensorName}"`;
      let name = tensorName || `tensor_${s}_${t}`;
      if (usedNames.has(name)) name = `${name}#${s}.${t}`;
      usedNames.add(name);
      const dtype = tensorDType(tensor.type, where);
      const shape = [...tensor.shape];
      weights.push(makeWeight(name, dtype, shape, tensor, buffer, consumersOf(t, [], 0), where, tensor.buffer, s, t));
    });
  });

  return { format: 'tflite', version: String(model.version), operatorCounts, weights, document: doc };
}

/** Extra, TFLite-specific facts kept on each weight for planners and reports. */
export interface TfliteWeightRef {
  subgraph: number;
  tensor: number;
  buffer: number;
}

function makeWeight(
  name: string, dtype: DType, shape: number[], tensor: TensorT, buffer: TfliteDocument['buffers'][number],
  consumers: WeightConsumer[], where: string, bufferIndex: number, subgraph: number, tensorIndex: number,
): WeightTensor & { tflite: TfliteWeightRef } {
  const sparsity = tensor.sparsity instanceof TypedSparsityT ? tensor.sparsity.params : undefined;
  const quantization = toQuantization(tensor);
  let dense: Uint8Array | undefined;
  return {
    name, dtype, shape, consumers, quantization, sparsity,
    tflite: { subgraph, tensor: tensorIndex, buffer: bufferIndex },
    get bytes() { return buffer.bytes; },
    get storedByteLength() { return buffer.byteLength; },
    denseBytes(): Uint8Array {
      if (!sparsity) {
        if (dtype !== 'string' && dtype !== 'resource' && dtype !== 'variant') {
          const expected = byteLengthOf(dtype, checkedElementCount(shape, where));
          if (buffer.byteLength !== expected) {
            throw new PrunepackError('CORRUPT', 'buffer size does not match the tensor shape', {
              format: 'tflite', location: where, expected: `${expected} bytes for ${dtype}[${shape.join(',')}]`, found: `${buffer.byteLength} bytes`,
            });
          }
        }
        return buffer.bytes;
      }
      dense ??= densifyTfliteValues(buffer.bytes, dtype, shape, sparsity, where);
      return dense;
    },
    release(): void {
      dense = undefined;
      buffer.release();
    },
  };
}

/** Element count of a stored shape; a negative dim or a product past 2^53 means a damaged file. */
function checkedElementCount(shape: number[], where: string): number {
  try {
    return elementCount(shape);
  } catch (e) {
    const shown = shape.length > 8 ? `${shape.slice(0, 8).join(',')},... (rank ${shape.length})` : shape.join(',');
    throw new PrunepackError('CORRUPT', 'invalid tensor shape', {
      format: 'tflite', location: where, expected: 'dimensions >= 0 whose product is below 2^53', found: `[${shown}]`, cause: e,
    });
  }
}

function toQuantization(tensor: TensorT): Quantization | undefined {
  const q = tensor.quantization;
  if (!q || (q.scale.length === 0 && q.zeroPoint.length === 0)) return undefined;
  return {
    scale: q.scale,
    zeroPoint: q.zeroPoint.map(Number),
    axis: q.scale.length > 1 ? q.quantizedDimension : undefined,
    ...(q.min.length ? { min: q.min } : {}),
    ...(q.max.length ? { max: q.max } : {}),
  };
}
