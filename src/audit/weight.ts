/**
 * One weight of an audit: zero analysis (through the WebAssembly kernel where it applies), codec
 * sizes, the FULLY_CONNECTED block report and its optional prune cost, gzip figures. Used by
 * auditModel (audit.ts) and, without the writer targets' modules, by the streaming audit's worker
 * threads (worker.ts), whose start-up time is mostly module loading.
 */
import { describeConsumer } from '../inspect.js';
import { elementCount, typedView } from '../model/dtype.js';
import type { Model, WeightTensor } from '../model/types.js';
import { analyzeZeros, createZeroScanner, isSparseDType, type DenseWeight, type ZeroAnalysis, type ZeroScanner } from '../sparsity/analysis.js';
import { encodeSparse, sparseEncodedSize, type DeflateLevel, type SparseCodec } from '../sparsity/codecs.js';
import { informationBound } from '../sparsity/cost.js';
import { gzipSizeOf, type GzipLevel } from './gzip.js';
import type { AuditCandidate, AuditFullyConnected, AuditStructure, AuditWeight } from './report.js';
import { zeroPatternOf } from './zero-pattern.js';
import { magnitudeFill } from '../model/magnitude.js';
import { ZeroBitsKernel } from './zero-bits-wasm.js';

/** Reads a weight's next range into a given array (src/io/paged.ts PagedFile). */
export interface RangeTarget {
  readNextRangeInto(into: Uint8Array | null, onRead?: (bytesDone: number) => void, ring?: number): void;
}

/**
 * Bytes of the ring a weight is read through when only its zero bits are needed (a multiple of
 * the 512 KiB read piece): the pieces stay in the core's L2 cache, for the read's copy and for the
 * bits kernel, instead of going through a weight-sized area.
 */
export const READ_RING = 1 << 20;

let threadKernel: ZeroBitsKernel | null | undefined;
/** This thread's zero-bits kernel (WebAssembly SIMD), or null where WebAssembly SIMD is missing. */
function auditKernel(): ZeroBitsKernel | null {
  if (threadKernel === undefined) threadKernel = ZeroBitsKernel.create();
  return threadKernel;
}

/** What a streaming pass keeps of one weight (plain data: it crosses worker threads). */
export interface StreamedWeight {
  row: AuditWeight;
  analysis: ZeroAnalysis | null;
  rowAxis: number;
  rawBest: number;
  fullyConnected?: AuditFullyConnected;
}

/**
 * One weight of a streaming audit: analysis, codec sizes, FULLY_CONNECTED blocks, the gzip
 * figures when `deep`, its zero-pattern picture when asked; the weight is released afterwards.
 */
export function streamWeight(model: Model, index: number,
  options: { gzipLevel: GzipLevel; deep: boolean; zeroPattern: boolean; pruneCost?: boolean; paged?: RangeTarget }): StreamedWeight {
  const weight = model.weights[index]!;
  try {
    // The dense bytes are needed after the zero bits only for gzip, the picture and the prune cost.
    const denseLater = options.deep || options.zeroPattern || (options.pruneCost ?? false);
    const { row, analysis, rowAxis, rawBest } = analyzeWeight(model, weight, index, options.paged, denseLater);
    const item: WorkItem = { index, weight, row, analysis, rowAxis, rawBest };
    if (isFullyConnectedItem(model, item)) item.fullyConnected = fullyConnectedReport(item, options.pruneCost ?? false);
    if (options.deep) deepGzip(item, options.gzipLevel, options.gzipLevel as DeflateLevel);
    if (options.zeroPattern && zeroPatternInterest(item) > 0) {
      row.zeroPattern = zeroPatternOf(denseWeightOf(weight, weight.denseBytes()), rowAxis);
    }
    return { row, analysis, rowAxis, rawBest, ...(item.fullyConnected ? { fullyConnected: item.fullyConnected } : {}) };
  } finally {
    weight.release?.();
  }
}

export interface WorkItem {
  index: number;
  weight: WeightTensor;
  row: AuditWeight;
  analysis: ZeroAnalysis | null;
  rowAxis: number;
  /** Smallest size among candidates without an entropy stage (the sort key's base). */
  rawBest: number;
  /** Computed during a streaming pass (the weight's bytes are gone afterwards). */
  fullyConnected?: AuditFullyConnected;
}

/** Row axis of the matrix view: output channels. ONNX MatMul weights are [in, out]. */
export function rowAxisFor(model: Model, weight: WeightTensor): number {
  if (weight.shape.length === 2 && model.format === 'onnx' && weight.consumers.some((c) => c.op === 'MatMul' && c.operand === 1)) return 1;
  return 0;
}

export function denseWeightOf(weight: WeightTensor, dense: Uint8Array): DenseWeight {
  return {
    values: dense, dtype: weight.dtype, shape: weight.shape,
    ...(weight.quantization ? { quantization: { zeroPoint: weight.quantization.zeroPoint, axis: weight.quantization.axis } } : {}),
  };
}

function structureOf(a: ZeroAnalysis): AuditStructure {
  const best = a.bestBlock;
  const bestStats = best ? a.blocks.find((b) => b.rows === best.rows && b.cols === best.cols) : undefined;
  const satisfied = a.nm.filter((p) => p.applicable && p.satisfied).sort((x, y) => x.n / x.m - y.n / y.m);
  return {
    matrix: { rows: a.matrix.rows, cols: a.matrix.cols, rowAxis: a.matrix.rowAxis },
    bestBlock: best ? {
      shape: `${best.rows}x${best.cols}`, rows: best.rows, cols: best.cols,
      zeroBlockShare: best.zeroBlockShare, zerosCoveredShare: bestStats?.zerosCoveredShare ?? 0,
    } : null,
    nm: a.nm.filter((p) => p.applicable).map((p) => ({ pattern: `${p.n}:${p.m}`, share: p.share, satisfied: p.satisfied })),
    nmSatisfied: satisfied.length && a.nonzeros > 0 ? `${satisfied[0]!.n}:${satisfied[0]!.m}` : null,
    zeroRows: a.zeroRows,
    zeroColumns: a.zeroColumns,
    zeroInputChannels: a.zeroInputChannels,
  };
}

/** The non-entropy PPSP codec candidates: 1x1 and the smallest block shape, per codec. */
function codecCandidates(a: ZeroAnalysis): AuditCandidate[] {
  const out: AuditCandidate[] = [];
  for (const codec of ['bcsr', 'bitmap'] as SparseCodec[]) {
    out.push({ encoding: `${codec}:1x1`, family: 'codec', bytes: sparseEncodedSize(a, { codec }), exact: true });
    let best: AuditCandidate | null = null;
    for (const b of a.blocks) {
      if (!b.applicable || (b.rows === 1 && b.cols === 1)) continue;
      const bytes = sparseEncodedSize(a, { codec, blockShape: [b.rows, b.cols] });
      if (!best || bytes < best.bytes) best = { encoding: `${codec}:${b.rows}x${b.cols}`, family: 'codec', bytes, exact: true };
    }
    if (best && best.bytes < out[out.length - 1]!.bytes) out.push(best);
  }
  return out;
}

/** Per-weight gzip of the dense bytes and the entropy-coded (+deflate) PPSP candidates. */
export function deepGzip(item: WorkItem, gzipLevel: GzipLevel, level: DeflateLevel): void {
  const dense = item.weight.denseBytes();
  item.row.gzipBytes = gzipSizeOf([dense], gzipLevel);
  item.row.candidates.push({ encoding: 'dense+gzip', family: 'dense', bytes: item.row.gzipBytes, exact: true });
  if (!item.analysis) return;
  const shapes: Array<[number, number]> = [[1, 1]];
  const bb = item.analysis.bestBlock;
  if (bb && !(bb.rows === 1 && bb.cols === 1)) shapes.push([bb.rows, bb.cols]);
  for (const shape of shapes) {
    try {
      const bytes = encodeSparse(denseWeightOf(item.weight, dense), {
        codec: 'bitmap', blockShape: shape, rowAxis: item.rowAxis, level, deflateIndex: true, deflateValues: true, shuffleValues: true,
      }).byteLength;
      item.row.candidates.push({ encoding: `bitmap:${shape[0]}x${shape[1]}+deflate`, family: 'codec', bytes, exact: true });
    } catch { /* dtype without a PPSP code: no entropy candidate */ }
  }
}

export function isFullyConnectedItem(model: Model, i: WorkItem): boolean {
  return i.analysis !== null && model.format === 'tflite' && i.weight.shape.length === 2
    && i.weight.consumers.some((c) => c.op === 'FULLY_CONNECTED' && c.operand === 1);
}

/** Which weights deserve a zero-pattern picture: those with zeros, matrices first (0: none). */
export function zeroPatternInterest(i: WorkItem): number {
  if (!i.analysis || i.row.elements < 16) return 0;
  const zeros = (i.row.zeros ?? 0) > 0 ? 2 : 0;
  return zeros === 0 && i.weight.shape.length < 2 ? 0 : zeros + (i.weight.shape.length >= 2 ? 1 : 0);
}

/** Stored bytes of a weight without loading them (paged models), when the plugin knows them. */
export function storedLength(weight: WeightTensor): number {
  return weight.storedByteLength ?? weight.bytes.length;
}

/**
 * The weight's dense bytes, in the kernel's input area when there is a kernel: read there
 * straight from the file when `paged` is given and the weight is stored dense, copied otherwise.
 */
function loadDense(weight: WeightTensor, kernel: ZeroBitsKernel | null, paged: RangeTarget | undefined, rowAxis: number, denseLater: boolean): Uint8Array {
  const stored = storedLength(weight);
  const into = kernel !== null && paged !== undefined && weight.sparsity === undefined ? kernel.input(stored) : null;
  const direct = into !== null;
  if (direct) {
    // The zero bits of each piece are computed as soon as it is read, while it is in cache.
    let test: ReturnType<ZeroScanner['flatZeroTest']> = null;
    if (isSparseDType(weight.dtype)) {
      try { test = createZeroScanner(denseWeightOf(weight, into), rowAxis).flatZeroTest(); } catch { /* analysed (and reported) later */ }
    }
    // Whole groups of 32 elements and nothing reading the values after the bits: through the
    // ring. The returned array then holds only the last ring's worth of bytes; the analysis
    // reads the bits alone (analyzeZeros with nonzeroBits never reads the values), and sizes
    // use its length.
    const groupBytes = test ? 32 * test.width : 0;
    const ring = test && !denseLater && stored > READ_RING && stored % groupBytes === 0 && READ_RING % groupBytes === 0 ? READ_RING : 0;
    if (ring > 0) paged!.readNextRangeInto(into, (done) => kernel!.ringBitsUpTo(done, ring, test!.width, test!.mask, test!.ref), ring);
    else paged!.readNextRangeInto(into, test ? (done) => kernel!.bitsUpTo(done, test.width, test.mask, test.ref) : undefined);
  }
  try {
    return weight.denseBytes();
  } finally {
    if (direct) paged!.readNextRangeInto(null);
  }
}

export function analyzeWeight(model: Model, weight: WeightTensor, index: number, paged?: RangeTarget, denseLater = true): WorkItem {
  const kernel = auditKernel();
  const rowAxis = rowAxisFor(model, weight);
  const dense = loadDense(weight, kernel, paged, rowAxis, denseLater);
  let elements = 0;
  try { elements = elementCount(weight.shape); } catch { /* reported by the plugin when read */ }
  const row: AuditWeight = {
    rank: 0,
    name: weight.name,
    consumers: weight.consumers.map(describeConsumer),
    op: weight.consumers[0]?.op ?? null,
    shape: [...weight.shape],
    dtype: weight.dtype,
    elements,
    storedBytes: storedLength(weight),
    denseBytes: dense.length,
    storedSparse: weight.sparsity !== undefined,
    zeros: null,
    zeroShare: null,
    structure: null,
    informationBound: dense.length,
    candidates: [{ encoding: 'dense', family: 'dense', bytes: dense.length, exact: true }],
    best: { encoding: 'dense', bytes: dense.length },
    targets: [],
    gzipBytes: null,
    savedBytes: 0,
  };
  let analysis: ZeroAnalysis | null = null;
  if (!isSparseDType(weight.dtype)) {
    row.note = `${weight.dtype}: not analysed (the sparse analysis handles whole-byte numeric types)`;
  } else if (elements === 0) {
    row.note = 'empty tensor';
    row.zeros = 0;
  } else {
    analysis = analyzeDense(denseWeightOf(weight, dense), rowAxis, elements, kernel);
    row.zeros = analysis.zeros;
    row.zeroShare = analysis.zeroShare;
    row.structure = structureOf(analysis);
    row.informationBound = informationBound(analysis.count, analysis.zeros, analysis.elementBytes);
    row.candidates.push(...codecCandidates(analysis));
  }
  const rawBest = Math.min(...row.candidates.map((c) => c.bytes));
  return { index, weight, row, analysis, rowAxis, rawBest };
}

/**
 * analyzeZeros, with the zero bits and the bit-row counts from the WebAssembly kernel where it
 * applies (the same results: test/audit-kernel.test.ts). The weight's bytes are used in place
 * when they are the kernel's input area, copied there otherwise.
 */
function analyzeDense(weight: DenseWeight, rowAxis: number, elements: number, kernel: ZeroBitsKernel | null): ZeroAnalysis {
  const test = kernel ? createZeroScanner(weight, rowAxis).flatZeroTest() : null;
  if (!kernel || !test) return analyzeZeros(weight, { rowAxis });
  const v = weight.values;
  let bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (!kernel.holds(bytes)) {
    const input = kernel.input(bytes.length);
    if (!input) return analyzeZeros(weight, { rowAxis });
    input.set(bytes);
    bytes = input;
  }
  const nonzeroBits = kernel.bits(elements, test.width, test.mask, test.ref);
  return analyzeZeros({ ...weight, values: bytes }, { rowAxis, nonzeroBits, bitStats: kernel });
}

/**
 * What `prune --block RxC --sparsity s` would do to this weight, without doing it: the same
 * block norms (L1 of |value| in flat order, over the [dim 0, rest] matrix), the same choice (the
 * round(blocks * s) smallest norms, ties by position), counted instead of applied.
 */
export function blockPruneCost(weight: WeightTensor, dense: Uint8Array, block: readonly [number, number], sparsity: number):
  { extraZeros: number; zerosBefore: number; l1Removed: number; l1Total: number } | null {
  const magnitudes = magnitudeFill(weight, dense);
  if (!magnitudes || weight.shape.length === 0) return null;
  const n = elementCount(weight.shape);
  const rows = weight.shape[0]!;
  const cols = rows ? n / rows : 0;
  const [br, bc] = block;
  if (rows % br !== 0 || cols % bc !== 0) return null;
  const blockCols = cols / bc;
  const blocks = (rows / br) * blockCols;
  const norms = new Float64Array(blocks);
  const nonzeros = new Uint32Array(blocks);
  let zerosBefore = 0;
  let l1Total = 0;
  if (weight.dtype === 'float32') {
    // The common case without a row buffer; a value counts as non-zero unless its bits are +-0
    // (branch-free: ((bits & 0x7fffffff) + 0x7fffffff) >>> 31 is 1 for any other pattern, NaN too).
    const values = typedView('float32', dense) as Float32Array;
    const sums = float32BlockSums(values, rows, cols, br, bc, norms, nonzeros);
    zerosBefore = sums.zeros;
    l1Total = sums.l1;
    return choosePrunedBlocks(norms, nonzeros, sparsity, zerosBefore, l1Total);
  }
  const row = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    magnitudes(r * cols, row);
    const first = Math.floor(r / br) * blockCols;
    for (let j = 0, c = 0; j < blockCols; j++) {
      let norm = 0;
      let nz = 0;
      for (let k = 0; k < bc; k++, c++) {
        const m = row[c]!;
        norm += m;
        if (m !== 0) nz++;
      }
      norms[first + j] += norm;
      nonzeros[first + j] += nz;
      l1Total += norm;
      zerosBefore += bc - nz;
    }
  }
  return choosePrunedBlocks(norms, nonzeros, sparsity, zerosBefore, l1Total);
}

/** Block L1 norms and non-zero counts of a float32 [rows, cols] matrix (a small function V8 optimizes whole). */
function float32BlockSums(values: Float32Array, rows: number, cols: number, br: number, bc: number, norms: Float64Array, nonzeros: Uint32Array): { zeros: number; l1: number } {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const blockCols = cols / bc;
  let zeros = 0;
  let l1 = 0;
  for (let r = 0; r < rows; r++) {
    const first = ((r / br) | 0) * blockCols;
    for (let j = 0, c = r * cols; j < blockCols; j++) {
      let norm = 0;
      let nz = 0;
      for (let k = 0; k < bc; k++, c++) {
        norm += Math.abs(values[c]!);
        nz += ((bits[c]! & 0x7fffffff) + 0x7fffffff) >>> 31;
      }
      norms[first + j] += norm;
      nonzeros[first + j] += nz;
      l1 += norm;
      zeros += bc - nz;
    }
  }
  return { zeros, l1 };
}

/** The round(blocks * s) smallest norms (ties by position), counted as `prune` would zero them. */
function choosePrunedBlocks(norms: Float64Array, nonzeros: Uint32Array, sparsity: number, zerosBefore: number, l1Total: number):
  { extraZeros: number; zerosBefore: number; l1Removed: number; l1Total: number } {
  const blocks = norms.length;
  const k = Math.round(blocks * sparsity);
  let extraZeros = 0;
  let l1Removed = 0;
  if (k > 0) {
    const { value: threshold, below } = selectKthNonNegative(norms, k - 1);
    // Below the threshold: all of them (a select, not a branch: the comparison is unpredictable).
    for (let b = 0; b < blocks; b++) {
      const x = norms[b]!;
      const take = x < threshold;
      extraZeros += take ? nonzeros[b]! : 0;
      l1Removed += take ? x : 0;
    }
    // At the threshold: the first k - below by position.
    let ties = k - below;
    for (let b = 0; b < blocks && ties > 0; b++) {
      if (norms[b] === threshold) {
        extraZeros += nonzeros[b]!;
        l1Removed += threshold;
        ties--;
      }
    }
  }
  return { extraZeros, zerosBefore, l1Removed, l1Total };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * selectKth for arrays of non-negative numbers (block norms), without reordering `a`: for such
 * numbers the order of the high 32 bits of a float64 is the numeric order, so one counting pass
 * over the top 16 bits finds the bucket holding the k-th value, and only that bucket goes to
 * the comparison-based select (two predictable passes instead of a branchy partition of all).
 */
export function selectKthNonNegative(a: Float64Array, k: number): { value: number; below: number } {
  if (!LITTLE_ENDIAN || a.length < 4096) return selectKth(a.slice(), k);
  const words = new Uint32Array(a.buffer, a.byteOffset, a.length * 2);
  const counts = new Uint32Array(65536);
  for (let i = 0; i < a.length; i++) counts[words[2 * i + 1]! >>> 16]++;
  let bucket = 0;
  let before = 0;
  while (before + counts[bucket]! <= k) before += counts[bucket++]!;
  const inBucket = new Float64Array(counts[bucket]!);
  for (let i = 0, j = 0; i < a.length; i++) if (words[2 * i + 1]! >>> 16 === bucket) inBucket[j++] = a[i]!;
  const r = selectKth(inBucket, k - before);
  return { value: r.value, below: before + r.below };
}

/**
 * The value that would sit at index `k` if `a` were sorted, and how many elements are smaller
 * (reorders `a`; expected linear time).
 */
export function selectKth(a: Float64Array, k: number): { value: number; below: number } {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median of three as the pivot, then a three-way partition (many equal norms, e.g. zero blocks).
    const mid = lo + ((hi - lo) >> 1);
    const x = a[lo]!, y = a[mid]!, z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let lt = lo;
    let gt = hi;
    let i = lo;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) { a[i] = a[lt]!; a[lt] = v; lt++; i++; }
      else if (v > pivot) { a[i] = a[gt]!; a[gt] = v; gt--; }
      else i++;
    }
    // Everything left of lo is smaller than everything from lo on: [lo, lt) < pivot here.
    if (k < lt) hi = lt - 1;
    else if (k > gt) lo = gt + 1;
    else return { value: pivot, below: lt };
  }
  return { value: a[k]!, below: k };
}

const OFFICIAL_MIN_SPARSITY = 0.3;

export function fullyConnectedReport(item: WorkItem, pruneCost: boolean): AuditFullyConnected {
  const a = item.analysis!;
  const w = item.weight;
  const int8 = w.dtype === 'int8' || w.dtype === 'uint8';
  const [br, bc] = int8 ? [1, 16] : [1, 4];
  const stats = a.blocks.find((b) => b.rows === br && b.cols === bc);
  const viaDequantize = w.consumers.some((c) => c.op === 'FULLY_CONNECTED' && c.via?.includes('DEQUANTIZE'));
  const perChannel = (w.quantization?.scale.length ?? 0) > 1;
  const nativeKernel = !viaDequantize && ((w.dtype === 'float32') || (w.dtype === 'int8' && !perChannel)) && (stats?.applicable ?? false);
  const s = a.zeroShare;
  const blockSparsity = stats?.applicable ? stats.zeroBlockShare : 0;
  let officialConverter: AuditFullyConnected['officialConverter'];
  let officialReason: string;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  if (w.dtype !== 'float32' && w.dtype !== 'int8') {
    officialConverter = 'not applicable';
    officialReason = `the official converter compresses float32 and int8 FULLY_CONNECTED weights, not ${w.dtype}`;
  } else if (s < OFFICIAL_MIN_SPARSITY) {
    officialConverter = 'dense';
    officialReason = `${pct(s)} zeros < 30%`;
  } else {
    const threshold = int8 ? 0.8 : 0.9;
    const ratio = s > 0 ? blockSparsity / s : 0;
    officialConverter = ratio > threshold ? 'block' : 'csr+densify';
    officialReason = `block sparsity / element sparsity = ${ratio.toFixed(3)} ${ratio > threshold ? '>' : '<='} ${threshold}`;
  }
  const report: AuditFullyConnected = {
    name: w.name, dtype: w.dtype, shape: [...w.shape], block: `${br}x${bc}`, nativeKernel,
    elementSparsity: s, blockSparsity, zerosInBlocksShare: stats?.applicable ? stats.zerosCoveredShare : 0,
    officialConverter, officialReason, prune: null,
  };
  if (!stats?.applicable) {
    report.pruneNote = stats?.reason ?? `no ${br}x${bc} statistics`;
    return report;
  }
  if (s === 0) {
    report.pruneNote = 'no zeros: nothing to restructure';
    return report;
  }
  if (!pruneCost) {
    report.pruneNote = 'not computed (--prune-cost)';
    return report;
  }
  const cost = blockPruneCost(w, w.denseBytes(), [br, bc], s);
  if (!cost) {
    report.pruneNote = `prune cannot handle ${w.dtype} weights`;
    return report;
  }
  report.prune = {
    sparsity: s, extraZeros: cost.extraZeros, extraZeroShare: cost.extraZeros / a.count,
    zeroShareAfter: (cost.zerosBefore + cost.extraZeros) / a.count,
    l1RemovedShare: cost.l1Total > 0 ? cost.l1Removed / cost.l1Total : 0,
  };
  return report;
}
