/**
 * The audit as terminal text: totals, weights (structure), encodings (per target choice and
 * why), FULLY_CONNECTED block fit, notes. Long names are shortened from the left.
 */
import { formatBytes, formatInt, percent, table } from '../cli/format.js';
import type { AuditReport, AuditWeight } from './report.js';

function clip(s: string, n: number): string {
  return s.length > n ? `…${s.slice(s.length - n + 1)}` : s;
}

/** Shortened from the right (sentences: the start says the most). */
function clipEnd(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function ratio(x: number | null): string {
  return x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`;
}

function bytesOrDash(n: number | null): string {
  return n === null ? '-' : formatInt(n);
}

/** The strictest N:M pattern every group meets ("2:4 all"), else the share of 2:4 groups. */
export function nmText(w: AuditWeight): string {
  const s = w.structure;
  if (!s || !w.zeros) return '-';
  if (s.nmSatisfied) return `${s.nmSatisfied} all`;
  const p = s.nm.find((x) => x.pattern === '2:4');
  return p ? `2:4 ${percent(p.share)}` : '-';
}

export function renderAuditText(report: AuditReport): string {
  const t = report.totals;
  const out: string[] = [];
  out.push(`${report.file ?? '(model)'}: ${report.format}, version ${report.formatVersion}, ${formatBytes(t.input.bytes)} (${formatInt(t.input.bytes)} B)`);
  out.push(`weights: ${t.weights} (${t.analyzedWeights} analysed), ${formatInt(t.denseWeightBytes)} B dense, ${percent(t.elements ? t.zeroShare : null)} zeros`);
  out.push('');

  // Totals
  const bound = t.informationBound.fileBytes;
  const rows: string[][] = [];
  rows.push(['input file', formatInt(t.input.bytes), bytesOrDash(t.input.gzipBytes),
    ratio(t.dense.bytes !== null ? t.dense.bytes / t.input.bytes : null), ratio(bound ? t.input.bytes / bound : null),
    ratio(t.input.gzipBytes !== null && bound ? t.input.gzipBytes / bound : null), '-']);
  for (const target of t.targets) {
    if (target.bytes === null) {
      rows.push([`${target.target}${target.dense ? ' (dense)' : ''}`, 'failed', '-', '-', '-', '-', clip(target.error ?? '', 40)]);
      continue;
    }
    rows.push([`${target.target}${target.dense ? ' (dense)' : ''}`, formatInt(target.bytes), bytesOrDash(target.gzipBytes), ratio(target.ratio),
      ratio(target.ratioToBound), ratio(target.gzipRatioToBound), target.sparseWeights === null ? '-' : String(target.sparseWeights)]);
  }
  rows.push(['information bound', formatInt(Math.round(bound)), '-', ratio(t.dense.bytes !== null && bound ? t.dense.bytes / bound : null), '1.00x', '-', '-']);
  out.push(`totals (gzip level ${report.options.gzipLevel}; ratio = dense / bytes; bound = ${formatInt(Math.round(t.informationBound.weightBytes))} B of weights + the dense file's other bytes):`);
  out.push(table(['output', 'bytes', 'gzip', 'ratio', 'vs bound', 'gzip vs bound', 'sparse weights'], rows,
    [false, true, true, true, true, true, true]));
  out.push(`best PPSP codec per weight (weights only, no entropy stage): ${formatInt(t.codecWeightBytes)} B`);
  out.push('');

  // Weights: structure
  const listed = report.weights;
  const heading = listed.length < report.weightCount ? `top ${listed.length} of ${report.weightCount} weights` : `${report.weightCount} weights`;
  out.push(`${heading}, most bytes saved first:`);
  out.push(table(
    ['#', 'weight', 'consumer', 'shape', 'dtype', 'bytes', 'zeros', 'best block', 'N:M groups', 'zero rows/cols', 'gzip', 'saved'],
    listed.map((w) => {
      const s = w.structure;
      return [
        String(w.rank), clip(w.name, 40), clip(w.consumers.join(', ') || '-', 28), `[${w.shape.join(',')}]`, w.dtype,
        formatInt(w.denseBytes), percent(w.zeroShare),
        s?.bestBlock ? `${s.bestBlock.shape} ${percent(s.bestBlock.zeroBlockShare)}` : '-',
        nmText(w),
        s ? `${s.zeroRows}/${s.zeroColumns}` : '-',
        bytesOrDash(w.gzipBytes), formatInt(w.savedBytes),
      ];
    }),
    [true, false, false, false, false, true, true, false, false, true, true, true],
  ));
  out.push('');

  // Weights: encodings and target choices
  // Targets that were built (a streaming audit builds none) and are not the dense one.
  const sparseTargets = report.targets.filter((target) => t.targets.some((x) => x.target === target && !x.dense));
  out.push(sparseTargets.length ? 'encodings (bytes; the choice of each sparse target and why):' : 'encodings (bytes):');
  out.push(table(
    ['#', 'weight', 'dense', 'best encoding', 'bytes', ...sparseTargets.flatMap((target) => [target, 'bytes']), 'why'],
    listed.map((w) => {
      const choices = sparseTargets.map((target) => w.targets.find((c) => c.target === target));
      const why = choices.find((c) => c)?.reason ?? '';
      return [
        String(w.rank), clip(w.name, 40), formatInt(w.denseBytes), w.best.encoding, formatInt(w.best.bytes),
        ...choices.flatMap((c) => (c ? [clip(c.encoding, 28), `${c.exact ? '' : '~'}${formatInt(c.bytes)}`] : ['-', '-'])),
        clipEnd(why, 70),
      ];
    }),
    [true, false, true, false, true, ...sparseTargets.flatMap(() => [false, true]), false],
  ));

  if (report.fullyConnected.length) {
    out.push('');
    out.push(report.options.pruneCost === false
      ? 'FULLY_CONNECTED weights: zeros in whole kernel blocks (1x4 float, 1x16 int8) (what prune --block would cost: --prune-cost):'
      : 'FULLY_CONNECTED weights: zeros in whole kernel blocks (1x4 float, 1x16 int8), and what prune --block would cost:');
    out.push(table(
      ['weight', 'dtype', 'block', 'native', 'zeros', 'block sparsity', 'zeros in blocks', 'official converter', 'extra zeros', 'L1 removed'],
      report.fullyConnected.map((f) => [
        clip(f.name, 40), f.dtype, f.block, f.nativeKernel ? 'yes' : 'no', percent(f.elementSparsity), percent(f.blockSparsity),
        percent(f.zerosInBlocksShare), f.officialConverter,
        f.prune ? `${formatInt(f.prune.extraZeros)} (${percent(f.prune.extraZeroShare)})` : '-',
        f.prune ? percent(f.prune.l1RemovedShare) : '-',
      ]),
      [false, false, false, false, true, true, true, false, true, true],
    ));
  }
  if (report.xnnpack) out.push('', `XNNPACK fast sparse inference on the tflite-sparse output: ${report.xnnpack.expected ? 'expected' : report.xnnpack.qualifies ? 'not expected (zeros threshold met, operator pattern does not fit)' : 'not expected'} (${report.xnnpack.reason})`);
  for (const b of report.budgets) out.push(`budget ${b.kind} ${b.limit} for ${b.target}: ${b.passed ? 'met' : 'MISSED'} (${b.message})`);
  if (report.notes.length) {
    out.push('', 'notes:');
    for (const n of report.notes) out.push(`- ${n}`);
  }
  return out.join('\n');
}
