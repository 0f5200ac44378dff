/**
 * Builds TfliteDocuments from scratch: used by the sample generator, by tests that need
 * models of a given shape, and by benchmarks. Weights are kept as byte views.
 */
import { ModelT } from '../../schemas/generated/tflite/tflite/model.js';
import { SubGraphT } from '../../schemas/generated/tflite/tflite/sub-graph.js';
import { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { OperatorT } from '../../schemas/generated/tflite/tflite/operator.js';
import { OperatorCodeT } from '../../schemas/generated/tflite/tflite/operator-code.js';
import { QuantizationParametersT } from '../../schemas/generated/tflite/tflite/quantization-parameters.js';
import { SignatureDefT } from '../../schemas/generated/tflite/tflite/signature-def.js';
import { TensorMapT } from '../../schemas/generated/tflite/tflite/tensor-map.js';
import { MetadataT } from '../../schemas/generated/tflite/tflite/metadata.js';
import type { BuiltinOperator } from '../../schemas/generated/tflite/tflite/builtin-operator.js';
import type { BuiltinOptions } from '../../schemas/generated/tflite/tflite/builtin-options.js';
import type { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import { TfliteBuffer, type TfliteDocument } from './document.js';

export interface QuantizationSpec { scale: number[]; zeroPoint: number[]; axis?: number }

export class TfliteGraphBuilder {
  private readonly tensors: TensorT[] = [];
  private readonly operators: OperatorT[] = [];
  private readonly codes: OperatorCodeT[] = [];
  private readonly buffers: TfliteBuffer[] = [TfliteBuffer.of(new Uint8Array(0))];
  private readonly metadata: MetadataT[] = [];

  /** A tensor without data (input, output or activation); returns its index. */
  tensor(name: string, type: TensorType, shape: number[], quantization?: QuantizationSpec): number {
    this.tensors.push(new TensorT(shape, type, 0, name, toQuantization(quantization)));
    return this.tensors.length - 1;
  }

  /** A constant tensor with its own buffer; returns its index. */
  constant(name: string, type: TensorType, shape: number[], bytes: Uint8Array, quantization?: QuantizationSpec): number {
    this.buffers.push(TfliteBuffer.of(bytes));
    this.tensors.push(new TensorT(shape, type, this.buffers.length - 1, name, toQuantization(quantization)));
    return this.tensors.length - 1;
  }

  operator(code: BuiltinOperator, version: number, inputs: number[], outputs: number[], optionsType: BuiltinOptions, options: OperatorT['builtinOptions']): number {
    let index = this.codes.findIndex((c) => c.builtinCode === code && c.version === version);
    if (index < 0) {
      this.codes.push(new OperatorCodeT(Math.min(code, 127), null, version, code));
      index = this.codes.length - 1;
    }
    this.operators.push(new OperatorT(index, inputs, outputs, optionsType, options));
    return this.operators.length - 1;
  }

  /** A metadata entry (name -> bytes), e.g. "min_runtime_version". */
  addMetadata(name: string, bytes: Uint8Array): void {
    this.buffers.push(TfliteBuffer.of(bytes));
    this.metadata.push(new MetadataT(name, this.buffers.length - 1));
  }

  finish(inputs: number[], outputs: number[], description: string): TfliteDocument {
    const subgraph = new SubGraphT(this.tensors, inputs, outputs, this.operators, 'main');
    const signature = new SignatureDefT(
      inputs.map((t) => new TensorMapT(this.tensors[t]!.name, t)),
      outputs.map((t) => new TensorMapT(this.tensors[t]!.name, t)),
      'serving_default', 0,
    );
    const model = new ModelT(3, this.codes, [subgraph], description, [], [], this.metadata, [signature]);
    return { model, buffers: this.buffers };
  }
}

function toQuantization(q?: QuantizationSpec): QuantizationParametersT | null {
  if (!q) return null;
  return new QuantizationParametersT([], [], q.scale, q.zeroPoint.map(BigInt), undefined, null, q.axis ?? 0);
}
