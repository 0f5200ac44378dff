/**
 * TFLite-style sparsity parameters, format-neutral (no flatbuffer objects). The same shape
 * serves any codec that walks a tensor level by level.
 */
export type IndexVector = Uint8Array | Uint16Array | Int32Array;

export type DimensionMetadata =
  | { format: 'DENSE'; denseSize: number }
  | { format: 'SPARSE_CSR'; segments: IndexVector; indices: IndexVector };

export interface SparsityParams {
  /** n + k entries for an n-D tensor with a k-D block (first n: permutation of 0..n-1). */
  traversalOrder: number[];
  /** k entries: the original dimension each block dimension subdivides. */
  blockMap: number[];
  /** n + k entries, in traversal order. */
  dimMetadata: DimensionMetadata[];
}
