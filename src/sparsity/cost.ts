/**
 * Cost model: exact byte sizes of every allowed encoding of one weight, and the cheapest one.
 *
 * Encoding names:
 *   'dense'                 the raw tensor bytes (count x element bytes)
 *   'dense+gzip'            gzip -9 (fflate) of the raw bytes: what an HTTP server sends for dense
 *   'bcsr:RxC', 'bitmap:RxC' PPSP blobs (codecs.ts) without the entropy stage, sized from the analysis
 *   '...+deflate'           the same with deflated index and byte-shuffled, deflated values (encoded
 *                           for real to size them)
 *   'bcsr', 'bitmap'        without a block shape: 1x1 and every block shape of the analysis that
 *                           divides the matrix ('+deflate': 1x1 and the analysis' best block only)
 * Format-specific encodings (TFLite CSR, 1x4 blocks...) come from the caller as size callbacks.
 */
import { gzipSync } from 'fflate';
import { PrunepackError } from '../errors.js';
import {
  analyzeZeros, DEFAULT_BLOCK_SHAPES,
  type DenseWeight, type ZeroAnalysis, type ZeroRule,
} from './analysis.js';
import { encodeSparse, sparseEncodedSize, type DeflateLevel, type SparseCodec } from './codecs.js';

export interface NamedWeight extends DenseWeight {
  /** Tensor name, copied into the plan entry. */
  name: string;
}

/** An encoding the caller sizes itself (e.g. TFLite CSR); null when it cannot hold this weight. */
export interface ExternalEncoding {
  name: string;
  size(weight: NamedWeight, analysis: ZeroAnalysis): number | null;
}

export type AllowedEncoding = string | ExternalEncoding;

export interface EncodingCandidate {
  encoding: string;
  bytes: number;
}

export interface PlanEntry {
  tensor: string;
  encoding: string;
  /** One sentence: the choice, its size against dense gzip, and the runner-up. */
  reason: string;
  bytesBefore: number;
  bytesAfter: number;
  /** Every encoding that can hold the weight, in the order considered. */
  candidates: EncodingCandidate[];
  /** Allowed encodings that cannot hold this weight, and why. */
  skipped: { encoding: string; why: string }[];
}

export interface CostOptions {
  rowAxis?: number;
  zeroRule?: ZeroRule;
  /** DEFLATE level for '+deflate' candidates; default 6 (as encodeSparse). */
  level?: DeflateLevel;
  /** Size gzip -9 of the dense bytes for the reason sentence (default true; costs one gzip pass). */
  compareWithGzip?: boolean;
  /** Bytes the weight takes today (default: the dense size). */
  bytesBefore?: number;
  /** A ready analysis of this weight (same rowAxis and zeroRule, listing any explicit block shapes). */
  analysis?: ZeroAnalysis;
}

export interface ParsedEncoding {
  kind: 'dense' | 'dense+gzip' | SparseCodec;
  /** Undefined for 'bcsr'/'bitmap' without a shape (expanded by the planner). */
  blockShape?: [number, number];
  deflate: boolean;
}

const ENCODING_PATTERN = /^(bcsr|bitmap)(?::(\d+)x(\d+))?(\+deflate)?$/;

/** Parses an encoding name of the grammar above; throws INVALID_ARGUMENT otherwise. */
export function parseEncoding(name: string): ParsedEncoding {
  if (name === 'dense' || name === 'dense+gzip') return { kind: name, deflate: false };
  const m = ENCODING_PATTERN.exec(name);
  if (!m) {
    throw new PrunepackError('INVALID_ARGUMENT', `unknown encoding '${name}'`, {
      expected: "'dense', 'dense+gzip', 'bcsr[:RxC][+deflate]' or 'bitmap[:RxC][+deflate]'", found: name,
    });
  }
  const shape: [number, number] | undefined = m[2] ? [Number(m[2]), Number(m[3])] : undefined;
  if (shape && (shape[0] < 1 || shape[1] < 1)) {
    throw new PrunepackError('INVALID_ARGUMENT', `block shape of '${name}' must be positive`, { found: name });
  }
  return { kind: m[1] as SparseCodec, ...(shape ? { blockShape: shape } : {}), deflate: m[4] !== undefined };
}

function encodingName(codec: SparseCodec, [r, c]: readonly [number, number], deflate: boolean): string {
  return `${codec}:${r}x${c}${deflate ? '+deflate' : ''}`;
}

/** Binary entropy in bits. */
function binaryEntropy(p: number): number {
  if (p <= 0 || p >= 1) return 0;
  return -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
}

/**
 * Reference size for unstructured sparsity with raw values: count * H(zeros / count) / 8 bytes of
 * positions plus nnz * valueBytes (see FORMATS.md). Entropy-coded values can go below it.
 */
export function informationBound(count: number, zeros: number, valueBytes: number): number {
  if (count === 0) return 0;
  return (count * binaryEntropy(zeros / count)) / 8 + (count - zeros) * valueBytes;
}

/** Bytes of gzip (fflate, default level 9) of `bytes`. */
export function gzipSize(bytes: Uint8Array, level: DeflateLevel = 9): number {
  return gzipSync(bytes, { level }).length;
}

function denseBytesOf(weight: DenseWeight): Uint8Array {
  const v = weight.values;
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

const integer = new Intl.NumberFormat('en-US');

/** Sizes every allowed encoding of one weight and picks the fewest bytes (ties: the earlier one). */
export function planWeightEncoding(weight: NamedWeight, allowed: readonly AllowedEncoding[], options: CostOptions = {}): PlanEntry {
  if (allowed.length === 0) {
    throw new PrunepackError('INVALID_ARGUMENT', 'no encodings allowed', { location: weight.name, expected: 'at least one encoding' });
  }
  const parsed = allowed.map((a) => (typeof a === 'string' ? { name: a, parsed: parseEncoding(a) } : { name: a.name, external: a }));
  const explicitShapes = parsed.flatMap((p) => ('parsed' in p && p.parsed?.blockShape ? [p.parsed.blockShape] : []));
  const shapes = [...DEFAULT_BLOCK_SHAPES];
  for (const s of explicitShapes) {
    if (!shapes.some(([r, c]) => r === s[0] && c === s[1]) && !(s[0] === 1 && s[1] === 1)) shapes.push(s);
  }
  const analysis = options.analysis ?? analyzeZeros(weight, {
    rowAxis: options.rowAxis ?? 0, zeroRule: options.zeroRule ?? 'numeric', blockShapes: shapes,
  });
  const rowAxis = analysis.matrix.rowAxis;
  const zeroRule = analysis.zeroRule;
  const level = options.level ?? 6;
  const dense = analysis.count * analysis.elementBytes;

  const candidates: EncodingCandidate[] = [];
  const skipped: { encoding: string; why: string }[] = [];
  const seen = new Set<string>();
  const add = (encoding: string, bytes: () => number | null) => {
    if (seen.has(encoding)) return;
    seen.add(encoding);
    const n = bytes();
    if (n === null) return;
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new PrunepackError('INVALID_ARGUMENT', `encoding '${encoding}' reported an invalid size`, {
        location: weight.name, expected: 'a non-negative integer byte count', found: String(n),
      });
    }
    candidates.push({ encoding, bytes: n });
  };
  let gzipBytes: number | null = null;
  const gzipOnce = () => (gzipBytes ??= gzipSize(denseBytesOf(weight), 9));

  const sparseCandidate = (codec: SparseCodec, shape: readonly [number, number], deflate: boolean) => {
    const name = encodingName(codec, shape, deflate);
    const { rows, cols } = analysis.matrix;
    if (rows % shape[0] !== 0 || cols % shape[1] !== 0) {
      if (!seen.has(name)) skipped.push({ encoding: name, why: `block ${shape[0]}x${shape[1]} does not divide the ${rows}x${cols} matrix` });
      seen.add(name);
      return;
    }
    add(name, () => (deflate
      ? encodeSparse(weight, {
        codec, blockShape: shape, rowAxis, zeroRule, level, deflateIndex: true, deflateValues: true, shuffleValues: true,
      }).byteLength
      : sparseEncodedSize(analysis, { codec, blockShape: shape })));
  };

  for (const entry of parsed) {
    if ('external' in entry && entry.external) {
      const ext = entry.external;
      add(ext.name, () => {
        const n = ext.size(weight, analysis);
        if (n === null) skipped.push({ encoding: ext.name, why: 'the encoding cannot hold this weight' });
        return n;
      });
      continue;
    }
    const p = (entry as { parsed: ParsedEncoding }).parsed;
    if (p.kind === 'dense') { add('dense', () => dense); continue; }
    if (p.kind === 'dense+gzip') { add('dense+gzip', gzipOnce); continue; }
    if (p.blockShape) { sparseCandidate(p.kind, p.blockShape, p.deflate); continue; }
    sparseCandidate(p.kind, [1, 1], p.deflate);
    if (p.deflate) {
      if (analysis.bestBlock) sparseCandidate(p.kind, [analysis.bestBlock.rows, analysis.bestBlock.cols], true);
    } else {
      for (const b of analysis.blocks) if (b.applicable) sparseCandidate(p.kind, [b.rows, b.cols], false);
    }
  }
  if (candidates.length === 0) {
    throw new PrunepackError('UNSUPPORTED', 'none of the allowed encodings can hold this weight', {
      location: weight.name, found: skipped.map((s) => `${s.encoding}: ${s.why}`).join('; '),
    });
  }

  let best = candidates[0];
  for (const c of candidates) if (c.bytes < best.bytes) best = c;
  let runnerUp: EncodingCandidate | null = null;
  for (const c of candidates) if (c !== best && (!runnerUp || c.bytes < runnerUp.bytes)) runnerUp = c;

  let reason = `${best.encoding}: ${integer.format(best.bytes)} B`;
  if (options.compareWithGzip ?? true) {
    const g = gzipOnce();
    reason += g > 0 ? `, ${(best.bytes / g).toFixed(2)}x of dense gzip -9 (${integer.format(g)} B)` : '';
  } else if (dense > 0) {
    reason += `, ${(best.bytes / dense).toFixed(2)}x of dense (${integer.format(dense)} B)`;
  }
  if (runnerUp) reason += `; ${runnerUp.encoding} would be ${integer.format(runnerUp.bytes)} B`;
  reason += `; ${(analysis.zeroShare * 100).toFixed(1)}% zeros`;

  return {
    tensor: weight.name,
    encoding: best.encoding,
    reason,
    bytesBefore: options.bytesBefore ?? dense,
    bytesAfter: best.bytes,
    candidates,
    skipped,
  };
}
