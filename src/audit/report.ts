/**
 * The audit report: plain data, the same for the terminal table, the JSON output and the HTML
 * page. Field names are part of the versioned JSON schema (docs/audit-schema.json): add fields
 * freely, never rename or retype one without bumping AUDIT_SCHEMA.
 */

export const AUDIT_SCHEMA = 'prunepack.audit/1';

/** One encoding of one weight and its size. */
export interface AuditCandidate {
  /** 'dense', 'dense+gzip', 'bcsr:RxC', 'bitmap:RxC[+deflate]' (PPSP blobs), 'tflite-sparse:...', 'onnx-sparse:...' */
  encoding: string;
  family: 'dense' | 'codec' | 'target';
  bytes: number;
  /** False when the size is an estimate (TFLite flatbuffer tables around sparse tensors). */
  exact: boolean;
}

/** What one writer target does with one weight. */
export interface AuditTargetChoice {
  target: string;
  /** Encoding in the target's own words ('dense', 'FC v8 block 1x4', 'sparse-constant'...). */
  encoding: string;
  /** True when the target stores this weight sparse. */
  sparse: boolean;
  bytes: number;
  exact: boolean;
  reason: string;
}

export interface AuditStructure {
  /** The matrix view the statistics refer to (src/sparsity/analysis.ts). */
  matrix: { rows: number; cols: number; rowAxis: number };
  /** Block shape covering the most zeros with whole all-zero blocks; null when no block is all zero. */
  bestBlock: { shape: string; rows: number; cols: number; zeroBlockShare: number; zerosCoveredShare: number } | null;
  /** N:M patterns: share of groups of M consecutive columns with at most N nonzeros. */
  nm: Array<{ pattern: string; share: number; satisfied: boolean }>;
  /** Densest N:M pattern every group satisfies (e.g. "2:4"); null when none. */
  nmSatisfied: string | null;
  zeroRows: number;
  zeroColumns: number;
  /** Entirely zero slices of the last axis (input channels of TFLite FC / conv); null when not meaningful. */
  zeroInputChannels: number | null;
}

/** A small picture of where the nonzeros are (HTML report only): nonzero density per cell. */
export interface AuditZeroPattern {
  width: number;
  height: number;
  /** Matrix rows and columns per pixel. */
  cellRows: number;
  cellCols: number;
  /** width x height bytes, row-major, 0 = all zeros, 255 = all nonzero; base64. */
  density: string;
}

export interface AuditWeight {
  /** 1-based position in the report's order (most bytes at stake first). */
  rank: number;
  name: string;
  /** Consumers as OP:operand, through DENSIFY/DEQUANTIZE where present (as `inspect`). */
  consumers: string[];
  /** Operator kind of the first consumer (without pass-through operators); null when none. */
  op: string | null;
  shape: number[];
  dtype: string;
  elements: number;
  /** Bytes as stored in the input file. */
  storedBytes: number;
  /** Bytes of the dense tensor. */
  denseBytes: number;
  storedSparse: boolean;
  /** Zero elements (numeric zero; integers: equal to the zero point); null when not analysed. */
  zeros: number | null;
  zeroShare: number | null;
  /** Why the weight was not analysed (sub-byte, string...); absent when it was. */
  note?: string;
  structure: AuditStructure | null;
  /** N * H(zeros/N) / 8 + nnz * element bytes (FORMATS.md); the dense size when not analysed. */
  informationBound: number;
  /** Every encoding sized for this weight, smallest first. */
  candidates: AuditCandidate[];
  /** The smallest candidate. */
  best: { encoding: string; bytes: number };
  /** The choice of every writer target of the format. */
  targets: AuditTargetChoice[];
  /** gzip (fflate, report's gzipLevel) of the dense bytes; null when not computed (see docs/audit.md). */
  gzipBytes: number | null;
  /** Dense bytes minus the smallest candidate (0 when nothing is smaller): the sort key. */
  savedBytes: number;
  zeroPattern?: AuditZeroPattern;
}

/** Issue 11: how well a FULLY_CONNECTED weight's zeros fit the kernel's blocks. */
export interface AuditFullyConnected {
  name: string;
  dtype: string;
  shape: number[];
  /** '1x4' for float weights, '1x16' for int8. */
  block: string;
  /** True when TFLite's FULLY_CONNECTED reads this dtype in this block natively (float32 1x4, int8 1x16). */
  nativeKernel: boolean;
  elementSparsity: number;
  /** Share of blocks that are entirely zero. */
  blockSparsity: number;
  /** Share of the zeros that lie in entirely zero blocks. */
  zerosInBlocksShare: number;
  /** What the official converter would do: 'dense' (< 30% zeros), 'block' or 'csr+densify'. */
  officialConverter: 'dense' | 'block' | 'csr+densify' | 'not applicable';
  officialReason: string;
  /** `prune --block B --sparsity elementSparsity` on this weight; null when it does not apply or was not asked for (options.pruneCost). */
  prune: {
    sparsity: number;
    /** Nonzero elements it would set to zero. */
    extraZeros: number;
    extraZeroShare: number;
    zeroShareAfter: number;
    /** Share of the weight's L1 norm (dequantized) that those extra zeros remove. */
    l1RemovedShare: number;
  } | null;
  pruneNote?: string;
}

export interface AuditTargetTotal {
  target: string;
  /** True for the format's dense target (the reference for ratios). */
  dense: boolean;
  /** Exact size of the output file the target's writer produces (no runtime check, default options). */
  bytes: number | null;
  gzipBytes: number | null;
  /** dense target bytes / this target's bytes. */
  ratio: number | null;
  /** bytes / the model's information bound (fileBound). */
  ratioToBound: number | null;
  gzipRatioToBound: number | null;
  /** Weights the target stores sparse; null when the plugin does not say. */
  sparseWeights: number | null;
  /** Set when the writer failed; bytes are then null. */
  error?: string;
}

export interface AuditTotals {
  weights: number;
  analyzedWeights: number;
  elements: number;
  zeros: number;
  zeroShare: number;
  storedWeightBytes: number;
  denseWeightBytes: number;
  input: { bytes: number; gzipBytes: number | null };
  /** The dense target's output (bytes and gzip). */
  dense: { target: string | null; bytes: number | null; gzipBytes: number | null };
  targets: AuditTargetTotal[];
  informationBound: {
    /** Sum of the weights' bounds. */
    weightBytes: number;
    /** weightBytes plus what the dense file holds besides weights (graph, names, metadata). */
    fileBytes: number;
    formula: string;
  };
  /** Sum over weights of the smallest non-entropy PPSP codec size (exact); weights only. */
  codecWeightBytes: number;
}

export interface AuditBudget {
  kind: 'max-bytes' | 'min-ratio';
  target: string;
  limit: number;
  actual: number | null;
  passed: boolean;
  message: string;
}

export interface AuditXnnpack {
  /** The zeros threshold alone (1x1 CONV_2D filters through DENSIFY more than 2/3 zeros). */
  qualifies: boolean;
  /** Threshold met and the NCHW operator pattern fits: XNNPACK is expected to run sparse. */
  expected?: boolean;
  reason: string;
}

export interface AuditReport {
  schema: typeof AUDIT_SCHEMA;
  tool: { name: 'prunepack'; version: string };
  file: string | null;
  format: string;
  formatVersion: string;
  options: {
    gzipLevel: number;
    /** Weights listed (null: all). */
    top: number | null;
    /** How many weights (the first in report order) got the per-weight gzip and +deflate candidates. */
    gzipWeights: number;
    /** Whether `fullyConnected[].prune` was computed (AuditOptions.pruneCost, --prune-cost). */
    pruneCost: boolean;
  };
  /** Writer targets of the format, in the plugin's order. */
  targets: string[];
  totals: AuditTotals;
  /** Total number of weights (weights[] may be cut by `top`). */
  weightCount: number;
  weights: AuditWeight[];
  fullyConnected: AuditFullyConnected[];
  /** TFLite only: whether XNNPACK's fast sparse inference may run on the tflite-sparse output. */
  xnnpack: AuditXnnpack | null;
  budgets: AuditBudget[];
  /** What is estimated and other caveats for this model. */
  notes: string[];
  /** Milliseconds per phase. */
  timings: Record<string, number>;
}
