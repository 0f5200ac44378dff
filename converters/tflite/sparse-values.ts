/** Expanding TFLite sparse tensors to dense bytes, checked by the sparsity verifier first. */
import { PrunepackError } from '../../src/errors.js';
import { dtypeBits, typedView, type DType } from '../../src/model/dtype.js';
import { denseFromSparsity } from '../../src/sparsity/format-converter.js';
import { verifySparsity } from '../../src/sparsity/verify-sparsity.js';
import type { SparsityParams } from '../../src/sparsity/types.js';

/** `out`: the dense bytes' destination (reused by callers that decode many weights one at a time). */
export function densifyTfliteValues(stored: Uint8Array, dtype: DType, shape: number[], params: SparsityParams, where: string, out?: Uint8Array): Uint8Array {
  const bits = dtypeBits(dtype);
  if (bits % 8 !== 0 || bits === 0) {
    throw new PrunepackError('UNSUPPORTED', `sparse tensors of type ${dtype} are not supported`, { format: 'tflite', location: where });
  }
  const elementSize = bits / 8;
  try {
    verifySparsity(params, shape, stored.length, elementSize);
  } catch (e) {
    if (e instanceof PrunepackError) {
      throw new PrunepackError(e.code, `invalid sparsity metadata in ${where}: ${e.message}`, { format: 'tflite', location: where, cause: e });
    }
    throw e;
  }
  const values = typedView(dtype, stored);
  if (!values) throw new PrunepackError('UNSUPPORTED', `sparse tensors of type ${dtype} are not supported`, { format: 'tflite', location: where });
  const dense = denseFromSparsity(values, shape, params, out ? typedView(dtype, out) ?? undefined : undefined);
  return new Uint8Array(dense.buffer, dense.byteOffset, dense.byteLength);
}
