/**
 * The audit as one self-contained HTML page: inline CSS, inline SVG charts, zero-pattern images
 * as data-URL PNGs, a few lines of inline JS (sortable tables). A Content-Security-Policy meta
 * tag forbids every network fetch, so the page provably needs nothing but itself.
 */
import type { AuditReport, AuditWeight } from './report.js';
import { zeroPatternPng } from './zero-pattern.js';
import { nmText } from './render-text.js';

/** Weights drawn in the per-layer charts (the tables list every weight of the report). */
const CHART_WEIGHTS = 40;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));
}

const int = new Intl.NumberFormat('en-US');
const fmt = (n: number | null) => (n === null ? '-' : int.format(Math.round(n)));
const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
const rat = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`);

function shortName(s: string, n = 34): string {
  return s.length > n ? `…${s.slice(s.length - n + 1)}` : s;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];

/** Horizontal bar chart: one row per label, one bar per series, linear scale. */
function barChart(id: string, title: string, labels: string[], series: Array<{ name: string; values: Array<number | null>; color: string }>,
  format: (v: number) => string, max?: number): string {
  const labelWidth = 230;
  const plotWidth = 520;
  const barHeight = 12;
  const groupGap = 8;
  const groupHeight = series.length * barHeight + groupGap;
  const top = 34;
  const height = top + labels.length * groupHeight + 10;
  const width = labelWidth + plotWidth + 90;
  const top_ = max ?? Math.max(1e-9, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const parts: string[] = [];
  parts.push(`<svg id="${id}" class="chart" role="img" aria-label="${esc(title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">`);
  parts.push(`<title>${esc(title)}</title>`);
  let x = labelWidth;
  series.forEach((s) => {
    parts.push(`<rect x="${x}" y="6" width="10" height="10" fill="${s.color}"/><text x="${x + 14}" y="15" class="legend">${esc(s.name)}</text>`);
    x += 24 + s.name.length * 6.5;
  });
  for (let g = 0; g <= 4; g++) {
    const gx = labelWidth + (plotWidth * g) / 4;
    parts.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${height - 8}" class="grid"/>`);
    parts.push(`<text x="${gx}" y="${top - 9}" class="axis" text-anchor="middle">${esc(format((top_ * g) / 4))}</text>`);
  }
  labels.forEach((label, i) => {
    const y0 = top + i * groupHeight;
    parts.push(`<text x="${labelWidth - 6}" y="${y0 + (series.length * barHeight) / 2 + 4}" class="label" text-anchor="end">${esc(shortName(label))}<title>${esc(label)}</title></text>`);
    series.forEach((s, k) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      const w = Math.max(v > 0 ? 1 : 0, (plotWidth * Math.min(v, top_)) / top_);
      const y = y0 + k * barHeight;
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight - 2}" fill="${s.color}"><title>${esc(`${label}: ${s.name} ${format(v)}`)}</title></rect>`);
      parts.push(`<text x="${(labelWidth + w + 4).toFixed(1)}" y="${y + barHeight - 3}" class="value">${esc(format(v))}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('');
}

function patternFigure(w: AuditWeight): string {
  const p = w.zeroPattern!;
  const png = Buffer.from(zeroPatternPng(p)).toString('base64');
  // Fit 240 x 240 keeping the aspect ratio, but never thinner than 24 px (a [1, 144] weight stays visible).
  const fit = Math.min(240 / p.width, 240 / p.height);
  const displayWidth = Math.max(24, Math.round(p.width * fit));
  const displayHeight = Math.max(24, Math.round(p.height * fit));
  const cell = p.cellRows === 1 && p.cellCols === 1 ? 'one pixel per element' : `one pixel per ${p.cellRows}x${p.cellCols} elements`;
  return `<figure class="pattern"><img alt="zero pattern of ${esc(w.name)}" src="data:image/png;base64,${png}" width="${displayWidth}" height="${displayHeight}">`
    + `<figcaption><b>${esc(shortName(w.name, 40))}</b><br>[${w.shape.join(', ')}] ${esc(w.dtype)}, ${pct(w.zeroShare)} zeros; `
    + `rows = dim ${w.structure?.matrix.rowAxis ?? 0} (${w.structure?.matrix.rows ?? '?'}), ${cell}</figcaption></figure>`;
}

/** A cell; with a sort value it is a numeric (right-aligned) cell unless the value is text. */
function td(text: string, sortValue?: number | string | null, className?: string): string {
  const attr = sortValue === undefined || sortValue === null ? '' : ` data-v="${esc(String(sortValue))}"`;
  const cls = className ?? (typeof sortValue === 'number' || sortValue === null ? 'num' : '');
  return `<td${attr}${cls ? ` class="${cls}"` : ''}>${text}</td>`;
}

export function renderAuditHtml(report: AuditReport): string {
  const t = report.totals;
  const title = `prunepack audit: ${report.file ?? report.format}`;
  const sparseTargets = t.targets.filter((x) => !x.dense).map((x) => x.target);
  const chartWeights = report.weights.slice(0, CHART_WEIGHTS);

  // Charts
  const totalsLabels: string[] = ['input file'];
  const totalsBytes: Array<number | null> = [t.input.bytes];
  const totalsGzip: Array<number | null> = [t.input.gzipBytes];
  for (const target of t.targets) {
    totalsLabels.push(target.target + (target.dense ? ' (dense)' : ''));
    totalsBytes.push(target.bytes);
    totalsGzip.push(target.gzipBytes);
  }
  totalsLabels.push('information bound');
  totalsBytes.push(t.informationBound.fileBytes);
  totalsGzip.push(null);
  const totalsChart = barChart('chart-totals', 'Model size per output', totalsLabels, [
    { name: 'bytes', values: totalsBytes, color: PALETTE[0]! },
    { name: `gzip -${report.options.gzipLevel}`, values: totalsGzip, color: PALETTE[1]! },
  ], (v) => fmt(v));
  const sparsityChart = barChart('chart-sparsity', 'Share of zeros per weight', chartWeights.map((w) => w.name), [
    { name: 'zeros', values: chartWeights.map((w) => w.zeroShare), color: PALETTE[2]! },
    { name: 'all-zero blocks (best block)', values: chartWeights.map((w) => w.structure?.bestBlock?.zeroBlockShare ?? (w.structure ? 0 : null)), color: PALETTE[4]! },
  ], (v) => pct(v), 1);
  const bytesChart = barChart('chart-bytes', 'Bytes per weight', chartWeights.map((w) => w.name), [
    { name: 'dense', values: chartWeights.map((w) => w.denseBytes), color: PALETTE[0]! },
    ...sparseTargets.map((target, k) => ({
      name: target, values: chartWeights.map((w) => w.targets.find((c) => c.target === target)?.bytes ?? null), color: PALETTE[(k + 1) % PALETTE.length]!,
    })),
    { name: 'best encoding', values: chartWeights.map((w) => w.best.bytes), color: PALETTE[3]! },
    { name: 'information bound', values: chartWeights.map((w) => w.informationBound), color: PALETTE[6]! },
  ], (v) => fmt(v));

  // Tables
  const bound = t.informationBound.fileBytes;
  const ratioCell = (x: number | null) => td(rat(x), x);
  const inputRatio = t.dense.bytes !== null ? t.dense.bytes / t.input.bytes : null;
  const totalsRows = [
    `<tr><td>input file</td>${td(fmt(t.input.bytes), t.input.bytes)}${td(fmt(t.input.gzipBytes), t.input.gzipBytes)}${ratioCell(inputRatio)}`
      + `${ratioCell(bound ? t.input.bytes / bound : null)}${ratioCell(t.input.gzipBytes !== null && bound ? t.input.gzipBytes / bound : null)}${td('-', null)}</tr>`,
    ...t.targets.map((x) => `<tr><td>${esc(x.target)}${x.dense ? ' (dense)' : ''}</td>${x.bytes === null ? `<td colspan="6" class="error">writer failed: ${esc(x.error ?? '')}</td>`
      : `${td(fmt(x.bytes), x.bytes)}${td(fmt(x.gzipBytes), x.gzipBytes)}${ratioCell(x.ratio)}${ratioCell(x.ratioToBound)}${ratioCell(x.gzipRatioToBound)}${td(x.sparseWeights === null ? '-' : String(x.sparseWeights), x.sparseWeights)}`}</tr>`),
    `<tr><td>information bound</td>${td(fmt(bound), bound)}${td('-', null)}${ratioCell(t.dense.bytes !== null && bound ? t.dense.bytes / bound : null)}${ratioCell(1)}${td('-', null)}${td('-', null)}</tr>`,
  ].join('\n');

  const weightRows = report.weights.map((w) => {
    const s = w.structure;
    const choices = sparseTargets.map((target) => {
      const c = w.targets.find((x) => x.target === target);
      return c ? td(`${esc(c.encoding)}<br><span class="small">${c.exact ? '' : '~'}${fmt(c.bytes)} B: ${esc(c.reason)}</span>`, c.bytes, 'choice') : '<td>-</td>';
    }).join('');
    return `<tr>${td(String(w.rank), w.rank)}${td(`<span title="${esc(w.name)}">${esc(shortName(w.name, 48))}</span>`, w.name)}`
      + `${td(esc(w.consumers.join(', ') || '-'))}${td(`[${w.shape.join(',')}]`, w.elements)}${td(esc(w.dtype))}`
      + `${td(fmt(w.denseBytes), w.denseBytes)}${td(pct(w.zeroShare), w.zeroShare)}`
      + `${td(s?.bestBlock ? `${s.bestBlock.shape} ${pct(s.bestBlock.zeroBlockShare)}` : '-', s?.bestBlock?.zeroBlockShare ?? 0)}`
      + `${td(esc(nmText(w)))}${td(s ? `${s.zeroRows}/${s.zeroColumns}${s.zeroInputChannels !== null ? `/${s.zeroInputChannels}` : ''}` : '-')}`
      + `${td(`${esc(w.best.encoding)}<br>${fmt(w.best.bytes)}`, w.best.bytes, 'num wrap')}${choices}${td(fmt(w.gzipBytes), w.gzipBytes)}${td(fmt(w.informationBound), w.informationBound)}${td(fmt(w.savedBytes), w.savedBytes)}</tr>`;
  }).join('\n');

  const fcRows = report.fullyConnected.map((f) => `<tr>${td(esc(f.name), f.name)}${td(esc(f.dtype))}${td(f.block)}${td(f.nativeKernel ? 'yes' : 'no')}`
    + `${td(pct(f.elementSparsity), f.elementSparsity)}${td(pct(f.blockSparsity), f.blockSparsity)}${td(pct(f.zerosInBlocksShare), f.zerosInBlocksShare)}`
    + `${td(`${esc(f.officialConverter)}<br><span class="small">${esc(f.officialReason)}</span>`)}`
    + `${td(f.prune ? `${fmt(f.prune.extraZeros)} (${pct(f.prune.extraZeroShare)})` : esc(f.pruneNote ?? '-'), f.prune?.extraZeros ?? null)}`
    + `${td(f.prune ? pct(f.prune.l1RemovedShare) : '-', f.prune?.l1RemovedShare ?? null)}</tr>`).join('\n');

  const patterns = report.weights.filter((w) => w.zeroPattern).map(patternFigure).join('\n');
  const listedNote = report.weights.length < report.weightCount ? ` (top ${report.weights.length} of ${report.weightCount})` : '';

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="prunepack ${esc(report.tool.version)} (${esc(report.schema)})">
<title>${esc(title)}</title>
<style>
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fff; --muted: #666; --line: #ddd; --head: #f4f4f6; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ea; --bg: #17171a; --muted: #a0a0a8; --line: #3a3a40; --head: #24242a; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); margin: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.summary { color: var(--muted); margin-bottom: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--head); user-select: none; }
table.sortable th { cursor: pointer; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.num { text-align: right; white-space: nowrap; } td.wrap { white-space: normal; } td.choice { min-width: 240px; }
.small { color: var(--muted); font-size: 12px; }
.error { color: #c33; }
.chart { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.chart text { fill: var(--fg); font-size: 11px; font-family: system-ui, sans-serif; }
.chart .axis, .chart .value { fill: var(--muted); font-size: 10px; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.patterns { display: flex; flex-wrap: wrap; gap: 18px; }
.pattern { margin: 0; max-width: 280px; }
.pattern img { image-rendering: pixelated; border: 1px solid var(--line); background: #fff; display: block; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.scroll { overflow-x: auto; }
ul.notes { color: var(--muted); }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<div class="summary">${esc(report.format)} ${esc(report.formatVersion)} &middot; ${fmt(t.input.bytes)} bytes &middot; ${t.weights} weights (${t.analyzedWeights} analysed), ${pct(t.elements ? t.zeroShare : null)} zeros &middot; gzip level ${report.options.gzipLevel} &middot; ${esc(report.schema)}</div>

<h2>Totals</h2>
<table id="totals"><thead><tr><th>output</th><th>bytes</th><th>gzip</th><th>ratio (dense / bytes)</th><th>vs bound</th><th>gzip vs bound</th><th>sparse weights</th></tr></thead>
<tbody>
${totalsRows}
</tbody></table>
<div class="small">Information bound: ${fmt(t.informationBound.weightBytes)} B of weights (${esc(t.informationBound.formula)}). Best PPSP codec per weight: ${fmt(t.codecWeightBytes)} B of weights.</div>
${totalsChart}
${report.xnnpack ? `<p class="small">XNNPACK fast sparse inference on the tflite-sparse output: <b>${report.xnnpack.expected ? 'expected' : report.xnnpack.qualifies ? 'not expected (zeros threshold met, operator pattern does not fit)' : 'not expected'}</b> (${esc(report.xnnpack.reason)})</p>` : ''}
${report.budgets.map((b) => `<p class="${b.passed ? 'small' : 'error'}">Budget ${esc(b.kind)} ${b.limit} for ${esc(b.target)}: ${b.passed ? 'met' : 'missed'}: ${esc(b.message)}</p>`).join('\n')}

<h2>Sparsity per weight${chartWeights.length < report.weights.length ? ` (first ${chartWeights.length})` : ''}</h2>
${sparsityChart}

<h2>Bytes per weight${chartWeights.length < report.weights.length ? ` (first ${chartWeights.length})` : ''}</h2>
${bytesChart}

${patterns ? `<h2>Zero patterns of the largest weights</h2>\n<p class="small">White: all zero; darker: more nonzeros.</p>\n<div class="patterns">\n${patterns}\n</div>` : ''}

<h2>Weights${listedNote}, most bytes saved first</h2>
<div class="scroll"><table id="weights" class="sortable"><thead><tr><th>#</th><th>weight</th><th>consumer</th><th>shape</th><th>dtype</th><th>dense bytes</th><th>zeros</th><th>best block</th><th>N:M groups</th><th>zero rows/cols/in</th><th>best encoding</th>${sparseTargets.map((x) => `<th>${esc(x)}</th>`).join('')}<th>gzip</th><th>bound</th><th>saved</th></tr></thead>
<tbody>
${weightRows}
</tbody></table></div>

${fcRows ? `<h2>FULLY_CONNECTED: zeros in whole kernel blocks</h2>
<table id="fully-connected" class="sortable"><thead><tr><th>weight</th><th>dtype</th><th>block</th><th>native kernel</th><th>zeros</th><th>block sparsity</th><th>zeros in blocks</th><th>official converter</th><th>prune --block: extra zeros</th><th>L1 removed</th></tr></thead>
<tbody>
${fcRows}
</tbody></table>` : ''}

${report.notes.length ? `<h2>Notes</h2>\n<ul class="notes">${report.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<script>
(function () {
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('th');
    heads.forEach(function (th, column) {
      th.addEventListener('click', function () {
        var body = table.tBodies[0];
        var ascending = !th.classList.contains('sorted-asc');
        heads.forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
        th.classList.add(ascending ? 'sorted-asc' : 'sorted-desc');
        var rows = Array.prototype.slice.call(body.rows);
        var key = function (row) {
          var cell = row.cells[column];
          if (!cell) return '';
          var v = cell.getAttribute('data-v');
          if (v === null) return cell.textContent || '';
          var n = Number(v);
          return isNaN(n) ? v : n;
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
          return ascending ? c : -c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
</script>
</body>
</html>
`;
}
